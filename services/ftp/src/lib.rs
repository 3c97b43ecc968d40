//! sixstack's FTP server. [`server`] runs it on a shard ([`fs`] is its file layer, [`ascii`]
//! converts TYPE A line endings); the rest has no I/O in it: [`command`] parses
//! a control-connection line into a typed command (RFC 959 core, RFC 2428 EPRT/EPSV,
//! RFC 3659 SIZE/MDTM/MLST/MLSD/REST, RFC 2389 FEAT/OPTS, RFC 4217 AUTH/PBSZ/PROT/CCC),
//! [`reply`] formats replies, [`session`] holds a control connection's protocol state
//! (a line in, a reply or a request for the I/O layer out), and [`vpath`] resolves the paths a user names inside the
//! virtual tree rooted at their home, where no spelling can leave it; [`users`] is the
//! security file of the `standard` method (Argon2id hashes, homes, per-path access);
//! [`xferlog`] writes the transfer log. [`client`] is the batch FTP client.

#![forbid(unsafe_code)]

pub mod ascii;
pub mod client;
pub mod command;
pub mod ebcdic;
pub mod exit;
pub mod fs;
pub mod limits;
pub mod login_cache;
pub mod reply;
pub mod rules;
pub mod security;
pub mod server;
pub mod session;
pub mod stream;
pub mod users;
pub mod vpath;
pub mod xferlog;

pub use command::{Command, CommandError, ProtLevel, TransferType};
pub use reply::Reply;
pub use security::Security;
pub use server::{serve, FtpConfig};
pub use session::{LoginOutcome, Request, Session, SessionPolicy, Step};
pub use vpath::{PathError, VirtualPath};
