//! The frame buffers under a TAP link and the engine that moves them: a batch of io_uring
//! reads kept in flight plus writes submitted once per flush, or, where io_uring is not
//! available, plain non-blocking `read`/`write` on the same buffers.
//!
//! Every buffer is allocated once, when the link opens. The kernel writes into RX buffers
//! while their reads are in flight, so buffer memory is held as a raw allocation and a slice
//! of one slot is only ever made while no operation on that slot is in flight; the slot
//! state below (in flight / ready / lent / free) is what the `SAFETY` comments rely on.
//!
//! Not here: opening the device or the smoltcp tokens (see `tap.rs`).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

use crate::link::LinkStats;
use crate::wait::{wait_readable, Doorbell};

/// `user_data` layout: slot index in bits 0..16, frame length in 16..48, kind in 48..56.
const KIND_SHIFT: u32 = 48;
const KIND_RX: u64 = 1;
const KIND_TX: u64 = 2;
const KIND_CANCEL: u64 = 3;

fn user_data(kind: u64, idx: u16, len: u32) -> u64 {
    (kind << KIND_SHIFT) | (u64::from(len) << 16) | u64::from(idx)
}

/// Equally sized frame slots in one allocation, addressed by raw pointer so the kernel may
/// write into one slot while Rust code reads another.
struct SlotMem {
    base: NonNull<u8>,
    stride: usize,
    count: usize,
    /// Bytes allocated; 0 for a placeholder that owns nothing.
    total: usize,
}

// SAFETY: SlotMem owns its allocation outright (like a Box<[u8]>); moving it to another
// thread moves that ownership. In-flight kernel operations are tied to the ring, which moves
// together with the SlotMem inside the same Engine.
unsafe impl Send for SlotMem {}

impl SlotMem {
    fn new(count: usize, stride: usize) -> SlotMem {
        let total = count.saturating_mul(stride).max(1);
        let raw: *mut [u8] = Box::into_raw(vec![0u8; total].into_boxed_slice());
        // A Box pointer is never null; the fallback is unreachable but avoids a panic path.
        let base = NonNull::new(raw.cast::<u8>()).unwrap_or(NonNull::dangling());
        SlotMem {
            base,
            stride,
            count,
            total,
        }
    }

    /// A placeholder that owns no memory (what a leaked SlotMem is replaced with).
    fn empty() -> SlotMem {
        SlotMem {
            base: NonNull::dangling(),
            stride: 0,
            count: 0,
            total: 0,
        }
    }

    /// Start of slot `idx` (`idx < count`, checked by callers).
    fn ptr(&self, idx: u16) -> *mut u8 {
        let off = usize::from(idx).min(self.count.saturating_sub(1)) * self.stride;
        // SAFETY: off < count * stride (the index is clamped to the last slot), so the
        // result stays inside the allocation.
        unsafe { self.base.as_ptr().add(off) }
    }

    /// The first `len` bytes of slot `idx` (`len` clamped to the slot).
    ///
    /// # Safety
    /// No kernel operation on slot `idx` may be in flight and no `&mut` to it may exist for
    /// as long as the returned slice lives.
    unsafe fn slice(&self, idx: u16, len: usize) -> &[u8] {
        // SAFETY: the slot is inside the allocation (see `ptr`), initialised (zeroed at
        // allocation), and the caller guarantees nothing writes it meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr(idx), len.min(self.stride)) }
    }

    /// The first `len` bytes of slot `idx`, writable (`len` clamped to the slot).
    ///
    /// # Safety
    /// No kernel operation on slot `idx` may be in flight and no other reference to it may
    /// exist for as long as the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice_mut(&self, idx: u16, len: usize) -> &mut [u8] {
        // SAFETY: as for `slice`, and the caller guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(idx), len.min(self.stride)) }
    }
}

impl Drop for SlotMem {
    fn drop(&mut self) {
        if self.total == 0 {
            return;
        }
        let raw = std::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), self.total);
        // SAFETY: `raw` is exactly the pointer and length `new` got from Box::into_raw.
        // An Engine that could not confirm all its operations finished forgets its
        // SlotMems instead of dropping them (see `Engine::drop`).
        drop(unsafe { Box::from_raw(raw) });
    }
}

/// Receive slots: each is in flight (uring), ready (in `ready`), lent or free (in `rearm`).
struct RxSide {
    mem: SlotMem,
    frame_len: usize,
    /// Received frames, oldest first: (slot, length). Capacity = slot count, never grows.
    ready: VecDeque<(u16, u32)>,
    /// Slots to read into again: lent to smoltcp last time or never armed yet.
    rearm: Vec<u16>,
}

