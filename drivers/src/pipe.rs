//! The pipe driver: two links joined back to back in one process over lock-free rings, so
//! two stacks can talk without a kernel, a namespace or a clock of their own.
//!
//! Each direction is a ring of filled frames plus a free list of empty ones, both
//! `crossbeam_queue::ArrayQueue`s; every frame buffer is allocated once by [`pair`] and then
//! moves between the two queues, so the data path allocates nothing. Both ends are `Send`:
//! they may live on two threads (each sleeping on its [`Link::wait_fd`]) or on one thread,
//! driven alternately on virtual time by a deterministic test.
//!
//! Not here: loss, reordering or corruption (the fault wrapper adds those around any link).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::link::{Link, LinkStats};
use crate::wait::Doorbell;

use crate::ETH_HEADER;

/// One preallocated frame buffer and how many of its bytes hold the frame.
#[derive(Debug)]
struct Frame {
    len: usize,
    buf: Box<[u8]>,
}

/// One direction of the pipe: frames in flight, empty buffers, and the receiver's doorbell.
#[derive(Debug)]
struct Direction {
    /// Filled frames, oldest first.
    ring: ArrayQueue<Frame>,
    /// Empty buffers the sender may fill.
    free: ArrayQueue<Frame>,
    /// Rung when a frame is pushed while the receiver has said it is going to sleep; `None`
    /// if the kernel refused an eventfd (the receiver then polls instead of sleeping).
    bell: Option<Doorbell>,
    /// Set by the receiver in `prepare_wait`, cleared by the sender that rings the bell.
    sleeping: AtomicBool,
}

impl Direction {
    fn new(frames: usize, frame_len: usize) -> Direction {
        let ring = ArrayQueue::new(frames);
        let free = ArrayQueue::new(frames);
        for _ in 0..frames {
            // Cannot fail: the queue was made with room for exactly `frames` entries.
            let _ = free.push(Frame {
                len: 0,
                buf: vec![0u8; frame_len].into_boxed_slice(),
            });
        }
        let bell = match Doorbell::new() {
            Ok(bell) => Some(bell),
            Err(e) => {
                log::warn!("pipe: no eventfd ({e}); the receiving shard will poll");
                None
            }
        };
        Direction {
            ring,
            free,
            bell,
            sleeping: AtomicBool::new(false),
        }
    }

    /// Queues a filled frame for the receiver and wakes it if it is asleep.
    fn push_with(&self, frame: Frame) {
        match self.ring.push(frame) {
            Ok(()) => {
                // Pairs with `prepare_wait`: either the receiver sees the frame or we see
                // its flag (both SeqCst), so a wakeup is never lost.
                if self.sleeping.swap(false, Ordering::SeqCst) {
                    if let Some(bell) = &self.bell {
                        bell.ring();
                    }
                }
            }
            // Cannot happen (ring and free list share one set of buffers), but if it did the
            // buffer goes back to the free list rather than being lost.
            Err(frame) => {
                let _ = self.free.push(frame);
            }
        }
    }
}

/// Creates two links joined back to back: what one transmits, the other receives.
///
/// Each direction holds `frames` buffers (at least 1) of `mtu + 14` bytes, allocated here
/// and recycled afterwards. `mtu` is the IP MTU, as for every sixstack link.
///
/// Should the kernel refuse the two wakeup eventfds, the links still work but
/// [`Link::wait_fd`] returns `None` (the shard polls them).
pub fn pair(frames: usize, mtu: usize) -> (PipeLink, PipeLink) {
    let frames = frames.max(1);
    let frame_len = mtu.saturating_add(ETH_HEADER);
    let a_to_b = Arc::new(Direction::new(frames, frame_len));
    let b_to_a = Arc::new(Direction::new(frames, frame_len));
    let a = PipeLink::new(
        0,
        Arc::clone(&a_to_b),
        Arc::clone(&b_to_a),
        frame_len,
        frames,
    );
    let b = PipeLink::new(1, b_to_a, a_to_b, frame_len, frames);
    (a, b)
}

/// One end of an in-memory pipe made by [`pair`]; a smoltcp `Device` and a [`Link`].
#[derive(Debug)]
pub struct PipeLink {
    end: u8,
    frames: usize,
    frame_len: usize,
    tx: Arc<Direction>,
    rx: Arc<Direction>,
    stats: LinkStats,
    /// Where an oversize or unbufferable frame is built before being dropped; grows only on
    /// that error path, never on a normal send.
    scratch: Vec<u8>,
}

