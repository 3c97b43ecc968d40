//! Echo requests from the stack (`sixstack ping`): ICMPv4 and ICMPv6.
//! Echo *replies* to others' pings are answered by smoltcp itself.

use std::future::poll_fn;
use std::io;
use std::task::Poll;
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{
    Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv6Message, Icmpv6Packet, Icmpv6Repr, IpAddress,
};

use crate::{timeout, Net};

/// One answered echo request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingReply {
    /// Who answered.
    pub from: IpAddress,
    /// The sequence number that was answered.
    pub seq: u16,
    /// Bytes of echo payload.
    pub bytes: usize,
    /// Round-trip time on shard time.
    pub rtt: Duration,
}

impl Net {
    /// Sends one echo request of `payload` bytes to `dst` and waits up to `limit` for the
    /// reply. A missing reply is `TimedOut`.
    pub async fn ping(
        &self,
        dst: IpAddress,
        seq: u16,
        payload: usize,
        limit: Duration,
    ) -> io::Result<PingReply> {
        let ident = {
            let mut core = self.core();
            core.ping_ident = core.ping_ident.wrapping_add(1);
            let n = u16::try_from(core.shards.clamp(1, 256)).unwrap_or(1);
            let shard = u16::try_from(core.shard).unwrap_or(0);
            // The low byte names the shard, so a reply landing elsewhere finds its way back.
            0x5300 | ((core.ping_ident % (256 / n)) * n + shard)
        };
        let handle = {
            let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 8192]);
            let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 8192]);
            let mut s = icmp::Socket::new(rx, tx);
            s.bind(icmp::Endpoint::Ident(ident))
                .map_err(|e| io::Error::other(format!("icmp bind: {e}")))?;
            self.core().sockets.add(s)
        };
        let guard = Remove { net: self, handle };
        let data: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
        let caps = ChecksumCapabilities::default();
        {
            let mut core = self.core();
            let core = &mut *core;
            let s = core.sockets.get_mut::<icmp::Socket>(handle);
            match dst {
                IpAddress::Ipv4(_) => {
                    let repr = Icmpv4Repr::EchoRequest {
                        ident,
                        seq_no: seq,
                        data: &data,
                    };
                    let buf = s
                        .send(repr.buffer_len(), dst)
                        .map_err(|e| io::Error::other(format!("icmp send: {e}")))?;
                    repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                }
                IpAddress::Ipv6(d) => {
                    let src = core.iface.get_source_address_ipv6(&d);
                    let repr = Icmpv6Repr::EchoRequest {
                        ident,
                        seq_no: seq,
                        data: &data,
                    };
                    let buf = s
                        .send(repr.buffer_len(), dst)
                        .map_err(|e| io::Error::other(format!("icmp send: {e}")))?;
                    repr.emit(&src, &d, &mut Icmpv6Packet::new_unchecked(buf), &caps);
                }
            }
        }
        let sent = self.now();
        let wait = poll_fn(|cx| {
            let mut core = self.core();
            let s = core.sockets.get_mut::<icmp::Socket>(handle);
            while s.can_recv() {
                let Ok((bytes, from)) = s.recv() else { break };
                let answered = match from {
                    IpAddress::Ipv4(_) => Icmpv4Packet::new_checked(bytes).ok().and_then(|p| {
                        (p.msg_type() == Icmpv4Message::EchoReply
                            && p.echo_ident() == ident
                            && p.echo_seq_no() == seq)
                            .then(|| p.data().len())
                    }),
                    IpAddress::Ipv6(_) => Icmpv6Packet::new_checked(bytes).ok().and_then(|p| {
                        (p.msg_type() == Icmpv6Message::EchoReply
                            && p.echo_ident() == ident
                            && p.echo_seq_no() == seq)
                            .then(|| p.payload().len())
                    }),
                };
                if let Some(n) = answered {
                    return Poll::Ready((from, n));
                }
            }
            s.register_recv_waker(cx.waker());
            Poll::Pending
        });
        let (from, bytes) = timeout(self, limit, wait).await.map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, format!("no echo reply from {dst}"))
        })?;
        let rtt = self.now() - sent;
        drop(guard);
        Ok(PingReply {
            from,
            seq,
            bytes,
            rtt: Duration::from_micros(rtt.total_micros()),
        })
    }
}

/// The shard that sent an echo request with this identifier.
pub(crate) fn ident_owner(ident: u16, shards: u32) -> u32 {
    u32::from(ident & 0xff) % shards.max(1)
}

struct Remove<'a> {
    net: &'a Net,
    handle: crate::sockets::Sock,
}

impl Drop for Remove<'_> {
    fn drop(&mut self) {
        self.net.core().sockets.remove(self.handle);
    }
}
