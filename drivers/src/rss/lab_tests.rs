//! Root tests of the RSS emulator over a real two-queue veth pair between two fresh network
//! namespaces: the emulator runs on the peer's egress, and the appliance side binds one
//! AF_XDP socket per receive queue, so each frame's queue is observed where it lands.
//!
//! Each test makes its own uniquely named namespaces and deletes them on drop, failure
//! included. Skipped (with a note) when not running as root.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::time::{Duration, Instant};

use smoltcp::phy::{Device, RxToken};

use super::emulator::AttachMethod;
use super::*;
use crate::afxdp::{XdpAttachMode, XdpConfig, XdpFilter, XdpLink, XdpProgram};
use crate::netdev::mac_address;
use crate::test_lab::{is_root, run, Lab, Veth};
use crate::Link;

const APPLIANCE_IF: &str = "sxr0";
const PEER_IF: &str = "sxr0p";
const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 7, 1);
const STACK_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 7, 2);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 7, 0, 0, 0, 0, 1);
const STACK_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 7, 0, 0, 0, 0, 2);
const STACK_PORT: u16 = 7000;
const QUEUES: u32 = 2;
const FRAMES: u16 = 64;

/// Two namespaces joined by a two-queue veth pair, the peer addressed and told the
/// appliance's MAC; deleted on drop.
fn new_lab() -> Lab {
    let lab = Lab::new(&Veth {
        prefix: "sxr",
        appliance_if: APPLIANCE_IF,
        peer_if: PEER_IF,
        queues: Some(QUEUES),
        peer_addrs: &["10.99.7.1/24", "fd00:99:7::1/64"],
    });
    // The stack side answers no ARP/NDP here: tell the peer its MAC.
    let mac = lab.in_appliance(|| mac_address(APPLIANCE_IF)).unwrap();
    let mac = mac.map(|b| format!("{b:02x}")).join(":");
    for addr in ["10.99.7.2", "fd00:99:7::2"] {
        run(
            "ip",
            &[
                "-n",
                &lab.peer,
                "neigh",
                "replace",
                addr,
                "lladdr",
                &mac,
                "dev",
                PEER_IF,
                "nud",
                "permanent",
            ],
        );
    }
    lab
}

/// One AF_XDP socket on each appliance queue, fed by one XDP program.
fn sockets(lab: &Lab) -> Vec<XdpLink> {
    let filter = XdpFilter {
        ipv4: vec![STACK_V4],
        ipv6: vec![STACK_V6],
    };
    lab.in_appliance(|| {
        let prog = XdpProgram::attach(APPLIANCE_IF, &filter, XdpAttachMode::Auto, QUEUES)?;
        (0..QUEUES)
            .map(|q| {
                let mut cfg = XdpConfig::new(APPLIANCE_IF, q, filter.clone());
                cfg.frame_count = 512;
                cfg.ring_size = 256;
                XdpLink::bind(&prog, &cfg)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
}

/// Sends one datagram from each of `FRAMES` source ports starting at `base` to the
/// stack's address of `dst`'s family and returns, per source port, the queue it
/// arrived on.
fn round(lab: &Lab, links: &mut [XdpLink], dst: IpAddr, base: u16) -> HashMap<u16, u32> {
    let src: IpAddr = match dst {
        IpAddr::V4(_) => PEER_V4.into(),
        IpAddr::V6(_) => PEER_V6.into(),
    };
    lab.in_peer(|| {
        for port in base..base + FRAMES {
            let s = UdpSocket::bind((src, port)).unwrap();
            s.send_to(b"rss", (dst, STACK_PORT)).unwrap();
        }
    });
    let mut seen = HashMap::new();
    let end = Instant::now() + Duration::from_secs(5);
    while seen.len() < usize::from(FRAMES) && Instant::now() < end {
        for (q, link) in links.iter_mut().enumerate() {
            link.flush().unwrap();
            let now = smoltcp::time::Instant::from_millis(0);
            while let Some((rx, _tx)) = link.receive(now) {
                if let Some((s, sport, dport)) = rx.consume(udp_tuple) {
                    if s == src && dport == STACK_PORT && (base..base + FRAMES).contains(&sport) {
                        let q = u32::try_from(q).unwrap();
                        assert_eq!(seen.insert(sport, q), None, "duplicate from {sport}");
                    }
                }
            }
            link.poll_rx(Duration::from_millis(5)).unwrap();
        }
    }
    assert_eq!(
        seen.len(),
        usize::from(FRAMES),
        "only {} of {FRAMES} datagrams arrived",
        seen.len()
    );
    seen
}

/// (source address, source port, destination port) of an IPv4/IPv6 UDP frame.
fn udp_tuple(f: &[u8]) -> Option<(IpAddr, u16, u16)> {
    let port = |at: usize| Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]));
    match f.get(12..14)? {
        [0x08, 0x00] if *f.get(23)? == 17 => {
            let l4 = 14 + usize::from(f.get(14)? & 0x0f) * 4;
            let src: [u8; 4] = f.get(26..30)?.try_into().ok()?;
            Some((Ipv4Addr::from(src).into(), port(l4)?, port(l4 + 2)?))
        }
        [0x86, 0xdd] if *f.get(20)? == 17 => {
            let src: [u8; 16] = f.get(22..38)?.try_into().ok()?;
            Some((Ipv6Addr::from(src).into(), port(54)?, port(56)?))
        }
        _ => None,
    }
}

/// Asserts every datagram of `seen` landed on `rss.queue_for` its tuple (as the appliance
/// receives it) and that every queue got some.
fn assert_steered(rss: &RssConfig, seen: &HashMap<u16, u32>, src: IpAddr, dst: IpAddr) {
    let mut per_queue = [0u32; QUEUES as usize];
    for (&sport, &q) in seen {
        let want = rss.queue_for(src, dst, sport, STACK_PORT);
        assert_eq!(
            q, want,
            "datagram from {src}:{sport} landed on queue {q}, want {want}"
        );
        per_queue[q as usize] += 1;
    }
    eprintln!("{src} → {dst}: per queue {per_queue:?}");
    assert!(per_queue.iter().all(|&n| n > 0), "{per_queue:?}");
}

#[test]
fn rss_emulator_steers_veth_frames_to_the_computed_queue() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let mut links = sockets(&lab);

    // Without the emulator frames still arrive, on whatever queue the kernel picks.
    let before = round(&lab, &mut links, STACK_V4.into(), 40_000);
    let on_q1 = before.values().filter(|&&q| q == 1).count();
    eprintln!("no emulator: {on_q1} of {FRAMES} on queue 1");

    let rss = RssConfig::with_queues(QUEUES);
    let emu = lab.in_peer(|| RssEmulator::attach(PEER_IF, &rss)).unwrap();
    assert!(emu.is_bpf_link(), "tcx link expected on this kernel");
    assert_eq!(emu.ifname(), PEER_IF);
    let seen = round(&lab, &mut links, STACK_V4.into(), 41_000);
    assert_steered(&rss, &seen, PEER_V4.into(), STACK_V4.into());
    let seen = round(&lab, &mut links, STACK_V6.into(), 42_000);
    assert_steered(&rss, &seen, PEER_V6.into(), STACK_V6.into());
    drop(emu);

    // The inverse table sends every flow to the other queue: the program, not chance,
    // decides.
    let inverse = RssConfig::new(
        RssConfig::DEFAULT_KEY.to_vec(),
        (0..128).map(|i| 1 - i % 2).collect(),
    )
    .unwrap();
    let emu = lab
        .in_peer(|| RssEmulator::attach(PEER_IF, &inverse))
        .unwrap();
    let seen = round(&lab, &mut links, STACK_V4.into(), 43_000);
    assert_steered(&inverse, &seen, PEER_V4.into(), STACK_V4.into());
    for (&sport, &q) in &seen {
        assert_ne!(
            q,
            rss.queue_for(PEER_V4.into(), STACK_V4.into(), sport, STACK_PORT)
        );
    }
    drop(emu);
    // Detached: frames still flow.
    round(&lab, &mut links, STACK_V4.into(), 44_000);
}

