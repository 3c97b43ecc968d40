//! [`Transport`] over sixstack's own sockets, for a client running as a task on a shard.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sixstack_stack::{IpAddress, IpEndpoint, ListenOptions, Net, TcpListener, TcpStream};

use crate::Transport;

/// Ports a client listens on for data and back connections.
const LISTEN_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// The stack of the shard the client runs on.
#[derive(Debug, Clone)]
pub struct StackTransport {
    net: Net,
}

impl StackTransport {
    /// The transport of the shard `net` belongs to.
    pub fn new(net: &Net) -> StackTransport {
        StackTransport { net: net.clone() }
    }

    /// The shard's handle.
    pub fn net(&self) -> &Net {
        &self.net
    }
}

fn socket_addr(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(e.addr.into(), e.port)
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is closed")
}

impl Transport for StackTransport {
    type Stream = TcpStream;
    type Listener = TcpListener;

    async fn connect(&self, to: SocketAddr, limit: Duration) -> io::Result<Self::Stream> {
        let remote = IpEndpoint::new(IpAddress::from(to.ip()), to.port());
        let s = TcpStream::connect_timeout(&self.net, remote, limit)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {to}: {e}")))?;
        s.set_nodelay(true);
        Ok(s)
    }

    async fn listen(&self, local: IpAddr) -> io::Result<(Self::Listener, SocketAddr)> {
        let opts = ListenOptions {
            backlog: 2,
            ..ListenOptions::from_config(&self.net)
        };
        let l = TcpListener::bind_owned_port(
            &self.net,
            Some(IpAddress::from(local)),
            LISTEN_PORTS,
            opts,
        )?;
        let port = l.local_endpoint().port;
        Ok((l, SocketAddr::new(local, port)))
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, peer) = listener.accept().await?;
        s.set_nodelay(true);
        Ok((s, socket_addr(peer)))
    }

    fn local_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr> {
        stream
            .local_addr()
            .map(socket_addr)
            .ok_or_else(not_connected)
    }

    fn peer_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr> {
        stream
            .peer_addr()
            .map(socket_addr)
            .ok_or_else(not_connected)
    }

    async fn sleep(&self, d: Duration) {
        self.net.sleep(d).await
    }

    fn name(&self) -> &'static str {
        "sixstack"
    }
}
