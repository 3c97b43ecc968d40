//! Root tests over a real veth pair between two fresh network namespaces: the appliance
//! side runs the XDP program and an XSK, the peer side is the ordinary kernel.
//!
//! Each test makes its own uniquely named namespaces and deletes them on drop, failure
//! included. Skipped (with a note) when not running as root.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use smoltcp::phy::{ChecksumCapabilities, Device, RxToken, TxToken};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscRepr, UdpPacket, UdpRepr,
};

use super::*;
use crate::netdev::mac_address;
use crate::test_lab::{is_root, run, Lab, Veth};
use crate::Link;

const APPLIANCE_IF: &str = "six0";
const PEER_IF: &str = "peer0";
const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 1);
const STACK_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 2);
const KERNEL_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 3);

fn ip(args: &[&str]) {
    run("ip", args);
}

fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair; deleted on drop.
fn new_lab() -> Lab {
    Lab::new(&Veth {
        prefix: "sxd",
        appliance_if: APPLIANCE_IF,
        peer_if: PEER_IF,
        queues: None,
        peer_addrs: &["10.99.1.1/24"],
    })
}

/// Attaches (or opens a link) through `attach`, retrying for up to 2 s while the interface still holds a
/// program this test dropped a moment ago: a child that another test forks at that moment
/// keeps a copy of the program's descriptor until it execs.
fn attach_when_free<T: Send>(
    lab: &Lab,
    attach: impl Fn() -> Result<T, XdpError> + Send + Sync,
) -> Result<T, XdpError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match lab.in_appliance(&attach) {
            Err(XdpError::Attach { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn filter_v4() -> XdpFilter {
    XdpFilter {
        ipv4: vec![STACK_V4],
        ipv6: vec![],
    }
}

fn now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(0)
}

/// Waits up to 3 s for the next frame on the link and returns a copy.
fn next_frame(link: &mut XdpLink) -> Option<Vec<u8>> {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        link.flush().unwrap();
        if let Some((rx, _tx)) = link.receive(now()) {
            return Some(rx.consume(|f| f.to_vec()));
        }
        link.poll_rx(Duration::from_millis(50)).unwrap();
    }
    None
}

/// Sends one frame built by `build` through the link and flushes.
fn send_frame(link: &mut XdpLink, len: usize, build: impl FnOnce(&mut [u8])) {
    let tx = link.transmit(now()).expect("a free TX frame");
    tx.consume(len, build);
    link.flush().unwrap();
}

fn emit_eth(buf: &mut [u8], src: [u8; 6], dst: [u8; 6], ty: EthernetProtocol) {
    EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype: ty,
    }
    .emit(&mut EthernetFrame::new_unchecked(buf));
}

/// Builds an Ethernet/IPv4/UDP frame with correct checksums.
fn udp4_frame(
    src: ([u8; 6], Ipv4Addr, u16),
    dst: ([u8; 6], Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: src.2,
        dst_port: dst.2,
    };
    let ip = Ipv4Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len() + ip.payload_len];
    emit_eth(&mut f, src.0, dst.0, EthernetProtocol::Ipv4);
    let caps = ChecksumCapabilities::default();
    let mut pkt = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.emit(&mut pkt, &caps);
    udp.emit(
        &mut UdpPacket::new_unchecked(pkt.payload_mut()),
        &IpAddress::Ipv4(src.1),
        &IpAddress::Ipv4(dst.1),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    f
}

