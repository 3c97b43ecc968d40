//! A spoofed SYN flood from the peer namespace (raw IPv4 SYNs from addresses that never
//! answer, tens of thousands a second, sent by a small Python raw-socket sender) against
//! the appliance's TCP echo service on AF_XDP, while kernel clients keep connecting:
//! legitimate clients must keep at least 90% success, and the appliance must have evicted
//! half-open handshakes (its backlog is bounded; the flood cannot lock the listener).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Sends pre-built SYNs (sources 198.18.0.0/15, no route back) to DST:PORT for SECS
/// seconds; prints how many it sent.
const FLOODER: &str = r#"
import socket, struct, sys, time, random
dst, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
rnd = random.Random(7)
pkts = []
for i in range(4000):
    src = socket.inet_aton('198.18.%d.%d' % (i // 250, i % 250 + 1))
    d = socket.inet_aton(dst)
    tcp = struct.pack('!HHIIBBHHH', 1024 + i, port, rnd.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(src + d + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), i, 0, 64, 6, 0, src, d)
    pkts.append(ip + tcp)
n, end = 0, time.time() + secs
while time.time() < end:
    for p in pkts:
        try:
            s.sendto(p, (dst, 0)); n += 1
        except OSError:
            pass
print(n)
"#;

#[test]
fn legitimate_clients_get_through_a_spoofed_syn_flood() {
    let g = LabGuard::new(false);
    let running = start_appliance(&g.lab, |_, _| {});
    let echo = sa(g.lab.stack4(), 7);
    // The service answers before the flood.
    assert_eq!(tcp_echo(&g.lab.peer_ns, echo, b"up".to_vec()), b"up");

    let secs = 6.0;
    let flooder = Command::new("ip")
        .args(["netns", "exec", &g.lab.peer_ns, "python3", "-c", FLOODER])
        .arg(g.lab.stack4().to_string())
        .args(["7", &secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (mut ok, mut tries) = (0u32, 0u32);
    while started.elapsed() < Duration::from_secs_f64(secs - 1.5) {
        tries += 1;
        let good = in_ns(&g.lab.peer_ns, move || {
            let Ok(mut s) = std::net::TcpStream::connect_timeout(&echo, Duration::from_secs(2))
            else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 5];
            s.write_all(b"hello").is_ok() && s.read_exact(&mut b).is_ok() && &b == b"hello"
        });
        ok += u32::from(good);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = flooder.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "flooder: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let rate = sent / secs;
    let stats = running.stop().unwrap();
    let evicted: u64 = stats.iter().map(|s| s.steer.syn_evicted).sum();
    println!("flood: {rate:.0} SYN/s; legitimate: {ok}/{tries}; half-open evicted: {evicted}");
    assert!(
        rate >= 10_000.0,
        "the flood was too weak to prove anything: {rate:.0}/s"
    );
    assert!(
        evicted > 1000,
        "the flood did not reach the listener: {evicted} evictions"
    );
    assert!(tries >= 10, "{tries}");
    assert!(
        f64::from(ok) >= 0.9 * f64::from(tries),
        "legitimate clients: {ok}/{tries} during {rate:.0} SYN/s"
    );
}

#[test]
fn a_client_address_over_its_connection_limit_is_refused_and_others_are_not() {
    let g = LabGuard::new(false);
    let text = format!(
        "{}\n[tcp]\nmax_per_source = 3\n",
        sixstack::lab_config(&g.lab, None)
    );
    let running = start_appliance_with(&text, |_, _| {});
    let (echo4, echo6) = (sa(g.lab.stack4(), 7), sa(g.lab.stack6(), 7));
    // Twenty kernel clients from the peer's IPv4 address, each held open: at most three
    // per shard get in (flows spread over the shards by the NIC's hash), the rest are
    // refused at once with RST.
    let (held, refused) = in_ns(&g.lab.peer_ns, move || {
        let (mut held, mut refused) = (Vec::new(), 0);
        for _ in 0..20 {
            match std::net::TcpStream::connect_timeout(&echo4, Duration::from_secs(3)) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut b = [0u8; 2];
                    s.write_all(b"hi").unwrap();
                    s.read_exact(&mut b).unwrap();
                    held.push(s);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                Err(e) => panic!("connect: {e}"),
            }
        }
        (held, refused)
    });
    let n_held = held.len();
    assert!(
        n_held > 0 && refused > 0,
        "{n_held} held, {refused} refused"
    );
    assert_eq!(n_held + refused, 20);
    // The peer's IPv6 address is another source: it gets in while IPv4 is at its limit.
    assert_eq!(tcp_echo(&g.lab.peer_ns, echo6, b"v6".to_vec()), b"v6");
    // Once the IPv4 clients close, that address connects again.
    drop(held);
    let mut back = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        back = in_ns(&g.lab.peer_ns, move || {
            std::net::TcpStream::connect_timeout(&echo4, Duration::from_secs(2)).is_ok()
        });
        if back {
            break;
        }
    }
    assert!(
        back,
        "the address stayed refused after its connections closed"
    );
    let stats = running.stop().unwrap();
    let counted: u64 = stats.iter().map(|s| s.net.per_source_refused).sum();
    println!(
        "per-source limit 3 on {} shards: {n_held} held, {refused} refused",
        stats.len()
    );
    assert!(n_held <= 3 * stats.len(), "{n_held} held");
    assert_eq!(counted, refused as u64);
}

/// Connects with TLS (Python's ssl module), completes the handshake, then waits without
/// sending; prints the seconds until the appliance closed the connection.
const IDLE_TLS_CLIENT: &str = r#"
import socket, ssl, sys, time
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=10))
s.settimeout(10)
t = time.time()
try:
    s.recv(1)
