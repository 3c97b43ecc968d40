//! The appliance against the Linux kernel as its peer, over AF_XDP (veth lab) and over TAP:
//! ping, TCP echo v4/v6 from 1 byte to 64 MiB, 500 concurrent connections, the stack as a
//! TCP client, UDP echo, the stack pinging the peer, garbage frames, and (AF_XDP) the
//! kernel keeping its own traffic on the shared link.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use sixstack_stack::{IpAddress, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `ping` from a namespace: (success, output).
fn ping(ns: &str, to: &str, count: u32, size: u32) -> (bool, String) {
    let (count, size) = (count.to_string(), size.to_string());
    ns_exec(
        ns,
        &[
            "ping", "-c", &count, "-s", &size, "-i", "0.2", "-W", "2", to,
        ],
    )
}

fn ping_both(tap: bool) {
    let g = LabGuard::new(tap);
    let app = start_appliance(&g.lab, |_, _| {});
    let (ok, out) = ping(&g.lab.peer_ns, &g.lab.stack4().to_string(), 3, 56);
    assert!(ok, "ping: {out}");
    assert!(out.contains("3 received"), "{out}");
    let (ok, out) = ping(&g.lab.peer_ns, &g.lab.stack6().to_string(), 3, 56);
    assert!(ok, "ping -6: {out}");
    // A large ping crosses IPv4 fragmentation and reassembly.
    let (ok, out) = ping(&g.lab.peer_ns, &g.lab.stack4().to_string(), 1, 3000);
    assert!(ok, "fragmented ping: {out}");
    app.stop().unwrap();
}

fn tcp_echo_sizes(tap: bool) {
    let g = LabGuard::new(tap);
    let app = start_appliance(&g.lab, |_, _| {});
    let peer = g.lab.peer_ns.clone();
    for (ip, sizes) in [
        (
            IpAddr::from(g.lab.stack4()),
            &[1usize, 1000, 65_536, 1 << 20, 64 << 20][..],
        ),
        (
            IpAddr::from(g.lab.stack6()),
            &[1usize, 1460, 300_000, 8 << 20][..],
        ),
    ] {
        for &n in sizes {
            let data = pattern(n, n as u64);
            let back = tcp_echo(&peer, sa(ip, 7), data.clone());
            assert_eq!(back.len(), data.len(), "{n} bytes to {ip}");
            assert!(back == data, "{n} bytes to {ip}: content differs");
        }
    }
    app.stop().unwrap();
}

fn tcp_many_connections(tap: bool) {
    let g = LabGuard::new(tap);
    let app = start_appliance(&g.lab, |_, _| {});
    let (v4, v6) = (g.lab.stack4(), g.lab.stack6());
    let done = in_ns(&g.lab.peer_ns, move || {
        let mut conns = Vec::new();
        for i in 0..520 {
            let to = if i % 4 == 3 { sa(v6, 7) } else { sa(v4, 7) };
            let s = connect_retry(to);
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            conns.push(s);
        }
        // All 520 are open at once; now every one echoes its own message.
        for (i, s) in conns.iter_mut().enumerate() {
            s.write_all(format!("connection {i} says hello\n").as_bytes())
                .unwrap();
        }
        let mut ok = 0;
        for (i, s) in conns.iter_mut().enumerate() {
            let want = format!("connection {i} says hello\n");
            let mut got = vec![0u8; want.len()];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes());
            ok += 1;
        }
        ok
    });
    assert_eq!(done, 520);
    app.stop().unwrap();
}