#[test]
fn rss_emulator_on_clsact_steers_and_cleans_up() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let mut links = sockets(&lab);
    let tc = |args: &[&str]| {
        let mut all = vec!["-n", lab.peer.as_str()];
        all.extend_from_slice(args);
        run("tc", &all)
    };
    let rss = RssConfig::with_queues(QUEUES);
    let emu = lab
        .in_peer(|| RssEmulator::attach_using(PEER_IF, &rss, AttachMethod::Tc))
        .unwrap();
    assert!(!emu.is_bpf_link());
    let filters = tc(&["filter", "show", "dev", PEER_IF, "egress"]);
    assert!(
        filters.contains("sixstack_rss") && filters.contains("direct-action"),
        "{filters}"
    );
    // A second one on the same hook is refused, not stacked.
    let second = lab.in_peer(|| RssEmulator::attach_using(PEER_IF, &rss, AttachMethod::Tc));
    assert!(matches!(second, Err(RssError::Attach { .. })), "{second:?}");
    assert!(tc(&["qdisc", "show", "dev", PEER_IF]).contains("clsact"));

    let seen = round(&lab, &mut links, STACK_V4.into(), 45_000);
    assert_steered(&rss, &seen, PEER_V4.into(), STACK_V4.into());
    let seen = round(&lab, &mut links, STACK_V6.into(), 46_000);
    assert_steered(&rss, &seen, PEER_V6.into(), STACK_V6.into());

    drop(emu);
    let filters = tc(&["filter", "show", "dev", PEER_IF, "egress"]);
    assert!(filters.trim().is_empty(), "left behind: {filters}");
    let qdiscs = tc(&["qdisc", "show", "dev", PEER_IF]);
    assert!(!qdiscs.contains("clsact"), "left behind: {qdiscs}");
}

#[test]
fn veth_reports_no_rss_and_refuses_ntuple_rules() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let (rss, rule) = lab.in_appliance(|| {
        (
            read_from_nic(APPLIANCE_IF),
            NtupleRule::insert(APPLIANCE_IF, Proto::Udp, STACK_PORT, 1),
        )
    });
    assert!(matches!(rss, Ok(None)), "{rss:?}");
    assert!(
        matches!(rule, Err(RssError::Unsupported { .. })),
        "{rule:?}"
    );
    let tcp = lab.in_appliance(|| NtupleRule::insert(APPLIANCE_IF, Proto::Tcp, 80, 0));
    assert!(matches!(tcp, Err(RssError::Unsupported { .. })), "{tcp:?}");
}
