//! The XDP filter program, generated as eBPF instructions: redirect into the XSKMAP only
//! the frames addressed to the stack (IPv4/IPv6 destination, ARP target, NDP solicitation
//! target), pass everything else to the kernel so both can share one interface.
//!
//! Not here: loading or attaching (`bpf.rs`, `netlink.rs`). Addresses are compared as the
//! packet words load (network byte order in memory), with 32-bit compares, so no byte
//! swapping happens at run time. VLAN-tagged frames are passed to the kernel.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::asm::{reg::*, Asm, AsmError, Cond, Insn, Size};
use super::sys::{BPF_FUNC_REDIRECT_MAP, XDP_PASS};
use super::XdpFilter;

/// Most addresses per family the program matches (each costs a few instructions).
pub const MAX_ADDRS_PER_FAMILY: usize = 16;

// Frame layout (Ethernet II, no VLAN tag).
const ETH_HLEN: i32 = 14;
const ETH_TYPE_OFF: i16 = 12;
const IPV4_DST_OFF: i16 = 14 + 16;
const ARP_TPA_OFF: i16 = 14 + 24;
const IPV6_NEXT_HDR_OFF: i16 = 14 + 6;
const IPV6_DST_OFF: i16 = 14 + 24;
const ICMPV6_TYPE_OFF: i16 = 14 + 40;
const NDP_TARGET_OFF: i16 = 14 + 40 + 8;
// `struct xdp_md` fields.
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;
// Values as a little-endian load of network-order bytes sees them.
const ETHERTYPE_IPV4_LE: i32 = 0x0008;
const ETHERTYPE_ARP_LE: i32 = 0x0608;
const ETHERTYPE_IPV6_LE: i32 = 0xdd86;
const IPPROTO_ICMPV6: i32 = 58;
const ICMPV6_NEIGHBOR_SOLICIT: i32 = 135;

/// The immediate that equals a 4-byte word of the packet loaded by `ldxw` on this host.
fn word(bytes: [u8; 4]) -> u32 {
    u32::from_ne_bytes(bytes)
}

fn v4_word(a: &Ipv4Addr) -> u32 {
    word(a.octets())
}

fn v6_words(a: &Ipv6Addr) -> [u32; 4] {
    let o = a.octets();
    [0, 4, 8, 12].map(|i| word([o[i], o[i + 1], o[i + 2], o[i + 3]]))
}

/// Ethertype immediates as a host 16-bit load sees the network-order bytes.
fn ethertype(le_value: i32) -> i32 {
    if cfg!(target_endian = "little") {
        le_value
    } else {
        ((le_value & 0xff) << 8) | ((le_value >> 8) & 0xff)
    }
}

/// Emits `if data + len > data_end goto pass`, with r2 = data, r3 = data_end, r4 scratch.
fn bounds(a: &mut Asm, len: i32, pass: super::asm::Label) {
    a.mov64_reg(R4, R2);
    a.add64_imm(R4, len);
    a.jmp_reg(Cond::Gt, R4, R3, pass);
}

/// Emits a match of the 16 bytes at `off` of the packet against each of `addrs`; jumps to
/// `hit` on a match and falls through otherwise. Clobbers r4, r5, r7, r8.
fn match_v6(a: &mut Asm, off: i16, addrs: &[Ipv6Addr], hit: super::asm::Label) {
    let regs = [R4, R5, R7, R8];
    for (i, r) in regs.iter().enumerate() {
        a.ldx(Size::W, *r, R2, off + 4 * i as i16);
    }
    for addr in addrs {
        let next = a.label();
        for (r, w) in regs.iter().zip(v6_words(addr)) {
            a.jmp32_imm(Cond::Ne, *r, w, next);
        }
        a.ja(hit);
        a.bind(next);
    }
}