/// Transmit slots: each is free, queued (filled, waiting for `flush`) or in flight.
pub(super) struct TxSide {
    mem: SlotMem,
    frame_len: usize,
    free: Vec<u16>,
    queued: Vec<(u16, u32)>,
    /// Where a frame is built when no slot is free or it is oversize, then dropped; grows
    /// only on that error path.
    scratch: Vec<u8>,
}

/// The io_uring state.
struct Uring {
    ring: IoUring,
    /// Registered with the ring: signalled on every completion.
    bell: Doorbell,
    /// Which RX slots have a read in flight.
    rx_in_flight: Box<[bool]>,
    /// Operations submitted and not yet completed (reads, writes, cancels).
    in_flight: usize,
}

/// Moves frames between a TAP descriptor and preallocated buffers.
pub(super) struct Engine {
    // Field order matters for drop: the ring goes before the memory it may write.
    uring: Option<Uring>,
    rx: RxSide,
    tx: TxSide,
    file: File,
    stats: LinkStats,
    /// The last unexpected read/write error, reported once by the next `flush`.
    error: Option<io::Error>,
}

impl Engine {
    /// Builds the engine over an open TAP `file` with `slots` RX and `slots` TX buffers of
    /// `frame_len` bytes. With `use_uring`, tries io_uring first; returns the reason it fell
    /// back to read/write, if it did. No operation is started here: reads are armed by the
    /// first `flush`/`prepare_wait`, on the thread that runs the link.
    pub(super) fn new(
        file: File,
        frame_len: usize,
        slots: usize,
        use_uring: bool,
    ) -> io::Result<(Engine, Option<String>)> {
        let slots = slots.clamp(1, usize::from(u16::MAX));
        let (uring, fallback) = if use_uring {
            match Uring::new(slots) {
                Ok(u) => (Some(u), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, Some("disabled by options".to_owned()))
        };
        if uring.is_none() {
            super::sys::set_nonblocking(&file)?;
        }
        let slot_ids = || (0..slots).map(|i| i as u16).rev().collect::<Vec<u16>>();
        let engine = Engine {
            uring,
            rx: RxSide {
                // One spare byte: a reader that truncates (rather than reporting the full
                // length, as tun does) still shows an oversize frame as `frame_len + 1`.
                mem: SlotMem::new(slots, frame_len + 1),
                frame_len,
                ready: VecDeque::with_capacity(slots),
                rearm: slot_ids(),
            },
            tx: TxSide {
                mem: SlotMem::new(slots, frame_len),
                frame_len,
                free: slot_ids(),
                queued: Vec::with_capacity(slots),
                scratch: Vec::new(),
            },
            file,
            stats: LinkStats::default(),
            error: None,
        };
        Ok((engine, fallback))
    }

    /// Whether frames move through io_uring (else plain read/write).
    pub(super) fn uses_uring(&self) -> bool {
        self.uring.is_some()
    }

    /// Counters since the link opened.
    pub(super) fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The next received frame and a transmit slot for a reply.
    pub(super) fn receive(&mut self) -> Option<(&[u8], TxSlot<'_>)> {
        if self.rx.ready.is_empty() {
            self.poll_rx();
        }
        let (idx, len) = self.rx.ready.pop_front()?;
        // The slot is lent until the next `&mut self` call, then read into again.
        self.rx.rearm.push(idx);
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += u64::from(len);
        // SAFETY: the slot's read completed (it came from `ready`) and it is not re-armed
        // before the next `&mut self` call, which ends this borrow. TX memory is separate.
        let frame = unsafe { self.rx.mem.slice(idx, len as usize) };
        Some((
            frame,
            TxSlot {
                tx: &mut self.tx,
                stats: &mut self.stats,
            },
        ))
    }

    /// A transmit slot, or `None` (counted in `tx_dropped`) when every buffer is busy.
    pub(super) fn transmit(&mut self) -> Option<TxSlot<'_>> {
        if self.tx.free.is_empty() {
            // Out of buffers within one round: push the queued frames out now.
            let _ = self.submit_queued();
            self.reap();
        }
        if self.tx.free.is_empty() {
            self.stats.tx_dropped += 1;
            return None;
        }
        Some(TxSlot {
            tx: &mut self.tx,
            stats: &mut self.stats,
        })
    }