/// The (destination address, destination port, payload) of a valid IPv4 UDP frame.
fn parse_udp4(frame: &[u8]) -> Option<(Ipv4Addr, u16, Vec<u8>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp || !ip.verify_checksum() {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    assert!(
        udp.verify_checksum(&s, &d),
        "bad UDP checksum from the peer"
    );
    Some((ip.dst_addr(), udp.dst_port(), udp.payload().to_vec()))
}

#[test]
fn afxdp_arp_and_udp_roundtrip_over_veth() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let stack_mac = lab.in_appliance(|| mac_address(APPLIANCE_IF)).unwrap();
    let peer_mac = lab.in_peer(|| mac_address(PEER_IF)).unwrap();
    let mut link = lab
        .in_appliance(|| XdpLink::open(&XdpConfig::new(APPLIANCE_IF, 0, filter_v4())))
        .unwrap();
    eprintln!("opened: {}", link.describe());
    assert!(link.describe().starts_with("af_xdp six0 q0 "));
    assert!(link.wait_fd().is_some());
    assert!(link.prepare_wait(), "nothing received yet");

    let peer = lab.in_peer(|| UdpSocket::bind((PEER_V4, 5555))).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // The peer kernel does not know the stack's MAC yet: it asks with ARP first.
    peer.send_to(b"hello sixstack", (STACK_V4, 7777)).unwrap();

    let frame = next_frame(&mut link).expect("the ARP request reaches the XSK");
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    assert_eq!(eth.ethertype(), EthernetProtocol::Arp);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    let ArpRepr::EthernetIpv4 {
        operation,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = arp
    else {
        panic!("unexpected ARP {arp:?}");
    };
    assert_eq!(operation, ArpOperation::Request);
    assert_eq!(
        (source_protocol_addr, target_protocol_addr),
        (PEER_V4, STACK_V4)
    );

    // Answer it by hand through the TX ring.
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(stack_mac),
        source_protocol_addr: STACK_V4,
        target_hardware_addr: EthernetAddress(peer_mac),
        target_protocol_addr: PEER_V4,
    };
    send_frame(&mut link, 14 + reply.buffer_len(), |buf| {
        emit_eth(buf, stack_mac, peer_mac, EthernetProtocol::Arp);
        reply.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    });

    // Now the queued datagram arrives.
    let frame = next_frame(&mut link).expect("the UDP datagram reaches the XSK");
    let (dst, port, payload) = parse_udp4(&frame).expect("an IPv4 UDP frame");
    assert_eq!(
        (dst, port, &payload[..]),
        (STACK_V4, 7777, &b"hello sixstack"[..])
    );

    // And a datagram built here reaches the peer's socket.
    let out = udp4_frame(
        (stack_mac, STACK_V4, 7777),
        (peer_mac, PEER_V4, 5555),
        b"hello peer",
    );
    send_frame(&mut link, out.len(), |buf| buf.copy_from_slice(&out));
    let mut buf = [0u8; 64];
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("the peer receives our datagram");
    assert_eq!(&buf[..n], b"hello peer");
    assert_eq!(from, (STACK_V4, 7777).into());

    let s = link.stats();
    assert_eq!((s.rx_frames, s.tx_frames), (2, 2), "{s:?}");
    assert_eq!(s.tx_bytes, (14 + 28 + out.len()) as u64);
    assert_eq!(s.rx_dropped, 0, "{s:?}");
}

