//! A control or data connection that is plain or TLS: the control connection changes from
//! one to the other on AUTH TLS, a data connection is TLS under PROT P.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use sixstack_stack::smoltcp::wire::IpEndpoint;
use sixstack_stack::TcpStream;
use sixstack_tls::tokio_rustls::server::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection of an FTP session.
pub enum Stream {
    /// Clear text.
    Plain(TcpStream),
    /// TLS (server side).
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken for an upgrade that failed.
    Gone,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
            Stream::Gone => "Stream::Gone",
        })
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl Stream {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(t) => Some(t),
            Stream::Tls(t) => Some(t.get_ref().0),
            Stream::Gone => None,
        }
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> Option<IpEndpoint> {
        self.tcp().and_then(TcpStream::local_addr)
    }

    /// Resets the connection.
    pub fn abort(&mut self) {
        match self {
            Stream::Plain(t) => t.abort(),
            Stream::Tls(t) => t.get_mut().0.abort(),
            Stream::Gone => {}
        }
    }

    /// Waits until everything written has been acknowledged.
    pub async fn drain(&self) -> io::Result<()> {
        match self.tcp() {
            Some(t) => t.drain().await,
            None => Err(gone()),
        }
    }

    /// Whether the TLS session was resumed (false for plain).
    pub fn resumed(&self) -> bool {
        match self {
            Stream::Tls(t) => sixstack_tls::server::SessionInfo::of(t.get_ref().1).resumed,
            _ => false,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_read(cx, buf),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_write(cx, buf),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_flush(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(t) => Pin::new(t).poll_shutdown(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}
