//! The Toeplitz hash NICs use for receive-side scaling, and the per-byte lookup table that
//! lets a BPF program compute the same hash with one load and one XOR per input byte.
//!
//! Not here: which bytes of a frame are hashed (`RssConfig::hash` in `mod.rs` and the
//! emulator program in `program.rs` agree on that) or the indirection step.

use std::net::IpAddr;

/// Bytes of the IPv4 hash input: source address, destination address, source port,
/// destination port.
pub(crate) const V4_INPUT_LEN: usize = 4 + 4 + 2 + 2;
/// Bytes of the IPv6 hash input, same order as for IPv4.
pub(crate) const V6_INPUT_LEN: usize = 16 + 16 + 2 + 2;

/// The 32 key bits starting at bit `bit` (bit 0 is the most significant bit of `key[0]`);
/// bits past the end of the key read as zero.
fn window(key: &[u8], bit: usize) -> u32 {
    let byte = bit / 8;
    let shift = bit % 8;
    let mut v: u64 = 0;
    for i in 0..5 {
        v = (v << 8) | u64::from(key.get(byte + i).copied().unwrap_or(0));
    }
    // `v` holds 40 bits; the window is the 32 starting `shift` bits below the top.
    (v >> (8 - shift)) as u32
}

/// The Toeplitz hash of `input` under `key`: for every set bit `i` of the input (most
/// significant bit of each byte first), the 32 key bits starting at bit `i` are XORed into
/// the result.
///
/// A key shorter than `input.len() + 4` bytes is treated as padded with zero bits, so no
/// input can make this panic; NIC keys are 40 bytes (or more), enough for the 36-byte IPv6
/// 4-tuple.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The window for the current input bit; shifted left one key bit per input bit.
    let mut win = window(key, 0);
    for (i, &byte) in input.iter().enumerate() {
        let next = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= win;
            }
            win = (win << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    result
}

/// Writes the hash input for a 4-tuple into `buf` and returns its length: 12 bytes for
/// IPv4, 36 for IPv6, 0 when the two addresses are of different families.
pub(crate) fn tuple_input(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    buf: &mut [u8; V6_INPUT_LEN],
) -> usize {
    let addr_len = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf[0..4].copy_from_slice(&s.octets());
            buf[4..8].copy_from_slice(&d.octets());
            4
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            buf[0..16].copy_from_slice(&s.octets());
            buf[16..32].copy_from_slice(&d.octets());
            16
        }
        _ => return 0,
    };
    let p = 2 * addr_len;
    buf[p..p + 2].copy_from_slice(&sport.to_be_bytes());
    buf[p + 2..p + 4].copy_from_slice(&dport.to_be_bytes());
    p + 4
}

/// The contribution of every (input position, byte value) pair for inputs of `positions`
/// bytes: `table[pos * 256 + byte]` is the Toeplitz hash of an input that is zero except
/// for `byte` at `pos`. Toeplitz is linear over XOR, so the hash of any input is the XOR of
/// `table[pos * 256 + input[pos]]` over its positions.
pub(crate) fn lookup_table(key: &[u8], positions: usize) -> Vec<u32> {
    let mut table = Vec::with_capacity(positions * 256);
    for pos in 0..positions {
        // The contribution of each single bit of this position, most significant first.
        let bits: [u32; 8] = std::array::from_fn(|k| window(key, pos * 8 + k));
        for byte in 0..256usize {
            let mut acc = 0u32;
            for (k, w) in bits.iter().enumerate() {
                if byte & (0x80 >> k) != 0 {
                    acc ^= w;
                }
            }
            table.push(acc);
        }
    }
    table
}

