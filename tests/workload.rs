//! The workload manager against the Linux kernel as its peer (AF_XDP veth lab): bulk
//! uploads beside short echo transactions. The manager ranks the bulk connections below
//! the short ones, their frames wait in the deferred ingress lane, and nothing is lost or
//! reordered (every echo comes back byte-exact, every uploaded byte is counted by the
//! kernel's side as sent and acknowledged); switched off at run time, the priorities go
//! back to where the configuration put them and the lane stays empty.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sixstack::workload_view::{view, ServiceView, WorkloadView};

/// A service's line of the report.
fn service<'a>(v: &'a WorkloadView, name: &str) -> &'a ServiceView {
    v.services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} in {v:?}"))
}

/// Bulk connections: with two shards, some share the echo connection's shard.
const BULK: usize = 8;

#[test]
fn bulk_uploads_are_ranked_below_short_transactions_and_nothing_is_lost() {
    let g = LabGuard::new(false);
    let text = format!(
        "{}\n[workload]\ncicsint = 500\ninterval_ms = 50\n",
        sixstack::lab_config(&g.lab, None)
    );
    let app = start_appliance_with(&text, |_, _| {});
    let board = app.workload();
    let peer = g.lab.peer_ns.clone();
    let ip = IpAddr::from(g.lab.stack4());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let bulk: Vec<_> = (0..BULK)
        .map(|_| {
            let (peer, stop, sent) = (peer.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || {
                in_ns(&peer, move || {
                    let mut s = connect_retry(sa(ip, 9));
                    let chunk = vec![0x5au8; 64 << 10];
                    while !stop.load(Ordering::Relaxed) {
                        s.write_all(&chunk).unwrap();
                        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                    // Everything written reaches the discard service: a clean close.
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty());
                })
            })
        })
        .collect();
    // Short transactions, paced (a few work units an interval: they stay unmanaged).
    let short = |secs: f64| {
        let peer = peer.clone();
        in_ns(&peer, move || {
            let mut s = connect_retry(sa(ip, 7));
            s.set_nodelay(true).unwrap();
            let until = Instant::now() + Duration::from_secs_f64(secs);
            let mut n = 0u64;
            while Instant::now() < until {
                let req = pattern(1024, n);
                s.write_all(&req).unwrap();
                let mut back = vec![0u8; req.len()];
                s.read_exact(&mut back).unwrap();
                assert!(back == req, "transaction {n}: the echo differs");
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let n = short(2.5);
    assert!(n > 50, "only {n} transactions");
    let v = view(&board);
    let discard = service(&v, "discard tcp/9");
    assert!(discard.changes > 0, "bulk tasks demoted: {discard:?}");
    let (lo, _) = discard.priorities.unwrap();
    assert!(lo < 100, "{discard:?}");
    let echo = service(&v, "echo tcp/7");
    assert!(echo.velocity.is_some(), "{echo:?}");
    let deferred: u64 = v.shards.iter().map(|s| s.frames_deferred).sum();
    assert!(deferred > 0, "bulk frames waited in the lane: {v:?}");
    // A large echo through a shard whose lane is busy comes back whole.
    let data = pattern(4 << 20, 7);
    let back = tcp_echo(&peer, sa(ip, 7), data.clone());
    assert!(back == data, "4 MiB echo beside the bulk uploads differs");

    // Off at run time: the given priorities come back, the lane empties and stays so.
    let mut p = board.policy();
    p.enabled = false;
    board.set_policy(p).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let before: u64 = view(&board).shards.iter().map(|s| s.frames_deferred).sum();
    short(0.5);
    let v = view(&board);
    let discard = service(&v, "discard tcp/9");
    assert_eq!(discard.priorities, Some((100, 100)), "{discard:?}");
    assert!(v.shards.iter().all(|s| s.ingress_cut == 0), "{v:?}");
    let after: u64 = v.shards.iter().map(|s| s.frames_deferred).sum();
    assert_eq!(before, after, "no frame deferred with the manager off");

    stop.store(true, Ordering::Relaxed);
    for t in bulk {
        t.join().unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > 0);
    app.stop().unwrap();
}
