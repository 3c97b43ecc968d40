//! The TAP driver against the real kernel: a TAP interface in a throwaway network namespace,
//! the kernel ARPs for a neighbour through it, we answer by hand and send it a UDP datagram.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and `ip`; skipped, with a note, without them.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant as StdInstant};

use sixstack_drivers::tap::{TapLink, TapOptions};
use sixstack_drivers::wait::wait_readable;
use sixstack_drivers::Link;
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;

const OUR_MAC: [u8; 6] = [0x02, 0x5e, 0x00, 0x00, 0x00, 0x02];
const KERNEL_IP: [u8; 4] = [10, 98, 0, 1];
const OUR_IP: [u8; 4] = [10, 98, 0, 2];

/// A network namespace that is deleted when dropped, even if the test fails.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Option<Netns> {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Netns(name))
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ip_output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread that has entered this namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            // SAFETY: setns takes a descriptor we hold open and a flag; it changes only the
            // calling thread's network namespace, and this thread ends right after `f`.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Waits (sleeping on the link's fd) for a frame `want` accepts; returns it.
fn receive_until(link: &mut TapLink, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = StdInstant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while StdInstant::now() < deadline {
        link.flush().unwrap();
        if let Some((rx, _tx)) = link.receive(Instant::ZERO) {
            let len = rx.consume(|f| {
                let n = f.len().min(buf.len());
                buf[..n].copy_from_slice(&f[..n]);
                n
            });
            if want(&buf[..len]) {
                return Some(buf[..len].to_vec());
            }
            continue;
        }
        if link.prepare_wait() {
            let fd = link.wait_fd().unwrap();
            wait_readable(&[fd], Some(Duration::from_millis(500))).unwrap();
        }
    }
    None
}

fn is_arp_request_for_us(f: &[u8]) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == [0, 1]
        && f[28..32] == KERNEL_IP
        && f[38..42] == OUR_IP
}

fn is_udp_to_us(f: &[u8]) -> bool {
    f.len() >= 42
        && f[0..6] == OUR_MAC
        && f[12..14] == [0x08, 0x00]
        && f[23] == 17
        && f[30..34] == OUR_IP
        && f[36..38] == 9999u16.to_be_bytes()
}

fn arp_reply(kernel_mac: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(kernel_mac);
    f.extend_from_slice(&OUR_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&OUR_MAC);
    f.extend_from_slice(&OUR_IP);
    f.extend_from_slice(kernel_mac);
    f.extend_from_slice(&KERNEL_IP);
    f
}

fn udp_frame(kernel_mac: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(kernel_mac);
    f.extend_from_slice(&OUR_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&OUR_IP);
    ip[16..20].copy_from_slice(&KERNEL_IP);
    let sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&7777u16.to_be_bytes());
    f.extend_from_slice(&9999u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    f.extend_from_slice(payload);
    f
}

fn send(link: &mut TapLink, frame: &[u8]) {
    let tok = link.transmit(Instant::ZERO).unwrap();
    tok.consume(frame.len(), |b| b.copy_from_slice(frame));
}

