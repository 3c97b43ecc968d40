//! Uploads: OPEN for writing, pipelined WRITEs of at most [`CHUNK`] bytes with up to
//! [`MAX_IN_FLIGHT`] unacknowledged, and CLOSE once every WRITE is acknowledged. File data
//! passes from the caller's buffer to the channel and is kept nowhere else.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncWrite};

use super::attrs::Attrs;
use super::client::{unexpected, SftpClient};
use super::error::{status_text, SftpError};
use super::packet::{open_flags, status, Reply, Request};
use super::{CHUNK, MAX_IN_FLIGHT};

/// A remote file open for writing, made by [`SftpClient::create`]. Hand it back to
/// [`SftpClient::finish_write`]; a writer dropped without it leaves the handle open and
/// its acknowledgements parked in the client until the session ends.
#[derive(Debug)]
pub struct FileWriter {
    handle: Vec<u8>,
    path: String,
    offset: u64,
    /// Ids of WRITEs not yet acknowledged, oldest first.
    in_flight: VecDeque<u32>,
    /// The first error STATUS, returned again by every later call.
    failure: Option<(u32, String)>,
}

impl FileWriter {
    /// Where the next byte will be written: the resume offset plus the bytes written so far
    /// (sent, not necessarily acknowledged; [`SftpClient::finish_write`] waits for all).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The remote path.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn failed(&self) -> Option<SftpError> {
        self.failure
            .as_ref()
            .map(|(code, message)| SftpError::Status {
                op: "write",
                path: self.path.clone(),
                code: *code,
                message: message.clone(),
            })
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> SftpClient<R, W> {
    /// Opens `path` for writing, creating it with `mode` (permission bits) if missing.
    /// `None` truncates it; `Some(n)` keeps its bytes and writes from offset `n` on (a
    /// resumed upload: bytes past `n` already there are overwritten, not cut off).
    pub async fn create(
        &mut self,
        path: &str,
        resume_at: Option<u64>,
        mode: u32,
    ) -> Result<FileWriter, SftpError> {
        let r = self.create_once(path, resume_at, mode).await;
        self.chan.note(r)
    }

    async fn create_once(
        &mut self,
        path: &str,
        resume_at: Option<u64>,
        mode: u32,
    ) -> Result<FileWriter, SftpError> {
        let mut pflags = open_flags::WRITE | open_flags::CREAT;
        if resume_at.is_none() {
            pflags |= open_flags::TRUNC;
        }
        let attrs = Attrs {
            permissions: Some(mode & 0o7777),
            ..Attrs::default()
        };
        let handle = self.open("create", path, pflags, &attrs).await?;
        Ok(FileWriter {
            handle,
            path: path.to_owned(),
            offset: resume_at.unwrap_or(0),
            in_flight: VecDeque::with_capacity(MAX_IN_FLIGHT),
            failure: None,
        })
    }

    /// Writes `data` (any length) at the writer's offset as WRITEs of at most [`CHUNK`]
    /// bytes, waiting for the oldest acknowledgement whenever [`MAX_IN_FLIGHT`] are
    /// outstanding. A refused WRITE fails this call or a later one, and every call after.
    pub async fn write(&mut self, f: &mut FileWriter, data: &[u8]) -> Result<(), SftpError> {
        let r = self.write_once(f, data).await;
        self.chan.note(r)
    }

    async fn write_once(&mut self, f: &mut FileWriter, data: &[u8]) -> Result<(), SftpError> {
        if let Some(e) = f.failed() {
            return Err(e);
        }
        for chunk in data.chunks(CHUNK) {
            if f.in_flight.len() >= MAX_IN_FLIGHT {
                self.ack_oldest(f).await?;
            }
            let id = self.chan.next_id();
            self.chan
                .send(&Request::Write {
                    id,
                    handle: &f.handle,
                    offset: f.offset,
                    data: chunk,
                })
                .await?;
            f.in_flight.push_back(id);
            f.offset += chunk.len() as u64;
        }
        Ok(())
    }

    /// Waits for every outstanding acknowledgement, closes the file and returns the final
    /// offset. The handle is closed even when a WRITE was refused; that refusal is the
    /// error returned.
    pub async fn finish_write(&mut self, f: FileWriter) -> Result<u64, SftpError> {
        let r = self.finish_once(f).await;
        self.chan.note(r)
    }

    async fn finish_once(&mut self, mut f: FileWriter) -> Result<u64, SftpError> {
        while !f.in_flight.is_empty() {
            match self.ack_oldest(&mut f).await {
                Ok(()) | Err(SftpError::Status { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let closed = self.close_handle(&f.handle, &f.path).await;
        if let Some(e) = f.failed() {
            return Err(e);
        }
        closed.map(|()| f.offset)
    }

    /// Waits for the oldest WRITE's acknowledgement. On a refusal, records it and waits for
    /// the other outstanding ones too, so none is left for a later request to trip over.
    async fn ack_oldest(&mut self, f: &mut FileWriter) -> Result<(), SftpError> {
        let Some(id) = f.in_flight.pop_front() else {
            return Ok(());
        };
        let body = self.chan.recv(id).await?;
        match Reply::parse(&body)? {
            Reply::Status { code, .. } if code == status::OK => return Ok(()),
            Reply::Status { code, message, .. } => {
                if f.failure.is_none() {
                    f.failure = Some((code, status_text(code, message)));
                }
            }
            other => return Err(unexpected(other, "write", &f.path)),
        }
        while let Some(id) = f.in_flight.pop_front() {
            let body = self.chan.recv(id).await?;
            if let Reply::Status { .. } = Reply::parse(&body)? {
                continue;
            }
            return Err(SftpError::Protocol(format!(
                "unexpected reply to write {}",
                f.path
            )));
        }
        Err(f.failed().unwrap_or_else(|| {
            SftpError::Protocol(format!("write {} failed without a status", f.path))
        }))
    }
}