    /// Re-arms lent RX slots and submits the queued TX frames, one `io_uring_enter` for all.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.submit_queued()?;
        self.reap();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The descriptor to sleep on: the ring's eventfd, or the TAP descriptor itself.
    pub(super) fn wait_fd(&self) -> RawFd {
        match &self.uring {
            Some(u) => u.bell.fd(),
            None => self.file.as_raw_fd(),
        }
    }

    /// Prepares to sleep on `wait_fd`; `false` when frames already wait.
    pub(super) fn prepare_wait(&mut self) -> bool {
        if let Some(u) = &self.uring {
            // Drain first, then look: a completion posted after the look rings it again.
            u.bell.drain();
        }
        self.reap();
        if !self.rx.ready.is_empty() {
            return false;
        }
        // Reads must be in flight before we sleep, or nothing would wake us.
        if let Err(e) = self.submit_queued() {
            self.error = Some(e);
            return false;
        }
        true
    }

    /// Brings completed reads into `ready`: reaps the ring, or reads one frame.
    fn poll_rx(&mut self) {
        if self.uring.is_some() {
            self.reap();
            return;
        }
        let Some(idx) = self.rx.rearm.pop() else {
            return;
        };
        // SAFETY: plain mode has no operations in flight; the slot came from `rearm`, so it
        // is not in `ready` and no token borrows it (tokens end before this `&mut self`).
        let buf = unsafe { self.rx.mem.slice_mut(idx, self.rx.frame_len + 1) };
        match (&self.file).read(buf) {
            Ok(n) if n > 0 && n <= self.rx.frame_len => {
                self.rx.ready.push_back((idx, n as u32));
            }
            Ok(_) => {
                self.stats.rx_dropped += 1;
                self.rx.rearm.push(idx);
            }
            Err(e) => {
                self.rx.rearm.push(idx);
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    self.error = Some(e);
                }
            }
        }
    }

    /// Arms reads for lent slots and sends queued frames.
    fn submit_queued(&mut self) -> io::Result<()> {
        let Some(u) = self.uring.as_mut() else {
            self.write_queued_plain();
            return Ok(());
        };
        let fd = types::Fd(self.file.as_raw_fd());
        let mut pushed = false;
        while let Some(&idx) = self.rx.rearm.last() {
            let len = (self.rx.frame_len + 1) as u32;
            let entry = opcode::Read::new(fd, self.rx.mem.ptr(idx), len)
                .build()
                .user_data(user_data(KIND_RX, idx, 0));
            // SAFETY: the slot is in `rearm`: no operation on it is in flight and no token
            // borrows it. It stays untouched until its completion is reaped, and the memory
            // outlives the operation (Engine::drop waits for it or leaks the memory).
            unsafe { u.push(&entry)? };
            self.rx.rearm.pop();
            if let Some(f) = u.rx_in_flight.get_mut(usize::from(idx)) {
                *f = true;
            }
            pushed = true;
        }
        // Writes go in the order smoltcp queued them (the ring issues them in SQ order).
        let mut sent = 0;
        let mut result = Ok(());
        for &(idx, len) in &self.tx.queued {
            let entry = opcode::Write::new(fd, self.tx.mem.ptr(idx), len)
                .build()
                .user_data(user_data(KIND_TX, idx, len));
            // SAFETY: a queued slot is filled and no longer referenced by any token; it is
            // not written until its completion returns it to `free`, and the memory outlives
            // the operation (see above).
            if let Err(e) = unsafe { u.push(&entry) } {
                result = Err(e);
                break;
            }
            sent += 1;
        }
        self.tx.queued.drain(..sent);
        pushed |= sent > 0;
        if pushed {
            u.ring.submit()?;
            self.stats.kicks += 1;
        }
        result
    }

    /// Plain mode: writes every queued frame now.
    fn write_queued_plain(&mut self) {
        for (idx, len) in self.tx.queued.drain(..) {
            // SAFETY: plain mode has no operations in flight, and a queued slot is no
            // longer referenced by any token.
            let frame = unsafe { self.tx.mem.slice(idx, len as usize) };
            self.stats.kicks += 1;
            match (&self.file).write(frame) {
                Ok(n) if n == frame.len() => {
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += n as u64;
                }
                Ok(_) => self.stats.tx_dropped += 1,
                Err(e) => {
                    self.stats.tx_dropped += 1;
                    if e.kind() != io::ErrorKind::WouldBlock {
                        self.error = Some(e);
                    }
                }
            }
            self.tx.free.push(idx);
        }
    }

    /// Processes every completion posted so far.
    fn reap(&mut self) {
        let Some(u) = self.uring.as_mut() else {
            return;
        };
        for cqe in u.ring.completion() {
            u.in_flight = u.in_flight.saturating_sub(1);
            let ud = cqe.user_data();
            let res = cqe.result();
            let idx = (ud & 0xffff) as u16;
            match ud >> KIND_SHIFT {
                KIND_RX => {
                    if let Some(f) = u.rx_in_flight.get_mut(usize::from(idx)) {
                        *f = false;
                    }
                    match usize::try_from(res) {
                        Ok(n) if n > 0 && n <= self.rx.frame_len => {
                            self.rx.ready.push_back((idx, n as u32));
                        }
                        Ok(_) => {
                            self.stats.rx_dropped += 1;
                            self.rx.rearm.push(idx);
                        }
                        Err(_) => {
                            self.rx.rearm.push(idx);
                            let errno = -res;
                            if errno != libc::ECANCELED
                                && errno != libc::EINTR
                                && errno != libc::EAGAIN
                            {
                                self.error = Some(io::Error::from_raw_os_error(errno));
                            }
                        }
                    }
                }
                KIND_TX => {
                    let len = ((ud >> 16) & 0xffff_ffff) as u32;
                    match u32::try_from(res) {
                        Ok(n) if n == len => {
                            self.stats.tx_frames += 1;
                            self.stats.tx_bytes += u64::from(n);
                        }
                        Ok(_) => self.stats.tx_dropped += 1,
                        Err(_) => {
                            self.stats.tx_dropped += 1;
                            self.error = Some(io::Error::from_raw_os_error(-res));
                        }
                    }
                    self.tx.free.push(idx);
                }
                _ => {}
            }
        }
    }
}

