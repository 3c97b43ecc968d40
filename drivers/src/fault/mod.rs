//! The fault link: wraps any sixstack link and hurts its frames on purpose (seeded loss,
//! burst loss, duplication, corruption, reordering, delay with jitter, a rate limit), each
//! direction on its own, for tests, benchmarks and demonstrations of how the stack copes.
//!
//! Deterministic: the decisions come from a seeded generator of its own (one stream per
//! direction), so a seed and a frame sequence always give the same faults. Time is the
//! `Instant` smoltcp passes to `receive`/`transmit`; the wrapper reads no clock.
//!
//! How frames move:
//! - A direction with no fault set passes the inner link's tokens straight through (no copy;
//!   only the reply slot that comes with a frame of a faulty receive direction is queued).
//! - Received frames of a faulty direction are copied out of the inner link into pooled
//!   buffers, judged, and queued by release time; `receive` hands out released ones first.
//! - Frames the stack sends on a faulty direction are built in a pooled buffer, judged, and
//!   queued; released ones go to the inner link on the next `flush`, `transmit` or
//!   `receive` (the shard flushes every round).
//! - While any frame is held, [`Link::prepare_wait`] returns `false`: the shard busy-polls
//!   rather than sleeping past a release time. A delayed link therefore costs a core.
//!
//! Not here: the appliance's TOML syntax (the binary's config maps onto [`FaultConfig`]).

mod config;
mod line;
mod rng;
#[cfg(test)]
mod tests;

use std::fmt;
use std::os::fd::RawFd;

use smoltcp::phy::{self, DeviceCapabilities, PacketMeta};
use smoltcp::time::Instant;

use crate::link::{Link, LinkStats};

pub use config::{
    BurstLoss, Direction, FaultConfig, FaultConfigError, FaultDirection, DEFAULT_QUEUE_LIMIT,
    REORDER_MAX_HOLD_US,
};
pub use line::FaultCounters;

use line::Line;

/// Seeds of the two directions differ by this, so their decisions are independent.
const TX_STREAM: u64 = 0x7478_5f66_6175_6c74;

/// What the fault link did, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Frames from the wrapped link to the stack.
    pub rx: FaultCounters,
    /// Frames from the stack to the wrapped link.
    pub tx: FaultCounters,
}

/// A link that applies the faults of a [`FaultConfig`] to the frames of the link it wraps.
pub struct FaultLink<L: Link> {
    inner: L,
    config: FaultConfig,
    rx: Line,
    tx: Line,
    /// The latest `Instant` smoltcp passed; `flush` has none of its own.
    now: Instant,
}

impl<L: Link> FaultLink<L> {
    /// Wraps `inner` with the faults of `config`.
    ///
    /// # Errors
    /// A setting out of range (see [`FaultConfig::validate`]).
    pub fn new(inner: L, config: FaultConfig) -> Result<FaultLink<L>, FaultConfigError> {
        config.validate()?;
        let cap = inner.capabilities().max_transmission_unit;
        Ok(FaultLink {
            rx: Line::new(config.rx, config.seed, cap),
            tx: Line::new(config.tx, config.seed ^ TX_STREAM, cap),
            inner,
            config,
            now: Instant::ZERO,
        })
    }

    /// The faults applied.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// What was done to the frames so far.
    pub fn fault_stats(&self) -> FaultStats {
        FaultStats {
            rx: self.rx.counters,
            tx: self.tx.counters,
        }
    }

    /// Frames held now (delayed, held back or waiting for the rate), `(rx, tx)`.
    pub fn held(&self) -> (usize, usize) {
        (self.rx.held(), self.tx.held())
    }

    /// When the earliest held frame is due; `None` when none is held. A test on virtual
    /// time advances to it (a shard in real time busy-polls instead).
    pub fn next_release(&self) -> Option<Instant> {
        match (self.rx.next_release(), self.tx.next_release()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The wrapped link.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably (frames moved through it directly skip the faults).
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Hands the sent frames whose time has come to the wrapped link, in order, until it
    /// has no room.
    fn release_tx(&mut self) {
        let now = self.now;
        while let Some(frame) = self.tx.pop_due(now) {
            match self.inner.transmit(now) {
                Some(tok) => {
                    phy::TxToken::consume(tok, frame.len(), |buf| {
                        let n = buf.len().min(frame.len());
                        buf[..n].copy_from_slice(&frame[..n]);
                    });
                    self.tx.recycle(frame);
                }
                None => {
                    self.tx.unpop(frame, now);
                    break;
                }
            }
        }
    }

    /// Takes frames from the wrapped link into the receive queue until one is due or the
    /// wrapped link has none left.
    fn fill_rx(&mut self, now: Instant) {
        while self.rx.next_release().is_none_or(|t| t > now) {
            let Some((tok, _)) = self.inner.receive(now) else {
                return;
            };
            let mut buf = self.rx.take_buf();
            phy::RxToken::consume(tok, |frame| buf.extend_from_slice(frame));
            self.rx.admit(buf, now);
        }
    }
}

impl<L: Link> fmt::Debug for FaultLink<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultLink")
            .field("inner", &self.inner.describe())
            .field("config", &self.config)
            .field("stats", &self.fault_stats())
            .field("held", &self.held())
            .finish()
    }
}

impl<L: Link> Drop for FaultLink<L> {
    /// Logs one line of what was done, so a demonstration's log says what it suffered.
    fn drop(&mut self) {
        if self.rx.is_active() || self.tx.is_active() {
            let s = self.fault_stats();
            log::info!(
                "fault link on {}: rx {}; tx {}",
                self.inner.describe(),
                summary(&s.rx),
                summary(&s.tx)
            );
        }
    }
}

