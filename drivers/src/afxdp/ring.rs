//! The four single-producer/single-consumer AF_XDP rings (fill, completion, RX, TX) as
//! mmapped from the XSK descriptor: index arithmetic and the Acquire/Release protocol.
//!
//! Not here: what the entries mean (frame ownership lives in `umem.rs`, policy in
//! `socket.rs`). A [`ProdRing`] is one userspace produces into (fill, TX); a [`ConsRing`] one
//! userspace consumes from (RX, completion).
#![allow(unsafe_code)]

use std::io;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::sys::{self, Mmap, RingOffset};

/// One mmapped ring: the shared producer/consumer/flags words and the entry array.
#[derive(Debug)]
struct RingMap<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut T,
    mask: u32,
    size: u32,
    // Keeps the pages behind every pointer above mapped; dropped last.
    _map: Mmap,
    _entries: PhantomData<T>,
}

// SAFETY: the ring is owned memory (the mapping moves with it) plus atomics shared with the
// kernel only; userspace access goes through `&mut self` of the single owner.
unsafe impl<T: Send> Send for RingMap<T> {}

impl<T: Copy> RingMap<T> {
    /// Bytes a ring of `size` entries laid out as `off` says needs, after checking that the
    /// offsets are in range and aligned.
    fn mapping_len(off: &RingOffset, size: u32) -> io::Result<usize> {
        if !size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring size must be a power of two",
            ));
        }
        let entry = std::mem::size_of::<T>() as u64;
        let len = off
            .desc
            .checked_add(u64::from(size) * entry)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "ring too large"))?;
        let word =
            |o: u64| o.checked_add(4).is_some_and(|end| end <= len as u64) && o.is_multiple_of(4);
        let desc_aligned = off.desc.is_multiple_of(std::mem::align_of::<T>() as u64);
        if !word(off.producer) || !word(off.consumer) || !word(off.flags) || !desc_aligned {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "kernel ring offsets out of range or misaligned",
            ));
        }
        Ok(len)
    }

    /// Maps a ring of `size` entries of `T` at page offset `pgoff` of the XSK `fd`, laid out
    /// as `off` says.
    fn map(fd: &OwnedFd, off: &RingOffset, size: u32, pgoff: i64) -> io::Result<RingMap<T>> {
        let len = Self::mapping_len(off, size)?;
        Self::over(Mmap::shared(fd, len, pgoff)?, off, size)
    }

    /// A ring over an existing mapping (tests use an anonymous one in place of the kernel's).
    fn over(map: Mmap, off: &RingOffset, size: u32) -> io::Result<RingMap<T>> {
        let len = Self::mapping_len(off, size)?;
        if map.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mapping smaller than the ring",
            ));
        }
        let base = map.ptr().as_ptr();
        // SAFETY (all four `add`s): `mapping_len` checked every offset to lie inside the
        // first `len` bytes of the mapping, aligned for its type (mappings are page-aligned).
        let (producer, consumer, flags, desc) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>(),
                base.add(off.consumer as usize).cast::<AtomicU32>(),
                base.add(off.flags as usize).cast::<AtomicU32>(),
                base.add(off.desc as usize).cast::<T>(),
            )
        };
        Ok(RingMap {
            producer,
            consumer,
            flags,
            desc,
            mask: size - 1,
            size,
            _map: map,
            _entries: PhantomData,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping owned by `self`, aligned (checked in `map`);
        // the kernel only ever accesses it atomically.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { &*self.flags };
        flags.load(Ordering::Relaxed) & sys::XDP_RING_NEED_WAKEUP != 0
    }

    fn read(&self, idx: u32) -> T {
        // SAFETY: `idx & mask < size` entries were mapped; the entry was published by the
        // kernel before the producer index we loaded with Acquire, and the kernel does not
        // rewrite it until we release it with the consumer index.
        unsafe { self.desc.add((idx & self.mask) as usize).read() }
    }

    fn write(&mut self, idx: u32, value: T) {
        // SAFETY: `idx & mask < size`; the slot lies between the kernel's consumer and our
        // producer index, so the kernel does not read it until we publish with Release.
        unsafe { self.desc.add((idx & self.mask) as usize).write(value) }
    }
}

