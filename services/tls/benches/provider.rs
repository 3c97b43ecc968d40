//! Compares the two crypto providers sixstack-tls can be built with, ring and aws-lc-rs,
//! through rustls itself: record protection of 16 KiB application writes for each AEAD
//! suite (and the bare AEAD seal of each crate), full TLS 1.3 handshakes with ECDSA P-256,
//! RSA-2048 and RSA-4096 certificates, and resumed TLS 1.3 handshakes. Both ends are
//! connection objects in memory: no sockets, no stack; this measures crypto and rustls.
//!
//! Run with `cargo bench -p sixstack-tls --features ring --bench provider` (both features:
//! the bench names each provider itself instead of using `provider::provider()`). RSA
//! certificates are made with the `openssl` command at start; without it those cases are
//! skipped with a note.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::ProducesTickets;
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, NamedGroup,
    RootCertStore, ServerConfig, ServerConnection,
};
use sixstack_tls::selfsigned::{LabCa, Validity};

/// One 16 KiB application write: exactly one full-size TLS record.
const RECORD: usize = 16 * 1024;
const SERVER_NAME: &str = "localhost";

/// A provider as rustls sees it, plus its own session-ticket encrypter.
struct Provider {
    name: &'static str,
    make: fn() -> CryptoProvider,
    ticketer: fn() -> Result<Arc<dyn ProducesTickets>, rustls::Error>,
}

const PROVIDERS: [Provider; 2] = [
    Provider {
        name: "ring",
        make: rustls::crypto::ring::default_provider,
        ticketer: rustls::crypto::ring::Ticketer::new,
    },
    Provider {
        name: "aws-lc-rs",
        make: rustls::crypto::aws_lc_rs::default_provider,
        ticketer: rustls::crypto::aws_lc_rs::Ticketer::new,
    },
];

impl Provider {
    /// The provider with key exchange restricted to X25519 and, if given, one suite only.
    fn restricted(&self, suite: Option<CipherSuite>) -> Arc<CryptoProvider> {
        let mut p = (self.make)();
        p.kx_groups.retain(|g| g.name() == NamedGroup::X25519);
        if let Some(suite) = suite {
            p.cipher_suites.retain(|s| s.suite() == suite);
        }
        assert_eq!(p.kx_groups.len(), 1, "{}: no X25519", self.name);
        assert!(!p.cipher_suites.is_empty(), "{}: no {suite:?}", self.name);
        Arc::new(p)
    }
}

/// A server certificate chain, its key, and the root a client trusts it by.
struct Material {
    label: &'static str,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    root: CertificateDer<'static>,
}

fn ecdsa_p256() -> Material {
    let ca = LabCa::new("sixstack bench CA").unwrap();
    let leaf = ca
        .server(&[SERVER_NAME.to_string()], Validity::default())
        .unwrap();
    let root = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
    Material {
        label: "ecdsa_p256",
        chain: vec![
            CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap(),
            root.clone(),
        ],
        key: PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
        root,
    }
}