impl PipeLink {
    fn new(
        end: u8,
        tx: Arc<Direction>,
        rx: Arc<Direction>,
        frame_len: usize,
        frames: usize,
    ) -> PipeLink {
        PipeLink {
            end,
            frames,
            frame_len,
            tx,
            rx,
            stats: LinkStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Queues `frame` on this end's receive side, as if it had arrived from the wire; the
    /// bytes need not be a valid frame (tests use this to feed malformed input).
    ///
    /// Returns `false`, queuing nothing, when the frame is longer than `mtu + 14` or every
    /// receive buffer is in use.
    pub fn inject(&self, frame: &[u8]) -> bool {
        if frame.len() > self.frame_len {
            return false;
        }
        let Some(mut buf) = self.rx.free.pop() else {
            return false;
        };
        buf.buf[..frame.len()].copy_from_slice(frame);
        buf.len = frame.len();
        self.rx.push_with(buf);
        true
    }

    /// Frames waiting to be received on this end.
    pub fn pending(&self) -> usize {
        self.rx.ring.len()
    }
}

impl phy::Device for PipeLink {
    type RxToken<'a> = PipeRxToken<'a>;
    type TxToken<'a> = PipeTxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(PipeRxToken<'_>, PipeTxToken<'_>)> {
        let frame = self.rx.ring.pop()?;
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.len as u64;
        Some((
            PipeRxToken {
                frame: Some(frame),
                free: &self.rx.free,
            },
            PipeTxToken {
                dir: &self.tx,
                stats: &mut self.stats,
                scratch: &mut self.scratch,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<PipeTxToken<'_>> {
        if self.tx.free.is_empty() {
            self.stats.tx_dropped += 1;
            return None;
        }
        Some(PipeTxToken {
            dir: &self.tx,
            stats: &mut self.stats,
            scratch: &mut self.scratch,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.frame_len;
        caps
    }
}

impl Link for PipeLink {
    fn describe(&self) -> String {
        format!("pipe end {} ({} frames)", self.end, self.frames)
    }

    /// Nothing to do: frames are visible to the peer as soon as they are transmitted.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn wait_fd(&self) -> Option<RawFd> {
        self.rx.bell.as_ref().map(Doorbell::fd)
    }

    fn prepare_wait(&mut self) -> bool {
        if let Some(bell) = &self.rx.bell {
            bell.drain();
        }
        self.rx.sleeping.store(true, Ordering::SeqCst);
        if self.rx.ring.is_empty() {
            return true;
        }
        self.rx.sleeping.store(false, Ordering::SeqCst);
        false
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}

/// A received frame lent to smoltcp; its buffer returns to the free list when consumed or
/// dropped.
#[derive(Debug)]
pub struct PipeRxToken<'a> {
    frame: Option<Frame>,
    free: &'a ArrayQueue<Frame>,
}

impl phy::RxToken for PipeRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        match &self.frame {
            Some(frame) => f(frame.buf.get(..frame.len).unwrap_or_default()),
            // Only reachable if the token were consumed twice, which `self` forbids.
            None => f(&[]),
        }
        // Drop returns the buffer.
    }
}

impl Drop for PipeRxToken<'_> {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            let _ = self.free.push(frame);
        }
    }
}

/// The right to send one frame to the other end of the pipe.
#[derive(Debug)]
pub struct PipeTxToken<'a> {
    dir: &'a Direction,
    stats: &'a mut LinkStats,
    scratch: &'a mut Vec<u8>,
}

