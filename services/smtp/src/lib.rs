//! sixstack's batch mail client: an SMTP dialogue (STARTTLS or implicit TLS, AUTH PLAIN or
//! LOGIN) that sends one MIME message to several recipients.
//!
//! - [`reply`], [`dialogue`]: the protocol as plain code over replies and command lines
//!   (no I/O); [`client::send`] drives it over any [`sixstack_transport::Transport`].
//! - [`mime`], [`header`], [`dotstuff`], [`base64`]: the message on the wire.
//! - [`request`]: what to send and how, checked before connecting; [`cli`]: the options of
//!   `sixstack mail send`.
//! - [`error`], [`exit`]: why a send failed, and the exit status for each reason.

#![forbid(unsafe_code)]

pub mod address;
pub mod auth;
pub mod base64;
pub mod cli;
pub mod client;
pub mod content_type;
pub mod date;
pub mod delivery;
pub mod dialogue;
pub mod dotstuff;
pub mod error;
pub mod exit;
pub mod header;
pub mod limits;
pub mod mime;
pub mod reply;
pub mod request;
pub mod stream;

pub use address::{AddressError, Mailbox};
pub use auth::{AuthChoice, Credentials, Mechanism};
pub use cli::{SendArgs, TlsArg};
pub use client::send;
pub use delivery::{Delivery, RecipientKind, RecipientResult};
pub use error::MailError;
pub use mime::{Attachment, Message};
pub use reply::Reply;
pub use request::{EhloName, MailRequest, RequestError, Timeouts, TlsMode, TlsOptions};
pub use zeroize::Zeroizing;
