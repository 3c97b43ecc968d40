//! Proxy listeners on the stack in front of three kernel backends in the peer namespace:
//! distribution per algorithm, failover when a backend dies (and its return), and a
//! byte-exact transfer through the splice.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::backend::*;
use common::*;
use sixstack::lab::Lab;

fn config(lab: &Lab, algorithm: &str, weights: [u32; 3]) -> String {
    let mut text = sixstack::lab_config(lab, None);
    text.push_str(&format!(
        "\n[[proxy]]\nname = \"web\"\nport = 8080\nalgorithm = \"{algorithm}\"\n\
         connect_timeout_ms = 1000\neject_after = 1\nretry_after_s = 1.0\n\
         check_interval_ms = 0\n"
    ));
    for (i, w) in weights.iter().enumerate() {
        text.push_str(&format!(
            "\n[[proxy.backend]]\naddress = \"{}:{}\"\nweight = {w}\n",
            lab.peer4(),
            9101 + i
        ));
    }
    text
}

fn backends(lab: &Lab) -> Vec<KernelBackend> {
    KernelBackend::start_all(&lab.peer_ns, lab.peer4().into(), &[9101, 9102, 9103])
}

#[test]
fn round_robin_failover_and_return() {
    let g = LabGuard::new(false);
    let mut kb = backends(&g.lab);
    let app = start_appliance_with(&config(&g.lab, "round_robin", [1, 1, 1]), |_, _| {});
    let to = SocketAddr::new(g.lab.stack4().into(), 8080);
    drop(in_ns(&g.lab.peer_ns, move || connect_retry(to)));
    // Each shard runs its own round robin: within one per backend per shard.
    let c = distribution(&g.lab.peer_ns, to, 300);
    assert!(c.iter().all(|&n| (98..=102).contains(&n)), "{c:?}");
    // Backend 2 dies: every new connection still gets a backend, never the dead one.
    let dead = kb.remove(1);
    let addr = dead.addr;
    drop(dead);
    let c = distribution(&g.lab.peer_ns, to, 100);
    assert_eq!(c[1], 0, "{c:?}");
    assert_eq!(c[0] + c[2], 100, "{c:?}");
    // It comes back: after its time out it gets connections again.
    let back = KernelBackend::start(&g.lab.peer_ns, addr, 2);
    wait_for(|| distribution(&g.lab.peer_ns, to, 30)[1] > 0);
    let c = distribution(&g.lab.peer_ns, to, 90);
    assert!(c[1] >= 20, "{c:?}");
    drop(back);
    app.stop().unwrap();
}

#[test]
fn weighted_round_robin_and_byte_exact_splice() {
    let g = LabGuard::new(false);
    let _kb = backends(&g.lab);
    let app = start_appliance_with(
        &config(&g.lab, "weighted_round_robin", [1, 2, 3]),
        |_, _| {},
    );
    let to = SocketAddr::new(g.lab.stack4().into(), 8080);
    drop(in_ns(&g.lab.peer_ns, move || connect_retry(to)));
    let c = distribution(&g.lab.peer_ns, to, 600);
    for (i, want) in [100usize, 200, 300].iter().enumerate() {
        let tol = want / 10;
        assert!(c[i].abs_diff(*want) <= tol, "backend {}: {c:?}", i + 1);
    }
    // 8 MiB through the proxy and back, byte for byte, with half-close.
    let data = pattern(8 << 20, 5);
    let expect = data.clone();
    let back = tcp_echo(&g.lab.peer_ns, to, data);
    let nl = back.iter().position(|&b| b == b'\n').unwrap();
    assert!(back[1..nl].iter().all(u8::is_ascii_digit));
    assert!(back[nl + 1..] == expect[..], "spliced bytes differ");
    app.stop().unwrap();
}

#[test]
fn maglev_keeps_a_client_on_its_backend() {
    let g = LabGuard::new(false);
    let _kb = backends(&g.lab);
    let app = start_appliance_with(&config(&g.lab, "maglev", [1, 1, 1]), |_, _| {});
    // Two clients: the peer's IPv4 and IPv6 addresses; each stays on one backend.
    for to in [
        SocketAddr::new(g.lab.stack4().into(), 8080),
        SocketAddr::new(g.lab.stack6().into(), 8080),
    ] {
        drop(in_ns(&g.lab.peer_ns, move || connect_retry(to)));
        let c = distribution(&g.lab.peer_ns, to, 60);
        assert_eq!(c.iter().filter(|&&n| n > 0).count(), 1, "{to}: {c:?}");
        assert_eq!(c.iter().sum::<usize>(), 60);
    }
    app.stop().unwrap();
}

