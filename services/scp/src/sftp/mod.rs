//! The client side of SFTP version 3 (draft-ietf-secsh-filexfer-02, as OpenSSH's
//! sftp-server speaks it), over an already open byte channel: in scpd, the stdin and
//! stdout of `ssh -s HOST sftp`. Covers what a single-file copy needs (stat, create or
//! resume, pipelined write and read, atomic rename, remove); no directory listing.
//! File data streams through memory only.
//!
//! [`packet`] is the sans-IO codec; [`SftpClient`] drives it over the channel.

mod attrs;
mod channel;
mod client;
mod error;
pub mod packet;
mod reader;
mod writer;

pub use attrs::Attrs;
pub use client::SftpClient;
pub use error::SftpError;
pub use reader::FileReader;
pub use writer::FileWriter;

/// Bytes per READ or WRITE request.
pub const CHUNK: usize = 32 * 1024;

/// Outstanding READ or WRITE requests per transfer.
pub const MAX_IN_FLIGHT: usize = 64;

#[cfg(test)]
mod fake_tests;
#[cfg(test)]
mod tests;