#[test]
fn afxdp_kernel_address_on_the_same_link_still_reaches_the_kernel() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    ip(&[
        "-n",
        &lab.appliance,
        "addr",
        "add",
        "10.99.1.3/24",
        "dev",
        APPLIANCE_IF,
    ]);
    let mut link = lab
        .in_appliance(|| XdpLink::open(&XdpConfig::new(APPLIANCE_IF, 0, filter_v4())))
        .unwrap();
    let kernel = lab
        .in_appliance(|| UdpSocket::bind((KERNEL_V4, 9999)))
        .unwrap();
    kernel
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let peer = lab.in_peer(|| UdpSocket::bind((PEER_V4, 0))).unwrap();
    peer.send_to(b"for the kernel", (KERNEL_V4, 9999)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = kernel
        .recv_from(&mut buf)
        .expect("the kernel's own address still works");
    assert_eq!(&buf[..n], b"for the kernel");
    // ICMP too, through the kernel's ARP and echo reply.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.peer,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.99.1.3",
        ])
        .output();
    if let Ok(out) = ping {
        assert!(
            out.status.success(),
            "ping: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // None of it was diverted to the XSK.
    link.flush().unwrap();
    assert!(!link.poll_rx(Duration::from_millis(200)).unwrap());
    assert!(link.receive(now()).is_none());
    assert_eq!(link.stats().rx_frames, 0);
}

#[test]
fn afxdp_ndp_and_ipv6_reach_the_xsk() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let peer_v6: Ipv6Addr = "fd00:99::1".parse().unwrap();
    let stack_v6: Ipv6Addr = "fd00:99::2".parse().unwrap();
    ip(&[
        "-n",
        &lab.peer,
        "addr",
        "add",
        "fd00:99::1/64",
        "dev",
        PEER_IF,
        "nodad",
    ]);
    let stack_mac = lab.in_appliance(|| mac_address(APPLIANCE_IF)).unwrap();
    let peer_mac = lab.in_peer(|| mac_address(PEER_IF)).unwrap();
    let filter = XdpFilter {
        ipv4: vec![],
        ipv6: vec![stack_v6],
    };
    let cfg = XdpConfig {
        attach: XdpAttachMode::Generic,
        ..XdpConfig::new(APPLIANCE_IF, 0, filter)
    };
    let mut link = lab.in_appliance(|| XdpLink::open(&cfg)).unwrap();
    assert_eq!(link.attached_mode(), AttachedMode::Generic);
    let peer = lab.in_peer(|| UdpSocket::bind((peer_v6, 5555))).unwrap();
    peer.send_to(b"hello v6", (stack_v6, 7777)).unwrap();

    // First the Neighbor Solicitation, sent to the solicited-node group.
    let frame = next_frame(&mut link).expect("the NS reaches the XSK");
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip6 = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(
        ip6.dst_addr(),
        "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap()
    );
    let icmp = Icmpv6Packet::new_checked(ip6.payload()).unwrap();
    let repr = Icmpv6Repr::parse(
        &ip6.src_addr(),
        &ip6.dst_addr(),
        &icmp,
        &ChecksumCapabilities::default(),
    )
    .unwrap();
    assert!(
        matches!(repr, Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) if target_addr == stack_v6),
        "{repr:?}"
    );

    // Advertise ourselves; then the datagram, to our unicast address.
    let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
        target_addr: stack_v6,
        lladdr: Some(EthernetAddress(stack_mac).into()),
    });
    let ip = Ipv6Repr {
        src_addr: stack_v6,
        dst_addr: peer_v6,
        next_header: IpProtocol::Icmpv6,
        payload_len: na.buffer_len(),
        hop_limit: 255,
    };
    send_frame(&mut link, 14 + ip.buffer_len() + na.buffer_len(), |buf| {
        emit_eth(buf, stack_mac, peer_mac, EthernetProtocol::Ipv6);
        let mut pkt = Ipv6Packet::new_unchecked(&mut buf[14..]);
        ip.emit(&mut pkt);
        na.emit(
            &stack_v6,
            &peer_v6,
            &mut Icmpv6Packet::new_unchecked(pkt.payload_mut()),
            &ChecksumCapabilities::default(),
        );
    });
    let frame = next_frame(&mut link).expect("the UDP datagram reaches the XSK");
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip6 = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip6.dst_addr(), stack_v6);
    assert_eq!(ip6.next_header(), IpProtocol::Udp);
    let udp = UdpPacket::new_checked(ip6.payload()).unwrap();
    assert_eq!((udp.dst_port(), udp.payload()), (7777, &b"hello v6"[..]));
}

#[test]
fn afxdp_programs_detach_on_drop_both_ways() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let show = || ip_output(&["-n", &lab.appliance, "link", "show", "dev", APPLIANCE_IF]);
    let filter = filter_v4();
    for (method, mode) in [
        (AttachMethod::Link, XdpAttachMode::Native),
        (AttachMethod::Netlink, XdpAttachMode::Native),
        (AttachMethod::Netlink, XdpAttachMode::Generic),
        (AttachMethod::Auto, XdpAttachMode::Auto),
    ] {
        let prog = attach_when_free(&lab, || {
            XdpProgram::attach_using(APPLIANCE_IF, &filter, mode, 2, method)
        })
        .unwrap();
        assert_eq!(prog.is_bpf_link(), method != AttachMethod::Netlink);
        let expect = match prog.mode() {
            AttachedMode::Native => "xdp ",
            AttachedMode::Generic => "xdpgeneric",
        };
        assert!(show().contains(expect), "{method:?} {mode:?}: {}", show());
        // A second program on the same interface is refused with a typed error.
        let second = lab
            .in_appliance(|| XdpProgram::attach(APPLIANCE_IF, &filter, XdpAttachMode::Generic, 1));
        assert!(matches!(second, Err(XdpError::Attach { .. })), "{second:?}");
        // A queue outside its XSKMAP is refused before any socket exists.
        let cfg = XdpConfig::new(APPLIANCE_IF, 2, filter.clone());
        let out_of_range = lab.in_appliance(|| XdpLink::bind(&prog, &cfg));
        assert!(matches!(
            out_of_range,
            Err(XdpError::QueueOutOfRange {
                queue: 2,
                queues: 2
            })
        ));
        drop(prog);
        // The program goes with the last reference to its link or attachment; a child that
        // another test forks at that moment holds a copy of the descriptor until it execs,
        // so allow the kernel a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while show().contains("prog/xdp") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            !show().contains("prog/xdp"),
            "{method:?}: still attached: {}",
            show()
        );
    }
}