/// Hashes `input` through a table from [`lookup_table`] (what the BPF program does).
#[cfg(test)]
pub(crate) fn hash_with_table(table: &[u32], input: &[u8]) -> u32 {
    input
        .iter()
        .enumerate()
        .fold(0, |acc, (pos, &b)| acc ^ table[pos * 256 + usize::from(b)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rss::RssConfig;
    use rand::{Rng, SeedableRng};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Microsoft's "Verifying the RSS Hash Calculation" vectors: source, destination,
    /// the hash over the addresses only, and over addresses and TCP ports.
    const V4_VECTORS: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "66.9.149.187",
            2794,
            "161.142.100.80",
            1766,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            "199.92.111.2",
            14230,
            "65.69.140.83",
            4739,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            "24.19.198.95",
            12898,
            "12.22.207.184",
            38024,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            "38.27.205.30",
            48228,
            "209.142.163.6",
            2217,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            "153.39.163.191",
            44251,
            "202.188.127.2",
            1303,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];
    const V6_VECTORS: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:1fff::7",
            2794,
            "3ffe:2501:200:3::1",
            1766,
            0x2cc1_8cd5,
            0x4020_7d3d,
        ),
        (
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            "ff02::1",
            4739,
            0x0f0c_461c,
            0xdde5_1bbf,
        ),
        (
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            "fe80::200:f8ff:fe21:67cf",
            38024,
            0x4b61_e985,
            0x02d1_feef,
        ),
    ];

    fn check(vectors: &[(&str, u16, &str, u16, u32, u32)]) {
        let key = RssConfig::DEFAULT_KEY;
        let rss = RssConfig::with_queues(4);
        for &(src, sport, dst, dport, addrs_only, with_ports) in vectors {
            let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut buf = [0u8; V6_INPUT_LEN];
            let n = tuple_input(s, d, sport, dport, &mut buf);
            let addr_bytes = n - 4;
            assert_eq!(
                toeplitz(&key, &buf[..addr_bytes]),
                addrs_only,
                "{src} -> {dst}"
            );
            assert_eq!(toeplitz(&key, &buf[..n]), with_ports, "{src}:{sport}");
            assert_eq!(rss.hash(s, d, sport, dport), with_ports);
        }
    }

    #[test]
    fn microsoft_ipv4_vectors() {
        check(&V4_VECTORS);
    }

    #[test]
    fn microsoft_ipv6_vectors() {
        check(&V6_VECTORS);
    }

    #[test]
    fn short_keys_and_odd_inputs_never_panic() {
        assert_eq!(toeplitz(&[], &[0xff; 40]), 0);
        assert_eq!(toeplitz(&[0xff], &[]), 0);
        // One key byte: only the first input bits see set key bits.
        assert_eq!(toeplitz(&[0x80], &[0x80]), 0x8000_0000);
        assert_eq!(toeplitz(&[0x80], &[0x40]), 0);
        let long = [0xa5u8; 300];
        let _ = toeplitz(&long, &long);
        assert_eq!(lookup_table(&[], 2).len(), 512);
    }

    #[test]
    fn window_reads_bits_across_bytes() {
        let key = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(window(&key, 0), 0x1234_5678);
        assert_eq!(window(&key, 4), 0x2345_6789);
        assert_eq!(window(&key, 8), 0x3456_789a);
        assert_eq!(window(&key, 12), 0x4567_89a0);
        assert_eq!(window(&key, 40), 0);
    }

    #[test]
    fn lookup_table_matches_toeplitz_for_random_tuples() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5153);
        for round in 0..4 {
            let key: Vec<u8> = if round == 0 {
                RssConfig::DEFAULT_KEY.to_vec()
            } else {
                (0..40).map(|_| rng.gen()).collect()
            };
            let t4 = lookup_table(&key, V4_INPUT_LEN);
            let t6 = lookup_table(&key, V6_INPUT_LEN);
            for _ in 0..500 {
                let (sp, dp) = (rng.gen(), rng.gen());
                let mut buf = [0u8; V6_INPUT_LEN];
                let v4 = (
                    IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                    IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                );
                let n = tuple_input(v4.0, v4.1, sp, dp, &mut buf);
                assert_eq!(n, V4_INPUT_LEN);
                assert_eq!(hash_with_table(&t4, &buf[..n]), toeplitz(&key, &buf[..n]));
                let v6 = (
                    IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
                    IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
                );
                let n = tuple_input(v6.0, v6.1, sp, dp, &mut buf);
                assert_eq!(n, V6_INPUT_LEN);
                assert_eq!(hash_with_table(&t6, &buf[..n]), toeplitz(&key, &buf[..n]));
            }
        }
    }

    #[test]
    fn mixed_families_have_no_input() {
        let mut buf = [0u8; V6_INPUT_LEN];
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(tuple_input(v4, v6, 1, 2, &mut buf), 0);
        assert_eq!(RssConfig::with_queues(2).hash(v6, v4, 1, 2), 0);
    }
}
