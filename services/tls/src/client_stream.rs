//! A client connection that is plain text or TLS over the same stream, one type so a
//! client's dialogue is written once and STARTTLS / AUTH TLS can upgrade it in place
//! (the FTP and mail clients).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

/// A client connection, plain or TLS.
pub enum ClientStream<S> {
    /// Clear text.
    Plain(S),
    /// TLS.
    Tls(Box<TlsStream<S>>),
    /// Taken for an upgrade that failed: every read and write is an error.
    Closed,
}

impl<S> std::fmt::Debug for ClientStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientStream::Plain(_) => "ClientStream::Plain",
            ClientStream::Tls(_) => "ClientStream::Tls",
            ClientStream::Closed => "ClientStream::Closed",
        })
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientStream<S> {
    /// The stream underneath.
    pub fn tcp(&self) -> Option<&S> {
        match self {
            ClientStream::Plain(s) => Some(s),
            ClientStream::Tls(t) => Some(t.get_ref().0),
            ClientStream::Closed => None,
        }
    }

    /// Whether it runs TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    /// Whether the TLS session was resumed (FTP data connections resume the control
    /// connection's session, as servers that require it check).
    pub fn resumed(&self) -> bool {
        match self {
            ClientStream::Tls(t) => matches!(
                t.get_ref().1.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed)
            ),
            _ => false,
        }
    }

    /// Runs the TLS client handshake for `server_name` over the plain stream; the error
    /// says what failed (a stream that is not plain text is one).
    pub async fn upgrade(
        self,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> Result<ClientStream<S>, String> {
        let ClientStream::Plain(s) = self else {
            return Err(format!("{server_name}: the connection is not plain text"));
        };
        crate::client::handshake(s, server_name, config)
            .await
            .map(|t| ClientStream::Tls(Box::new(t)))
            .map_err(|e| format!("TLS handshake with {server_name}: {e}"))
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
            ClientStream::Closed => Poll::Ready(Err(closed())),
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
            ClientStream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            ClientStream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            ClientStream::Closed => Poll::Ready(Ok(())),
        }
    }
}