/// A ring userspace produces into: the fill ring (frame addresses) and the TX ring
/// (descriptors). Entries are written locally and published by [`ProdRing::submit`].
#[derive(Debug)]
pub(crate) struct ProdRing<T> {
    ring: RingMap<T>,
    /// Next index to write (may run ahead of the published producer).
    local_prod: u32,
    /// The producer index last published to the kernel.
    published: u32,
    /// Last consumer index seen from the kernel.
    cached_cons: u32,
}

impl<T: Copy> ProdRing<T> {
    /// Maps the ring (see [`RingMap::map`]).
    pub(crate) fn map(
        fd: &OwnedFd,
        off: &RingOffset,
        size: u32,
        pgoff: i64,
    ) -> io::Result<ProdRing<T>> {
        Ok(Self::new(RingMap::map(fd, off, size, pgoff)?))
    }

    fn new(ring: RingMap<T>) -> ProdRing<T> {
        let prod = ring.producer().load(Ordering::Relaxed);
        let cons = ring.consumer().load(Ordering::Acquire);
        ProdRing {
            ring,
            local_prod: prod,
            published: prod,
            cached_cons: cons,
        }
    }

    /// Free slots, refreshing the kernel's consumer index when fewer than `want` look free.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.ring.size - self.local_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.ring.consumer().load(Ordering::Acquire);
        self.ring.size - self.local_prod.wrapping_sub(self.cached_cons)
    }

    /// Writes one entry; `false` (and nothing written) when the ring is full.
    pub(crate) fn push(&mut self, value: T) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        self.ring.write(self.local_prod, value);
        self.local_prod = self.local_prod.wrapping_add(1);
        true
    }

    /// Entries written but not yet published.
    pub(crate) fn unpublished(&self) -> u32 {
        self.local_prod.wrapping_sub(self.published)
    }

    /// Publishes every written entry to the kernel (Release: the entries become visible
    /// before the index).
    pub(crate) fn submit(&mut self) {
        if self.local_prod != self.published {
            self.ring
                .producer()
                .store(self.local_prod, Ordering::Release);
            self.published = self.local_prod;
        }
    }

    /// Published entries the kernel has not consumed yet.
    pub(crate) fn in_kernel(&mut self) -> u32 {
        self.cached_cons = self.ring.consumer().load(Ordering::Acquire);
        self.published.wrapping_sub(self.cached_cons)
    }

    /// Whether the kernel asked for a syscall to process this ring.
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }

    /// Ring capacity.
    pub(crate) fn size(&self) -> u32 {
        self.ring.size
    }
}

/// A ring userspace consumes from: the RX ring (descriptors) and the completion ring
/// (frame addresses). Entries are read locally and handed back by [`ConsRing::release`].
#[derive(Debug)]
pub(crate) struct ConsRing<T> {
    ring: RingMap<T>,
    /// Next index to read.
    local_cons: u32,
    /// The consumer index last published to the kernel.
    released: u32,
    /// Last producer index seen from the kernel.
    cached_prod: u32,
}

impl<T: Copy> ConsRing<T> {
    /// Maps the ring (see [`RingMap::map`]).
    pub(crate) fn map(
        fd: &OwnedFd,
        off: &RingOffset,
        size: u32,
        pgoff: i64,
    ) -> io::Result<ConsRing<T>> {
        Ok(Self::new(RingMap::map(fd, off, size, pgoff)?))
    }

