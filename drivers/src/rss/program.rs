//! The RSS emulator's tc program, generated as eBPF instructions, and the contents of its
//! one map: it hashes a frame's IPv4/IPv6 TCP/UDP 4-tuple with Toeplitz exactly as
//! [`RssConfig::queue_for`] does and writes `skb->queue_mapping = queue + 1`.
//!
//! The map is a single-entry array whose value holds, as native-endian u32s, the Toeplitz
//! lookup table for the 12 IPv4 input bytes, the one for the 36 IPv6 input bytes, then the
//! indirection table already turned into `queue_mapping` values (queue + 1). The program
//! takes the value's address once (`BPF_PSEUDO_MAP_VALUE`, no helper call) and then costs
//! one byte load, one table load and one XOR per input byte.
//!
//! Frames it does not hash (ARP, ICMP, IPv4 fragments, IPv6 with extension headers, other
//! protocols, frames too short or with a bad IPv4 header length, VLAN-tagged frames whose
//! tag is in the payload) get `queue_mapping` 1: queue 0. Headers must be in the linear
//! part of the skb (they are for locally generated frames); otherwise queue 0 too.
//!
//! Not here: loading and attaching (`emulator.rs`).

use crate::afxdp::asm::{reg::*, Alu, Asm, AsmError, Cond, Insn, Label, Size};

use super::toeplitz::{lookup_table, V4_INPUT_LEN, V6_INPUT_LEN};
use super::{RssConfig, RssError};

/// Byte offset of the IPv4 lookup table in the map value.
const V4_TABLE: usize = 0;
/// Byte offset of the IPv6 lookup table.
const V6_TABLE: usize = V4_TABLE + V4_INPUT_LEN * 256 * 4;
/// Byte offset of the indirection table (queue_mapping values).
const INDIRECTION: usize = V6_TABLE + V6_INPUT_LEN * 256 * 4;
/// Largest queue whose `queue + 1` stays below `NO_QUEUE_MAPPING` (0xffff).
pub(crate) const MAX_QUEUE: u32 = 0xfffd;

// `struct __sk_buff` fields (uapi linux/bpf.h): len, pkt_type, mark, queue_mapping, ...
const SKB_QUEUE_MAPPING: i16 = 12;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;
/// `TC_ACT_OK`: let the frame go on.
const TC_ACT_OK: i32 = 0;

// Frame layout (Ethernet II, no VLAN tag in the data).
const ETH_HLEN: i32 = 14;
const ETH_TYPE_OFF: i16 = 12;
const IPV4_VER_IHL_OFF: i16 = 14;
const IPV4_FRAG_OFF: i16 = 14 + 6;
const IPV4_PROTO_OFF: i16 = 14 + 9;
const IPV4_SRC_OFF: i16 = 14 + 12;
const IPV6_NEXT_HDR_OFF: i16 = 14 + 6;
const IPV6_SRC_OFF: i16 = 14 + 8;
const IPPROTO_TCP: i32 = 6;
const IPPROTO_UDP: i32 = 17;

/// A 16-bit value as a host `ldxh` of its network-order bytes sees it.
fn be16(v: u16) -> i32 {
    i32::from(u16::from_ne_bytes(v.to_be_bytes()))
}

/// The map value for `rss`: lookup tables and indirection, native-endian u32s.
pub(crate) fn map_value(rss: &RssConfig) -> Result<Vec<u8>, RssError> {
    let mut out = Vec::with_capacity(INDIRECTION + rss.indirection.len() * 4);
    for w in lookup_table(&rss.key, V4_INPUT_LEN)
        .into_iter()
        .chain(lookup_table(&rss.key, V6_INPUT_LEN))
    {
        out.extend_from_slice(&w.to_ne_bytes());
    }
    for &q in &rss.indirection {
        if q > MAX_QUEUE {
            return Err(RssError::QueueOutOfRange { queue: q });
        }
        out.extend_from_slice(&(q + 1).to_ne_bytes());
    }
    Ok(out)
}

/// `if data + len > data_end goto other`, with r8 = data, r3 = data_end, r2 scratch.
fn bounds(a: &mut Asm, base: u8, len: i32, other: Label) {
    a.mov64_reg(R2, base);
    a.add64_imm(R2, len);
    a.jmp_reg(Cond::Gt, R2, R3, other);
}

/// `r7 ^= table[pos][*(u8 *)(base + off)]` for the lookup table at `table` (bytes into the
/// map value, r9 = value). Clobbers r1, r5.
fn hash_byte(a: &mut Asm, base: u8, off: i16, table: usize, pos: usize) -> Result<(), AsmError> {
    let at = i32::try_from(table + pos * 256 * 4).map_err(|_| AsmError::JumpTooFar)?;
    a.ldx(Size::B, R5, base, off);
    a.alu64_imm(Alu::Lsh, R5, 2);
    a.mov64_reg(R1, R9);
    a.add64_imm(R1, at);
    a.alu64_reg(Alu::Add, R1, R5);
    a.ldx(Size::W, R5, R1, 0);
    a.alu64_reg(Alu::Xor, R7, R5);
    Ok(())
}