fn stack_as_client(tap: bool) {
    let g = LabGuard::new(tap);
    // A kernel echo server in the peer namespace.
    let port = in_ns(&g.lab.peer_ns, || {
        let l = std::net::TcpListener::bind("[::]:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(2) {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
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
    let targets = [
        IpAddress::from(g.lab.peer4()),
        IpAddress::from(g.lab.peer6()),
    ];
    let (app, rx) = on_shard(&g.lab, move |net, tx| {
        let net = net.clone();
        net.clone().spawn(async move {
            for t in targets {
                let r: std::io::Result<bool> = async {
                    let mut s = TcpStream::connect(&net, (t, port)).await?;
                    let data = pattern(1 << 20, 7);
                    let mut back = vec![0u8; data.len()];
                    // Write and read concurrently: the payload exceeds both buffers.
                    let mut off_w = 0;
                    let mut off_r = 0;
                    while off_r < back.len() {
                        if off_w < data.len() {
                            let end = (off_w + 16384).min(data.len());
                            s.write_all(&data[off_w..end]).await?;
                            off_w = end;
                        }
                        while off_r < off_w {
                            let n = s.read(&mut back[off_r..off_w]).await?;
                            if n == 0 {
                                return Ok(false);
                            }
                            off_r += n;
                        }
                    }
                    s.shutdown().await?;
                    Ok(back == data)
                }
                .await;
                tx.send((t, r.map_err(|e| e.to_string()))).unwrap();
            }
        });
    });
    for _ in 0..2 {
        let (t, r) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(r, Ok(true), "stack client to {t}");
    }
    app.stop().unwrap();
}

fn udp_echo_both(tap: bool) {
    let g = LabGuard::new(tap);
    let app = start_appliance(&g.lab, |_, _| {});
    assert_eq!(udp_echo(&g.lab.peer_ns, sa(g.lab.stack4(), 7), 200), 200);
    assert_eq!(udp_echo(&g.lab.peer_ns, sa(g.lab.stack6(), 7), 200), 200);
    app.stop().unwrap();
}

fn stack_pings_peer(tap: bool) {
    let g = LabGuard::new(tap);
    let targets = [
        IpAddress::from(g.lab.peer4()),
        IpAddress::from(g.lab.peer6()),
    ];
    let (app, rx) = on_shard(&g.lab, move |net, tx| {
        let net = net.clone();
        net.clone().spawn(async move {
            for t in targets {
                let mut answered = 0;
                for seq in 0..3 {
                    if net.ping(t, seq, 56, Duration::from_secs(2)).await.is_ok() {
                        answered += 1;
                    }
                }
                tx.send((t, answered)).unwrap();
            }
        });
    });
    for _ in 0..2 {
        let (t, n) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(n >= 2, "{t}: {n} of 3 answered");
    }
    app.stop().unwrap();
}

/// Frames of random bytes, aimed at the stack (its MAC, its addresses at the right
/// offsets) with random lengths, sent by the peer's kernel through an AF_PACKET socket.
fn garbage_frames(tap: bool) {
    let g = LabGuard::new(tap);
    let app = start_appliance(&g.lab, |_, _| {});
    let (ns, ifname) = if tap {
        (g.lab.peer_ns.clone(), g.lab.app_if.clone())
    } else {
        (g.lab.peer_ns.clone(), g.lab.peer_if.clone())
    };
    let mac = if tap {
        sixstack::app::TAP_DEFAULT_MAC
    } else {
        let i = g.lab.app_if.clone();
        in_ns(&g.lab.app_ns, move || {
            sixstack_drivers::netdev::mac_address(&i).unwrap()
        })
    };
    let v4 = g.lab.stack4().octets();
    let v6 = g.lab.stack6().octets();
    let mut lines = String::new();
    let mut seed = 1u64;
    for i in 0..3000u32 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 14 + (seed >> 33) as usize % 1500;
        let mut f = pattern(len, seed);
        f[..6].copy_from_slice(&mac);
        let kind = i % 4;
        let et: [u8; 2] = match kind {
            0 => [0x08, 0x00],
            1 => [0x86, 0xdd],
            2 => [0x08, 0x06],
            _ => [f[12], f[13]],
        };
        f[12..14].copy_from_slice(&et);
        match kind {
            0 if len >= 34 => {
                f[14] = 0x40 | (f[14] & 0x0f);
                f[30..34].copy_from_slice(&v4);
            }
            1 if len >= 54 => {
                f[14] = 0x60 | (f[14] & 0x0f);
                f[38..54].copy_from_slice(&v6);
            }
            2 if len >= 42 => f[38..42].copy_from_slice(&v4),
            _ => {}
        }
        lines += &f.iter().map(|b| format!("{b:02x}")).collect::<String>();
        lines.push('\n');
    }
    let path =
        std::env::temp_dir().join(format!("sixstack-garbage-{}-{ifname}", std::process::id()));
    std::fs::write(&path, lines).unwrap();
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\ns.bind(('{ifname}',0))\nn=0\nfor l in open('{}'):\n    s.send(bytes.fromhex(l.strip())); n+=1\nprint(n)",
        path.display()
    );
    let (ok, out) = ns_exec(&ns, &["python3", "-c", &script]);
    let _ = std::fs::remove_file(&path);
    assert!(ok, "sending garbage: {out}");
    assert_eq!(out.trim(), "3000");
    // The shard is still alive and serving.
    assert!(!app.is_finished(), "the shard stopped");
    let data = pattern(100_000, 3);
    assert_eq!(
        tcp_echo(&g.lab.peer_ns, sa(g.lab.stack4(), 7), data.clone()),
        data
    );
    let (ok, out) = ping(&g.lab.peer_ns, &g.lab.stack6().to_string(), 1, 56);
    assert!(ok, "{out}");
    app.stop().unwrap();
}

mod af_xdp {
    use super::*;
    #[test]
    fn ping_v4_v6() {
        ping_both(false)
    }
    #[test]
    fn tcp_echo_1_byte_to_64_mib() {
        tcp_echo_sizes(false)
    }
    #[test]
    fn tcp_520_concurrent_connections() {
        tcp_many_connections(false)
    }
    #[test]
    fn stack_is_a_tcp_client() {
        stack_as_client(false)
    }
    #[test]
    fn udp_echo_v4_v6() {
        udp_echo_both(false)
    }
    #[test]
    fn stack_pings_the_peer() {
        stack_pings_peer(false)
    }
    #[test]
    fn garbage_frames_do_not_hurt() {
        garbage_frames(false)
    }

    /// The XDP program takes only the stack's frames: the appliance namespace's kernel
    /// still answers on its own address of the same link.
    #[test]
    fn kernel_keeps_its_traffic() {
        let g = LabGuard::new(false);
        let app = start_appliance(&g.lab, |_, _| {});
        let (ok, out) = ping(&g.lab.peer_ns, &g.lab.kernel4().to_string(), 2, 56);
        assert!(ok, "ping kernel: {out}");
        let (ok, out) = ping(&g.lab.peer_ns, &g.lab.kernel6().to_string(), 2, 56);
        assert!(ok, "ping -6 kernel: {out}");
        let port = in_ns(&g.lab.app_ns, || {
            let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                s.write_all(b"kernel here\n").unwrap();
            });
            port
        });
        let k = g.lab.kernel4();
        let got = in_ns(&g.lab.peer_ns, move || {
            let mut s = connect_retry(sa(k, port));
            let mut v = String::new();
            s.read_to_string(&mut v).unwrap();
            v
        });
        assert_eq!(got, "kernel here\n");
        // And the stack is still reachable next to it.
        let (ok, out) = ping(&g.lab.peer_ns, &g.lab.stack4().to_string(), 1, 56);
        assert!(ok, "{out}");
        app.stop().unwrap();
    }
}

mod tap {
    use super::*;
    #[test]
    fn ping_v4_v6() {
        ping_both(true)
    }
    #[test]
    fn tcp_echo_1_byte_to_64_mib() {
        tcp_echo_sizes(true)
    }
    #[test]
    fn tcp_520_concurrent_connections() {
        tcp_many_connections(true)
    }
    #[test]
    fn stack_is_a_tcp_client() {
        stack_as_client(true)
    }
    #[test]
    fn udp_echo_v4_v6() {
        udp_echo_both(true)
    }
    #[test]
    fn stack_pings_the_peer() {
        stack_pings_peer(true)
    }
    #[test]
    fn garbage_frames_do_not_hurt() {
        garbage_frames(true)
    }
}

#[allow(dead_code)]
fn unused(_: SocketAddr) {}
