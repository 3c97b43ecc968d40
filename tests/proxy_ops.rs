//! Operating the proxy listeners: draining and enabling a backend with `sixstack proxy`
//! while a transfer runs through it, the per-backend table of `sixstack stats`, 32
//! backends, TLS to the backends, the idle limit and the banner for clients when every
//! backend is down. The clients are kernel sockets and socat in the peer namespace.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::backend::*;
use common::*;
use sixstack::lab::Lab;

fn sixstack(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sixstack"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The appliance as its users run it: `sixstack run --config FILE`, stopped on drop.
struct Appliance {
    child: std::process::Child,
    config: std::path::PathBuf,
}

impl Appliance {
    fn start(text: &str, tag: &str) -> Appliance {
        let config = std::env::temp_dir().join(format!(
            "sixstack-proxy-ops-{}-{tag}.toml",
            std::process::id()
        ));
        std::fs::write(&config, text).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sixstack"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Appliance { child, config }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

fn proxy_text(lab: &Lab, name: &str, port: u16, algorithm: &str, ports: &[u16]) -> String {
    let mut text = format!(
        "\n[[proxy]]\nname = \"{name}\"\nport = {port}\nalgorithm = \"{algorithm}\"\n\
         connect_timeout_ms = 1000\neject_after = 1\nretry_after_s = 1.0\ncheck_interval_ms = 0\n"
    );
    for p in ports {
        text.push_str(&format!(
            "\n[[proxy.backend]]\naddress = \"{}:{p}\"\n",
            lab.peer4()
        ));
    }
    text
}

/// One connection with socat (stdin at end of file): the id of the backend that greeted.
fn socat_which(ns: &str, to: SocketAddr) -> Option<u8> {
    let (ok, out) = ns_exec(ns, &["socat", "-T", "5", "-", &format!("TCP:{to}")]);
    if !ok {
        return None;
    }
    out.trim().strip_prefix('b')?.parse().ok()
}

/// Drain and enable through the control socket while a connection to the drained backend
/// keeps moving data: it ends byte for byte, new connections avoid the backend until it
/// is enabled, and `sixstack stats` shows the backend's state, connections and bytes.
#[test]
fn drain_keeps_open_transfers_exact_and_enable_brings_the_backend_back() {
    let g = LabGuard::new(false);
    let ns = g.lab.peer_ns.clone();
    let ports = [9601, 9602, 9603];
    let _kb = KernelBackend::start_all(&ns, g.lab.peer4().into(), &ports);
    let mut text = sixstack::lab_config(&g.lab, None);
    text.push_str(&proxy_text(&g.lab, "web", 8080, "round_robin", &ports));
    let socket = sixstack::lab_control_socket(&g.lab);
    let _app = Appliance::start(&text, "drain");
    let to = SocketAddr::new(g.lab.stack4().into(), 8080);
    drop(in_ns(&ns, move || connect_retry(to)));

    // A long transfer: greeting, then 4 MiB echoed; we learn its backend from the greeting.
    let first = pattern(4 << 20, 21);
    let second = pattern(4 << 20, 22);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (idtx, idrx) = std::sync::mpsc::channel::<u8>();
    let (f2, s2, ns2) = (first.clone(), second.clone(), ns.clone());
    let transfer = std::thread::spawn(move || {
        in_ns(&ns2, move || {
            let s = connect_retry(to);
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            idtx.send(line.trim()[1..].parse().unwrap()).unwrap();
            let mut w = s.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                w.write_all(&f2).unwrap();
                // Wait for the drain before the second half.
                rx.recv().unwrap();
                w.write_all(&s2).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            writer.join().unwrap();
            back
        })
    });
    let id = idrx.recv_timeout(Duration::from_secs(20)).unwrap();
    let drained = format!("{}:{}", g.lab.peer4(), ports[usize::from(id) - 1]);

    let (ok, out, err) = sixstack(&["proxy", "drain", "web", &drained, "--socket", &socket]);
    assert!(ok, "drain: {out}{err}");
    assert!(
        out.contains("now draining") && out.contains("1 open"),
        "{out}"
    );
    // New connections (socat as the client) avoid the drained backend; none fails.
    let mut seen = [0usize; 3];
    for _ in 0..30 {
        let got = socat_which(&ns, to).expect("a connection during the drain");
        seen[usize::from(got) - 1] += 1;
    }
    assert_eq!(seen[usize::from(id) - 1], 0, "drained backend got {seen:?}");
    // The open transfer finishes byte for byte.
    tx.send(()).unwrap();
    let back = transfer.join().unwrap();
    let mut want = first.clone();
    want.extend_from_slice(&second);
    assert_eq!(
        back.len(),
        want.len(),
        "transfer through the drained backend"
    );
    assert!(back == want, "bytes differ through the drained backend");

    // The per-backend table: state, connections, bytes.
    let (ok, json, err) = sixstack(&["stats", "--json", "--socket", &socket]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let b = &v["proxies"][0]["backends"][usize::from(id) - 1];
    assert_eq!(b["draining"], true, "{b}");
    assert_eq!(b["state"], "up", "{b}");
    assert!(b["bytes_to_backend"].as_u64().unwrap() >= 8 << 20, "{b}");
    assert!(b["bytes_to_client"].as_u64().unwrap() >= 8 << 20, "{b}");
    assert_eq!(b["failures"], 0, "{b}");
    let total: u64 = (0..3)
        .map(|i| {
            v["proxies"][0]["backends"][i]["connections"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(total >= 31, "{v}");
    let (_, table, _) = sixstack(&["stats", "--socket", &socket]);
    assert!(
        table.contains("proxy web on port 8080") && table.contains("draining (up)"),
        "{table}"
    );

    // Enable: the backend takes connections again.
    let (ok, out, err) = sixstack(&[
        "proxy",
        "enable",
        "web",
        &id.to_string(),
        "--socket",
        &socket,
    ]);
    assert!(ok && out.contains("enabled again"), "{out}{err}");
    let c = spread(&g.lab.peer_ns, to, 30, 3);
    assert!(c[usize::from(id) - 1] >= 8, "{c:?}");

    // Bad requests: a clear error, nothing changes.
    let (ok, _, err) = sixstack(&["proxy", "drain", "nope", "1", "--socket", &socket]);
    assert!(
        !ok && err.contains("no proxy listener named 'nope'"),
        "{err}"
    );
    let (ok, _, err) = sixstack(&["proxy", "drain", "web", "10.9.9.9:1", "--socket", &socket]);
    assert!(!ok && err.contains("has no backend '10.9.9.9:1'"), "{err}");
    let c = spread(&g.lab.peer_ns, to, 30, 3);
    assert!(c.iter().all(|&n| n >= 8), "{c:?}");
}

/// 32 backends: round robin spreads evenly over all of them; least connections spreads
/// connections held open.
#[test]
fn thirty_two_backends() {
    let g = LabGuard::new(false);
    let ns = g.lab.peer_ns.clone();
    let ports: Vec<u16> = (0..32).map(|i| 9700 + i).collect();
    let _kb = KernelBackend::start_all(&ns, g.lab.peer4().into(), &ports);
    let mut text = sixstack::lab_config(&g.lab, None);
    text.push_str(&proxy_text(&g.lab, "rr", 8080, "round_robin", &ports));
    text.push_str(&proxy_text(&g.lab, "lc", 8081, "least_connections", &ports));
    let app = start_appliance_with(&text, |_, _| {});
    let rr = SocketAddr::new(g.lab.stack4().into(), 8080);
    drop(in_ns(&ns, move || connect_retry(rr)));
    // Round robin per shard: within one connection per shard of 10 each.
    let c = spread(&ns, rr, 320, 32);
    assert!(c.iter().all(|&n| (8..=12).contains(&n)), "{c:?}");

    // Least connections with 64 connections held open: 2 each, within one per shard.
    let lc = SocketAddr::new(g.lab.stack4().into(), 8081);
    let held = in_ns(&ns, move || {
        let mut c = vec![0usize; 32];
        let mut open = Vec::new();
        for _ in 0..64 {
            let s = TcpStream::connect_timeout(&lc, Duration::from_secs(3)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            let id: usize = line.trim()[1..].parse().unwrap();
            c[id - 1] += 1;
            open.push(s);
        }
        c
    });
    assert!(held.iter().all(|&n| (1..=3).contains(&n)), "{held:?}");
    app.stop().unwrap();
}

/// TLS from the proxy to the backend (socat with the lab's server certificate): a plain
/// client's bytes arrive exactly; a backend whose certificate does not carry the expected
/// name is refused, and with no backend left the client gets the down banner and a clean
/// close. An idle connection is closed after the idle limit.
#[test]
fn tls_to_backends_down_banner_and_idle_limit() {
    let g = LabGuard::new(false);
    let ns = g.lab.peer_ns.clone();
    let dir = sixstack::LAB_TLS_DIR;
    let peer = g.lab.peer4();
    let mut socat = Command::new("ip")
        .args(["netns", "exec", &ns, "socat"])
        .arg(format!(
            "OPENSSL-LISTEN:9800,bind={peer},reuseaddr,fork,cert={dir}/server.pem,key={dir}/server.key,verify=0"
        ))
        .arg("SYSTEM:echo b1; exec cat")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _plain = KernelBackend::start(&ns, SocketAddr::new(peer.into(), 9801), 2);
    let mut text = sixstack::lab_config(&g.lab, None);
    text.push_str(&format!(
        "\n[[proxy]]\nname = \"tls-out\"\nport = 8080\ncheck_interval_ms = 0\n\n\
         [[proxy.backend]]\naddress = \"{peer}:9800\"\ntls = true\ntls_ca = \"{dir}/ca.pem\"\n\
         tls_name = \"sixstack.lab\"\n\n\
         [[proxy]]\nname = \"wrong-name\"\nport = 8081\ncheck_interval_ms = 0\neject_after = 1\n\
         down_banner = \"503 no backend\\r\\n\"\n\n\
         [[proxy.backend]]\naddress = \"{peer}:9800\"\ntls = true\ntls_ca = \"{dir}/ca.pem\"\n\
         tls_name = \"not-the-backend.example\"\n\n\
         [[proxy]]\nname = \"idle\"\nport = 8082\ncheck_interval_ms = 0\nidle_timeout_s = 1.0\n\n\
         [[proxy.backend]]\naddress = \"{peer}:9801\"\n"
    ));
    let app = start_appliance_with(&text, |_, _| {});
    let stack = g.lab.stack4();
    let to = SocketAddr::new(stack.into(), 8080);
    drop(in_ns(&ns, move || connect_retry(to)));
    std::thread::sleep(Duration::from_millis(300));

    // 8 MiB through TLS origination, byte for byte.
    let data = pattern(8 << 20, 31);
    let expect = data.clone();
    let back = tcp_echo(&ns, to, data);
    let _ = socat.kill();
    let _ = socat.wait();
    assert!(
        back.starts_with(b"b1\n"),
        "{:?}",
        &back[..back.len().min(16)]
    );
    assert_eq!(back.len() - 3, expect.len());
    assert!(
        back[3..] == expect[..],
        "bytes through TLS origination differ"
    );

    // The wrong name fails the handshake: the client gets the banner, then end of file.
    let banner = in_ns(&ns, move || {
        let mut s = connect_retry(SocketAddr::new(stack.into(), 8081));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    assert_eq!(banner, b"503 no backend\r\n");

    // Idle limit: nothing moves for a second, the proxy closes both sides.
    let (waited, ended) = in_ns(&ns, move || {
        let s = connect_retry(SocketAddr::new(stack.into(), 8082));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let t = Instant::now();
        let mut rest = Vec::new();
        let end = r.read_to_end(&mut rest);
        (t.elapsed(), end.map(|_| rest.len()))
    });
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert!(
        matches!(ended, Ok(0))
            || ended
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{ended:?}"
    );
    app.stop().unwrap();
}

/// Received bytes of the peer's end of the link (every frame the appliance puts on the
/// wire arrives there, addressed to it or not).
fn peer_rx_bytes(lab: &Lab) -> u64 {
    let (ok, out) = ns_exec(
        &lab.peer_ns,
        &[
            "cat",
            &format!("/sys/class/net/{}/statistics/rx_bytes", lab.peer_if),
        ],
    );
    assert!(ok, "{out}");
    out.trim().parse().unwrap()
}

/// Implicit TLS in front of a plain service of the appliance itself (the stack's own echo
/// on port 7, over IPv4 and IPv6): the proxy's connection to its own address loops back
/// inside the shard and never reaches the wire.
#[test]
fn implicit_tls_in_front_of_the_stacks_own_service() {
    let g = LabGuard::new(false);
    let ns = g.lab.peer_ns.clone();
    let (stack4, stack6) = (g.lab.stack4(), g.lab.stack6());
    let mut text = sixstack::lab_config(&g.lab, None);
    text.push_str(&format!(
        "\n[[proxy]]\nname = \"echos\"\nport = 8990\ntls = true\n\n\
         [[proxy.backend]]\naddress = \"{stack4}:7\"\n\n\
         [[proxy]]\nname = \"echo6\"\nport = 8991\naddress = \"{stack6}\"\n\n\
         [[proxy.backend]]\naddress = \"[{stack6}]:7\"\n"
    ));
    let app = start_appliance_with(&text, |_, _| {});
    let to = SocketAddr::new(stack4.into(), 8990);
    drop(in_ns(&ns, move || connect_retry(to)));

    // openssl s_client: TLS to the listener, the stack's own echo behind it.
    let ca = format!("{}/ca.pem", sixstack::LAB_TLS_DIR);
    let (_, s) = ns_exec(
        &ns,
        &[
            "sh",
            "-c",
            &format!(
                "(printf 'looped back\\n'; sleep 1) | timeout 10 openssl s_client \
                 -connect {stack4}:8990 -servername sixstack.lab -CAfile {ca} -quiet -no_ign_eof 2>&1"
            ),
        ],
    );
    assert!(s.contains("looped back"), "{s}");

    // 4 MiB through TLS and the loop, byte for byte, with no extra bytes on the wire.
    let before = peer_rx_bytes(&g.lab);
    let data = pattern(4 << 20, 41);
    let expect = data.clone();
    let back = in_ns(&ns, move || {
        let cfg = sixstack_tls::client::client_config(&sixstack_tls::client::ClientSettings {
            ca: Some(ca.into()),
            ..Default::default()
        })
        .unwrap();
        let sock = connect_retry(to);
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let name = sixstack_tls::rustls::pki_types::ServerName::try_from("sixstack.lab").unwrap();
        let conn = sixstack_tls::rustls::ClientConnection::new(cfg, name).unwrap();
        let mut tls = sixstack_tls::rustls::StreamOwned::new(conn, sock);
        let mut all = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 256 * 1024];
        for chunk in data.chunks(256 * 1024) {
            tls.write_all(chunk).unwrap();
            tls.flush().unwrap();
            let want = all.len() + chunk.len();
            while all.len() < want {
                let n = tls.read(&mut buf).unwrap();
                assert!(n > 0, "early end of stream");
                all.extend_from_slice(&buf[..n]);
            }
        }
        all
    });
    let wire = peer_rx_bytes(&g.lab) - before;
    assert!(
        back == expect,
        "bytes through the looped-back backend differ"
    );
    // The client gets ~4.2 MiB of TLS records; the loop would add 8 MiB more if it leaked.
    assert!(wire < 6 << 20, "{wire} bytes reached the peer");

    // IPv6 only: a listener on the stack's IPv6 address, to the stack's own IPv6 address;
    // its port is closed on IPv4.
    let data = pattern(1 << 20, 42);
    let expect = data.clone();
    let back = tcp_echo(&ns, SocketAddr::new(stack6.into(), 8991), data);
    assert!(back == expect, "bytes through the IPv6 loop differ");
    let v4 = SocketAddr::new(stack4.into(), 8991);
    let refused = in_ns(&ns, move || {
        TcpStream::connect_timeout(&v4, Duration::from_secs(3)).map(drop)
    });
    assert!(refused.is_err(), "the IPv6-only listener answered on IPv4");
    app.stop().unwrap();
}
