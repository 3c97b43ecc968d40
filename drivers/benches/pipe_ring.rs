//! Measures the pipe driver's rings through smoltcp's `Device` API: `transmit` + TX token
//! consume + `Link::flush` on one end, `receive` + RX token consume on the other, for one
//! frame at a time and for bursts of 64 (a shard's RX batch). The closures touch only the
//! Ethernet header, so the figures are the rings' cost, not a memcpy of the frame.
//! (An AF_XDP ring bench would need root and a veth; it is not here.)
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sixstack_drivers::pipe::{self, PipeLink};
use sixstack_drivers::Link;
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;

const HEADER: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];

/// Sends `n` frames of `len` bytes from `tx` and receives them on `rx`.
fn round(tx: &mut PipeLink, rx: &mut PipeLink, n: usize, len: usize) -> usize {
    let now = Instant::ZERO;
    for _ in 0..n {
        let tok = tx.transmit(now).unwrap();
        tok.consume(len, |buf| buf[..HEADER.len()].copy_from_slice(&HEADER));
    }
    tx.flush().unwrap();
    let mut seen = 0;
    for _ in 0..n {
        let (tok, _reply) = rx.receive(now).unwrap();
        seen += tok.consume(|frame| usize::from(black_box(frame)[12]) + frame.len());
    }
    seen
}

fn bench_pipe(c: &mut Criterion) {
    let (mut a, mut b) = pipe::pair(1024, 1500);
    let mut group = c.benchmark_group("pipe_ring");
    for len in [64usize, 1514] {
        assert_eq!(round(&mut a, &mut b, 1, len), 8 + len);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("frame/{len}B"), |bench| {
            bench.iter(|| round(&mut a, &mut b, 1, len))
        });
        group.throughput(Throughput::Elements(64));
        group.bench_function(format!("burst64/{len}B"), |bench| {
            bench.iter(|| round(&mut a, &mut b, 64, len))
        });
    }
    group.finish();
    let s = a.stats();
    assert_eq!((s.tx_dropped, b.stats().rx_dropped), (0, 0));
    assert_eq!(b.stats().rx_frames, s.tx_frames);
}

criterion_group!(benches, bench_pipe);
criterion_main!(benches);
