//! Two shards on a two-queue lab link: passive flows spread over both shards, client
//! connections opened from both shards come back to their shard (emulated RSS) or are
//! handed over (no RSS) — every byte echoed exactly either way.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sixstack::config::Config;
use sixstack_stack::{IpAddress, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sixstack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sixstack"))
}

/// 200 connections from the kernel peer to `sixstack run` with two shards; the counters
/// come from `sixstack stats --json` over the control socket.
#[test]
fn two_shards_serve_200_peer_connections() {
    let g = LabGuard::new(false);
    let text = sixstack::lab_config(&g.lab, None);
    let socket = sixstack::lab_control_socket(&g.lab);
    let path = std::env::temp_dir().join(format!("sixstack-shards-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let mut child = sixstack()
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let started = Instant::now();
    while !std::path::Path::new(&socket).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no control socket"
        );
        assert!(child.try_wait().unwrap().is_none(), "appliance exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut child = Kill(child);
    let stack = g.lab.stack4();
    let ok = in_ns(&g.lab.peer_ns, move || {
        let mut conns = Vec::new();
        for i in 0..200 {
            let mut s = connect_retry(sa(stack, 7));
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&pattern(1000 + i, i as u64)).unwrap();
            conns.push(s);
        }
        let mut ok = 0;
        for (i, s) in conns.iter_mut().enumerate() {
            let mut got = vec![0u8; 1000 + i];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, pattern(1000 + i, i as u64), "connection {i}");
            ok += 1;
        }
        ok
    });
    assert_eq!(ok, 200);
    std::thread::sleep(Duration::from_millis(300));
    let out = sixstack()
        .args(["stats", "--json", "--socket", &socket])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{v}");
    let accepted: Vec<u64> = shards
        .iter()
        .map(|s| s["conns_accepted"].as_u64().unwrap())
        .collect();
    assert_eq!(accepted.iter().sum::<u64>(), 200, "{accepted:?}");
    assert!(
        accepted.iter().all(|&a| a > 0),
        "both shards served: {accepted:?}"
    );
    let out_: u64 = shards
        .iter()
        .map(|s| s["handoffs_out"].as_u64().unwrap())
        .sum();
    let in_: u64 = shards
        .iter()
        .map(|s| s["handoffs_in"].as_u64().unwrap())
        .sum();
    assert_eq!(out_, in_, "every frame handed over was taken in: {v}");
    assert!(v["np_ratio"].as_f64().unwrap() < 0.5, "{v}");
    let requests: u64 = shards
        .iter()
        .map(|s| s["request_us"]["count"].as_u64().unwrap())
        .sum();
    assert!(
        requests >= 200,
        "the echo service reports request latency: {v}"
    );
    assert!(
        shards
            .iter()
            .all(|s| s["loop_us"]["count"].as_u64().unwrap() > 0),
        "{v}"
    );
    Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success());
    let _ = std::fs::remove_file(path);
}

/// Runs 100 client connections from each of the two shards to a kernel echo server in
/// the peer namespace; returns the shards' final counters.
fn clients_from_both_shards(rss: &str) -> Vec<sixstack_stack::ShardStats> {
    let g = LabGuard::new(false);
    let port = in_ns(&g.lab.peer_ns, || {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(200) {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).unwrap_or(0);
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    });
    if rss == "lab" {
        g.emulate_rss();
    }
    let text = sixstack::lab_config(&g.lab, None)
        .replace("netns = ", &format!("rss = \"{rss}\"\nnetns = "));
    let cfg = Config::parse(&text, "test").unwrap();
    let peer = IpAddress::from(g.lab.peer4());
    let (tx, rx) = std::sync::mpsc::channel::<Result<usize, String>>();
    let tx = Arc::new(Mutex::new(tx));
    let running = sixstack::app::start(
        cfg,
        Arc::new(move |net: &sixstack_stack::Net, shard| {
            let tx = tx.lock().unwrap().clone();
            let net = net.clone();
            net.clone().spawn(async move {
                let mut ok = 0;
                for i in 0..100usize {
                    let r: std::io::Result<bool> = async {
                        let mut s = TcpStream::connect(&net, (peer, port)).await?;
                        let msg = pattern(100 + i, (shard as u64) << 32 | i as u64);
                        s.write_all(&msg).await?;
                        let mut back = vec![0u8; msg.len()];
                        s.read_exact(&mut back).await?;
                        s.shutdown().await?;
                        Ok(back == msg)
                    }
                    .await;
                    match r {
                        Ok(true) => ok += 1,
                        Ok(false) => {
                            let _ = tx.send(Err(format!("shard {shard} conn {i}: bytes differ")));
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("shard {shard} conn {i}: {e}")));
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(ok));
            });
        }),
    )
    .unwrap();
    assert_eq!(running.placement().len(), 2);
    for _ in 0..2 {
        let r = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(r, Ok(100));
    }
    running.shutdown(Duration::from_secs(3)).unwrap()
}

