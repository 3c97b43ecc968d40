//! Receiving one file from a remote `scp -f -- PATH` (the source): send 0, read the `C`
//! line (skipping `T` lines), send 0, read the data, then the source's verdict, send 0.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::control::{read_message, refusal};
use super::wire::Message;
use super::ScpError;

/// The most bytes one [`ScpSource::read`] returns.
const READ_CHUNK: usize = 64 * 1024;

/// `T` lines accepted before the `C` line; a source sends at most one per file.
const MAX_TIME_LINES: usize = 4;

/// The receiving side of one legacy scp file transfer.
pub struct ScpSource<R, W> {
    reader: BufReader<R>,
    writer: W,
    line: Vec<u8>,
    mode: u32,
    size: u64,
    name: String,
    received: u64,
    done: bool,
}

impl<R, W> fmt::Debug for ScpSource<R, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScpSource")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("size", &self.size)
            .field("received", &self.received)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ScpSource<R, W> {
    /// Asks the source to start, reads its `C` line and accepts the file. A missing or
    /// unreadable file is the source's message as [`ScpError::Remote`]; a directory is
    /// refused.
    pub async fn start(r: R, w: W) -> Result<Self, ScpError> {
        let mut reader = BufReader::with_capacity(READ_CHUNK, r);
        let mut writer = w;
        let mut line = Vec::new();
        writer.write_all(&[0]).await?;
        writer.flush().await?;
        let mut times = 0;
        let (mode, size, name) = loop {
            match read_message(&mut reader, &mut line).await? {
                Message::File(h) => {
                    break (h.mode, h.size, String::from_utf8_lossy(h.name).into_owned())
                }
                Message::Time { .. } if times < MAX_TIME_LINES => times += 1,
                Message::Directory(_) | Message::EndDirectory => {
                    return Err(ScpError::Protocol(
                        "the remote path is a directory; only single files are copied".into(),
                    ))
                }
                other => return Err(refusal(&other, "a file line")),
            }
            writer.write_all(&[0]).await?;
            writer.flush().await?;
        };
        writer.write_all(&[0]).await?;
        writer.flush().await?;
        Ok(ScpSource {
            reader,
            writer,
            line,
            mode,
            size,
            name,
            received: 0,
            done: false,
        })
    }

    /// The announced size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The announced permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// The announced file name (the remote file's last path component; bytes that are not
    /// UTF-8 are replaced).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next bytes of the file (at most 64 KiB); `None` once all announced bytes came
    /// and the source confirmed them. A source that failed to read its file says so after
    /// the data: that is [`ScpError::Remote`], and the data already returned is not valid.
    pub async fn read(&mut self) -> Result<Option<Vec<u8>>, ScpError> {
        if self.done {
            return Ok(None);
        }
        let left = self.size - self.received;
        if left > 0 {
            let want = usize::try_from(left).map_or(READ_CHUNK, |l| l.min(READ_CHUNK));
            let mut buf = vec![0; want];
            let n = self.reader.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the channel closed after {} of {} bytes",
                        self.received, self.size
                    ),
                )
                .into());
            }
            buf.truncate(n);
            self.received += n as u64;
            return Ok(Some(buf));
        }
        match read_message(&mut self.reader, &mut self.line).await? {
            Message::Ok => {}
            other => return Err(refusal(&other, "the end-of-file reply")),
        }
        self.writer.write_all(&[0]).await?;
        self.writer.flush().await?;
        self.writer.shutdown().await?;
        self.done = true;
        Ok(None)
    }
}
