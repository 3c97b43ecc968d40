//! [`Transport`] over the kernel's sockets, for a client on a tokio current-thread runtime.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::Transport;

/// The kernel's TCP sockets (tokio). Must be used inside a tokio runtime with I/O and time
/// enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelTransport;

impl Transport for KernelTransport {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn connect(&self, to: SocketAddr, limit: Duration) -> io::Result<Self::Stream> {
        let s = crate::timeout(self, limit, &format!("connecting to {to}"), async {
            tokio::net::TcpStream::connect(to).await
        })
        .await??;
        s.set_nodelay(true)?;
        Ok(s)
    }

    async fn listen(&self, local: IpAddr) -> io::Result<(Self::Listener, SocketAddr)> {
        let l = tokio::net::TcpListener::bind(SocketAddr::new(local, 0)).await?;
        let at = l.local_addr()?;
        Ok((l, at))
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        listener.accept().await
    }

    fn local_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr> {
        stream.local_addr()
    }

    fn peer_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr> {
        stream.peer_addr()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }

    fn name(&self) -> &'static str {
        "kernel"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn listen_accept_connect_and_time_out() {
        block_on(async {
            let t = KernelTransport;
            let (l, at) = t.listen("127.0.0.1".parse().unwrap()).await.unwrap();
            assert_ne!(at.port(), 0);
            let (c, a) = tokio::join!(t.connect(at, Duration::from_secs(2)), t.accept(&l));
            let (mut c, (mut a, _)) = (c.unwrap(), a.unwrap());
            assert_eq!(t.peer_addr(&c).unwrap(), at);
            c.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 5];
            a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            let e = crate::timeout(&t, Duration::from_millis(20), "waiting", t.accept(&l))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
            assert!(e.to_string().contains("waiting"), "{e}");
        });
    }
}
