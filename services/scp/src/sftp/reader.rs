//! Downloads: OPEN for reading, FSTAT for the size, and READs of [`CHUNK`] bytes with up
//! to [`MAX_IN_FLIGHT`] outstanding, delivered strictly in file order. A DATA reply shorter
//! than asked (not the end of the file) has the rest of its range asked for again, and
//! that answer is delivered before any later range.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncWrite};

use super::attrs::Attrs;
use super::client::{unexpected, SftpClient};
use super::error::{status_text, SftpError};
use super::packet::{open_flags, status, Reply, Request, DATA_OFFSET};
use super::{CHUNK, MAX_IN_FLIGHT};

/// A remote file open for reading, made by [`SftpClient::open_read`]. Hand it back to
/// [`SftpClient::close_read`]; a reader dropped without it leaves the handle open and its
/// read-ahead replies parked in the client until the session ends.
#[derive(Debug)]
pub struct FileReader {
    handle: Vec<u8>,
    path: String,
    size: Option<u64>,
    /// The offset of the next byte to deliver.
    offset: u64,
    /// The offset the next new READ asks for.
    next_request: u64,
    /// Outstanding READs in file order: the front one covers `offset`.
    in_flight: VecDeque<Range>,
    /// The end of the file was reached; nothing more is delivered.
    done: bool,
    /// The first error STATUS, returned again by every later call.
    failure: Option<(u32, String)>,
}

/// One outstanding READ.
#[derive(Debug, Clone, Copy)]
struct Range {
    id: u32,
    offset: u64,
    len: u32,
}

impl FileReader {
    /// The file's size when opened, from FSTAT; `None` when the server did not say.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The start offset plus the bytes delivered so far.
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
                op: "read",
                path: self.path.clone(),
                code: *code,
                message: message.clone(),
            })
    }
}

/// CHUNK as a READ length.
const CHUNK_U32: u32 = CHUNK as u32;

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> SftpClient<R, W> {
    /// Opens `path` for reading and asks its size; reading starts at byte `from`.
    pub async fn open_read(&mut self, path: &str, from: u64) -> Result<FileReader, SftpError> {
        let r = self.open_read_once(path, from).await;
        self.chan.note(r)
    }

    async fn open_read_once(&mut self, path: &str, from: u64) -> Result<FileReader, SftpError> {
        let handle = self
            .open("open", path, open_flags::READ, &Attrs::default())
            .await?;
        let id = self.chan.next_id();
        self.chan
            .send(&Request::Fstat {
                id,
                handle: &handle,
            })
            .await?;
        let body = self.chan.recv(id).await?;
        let size = match Reply::parse(&body)? {
            Reply::Attrs { attrs, .. } => attrs.size,
            Reply::Status { code, message, .. } if code != status::OK => {
                log::debug!(
                    "fstat {path}: {}; reading without a size",
                    status_text(code, message)
                );
                None
            }
            other => return Err(unexpected(other, "fstat", path)),
        };
        Ok(FileReader {
            handle,
            path: path.to_owned(),
            size,
            offset: from,
            next_request: from,
            in_flight: VecDeque::with_capacity(MAX_IN_FLIGHT + 1),
            done: false,
            failure: None,
        })
    }

    /// The next bytes of the file, in order; `None` at the end. Keeps up to
    /// [`MAX_IN_FLIGHT`] READs outstanding (fewer past the size FSTAT gave).
    pub async fn read(&mut self, f: &mut FileReader) -> Result<Option<Vec<u8>>, SftpError> {
        let r = self.read_once(f).await;
        self.chan.note(r)
    }

    async fn read_once(&mut self, f: &mut FileReader) -> Result<Option<Vec<u8>>, SftpError> {
        if let Some(e) = f.failed() {
            return Err(e);
        }
        if f.done {
            return Ok(None);
        }
        self.read_ahead(f).await?;
        let Some(range) = f.in_flight.pop_front() else {
            f.done = true;
            return Ok(None);
        };
        let mut body = self.chan.recv(range.id).await?;
        let n = match Reply::parse(&body)? {
            Reply::Data { data, .. } => data.len(),
            Reply::Status { code, .. } if code == status::EOF => {
                f.done = true;
                self.drain(f).await?;
                return Ok(None);
            }
            Reply::Status { code, message, .. } if code != status::OK => {
                f.failure = Some((code, status_text(code, message)));
                self.drain(f).await?;
                return Err(f
                    .failed()
                    .unwrap_or_else(|| SftpError::Protocol("read".into())));
            }
            other => return Err(unexpected(other, "read", &f.path)),
        };
        let asked = usize::try_from(range.len).unwrap_or(usize::MAX);
        if n == 0 || n > asked {
            return Err(SftpError::Protocol(format!(
                "DATA of {n} bytes in reply to a READ of {asked} at {} of {}",
                range.offset, f.path
            )));
        }
        if n < asked {
            // A short read: ask for the rest of the range before anything later.
            let id = self.chan.next_id();
            let rest = Range {
                id,
                offset: range.offset.saturating_add(n as u64),
                len: range.len - n as u32,
            };
            self.chan
                .send(&Request::Read {
                    id,
                    handle: &f.handle,
                    offset: rest.offset,
                    len: rest.len,
                })
                .await?;
            f.in_flight.push_front(rest);
        }
        f.offset = f.offset.saturating_add(n as u64);
        body.truncate(DATA_OFFSET + n);
        body.drain(..DATA_OFFSET);
        Ok(Some(body))
    }

    /// Waits for the outstanding READs and closes the file.
    pub async fn close_read(&mut self, mut f: FileReader) -> Result<(), SftpError> {
        let r = match self.drain(&mut f).await {
            Ok(()) => self.close_handle(&f.handle, &f.path).await,
            Err(e) => Err(e),
        };
        self.chan.note(r)
    }

    /// Sends new READs while fewer than [`MAX_IN_FLIGHT`] are outstanding. Past the size
    /// FSTAT gave, only one at a time goes out, to find the end (or a file that grew).
    async fn read_ahead(&mut self, f: &mut FileReader) -> Result<(), SftpError> {
        while f.in_flight.len() < MAX_IN_FLIGHT {
            let past_size = f.size.is_some_and(|s| f.next_request > s);
            if past_size && !f.in_flight.is_empty() {
                break;
            }
            let id = self.chan.next_id();
            self.chan
                .send(&Request::Read {
                    id,
                    handle: &f.handle,
                    offset: f.next_request,
                    len: CHUNK_U32,
                })
                .await?;
            f.in_flight.push_back(Range {
                id,
                offset: f.next_request,
                len: CHUNK_U32,
            });
            f.next_request = f.next_request.saturating_add(CHUNK as u64);
        }
        Ok(())
    }

    /// Waits for and discards the replies to every outstanding READ.
    async fn drain(&mut self, f: &mut FileReader) -> Result<(), SftpError> {
        while let Some(range) = f.in_flight.pop_front() {
            let body = self.chan.recv(range.id).await?;
            Reply::parse(&body)?;
        }
        Ok(())
    }
}
