//! The batch FTP client's connections: a stream that is plain or TLS (the control
//! connection turns TLS on AUTH TLS; data connections are TLS under PROT P), and the
//! control connection that sends commands and reads replies with a time limit.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use sixstack_tls::rustls::ClientConfig;
use sixstack_tls::tokio_rustls::client::TlsStream;
use sixstack_transport::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::reply::{Reply, ReplyParser};
use super::ClientError;

/// A client connection, plain or TLS.
pub enum ClientStream<S> {
    /// Clear text.
    Plain(S),
    /// TLS.
    Tls(Box<TlsStream<S>>),
    /// Taken for an upgrade that failed.
    Gone,
}

impl<S> std::fmt::Debug for ClientStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientStream::Plain(_) => "ClientStream::Plain",
            ClientStream::Tls(_) => "ClientStream::Tls",
            ClientStream::Gone => "ClientStream::Gone",
        })
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientStream<S> {
    /// The TCP stream underneath.
    pub fn tcp(&self) -> Option<&S> {
        match self {
            ClientStream::Plain(s) => Some(s),
            ClientStream::Tls(t) => Some(t.get_ref().0),
            ClientStream::Gone => None,
        }
    }

    /// Whether it runs TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    /// Whether a TLS session was resumed (data connections resume the control
    /// connection's session, as servers that require it check).
    pub fn resumed(&self) -> bool {
        match self {
            ClientStream::Tls(t) => matches!(
                t.get_ref().1.handshake_kind(),
                Some(sixstack_tls::rustls::HandshakeKind::Resumed)
            ),
            _ => false,
        }
    }

    /// Runs the TLS client handshake for `server_name` over the plain stream.
    pub async fn upgrade(
        self,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> Result<ClientStream<S>, ClientError> {
        let ClientStream::Plain(s) = self else {
            return Err(ClientError::Tls(format!(
                "{server_name}: the connection is not plain text"
            )));
        };
        sixstack_tls::client::handshake(s, server_name, config)
            .await
            .map(|t| ClientStream::Tls(Box::new(t)))
            .map_err(|e| ClientError::Tls(format!("TLS handshake with {server_name}: {e}")))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            ClientStream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            ClientStream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            ClientStream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            ClientStream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

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