    fn new(ring: RingMap<T>) -> ConsRing<T> {
        let cons = ring.consumer().load(Ordering::Relaxed);
        let prod = ring.producer().load(Ordering::Acquire);
        ConsRing {
            ring,
            local_cons: cons,
            released: cons,
            cached_prod: prod,
        }
    }

    /// Entries ready to read, refreshing the kernel's producer index when none are cached.
    pub(crate) fn available(&mut self) -> u32 {
        let n = self.cached_prod.wrapping_sub(self.local_cons);
        if n > 0 {
            return n;
        }
        self.cached_prod = self.ring.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.local_cons)
    }

    /// The next entry without consuming it.
    pub(crate) fn peek(&mut self) -> Option<T> {
        if self.available() == 0 {
            return None;
        }
        Some(self.ring.read(self.local_cons))
    }

    /// Consumes the entry [`ConsRing::peek`] returned (locally; see [`ConsRing::release`]).
    pub(crate) fn advance(&mut self) {
        if self.cached_prod != self.local_cons {
            self.local_cons = self.local_cons.wrapping_add(1);
        }
    }

    /// Hands every consumed slot back to the kernel (Release: our reads of the entries
    /// happen before the kernel may overwrite them).
    pub(crate) fn release(&mut self) {
        if self.local_cons != self.released {
            self.ring
                .consumer()
                .store(self.local_cons, Ordering::Release);
            self.released = self.local_cons;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The kernel's layout: producer, consumer, flags on their own cache lines, then entries.
    const OFF: RingOffset = RingOffset {
        producer: 0,
        consumer: 64,
        flags: 128,
        desc: 192,
    };

    fn pair(size: u32) -> (ProdRing<u64>, ConsRing<u64>) {
        // Two views of one shared anonymous mapping stand in for userspace and kernel.
        let len = RingMap::<u64>::mapping_len(&OFF, size).unwrap();
        let map = Mmap::anonymous(len).unwrap();
        let base = map.ptr();
        // SAFETY: callers drop the returned pair together; the consumer view (declared
        // second in the tuple) is never used after the producer's owning mapping is dropped.
        let alias = unsafe { Mmap::alias_for_test(base, len) };
        let prod = ProdRing::new(RingMap::over(map, &OFF, size).unwrap());
        let cons = ConsRing::new(RingMap::over(alias, &OFF, size).unwrap());
        (prod, cons)
    }

    #[test]
    fn entries_flow_only_after_submit_and_release() {
        let (mut p, mut c) = pair(4);
        assert_eq!(p.free(1), 4);
        for v in 10..14 {
            assert!(p.push(v));
        }
        assert!(!p.push(99), "full ring must refuse");
        assert_eq!(p.unpublished(), 4);
        assert_eq!(c.available(), 0, "nothing visible before submit");
        p.submit();
        assert_eq!(c.available(), 4);
        assert_eq!(c.peek(), Some(10));
        c.advance();
        assert_eq!(c.peek(), Some(11));
        c.advance();
        assert_eq!(p.free(1), 0, "slots come back only on release");
        c.release();
        assert_eq!(p.free(1), 2);
        assert_eq!(p.in_kernel(), 2);
        assert!(p.push(14));
        assert!(p.push(15));
        p.submit();
        let mut seen = Vec::new();
        while let Some(v) = c.peek() {
            seen.push(v);
            c.advance();
        }
        c.release();
        assert_eq!(seen, vec![12, 13, 14, 15]);
        assert_eq!(p.in_kernel(), 0);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let (mut p, mut c) = pair(2);
        for round in 0..5u64 {
            assert!(p.push(round));
            p.submit();
            assert_eq!(c.peek(), Some(round));
            c.advance();
            c.release();
        }
    }

    #[test]
    fn bad_offsets_are_rejected() {
        let bad = RingOffset { producer: 2, ..OFF };
        assert!(RingMap::<u64>::mapping_len(&bad, 4).is_err());
        assert!(RingMap::<u64>::mapping_len(&OFF, 3).is_err());
    }
}