/// Runs `openssl` with the (space-separated) `args` in `dir`; `Err` says what failed.
fn openssl(dir: &Path, args: &str) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An RSA CA and a leaf for `localhost` signed by it (SHA-256), both of `bits` bits,
/// made by the `openssl` command in a temporary directory.
fn rsa(bits: u32, label: &'static str) -> Result<Material, String> {
    let dir = std::env::temp_dir().join(format!(
        "sixstack-tls-bench-{}-rsa{bits}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = rsa_in(&dir, bits, label);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn rsa_in(dir: &Path, bits: u32, label: &'static str) -> Result<Material, String> {
    std::fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\n\
         keyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\n",
    )
    .and_then(|()| {
        std::fs::write(
            dir.join("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost\n\
             authorityKeyIdentifier=keyid\n",
        )
    })
    .map_err(|e| format!("{}: {e}", dir.display()))?;
    let genpkey = format!("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{bits} -out");
    let x509 = "x509 -req -days 3650 -sha256";
    for cmd in [
        format!("{genpkey} ca.key"),
        format!("{genpkey} leaf.key"),
        "req -new -key ca.key -subj /O=sixstack/CN=sixstack-bench-RSA-CA -out ca.csr".into(),
        format!("{x509} -in ca.csr -signkey ca.key -extfile ca.ext -out ca.pem"),
        "req -new -key leaf.key -subj /O=sixstack/CN=localhost -out leaf.csr".into(),
        format!(
            "{x509} -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
             -extfile leaf.ext -out leaf.pem"
        ),
    ] {
        openssl(dir, &cmd)?;
    }
    let read = |name: &str| -> Result<Vec<u8>, String> {
        let path: PathBuf = dir.join(name);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let pem = |e: rustls::pki_types::pem::Error| format!("bad PEM from openssl: {e}");
    let root = CertificateDer::from_pem_slice(&read("ca.pem")?).map_err(pem)?;
    Ok(Material {
        label,
        chain: vec![
            CertificateDer::from_pem_slice(&read("leaf.pem")?).map_err(pem)?,
            root.clone(),
        ],
        key: PrivateKeyDer::from_pem_slice(&read("leaf.key")?).map_err(pem)?,
        root,
    })
}

/// Every certificate kind to handshake with; RSA ones only where `openssl` works.
fn materials() -> Vec<Material> {
    let mut all = vec![ecdsa_p256()];
    for (bits, label) in [(2048, "rsa2048"), (4096, "rsa4096")] {
        match rsa(bits, label) {
            Ok(m) => all.push(m),
            Err(e) => eprintln!("note: skipping the {label} handshake cases: {e}"),
        }
    }
    all
}

/// Configs for one provider, TLS 1.3 only. `resume`: the client keeps sessions in memory
/// and the server issues tickets with the provider's own ticketer; otherwise neither.
fn configs(
    p: &Provider,
    m: &Material,
    suite: Option<CipherSuite>,
    resume: bool,
) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let provider = p.restricted(suite);
    let mut roots = RootCertStore::empty();
    roots.add(m.root.clone()).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .unwrap();
    if resume {
        client.resumption = Resumption::in_memory_sessions(64);
        server.ticketer = (p.ticketer)().unwrap();
    } else {
        client.resumption = Resumption::disabled();
        server.send_tls13_tickets = 0;
    }
    (Arc::new(client), Arc::new(server))
}

/// Hands `data` to `conn` and lets it process every record.
fn feed<D>(conn: &mut ConnectionCommon<D>, mut data: &[u8]) {
    while !data.is_empty() {
        conn.read_tls(&mut data).unwrap();
        conn.process_new_packets().unwrap();
    }
}

/// Moves bytes both ways until neither side has anything to send.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection, wire: &mut Vec<u8>) {
    loop {
        let mut moved = false;
        while client.wants_write() {
            wire.clear();
            client.write_tls(wire).unwrap();
            feed(server, wire);
            moved = true;
        }
        while server.wants_write() {
            wire.clear();
            server.write_tls(wire).unwrap();
            feed(client, wire);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// One handshake from new connection objects until both sides are done and idle.
fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    wire: &mut Vec<u8>,
) -> (ClientConnection, ServerConnection) {
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    pump(&mut c, &mut s, wire);
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s)
}

const SUITES: [(CipherSuite, &str); 3] = [
    (CipherSuite::TLS13_AES_128_GCM_SHA256, "aes128gcm"),
    (CipherSuite::TLS13_AES_256_GCM_SHA384, "aes256gcm"),
    (
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "chacha20poly1305",
    ),
];

/// Sends `data` from client to server on an established connection: sealed by the client
/// (one record per 16 KiB), opened by the server and read out into `back`.
fn transfer(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
    wire: &mut Vec<u8>,
    data: &[u8],
    back: &mut [u8],
) {
    client.writer().write_all(data).unwrap();
    wire.clear();
    while client.wants_write() {
        client.write_tls(wire).unwrap();
    }
    feed(server, wire);
    server.reader().read_exact(back).unwrap();
}

/// A 16 KiB application write through rustls, one suite at a time: the client seals it
/// into one record, the server opens it (so each iteration is one seal and one open).
fn bench_records(c: &mut Criterion) {
    let m = ecdsa_p256();
    let data: Vec<u8> = (0..RECORD).map(|i| (i * 7 + i / 251) as u8).collect();
    for (suite, label) in SUITES {
        let mut group = c.benchmark_group(format!("tls13_record_16KiB/{label}"));
        group.throughput(Throughput::Bytes(RECORD as u64));
        for p in &PROVIDERS {
            let (client_cfg, server_cfg) = configs(p, &m, Some(suite), false);
            let mut wire = Vec::with_capacity(2 * RECORD);
            let (mut client, mut server) = handshake(&client_cfg, &server_cfg, &mut wire);
            assert_eq!(client.negotiated_cipher_suite().unwrap().suite(), suite);
            let mut back = vec![0u8; RECORD];
            transfer(&mut client, &mut server, &mut wire, &data, &mut back);
            assert_eq!(back, data);
            group.bench_function(p.name, |b| {
                b.iter(|| {
                    transfer(
                        &mut client,
                        &mut server,
                        &mut wire,
                        black_box(&data),
                        &mut back,
                    )
                })
            });
        }
        group.finish();
    }
}

/// The bare AEAD seal of 16 KiB through each crate's `LessSafeKey` (no rustls, no open).
fn bench_aead_seal(c: &mut Criterion) {
    let algs = [
        (
            &ring::aead::AES_128_GCM,
            &aws_lc_rs::aead::AES_128_GCM,
            "aes128gcm",
        ),
        (
            &ring::aead::AES_256_GCM,
            &aws_lc_rs::aead::AES_256_GCM,
            "aes256gcm",
        ),
        (
            &ring::aead::CHACHA20_POLY1305,
            &aws_lc_rs::aead::CHACHA20_POLY1305,
            "chacha20poly1305",
        ),
    ];
    let key_bytes = [0x42u8; 32];
    let nonce = [7u8; 12];
    let aad = [0x17u8, 0x03, 0x03, 0x40, 0x11];
    for (ring_alg, aws_alg, label) in algs {
        let mut group = c.benchmark_group(format!("aead_seal_16KiB/{label}"));
        group.throughput(Throughput::Bytes(RECORD as u64));
        let mut buf = vec![0u8; RECORD];

        let ring_key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(ring_alg, &key_bytes[..ring_alg.key_len()]).unwrap(),
        );
        group.bench_function("ring", |b| {
            b.iter(|| {
                ring_key
                    .seal_in_place_separate_tag(
                        ring::aead::Nonce::assume_unique_for_key(nonce),
                        ring::aead::Aad::from(aad),
                        black_box(&mut buf[..]),
                    )
                    .unwrap()
            })
        });

        let aws_key = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(aws_alg, &key_bytes[..aws_alg.key_len()]).unwrap(),
        );
        group.bench_function("aws-lc-rs", |b| {
            b.iter(|| {
                aws_key
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                        aws_lc_rs::aead::Aad::from(aad),
                        black_box(&mut buf[..]),
                    )
                    .unwrap()
            })
        });
        group.finish();
    }
}

