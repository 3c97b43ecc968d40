//! The legacy scp protocol (the rcp protocol of OpenSSH's scp.c), client side, for a
//! remote host without SFTP: [`ScpSink`] sends one file to `scp -t -- PATH`, [`ScpSource`]
//! receives one file from `scp -f -- PATH`. Single files only: directories are refused.
//! File data streams through memory only.
//!
//! [`wire`] is the sans-IO parser and encoder of the control messages; [`shell_quote`]
//! quotes the remote path for the command line ssh hands to the remote shell.

mod control;
mod quote;
mod sink;
mod source;
pub mod wire;

pub use quote::shell_quote;
pub use sink::ScpSink;
pub use source::ScpSource;

/// A legacy scp error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScpError {
    /// The channel broke: the ssh child exited or closed its end, or a read or write
    /// failed (a remote `scp` that is missing shows up as an early end of the channel).
    #[error("scp channel: {0}")]
    Io(#[from] std::io::Error),
    /// The remote side sent something that is not the protocol, or the caller asked for
    /// something the protocol cannot carry (a bad file name, more or fewer bytes than
    /// announced, a call out of order). Nothing more can be sent on this channel.
    #[error("scp protocol error: {0}")]
    Protocol(String),
    /// The remote scp refused, with its message (a warning or a fatal error), e.g.
    /// `scp: /srv/in/x: No such file or directory`.
    #[error("remote scp: {0}")]
    Remote(String),
}

impl From<wire::WireError> for ScpError {
    fn from(e: wire::WireError) -> Self {
        ScpError::Protocol(e.to_string())
    }
}

#[cfg(test)]
mod tests;