/// Implicit TLS at the listener in front of plain backends: curl fetches a file from a
/// plain HTTP server through it, openssl s_client and a rustls client push data through
/// to an echo backend (64 MiB, byte for byte).
#[test]
fn tls_terminated_at_the_listener() {
    let g = LabGuard::new(false);
    let _kb = backends(&g.lab);
    // A plain HTTP backend with a 1 MiB file.
    let www = std::env::temp_dir().join(format!("sixstack-proxy-www-{}", std::process::id()));
    std::fs::create_dir_all(&www).unwrap();
    let file = pattern(1 << 20, 9);
    std::fs::write(www.join("blob"), &file).unwrap();
    let mut http = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &g.lab.peer_ns,
            "python3",
            "-m",
            "http.server",
        ])
        .args(["--bind", &g.lab.peer4().to_string(), "9200", "--directory"])
        .arg(&www)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut text = config(&g.lab, "round_robin", [1, 1, 1]).replace("port = 8080", "port = 8444");
    text = text.replace("name = \"web\"", "name = \"tls-echo\"\ntls = true");
    text.push_str(&format!(
        "\n[[proxy]]\nname = \"tls-web\"\nport = 8443\ntls = true\n\n[[proxy.backend]]\naddress = \"{}:9200\"\n",
        g.lab.peer4()
    ));
    let app = start_appliance_with(&text, |_, _| {});
    let ca = format!("{}/ca.pem", sixstack::LAB_TLS_DIR);
    let stack = g.lab.stack4();
    let web = SocketAddr::new(g.lab.peer4().into(), 9200);
    drop(in_ns(&g.lab.peer_ns, move || {
        // The backend first (python can take a while to start), then the listener.
        connect_retry(web);
        connect_retry(SocketAddr::new(stack.into(), 8443))
    }));

    // curl over TLS to the listener, plain HTTP behind it.
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &g.lab.peer_ns,
            "curl",
            "-sS",
            "--max-time",
            "20",
        ])
        .args(["--cacert", &ca, "--resolve"])
        .arg(format!("sixstack.lab:8443:{stack}"))
        .arg("https://sixstack.lab:8443/blob")
        .output()
        .unwrap();
    let _ = http.kill();
    let _ = http.wait();
    let _ = std::fs::remove_dir_all(&www);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == file, "the file through the TLS proxy differs");

    // openssl s_client: the echo backend's greeting and the echo, under TLS.
    let (_, s) = ns_exec(
        &g.lab.peer_ns,
        &[
            "sh",
            "-c",
            &format!(
                "(printf 'through the proxy\\n'; sleep 1) | timeout 10 openssl s_client \
                 -connect {stack}:8444 -servername sixstack.lab -CAfile {ca} -quiet -no_ign_eof 2>&1"
            ),
        ],
    );
    assert!(s.contains("through the proxy"), "{s}");

    // 64 MiB with a rustls client on kernel sockets, byte for byte.
    let data = pattern(64 << 20, 11);
    let expect = data.clone();
    let back = in_ns(&g.lab.peer_ns, move || {
        let cfg = sixstack_tls::client::client_config(&sixstack_tls::client::ClientSettings {
            ca: Some(ca.into()),
            ..Default::default()
        })
        .unwrap();
        let sock = connect_retry(SocketAddr::new(stack.into(), 8444));
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let name = sixstack_tls::rustls::pki_types::ServerName::try_from("sixstack.lab").unwrap();
        let conn = sixstack_tls::rustls::ClientConnection::new(cfg, name).unwrap();
        let mut tls = sixstack_tls::rustls::StreamOwned::new(conn, sock);
        // Write and read in turns of 1 MiB so neither side's buffers have to hold it all.
        let mut all = Vec::with_capacity(data.len() + 8);
        let mut buf = vec![0u8; 256 * 1024];
        for chunk in data.chunks(1 << 20) {
            tls.write_all(chunk).unwrap();
            tls.flush().unwrap();
            let want = all.len() + chunk.len() + if all.is_empty() { 3 } else { 0 };
            while all.len() < want {
                let n = tls.read(&mut buf).unwrap();
                assert!(n > 0, "early end of stream");
                all.extend_from_slice(&buf[..n]);
            }
        }
        all
    });
    assert_eq!(&back[..1], b"b");
    let nl = back.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(back.len() - nl - 1, expect.len());
    assert!(
        back[nl + 1..] == expect[..],
        "64 MiB through the TLS proxy differ"
    );
    app.stop().unwrap();
}

/// Active health checks: a backend that accepts connections but answers wrongly is taken
/// out (passive ejection would never notice), and comes back once it answers right.
#[test]
fn health_checks_take_a_sick_backend_out_and_back() {
    let g = LabGuard::new(false);
    let ns = g.lab.peer_ns.clone();
    let addr = |i: u16| SocketAddr::new(g.lab.peer4().into(), 9101 + i);
    let _b1 = KernelBackend::start_with(&ns, addr(0), "b1 ok\n".into());
    let _b2 = KernelBackend::start_with(&ns, addr(1), "b2 ok\n".into());
    let sick = KernelBackend::start_with(&ns, addr(2), "b3 sick\n".into());
    let text = config(&g.lab, "round_robin", [1, 1, 1]).replace(
        "check_interval_ms = 0\n",
        "check_interval_ms = 100\ncheck_rise = 2\ncheck_fall = 2\ncheck_expect = \"ok\"\n",
    );
    let app = start_appliance_with(&text, |_, _| {});
    let to = SocketAddr::new(g.lab.stack4().into(), 8080);
    drop(in_ns(&ns, move || connect_retry(to)));
    // Two failed checks (100 ms apart) take it out; wait for that however slow the host.
    wait_for(|| distribution(&ns, to, 30)[2] == 0);
    let c = distribution(&ns, to, 90);
    // Round robin per shard: within one connection per shard of an even split.
    assert_eq!(c[2], 0, "the sick backend must get nothing: {c:?}");
    assert!(c[..2].iter().all(|&n| (43..=47).contains(&n)), "{c:?}");
    // It recovers: after two passed checks it is back in the rotation.
    drop(sick);
    let _b3 = KernelBackend::start_with(&ns, addr(2), "b3 ok\n".into());
    wait_for(|| distribution(&ns, to, 30)[2] > 0);
    let c = distribution(&ns, to, 90);
    assert!(c.iter().all(|&n| (28..=32).contains(&n)), "{c:?}");
    app.stop().unwrap();
}

