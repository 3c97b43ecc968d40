//! TLS on the stack against real peers over AF_XDP: `openssl s_client` (TLS 1.2 and 1.3,
//! with and without a client certificate, resumption by session ID, by saved TLS 1.3
//! session, STARTTLS), `curl` over IPv4 and IPv6, the stack as a TLS client of
//! `openssl s_server`, and the refusals (old protocols, CBC-only clients, expired and
//! foreign client certificates), each logged while the shard keeps serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use sixstack::lab::Lab;
use sixstack_stack::IpAddress;
use sixstack_tls::selfsigned::{LabCa, Validity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Test material: a CA, a server certificate for the lab's addresses, a good client
/// certificate, an expired one and one from another CA.
struct Material {
    dir: PathBuf,
}

impl Material {
    fn new(lab: &Lab, tag: &str) -> Material {
        let dir = std::env::temp_dir().join(format!("sixstack-tls-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = LabCa::new("test CA").unwrap();
        let names = vec![
            "sixstack.lab".to_string(),
            lab.stack4().to_string(),
            lab.stack6().to_string(),
            lab.peer4().to_string(),
        ];
        let server = ca.server(&names, Validity::default()).unwrap();
        let client = ca.client("alice", Validity::default()).unwrap();
        let expired = ca
            .client(
                "mallory",
                Validity {
                    not_before: (2020, 1, 1),
                    not_after: (2021, 1, 1),
                },
            )
            .unwrap();
        let other = LabCa::new("other CA")
            .unwrap()
            .client("eve", Validity::default())
            .unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        w("ca.pem", &ca.cert_pem);
        w("server.pem", &format!("{}{}", server.cert_pem, ca.cert_pem));
        w("server.key", &server.key_pem);
        for (name, c) in [
            ("client", &client),
            ("expired", &expired),
            ("other", &other),
        ] {
            w(&format!("{name}.pem"), &c.cert_pem);
            w(&format!("{name}.key"), &c.key_pem);
        }
        Material { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The lab configuration serving TLS from this material.
    fn config(&self, lab: &Lab, client_auth: &str) -> String {
        sixstack::lab_config(lab, None)
            .replace(sixstack::LAB_TLS_DIR, &self.dir.display().to_string())
            .replace(
                "client_auth = \"optional\"",
                &format!("client_auth = \"{client_auth}\""),
            )
    }
}

impl Drop for Material {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a shell pipeline in a namespace: (success, stdout+stderr).
fn sh(ns: &str, script: &str) -> (bool, String) {
    ns_exec(ns, &["sh", "-c", script])
}

fn s_client(ns: &str, target: &str, m: &Material, args: &str, input: &str) -> (bool, String) {
    sh(
        ns,
        &format!(
            "(printf '{input}'; sleep 1) | timeout 10 openssl s_client -connect {target} \
             -servername sixstack.lab -verify_hostname sixstack.lab -CAfile {} \
             -verify_return_error {args} 2>&1",
            m.path("ca.pem")
        ),
    )
}

fn v4(lab: &Lab, port: u16) -> String {
    format!("{}:{port}", lab.stack4())
}

fn v6(lab: &Lab, port: u16) -> String {
    format!("[{}]:{port}", lab.stack6())
}

fn wait_listening(lab: &Lab, port: u16) {
    let to = SocketAddr::new(lab.stack4().into(), port);
    drop(in_ns(&lab.peer_ns, move || connect_retry(to)));
}

#[test]
fn tls_against_openssl_and_curl() {
    let g = LabGuard::new(false);
    let m = Material::new(&g.lab, "interop");
    let app = start_appliance_with(&m.config(&g.lab, "optional"), |_, _| {});
    wait_listening(&g.lab, 7443);
    let ns = g.lab.peer_ns.clone();

    // Implicit TLS echo, TLS 1.3 and 1.2, IPv4 and IPv6.
    for (version, target) in [
        ("-tls1_3", v4(&g.lab, 7443)),
        ("-tls1_2", v4(&g.lab, 7443)),
        ("-tls1_3", v6(&g.lab, 7443)),
    ] {
        let (_, out) = s_client(&ns, &target, &m, version, "hello over tls\\n");
        let want = if version == "-tls1_3" {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        };
        assert!(
            out.contains("Verify return code: 0 (ok)"),
            "{version} {target}: {out}"
        );
        assert!(
            out.contains(&format!("New, {want}")),
            "{version} {target}: {out}"
        );
        assert!(
            out.contains("hello over tls"),
            "{version} {target}: no echo: {out}"
        );
    }

    // With a client certificate: the service sees who it is.
    let (_, out) = s_client(
        &ns,
        &v4(&g.lab, 443),
        &m,
        &format!(
            "-cert {} -key {}",
            m.path("client.pem"),
            m.path("client.key")
        ),
        "GET / HTTP/1.1\\r\\nHost: sixstack.lab\\r\\nConnection: close\\r\\n\\r\\n",
    );
    assert!(
        out.contains("client-subject:") && out.contains("CN=alice"),
        "{out}"
    );

    // curl over IPv4 and IPv6, without and with a client certificate.
    for (addr, cert) in [
        (g.lab.stack4().to_string(), false),
        (format!("[{}]", g.lab.stack6()), false),
        (g.lab.stack4().to_string(), true),
    ] {
        let certs = if cert {
            format!(
                "--cert {} --key {}",
                m.path("client.pem"),
                m.path("client.key")
            )
        } else {
            String::new()
        };
        let (ok, out) = sh(
            &ns,
            &format!(
                "curl -sS --max-time 10 --cacert {} --resolve sixstack.lab:443:{addr} {certs} \
                 https://sixstack.lab/",
                m.path("ca.pem")
            ),
        );
        assert!(ok, "curl {addr}: {out}");
        assert!(out.contains("protocol: TLSv1.3"), "{out}");
        if cert {
            assert!(
                out.contains("client-subject: O=sixstack lab, CN=alice"),
                "{out}"
            );
        } else {
            assert!(out.contains("client-subject: -"), "{out}");
        }
    }

    // Resumption, TLS 1.2: session IDs / tickets across -reconnect.
    let (_, out) = s_client(&ns, &v4(&g.lab, 7443), &m, "-tls1_2 -reconnect", "");
    let reused = out.matches("Reused, TLSv1.2").count();
    assert!(
        reused >= 5,
        "TLS 1.2 reconnects were not resumed ({reused}): {out}"
    );

    // Resumption, TLS 1.3: save the session (after the ticket arrived), reconnect with it.
    let sess = m.path("sess13.pem");
    let (_, out) = s_client(
        &ns,
        &v4(&g.lab, 7443),
        &m,
        &format!("-tls1_3 -sess_out {sess}"),
        "x",
    );
    assert!(out.contains("New, TLSv1.3"), "{out}");
    let (_, out) = s_client(
        &ns,
        &v4(&g.lab, 7443),
        &m,
        &format!("-tls1_3 -sess_in {sess}"),
        "y",
    );
    assert!(
        out.contains("Reused, TLSv1.3"),
        "TLS 1.3 session not resumed: {out}"
    );

    // A ticket issued by one shard resumes on whichever shard the next connection lands
    // on: several reconnects with the same session, different source ports.
    for i in 0..4 {
        let (_, out) = s_client(
            &ns,
            &v4(&g.lab, 443),
            &m,
            &format!("-tls1_3 -sess_in {sess}"),
            "",
        );
        assert!(out.contains("Reused, TLSv1.3"), "reconnect {i}: {out}");
    }

    // STARTTLS: plain-text greeting, upgrade, echo under TLS.
    let (_, out) = s_client(
        &ns,
        &v4(&g.lab, 2525),
        &m,
        "-starttls smtp",
        "after starttls\\n",
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("after starttls"), "{out}");

    // Plain text pipelined behind STARTTLS is refused (command injection).
    let to = SocketAddr::new(g.lab.stack4().into(), 2525);
    let reply = in_ns(&ns, move || {
        let mut s = connect_retry(to);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"EHLO x\r\nSTARTTLS\r\nNOOP\r\n").unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    });
    assert!(reply.contains("501 plain text after STARTTLS"), "{reply}");

    // The handshakes are counted per shard and published (`sixstack stats`); shards
    // publish every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let count = |name: &str| -> u64 {
        app.snapshot()
            .iter()
            .flat_map(|s| s.services.iter())
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    };
    assert!(
        count("tls_full") >= 8,
        "full handshakes: {}",
        count("tls_full")
    );
    assert!(
        count("tls_resumed") >= 10,
        "resumed: {}",
        count("tls_resumed")
    );
    assert!(
        count("tls_refused") >= 1,
        "refused: {}",
        count("tls_refused")
    );
    app.stop().unwrap();
}

/// Runs `sixstack run` with `config` and returns the child (stderr piped for the log).
fn run_appliance(config: &str, tag: &str) -> (std::process::Child, PathBuf) {
    let path = std::env::temp_dir().join(format!("sixstack-tls-{}-{tag}.toml", std::process::id()));
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sixstack"))
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, path)
}

fn stop_and_log(child: std::process::Child) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An SSL 3.0 ClientHello (record and hello both say 3.0), with common CBC/RC4 suites.
fn sslv3_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x00]; // client_version 3.0
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // session id
    let suites: [u16; 3] = [0x002f, 0x0005, 0x000a]; // AES128-SHA, RC4-SHA, DES-CBC3-SHA
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]); // compression: null
    let mut hs = vec![1]; // client_hello
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&hello);
    let mut rec = vec![22, 3, 0];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn tls_refusals_are_logged_and_the_shard_keeps_serving() {
    let g = LabGuard::new(false);
    let m = Material::new(&g.lab, "refuse");
    let config = m
        .config(&g.lab, "required")
        .replace("[tls]\n", "[tls]\nhandshake_timeout_s = 1.0\n");
    let (child, cfg_path) = run_appliance(&config, "refuse");
    wait_listening(&g.lab, 7443);
    let ns = g.lab.peer_ns.clone();
    let t = v4(&g.lab, 7443);

    // A client that connects and says nothing (slowloris) is dropped after the handshake
    // limit, not held forever.
    let to = SocketAddr::new(g.lab.stack4().into(), 7443);
    let (ended, waited) = in_ns(&ns, move || {
        let mut s = connect_retry(to);
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let t0 = std::time::Instant::now();
        let mut all = Vec::new();
        let ended = s.read_to_end(&mut all).is_ok();
        (ended, t0.elapsed())
    });
    assert!(
        ended,
        "a silent client was still connected after {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "dropped after {waited:?}"
    );
    let good = format!(
        "-cert {} -key {}",
        m.path("client.pem"),
        m.path("client.key")
    );

    // SSL 3.0, by hand (OpenSSL no longer speaks it): answered with an alert, not a hello.
    let to = SocketAddr::new(g.lab.stack4().into(), 7443);
    let answer = in_ns(&ns, move || {
        let mut s = connect_retry(to);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&sslv3_hello()).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all
    });
    assert!(
        answer.first() == Some(&21) || answer.is_empty(),
        "SSL 3.0 hello got {answer:02x?}"
    );

    let refused = [
        (
            "TLS 1.0",
            format!("-tls1 -cipher DEFAULT@SECLEVEL=0 {good}"),
        ),
        (
            "TLS 1.1",
            format!("-tls1_1 -cipher DEFAULT@SECLEVEL=0 {good}"),
        ),
        (
            "CBC only",
            format!("-tls1_2 -cipher AES128-SHA:ECDHE-ECDSA-AES128-SHA {good}"),
        ),
        ("no client certificate", "-tls1_3".to_string()),
        (
            "expired client certificate",
            format!(
                "-tls1_3 -cert {} -key {}",
                m.path("expired.pem"),
                m.path("expired.key")
            ),
        ),
        (
            "client certificate from another CA",
            format!(
                "-tls1_2 -cert {} -key {}",
                m.path("other.pem"),
                m.path("other.key")
            ),
        ),
    ];
    for (what, args) in &refused {
        let (_, out) = s_client(&ns, &t, &m, args, "must not echo\\n");
        assert!(!out.contains("must not echo\n"), "{what} was served: {out}");
        // Between refusals the shard still serves a good client.
        let (_, out) = s_client(&ns, &t, &m, &format!("-tls1_3 {good}"), "still here\\n");
        assert!(out.contains("still here"), "after {what}: {out}");
    }
    let log = stop_and_log(child);
    let _ = std::fs::remove_file(cfg_path);
    let refusals = log.matches("tls: handshake with").count();
    assert!(
        refusals > refused.len(),
        "{refusals} refusals logged for {} attempts:\n{log}",
        refused.len() + 1
    );
    for reason in [
        "which are never accepted",
        "NoCipherSuitesInCommon",
        "requires a client certificate",
        "certificate expired",
        "UnknownIssuer",
    ] {
        assert!(
            log.contains(reason),
            "no refusal with {reason:?} in the log:\n{log}"
        );
    }
    // SSL 3.0, TLS 1.0 and TLS 1.1 each.
    assert!(
        log.matches("which are never accepted").count() >= 3,
        "{log}"
    );
}

