//! What can go wrong running a command: every variant says what happened in words a
//! sixstack user can act on. No variant ever carries the password.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a remote command could not be run, or its exit status not learned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The user name is empty, longer than [`crate::MAX_USER`] bytes, or holds a NUL or
    /// another control character.
    #[error("the user name must be 1 to {max} bytes without control characters (got {len})")]
    BadUser {
        /// The length that was given, in bytes.
        len: usize,
        /// The most the protocol allows.
        max: usize,
    },
    /// The password is longer than [`crate::MAX_PASSWORD`] bytes or holds a NUL byte.
    #[error("the password must be at most {max} bytes without NUL bytes")]
    BadPassword {
        /// The most the protocol allows.
        max: usize,
    },
    /// The command is empty, longer than [`crate::MAX_COMMAND`] bytes, or holds a NUL byte.
    #[error("the command {why}")]
    BadCommand {
        /// What is wrong with it.
        why: &'static str,
    },
    /// The server's host name could not be resolved.
    #[error("{source}")]
    Resolve {
        /// The name as given.
        host: String,
        /// The resolver's failure (it names the host).
        source: io::Error,
    },
    /// The connection to the server could not be opened.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The server's address.
        server: SocketAddr,
        /// The underlying failure.
        source: io::Error,
    },
    /// No port could be opened for the server's standard-error connection back to us.
    #[error("cannot listen for the standard-error connection: {0}")]
    Listen(#[source] io::Error),
    /// The server closed the connection before it connected back for standard error.
    #[error(
        "the server closed the connection before connecting back for standard error \
         (can it reach this address? --no-stderr avoids the second connection)"
    )]
    NoBackConnection,
    /// The server refused the request and said why (its answer's first byte was 1).
    #[error("the server refused the command: {message}")]
    Refused {
        /// The server's message, control characters replaced, at most
        /// [`crate::MAX_ERROR_TEXT`] bytes.
        message: String,
    },
    /// The server closed the connection without answering. Debian's in.rexecd does this
    /// when the user name or password is wrong.
    #[error(
        "the server closed the connection without answering: the user name or password is \
         wrong, or the server refused the login"
    )]
    ClosedWithoutAnswer,
    /// The server's first byte was neither 0 (success) nor 1 (error).
    #[error("the server answered with byte {byte:#04x}, not a rexec answer")]
    Protocol {
        /// The byte it sent.
        byte: u8,
    },
    /// A step took longer than its limit.
    #[error("{what}: no progress within {} s", after.as_secs_f64())]
    Timeout {
        /// The step that timed out.
        what: &'static str,
        /// Its limit.
        after: Duration,
    },
    /// Reading from or writing to the server failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying failure.
        source: io::Error,
    },
    /// Writing the command's output to the caller's sink failed.
    #[error("writing the command's {stream}: {source}")]
    Sink {
        /// `standard output` or `standard error`.
        stream: &'static str,
        /// The underlying failure.
        source: io::Error,
    },
    /// The output ended without the line that carries the exit status: the connection was
    /// cut, or the command ended its shell before the status could be written (see the
    /// crate documentation for how the status is learned).
    #[error("exit status unknown: the command's output ended without its exit status")]
    ExitStatusUnknown,
    /// The exit status line came more than once, so it cannot be trusted.
    #[error("exit status unknown: the command's output carried its exit status twice")]
    ExitStatusAmbiguous,
}

impl Error {
    /// An I/O failure while doing `what`; a timeout from the transport's clock becomes
    /// [`Error::Timeout`].
    pub(crate) fn io(what: &'static str, limit: Duration, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::TimedOut {
            Error::Timeout { what, after: limit }
        } else {
            Error::Io { what, source }
        }
    }
}
