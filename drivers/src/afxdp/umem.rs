//! The UMEM: one anonymous mapping of `frame_count` equal frames shared with the kernel,
//! split once into a receive half and a transmit half.
//!
//! The split is what makes handing out slices sound. Receive frames only ever travel
//! fill ring → kernel → RX ring → stack → fill ring, and userspace only reads them while it
//! holds their RX descriptor. Transmit frames only travel free list → stack (writes) → TX
//! ring → kernel → completion ring → free list. Because the halves are disjoint address
//! ranges, a shared RX slice and a mutable TX slice can never overlap, whatever address a
//! descriptor claims: every access is range-checked against its own half.
#![allow(unsafe_code)]

use std::io;
use std::sync::Arc;

use super::sys::Mmap;

/// What `XDP_UMEM_REG` needs to know about the mapping.
#[derive(Debug)]
pub(crate) struct UmemRegion {
    /// Base address of the mapping.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    _map: Arc<Mmap>,
}

/// The receive half, frames `[0, rx_frames)`: read-only views while the stack holds the
/// frame's descriptor.
#[derive(Debug)]
pub(crate) struct RxArea {
    map: Arc<Mmap>,
    frame_size: u32,
    frames: u32,
}

/// The transmit half, frames `[rx_frames, frame_count)`, handed out as slots of `span`
/// consecutive frames (one frame unless the MTU needs several buffers): one mutable slot
/// at a time.
#[derive(Debug)]
pub(crate) struct TxArea {
    map: Arc<Mmap>,
    frame_size: u32,
    first: u32,
    frames: u32,
    span: u32,
}

/// A UMEM split into its registration info and its two halves.
#[derive(Debug)]
pub(crate) struct Umem {
    pub region: UmemRegion,
    pub rx: RxArea,
    pub tx: TxArea,
}

impl Umem {
    /// Maps `frame_count` frames of `frame_size` bytes; the first `rx_frames` receive, the
    /// rest transmit in slots of `tx_span` consecutive frames.
    pub(crate) fn new(
        frame_size: u32,
        frame_count: u32,
        rx_frames: u32,
        tx_span: u32,
    ) -> io::Result<Umem> {
        if !frame_size.is_power_of_two()
            || rx_frames > frame_count
            || tx_span == 0
            || tx_span > frame_count - rx_frames
        {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let len = usize::try_from(u64::from(frame_size) * u64::from(frame_count))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let map = Arc::new(Mmap::anonymous(len)?);
        Ok(Umem {
            region: UmemRegion {
                addr: map.ptr().as_ptr() as u64,
                len: len as u64,
                _map: map.clone(),
            },
            rx: RxArea {
                map: map.clone(),
                frame_size,
                frames: rx_frames,
            },
            tx: TxArea {
                map,
                frame_size,
                first: rx_frames,
                frames: frame_count - rx_frames,
                span: tx_span,
            },
        })
    }
}

/// `[addr, addr + len)` as a byte range inside frames `[first, first + frames)`, or `None`
/// when it leaves that range or crosses a frame boundary.
fn checked_range(
    addr: u64,
    len: u32,
    frame_size: u32,
    first: u32,
    frames: u32,
) -> Option<std::ops::Range<usize>> {
    let fs = u64::from(frame_size);
    let start_frame = u64::from(first);
    let frame = addr / fs;
    if frame < start_frame || frame >= start_frame + u64::from(frames) {
        return None;
    }
    if addr % fs + u64::from(len) > fs {
        return None;
    }
    let start = usize::try_from(addr).ok()?;
    Some(start..start.checked_add(len as usize)?)
}

impl RxArea {
    /// The base addresses of every receive frame (to stock the fill ring).
    pub(crate) fn frame_addrs(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.frames).map(|i| u64::from(i) * u64::from(self.frame_size))
    }

    /// The base of the frame holding `addr` (what goes back to the fill ring).
    pub(crate) fn frame_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    /// Whether `addr` lies in the receive half.
    pub(crate) fn owns(&self, addr: u64) -> bool {
        addr / u64::from(self.frame_size) < u64::from(self.frames)
    }

    /// The received bytes a descriptor names, or `None` when it points outside the receive
    /// half (a descriptor we must not trust).
    pub(crate) fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let r = checked_range(addr, len, self.frame_size, 0, self.frames)?;
        // SAFETY: the range lies inside the mapping (checked against the receive half,
        // which is inside it), which `self.map` keeps alive for the returned lifetime. No
        // `&mut` to receive frames exists anywhere (TxArea's range is disjoint), and the
        // kernel does not write a frame while userspace holds its RX descriptor, i.e. until
        // the frame goes back to the fill ring, which the caller does only after the slice
        // is gone.
        Some(unsafe { std::slice::from_raw_parts(self.map.ptr().as_ptr().add(r.start), r.len()) })
    }
}

impl TxArea {
    /// Bytes of one slot.
    fn slot_bytes(&self) -> u64 {
        u64::from(self.frame_size) * u64::from(self.span)
    }

    /// Whole slots in the half.
    fn slots(&self) -> u32 {
        self.frames / self.span
    }