#[test]
fn stack_as_tls_client_of_openssl_s_server() {
    let g = LabGuard::new(false);
    let m = Material::new(&g.lab, "client");
    let peer = g.lab.peer4();
    // openssl s_server in the peer namespace serving its status page: any version on
    // 4433, TLS 1.2 only on 4434.
    let mut servers = Vec::new();
    for (port, extra) in [(4433u16, None), (4434, Some("-tls1_2"))] {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &g.lab.peer_ns,
            "openssl",
            "s_server",
            "-accept",
        ])
        .arg(format!("{peer}:{port}"))
        .args([
            "-cert",
            &m.path("server.pem"),
            "-key",
            &m.path("server.key"),
            "-www",
        ]);
        if let Some(e) = extra {
            c.arg(e);
        }
        servers.push(
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let ca = m.path("ca.pem");
    let (tx, rx) = std::sync::mpsc::channel();
    let app = start_appliance(&g.lab, move |net, shard| {
        if shard != 0 {
            return;
        }
        let (net, tx, ca) = (net.clone(), tx.clone(), ca.clone());
        let n2 = net.clone();
        n2.spawn(async move {
            let mut pages = Vec::new();
            // (port, TLS 1.3 required by the client)
            for (port, require_tls13) in [(4433u16, false), (4434, false), (4434, true)] {
                let settings = sixstack_tls::client::ClientSettings {
                    ca: Some(PathBuf::from(&ca)),
                    policy: sixstack_tls::TlsPolicy { require_tls13 },
                    ..Default::default()
                };
                let cfg = sixstack_tls::client::client_config(&settings).unwrap();
                let r = async {
                    let mut s = sixstack_tls::client::connect(
                        &net,
                        (IpAddress::from(peer), port).into(),
                        &peer.to_string(),
                        cfg,
                    )
                    .await?;
                    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
                    let mut page = Vec::new();
                    s.read_to_end(&mut page).await?;
                    Ok::<_, std::io::Error>(String::from_utf8_lossy(&page).into_owned())
                }
                .await;
                pages.push(r.map_err(|e| e.to_string()));
            }
            let _ = tx.send(pages);
        });
    });
    let pages = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    app.stop().unwrap();
    let p13 = pages[0].as_ref().unwrap();
    assert!(p13.contains("200 ok") && p13.contains("TLSv1.3"), "{p13}");
    let p12 = pages[1].as_ref().unwrap();
    assert!(p12.contains("200 ok") && p12.contains("TLSv1.2"), "{p12}");
    // A client that requires TLS 1.3 refuses a TLS 1.2-only server.
    assert!(pages[2].is_err(), "{:?}", pages[2]);
}

