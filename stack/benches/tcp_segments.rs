//! Measures TCP through two whole stacks: two `Shard`s joined by the in-memory pipe on
//! virtual time, `sixstack_basic`'s echo server on one and a client task on the other, one
//! connection kept open across iterations. (a) one 1-byte request/response round trip,
//! (b) a 64 KiB request echoed back in full (full duplex: the client writes and reads in the
//! same task). Every figure includes all rounds of both shards (ingress steering, smoltcp,
//! executor, egress, pipe) that the exchange needs; setup and connect are outside the loop.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sixstack_drivers::pipe::{self, PipeLink};
use sixstack_stack::smoltcp::time::{Duration, Instant};
use sixstack_stack::{IpAddress, Shard, StackConfig, TcpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

fn cfg(host: u8) -> StackConfig {
    let mut c = StackConfig::new([0x02, 0, 0, 0, 0, host]);
    c.ipv4 = Some((std::net::Ipv4Addr::new(10, 0, 0, host), 24));
    c.seed = u64::from(host) * 7919;
    c
}

/// What the benchmark and the client task share: exchanges asked for and finished.
#[derive(Default)]
struct Ctl {
    connected: Cell<bool>,
    wanted: Cell<u64>,
    done: Cell<u64>,
    waker: RefCell<Option<Waker>>,
}

/// Writes `data` and reads as many bytes back, both directions at once.
async fn exchange(s: &mut TcpStream, data: &[u8], buf: &mut [u8]) -> io::Result<()> {
    let (mut sent, mut got) = (0, 0);
    poll_fn(|cx| {
        while sent < data.len() {
            match Pin::new(&mut *s).poll_write(cx, &data[sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        while got < data.len() {
            let mut rb = ReadBuf::new(buf);
            match Pin::new(&mut *s).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                }
                Poll::Ready(Ok(())) => got += rb.filled().len(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

/// Two shards, an echo server on `b`, and a client on `a` with one open connection that
/// exchanges `size` bytes each time the benchmark asks.
struct Rig {
    a: Shard<PipeLink>,
    b: Shard<PipeLink>,
    now: Instant,
    ctl: Rc<Ctl>,
}

impl Rig {
    fn new(size: usize) -> Rig {
        let (la, lb) = pipe::pair(1024, 1500);
        let a = Shard::new(la, cfg(1)).unwrap();
        let b = Shard::new(lb, cfg(2)).unwrap();
        let nb = b.net();
        drop(nb.spawn(sixstack_basic::serve_tcp(
            nb.clone(),
            sixstack_basic::Kind::Echo,
            7,
        )));
        let ctl = Rc::new(Ctl::default());
        let na = a.net();
        let (na2, c2) = (na.clone(), ctl.clone());
        drop(na.spawn(async move {
            let mut s = TcpStream::connect(&na2, (IpAddress::v4(10, 0, 0, 2), 7))
                .await
                .unwrap();
            s.set_nodelay(true);
            c2.connected.set(true);
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                poll_fn(|cx| {
                    if c2.wanted.get() > c2.done.get() {
                        Poll::Ready(())
                    } else {
                        *c2.waker.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                exchange(&mut s, &data, &mut buf).await.unwrap();
                c2.done.set(c2.done.get() + 1);
            }
        }));
        let mut rig = Rig {
            a,
            b,
            now: Instant::from_secs(1_000),
            ctl,
        };
        rig.drive_until(|c| c.connected.get());
        // Warm up: the first exchanges grow buffers and settle the windows.
        for _ in 0..8 {
            rig.one();
        }
        rig
    }

    /// Runs both shards on virtual time until `done`: a round each, then time jumps to the
    /// earlier of their next deadlines (at most 1 ms ahead), or 20 µs when neither has one.
    fn drive_until(&mut self, done: impl Fn(&Ctl) -> bool) {
        for _ in 0..1_000_000 {
            let na = self.a.poll_at(self.now);
            let nb = self.b.poll_at(self.now);
            if done(&self.ctl) {
                return;
            }
            self.now = match [na, nb].into_iter().flatten().min() {
                Some(t) if t > self.now => t.min(self.now + Duration::from_millis(1)),
                Some(_) => self.now,
                None => self.now + Duration::from_micros(20),
            };
        }
        panic!("exchange not done after a million rounds");
    }

    /// One exchange, start to finish.
    fn one(&mut self) {
        let want = self.ctl.wanted.get() + 1;
        self.ctl.wanted.set(want);
        if let Some(w) = self.ctl.waker.borrow_mut().take() {
            w.wake();
        }
        self.drive_until(|c| c.done.get() >= want);
    }

    /// Runs 100 exchanges outside the timing, checks that each carried its bytes both ways
    /// and prints how many rounds and frames one exchange takes.
    fn report(&mut self, name: &str, size: usize) {
        let (a0, b0) = (self.a.stats(), self.b.stats());
        for _ in 0..100 {
            self.one();
        }
        let (a1, b1) = (self.a.stats(), self.b.stats());
        let tx = |s0: &sixstack_stack::ShardStats, s1: &sixstack_stack::ShardStats| {
            (
                s1.link.tx_frames - s0.link.tx_frames,
                s1.link.tx_bytes - s0.link.tx_bytes,
            )
        };
        let ((af, ab), (bf, bb)) = (tx(&a0, &a1), tx(&b0, &b1));
        assert!(ab >= 100 * size as u64 && bb >= 100 * size as u64);
        eprintln!(
            "{name}: per exchange {:.1} rounds per shard, {:.1} frames a->b, {:.1} frames b->a",
            (a1.rounds - a0.rounds) as f64 / 100.0,
            af as f64 / 100.0,
            bf as f64 / 100.0,
        );
    }
}

fn bench_tcp(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_echo_pipe");
    let mut rig = Rig::new(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("rtt_1B", |b| b.iter(|| rig.one()));
    rig.report("rtt_1B", 1);
    drop(rig);
    let size = 64 * 1024;
    let mut rig = Rig::new(size);
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("echo_64KiB", |b| b.iter(|| rig.one()));
    rig.report("echo_64KiB", size);
    group.finish();
}

criterion_group!(benches, bench_tcp);
criterion_main!(benches);
