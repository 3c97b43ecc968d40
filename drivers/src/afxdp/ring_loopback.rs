//! One AF_XDP ring's memory with a [`ProdRing`] and a [`ConsRing`] over it, so the ring
//! code can be driven (and benchmarked) without a socket, root or a kernel on the far side.
//!
//! Not part of the driver's API (`#[doc(hidden)]`; it exists for `benches/afxdp_ring.rs`).
//! The memory is a memfd of the kernel's ring layout mapped twice with `MAP_SHARED`, exactly
//! as the kernel's ring pages are mapped into userspace: each ring owns its own mapping and
//! goes through the same `ProdRing::map`/`ConsRing::map` path as a real socket's rings.
//! Entries are numbered in order, so a consumer can check it sees every one exactly once.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use super::ring::{ConsRing, ProdRing};
use super::sys::{RingOffset, XdpDesc};

/// The kernel's `struct xdp_ring` (net/xdp/xsk_queue.h): producer, padding line, consumer,
/// padding line, flags, padding; the entries start on the next cache line.
const LAYOUT: RingOffset = RingOffset {
    producer: 0,
    consumer: 128,
    flags: 196,
    desc: 256,
};

/// An entry type of a ring, and the `seq`-th value the loopback produces of it.
trait Entry: Copy {
    fn nth(seq: u64) -> Self;
    /// What a consumer folds into its checksum.
    fn key(self) -> u64;
}

impl Entry for u64 {
    fn nth(seq: u64) -> u64 {
        seq
    }
    fn key(self) -> u64 {
        self
    }
}

impl Entry for XdpDesc {
    fn nth(seq: u64) -> XdpDesc {
        XdpDesc {
            addr: seq,
            len: (seq as u32) ^ 0x5a5a,
            options: (seq >> 32) as u32,
        }
    }
    fn key(self) -> u64 {
        self.addr
    }
}

/// A producer and a consumer view of one ring.
#[derive(Debug)]
struct Loopback<T> {
    prod: ProdRing<T>,
    cons: ConsRing<T>,
    /// Sequence number of the next entry to produce.
    next: u64,
    /// The memfd (tests read the raw ring through it).
    #[cfg_attr(not(test), allow(dead_code))]
    file: File,
}

impl<T: Entry> Loopback<T> {
    /// A ring of `size` entries (a power of two) whose producer and consumer indices both
    /// start at `index`.
    fn new(size: u32, index: u32) -> io::Result<Loopback<T>> {
        let len = u64::from(size)
            .checked_mul(std::mem::size_of::<T>() as u64)
            .and_then(|d| d.checked_add(LAYOUT.desc))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "ring too large"))?;
        // SAFETY: the name is a NUL-terminated literal; on success `memfd_create` returns a
        // new descriptor that nothing else owns, so `OwnedFd` may take it.
        let fd = unsafe {
            let fd = libc::memfd_create(c"sixstack-ring-loopback".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        let file = File::from(fd);
        // Zero-filled; the mappings below never reach past `len` (`ProdRing::map` maps
        // exactly `desc + size * entry` bytes), so no access can fault past the end.
        file.set_len(len)?;
        if index != 0 {
            file.write_all_at(&index.to_ne_bytes(), LAYOUT.producer)?;
            file.write_all_at(&index.to_ne_bytes(), LAYOUT.consumer)?;
        }
        let fd = OwnedFd::from(file);
        let prod = ProdRing::map(&fd, &LAYOUT, size, 0)?;
        let cons = ConsRing::map(&fd, &LAYOUT, size, 0)?;
        Ok(Loopback {
            prod,
            cons,
            next: 0,
            file: File::from(fd),
        })
    }

    /// Pushes up to `n` entries and submits them; returns how many fitted.
    #[inline]
    fn produce(&mut self, n: u32) -> u32 {
        let mut pushed = 0;
        while pushed < n && self.prod.push(T::nth(self.next)) {
            self.next += 1;
            pushed += 1;
        }
        self.prod.submit();
        pushed
    }

    /// Peeks and advances over up to `n` entries, handing each to `f`, then releases them;
    /// returns how many there were.
    #[inline]
    fn consume(&mut self, n: u32, mut f: impl FnMut(T)) -> u32 {
        let mut got = 0;
        while got < n {
            let Some(v) = self.cons.peek() else { break };
            f(v);
            self.cons.advance();
            got += 1;
        }
        self.cons.release();
        got
    }

    /// Consumes up to `n` entries; returns the wrapping sum of their keys.
    #[inline]
    fn consume_sum(&mut self, n: u32) -> u64 {
        let mut sum = 0u64;
        self.consume(n, |v| sum = sum.wrapping_add(v.key()));
        sum
    }
}

/// A fill or completion ring (entries are `u64` frame addresses) looped back onto itself.
#[doc(hidden)]
#[derive(Debug)]
pub struct AddrRingLoopback(Loopback<u64>);

impl AddrRingLoopback {
    /// A ring of `size` entries, a power of two.
    pub fn new(size: u32) -> io::Result<AddrRingLoopback> {
        Loopback::new(size, 0).map(AddrRingLoopback)
    }

    /// Pushes up to `n` addresses (the next numbers in sequence) and submits them; returns
    /// how many fitted.
    #[inline]
    pub fn produce(&mut self, n: u32) -> u32 {
        self.0.produce(n)
    }