/// A TLS 1.2 ClientHello offering only RC4 suites (with the extensions a modern hello
/// carries, so the refusal is about the suites).
fn rc4_only_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03];
    hello.extend_from_slice(&[0x3c; 32]);
    hello.push(0);
    let suites: [u16; 2] = [0x0005, 0x0004]; // RC4-SHA, RC4-MD5
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]);
    let mut ext = Vec::new();
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&hello);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// Sends raw bytes to `to` from `ns`, returns everything that comes back.
fn raw_exchange(ns: &str, to: SocketAddr, bytes: Vec<u8>) -> Vec<u8> {
    in_ns(ns, move || {
        let mut s = connect_retry(to);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&bytes).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all
    })
}

fn served_serial(ns: &str, target: &str) -> String {
    let (_, out) = sh(
        ns,
        &format!(
            "timeout 10 openssl s_client -connect {target} </dev/null 2>/dev/null | \
             openssl x509 -noout -serial"
        ),
    );
    out.trim().trim_start_matches("serial=").to_string()
}

fn file_serial(path: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

#[test]
fn rc4_only_client_is_refused_and_material_reloads_on_sighup() {
    let g = LabGuard::new(false);
    let m = Material::new(&g.lab, "reload");
    let (child, cfg_path) = run_appliance(&m.config(&g.lab, "none"), "reload");
    wait_listening(&g.lab, 7443);
    let ns = g.lab.peer_ns.clone();
    let target = v4(&g.lab, 7443);

    // RC4 only: an alert, no ServerHello.
    let to = SocketAddr::new(g.lab.stack4().into(), 7443);
    let answer = raw_exchange(&ns, to, rc4_only_hello());
    assert_eq!(
        answer.first(),
        Some(&21),
        "RC4-only hello got {answer:02x?}"
    );

    // The served certificate is the file's; new files and SIGHUP switch to the new one.
    let first = served_serial(&ns, &target);
    assert_eq!(first, file_serial(&m.path("server.pem")));
    let ca = LabCa::new("renewed CA").unwrap();
    let names = vec!["sixstack.lab".to_string(), g.lab.stack4().to_string()];
    let renewed = ca.server(&names, Validity::default()).unwrap();
    std::fs::write(m.path("server.pem"), &renewed.cert_pem).unwrap();
    std::fs::write(m.path("server.key"), &renewed.key_pem).unwrap();
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
    };
    hup(child.id());
    let second = served_serial(&ns, &target);
    assert_eq!(second, file_serial(&m.path("server.pem")));
    assert_ne!(first, second);
    // A broken file on reload: the running certificate stays, the error is logged.
    std::fs::write(m.path("server.pem"), "not a certificate\n").unwrap();
    hup(child.id());
    assert_eq!(served_serial(&ns, &target), second);
    let log = stop_and_log(child);
    let _ = std::fs::remove_file(cfg_path);
    assert!(log.contains("NoCipherSuitesInCommon"), "{log}");
    assert!(log.contains("tls: reloaded: now serving"), "{log}");
    assert!(
        log.contains("tls: reload failed, the current certificate stays"),
        "{log}"
    );
}