    /// The base addresses of every transmit slot (to stock the free list).
    pub(crate) fn frame_addrs(&self) -> impl Iterator<Item = u64> + '_ {
        let base = u64::from(self.first) * u64::from(self.frame_size);
        (0..self.slots()).map(move |i| base + u64::from(i) * self.slot_bytes())
    }

    /// `addr` as (slot index, offset in the slot), if it lies in a whole slot.
    fn locate(&self, addr: u64) -> Option<(u64, u64)> {
        let rel = addr.checked_sub(u64::from(self.first) * u64::from(self.frame_size))?;
        let slot = rel / self.slot_bytes();
        (slot < u64::from(self.slots())).then_some((slot, rel % self.slot_bytes()))
    }

    /// Whether `addr` is the base of a transmit slot (validates completion entries).
    pub(crate) fn owns(&self, addr: u64) -> bool {
        self.locate(addr).is_some_and(|(_, off)| off == 0)
    }

    /// Whether `addr` is the base of a frame inside a slot other than its first: the
    /// completion of a later buffer of a multi-buffer frame, which frees nothing itself.
    pub(crate) fn is_continuation(&self, addr: u64) -> bool {
        self.locate(addr)
            .is_some_and(|(_, off)| off != 0 && off.is_multiple_of(u64::from(self.frame_size)))
    }

    /// Bytes one slot holds (the largest frame a slot can carry).
    pub(crate) fn slot_size(&self) -> u32 {
        self.frame_size * self.span
    }

    /// Bytes one UMEM frame holds (the most one descriptor may carry).
    pub(crate) fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// The first `len` bytes of the transmit slot at `addr`, writable, or `None` when
    /// `addr` is not a slot base or `len` leaves the slot.
    pub(crate) fn frame_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let (_, off) = self.locate(addr)?;
        if off != 0 || u64::from(len) > self.slot_bytes() {
            return None;
        }
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len as usize)?;
        if end > self.map.len() {
            return None;
        }
        // SAFETY: `[start, end)` lies inside one slot of the transmit half (checked above)
        // of the live mapping held by `self.map`. `&mut self` makes this the only slice into
        // the transmit half, and the receive half never overlaps it. The caller only passes
        // slots from its free list, which the kernel has finished with (they came back
        // through the completion ring or were never submitted).
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.map.ptr().as_ptr().add(start), end - start)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn halves_are_disjoint_and_checked() {
        let mut u = Umem::new(2048, 8, 4, 1).unwrap();
        assert_eq!(u.region.len, 8 * 2048);
        let rx: Vec<u64> = u.rx.frame_addrs().collect();
        let tx: Vec<u64> = u.tx.frame_addrs().collect();
        assert_eq!(rx, vec![0, 2048, 4096, 6144]);
        assert_eq!(tx, vec![8192, 10240, 12288, 14336]);
        // Receive views stay in the receive half and inside one frame.
        assert_eq!(u.rx.frame(256, 1514).unwrap().len(), 1514);
        assert!(u.rx.frame(256, 1900).is_none(), "crosses a frame boundary");
        assert!(u.rx.frame(8192 + 256, 60).is_none(), "transmit half");
        assert!(u.rx.frame(u64::MAX - 10, 60).is_none());
        assert_eq!(u.rx.frame_base(2048 + 256), 2048);
        // Transmit frames are writable and only in the transmit half.
        u.tx.frame_mut(8192, 60).unwrap().fill(0xab);
        assert!(u.tx.frame_mut(0, 60).is_none());
        assert!(u.tx.frame_mut(16384, 60).is_none(), "past the end");
        assert!(u.tx.owns(10240));
        assert!(!u.tx.owns(10241));
        assert!(!u.tx.owns(2048));
        assert!(u.rx.owns(6144) && !u.rx.owns(8192));
    }

    #[test]
    fn odd_geometry_is_refused() {
        assert!(Umem::new(3000, 8, 4, 1).is_err());
        assert!(Umem::new(2048, 4, 8, 1).is_err());
        assert!(Umem::new(2048, 8, 4, 0).is_err());
        assert!(Umem::new(2048, 8, 4, 5).is_err());
    }

    #[test]
    fn multi_buffer_slots_span_consecutive_frames() {
        // 4 receive frames, 7 transmit frames in slots of 3 (the 7th is unused).
        let mut u = Umem::new(4096, 11, 4, 3).unwrap();
        let tx: Vec<u64> = u.tx.frame_addrs().collect();
        assert_eq!(tx, vec![4 * 4096, 7 * 4096]);
        assert_eq!(u.tx.slot_size(), 3 * 4096);
        let slot = u.tx.frame_mut(4 * 4096, 9014).unwrap();
        assert_eq!(slot.len(), 9014);
        slot.fill(1);
        assert!(
            u.tx.frame_mut(4 * 4096, 3 * 4096 + 1).is_none(),
            "past the slot"
        );
        assert!(u.tx.frame_mut(5 * 4096, 10).is_none(), "not a slot base");
        assert!(u.tx.frame_mut(10 * 4096, 10).is_none(), "the unused tail");
        assert!(u.tx.owns(7 * 4096) && !u.tx.owns(8 * 4096));
        assert!(u.tx.is_continuation(8 * 4096) && u.tx.is_continuation(9 * 4096));
        assert!(!u.tx.is_continuation(7 * 4096) && !u.tx.is_continuation(8 * 4096 + 1));
        assert!(!u.tx.is_continuation(10 * 4096), "outside every slot");
    }
}
