//! The interop harness: uniquely named labs that always go away, the appliance started
//! in-process on them, and kernel peers (ping, socat, std sockets) in the peer namespace.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use sixstack::app::{self, Running, ShardJob};
use sixstack::config::Config;
use sixstack::lab::Lab;
use sixstack_drivers::netdev;

pub mod backend;
pub mod clients;
pub mod logs;
pub mod postfix;
pub mod rexecd;
pub mod scpd;
pub mod sshd;

static NEXT: AtomicU32 = AtomicU32::new(1);

/// A lab that is removed when dropped, also when the test fails.
pub struct LabGuard {
    pub lab: Lab,
    emulators: std::sync::Mutex<Vec<sixstack_drivers::rss::RssEmulator>>,
}

impl LabGuard {
    pub fn new(tap: bool) -> LabGuard {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{:x}{n}", std::process::id() & 0xffff);
        let lab = Lab::for_test(&tag, (n % 250) as u8 + 1, tap);
        lab.down();
        // The guard exists before anything can fail, so a failure removes the lab.
        let g = LabGuard {
            lab,
            emulators: Default::default(),
        };
        g.lab.up().unwrap_or_else(|e| panic!("lab up: {e}"));
        // The built-in lab configuration serves TLS from the shared lab material.
        sixstack::ensure_lab_tls().unwrap_or_else(|e| panic!("lab TLS material: {e}"));
        g
    }

    /// Emulates NIC RSS on the peer's veth for as long as the guard lives.
    pub fn emulate_rss(&self) {
        let e = self.lab.emulate_rss().unwrap();
        self.emulators.lock().unwrap().push(e);
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Ok(mut e) = self.emulators.lock() {
            e.clear();
        }
        self.lab.down();
    }
}

/// The appliance on a lab, with the built-in services; retries a busy XSK queue.
pub fn start_appliance(
    lab: &Lab,
    extra: impl Fn(&sixstack_stack::Net, u32) + Send + Sync + 'static,
) -> Running {
    start_appliance_with(&sixstack::lab_config(lab, None), extra)
}

/// [`start_appliance`] with a configuration text of the test's own.
#[allow(dead_code)]
pub fn start_appliance_with(
    text: &str,
    extra: impl Fn(&sixstack_stack::Net, u32) + Send + Sync + 'static,
) -> Running {
    let mut last = String::new();
    let extra = std::sync::Arc::new(extra);
    for attempt in 0..8 {
        let cfg = Config::parse(text, "test config").unwrap();
        let services = cfg.clone();
        let extra = extra.clone();
        let ctx = app::service_context(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let job: ShardJob = std::sync::Arc::new(move |net, shard| {
            app::start_services(net, &services, shard, &ctx);
            extra(net, shard);
        });
        match app::start(cfg, job) {
            Ok(r) => return r,
            Err(e) => {
                last = e.to_string();
                if !last.contains("busy") && !last.contains("EBUSY") && !last.contains("16") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500 * (attempt + 1)));
            }
        }
    }
    panic!("appliance did not start: {last}");
}

/// Runs `f` on a thread inside namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    netdev::in_netns(ns, f).unwrap_or_else(|e| panic!("setns {ns}: {e}"))
}

/// Runs a command inside a namespace and returns (success, stdout+stderr).
pub fn ns_exec(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).to_string();
    s += &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), s)
}

/// Deterministic test payload.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One TCP echo round with a kernel client in `ns`: sends `data`, half-closes, reads
/// everything back; a writer and a reader thread so large payloads cannot deadlock.
pub fn tcp_echo(ns: &str, to: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    in_ns(ns, move || {
        let mut s = connect_retry(to);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        back
    })
}

/// Connects, retrying while the appliance is still coming up (ARP/NDP, listeners).
pub fn connect_retry(to: SocketAddr) -> std::net::TcpStream {
    let mut last = None;
    for _ in 0..50 {
        match std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(s) => return s,
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    panic!("connect {to}: {last:?}");
}

/// UDP echo rounds from `ns` to `to`; returns how many came back intact.
pub fn udp_echo(ns: &str, to: SocketAddr, rounds: usize) -> usize {
    in_ns(ns, move || {
        let bind: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let s = std::net::UdpSocket::bind(bind).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut ok = 0;
        let mut buf = [0u8; 2048];
        for i in 0..rounds {
            let msg = pattern(1 + (i * 97) % 1400, i as u64);
            for _try in 0..5 {
                s.send_to(&msg, to).unwrap();
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    if from == to && buf[..n] == msg[..] {
                        ok += 1;
                        break;
                    }
                }
            }
        }
        ok
    })
}

/// Socket address helper.
pub fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// Runs `job` on the appliance's shard and waits for the value it sends.
pub fn on_shard<T: Send + 'static>(
    running_lab: &Lab,
    f: impl Fn(&sixstack_stack::Net, mpsc::Sender<T>) + Send + Sync + 'static,
) -> (Running, mpsc::Receiver<T>) {
    let (tx, rx) = mpsc::channel();
    let f = std::sync::Arc::new(f);
    let tx = std::sync::Arc::new(std::sync::Mutex::new(tx));
    let r = start_appliance(running_lab, move |net, shard| {
        if shard == 0 {
            let tx = tx.lock().unwrap().clone();
            f(net, tx);
        }
    });
    (r, rx)
}