#[test]
fn client_connections_without_rss_are_handed_over() {
    let stats = clients_from_both_shards("off");
    let handed: u64 = stats.iter().map(|s| s.steer.handoffs_out).sum();
    let taken: u64 = stats.iter().map(|s| s.steer.handoffs_in).sum();
    let left: u64 = stats.iter().map(|s| s.steer.handoff_dropped).sum();
    assert!(handed > 0, "{stats:?}");
    // Every frame handed over was taken in, or counted as left over at shutdown.
    assert_eq!(handed, taken + left, "{stats:?}");
    assert_eq!(stats.iter().map(|s| s.net.tcp_connected).sum::<u64>(), 200);
}

#[test]
fn client_connections_with_emulated_rss_stay_on_their_shard() {
    let stats = clients_from_both_shards("lab");
    let tcp_handoffs: u64 = stats.iter().map(|s| s.steer.handoffs_out).sum();
    assert_eq!(tcp_handoffs, 0, "{stats:?}");
    assert_eq!(stats.iter().map(|s| s.net.tcp_connected).sum::<u64>(), 200);
}

/// A service pinned to shard 0: connections whose frames land on shard 1's queue are
/// handed to shard 0 (veth has no n-tuple rules), and every echo is exact.
#[test]
fn pinned_service_runs_on_its_shard_only() {
    let g = LabGuard::new(false);
    let text = sixstack::lab_config(&g.lab, None).replace(
        "[[service]]\nkind = \"echo\"\nport = 7\n",
        "[[service]]\nkind = \"echo\"\nport = 7\nshards = [0]\n",
    );
    assert!(text.contains("shards = [0]"));
    let cfg = Config::parse(&text, "test").unwrap();
    let services = cfg.clone();
    let ctx = sixstack::app::service_context(&cfg).unwrap();
    let running = sixstack::app::start(
        cfg,
        Arc::new(move |net: &sixstack_stack::Net, shard| {
            sixstack::app::start_services(net, &services, shard, &ctx)
        }),
    )
    .unwrap();
    assert!(running
        .services()
        .iter()
        .any(|s| s == "echo tcp+udp/7 on shards [0]"));
    let stack = g.lab.stack4();
    let ok = in_ns(&g.lab.peer_ns, move || {
        let mut ok = 0;
        for i in 0..100 {
            let mut s = connect_retry(sa(stack, 7));
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let msg = pattern(500 + i, i as u64);
            s.write_all(&msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, msg);
            ok += 1;
        }
        ok
    });
    assert_eq!(ok, 100);
    let stats = running.shutdown(Duration::from_secs(3)).unwrap();
    assert_eq!(stats[0].net.tcp_accepted, 100, "{stats:?}");
    assert_eq!(stats[1].net.tcp_accepted, 0, "{stats:?}");
    assert!(
        stats[1].steer.handoffs_out > 0,
        "some flows arrived on queue 1: {stats:?}"
    );
}