#[test]
fn afxdp_rebinding_a_queue_right_after_close_succeeds() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let cfg = XdpConfig {
        zero_copy: ZeroCopy::Off,
        ..XdpConfig::new(APPLIANCE_IF, 0, filter_v4())
    };
    let prog = lab
        .in_appliance(|| XdpProgram::attach(APPLIANCE_IF, &cfg.filter, XdpAttachMode::Auto, 1))
        .unwrap();
    let first = lab.in_appliance(|| XdpLink::bind(&prog, &cfg)).unwrap();
    assert!(!first.is_zero_copy());
    drop(first);
    let start = Instant::now();
    let second = lab.in_appliance(|| XdpLink::bind(&prog, &cfg)).unwrap();
    eprintln!("rebind took {:?}: {}", start.elapsed(), second.describe());
    // Zero-copy required on veth: refused with its own error.
    let zc = XdpConfig {
        zero_copy: ZeroCopy::Require,
        queue: 0,
        ..cfg.clone()
    };
    drop(second);
    match lab.in_appliance(|| XdpLink::bind(&prog, &zc)) {
        Err(XdpError::ZeroCopyUnavailable { .. }) => {}
        Ok(l) => eprintln!("zero-copy available here: {}", l.describe()),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn afxdp_frames_recycle_through_small_rings() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    let stack_mac = lab.in_appliance(|| mac_address(APPLIANCE_IF)).unwrap();
    let peer_mac = lab.in_peer(|| mac_address(PEER_IF)).unwrap();
    let mac = stack_mac.map(|b| format!("{b:02x}")).join(":");
    ip(&[
        "-n",
        &lab.peer,
        "neigh",
        "add",
        "10.99.1.2",
        "lladdr",
        &mac,
        "dev",
        PEER_IF,
    ]);
    // 16 receive and 16 transmit frames: every frame is reused many times below.
    let cfg = XdpConfig {
        frame_count: 32,
        ring_size: 16,
        ..XdpConfig::new(APPLIANCE_IF, 0, filter_v4())
    };
    let mut link = lab.in_appliance(|| XdpLink::open(&cfg)).unwrap();
    let peer = lab.in_peer(|| UdpSocket::bind((PEER_V4, 5555))).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();

    // Receive: 10 rounds of 12 datagrams, each round consumed and the frames refilled.
    let mut received = 0;
    for round in 0..10u8 {
        for i in 0..12u8 {
            peer.send_to(&[round, i], (STACK_V4, 7777)).unwrap();
        }
        for _ in 0..12 {
            let f = next_frame(&mut link).expect("a datagram");
            let (_, port, payload) = parse_udp4(&f).unwrap();
            assert_eq!(port, 7777);
            assert_eq!(payload[0], round);
            received += 1;
        }
    }
    assert_eq!(received, 120);

    // Transmit: 200 datagrams through 16 frames, several copy-mode batches per flush.
    let mut sent = 0u32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sent < 200 && Instant::now() < deadline {
        while sent < 200 {
            let Some(tx) = link.transmit(now()) else {
                break;
            };
            let f = udp4_frame(
                (stack_mac, STACK_V4, 7777),
                (peer_mac, PEER_V4, 5555),
                &sent.to_be_bytes(),
            );
            tx.consume(f.len(), |b| b.copy_from_slice(&f));
            sent += 1;
        }
        link.flush().unwrap();
    }
    assert_eq!(sent, 200);
    let mut buf = [0u8; 16];
    for expect in 0..200u32 {
        let (n, _) = peer.recv_from(&mut buf).expect("all 200 datagrams arrive");
        assert_eq!(&buf[..n], &expect.to_be_bytes());
    }
    let s = link.stats();
    assert_eq!(
        (s.rx_frames, s.tx_frames, s.rx_dropped),
        (120, 200, 0),
        "{s:?}"
    );
    eprintln!("recycle stats: {s:?}");
}

