//! The sockets a batch client dials through. Every client (FTP, mail, remote execution) is
//! written once against [`Transport`] and runs either on the appliance's own stack
//! ([`StackTransport`], as a task on a shard) or over the kernel's sockets
//! ([`KernelTransport`], on a tokio current-thread runtime) for side-by-side comparison and
//! for hosts without a sixstack link. It is not a general socket layer: only what the
//! clients need (connect, a listener on an ephemeral port for data and back connections,
//! a clock).

#![forbid(unsafe_code)]

mod kernel;
mod stack;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use kernel::KernelTransport;
pub use stack::StackTransport;

/// How long a connect waits before giving up, unless a client says otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects, listens and sleeps on one network stack. Futures are not `Send`: both
/// implementations run a client on one thread.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// A connected TCP stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    /// A listening TCP socket.
    type Listener;

    /// Opens a connection to `to`, failing with `TimedOut` after `limit`.
    async fn connect(&self, to: SocketAddr, limit: Duration) -> io::Result<Self::Stream>;

    /// Listens on an ephemeral port of `local` (an address of this stack; the client takes
    /// it from its control connection's local address) and returns the port's address.
    async fn listen(&self, local: IpAddr) -> io::Result<(Self::Listener, SocketAddr)>;

    /// Waits for the next connection on `listener`.
    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)>;

    /// The local address of a connected stream.
    fn local_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr>;

    /// The remote address of a connected stream.
    fn peer_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr>;

    /// Sleeps for `d` on this stack's clock.
    async fn sleep(&self, d: Duration);

    /// Which stack this is, for log lines (`sixstack` or `kernel`).
    fn name(&self) -> &'static str;
}

/// Runs `fut` for at most `limit` on the transport's clock; `TimedOut` names `what`.
pub async fn timeout<T: Transport, F: Future>(
    t: &T,
    limit: Duration,
    what: &str,
    fut: F,
) -> io::Result<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = std::pin::pin!(t.sleep(limit));
    let done = std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    done.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: no answer within {} s", limit.as_secs_f64()),
        )
    })
}

/// Resolves `host` (an address literal, `[v6]` included, or a name from the system's
/// resolver) with `port`. Names are looked up through the system's resolver (blocking,
/// before any connection of the job exists); the first address is used.
pub fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_whitespace()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a host name or address"),
        ));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn literals_resolve_without_lookup() {
        assert_eq!(
            resolve("10.1.2.3", 21).unwrap(),
            "10.1.2.3:21".parse().unwrap()
        );
        assert_eq!(
            resolve("[fd00::1]", 25).unwrap(),
            "[fd00::1]:25".parse().unwrap()
        );
        assert_eq!(
            resolve("fd00::1", 25).unwrap(),
            "[fd00::1]:25".parse().unwrap()
        );
        assert_eq!(resolve("localhost", 7).unwrap().port(), 7);
    }

    #[test]
    fn nonsense_hosts_are_refused() {
        assert!(resolve("", 21).is_err());
        assert!(resolve("a b", 21).is_err());
        assert!(resolve(&"x".repeat(300), 21).is_err());
    }
}
