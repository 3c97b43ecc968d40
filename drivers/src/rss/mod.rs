//! Receive-side scaling: the Toeplitz hash and indirection table a NIC uses to spread flows
//! over its receive queues, so that the stack can compute where a flow's frames will land
//! (and pick a source port for an active open whose replies come back to the opening
//! shard's queue).
//!
//! Pieces: [`RssConfig`] and [`toeplitz`] (pure computation), [`read_from_nic`] and
//! [`NtupleRule`] (the NIC's own configuration over the ethtool ioctl), and
//! [`RssEmulator`], which makes a multi-queue veth behave like an RSS NIC for the lab: a
//! BPF program on the *peer's* egress computes the same queue as [`RssConfig::queue_for`]
//! and records it in `skb->queue_mapping`, which veth uses to pick the receive queue.
//!
//! Not here: the choice of source ports or the hand-over of frames that land on the wrong
//! shard (the stack's steering does that with these functions).
//!
//! Layout: `toeplitz` (the hash and its per-byte lookup table), `program` (the emulator's
//! BPF program and map layout), `emulator` (loading and attaching it), `tc` (the rtnetlink
//! clsact fallback), `ethtool` (the ioctls).

mod emulator;
mod ethtool;
#[cfg(test)]
mod lab_tests;
mod program;
mod tc;
mod toeplitz;

use std::io;
use std::net::IpAddr;

pub use emulator::RssEmulator;
pub use ethtool::{read_from_nic, NtupleRule};
pub use toeplitz::toeplitz;

/// Longest key [`RssConfig::new`] accepts, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Most indirection entries [`RssConfig::new`] accepts.
pub const MAX_INDIRECTION: usize = 1 << 16;

/// The hash key and indirection table a NIC (or the lab emulator) uses.
///
/// A flow's queue is `indirection[hash % indirection.len()]`, where `hash` is the Toeplitz
/// hash of the flow's 4-tuple *as the receiving NIC sees it*: for the replies to a
/// connection the stack opens from `local:lport` to `remote:rport`, that is
/// `queue_for(remote, local, rport, lport)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConfig {
    /// The Toeplitz key: 40 bytes on most NICs; shorter keys read as zero-padded.
    pub key: Vec<u8>,
    /// Indirection table, entry → queue; its length is a power of two (e.g. 128).
    pub indirection: Vec<u32>,
}

