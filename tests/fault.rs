//! The fault link end to end: two shards in one thread on virtual time over a pipe pair,
//! one end's link wrapped with loss, reordering, duplication and corruption both ways; a
//! 1 MiB echo must come back byte-exact, and the faults must really have happened.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use sixstack_drivers::fault::{FaultConfig, FaultDirection, FaultLink, FaultStats};
use sixstack_drivers::pipe::{self, PipeLink};
use sixstack_stack::smoltcp::time::{Duration, Instant};
use sixstack_stack::{IpAddress, Shard, StackConfig, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn stack(host: u8) -> StackConfig {
    let mut c = StackConfig::new([0x02, 0, 0, 0, 0, host]);
    c.ipv4 = Some((std::net::Ipv4Addr::new(10, 0, 0, host), 24));
    c.seed = u64::from(host) * 7919;
    c
}

/// Advances virtual time to the earliest of the shards' deadlines and the fault link's
/// next release (at most 1 ms at a time) until `done` or `limit` of virtual time passed.
fn drive(
    a: &mut Shard<FaultLink<PipeLink>>,
    b: &mut Shard<PipeLink>,
    limit: Duration,
    done: impl Fn() -> bool,
) -> Duration {
    let start = Instant::from_secs(1_000);
    let mut now = start;
    while now < start + limit {
        let na = a.poll_at(now);
        let nb = b.poll_at(now);
        if done() {
            return now - start;
        }
        let soon = [na, nb, a.link().next_release()]
            .into_iter()
            .flatten()
            .min();
        now = match soon {
            Some(t) if t > now => t.min(now + Duration::from_millis(1)),
            _ => now + Duration::from_micros(20),
        };
    }
    panic!("not done within {limit} of virtual time");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Echoes `size` bytes through a link hurt by `faults` both ways; returns what came back
/// and what the fault link did.
fn echo_through(faults: FaultDirection, seed: u64, size: usize) -> (Vec<u8>, FaultStats) {
    let (la, lb) = pipe::pair(1024, 1500);
    let la = FaultLink::new(la, FaultConfig::both(seed, faults)).unwrap();
    let mut a = Shard::new(la, stack(1)).unwrap();
    let mut b = Shard::new(lb, stack(2)).unwrap();
    let nb = b.net();
    nb.spawn(sixstack_basic::serve_tcp(
        nb.clone(),
        sixstack_basic::Kind::Echo,
        7,
    ));
    let na = a.net();
    let result = Rc::new(RefCell::new(None));
    let r2 = result.clone();
    na.spawn({
        let na = na.clone();
        async move {
            let r: std::io::Result<Vec<u8>> = async {
                let mut s = TcpStream::connect(&na, (IpAddress::v4(10, 0, 0, 2), 7)).await?;
                let data = pattern(size);
                let (mut back, mut off) = (Vec::new(), 0);
                let mut buf = vec![0u8; 8192];
                while back.len() < size {
                    if off < size {
                        let end = (off + 4096).min(size);
                        s.write_all(&data[off..end]).await?;
                        off = end;
                        if off == size {
                            s.shutdown().await?;
                        }
                    }
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    back.extend_from_slice(&buf[..n]);
                }
                Ok(back)
            }
            .await;
            *r2.borrow_mut() = Some(r.map_err(|e| e.to_string()));
        }
    });
    let took = drive(&mut a, &mut b, Duration::from_secs(600), || {
        result.borrow().is_some()
    });
    let stats = a.link().fault_stats();
    eprintln!("{size} bytes echoed in {took} of virtual time; {stats:?}");
    let back = result.borrow_mut().take().unwrap().unwrap();
    (back, stats)
}

#[test]
fn one_mib_echo_survives_loss_reordering_duplication_and_corruption() {
    let faults = FaultDirection {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.01,
        corrupt: 0.001,
        ..FaultDirection::default()
    };
    let size = 1 << 20;
    let (back, s) = echo_through(faults, 7, size);
    assert_eq!(back.len(), size);
    assert!(back == pattern(size), "the echo differs");
    for c in [s.rx, s.tx] {
        assert!(c.frames > 500, "{c:?}");
        assert!(c.lost > 0 && c.reordered > 0 && c.duplicated > 0, "{c:?}");
    }
    // At 0.1% over some 2000 frames a corrupted frame is likely but not certain: the test
    // below makes sure of it.
}

#[test]
fn corrupted_frames_are_caught_by_the_checksums() {
    let faults = FaultDirection {
        corrupt: 0.03,
        ..FaultDirection::default()
    };
    let size = 256 * 1024;
    let (back, s) = echo_through(faults, 5, size);
    assert!(
        back == pattern(size),
        "a corrupted byte reached the application"
    );
    assert!(s.rx.corrupted > 0 && s.tx.corrupted > 0, "{s:?}");
}

#[test]
fn delay_and_rate_slow_a_transfer_down_but_it_completes() {
    let faults = FaultDirection {
        delay_ms: 5.0,
        jitter_ms: 1.0,
        rate_mbit: Some(50.0),
        ..FaultDirection::default()
    };
    let size = 256 * 1024;
    let (back, s) = echo_through(faults, 3, size);
    assert!(back == pattern(size));
    assert!(s.rx.delayed > 100 && s.tx.shaped > 0, "{s:?}");
}

#[test]
fn the_same_seed_gives_the_same_faults() {
    let faults = FaultDirection {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.01,
        ..FaultDirection::default()
    };
    let (_, first) = echo_through(faults, 11, 64 * 1024);
    let (_, again) = echo_through(faults, 11, 64 * 1024);
    assert_eq!(first, again);
}