except (ConnectionError, ssl.SSLError):
    pass
print(time.time() - t)
"#;

#[test]
fn clients_that_make_no_progress_are_dropped_after_the_idle_limit() {
    let g = LabGuard::new(false);
    let text = sixstack::lab_config(&g.lab, None)
        .replace("port = 7\n", "port = 7\nidle_timeout_s = 1\n")
        .replace("port = 19\n", "port = 19\nidle_timeout_s = 1\n")
        .replace("port = 7443\n", "port = 7443\nidle_timeout_s = 1\n");
    let running = start_appliance_with(&text, |_, _| {});
    let (echo, chargen) = (sa(g.lab.stack4(), 7), sa(g.lab.stack4(), 19));

    // A client that connects and sends nothing is dropped after about a second.
    let silent = in_ns(&g.lab.peer_ns, move || {
        let mut s = std::net::TcpStream::connect_timeout(&echo, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t = Instant::now();
        let mut b = [0u8; 1];
        let r = s.read(&mut b);
        (t.elapsed(), format!("{r:?}"))
    });
    println!(
        "silent echo client dropped after {:?}: {}",
        silent.0, silent.1
    );
    assert!(
        silent.0 >= Duration::from_millis(900) && silent.0 < Duration::from_secs(4),
        "{silent:?}"
    );

    // A slow client that keeps making progress is served for longer than the limit.
    let slow = in_ns(&g.lab.peer_ns, move || {
        let mut s = std::net::TcpStream::connect_timeout(&echo, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut back = Vec::new();
        for c in b"slowly" {
            std::thread::sleep(Duration::from_millis(500));
            s.write_all(&[*c]).unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            back.push(b[0]);
        }
        back
    });
    assert_eq!(slow, b"slowly");

    // A client that never reads chargen's stream: once the windows are full the service
    // cannot send, and after the limit the connection is reset.
    let stalled = in_ns(&g.lab.peer_ns, move || {
        let mut s = std::net::TcpStream::connect_timeout(&chargen, Duration::from_secs(3)).unwrap();
        std::thread::sleep(Duration::from_secs(4));
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let t = Instant::now();
        let mut b = vec![0u8; 65536];
        let mut got = 0usize;
        let end = loop {
            match s.read(&mut b) {
                Ok(0) => break "end of stream".to_string(),
                Ok(n) => got += n,
                Err(e) => break e.to_string(),
            }
            if t.elapsed() > Duration::from_secs(5) {
                break "still streaming".to_string();
            }
        };
        (got, end)
    });
    println!(
        "stalled chargen reader: {} bytes then {}",
        stalled.0, stalled.1
    );
    assert!(stalled.1.contains("reset"), "{stalled:?}");

    // TLS: a client that completes the handshake and then waits is closed too.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &g.lab.peer_ns,
            "python3",
            "-c",
            IDLE_TLS_CLIENT,
        ])
        .arg(g.lab.stack4().to_string())
        .arg("7443")
        .arg(format!("{}/ca.pem", sixstack::LAB_TLS_DIR))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waited: f64 = text.trim().parse().unwrap();
    println!("idle TLS client closed after {waited:.2} s");
    assert!((0.9..4.0).contains(&waited), "{waited}");
    running.stop().unwrap();
}