/// Generates the filter program for `filter`, redirecting into the XSKMAP `map_fd`.
///
/// Registers: r6 = context, r2 = data, r3 = data_end, r4/r5/r7/r8 scratch.
pub(crate) fn build(filter: &XdpFilter, map_fd: i32) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    let pass = a.label();
    let redirect = a.label();
    let ipv4 = a.label();
    let arp = a.label();
    let ipv6 = a.label();

    a.mov64_reg(R6, R1);
    a.ldx(Size::W, R2, R1, MD_DATA);
    a.ldx(Size::W, R3, R1, MD_DATA_END);
    bounds(&mut a, ETH_HLEN, pass);
    a.ldx(Size::H, R5, R2, ETH_TYPE_OFF);
    a.jmp_imm(Cond::Eq, R5, ethertype(ETHERTYPE_IPV4_LE), ipv4);
    a.jmp_imm(Cond::Eq, R5, ethertype(ETHERTYPE_ARP_LE), arp);
    a.jmp_imm(Cond::Eq, R5, ethertype(ETHERTYPE_IPV6_LE), ipv6);
    a.ja(pass);

    // IPv4: the destination address.
    a.bind(ipv4);
    if !filter.ipv4.is_empty() {
        bounds(&mut a, i32::from(IPV4_DST_OFF) + 4, pass);
        a.ldx(Size::W, R5, R2, IPV4_DST_OFF);
        for addr in &filter.ipv4 {
            a.jmp32_imm(Cond::Eq, R5, v4_word(addr), redirect);
        }
    }
    a.ja(pass);

    // ARP: the target protocol address (requests for us, replies to us).
    a.bind(arp);
    if !filter.ipv4.is_empty() {
        bounds(&mut a, i32::from(ARP_TPA_OFF) + 4, pass);
        a.ldx(Size::W, R5, R2, ARP_TPA_OFF);
        for addr in &filter.ipv4 {
            a.jmp32_imm(Cond::Eq, R5, v4_word(addr), redirect);
        }
    }
    a.ja(pass);

    // IPv6: the destination, else a Neighbor Solicitation whose target is ours.
    a.bind(ipv6);
    if !filter.ipv6.is_empty() {
        bounds(&mut a, i32::from(IPV6_DST_OFF) + 16, pass);
        match_v6(&mut a, IPV6_DST_OFF, &filter.ipv6, redirect);
        a.ldx(Size::B, R4, R2, IPV6_NEXT_HDR_OFF);
        a.jmp_imm(Cond::Ne, R4, IPPROTO_ICMPV6, pass);
        bounds(&mut a, i32::from(NDP_TARGET_OFF) + 16, pass);
        a.ldx(Size::B, R4, R2, ICMPV6_TYPE_OFF);
        a.jmp_imm(Cond::Ne, R4, ICMPV6_NEIGHBOR_SOLICIT, pass);
        match_v6(&mut a, NDP_TARGET_OFF, &filter.ipv6, redirect);
    }
    a.ja(pass);

    // bpf_redirect_map(map, ctx->rx_queue_index, XDP_PASS): XDP_PASS if the slot is empty.
    // With no address at all nothing jumps here, and the verifier refuses unreachable
    // instructions: the program then passes every frame.
    if !filter.ipv4.is_empty() || !filter.ipv6.is_empty() {
        a.bind(redirect);
        a.ldx(Size::W, R2, R6, MD_RX_QUEUE_INDEX);
        a.ld_map_fd(R1, map_fd);
        a.mov64_imm(R3, XDP_PASS);
        a.call(BPF_FUNC_REDIRECT_MAP);
        a.exit();
    }

    a.bind(pass);
    a.mov64_imm(R0, XDP_PASS);
    a.exit();
    a.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::asm::interp::{run, Outcome};
    use super::*;

    const PASS: Outcome = Outcome::Action(2);

    fn filter() -> XdpFilter {
        XdpFilter {
            ipv4: vec![Ipv4Addr::new(10, 99, 1, 2), Ipv4Addr::new(192, 0, 2, 200)],
            ipv6: vec![
                "fd00:99::2".parse().unwrap(),
                "2001:db8::ff:fe00:1".parse().unwrap(),
            ],
        }
    }

    fn redirected(q: u32) -> Outcome {
        Outcome::Redirect {
            key: u64::from(q),
            flags: 2,
        }
    }

    fn eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn ipv4(dst: Ipv4Addr) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 99, 1, 1];
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(&[0; 8]);
        eth(0x0800, &ip)
    }

    fn arp(tpa: Ipv4Addr) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 99, 1, 1];
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&tpa.octets());
        eth(0x0806, &a)
    }

    fn ipv6(dst: Ipv6Addr, next: u8, icmp_type: u8, target: Ipv6Addr) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0, 0, 32, next, 255];
        ip.extend_from_slice(&"fd00:99::1".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(&[icmp_type, 0, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&target.octets());
        eth(0x86dd, &ip)
    }

    #[test]
    fn an_empty_filter_passes_every_frame() {
        let p = build(&XdpFilter::default(), 5).unwrap();
        let target: Ipv6Addr = "fd00:99::2".parse().unwrap();
        for frame in [
            ipv4(Ipv4Addr::new(10, 99, 1, 2)),
            arp(Ipv4Addr::new(10, 99, 1, 2)),
            ipv6(target, 58, 135, target),
            eth(0x88cc, &[0; 30]),
        ] {
            assert_eq!(run(&p, &frame, 0), PASS);
        }
    }

    #[test]
    fn ipv4_to_our_addresses_is_redirected_on_the_rx_queue() {
        let p = build(&filter(), 5).unwrap();
        assert_eq!(
            run(&p, &ipv4(Ipv4Addr::new(10, 99, 1, 2)), 0),
            redirected(0)
        );
        // 200 has the top bit set in the loaded word: needs the 32-bit compare.
        assert_eq!(
            run(&p, &ipv4(Ipv4Addr::new(192, 0, 2, 200)), 3),
            redirected(3)
        );
        assert_eq!(run(&p, &ipv4(Ipv4Addr::new(10, 99, 1, 3)), 0), PASS);
        assert_eq!(run(&p, &ipv4(Ipv4Addr::new(2, 1, 99, 10)), 0), PASS);
    }

    #[test]
    fn arp_for_our_addresses_is_redirected() {
        let p = build(&filter(), 5).unwrap();
        assert_eq!(run(&p, &arp(Ipv4Addr::new(10, 99, 1, 2)), 1), redirected(1));
        assert_eq!(run(&p, &arp(Ipv4Addr::new(10, 99, 1, 3)), 1), PASS);
    }

    #[test]
    fn ipv6_destination_and_ndp_target_are_redirected() {
        let p = build(&filter(), 5).unwrap();
        let ours: Ipv6Addr = "fd00:99::2".parse().unwrap();
        let other: Ipv6Addr = "fd00:99::3".parse().unwrap();
        let snm: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        assert_eq!(run(&p, &ipv6(ours, 17, 0, other), 0), redirected(0));
        let second: Ipv6Addr = "2001:db8::ff:fe00:1".parse().unwrap();
        assert_eq!(run(&p, &ipv6(second, 6, 0, other), 2), redirected(2));
        assert_eq!(run(&p, &ipv6(other, 17, 0, ours), 0), PASS);
        // Neighbor Solicitation to the solicited-node group, target ours / not ours.
        assert_eq!(run(&p, &ipv6(snm, 58, 135, ours), 0), redirected(0));
        assert_eq!(run(&p, &ipv6(snm, 58, 135, other), 0), PASS);
        // Other ICMPv6 (an advertisement) to a group is the kernel's.
        assert_eq!(run(&p, &ipv6(snm, 58, 136, ours), 0), PASS);
        // An address differing only in the last word must not match.
        let near: Ipv6Addr = "fd00:99::1:2".parse().unwrap();
        assert_eq!(run(&p, &ipv6(near, 17, 0, other), 0), PASS);
    }

    #[test]
    fn short_and_foreign_frames_pass_without_reading_past_the_end() {
        let p = build(&filter(), 5).unwrap();
        for frame in [
            ipv4(Ipv4Addr::new(10, 99, 1, 2)),
            arp(Ipv4Addr::new(10, 99, 1, 2)),
            ipv6(
                "fd00:99::2".parse().unwrap(),
                58,
                135,
                "fd00:99::2".parse().unwrap(),
            ),
        ] {
            // Every truncation either passes or, when the address is already complete,
            // redirects; the interpreter fails the test on any out-of-bounds load.
            for len in 0..frame.len() {
                let _ = run(&p, &frame[..len], 0);
            }
            assert_eq!(run(&p, &frame[..13], 0), PASS);
        }
        // NS cut right before the end of its target.
        let ns = ipv6(
            "ff02::1:ff00:2".parse().unwrap(),
            58,
            135,
            "fd00:99::2".parse().unwrap(),
        );
        assert_eq!(run(&p, &ns[..77], 0), PASS);
        assert_eq!(run(&p, &eth(0x8100, &[0; 60]), 0), PASS, "VLAN");
        assert_eq!(run(&p, &eth(0x88cc, &[0; 60]), 0), PASS, "LLDP");
    }

    #[test]
    fn empty_filter_passes_everything() {
        let p = build(&XdpFilter::default(), 5).unwrap();
        assert_eq!(run(&p, &ipv4(Ipv4Addr::new(10, 99, 1, 2)), 0), PASS);
        assert_eq!(run(&p, &arp(Ipv4Addr::new(10, 99, 1, 2)), 0), PASS);
        let a: Ipv6Addr = "fd00:99::2".parse().unwrap();
        assert_eq!(run(&p, &ipv6(a, 58, 135, a), 0), PASS);
    }

    #[test]
    fn largest_filter_fits() {
        let f = XdpFilter {
            ipv4: (0..MAX_ADDRS_PER_FAMILY as u8)
                .map(|i| Ipv4Addr::new(10, 0, 0, i))
                .collect(),
            ipv6: (0..MAX_ADDRS_PER_FAMILY as u16)
                .map(|i| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i))
                .collect(),
        };
        let p = build(&f, 5).unwrap();
        assert!(p.len() < 4096, "{} instructions", p.len());
        let last = Ipv4Addr::new(10, 0, 0, MAX_ADDRS_PER_FAMILY as u8 - 1);
        assert_eq!(run(&p, &ipv4(last), 0), redirected(0));
    }
}