fn summary(c: &FaultCounters) -> String {
    format!(
        "{} frames, {} passed, {} lost, {} burst-lost, {} overflowed, {} duplicated, \
         {} corrupted, {} reordered, {} delayed, {} shaped",
        c.frames,
        c.passed,
        c.lost,
        c.burst_lost,
        c.overflow,
        c.duplicated,
        c.corrupted,
        c.reordered,
        c.delayed,
        c.shaped
    )
}

impl<L: Link> phy::Device for FaultLink<L> {
    type RxToken<'a>
        = FaultRxToken<'a, L::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = FaultTxToken<'a, L::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.advance(timestamp);
        self.release_tx();
        if !self.rx.is_active() && self.rx.is_empty() {
            let tx_pass = !self.tx.is_active() && self.tx.is_empty();
            let (rx, tx) = self.inner.receive(timestamp)?;
            self.rx.counters.frames += 1;
            self.rx.counters.passed += 1;
            let tx = if tx_pass {
                TxKind::Pass(tx, &mut self.tx.counters)
            } else {
                TxKind::Faulty(&mut self.tx, timestamp)
            };
            return Some((FaultRxToken(RxKind::Pass(rx)), FaultTxToken(tx)));
        }
        self.fill_rx(timestamp);
        let frame = self.rx.pop_due(timestamp)?;
        // The reply slot goes through the transmit line even when that has no faults: the
        // wrapped link's own slot would be asked for (and counted as missing when its ring
        // is full) for every frame, though smoltcp seldom replies through it.
        Some((
            FaultRxToken(RxKind::Held(HeldFrame {
                frame,
                line: &mut self.rx,
            })),
            FaultTxToken(TxKind::Faulty(&mut self.tx, timestamp)),
        ))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.advance(timestamp);
        self.release_tx();
        if !self.tx.is_active() && self.tx.is_empty() {
            let tok = self.inner.transmit(timestamp)?;
            return Some(FaultTxToken(TxKind::Pass(tok, &mut self.tx.counters)));
        }
        if self.tx.is_full() {
            return None;
        }
        Some(FaultTxToken(TxKind::Faulty(&mut self.tx, timestamp)))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

impl<L: Link> Link for FaultLink<L> {
    fn describe(&self) -> String {
        format!(
            "{} +fault(seed {})",
            self.inner.describe(),
            self.config.seed
        )
    }

    /// Hands released sent frames to the wrapped link, then flushes it.
    fn flush(&mut self) -> std::io::Result<()> {
        self.release_tx();
        self.inner.flush()
    }

    fn wait_fd(&self) -> Option<RawFd> {
        self.inner.wait_fd()
    }

    /// `false` while any frame is held: its release time needs a poll that no fd announces.
    fn prepare_wait(&mut self) -> bool {
        if !self.rx.is_empty() || !self.tx.is_empty() {
            return false;
        }
        self.inner.prepare_wait()
    }

    /// The wrapped link's counters: what crossed the real link (see
    /// [`FaultLink::fault_stats`] for what the faults did).
    fn stats(&self) -> LinkStats {
        self.inner.stats()
    }
}

enum RxKind<'a, T> {
    /// The wrapped link's own token (no receive faults).
    Pass(T),
    /// A frame the faults released.
    Held(HeldFrame<'a>),
}

/// A released frame lent to smoltcp; its buffer returns to the pool when it goes.
struct HeldFrame<'a> {
    frame: Vec<u8>,
    line: &'a mut Line,
}

impl Drop for HeldFrame<'_> {
    fn drop(&mut self) {
        self.line.recycle(std::mem::take(&mut self.frame));
    }
}

/// A received frame: the wrapped link's own, or one the faults released.
pub struct FaultRxToken<'a, T>(RxKind<'a, T>);

impl<T: phy::RxToken> phy::RxToken for FaultRxToken<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        match self.0 {
            RxKind::Pass(tok) => tok.consume(f),
            RxKind::Held(held) => f(&held.frame),
        }
    }

    fn meta(&self) -> PacketMeta {
        match &self.0 {
            RxKind::Pass(tok) => tok.meta(),
            RxKind::Held(_) => PacketMeta::default(),
        }
    }
}

impl<T> fmt::Debug for FaultRxToken<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            RxKind::Pass(_) => f.write_str("FaultRxToken(pass)"),
            RxKind::Held(h) => write!(f, "FaultRxToken(held, {} bytes)", h.frame.len()),
        }
    }
}

enum TxKind<'a, T> {
    /// The wrapped link's own token (no transmit faults); counts the frame when used.
    Pass(T, &'a mut FaultCounters),
    /// The frame is built in a pooled buffer, then judged and queued at this instant.
    Faulty(&'a mut Line, Instant),
}

/// The right to send one frame: straight into the wrapped link, or into the faults.
pub struct FaultTxToken<'a, T>(TxKind<'a, T>);

impl<T: phy::TxToken> phy::TxToken for FaultTxToken<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        match self.0 {
            TxKind::Pass(tok, counters) => {
                counters.frames += 1;
                counters.passed += 1;
                tok.consume(len, f)
            }
            TxKind::Faulty(line, at) => {
                let mut buf = line.take_buf();
                buf.resize(len, 0);
                let r = f(&mut buf);
                line.admit(buf, at);
                r
            }
        }
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        if let TxKind::Pass(tok, _) = &mut self.0 {
            tok.set_meta(meta);
        }
    }
}

impl<T> fmt::Debug for FaultTxToken<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            TxKind::Pass(..) => f.write_str("FaultTxToken(pass)"),
            TxKind::Faulty(_, at) => write!(f, "FaultTxToken(faulty, at {at})"),
        }
    }
}