impl phy::TxToken for PipeTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        match self.dir.free.pop() {
            Some(mut frame) if len <= frame.buf.len() => {
                let r = f(&mut frame.buf[..len]);
                frame.len = len;
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
                self.dir.push_with(frame);
                r
            }
            other => {
                // No buffer (the peer is not keeping up) or a frame larger than the MTU we
                // advertised: let smoltcp build it somewhere harmless and drop it.
                if let Some(frame) = other {
                    let _ = self.dir.free.push(frame);
                }
                self.stats.tx_dropped += 1;
                self.scratch.clear();
                self.scratch.resize(len, 0);
                f(&mut self.scratch[..])
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wait::wait_readable;
    use smoltcp::phy::{Device, RxToken, TxToken};
    use std::time::Duration;

    fn send(link: &mut PipeLink, bytes: &[u8]) -> bool {
        match link.transmit(Instant::ZERO) {
            Some(tok) => {
                tok.consume(bytes.len(), |buf| buf.copy_from_slice(bytes));
                true
            }
            None => false,
        }
    }

    fn recv(link: &mut PipeLink) -> Option<Vec<u8>> {
        let (rx, _tx) = link.receive(Instant::ZERO)?;
        Some(rx.consume(|b| b.to_vec()))
    }

    #[test]
    fn ends_are_send() {
        fn is_send<T: Send>() {}
        is_send::<PipeLink>();
    }

    #[test]
    fn frames_pass_both_ways_in_order() {
        let (mut a, mut b) = pair(8, 1500);
        for i in 0..5u8 {
            assert!(send(&mut a, &[i; 60]));
            assert!(send(&mut b, &[100 + i; 61]));
        }
        for i in 0..5u8 {
            assert_eq!(recv(&mut b).unwrap(), vec![i; 60]);
            assert_eq!(recv(&mut a).unwrap(), vec![100 + i; 61]);
        }
        assert!(recv(&mut a).is_none());
        assert!(recv(&mut b).is_none());
        let s = a.stats();
        assert_eq!(
            (s.tx_frames, s.tx_bytes, s.rx_frames, s.rx_bytes),
            (5, 300, 5, 305)
        );
        assert_eq!(a.capabilities().max_transmission_unit, 1514);
        assert_eq!(a.capabilities().medium, Medium::Ethernet);
    }

    #[test]
    fn full_ring_refuses_transmit_and_counts_it() {
        let (mut a, mut b) = pair(4, 1500);
        for _ in 0..4 {
            assert!(send(&mut a, &[1; 64]));
        }
        assert!(!send(&mut a, &[1; 64]));
        assert_eq!(a.stats().tx_dropped, 1);
        assert_eq!(b.pending(), 4);
        // Receiving one frees one buffer for the sender.
        assert!(recv(&mut b).is_some());
        assert!(send(&mut a, &[2; 64]));
    }

    #[test]
    fn buffers_recycle_without_loss() {
        let (mut a, mut b) = pair(2, 1500);
        for round in 0..1000u32 {
            let bytes = round.to_be_bytes();
            assert!(send(&mut a, &bytes));
            assert_eq!(recv(&mut b).unwrap(), bytes);
        }
        // A token dropped unconsumed returns its buffer too.
        for _ in 0..10 {
            assert!(send(&mut a, &[9; 20]));
            drop(b.receive(Instant::ZERO).unwrap());
        }
        assert_eq!(a.stats().tx_dropped, 0);
    }

    #[test]
    fn oversize_frame_is_dropped_not_sent() {
        let (mut a, mut b) = pair(4, 100);
        assert!(send(&mut a, &[0; 114]));
        assert!(send(&mut a, &[0; 115]));
        assert_eq!(a.stats().tx_dropped, 1);
        assert_eq!(b.pending(), 1);
        assert!(!b.inject(&[0; 115]));
        assert!(b.inject(&[0xff; 3]));
        assert_eq!(recv(&mut b).unwrap().len(), 114);
        assert_eq!(recv(&mut b).unwrap(), vec![0xff; 3]);
    }

    #[test]
    fn eventfd_wakes_a_sleeping_receiver() {
        let (mut a, mut b) = pair(4, 1500);
        let fd = b.wait_fd().unwrap();
        assert!(b.prepare_wait());
        assert_eq!(wait_readable(&[fd], Some(Duration::ZERO)).unwrap(), 0);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            assert!(send(&mut a, &[7; 42]));
            a
        });
        assert_eq!(
            wait_readable(&[fd], Some(Duration::from_secs(5))).unwrap(),
            1
        );
        assert_eq!(recv(&mut b).unwrap(), vec![7; 42]);
        let mut a = sender.join().unwrap();
        // Frames already waiting: the receiver must not sleep.
        assert!(send(&mut a, &[8; 42]));
        assert!(!b.prepare_wait());
        // Not announced as sleeping: a push does not ring the bell.
        assert!(recv(&mut b).is_some());
        assert!(b.prepare_wait());
        assert_eq!(wait_readable(&[fd], Some(Duration::ZERO)).unwrap(), 0);
    }

    #[test]
    fn ends_work_across_threads() {
        let (mut a, mut b) = pair(16, 1500);
        let n = 10_000u32;
        let t = std::thread::spawn(move || {
            let mut got = 0u32;
            while got < n {
                if let Some(frame) = recv(&mut b) {
                    assert_eq!(frame, got.to_be_bytes());
                    got += 1;
                } else if b.prepare_wait() {
                    let fd = b.wait_fd().unwrap();
                    wait_readable(&[fd], Some(Duration::from_secs(5))).unwrap();
                }
            }
        });
        let mut i = 0u32;
        while i < n {
            if send(&mut a, &i.to_be_bytes()) {
                i += 1;
            } else {
                std::thread::yield_now();
            }
        }
        t.join().unwrap();
    }
}
