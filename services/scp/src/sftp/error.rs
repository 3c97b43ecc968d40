//! What can go wrong talking SFTP: the channel, the server's bytes, or the server's answer.

use super::packet::{status, PacketError};

/// An SFTP client error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SftpError {
    /// The channel broke: the ssh child exited, closed its end, or a read or write failed.
    /// Every later call on the client fails.
    #[error("SFTP channel: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent a malformed packet, a reply to no outstanding request, or a reply of
    /// the wrong kind; also a request too long to encode. Every later call on the client
    /// fails.
    #[error("SFTP protocol error: {0}")]
    Protocol(String),
    /// The server refused an operation with a STATUS code ([`status`](super::packet::status)).
    /// The client stays usable.
    #[error("{op} {path}: {message} (SFTP status {code})")]
    Status {
        /// The operation: `open`, `create`, `write`, `read`, `close`, `stat`, `fstat`,
        /// `remove` or `rename`.
        op: &'static str,
        /// The remote path (for a rename, `FROM -> TO`).
        path: String,
        /// The STATUS code.
        code: u32,
        /// The server's message, or a short text for the code when it sent none.
        message: String,
    },
}

impl SftpError {
    /// True for a STATUS of "no such file" (a missing file or directory on the path).
    pub fn is_no_such_file(&self) -> bool {
        matches!(self, SftpError::Status { code, .. } if *code == status::NO_SUCH_FILE)
    }

    /// True for a STATUS of "permission denied".
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, SftpError::Status { code, .. } if *code == status::PERMISSION_DENIED)
    }

    /// A STATUS error from the server's code and message bytes.
    pub(super) fn status(op: &'static str, path: &str, code: u32, message: &[u8]) -> SftpError {
        SftpError::Status {
            op,
            path: path.to_owned(),
            code,
            message: status_text(code, message),
        }
    }
}

/// The server's message as text, or a short text for the code when it sent none.
pub(super) fn status_text(code: u32, message: &[u8]) -> String {
    if message.is_empty() {
        status::describe(code).to_owned()
    } else {
        String::from_utf8_lossy(message).into_owned()
    }
}

impl From<PacketError> for SftpError {
    fn from(e: PacketError) -> Self {
        SftpError::Protocol(e.to_string())
    }
}
