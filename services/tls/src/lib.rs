//! TLS for sixstack: rustls over the stack's [`TcpStream`](sixstack_stack::TcpStream) (and
//! over any tokio I/O stream), with a secure policy by default, per-shard session
//! resumption, client certificates, certificate material that reloads without a restart,
//! and the TLS services later protocols build on (implicit TLS, STARTTLS-style upgrade).
//!
//! - [`policy`]: TLS 1.3 and 1.2 only (a knob to require 1.3), AEAD suites and ECDHE only;
//!   what is refused is refused with a logged reason.
//! - [`material`]: PEM chains and keys (PKCS#8, SEC1, RSA), checked against the policy
//!   (no SHA-1 signatures, RSA keys of at least 2048 bits), reloadable.
//! - [`tickets`]: session-ticket keys that rotate on a ratchet every shard follows by itself,
//!   so tickets work across shards with no lock shared between them.
//! - [`server`] / [`client`]: per-shard acceptors and connectors.
//! - [`info`]: what a certificate says (subject, issuer, serial, validity, SANs, SHA-256
//!   fingerprint, key type and size), for `sixstack cert info` and for sign-on.
//! - [`selfsigned`]: a lab CA with server and client certificates.
//! - [`service`]: the TLS echo and HTTP-like test services; [`starttls`]: plain text, then
//!   TLS on the same stream.

#![forbid(unsafe_code)]

pub mod client;
pub mod client_stream;
mod error;
pub mod info;
pub mod material;
pub mod policy;
pub mod provider;
pub mod selfsigned;
pub mod server;
pub mod service;
pub mod signon;
pub mod starttls;
pub mod tickets;

pub use error::TlsError;
pub use info::CertInfo;
pub use policy::{ClientAuth, TlsPolicy};
pub use server::{ServerFactory, ServerSettings, ShardAcceptor};

pub use rustls;
pub use tokio_rustls;
