//! The batch FTP client's connections: a stream that is plain or TLS (the control
//! connection turns TLS on AUTH TLS; data connections are TLS under PROT P), and the
//! control connection that sends commands and reads replies with a time limit.

use std::time::Duration;

use sixstack_transport::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::reply::{Reply, ReplyParser};
use super::ClientError;

pub use sixstack_tls::client_stream::ClientStream;

/// The control connection: commands out, replies in.
pub struct Control<S> {
    /// The connection.
    pub stream: ClientStream<S>,
    parser: ReplyParser,
    limit: Duration,
}

impl<S> std::fmt::Debug for Control<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Control<S> {
    /// A control connection whose replies must come within `limit`.
    pub fn new(stream: ClientStream<S>, limit: Duration) -> Control<S> {
        Control {
            stream,
            parser: ReplyParser::default(),
            limit,
        }
    }

    /// Sends one command line (CR LF added). `shown` is what errors call it (no password).
    pub async fn send<T: Transport>(
        &mut self,
        t: &T,
        line: &str,
        shown: &str,
    ) -> Result<(), ClientError> {
        if line.contains(['\r', '\n']) {
            return Err(ClientError::Local(format!(
                "{shown}: a command may not hold a line break"
            )));
        }
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let stream = &mut self.stream;
        sixstack_transport::timeout(t, self.limit, shown, async {
            stream.write_all(&bytes).await?;
            stream.flush().await
        })
        .await
        .and_then(|r| r)
        .map_err(|e| ClientError::Connection(format!("sending {shown}: {e}")))
    }

    /// Reads the next complete reply.
    pub async fn reply<T: Transport>(&mut self, t: &T, after: &str) -> Result<Reply, ClientError> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = self.parser.next_reply().map_err(ClientError::Protocol)? {
                return Ok(r);
            }
            let stream = &mut self.stream;
            let n = sixstack_transport::timeout(
                t,
                self.limit,
                &format!("the reply to {after}"),
                stream.read(&mut buf),
            )
            .await
            .and_then(|r| r)
            .map_err(|e| ClientError::Connection(format!("reading the reply to {after}: {e}")))?;
            if n == 0 {
                return Err(ClientError::Connection(format!(
                    "the server closed the control connection (waiting for the reply to {after})"
                )));
            }
            self.parser.feed(&buf[..n]);
        }
    }

    /// Sends a command and reads its reply.
    pub async fn command<T: Transport>(&mut self, t: &T, line: &str) -> Result<Reply, ClientError> {
        self.command_shown(t, line, line).await
    }

    /// [`Control::command`] where errors and logs show `shown` instead of the line.
    pub async fn command_shown<T: Transport>(
        &mut self,
        t: &T,
        line: &str,
        shown: &str,
    ) -> Result<Reply, ClientError> {
        self.send(t, line, shown).await?;
        self.reply(t, shown).await
    }

    /// Sends a command that must be answered with a completion (2xx).
    pub async fn expect_ok<T: Transport>(
        &mut self,
        t: &T,
        line: &str,
    ) -> Result<Reply, ClientError> {
        let r = self.command(t, line).await?;
        if r.ok() {
            Ok(r)
        } else {
            Err(ClientError::Refused {
                command: line.to_string(),
                reply: r,
            })
        }
    }
}