fn exercise(suffix: &str, options: TapOptions) {
    let Some(ns) = Netns::new(format!("sxt{}{suffix}", std::process::id())) else {
        eprintln!("cannot create a network namespace (not root?); skipped");
        return;
    };
    let name = "sxtap0";
    // Keep IPv6 chatter (router solicitations, MLD) off the link; best effort.
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns.0, "sysctl", "-qw"])
        .arg("net.ipv6.conf.all.disable_ipv6=1")
        .status();
    let mut link = ns.run(move || TapLink::open_with(name, 1500, options).unwrap());
    assert_eq!(link.uses_io_uring(), options.io_uring);
    let describe = link.describe();
    assert!(describe.starts_with("tap sxtap0"), "{describe}");
    if options.io_uring {
        assert_eq!(describe, "tap sxtap0 io_uring");
    }
    assert_eq!(link.capabilities().max_transmission_unit, 1514);
    ns.ip(&["link", "set", name, "up"]);
    ns.ip(&["addr", "add", "10.98.0.1/24", "dev", name]);

    let socket = ns.run(|| UdpSocket::bind("0.0.0.0:9999").unwrap());
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Arm the reads and get ready to sleep before the kernel has anything to say (anything
    // it said already is dropped).
    link.flush().unwrap();
    while !link.prepare_wait() {
        while link.receive(Instant::ZERO).is_some() {}
        link.flush().unwrap();
    }
    let fd = link.wait_fd().unwrap();
    socket
        .send_to(b"from the kernel", SocketAddrV4::new(OUR_IP.into(), 9999))
        .unwrap();
    // The kernel's ARP request must wake the sleeper.
    let t = StdInstant::now();
    assert_eq!(
        wait_readable(&[fd], Some(Duration::from_secs(5))).unwrap(),
        1
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "woke after {:?}",
        t.elapsed()
    );

    let arp = receive_until(&mut link, is_arp_request_for_us)
        .expect("the kernel's ARP request came out of the TAP");
    let kernel_mac = arp[6..12].to_vec();

    send(&mut link, &arp_reply(&kernel_mac));
    send(&mut link, &udp_frame(&kernel_mac, b"hello kernel"));
    link.flush().unwrap();

    let mut buf = [0u8; 64];
    let (n, from) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello kernel");
    assert_eq!(from, SocketAddrV4::new(OUR_IP.into(), 7777).into());
    let neigh = ns.ip_output(&["neigh", "show", "10.98.0.2"]);
    assert!(neigh.contains("02:5e:00:00:00:02"), "{neigh}");

    // The datagram the kernel held back while resolving us arrives now.
    let udp = receive_until(&mut link, is_udp_to_us).expect("the kernel's datagram arrived");
    assert!(udp.ends_with(b"from the kernel"));
    assert_eq!(
        Ipv4Addr::from([udp[26], udp[27], udp[28], udp[29]]),
        Ipv4Addr::from(KERNEL_IP)
    );

    let stats = link.stats();
    assert!(stats.rx_frames >= 2, "{stats:?}");
    assert_eq!(stats.tx_frames, 2, "{stats:?}");
    assert_eq!(stats.tx_bytes, (42 + 14 + 20 + 8 + 12) as u64, "{stats:?}");
    assert_eq!(stats.tx_dropped, 0, "{stats:?}");

    // Many frames in one flush: more than the batch, so transmit has to recycle buffers.
    for i in 0..100u8 {
        send(&mut link, &udp_frame(&kernel_mac, &[i; 16]));
    }
    link.flush().unwrap();
    for i in 0..100u8 {
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 16]);
    }
    link.flush().unwrap();
    assert_eq!(link.stats().tx_frames, 102);

    // A frame bigger than the link's MTU (the kernel side allows more) is dropped and
    // counted; the next one still arrives.
    ns.ip(&["link", "set", name, "mtu", "3000"]);
    socket
        .send_to(&[7u8; 2000], SocketAddrV4::new(OUR_IP.into(), 9999))
        .unwrap();
    socket
        .send_to(b"small again", SocketAddrV4::new(OUR_IP.into(), 9999))
        .unwrap();
    let small = receive_until(&mut link, is_udp_to_us).expect("the small datagram arrived");
    assert!(small.ends_with(b"small again"));
    assert_eq!(link.stats().rx_dropped, 1, "{:?}", link.stats());

    // Dropping a link with reads in flight cancels them promptly.
    let t = StdInstant::now();
    drop(link);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        t.elapsed()
    );
}

#[test]
fn tap_with_io_uring_talks_to_the_kernel() {
    exercise("u", TapOptions::default());
}

#[test]
fn tap_read_write_fallback_talks_to_the_kernel() {
    let mut options = TapOptions::default();
    options.io_uring = false;
    exercise("p", options);
}
