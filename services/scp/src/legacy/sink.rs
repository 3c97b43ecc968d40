//! Sending one file to a remote `scp -t -- PATH` (the sink): wait for its first 0, send
//! the `C` line, the data, a 0 byte, and read its verdict after each step.

use std::fmt;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::control::{read_message, refusal};
use super::wire::{FileHeader, Message};
use super::ScpError;

/// The sending side of one legacy scp file transfer.
pub struct ScpSink<R, W> {
    reader: BufReader<R>,
    writer: W,
    line: Vec<u8>,
    /// The announced size and the bytes sent, once a file has begun.
    file: Option<(u64, u64)>,
}

impl<R, W> fmt::Debug for ScpSink<R, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScpSink")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ScpSink<R, W> {
    /// Waits for the remote sink's first 0 (it is ready).
    pub async fn start(r: R, w: W) -> Result<Self, ScpError> {
        let mut sink = ScpSink {
            reader: BufReader::new(r),
            writer: w,
            line: Vec::new(),
            file: None,
        };
        sink.expect_ok("the sink's ready reply").await?;
        Ok(sink)
    }

    /// Announces a file of `size` bytes with permission bits `mode`. `name` is what the
    /// sink creates when its PATH is a directory: not empty, no `/` or newline (refused
    /// here, before anything is sent).
    pub async fn begin(&mut self, name: &str, mode: u32, size: u64) -> Result<(), ScpError> {
        if self.file.is_some() {
            return Err(ScpError::Protocol("a file was already begun".into()));
        }
        let mut line = Vec::new();
        FileHeader {
            mode,
            size,
            name: name.as_bytes(),
        }
        .encode(&mut line)?;
        self.writer.write_all(&line).await?;
        self.writer.flush().await?;
        self.expect_ok("a reply to the file line").await?;
        self.file = Some((size, 0));
        Ok(())
    }

    /// Sends file data; refuses to go past the announced size.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ScpError> {
        let Some((size, sent)) = self.file.as_mut() else {
            return Err(ScpError::Protocol("data before a file was begun".into()));
        };
        let after = *sent + data.len() as u64;
        if after > *size {
            return Err(ScpError::Protocol(format!(
                "{after} bytes would be more than the {size} announced"
            )));
        }
        *sent = after;
        self.writer.write_all(data).await?;
        Ok(())
    }

    /// Ends the file: refuses if fewer bytes than announced were sent; otherwise sends the
    /// closing 0, waits for the sink's verdict and closes the writer (the sink then exits).
    pub async fn finish(mut self) -> Result<(), ScpError> {
        match self.file {
            None => return Err(ScpError::Protocol("no file was begun".into())),
            Some((size, sent)) if sent < size => {
                return Err(ScpError::Protocol(format!(
                    "only {sent} of the {size} announced bytes were sent"
                )))
            }
            Some(_) => {}
        }
        self.writer.write_all(&[0]).await?;
        self.writer.flush().await?;
        self.expect_ok("a reply to the end of the file").await?;
        self.writer.shutdown().await?;
        Ok(())
    }

    async fn expect_ok(&mut self, what: &str) -> Result<(), ScpError> {
        match read_message(&mut self.reader, &mut self.line).await? {
            Message::Ok => Ok(()),
            other => Err(refusal(&other, what)),
        }
    }
}