impl RssConfig {
    /// The Microsoft RSS verification key, which many drivers also use as their default.
    pub const DEFAULT_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    /// A configuration from a key and an indirection table, checked: the key has 1 to
    /// [`MAX_KEY_LEN`] bytes, the table a power-of-two length up to [`MAX_INDIRECTION`].
    pub fn new(key: Vec<u8>, indirection: Vec<u32>) -> Result<RssConfig, RssError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(RssError::InvalidKey { len: key.len() });
        }
        let len = indirection.len();
        if !len.is_power_of_two() || len > MAX_INDIRECTION {
            return Err(RssError::InvalidIndirection { len });
        }
        Ok(RssConfig { key, indirection })
    }

    /// [`DEFAULT_KEY`](Self::DEFAULT_KEY) and a 128-entry round-robin table
    /// (`entry i → queue i % queues`); `queues` 0 is taken as 1.
    pub fn with_queues(queues: u32) -> RssConfig {
        let queues = queues.max(1);
        RssConfig {
            key: Self::DEFAULT_KEY.to_vec(),
            indirection: (0..128).map(|i| i % queues).collect(),
        }
    }

    /// The Toeplitz hash of source address, destination address, source port and
    /// destination port (network byte order), as NICs compute it for TCP and UDP over IPv4
    /// and IPv6. Addresses of different families hash to 0.
    pub fn hash(&self, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> u32 {
        let mut buf = [0u8; toeplitz::V6_INPUT_LEN];
        let n = toeplitz::tuple_input(src, dst, sport, dport, &mut buf);
        toeplitz(&self.key, &buf[..n])
    }

    /// The queue a NIC with this configuration delivers the frames of the 4-tuple to:
    /// `indirection[hash % len]` (0 if the table is empty, which [`RssConfig::new`] rules
    /// out).
    pub fn queue_for(&self, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> u32 {
        let len = self.indirection.len();
        if len == 0 {
            return 0;
        }
        let h = self.hash(src, dst, sport, dport) as usize;
        self.indirection.get(h % len).copied().unwrap_or(0)
    }
}

/// Transport protocol of an [`NtupleRule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Why an RSS operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RssError {
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("RSS key of {len} bytes: it must have 1 to {MAX_KEY_LEN}")]
    InvalidKey {
        /// Its length.
        len: usize,
    },
    /// The indirection table is empty, not a power of two long, or longer than
    /// [`MAX_INDIRECTION`] (a NIC reporting such a table cannot be modelled).
    #[error(
        "RSS indirection table of {len} entries: it must be a power of two up to {MAX_INDIRECTION}"
    )]
    InvalidIndirection {
        /// Its length.
        len: usize,
    },
    /// The emulator cannot steer to this queue: `skb->queue_mapping` holds queue + 1 in
    /// 16 bits, with 0xffff reserved, so queues stop at 65533.
    #[error("queue {queue} is out of the range the RSS emulator can steer to (0..=65533)")]
    QueueOutOfRange {
        /// The queue in the indirection table.
        queue: u32,
    },
    /// The interface does not exist in the calling thread's namespace (or its name is
    /// invalid).
    #[error("interface {ifname}: {source}")]
    Interface {
        /// The name looked up.
        ifname: String,
        /// What the lookup returned.
        source: io::Error,
    },
    /// The device or the kernel does not support the operation (EOPNOTSUPP), or reports
    /// a configuration that cannot be modelled (a hash other than Toeplitz, symmetric input
    /// transforms, no key). Callers fall back to steering in software.
    #[error("{ifname}: {what} is not supported")]
    Unsupported {
        /// Interface name.
        ifname: String,
        /// What was asked for.
        what: &'static str,
    },
    /// A system call failed (permission, a limit, a malformed answer from the kernel).
    #[error("{syscall}: {source}")]
    Syscall {
        /// The call and what it was for.
        syscall: &'static str,
        /// The error it returned.
        source: io::Error,
    },
    /// The verifier rejected the emulator program. Includes its log.
    #[error("bpf(BPF_PROG_LOAD) rejected the RSS emulator: {source}\nverifier log:\n{log}")]
    ProgramLoad {
        /// The error `BPF_PROG_LOAD` returned.
        source: io::Error,
        /// The verifier's log from a second attempt with logging on.
        log: String,
    },
    /// The emulator could not be attached either way: `link` is the `BPF_LINK_CREATE`
    /// (tcx) error, `netlink` the clsact/cls_bpf one.
    #[error("attaching the RSS emulator to {ifname} egress: bpf(BPF_LINK_CREATE, tcx): {link}; rtnetlink clsact+bpf: {netlink}")]
    Attach {
        /// Interface name.
        ifname: String,
        /// Why the tcx bpf_link failed.
        link: io::Error,
        /// Why the netlink fallback failed.
        netlink: io::Error,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn new_validates_key_and_table() {
        let key = RssConfig::DEFAULT_KEY.to_vec();
        assert!(RssConfig::new(key.clone(), vec![0, 1, 0, 1]).is_ok());
        assert!(matches!(
            RssConfig::new(vec![], vec![0]),
            Err(RssError::InvalidKey { len: 0 })
        ));
        assert!(matches!(
            RssConfig::new(vec![1; MAX_KEY_LEN + 1], vec![0]),
            Err(RssError::InvalidKey { .. })
        ));
        for len in [0, 3, 100, MAX_INDIRECTION * 2] {
            assert!(
                matches!(
                    RssConfig::new(key.clone(), vec![0; len]),
                    Err(RssError::InvalidIndirection { len: l }) if l == len
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn with_queues_is_round_robin() {
        let c = RssConfig::with_queues(3);
        assert_eq!(c.key, RssConfig::DEFAULT_KEY);
        assert_eq!(c.indirection.len(), 128);
        assert_eq!(&c.indirection[..7], &[0, 1, 2, 0, 1, 2, 0]);
        assert!(RssConfig::with_queues(0)
            .indirection
            .iter()
            .all(|&q| q == 0));
    }

    #[test]
    fn queue_for_indexes_the_table_with_the_hash() {
        let c = RssConfig::with_queues(4);
        let (s, d): (IpAddr, IpAddr) = (
            "66.9.149.187".parse().unwrap(),
            "161.142.100.80".parse().unwrap(),
        );
        // 0x51ccc178 % 128 = 0x78 = 120 → queue 120 % 4 = 0.
        assert_eq!(c.queue_for(s, d, 2794, 1766), 0);
        let mut odd = c.clone();
        odd.indirection[120] = 3;
        assert_eq!(odd.queue_for(s, d, 2794, 1766), 3);
        // Many ports spread over every queue.
        let mut seen = [0u32; 4];
        for port in 1000..1400 {
            seen[c.queue_for(s, d, port, 80) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        let empty = RssConfig {
            key: c.key.clone(),
            indirection: vec![],
        };
        assert_eq!(empty.queue_for(s, d, 1, 2), 0);
    }
}
