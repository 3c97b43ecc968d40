//! The batch FTP client (`sixstack ftp batch SCRIPT`): a script of commands ([`script`])
//! run against any FTP server over a [`sixstack_transport::Transport`] — the appliance's
//! own stack or the kernel's. [`reply`] and [`facts`] read what servers send; [`conn`] is
//! the control connection; [`session`] runs the steps; [`data`] moves the files (passive
//! or active, plain or TLS, TYPE A with optional EBCDIC, resume, size checks).
//!
//! Files are never half-written under their final names: downloads go to `NAME.part` and
//! are renamed when complete and verified; uploads go to `NAME.sixstack-part` on the
//! server and are renamed there when complete and verified.

pub mod conn;
pub mod data;
pub mod facts;
pub mod reply;
pub mod script;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use sixstack_tls::rustls::ClientConfig;

pub use reply::Reply;
pub use script::{parse, Command, ScriptError, Step};
pub use session::{run, Outcome};

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered a command with a refusal or an unexpected code.
    #[error("{command}: the server answered {reply}")]
    Refused {
        /// The command as sent (never a password).
        command: String,
        /// The server's reply.
        reply: Reply,
    },
    /// Connecting, or the connection broke or timed out.
    #[error("{0}")]
    Connection(String),
    /// A TLS handshake failed (certificate, protocol).
    #[error("{0}")]
    Tls(String),
    /// The server sent something that is not an FTP reply.
    #[error("{0}")]
    Protocol(reply::ReplyError),
    /// A local file or directory could not be read or written.
    #[error("{0}")]
    Local(String),
    /// A transfer completed but the sizes on both sides differ.
    #[error("{0}")]
    Verify(String),
    /// The password could not be had (vault entry missing, vault locked).
    #[error("{0}")]
    Password(String),
}

impl ClientError {
    /// The server's reply, where the failure was one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::Refused { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// How a script runs.
#[derive(Clone)]
pub struct Options {
    /// The TLS client configuration (trusted CA, optional client certificate). Needed for
    /// AUTH TLS and IMPLICIT; one configuration for the whole run, so data connections
    /// resume the control connection's session.
    pub tls: Option<Arc<ClientConfig>>,
    /// The longest wait for a reply, a connection or data.
    pub timeout: Duration,
    /// How often an interrupted transfer is resumed before the step fails.
    pub retries: u32,
    /// The local directory LCD starts from.
    pub local_dir: std::path::PathBuf,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("local_dir", &self.local_dir)
            .finish()
    }
}

/// Where the client reports what it does.
pub trait Report {
    /// A step completed.
    fn step_ok(&mut self, line: usize, what: &str);
    /// A step failed.
    fn step_failed(&mut self, line: usize, what: &str, error: &ClientError);
    /// Transfer progress: `done` bytes of `total` (when known) for the step at `line`.
    fn progress(&mut self, line: usize, name: &str, done: u64, total: Option<u64>);
}

/// Gives the password of a vault entry.
pub type PasswordSource<'a> = &'a dyn Fn(&str) -> Result<zeroize::Zeroizing<String>, String>;
