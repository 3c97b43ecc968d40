//! sixstack's built-in test services over the stack's sockets: TCP and UDP **echo**
//! (RFC 862), **discard** (RFC 863) and a **chargen**-style source (RFC 864). They are what
//! the interop tests and benchmarks drive. Each is an ordinary async function over
//! `sixstack_stack` sockets; none touches the link or the clock.

#![forbid(unsafe_code)]

use std::io;
use std::time::Duration;

use sixstack_stack::smoltcp::wire::IpListenEndpoint;
use sixstack_stack::{IdleLimit, ListenOptions, Net, TcpListener, TcpStream, UdpSocket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a connection may go without progress (nothing received while the service
/// waits for data, nothing taken while it waits to send) before it is reset, unless the
/// configuration says otherwise.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// Which built-in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sends back what it receives.
    Echo,
    /// Reads and throws away.
    Discard,
    /// Sends a rotating pattern of printable characters until the peer closes.
    Chargen,
}

impl Kind {
    /// The service's conventional name, as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Discard => "discard",
            Kind::Chargen => "chargen",
        }
    }
}

/// Listens on TCP `port` and serves every connection with `kind`, each on its own task,
/// with the [`DEFAULT_IDLE`] limit. Returns only if the listener cannot be created.
pub async fn serve_tcp(net: Net, kind: Kind, port: u16) -> io::Result<()> {
    let opts = ListenOptions::from_config(&net);
    serve_tcp_with(net, kind, port, opts, DEFAULT_IDLE).await
}

/// [`serve_tcp`] with explicit listener options (backlog, per-connection buffers) and idle
/// limit: a connection that makes no progress for `idle` is reset.
pub async fn serve_tcp_with(
    net: Net,
    kind: Kind,
    port: u16,
    opts: ListenOptions,
    idle: Duration,
) -> io::Result<()> {
    let listener = TcpListener::bind_with(&net, IpListenEndpoint { addr: None, port }, opts)?;
    log::info!("tcp {} listening on port {port}", kind.name());
    listener
        .serve_each(|stream, peer| {
            log::debug!("tcp {} connection from {peer}", kind.name());
            let net = net.clone();
            async move {
                if kind == Kind::Echo {
                    stream.set_nodelay(true);
                }
                let mut s = IdleLimit::new(stream, &net, idle);
                let r = match kind {
                    Kind::Echo => echo_inner(&mut s, Some(&net)).await,
                    Kind::Discard => discard(&mut s).await,
                    Kind::Chargen => chargen(&mut s).await,
                };
                match r {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        log::info!("tcp {} connection from {peer}: {e}; reset", kind.name());
                        s.get_mut().abort();
                    }
                    Err(e) => {
                        log::debug!("tcp {} connection from {peer} ended: {e}", kind.name())
                    }
                    Ok(_) => {}
                }
            }
        })
        .await
}

/// Echoes one connection until the peer closes its side, then closes ours.
pub async fn echo(mut stream: TcpStream) -> io::Result<u64> {
    stream.set_nodelay(true);
    echo_inner(&mut stream, None).await
}

/// [`echo`], reporting each request's service time (from the read that brought it to
/// the moment its echo is queued) to the shard's request-latency histogram.
pub async fn echo_reporting(mut stream: TcpStream, net: &Net) -> io::Result<u64> {
    stream.set_nodelay(true);
    echo_inner(&mut stream, Some(net)).await
}

async fn echo_inner<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    net: Option<&Net>,
) -> io::Result<u64> {
    // Cleared once per connection: small enough that a connection-per-request client does
    // not pay for it, large enough for a bulk echo to move a window's worth per read.
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let t = std::time::Instant::now();
        stream.write_all(&buf[..n]).await?;
        if let Some(net) = net {
            net.record_request(t.elapsed());
        }
        total += n as u64;
    }
    stream.shutdown().await?;
    Ok(total)
}

/// Reads one connection to its end and counts the bytes.
pub async fn discard<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    stream.shutdown().await?;
    Ok(total)
}

/// The chargen pattern: 72-character lines of rotating printable ASCII, CRLF-terminated.
pub fn chargen_block(start: usize, out: &mut Vec<u8>) {
    const FIRST: u8 = b' ';
    const COUNT: usize = 95;
    for line in 0..(out.capacity() / 74).max(1) {
        let s = (start + line) % COUNT;
        for i in 0..72 {
            out.push(FIRST + ((s + i) % COUNT) as u8);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Sends the chargen pattern until the peer closes or resets.
pub async fn chargen<S: AsyncWrite + Unpin>(stream: &mut S) -> io::Result<u64> {
    let mut block = Vec::with_capacity(74 * 95);
    chargen_block(0, &mut block);
    let mut total = 0u64;
    loop {
        match stream.write_all(&block).await {
            Ok(()) => total += block.len() as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(total)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Serves `kind` over UDP on `port`: echo answers each datagram, discard drops it,
/// chargen answers each datagram with a line of the pattern (RFC 864's UDP form).
pub async fn serve_udp(net: Net, kind: Kind, port: u16) -> io::Result<()> {
    let sock = UdpSocket::bind(&net, IpListenEndpoint { addr: None, port })?;
    log::info!("udp {} listening on port {port}", kind.name());
    let mut buf = vec![0u8; 65536];
    let mut line = Vec::with_capacity(74);
    chargen_block(0, &mut line);
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
            Err(e) => return Err(e),
        };
        let reply = match kind {
            Kind::Echo => &buf[..n],
            Kind::Discard => continue,
            Kind::Chargen => &line[..],
        };
        if let Err(e) = sock.send_to(reply, from).await {
            log::debug!("udp {} reply to {from}: {e}", kind.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chargen_lines_rotate() {
        let mut b = Vec::with_capacity(74 * 2);
        chargen_block(0, &mut b);
        assert_eq!(b.len(), 148);
        assert_eq!(&b[..3], b" !\"");
        assert_eq!(&b[72..74], b"\r\n");
        assert_eq!(&b[74..76], b"!\"");
        assert!(b
            .iter()
            .all(|c| (32..127).contains(c) || *c == b'\r' || *c == b'\n'));
    }
}
