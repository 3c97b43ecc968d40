//! Measures `sixstack_stack::classify`, the per-frame steering look at the Ethernet, IP and
//! TCP/UDP headers, on valid TCP/IPv4, TCP/IPv6, UDP/IPv4 and ARP frames (and a truncated
//! frame, the early-reject path). Frames are emitted once with smoltcp's wire `Repr`s.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sixstack_stack::smoltcp::phy::ChecksumCapabilities;
use sixstack_stack::smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};
use sixstack_stack::{classify, Class, IpAddress, Ipv4Address, Ipv6Address};

const SRC_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const DST_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

/// An Ethernet frame carrying one IP packet whose L4 part (`l4_len` bytes) `emit_l4` writes.
fn ip_frame(
    src: IpAddress,
    dst: IpAddress,
    proto: IpProtocol,
    l4_len: usize,
    emit_l4: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let (ethertype, ip_header) = match src {
        IpAddress::Ipv4(_) => (EthernetProtocol::Ipv4, 20),
        IpAddress::Ipv6(_) => (EthernetProtocol::Ipv6, 40),
    };
    let mut buf = vec![0u8; 14 + ip_header + l4_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SRC_MAC,
        dst_addr: DST_MAC,
        ethertype,
    }
    .emit(&mut eth);
    match (src, dst) {
        (IpAddress::Ipv4(s), IpAddress::Ipv4(d)) => {
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: l4_len,
                hop_limit: 64,
            }
            .emit(&mut ip, &ChecksumCapabilities::default());
            emit_l4(ip.payload_mut());
        }
        (IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
            let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
            Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: l4_len,
                hop_limit: 64,
            }
            .emit(&mut ip);
            emit_l4(ip.payload_mut());
        }
        _ => panic!("mixed address families"),
    }
    buf
}

/// A TCP data segment (ACK|PSH) with `payload`.
fn tcp_frame(src: IpAddress, dst: IpAddress, payload: &[u8]) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: 40_001,
        dst_port: 7,
        control: TcpControl::Psh,
        seq_number: TcpSeqNumber(1_000),
        ack_number: Some(TcpSeqNumber(2_000)),
        window_len: 64_240,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    ip_frame(src, dst, IpProtocol::Tcp, tcp.buffer_len(), |l4| {
        tcp.emit(
            &mut TcpPacket::new_unchecked(l4),
            &src,
            &dst,
            &ChecksumCapabilities::default(),
        );
    })
}

fn udp_frame(src: IpAddress, dst: IpAddress, payload: &[u8]) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: 40_002,
        dst_port: 7,
    };
    ip_frame(src, dst, IpProtocol::Udp, 8 + payload.len(), |l4| {
        udp.emit(
            &mut UdpPacket::new_unchecked(l4),
            &src,
            &dst,
            payload.len(),
            |p| p.copy_from_slice(payload),
            &ChecksumCapabilities::default(),
        );
    })
}

fn arp_frame() -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: SRC_MAC,
        source_protocol_addr: Ipv4Address::new(10, 0, 0, 1),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Address::new(10, 0, 0, 2),
    };
    let mut buf = vec![0u8; 14 + arp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SRC_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    buf
}

fn bench_classify(c: &mut Criterion) {
    let a4 = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1));
    let b4 = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2));
    let a6 = IpAddress::Ipv6(Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
    let b6 = IpAddress::Ipv6(Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
    let payload = [0x5au8; 64];
    let tcp4 = tcp_frame(a4, b4, &payload);
    let frames: [(&str, Vec<u8>); 5] = [
        ("tcp_v4", tcp4.clone()),
        ("tcp_v6", tcp_frame(a6, b6, &payload)),
        ("udp_v4", udp_frame(a4, b4, &payload)),
        ("arp", arp_frame()),
        ("truncated", tcp4[..30].to_vec()),
    ];
    // The frames must take the paths their names say, or the figures mean nothing.
    for (name, frame) in &frames {
        let class = classify(frame);
        let ok = match *name {
            "tcp_v4" | "tcp_v6" => {
                matches!(class, Class::Tcp { syn_only: false, key } if key.local_port == 7)
            }
            "udp_v4" => matches!(class, Class::Udp { key } if key.remote_port == 40_002),
            "arp" => class == Class::Neighbor,
            _ => class == Class::Local,
        };
        assert!(ok, "{name}: classified as {class:?}");
    }
    let mut group = c.benchmark_group("classify");
    for (name, frame) in &frames {
        group.bench_function(*name, |b| b.iter(|| classify(black_box(frame))));
    }
    group.finish();
}

criterion_group!(benches, bench_classify);
criterion_main!(benches);