/// RSA material: 2048 and 4096 bits load, 1024 bits and SHA-1 signatures are refused
/// with the reason; keys load from PKCS#8, PKCS#1 and SEC1 files (all made by the openssl
/// command line).
#[test]
fn rsa_sizes_and_sha1_signatures_against_the_policy() {
    let dir = std::env::temp_dir().join(format!("sixstack-rsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let make = |name: &str, bits: u32, digest: &str| {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let ok = Command::new("openssl")
            .args(["req", "-x509", "-newkey", &format!("rsa:{bits}"), "-nodes"])
            .args([
                &format!("-{digest}"),
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl req for {name}");
        (cert, key)
    };
    for (name, bits, digest, refusal) in [
        ("rsa2048", 2048, "sha256", None),
        ("rsa4096", 4096, "sha256", None),
        ("rsa1024", 1024, "sha256", Some("RSA key of 1024 bits")),
        ("sha1", 2048, "sha1", Some("sha1WithRSAEncryption")),
    ] {
        let (cert, key) = make(name, bits, digest);
        let r = sixstack_tls::material::certified_key(&cert, &key);
        match refusal {
            None => {
                r.unwrap_or_else(|e| panic!("{name}: {e}"));
                let der = sixstack_tls::material::load_certs(&cert).unwrap();
                let info = sixstack_tls::CertInfo::from_der(&der[0]).unwrap();
                assert_eq!((info.key_type.as_str(), info.key_bits), ("RSA", bits));
            }
            Some(why) => {
                let e = r
                    .err()
                    .unwrap_or_else(|| panic!("{name} was accepted"))
                    .to_string();
                assert!(
                    e.contains(why) && e.contains("refused by policy"),
                    "{name}: {e}"
                );
            }
        }
    }
    // Key encodings: PKCS#1 (`BEGIN RSA PRIVATE KEY`) and SEC1 (`BEGIN EC PRIVATE KEY`)
    // load like PKCS#8.
    let (rsa_cert, rsa_key) = (dir.join("rsa2048.pem"), dir.join("rsa2048.key"));
    let pkcs1 = dir.join("pkcs1.key");
    let ok = Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(&rsa_key)
        .arg("-out")
        .arg(&pkcs1)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    sixstack_tls::material::certified_key(&rsa_cert, &pkcs1).unwrap();
    let (ec_cert, sec1) = (dir.join("ec.pem"), dir.join("sec1.key"));
    for args in [
        vec![
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ],
        vec!["req", "-x509", "-days", "30", "-subj", "/CN=ec", "-key"],
    ] {
        let mut c = Command::new("openssl");
        c.args(&args);
        if args[0] == "ecparam" {
            c.arg(&sec1);
        } else {
            c.arg(&sec1).arg("-out").arg(&ec_cert);
        }
        assert!(
            c.stderr(Stdio::null()).status().unwrap().success(),
            "{args:?}"
        );
    }
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    sixstack_tls::material::certified_key(&ec_cert, &sec1).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