/// Reads a PROXY protocol header (v1 text or v2 binary) off `c`: `src=ADDR:PORT` and, from
/// a v2 TLS TLV, `tls=VERSION cn=NAME`.
fn read_proxy_header(c: &mut TcpStream) -> String {
    let mut first = [0u8; 12];
    c.read_exact(&mut first).unwrap();
    if first.starts_with(b"PROXY ") {
        let mut line = first.to_vec();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            c.read_exact(&mut b).unwrap();
            line.push(b[0]);
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let f: Vec<&str> = text.split_whitespace().collect();
        return format!("v1 src={}:{}", f[2], f[4]);
    }
    assert_eq!(&first, b"\r\n\r\n\0\r\nQUIT\n", "not a PROXY header");
    let mut hd = [0u8; 4];
    c.read_exact(&mut hd).unwrap();
    assert_eq!((hd[0], hd[1]), (0x21, 0x11), "v2 PROXY over TCP/IPv4");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([hd[2], hd[3]]))];
    c.read_exact(&mut body).unwrap();
    let src = std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]);
    let sport = u16::from_be_bytes([body[8], body[9]]);
    let mut out = format!("v2 src={src}:{sport}");
    let mut tlvs = &body[12..];
    while tlvs.len() >= 3 {
        let (kind, len) = (tlvs[0], usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]])));
        let value = &tlvs[3..3 + len];
        if kind == 0x20 {
            let mut sub = &value[5..];
            while sub.len() >= 3 {
                let (k, l) = (sub[0], usize::from(u16::from_be_bytes([sub[1], sub[2]])));
                let v = String::from_utf8_lossy(&sub[3..3 + l]);
                match k {
                    0x21 => out.push_str(&format!(" tls={v}")),
                    0x22 => out.push_str(&format!(" cn={v}")),
                    _ => {}
                }
                sub = &sub[3 + l..];
            }
        }
        tlvs = &tlvs[3 + len..];
    }
    out
}

/// PROXY protocol to the backends: v1 from a plain listener, v2 with the client's TLS
/// version and certificate name from a TLS-terminating one.
#[test]
fn proxy_protocol_tells_the_backend_who_the_client_is() {
    let g = LabGuard::new(false);
    let ns = g.lab.peer_ns.clone();
    let baddr = SocketAddr::new(g.lab.peer4().into(), 9300);
    in_ns(&ns, move || {
        let l = TcpListener::bind(baddr).unwrap();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                std::thread::spawn(move || {
                    let seen = read_proxy_header(&mut c);
                    let _ = c.write_all(format!("{seen}\n").as_bytes());
                });
            }
        });
    });
    let mut text = sixstack::lab_config(&g.lab, None);
    for (name, port, tls, v) in [("pp1", 8090, false, "v1"), ("pp2", 8091, true, "v2")] {
        text.push_str(&format!(
            "\n[[proxy]]\nname = \"{name}\"\nport = {port}\ntls = {tls}\ncheck_interval_ms = 0\n\n\
             [[proxy.backend]]\naddress = \"{baddr}\"\nproxy_protocol = \"{v}\"\n"
        ));
    }
    let app = start_appliance_with(&text, |_, _| {});
    let stack = g.lab.stack4();
    let peer = g.lab.peer4();
    let (seen, client_port) = in_ns(&ns, move || {
        let s = connect_retry(SocketAddr::new(stack.into(), 8090));
        let port = s.local_addr().unwrap().port();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        (line, port)
    });
    assert_eq!(seen.trim(), format!("v1 src={peer}:{client_port}"));
    let dir = sixstack::LAB_TLS_DIR;
    let (_, out) = ns_exec(
        &ns,
        &[
            "sh",
            "-c",
            &format!(
                "sleep 1 | timeout 10 openssl s_client -connect {stack}:8091 -servername \
                 sixstack.lab -CAfile {dir}/ca.pem -cert {dir}/client.pem -key {dir}/client.key \
                 -quiet -no_ign_eof 2>&1"
            ),
        ],
    );
    assert!(
        out.contains(&format!("v2 src={peer}:")) && out.contains("tls=TLSv1.3 cn=lab-client"),
        "{out}"
    );
    app.stop().unwrap();
}