/// Full TLS 1.3 handshakes (X25519, no resumption offered or tickets issued), per
/// certificate kind.
fn bench_full_handshakes(c: &mut Criterion) {
    for m in materials() {
        let mut group = c.benchmark_group(format!("tls13_full_handshake/{}", m.label));
        for p in &PROVIDERS {
            let (client_cfg, server_cfg) = configs(p, &m, None, false);
            let mut wire = Vec::with_capacity(16 * 1024);
            let (c0, _) = handshake(&client_cfg, &server_cfg, &mut wire);
            assert_eq!(c0.handshake_kind(), Some(HandshakeKind::Full));
            eprintln!(
                "note: {} {}: suite {:?}",
                m.label,
                p.name,
                c0.negotiated_cipher_suite().map(|s| s.suite())
            );
            group.bench_function(BenchmarkId::from_parameter(p.name), |b| {
                b.iter(|| black_box(handshake(&client_cfg, &server_cfg, &mut wire)))
            });
        }
        group.finish();
    }
}

/// Resumed TLS 1.3 handshakes (PSK with X25519, ECDSA P-256 server): one full handshake
/// fills the client's session cache, then every reconnect resumes with a ticket from the
/// previous one and takes the new tickets (the server's default: two) it is sent.
fn bench_resumed_handshakes(c: &mut Criterion) {
    let m = ecdsa_p256();
    let mut group = c.benchmark_group(format!("tls13_resumed_handshake/{}", m.label));
    for p in &PROVIDERS {
        let (client_cfg, server_cfg) = configs(p, &m, None, true);
        let mut wire = Vec::with_capacity(16 * 1024);
        let (c0, _) = handshake(&client_cfg, &server_cfg, &mut wire);
        assert_eq!(c0.handshake_kind(), Some(HandshakeKind::Full));
        let (c1, _) = handshake(&client_cfg, &server_cfg, &mut wire);
        assert_eq!(c1.handshake_kind(), Some(HandshakeKind::Resumed));
        group.bench_function(BenchmarkId::from_parameter(p.name), |b| {
            b.iter(|| {
                let (c, s) = handshake(&client_cfg, &server_cfg, &mut wire);
                assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
                black_box((c, s))
            })
        });
        let (c2, _) = handshake(&client_cfg, &server_cfg, &mut wire);
        assert_eq!(c2.handshake_kind(), Some(HandshakeKind::Resumed));
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_records,
    bench_aead_seal,
    bench_full_handshakes,
    bench_resumed_handshakes
);
criterion_main!(benches);
