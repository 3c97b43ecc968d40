//! UDP for applications: a datagram socket on the shard.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use smoltcp::socket::udp;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use crate::Net;

/// A UDP socket bound to a port of the stack.
pub struct UdpSocket {
    net: Net,
    handle: crate::sockets::Sock,
    port: u16,
    ephemeral: bool,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("port", &self.port)
            .finish()
    }
}

impl UdpSocket {
    /// Binds to `endpoint`; port 0 picks an ephemeral port.
    pub fn bind(net: &Net, endpoint: impl Into<IpListenEndpoint>) -> io::Result<UdpSocket> {
        let mut endpoint = endpoint.into();
        let cfg = net.config();
        let meta = || vec![udp::PacketMetadata::EMPTY; cfg.udp_packets];
        let rx = udp::PacketBuffer::new(meta(), vec![0u8; cfg.udp_buffer]);
        let tx = udp::PacketBuffer::new(meta(), vec![0u8; cfg.udp_buffer]);
        let mut s = udp::Socket::new(rx, tx);
        let mut core = net.core();
        let ephemeral = endpoint.port == 0;
        if ephemeral {
            endpoint.port = core.alloc_port(None).ok_or_else(|| {
                io::Error::new(io::ErrorKind::AddrNotAvailable, "no free ephemeral port")
            })?;
        }
        if let Err(e) = s.bind(endpoint) {
            if ephemeral {
                core.ports.remove(&endpoint.port);
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bind {endpoint}: {e}"),
            ));
        }
        let handle = core.sockets.add(s);
        *core.udp_ports.entry(endpoint.port).or_insert(0) += 1;
        Ok(UdpSocket {
            net: net.clone(),
            handle,
            port: endpoint.port,
            ephemeral,
        })
    }

    /// The bound port.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Queues one datagram to `to`; waits while the send buffer is full.
    pub async fn send_to(&self, data: &[u8], to: impl Into<IpEndpoint>) -> io::Result<usize> {
        let to = to.into();
        poll_fn(|cx| self.poll_send_to(cx, data, to)).await
    }

    /// Poll form of [`UdpSocket::send_to`].
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        to: IpEndpoint,
    ) -> Poll<io::Result<usize>> {
        let mut core = self.net.core();
        let s = core.sockets.get_mut::<udp::Socket>(self.handle);
        if data.len() > s.payload_send_capacity() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram larger than the socket's send buffer",
            )));
        }
        match s.send_slice(data, to) {
            Ok(()) => Poll::Ready(Ok(data.len())),
            Err(udp::SendError::BufferFull) => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("send to {to}: {e}"),
            ))),
        }
    }

    /// Receives one datagram into `buf`; a datagram longer than `buf` is an error
    /// (`InvalidData`) and is dropped.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, IpEndpoint)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Poll form of [`UdpSocket::recv_from`].
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, IpEndpoint)>> {
        let mut core = self.net.core();
        let s = core.sockets.get_mut::<udp::Socket>(self.handle);
        match s.recv_slice(buf) {
            Ok((n, meta)) => Poll::Ready(Ok((n, meta.endpoint))),
            Err(udp::RecvError::Exhausted) => {
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Err(udp::RecvError::Truncated) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram larger than the receive buffer",
            ))),
        }
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut core = self.net.core();
        core.sockets.remove(self.handle);
        if let Some(n) = core.udp_ports.get_mut(&self.port) {
            *n -= 1;
            if *n == 0 {
                core.udp_ports.remove(&self.port);
            }
        }
        if self.ephemeral {
            core.ports.remove(&self.port);
        }
    }
}
