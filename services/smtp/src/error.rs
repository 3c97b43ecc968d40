//! Why a message was not sent. Every error names the step and carries the server's reply
//! where there was one; none ever carries the password.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::delivery::RecipientResult;
use crate::reply::{Reply, ReplyError};
use crate::request::RequestError;
use crate::{exit, AuthChoice};

/// A failed send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The request is not usable; nothing was sent.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The server's name does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The server's address.
        addr: SocketAddr,
        /// The reason.
        source: io::Error,
    },
    /// A step got no answer in time.
    #[error("{step}: no answer within {} s", after.as_secs_f64())]
    Timeout {
        /// The step (`greeting`, `RCPT TO`, `end of data`, ...).
        step: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The TLS configuration (CA file, client certificate) cannot be loaded.
    #[error("TLS setup: {0}")]
    TlsSetup(#[from] sixstack_tls::TlsError),
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol).
    #[error("TLS with {server} failed: {reason}")]
    Tls {
        /// The name the certificate was checked against.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// TLS is required but the server does not offer STARTTLS.
    #[error(
        "{server} does not offer STARTTLS (use --tls none or --allow-plain to send without TLS)"
    )]
    StartTlsNotOffered {
        /// The server's host.
        server: String,
    },
    /// The server refused STARTTLS.
    #[error("STARTTLS refused: {0}")]
    StartTlsRefused(Reply),
    /// The server refused the session (greeting or EHLO).
    #[error("the server refused the session at {step}: {reply}")]
    SessionRefused {
        /// `greeting`, `EHLO` or `HELO`.
        step: &'static str,
        /// The server's reply.
        reply: Reply,
    },
    /// Authentication is wanted but the server offers no fitting mechanism.
    #[error("the server offers no AUTH mechanism for --auth {wanted:?} (offered: {offered})")]
    AuthNotOffered {
        /// What was asked for.
        wanted: AuthChoice,
        /// The mechanisms the server offers, space-separated (empty if none).
        offered: String,
    },
    /// The server refused the credentials.
    #[error("authentication refused: {0}")]
    AuthRefused(Reply),
    /// The server refused the sender (`MAIL FROM`).
    #[error("sender refused: {0}")]
    SenderRefused(Reply),
    /// Every recipient was refused; the message was not sent.
    #[error("every recipient was refused: {}", list(.0))]
    AllRecipientsRefused(Vec<RecipientResult>),
    /// The server refused the message (`DATA` or the end of data).
    #[error("message refused: {0}")]
    MessageRefused(Reply),
    /// The message is larger than the server's announced `SIZE`.
    #[error("the message has {size} bytes, the server takes at most {limit}")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The server's limit.
        limit: u64,
    },
    /// The server's bytes are not a reply.
    #[error("bad reply at {step}: {source}")]
    BadReply {
        /// The step.
        step: &'static str,
        /// What is wrong.
        source: ReplyError,
    },
    /// The server sent something the dialogue does not allow.
    #[error("protocol error at {step}: {detail}")]
    Protocol {
        /// The step.
        step: &'static str,
        /// What happened.
        detail: String,
    },
    /// The connection failed or closed in the middle.
    #[error("connection lost at {step}: {source}")]
    Connection {
        /// The step.
        step: &'static str,
        /// The reason.
        source: io::Error,
    },
}

fn list(r: &[RecipientResult]) -> String {
    r.iter()
        .map(|r| format!("{}: {}", r.address, r.reply))
        .collect::<Vec<_>>()
        .join("; ")
}

impl MailError {
    /// The process exit status for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        use MailError::*;
        match self {
            Request(_) => exit::USAGE,
            Resolve { .. } | Connect { .. } => exit::CONNECT,
            Timeout { .. } => exit::TIMEOUT,
            TlsSetup(_) | Tls { .. } | StartTlsNotOffered { .. } | StartTlsRefused(_) => exit::TLS,
            AuthNotOffered { .. } | AuthRefused(_) => exit::AUTH,
            SessionRefused { .. } | SenderRefused(_) => exit::SENDER,
            AllRecipientsRefused(_) => exit::ALL_REFUSED,
            MessageRefused(_) | TooLarge { .. } => exit::MESSAGE,
            BadReply { .. } | Protocol { .. } | Connection { .. } => exit::PROTOCOL,
        }
    }

    /// Whether trying again later may succeed: a 4xx reply, a time-out, a lost or refused
    /// connection.
    pub fn is_transient(&self) -> bool {
        use MailError::*;
        match self {
            Timeout { .. } | Connect { .. } | Connection { .. } => true,
            StartTlsRefused(r) | AuthRefused(r) | SenderRefused(r) | MessageRefused(r) => {
                r.is_transient()
            }
            SessionRefused { reply, .. } => reply.is_transient(),
            AllRecipientsRefused(rs) => rs.iter().all(|r| r.reply.is_transient()),
            _ => false,
        }
    }

    /// The server's reply behind this error, if there is one.
    pub fn reply(&self) -> Option<&Reply> {
        use MailError::*;
        match self {
            StartTlsRefused(r) | AuthRefused(r) | SenderRefused(r) | MessageRefused(r) => Some(r),
            SessionRefused { reply, .. } => Some(reply),
            _ => None,
        }
    }
}