/// Jumbo frames (MTU 9000) through multi-buffer AF_XDP (`XDP_USE_SG`): the kernel hands a
/// received 9 KB frame over in several buffers, which the link gathers; a 9 KB frame sent
/// here leaves as one descriptor per UMEM frame and reaches the peer's socket whole.
#[test]
fn afxdp_jumbo_frames_cross_in_several_buffers() {
    if !is_root() {
        return;
    }
    for (attach, frame_size) in [
        (XdpAttachMode::Native, 4096),
        (XdpAttachMode::Native, 2048),
        (XdpAttachMode::Generic, 4096),
    ] {
        let lab = new_lab();
        ip(&[
            "-n",
            &lab.appliance,
            "link",
            "set",
            APPLIANCE_IF,
            "mtu",
            "9000",
        ]);
        ip(&["-n", &lab.peer, "link", "set", PEER_IF, "mtu", "9000"]);
        let stack_mac = lab.in_appliance(|| mac_address(APPLIANCE_IF)).unwrap();
        let peer_mac = lab.in_peer(|| mac_address(PEER_IF)).unwrap();
        let mac = stack_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        ip(&[
            "-n",
            &lab.peer,
            "neigh",
            "replace",
            &STACK_V4.to_string(),
            "lladdr",
            &mac,
            "dev",
            PEER_IF,
        ]);
        let cfg = XdpConfig {
            attach,
            frame_size,
            mtu: 9000,
            ..XdpConfig::new(APPLIANCE_IF, 0, filter_v4())
        };
        assert!(cfg.multi_buffer());
        let mut link = match attach_when_free(&lab, || XdpLink::open(&cfg)) {
            Ok(l) => l,
            Err(e) => panic!("{attach:?} {frame_size}: {e}"),
        };
        assert_eq!(link.capabilities().max_transmission_unit, 9014);
        let peer = lab.in_peer(|| UdpSocket::bind((PEER_V4, 5555))).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();

        // Small, jumbo, small: order and contents survive the gathering.
        let sizes = [100usize, 8972, 3000, 5000, 17];
        for (i, &n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|b| (b * 7 + i) as u8).collect();
            peer.send_to(&payload, (STACK_V4, 7777)).unwrap();
            let frame = next_frame(&mut link)
                .unwrap_or_else(|| panic!("{attach:?} {frame_size}: datagram {i} of {n} B"));
            let (_, port, got) = parse_udp4(&frame).expect("an IPv4 UDP frame");
            assert_eq!(port, 7777);
            assert!(
                got == payload,
                "{attach:?} {frame_size}: datagram {i} differs"
            );
        }

        // And jumbo frames built here reach the peer whole.
        for n in [8972usize, 4000, 64] {
            let payload: Vec<u8> = (0..n).map(|b| (b * 13) as u8).collect();
            let out = udp4_frame(
                (stack_mac, STACK_V4, 7777),
                (peer_mac, PEER_V4, 5555),
                &payload,
            );
            send_frame(&mut link, out.len(), |buf| buf.copy_from_slice(&out));
            let mut buf = vec![0u8; 9100];
            let (got, _) = peer
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("{attach:?} {frame_size}: {n} B: {e}"));
            assert_eq!(&buf[..got], &payload[..], "{attach:?} {frame_size}: {n} B");
        }
        // The transmit slots came back: many more jumbo frames than slots still go out.
        for _ in 0..3000 {
            let out = udp4_frame(
                (stack_mac, STACK_V4, 7777),
                (peer_mac, PEER_V4, 5556),
                &[0u8; 8000],
            );
            let end = Instant::now() + Duration::from_secs(2);
            loop {
                link.flush().unwrap();
                if let Some(tx) = link.transmit(now()) {
                    tx.consume(out.len(), |buf| buf.copy_from_slice(&out));
                    break;
                }
                assert!(
                    Instant::now() < end,
                    "{attach:?} {frame_size}: TX slots leak"
                );
            }
        }
        link.flush().unwrap();
        let s = link.stats();
        assert_eq!(s.rx_frames, sizes.len() as u64, "{s:?}");
        assert_eq!(s.rx_dropped, 0, "{s:?}");
    }
}

/// A filter without addresses (an appliance still waiting for its addresses) loads and
/// attaches, and passes every frame to the kernel.
#[test]
fn afxdp_empty_filter_loads_and_passes_everything() {
    if !is_root() {
        return;
    }
    let lab = new_lab();
    for mode in [XdpAttachMode::Generic, XdpAttachMode::Native] {
        let prog = attach_when_free(&lab, || {
            XdpProgram::attach(APPLIANCE_IF, &XdpFilter::default(), mode, 1)
        })
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        drop(prog);
    }
    // With only IPv6 addresses, IPv4 frames and ARP still load fine (and pass).
    let v6_only = XdpFilter {
        ipv4: vec![],
        ipv6: vec!["fd00:99::2".parse().unwrap()],
    };
    attach_when_free(&lab, || {
        XdpProgram::attach(APPLIANCE_IF, &v6_only, XdpAttachMode::Generic, 1)
    })
    .unwrap();
}
