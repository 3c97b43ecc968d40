//! The SFTP client session: version negotiation and the one-request operations (stat,
//! remove, rename). Uploads are in [`super::writer`], downloads in [`super::reader`].

use std::fmt;

use tokio::io::{AsyncRead, AsyncWrite};

use super::attrs::Attrs;
use super::channel::Channel;
use super::error::SftpError;
use super::packet::{self, status, Reply, Request};

/// An SFTP version 3 client over an open byte channel (the stdin and stdout of
/// `ssh -s HOST sftp`). Requests are issued one call at a time; transfers pipeline up to
/// [`MAX_IN_FLIGHT`](super::MAX_IN_FLIGHT) requests. After an [`SftpError::Io`] or
/// [`SftpError::Protocol`] every later call fails (the session is lost: start a new
/// one); a [`SftpError::Status`] leaves the client usable.
pub struct SftpClient<R, W> {
    pub(super) chan: Channel<R, W>,
    pub(super) version: u32,
    /// Extension names and data from VERSION.
    pub(super) extensions: Vec<(String, Vec<u8>)>,
}

impl<R, W> fmt::Debug for SftpClient<R, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.extensions.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("SftpClient")
            .field("version", &self.version)
            .field("extensions", &names)
            .field("outstanding", &self.chan.outstanding())
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> SftpClient<R, W> {
    /// Sends INIT for version 3, reads VERSION and records the server's extensions.
    pub async fn start(r: R, w: W) -> Result<Self, SftpError> {
        let mut chan = Channel::new(r, w);
        chan.send(&Request::Init).await?;
        let body = chan.recv_version().await?;
        let Reply::Version {
            version,
            extensions,
        } = Reply::parse(&body)?
        else {
            return Err(SftpError::Protocol("expected VERSION".into()));
        };
        if version < packet::VERSION {
            return Err(SftpError::Protocol(format!(
                "server speaks SFTP version {version}; version 3 is needed"
            )));
        }
        if version > packet::VERSION {
            log::warn!("SFTP server answered version {version} to INIT 3; speaking 3");
        }
        let extensions = extensions
            .map(|(n, d)| (String::from_utf8_lossy(n).into_owned(), d.to_vec()))
            .collect();
        Ok(SftpClient {
            chan,
            version,
            extensions,
        })
    }

    /// True when the server announced the extension (e.g. `posix-rename@openssh.com`).
    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|(n, _)| n == name)
    }

    /// The attributes of `path`, following symbolic links; `None` when there is no such
    /// file.
    pub async fn stat(&mut self, path: &str) -> Result<Option<Attrs>, SftpError> {
        let r = self.stat_once(path).await;
        self.chan.note(r)
    }

    async fn stat_once(&mut self, path: &str) -> Result<Option<Attrs>, SftpError> {
        let id = self.chan.next_id();
        self.chan.send(&Request::Stat { id, path }).await?;
        let body = self.chan.recv(id).await?;
        match Reply::parse(&body)? {
            Reply::Attrs { attrs, .. } => Ok(Some(attrs)),
            Reply::Status { code, .. } if code == status::NO_SUCH_FILE => Ok(None),
            other => Err(unexpected(other, "stat", path)),
        }
    }

    /// Removes a file.
    pub async fn remove(&mut self, path: &str) -> Result<(), SftpError> {
        let id = self.chan.next_id();
        self.chan.send(&Request::Remove { id, path }).await?;
        let r = self.expect_ok(id, "remove", path).await;
        self.chan.note(r)
    }

    /// Renames `from` to `to`, replacing `to` if it exists. With the server's
    /// `posix-rename@openssh.com` the replacement is atomic; without it `to` is removed
    /// first (a missing `to` is fine), then renamed, so a failure between the two leaves
    /// no `to`.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), SftpError> {
        let r = self.rename_once(from, to).await;
        self.chan.note(r)
    }

    async fn rename_once(&mut self, from: &str, to: &str) -> Result<(), SftpError> {
        let both = format!("{from} -> {to}");
        if self.has_extension(packet::POSIX_RENAME) {
            let id = self.chan.next_id();
            self.chan
                .send(&Request::PosixRename { id, from, to })
                .await?;
            return self.expect_ok(id, "rename", &both).await;
        }
        match self.remove(to).await {
            Err(e) if !e.is_no_such_file() => return Err(e),
            _ => {}
        }
        let id = self.chan.next_id();
        self.chan.send(&Request::Rename { id, from, to }).await?;
        self.expect_ok(id, "rename", &both).await
    }

    /// Waits for the reply to `id` and expects STATUS OK.
    pub(super) async fn expect_ok(
        &mut self,
        id: u32,
        op: &'static str,
        path: &str,
    ) -> Result<(), SftpError> {
        let body = self.chan.recv(id).await?;
        match Reply::parse(&body)? {
            Reply::Status { code, .. } if code == status::OK => Ok(()),
            other => Err(unexpected(other, op, path)),
        }
    }

    /// Opens `path` with `pflags` and returns the handle.
    pub(super) async fn open(
        &mut self,
        op: &'static str,
        path: &str,
        pflags: u32,
        attrs: &Attrs,
    ) -> Result<Vec<u8>, SftpError> {
        let id = self.chan.next_id();
        self.chan
            .send(&Request::Open {
                id,
                path,
                pflags,
                attrs,
            })
            .await?;
        let body = self.chan.recv(id).await?;
        match Reply::parse(&body)? {
            Reply::Handle { handle, .. } => Ok(handle.to_vec()),
            other => Err(unexpected(other, op, path)),
        }
    }

    /// Closes a handle, expecting STATUS OK.
    pub(super) async fn close_handle(
        &mut self,
        handle: &[u8],
        path: &str,
    ) -> Result<(), SftpError> {
        let id = self.chan.next_id();
        self.chan.send(&Request::Close { id, handle }).await?;
        self.expect_ok(id, "close", path).await
    }
}

/// The error for a reply that is not the one wanted: the server's status, or a protocol
/// error naming the reply kind.
pub(super) fn unexpected(reply: Reply<'_>, op: &'static str, path: &str) -> SftpError {
    match reply {
        Reply::Status { code, message, .. } if code != status::OK => {
            SftpError::status(op, path, code, message)
        }
        other => SftpError::Protocol(format!(
            "unexpected {} reply to {op} {path}",
            other.kind_name()
        )),
    }
}
