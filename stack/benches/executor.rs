//! Measures the shard's executor through its public API: one idle round of
//! `Shard::poll_at` (the floor every figure below includes), `Net::spawn` of N trivial tasks
//! run to completion, and waking a parked task and running it in the next round.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sixstack_drivers::pipe::{self, PipeLink};
use sixstack_stack::smoltcp::time::{Duration, Instant};
use sixstack_stack::{Shard, StackConfig};

fn shard() -> (Shard<PipeLink>, PipeLink) {
    let (link, peer) = pipe::pair(64, 1500);
    let mut c = StackConfig::new([0x02, 0, 0, 0, 0, 1]);
    c.ipv4 = Some((std::net::Ipv4Addr::new(10, 0, 0, 1), 24));
    (Shard::new(link, c).unwrap(), peer)
}

/// Runs rounds until the shard has nothing due now, so start-up work (NDP, MLD) is done.
fn settle(shard: &mut Shard<PipeLink>, now: &mut Instant) {
    for _ in 0..1_000 {
        *now += Duration::from_millis(10);
        if shard.poll_at(*now).is_none_or(|t| t > *now) {
            return;
        }
    }
}

/// A future that never completes; each poll counts itself and leaves its waker where the
/// benchmark can fire it.
struct Parked {
    polls: Rc<Cell<u64>>,
    waker: Rc<RefCell<Option<Waker>>>,
}

impl Future for Parked {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

fn bench_idle_round(c: &mut Criterion) {
    let (mut shard, _peer) = shard();
    let mut now = Instant::from_secs(1_000);
    settle(&mut shard, &mut now);
    c.bench_function("executor/idle_round", |b| {
        b.iter(|| shard.poll_at(now));
    });
}

fn bench_spawn_run(c: &mut Criterion) {
    let (mut shard, _peer) = shard();
    let net = shard.net();
    let mut now = Instant::from_secs(1_000);
    settle(&mut shard, &mut now);
    let done = Rc::new(Cell::new(0u64));
    let mut group = c.benchmark_group("executor/spawn_run");
    for n in [1u64, 16, 256, 1024] {
        group.throughput(Throughput::Elements(n));
        group.bench_function(n.to_string(), |b| {
            b.iter(|| {
                let target = done.get() + n;
                for _ in 0..n {
                    let d = done.clone();
                    // The handle is dropped: the task still runs (detached).
                    drop(net.spawn(async move { d.set(d.get() + 1) }));
                }
                // 256 task polls per round at most: 1024 tasks take four rounds.
                while done.get() < target {
                    shard.poll_at(now);
                }
            });
        });
    }
    group.finish();
}

fn bench_wake_run(c: &mut Criterion) {
    let (mut shard, _peer) = shard();
    let net = shard.net();
    let mut now = Instant::from_secs(1_000);
    settle(&mut shard, &mut now);
    let polls = Rc::new(Cell::new(0u64));
    let waker = Rc::new(RefCell::new(None::<Waker>));
    drop(net.spawn(Parked {
        polls: polls.clone(),
        waker: waker.clone(),
    }));
    shard.poll_at(now);
    assert_eq!(polls.get(), 1);
    let waker = waker.borrow().clone().unwrap();
    c.bench_function("executor/wake_run", |b| {
        b.iter(|| {
            waker.wake_by_ref();
            shard.poll_at(now)
        });
    });
    // Every wake runs the task exactly once, and a round with no wake does not poll it.
    let before = polls.get();
    waker.wake_by_ref();
    shard.poll_at(now);
    assert_eq!(polls.get(), before + 1);
    shard.poll_at(now);
    assert_eq!(polls.get(), before + 1);
}

criterion_group!(benches, bench_idle_round, bench_spawn_run, bench_wake_run);
criterion_main!(benches);