/// Generates the program for an indirection table of `entries` entries (a power of two)
/// over the map `map_fd`.
///
/// Registers: r6 = context, r8 = data, r3 = data_end, r9 = map value, r7 = hash,
/// r4 = IPv4 header end - 14 (so the L4 header is at r4 + 14), r1/r2/r5 scratch.
pub(crate) fn build(entries: usize, map_fd: i32) -> Result<Vec<Insn>, AsmError> {
    let mask = i32::try_from(entries.saturating_sub(1)).map_err(|_| AsmError::JumpTooFar)?;
    let indirection = i32::try_from(INDIRECTION).map_err(|_| AsmError::JumpTooFar)?;
    let mut a = Asm::new();
    let other = a.label();
    let set = a.label();
    let hashed = a.label();
    let ipv4 = a.label();
    let ipv4_l4 = a.label();
    let ipv6 = a.label();
    let ipv6_l4 = a.label();

    a.mov64_reg(R6, R1);
    a.ld_map_value(R9, map_fd, 0);
    a.mov64_imm(R7, 0);
    a.ldx(Size::W, R8, R6, SKB_DATA);
    a.ldx(Size::W, R3, R6, SKB_DATA_END);
    bounds(&mut a, R8, ETH_HLEN, other);
    a.ldx(Size::H, R5, R8, ETH_TYPE_OFF);
    a.jmp_imm(Cond::Eq, R5, be16(0x0800), ipv4);
    a.jmp_imm(Cond::Eq, R5, be16(0x86dd), ipv6);
    a.ja(other);

    // IPv4: TCP or UDP, not a fragment, a sane header length, then the ports after it.
    a.bind(ipv4);
    bounds(&mut a, R8, ETH_HLEN + 20, other);
    a.ldx(Size::B, R5, R8, IPV4_PROTO_OFF);
    a.jmp_imm(Cond::Eq, R5, IPPROTO_TCP, ipv4_l4);
    a.jmp_imm(Cond::Ne, R5, IPPROTO_UDP, other);
    a.bind(ipv4_l4);
    a.ldx(Size::H, R5, R8, IPV4_FRAG_OFF);
    a.alu64_imm(Alu::And, R5, be16(0x3fff)); // MF flag and fragment offset
    a.jmp_imm(Cond::Ne, R5, 0, other);
    a.ldx(Size::B, R5, R8, IPV4_VER_IHL_OFF);
    a.alu64_imm(Alu::And, R5, 0x0f);
    a.alu64_imm(Alu::Lsh, R5, 2);
    a.jmp_imm(Cond::Lt, R5, 20, other);
    a.mov64_reg(R4, R8);
    a.alu64_reg(Alu::Add, R4, R5);
    bounds(&mut a, R4, ETH_HLEN + 4, other);
    for i in 0..8 {
        hash_byte(&mut a, R8, IPV4_SRC_OFF + i as i16, V4_TABLE, i)?;
    }
    for i in 0..4 {
        hash_byte(&mut a, R4, 14 + i as i16, V4_TABLE, 8 + i)?;
    }
    a.ja(hashed);

    // IPv6: TCP or UDP right after the fixed header (extension headers are not followed).
    a.bind(ipv6);
    bounds(&mut a, R8, ETH_HLEN + 40 + 4, other);
    a.ldx(Size::B, R5, R8, IPV6_NEXT_HDR_OFF);
    a.jmp_imm(Cond::Eq, R5, IPPROTO_TCP, ipv6_l4);
    a.jmp_imm(Cond::Ne, R5, IPPROTO_UDP, other);
    a.bind(ipv6_l4);
    // Addresses (22..54) and ports (54..58) are contiguous.
    for i in 0..V6_INPUT_LEN {
        hash_byte(&mut a, R8, IPV6_SRC_OFF + i as i16, V6_TABLE, i)?;
    }

    // queue_mapping = indirection[hash & (entries - 1)].
    a.bind(hashed);
    a.mov64_reg(R5, R7);
    a.alu64_imm(Alu::And, R5, mask);
    a.alu64_imm(Alu::Lsh, R5, 2);
    a.mov64_reg(R1, R9);
    a.add64_imm(R1, indirection);
    a.alu64_reg(Alu::Add, R1, R5);
    a.ldx(Size::W, R5, R1, 0);
    a.ja(set);

    a.bind(other);
    a.mov64_imm(R5, 1);
    a.bind(set);
    a.stx(Size::W, R6, SKB_QUEUE_MAPPING, R5);
    a.mov64_imm(R0, TC_ACT_OK);
    a.exit();
    a.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Where the interpreter puts the context, the packet and the map value.
    const CTX: u64 = 0x1000;
    const PKT: u64 = 0x10_0000;
    const MAP: u64 = 0x1000_0000;
    const MAP_FD: i32 = 42;

    /// Runs `prog` over `frame` with map value `value` the way the kernel would (for the
    /// instructions `build` emits) and returns (r0, the queue_mapping written). Panics,
    /// failing the test, on any access outside the frame, the context or the map value
    /// (the verifier would have refused the program), on unknown opcodes or a runaway.
    fn run(prog: &[Insn], frame: &[u8], value: &[u8]) -> (u64, Option<u32>) {
        let mut ctx = [0u8; 192];
        ctx[76..80].copy_from_slice(&(PKT as u32).to_ne_bytes());
        ctx[80..84].copy_from_slice(&((PKT as usize + frame.len()) as u32).to_ne_bytes());
        let load = |ctx: &[u8], addr: u64, n: usize| -> u64 {
            let region = |base: u64, mem: &[u8]| -> Option<Vec<u8>> {
                let o = usize::try_from(addr.checked_sub(base)?).ok()?;
                mem.get(o..o.checked_add(n)?).map(<[u8]>::to_vec)
            };
            let bytes = region(CTX, ctx)
                .filter(|_| addr < CTX + 0x1000)
                .or_else(|| region(PKT, frame).filter(|_| addr < PKT + 0x1_0000))
                .or_else(|| region(MAP, value))
                .unwrap_or_else(|| panic!("out-of-bounds load at {addr:#x}+{n}"));
            let mut v = [0u8; 8];
            v[..n].copy_from_slice(&bytes);
            u64::from_ne_bytes(v)
        };
        let mut r = [0u64; 11];
        r[1] = CTX;
        let mut written = None;
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = prog[pc];
            let (dst, src) = (i.dst() as usize, i.src() as usize);
            let imm = i.imm as i64 as u64;
            let off = i.off as i64 as u64;
            let mut jump = |taken: bool| {
                if taken {
                    pc = (pc as i64 + i.off as i64) as usize;
                }
            };
            match i.code {
                0xbf => r[dst] = r[src],
                0xb7 => r[dst] = imm,
                0x07 => r[dst] = r[dst].wrapping_add(imm),
                0x0f => r[dst] = r[dst].wrapping_add(r[src]),
                0x57 => r[dst] &= imm,
                0x67 => r[dst] <<= imm,
                0xaf => r[dst] ^= r[src],
                0x71 => r[dst] = load(&ctx, r[src].wrapping_add(off), 1),
                0x69 => r[dst] = load(&ctx, r[src].wrapping_add(off), 2),
                0x61 => r[dst] = load(&ctx, r[src].wrapping_add(off), 4),
                0x63 => {
                    assert_eq!(r[dst].wrapping_add(off), CTX + 12, "only queue_mapping");
                    written = Some(r[src] as u32);
                }
                0x18 => {
                    assert_eq!((src, i.imm), (2, MAP_FD), "only the map value");
                    r[dst] = MAP + prog[pc + 1].imm as u64;
                    pc += 1;
                }
                0x15 => jump(r[dst] == imm),
                0x55 => jump(r[dst] != imm),
                0xa5 => jump(r[dst] < imm),
                0x2d => jump(r[dst] > r[src]),
                0x05 => jump(true),
                0x95 => return (r[0], written),
                c => panic!("unexpected opcode {c:#x} at {pc}"),
            }
            pc += 1;
        }
        panic!("program did not terminate");
    }

    /// An Ethernet frame carrying `proto` (6 or 17) from src:sport to dst:dport, with
    /// `extra` bytes of IPv4 options.
    fn frame(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16, opts: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&[0x08, 0x00]);
                let ihl = 5 + opts / 4;
                let mut h = vec![0u8; ihl * 4];
                h[0] = 0x40 | ihl as u8;
                h[6] = 0x40; // DF: not a fragment
                h[8] = 64;
                h[9] = proto;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&[0x86, 0xdd]);
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[6] = proto;
                h[7] = 64;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                f.extend_from_slice(&h);
            }
            _ => unreachable!(),
        }
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0u8; 16]);
        f
    }

    fn setup(rss: &RssConfig) -> (Vec<Insn>, Vec<u8>) {
        let prog = build(rss.indirection.len(), MAP_FD).unwrap();
        (prog, map_value(rss).unwrap())
    }

    #[test]
    fn program_computes_queue_for_random_tuples() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (queues, random_key) in [(2, false), (4, true), (3, true), (16, false)] {
            let mut rss = RssConfig::with_queues(queues);
            if random_key {
                rss.key = (0..40).map(|_| rng.gen()).collect();
                rss.indirection = (0..256).map(|_| rng.gen_range(0..queues)).collect();
            }
            let (prog, value) = setup(&rss);
            for n in 0..400 {
                let (src, dst) = if n % 2 == 0 {
                    (
                        IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                        IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                    )
                } else {
                    (
                        IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
                        IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
                    )
                };
                let proto = if rng.gen() { 6 } else { 17 };
                let opts = if src.is_ipv4() {
                    4 * rng.gen_range(0..11)
                } else {
                    0
                };
                let (sp, dp) = (rng.gen(), rng.gen());
                let f = frame(src, dst, proto, sp, dp, opts);
                let want = rss.queue_for(src, dst, sp, dp) + 1;
                assert_eq!(
                    run(&prog, &f, &value),
                    (0, Some(want)),
                    "{src}:{sp} → {dst}:{dp}"
                );
            }
        }
    }

    #[test]
    fn unhashed_frames_go_to_queue_zero() {
        let rss = RssConfig::with_queues(4);
        let (prog, value) = setup(&rss);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let q0 = (0, Some(1));
        // ICMP over IPv4 and IPv6.
        assert_eq!(
            run(
                &prog,
                &frame(ip("10.0.0.1"), ip("10.0.0.2"), 1, 1, 2, 0),
                &value
            ),
            q0
        );
        assert_eq!(
            run(
                &prog,
                &frame(ip("fd00::1"), ip("fd00::2"), 58, 1, 2, 0),
                &value
            ),
            q0
        );
        // IPv6 with a hop-by-hop extension header.
        assert_eq!(
            run(
                &prog,
                &frame(ip("fd00::1"), ip("fd00::2"), 0, 1, 2, 0),
                &value
            ),
            q0
        );
        // IPv4 fragments: MF set, and a non-zero offset.
        let mut f = frame(ip("10.0.0.1"), ip("10.0.0.2"), 17, 1000, 2000, 0);
        assert_ne!(run(&prog, &f, &value).1, None);
        f[14 + 6] = 0x20;
        assert_eq!(run(&prog, &f, &value), q0);
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x10;
        assert_eq!(run(&prog, &f, &value), q0);
        // A bad IPv4 header length.
        let mut f = frame(ip("10.0.0.1"), ip("10.0.0.2"), 17, 1000, 2000, 0);
        f[14] = 0x44;
        assert_eq!(run(&prog, &f, &value), q0);
        // ARP and unknown ethertypes.
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(run(&prog, &arp, &value), q0);
        let mut vlan = frame(ip("10.0.0.1"), ip("10.0.0.2"), 6, 1, 2, 0);
        vlan[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(run(&prog, &vlan, &value), q0);
    }

    #[test]
    fn truncated_frames_never_read_out_of_bounds() {
        let rss = RssConfig::with_queues(2);
        let (prog, value) = setup(&rss);
        let ips: [(IpAddr, IpAddr); 2] = [
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()),
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap()),
        ];
        for (s, d) in ips {
            let f = frame(s, d, 6, 1234, 80, 8);
            let header_end = if s.is_ipv4() {
                14 + 28 + 4
            } else {
                14 + 40 + 4
            };
            for n in 0..f.len() {
                let (r0, q) = run(&prog, &f[..n], &value);
                assert_eq!(r0, 0);
                if n < header_end {
                    assert_eq!(q, Some(1), "truncated at {n}");
                }
            }
        }
    }

    #[test]
    fn map_value_layout_and_queue_limits() {
        let rss = RssConfig::with_queues(2);
        let v = map_value(&rss).unwrap();
        assert_eq!(v.len(), (12 + 36) * 256 * 4 + 128 * 4);
        let word = |at: usize| u32::from_ne_bytes(v[at..at + 4].try_into().unwrap());
        assert_eq!(word(INDIRECTION), 1);
        assert_eq!(word(INDIRECTION + 4), 2);
        // table[pos 0][0x80] is the first 32 key bits.
        assert_eq!(word(V4_TABLE + 0x80 * 4), 0x6d5a_56da);
        assert_eq!(word(V6_TABLE + 0x80 * 4), 0x6d5a_56da);
        let mut big = rss.clone();
        big.indirection[5] = MAX_QUEUE + 1;
        assert!(matches!(
            map_value(&big),
            Err(RssError::QueueOutOfRange { queue }) if queue == MAX_QUEUE + 1
        ));
        big.indirection[5] = MAX_QUEUE;
        assert!(map_value(&big).is_ok());
    }
}