impl Drop for Engine {
    /// Cancels the reads still in flight and waits (briefly) for every operation to end,
    /// so the kernel never writes into freed memory; if they do not all end, the buffer
    /// memory is leaked instead of freed.
    fn drop(&mut self) {
        let Some(u) = self.uring.as_mut() else {
            return;
        };
        for idx in 0..u.rx_in_flight.len() {
            if u.rx_in_flight[idx] {
                let target = user_data(KIND_RX, idx as u16, 0);
                let entry = opcode::AsyncCancel::new(target)
                    .build()
                    .user_data(user_data(KIND_CANCEL, 0, 0));
                // SAFETY: a cancel request carries no buffer.
                if unsafe { u.push(&entry) }.is_err() {
                    break;
                }
            }
        }
        let _ = u.ring.submit();
        for _ in 0..200 {
            self.reap();
            let Some(u) = self.uring.as_ref() else {
                return;
            };
            if u.in_flight == 0 {
                return;
            }
            let _ = wait_readable(&[u.bell.fd()], Some(Duration::from_millis(10)));
            u.bell.drain();
        }
        log::warn!("tap: io_uring operations did not finish; leaking their buffers");
        std::mem::forget(std::mem::replace(&mut self.rx.mem, SlotMem::empty()));
        std::mem::forget(std::mem::replace(&mut self.tx.mem, SlotMem::empty()));
    }
}

impl Uring {
    fn new(slots: usize) -> io::Result<Uring> {
        // Room for every read and write in flight at once, plus the cancels at drop; the
        // completion queue is twice that (the default), so it cannot overflow.
        let entries = (2 * slots + 1).next_power_of_two().min(32_768) as u32;
        let ring = IoUring::new(entries)?;
        let bell = Doorbell::new()?;
        ring.submitter().register_eventfd(bell.fd())?;
        Ok(Uring {
            ring,
            bell,
            rx_in_flight: vec![false; slots].into_boxed_slice(),
            in_flight: 0,
        })
    }

    /// Pushes one entry, submitting first if the submission queue is full.
    ///
    /// # Safety
    /// Any buffer the entry names must stay valid and untouched until its completion.
    unsafe fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        // SAFETY: the caller vouches for the entry's buffer.
        if unsafe { self.ring.submission().push(entry) }.is_err() {
            self.ring.submit()?;
            // SAFETY: as above.
            unsafe { self.ring.submission().push(entry) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.in_flight += 1;
        Ok(())
    }
}

/// The right to send one frame on the TAP link, used by its smoltcp transmit token.
pub(super) struct TxSlot<'a> {
    tx: &'a mut TxSide,
    stats: &'a mut LinkStats,
}

