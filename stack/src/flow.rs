//! Flow classification of received frames: a zero-copy look at the Ethernet, IP and
//! TCP/UDP headers (smoltcp's checked views, so no malformed frame can panic it) that says
//! which connection a frame belongs to. The shard uses it to find the flow's owner before
//! smoltcp sees the frame.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UdpPacket,
};

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A flow seen from the stack: its own address/port and the remote's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// TCP or UDP.
    pub proto: Proto,
    /// The stack's address.
    pub local: IpAddress,
    /// The stack's port.
    pub local_port: u16,
    /// The remote address.
    pub remote: IpAddress,
    /// The remote port.
    pub remote_port: u16,
}

/// What a received frame is, as far as steering cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A TCP segment; `syn_only` when it opens a connection (SYN without ACK).
    Tcp {
        /// The flow.
        key: FlowKey,
        /// SYN set, ACK clear.
        syn_only: bool,
    },
    /// A UDP datagram.
    Udp {
        /// The flow.
        key: FlowKey,
    },
    /// ARP or IPv6 neighbor discovery: every shard needs what it teaches (each has its own
    /// neighbor cache), so it is handled here and copied to the other shards.
    Neighbor,
    /// An ICMP or ICMPv6 echo reply: it belongs to the shard whose ping used `ident`.
    EchoReply {
        /// The echo identifier.
        ident: u16,
    },
    /// Anything else: other ICMP, fragments, unknown or malformed frames. Handled by the shard
    /// that received it.
    Local,
}

/// Classifies an Ethernet frame received by the stack.
pub fn classify(frame: &[u8]) -> Class {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Class::Local;
    };
    let (proto, src, dst, l4): (IpProtocol, IpAddress, IpAddress, &[u8]) = match eth.ethertype() {
        EthernetProtocol::Arp => return Class::Neighbor,
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return Class::Local;
            };
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Class::Local;
            }
            (
                ip.next_header(),
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
                ip.payload(),
            )
        }
        EthernetProtocol::Ipv6 => {
            let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                return Class::Local;
            };
            (
                ip.next_header(),
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
                ip.payload(),
            )
        }
        _ => return Class::Local,
    };
    match proto {
        IpProtocol::Tcp => {
            let Ok(t) = TcpPacket::new_checked(l4) else {
                return Class::Local;
            };
            Class::Tcp {
                key: FlowKey {
                    proto: Proto::Tcp,
                    local: dst,
                    local_port: t.dst_port(),
                    remote: src,
                    remote_port: t.src_port(),
                },
                syn_only: t.syn() && !t.ack(),
            }
        }
        IpProtocol::Udp => {
            let Ok(u) = UdpPacket::new_checked(l4) else {
                return Class::Local;
            };
            Class::Udp {
                key: FlowKey {
                    proto: Proto::Udp,
                    local: dst,
                    local_port: u.dst_port(),
                    remote: src,
                    remote_port: u.src_port(),
                },
            }
        }
        IpProtocol::Icmp if l4.len() >= 8 && l4[0] == 0 => Class::EchoReply {
            ident: u16::from_be_bytes([l4[4], l4[5]]),
        },
        IpProtocol::Icmpv6 if l4.len() >= 8 && l4[0] == 129 => Class::EchoReply {
            ident: u16::from_be_bytes([l4[4], l4[5]]),
        },
        // Router solicitation/advertisement, neighbor solicitation/advertisement, redirect.
        IpProtocol::Icmpv6 if matches!(l4.first(), Some(133..=137)) => Class::Neighbor,
        _ => Class::Local,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tcp4_syn() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&7u16.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x02;
        f
    }

    #[test]
    fn tcp_syn_is_classified() {
        match classify(&tcp4_syn()) {
            Class::Tcp { key, syn_only } => {
                assert!(syn_only);
                assert_eq!(key.local_port, 7);
                assert_eq!(key.remote_port, 40000);
                assert_eq!(key.local, IpAddress::v4(10, 0, 0, 2));
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn every_truncation_is_local_or_valid() {
        let f = tcp4_syn();
        for n in 0..f.len() {
            assert_eq!(classify(&f[..n]), Class::Local, "{n} bytes");
        }
    }
}
