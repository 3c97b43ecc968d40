//! Measures the AF_XDP ring code itself: a batch of `push` + `submit` on the producer side,
//! then `peek` + `advance` per entry + `release` on the consumer side, for batches of 1, 16
//! and 64 entries, over `u64` addresses (fill/completion rings) and `xdp_desc` (RX/TX).
//! The ring is one memfd in the kernel's layout mapped twice, as the kernel and userspace
//! map a real ring; no socket and no root are needed, and no kernel runs on the far side,
//! so the figures are the userspace index/entry cost only (one thread, caches warm).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sixstack_drivers::afxdp::ring_loopback::{AddrRingLoopback, DescRingLoopback};

/// The default RX/TX ring size (and the fill ring's with the default 4096 frames).
const RING: u32 = 2048;

/// Sum of the `n` sequence numbers from `first`.
fn sum(first: u64, n: u32) -> u64 {
    (first..first + u64::from(n)).sum()
}

fn bench_rings(c: &mut Criterion) {
    let mut group = c.benchmark_group("afxdp_ring");
    for batch in [1u32, 16, 64] {
        group.throughput(Throughput::Elements(batch.into()));

        let mut addr = AddrRingLoopback::new(RING).unwrap();
        assert_eq!(addr.produce(batch), batch);
        assert_eq!(addr.consume(batch), sum(0, batch));
        group.bench_function(format!("addr/{batch}"), |b| {
            b.iter(|| {
                let n = addr.produce(black_box(batch));
                black_box(addr.consume(n))
            })
        });
        // A ring that leaked slots would be full by now.
        assert_eq!(addr.produce(RING), RING);

        let mut desc = DescRingLoopback::new(RING).unwrap();
        assert_eq!(desc.produce(batch), batch);
        assert_eq!(desc.consume(batch), sum(0, batch));
        group.bench_function(format!("desc/{batch}"), |b| {
            b.iter(|| {
                let n = desc.produce(black_box(batch));
                black_box(desc.consume(n))
            })
        });
        assert_eq!(desc.produce(RING), RING);
    }
    group.finish();
}

criterion_group!(benches, bench_rings);
criterion_main!(benches);