impl TxSlot<'_> {
    /// Lets `f` build a `len`-byte frame in a free buffer and queues it for the next flush.
    /// With no free buffer, or `len` beyond the frame size, the frame is built in a scratch
    /// buffer and dropped (counted in `tx_dropped`).
    pub(super) fn fill<R>(self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        if len <= self.tx.frame_len {
            if let Some(idx) = self.tx.free.pop() {
                // SAFETY: a free slot has no operation in flight and no other reference;
                // it becomes `queued` only after this borrow ends.
                let buf = unsafe { self.tx.mem.slice_mut(idx, len) };
                let r = f(buf);
                self.tx.queued.push((idx, len as u32));
                return r;
            }
        }
        self.stats.tx_dropped += 1;
        self.tx.scratch.clear();
        self.tx.scratch.resize(len, 0);
        f(&mut self.tx.scratch)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;

    /// An engine over one end of a datagram socket pair (frame boundaries kept, no root).
    fn engine(uring: bool, slots: usize, frame_len: usize) -> (Engine, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        let file = File::from(OwnedFd::from(a));
        let (engine, fallback) = Engine::new(file, frame_len, slots, uring).unwrap();
        assert_eq!(engine.uses_uring(), uring, "{fallback:?}");
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (engine, b)
    }

    fn next(e: &mut Engine) -> Option<Vec<u8>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some((frame, _)) = e.receive() {
                return Some(frame.to_vec());
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            if e.prepare_wait() {
                wait_readable(&[e.wait_fd()], Some(Duration::from_millis(100))).unwrap();
            }
            e.flush().unwrap();
        }
    }

    fn both(test: impl Fn(bool)) {
        test(true);
        test(false);
    }

    #[test]
    fn frames_arrive_in_order_through_recycled_buffers() {
        both(|uring| {
            // A burst larger than the batch: buffers must be read into again.
            let (mut e, peer) = engine(uring, 4, 100);
            for i in 0..10u8 {
                peer.send(&[i; 30]).unwrap();
            }
            for i in 0..10u8 {
                assert_eq!(next(&mut e).unwrap(), vec![i; 30]);
            }
            drop(e);
            let (mut e, peer) = engine(uring, 4, 100);
            for i in 0..20u8 {
                peer.send(&[i; 10]).unwrap();
                assert_eq!(next(&mut e).unwrap(), vec![i; 10]);
            }
            assert_eq!(e.stats().rx_frames, 20);
            assert_eq!(e.stats().rx_bytes, 200);
        });
    }

    #[test]
    fn oversize_frames_are_dropped_and_counted() {
        both(|uring| {
            let (mut e, peer) = engine(uring, 4, 100);
            peer.send(&[1; 101]).unwrap();
            peer.send(&[2; 100]).unwrap();
            assert_eq!(next(&mut e).unwrap(), vec![2; 100]);
            assert_eq!(e.stats().rx_dropped, 1);
        });
    }

    #[test]
    fn transmitted_frames_leave_in_order_and_recycle() {
        both(|uring| {
            let (mut e, peer) = engine(uring, 4, 100);
            for i in 0..10u8 {
                let slot = e.transmit().unwrap();
                slot.fill(20, |b| b.fill(i));
            }
            e.flush().unwrap();
            let mut buf = [0u8; 200];
            for i in 0..10u8 {
                let n = peer.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[i; 20]);
            }
            let s = e.stats();
            assert_eq!((s.tx_frames, s.tx_bytes, s.tx_dropped), (10, 200, 0));
            // Oversize: built in scratch, dropped, counted.
            e.transmit().unwrap().fill(101, |b| b.fill(0));
            assert_eq!(e.stats().tx_dropped, 1);
        });
    }

    #[test]
    fn a_reply_slot_comes_with_each_received_frame() {
        both(|uring| {
            let (mut e, peer) = engine(uring, 2, 100);
            e.flush().unwrap();
            peer.send(b"ping").unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if let Some((frame, slot)) = e.receive() {
                    slot.fill(frame.len(), |b| b.copy_from_slice(frame));
                    break;
                }
                assert!(std::time::Instant::now() < deadline);
                if e.prepare_wait() {
                    wait_readable(&[e.wait_fd()], Some(Duration::from_millis(100))).unwrap();
                }
            }
            e.flush().unwrap();
            let mut buf = [0u8; 16];
            let n = peer.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ping");
        });
    }

    #[test]
    fn dropping_with_reads_in_flight_is_prompt() {
        let (mut e, _peer) = engine(true, 32, 1514);
        e.flush().unwrap();
        assert!(e.prepare_wait());
        let t = std::time::Instant::now();
        drop(e);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