    /// Consumes and releases up to `n` addresses; returns their wrapping sum.
    #[inline]
    pub fn consume(&mut self, n: u32) -> u64 {
        self.0.consume_sum(n)
    }
}

/// An RX or TX ring (entries are `struct xdp_desc`) looped back onto itself.
#[doc(hidden)]
#[derive(Debug)]
pub struct DescRingLoopback(Loopback<XdpDesc>);

impl DescRingLoopback {
    /// A ring of `size` entries, a power of two.
    pub fn new(size: u32) -> io::Result<DescRingLoopback> {
        Loopback::new(size, 0).map(DescRingLoopback)
    }

    /// Pushes up to `n` descriptors (addresses the next numbers in sequence) and submits
    /// them; returns how many fitted.
    #[inline]
    pub fn produce(&mut self, n: u32) -> u32 {
        self.0.produce(n)
    }

    /// Consumes and releases up to `n` descriptors; returns the wrapping sum of their
    /// addresses.
    #[inline]
    pub fn consume(&mut self, n: u32) -> u64 {
        self.0.consume_sum(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fmt::Debug;

    const SIZE: u32 = 8;

    fn read_u32(file: &File, off: u64) -> u32 {
        let mut b = [0; 4];
        file.read_exact_at(&mut b, off).unwrap();
        u32::from_ne_bytes(b)
    }

    /// Produces and consumes in uneven batches (so the consumer lags by 0..=SIZE entries and
    /// both indices cross the end of the entry array many times, and `u32` overflow when
    /// `start` is near it); checks every entry arrives once, in order, that a full ring takes
    /// exactly as many as are free, and that the indices land in the kernel's words.
    fn exercise<T: Entry + PartialEq + Debug>(start: u32) {
        let mut lb = Loopback::<T>::new(SIZE, start).unwrap();
        let (mut produced, mut consumed) = (0u64, 0u64);
        let produce_pattern = [1u32, 3, 8, 5, 7, 2, 9, 4];
        let consume_pattern = [2u32, 1, 6, 8, 3, 9, 5];
        for round in 0..200 {
            let want = produce_pattern[round % produce_pattern.len()];
            let outstanding = (produced - consumed) as u32;
            let pushed = lb.produce(want);
            assert_eq!(pushed, want.min(SIZE - outstanding), "round {round}");
            produced += u64::from(pushed);
            assert_eq!(
                read_u32(&lb.file, LAYOUT.producer),
                start.wrapping_add(produced as u32),
                "submit must publish the producer index"
            );

            let want = consume_pattern[round % consume_pattern.len()];
            let mut seen = Vec::new();
            let got = lb.consume(want, |v| seen.push(v));
            assert_eq!(got as usize, seen.len());
            assert_eq!(u64::from(got), u64::from(want).min(produced - consumed));
            for v in seen {
                assert_eq!(v, T::nth(consumed), "round {round}: out of order or lost");
                consumed += 1;
            }
            assert_eq!(
                read_u32(&lb.file, LAYOUT.consumer),
                start.wrapping_add(consumed as u32),
                "release must publish the consumer index"
            );
        }
        assert!(
            consumed > 50 * u64::from(SIZE),
            "only {consumed} entries went round"
        );
        // Drain what is left.
        let rest = produced - consumed;
        let got = lb.consume(SIZE, |v| {
            assert_eq!(v, T::nth(consumed));
            consumed += 1;
        });
        assert_eq!(u64::from(got), rest);
        assert_eq!(consumed, produced);
    }

    #[test]
    fn addr_ring_wraps_in_order() {
        exercise::<u64>(0);
    }

    #[test]
    fn addr_ring_wraps_past_u32_max_in_order() {
        exercise::<u64>(u32::MAX - 3);
    }

    #[test]
    fn desc_ring_wraps_in_order() {
        exercise::<XdpDesc>(0);
        exercise::<XdpDesc>(u32::MAX - 3);
    }

    #[test]
    fn entries_sit_in_the_kernel_slots() {
        // Start mid-array so the batch wraps from the last slot to the first.
        let start = SIZE - 2;
        let mut lb = Loopback::<u64>::new(SIZE, start).unwrap();
        assert_eq!(lb.produce(5), 5);
        for i in 0..5u32 {
            let slot = u64::from(start.wrapping_add(i) & (SIZE - 1));
            let mut b = [0; 8];
            lb.file
                .read_exact_at(&mut b, LAYOUT.desc + slot * 8)
                .unwrap();
            assert_eq!(u64::from_ne_bytes(b), u64::from(i), "slot {slot}");
        }
    }

    #[test]
    fn public_loopbacks_round_trip() {
        let mut a = AddrRingLoopback::new(16).unwrap();
        assert_eq!(a.produce(16), 16);
        assert_eq!(a.produce(1), 0, "a full ring takes nothing");
        assert_eq!(a.consume(64), (0..16).sum::<u64>());
        let mut d = DescRingLoopback::new(16).unwrap();
        assert_eq!(d.produce(4), 4);
        assert_eq!(d.consume(4), 6);
        assert!(AddrRingLoopback::new(12).is_err(), "not a power of two");
    }
}
