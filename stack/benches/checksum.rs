//! Measures smoltcp's Internet checksum as the stack uses it: the raw RFC 1071 sum
//! (`wire::checksum::data`) over 64 B and 1500 B, filling and verifying a TCP/IPv4 checksum
//! (pseudo-header included) on segments with 64 B and 1460 B (full-MSS) payloads, and the
//! IPv4 header checksum.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sixstack_stack::smoltcp::phy::ChecksumCapabilities;
use sixstack_stack::smoltcp::wire::{
    checksum, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};
use sixstack_stack::{IpAddress, Ipv4Address};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A TCP segment (20 B header, checksum filled) carrying `payload_len` bytes.
fn tcp_segment(src: &IpAddress, dst: &IpAddress, payload_len: usize) -> Vec<u8> {
    let payload = pattern(payload_len);
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
        payload: &payload,
    };
    let mut buf = vec![0u8; tcp.buffer_len()];
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut buf[..]),
        src,
        dst,
        &ChecksumCapabilities::default(),
    );
    buf
}

fn bench_data(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum_data");
    for len in [64usize, 1500] {
        let buf = pattern(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("{len}B"), |b| {
            b.iter(|| checksum::data(black_box(&buf)))
        });
    }
    group.finish();
}

fn bench_tcp(c: &mut Criterion) {
    let src = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1));
    let dst = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2));
    let mut group = c.benchmark_group("tcp_v4_checksum");
    for payload in [64usize, 1460] {
        let mut seg = tcp_segment(&src, &dst, payload);
        assert!(TcpPacket::new_checked(&seg[..])
            .unwrap()
            .verify_checksum(&src, &dst));
        group.throughput(Throughput::Bytes(seg.len() as u64));
        group.bench_function(format!("fill/{payload}B"), |b| {
            b.iter(|| {
                let mut p = TcpPacket::new_unchecked(black_box(&mut seg[..]));
                p.fill_checksum(&src, &dst);
                p.checksum()
            })
        });
        group.bench_function(format!("verify/{payload}B"), |b| {
            b.iter(|| TcpPacket::new_unchecked(black_box(&seg[..])).verify_checksum(&src, &dst))
        });
    }
    group.finish();
}

fn bench_ipv4_header(c: &mut Criterion) {
    let mut buf = [0u8; 20];
    Ipv4Repr {
        src_addr: Ipv4Address::new(10, 0, 0, 1),
        dst_addr: Ipv4Address::new(10, 0, 0, 2),
        next_header: IpProtocol::Tcp,
        payload_len: 0,
        hop_limit: 64,
    }
    .emit(
        &mut Ipv4Packet::new_unchecked(&mut buf[..]),
        &ChecksumCapabilities::default(),
    );
    c.bench_function("ipv4_header_checksum/fill", |b| {
        b.iter(|| {
            let mut p = Ipv4Packet::new_unchecked(black_box(&mut buf[..]));
            p.fill_checksum();
            p.checksum()
        })
    });
}

criterion_group!(benches, bench_data, bench_tcp, bench_ipv4_header);
criterion_main!(benches);
