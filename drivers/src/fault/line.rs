//! One direction of the fault link: the decisions taken for each frame (drop, corrupt,
//! duplicate, shape, delay, hold back) and the queue of frames waiting for their release
//! time. Time is the `Instant` the caller passes; nothing here reads a clock.
//!
//! Not here: moving frames to or from a link (the link and its tokens do that).

use std::collections::VecDeque;

use smoltcp::time::Instant;

use crate::fault::config::{FaultDirection, REORDER_MAX_HOLD_US};
use crate::fault::rng::Rng;
use crate::ETH_HEADER;

/// What the fault link did to the frames of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames that entered the fault link.
    pub frames: u64,
    /// Frames it handed on (duplicates included).
    pub passed: u64,
    /// Frames dropped by random loss.
    pub lost: u64,
    /// Frames dropped by the burst-loss model.
    pub burst_lost: u64,
    /// Frames delivered twice (counted once per extra copy).
    pub duplicated: u64,
    /// Frames with one byte flipped.
    pub corrupted: u64,
    /// Frames held back and overtaken by a later frame.
    pub reordered: u64,
    /// Frames given a delay above zero (delay and jitter).
    pub delayed: u64,
    /// Frames that waited for the rate limit.
    pub shaped: u64,
    /// Frames dropped because the queue of held frames was full.
    pub overflow: u64,
}

impl FaultCounters {
    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.lost + self.burst_lost + self.overflow
    }
}

/// A frame waiting for its release time.
#[derive(Debug)]
struct Held {
    /// Microseconds of the `Instant` at which it may leave.
    release: i64,
    frame: Vec<u8>,
    /// Held back for reordering: `release` is its own time plus [`REORDER_MAX_HOLD_US`]
    /// until a later frame overtakes it.
    held_back: bool,
}

/// The state of one direction.
#[derive(Debug)]
pub(crate) struct Line {
    cfg: FaultDirection,
    active: bool,
    rng: Rng,
    /// Held frames, ordered by release time; equal times keep their arrival order.
    queue: VecDeque<Held>,
    /// Empty buffers for frames to come, so the data path allocates nothing once warm.
    pool: Vec<Vec<u8>>,
    /// Capacity given to a new buffer (the largest frame of the link).
    frame_cap: usize,
    /// Whether a frame in `queue` is held back, waiting to be overtaken.
    holding: bool,
    /// Frames seen so far, for the burst-loss period.
    index: u64,
    /// When the shaper's link is next free, microseconds (fractional, so that rounding
    /// does not add up over many frames).
    free_at: f64,
    pub(crate) counters: FaultCounters,
}

impl Line {
    pub(crate) fn new(cfg: FaultDirection, seed: u64, frame_cap: usize) -> Line {
        Line {
            cfg,
            active: cfg.is_active(),
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            pool: Vec::new(),
            frame_cap,
            holding: false,
            index: 0,
            free_at: f64::MIN,
            counters: FaultCounters::default(),
        }
    }

    /// Whether this direction has any fault to apply.
    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// Whether no frame is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether another frame would overflow the queue.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.cfg.queue_limit
    }

    /// Frames held now.
    pub(crate) fn held(&self) -> usize {
        self.queue.len()
    }

    /// When the next held frame may leave; `None` when none is held.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        self.queue.front().map(|h| Instant::from_micros(h.release))
    }

    /// An empty buffer for a frame.
    pub(crate) fn take_buf(&mut self) -> Vec<u8> {
        match self.pool.pop() {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(self.frame_cap),
        }
    }

    /// Returns a buffer to the pool (kept only up to the queue limit plus a few).
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() <= self.cfg.queue_limit.saturating_add(8) {
            self.pool.push(buf);
        }
    }

    /// The first held frame whose release time has come, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.queue.front()?.release > now.total_micros() {
            return None;
        }
        let h = self.queue.pop_front()?;
        if h.held_back {
            // Released alone: no later frame came within the hold time.
            self.holding = false;
        }
        self.counters.passed += 1;
        Some(h.frame)
    }

    /// Puts back a frame [`Line::pop_due`] gave that could not be handed on (the wrapped
    /// link had no room); it goes out first next time.
    pub(crate) fn unpop(&mut self, frame: Vec<u8>, now: Instant) {
        self.counters.passed = self.counters.passed.saturating_sub(1);
        self.queue.push_front(Held {
            release: now.total_micros(),
            frame,
            held_back: false,
        });
    }

    /// Takes a frame that arrived at `now` through the faults; it is dropped (its buffer
    /// recycled) or queued, possibly twice, for release.
    pub(crate) fn admit(&mut self, mut frame: Vec<u8>, now: Instant) {
        self.counters.frames += 1;
        let index = self.index;
        self.index += 1;
        if let Some(b) = self.cfg.burst_loss {
            if index % b.every >= b.every - b.length {
                self.counters.burst_lost += 1;
                self.recycle(frame);
                return;
            }
        }
        if self.rng.chance(self.cfg.loss) {
            self.counters.lost += 1;
            self.recycle(frame);
            return;
        }
        if self.rng.chance(self.cfg.corrupt) && frame.len() > ETH_HEADER {
            let at = ETH_HEADER + self.rng.below(frame.len() - ETH_HEADER);
            let flip = 1 + self.rng.below(255) as u8;
            if let Some(b) = frame.get_mut(at) {
                *b ^= flip;
                self.counters.corrupted += 1;
            }
        }
        if self.rng.chance(self.cfg.duplicate) {
            let mut copy = self.take_buf();
            copy.extend_from_slice(&frame);
            self.counters.duplicated += 1;
            self.schedule(frame, now);
            self.schedule(copy, now);
        } else {
            self.schedule(frame, now);
        }
    }

    /// Shapes, delays and maybe holds back one frame, then queues it by release time.
    fn schedule(&mut self, frame: Vec<u8>, now: Instant) {
        if self.is_full() {
            self.counters.overflow += 1;
            self.recycle(frame);
            return;
        }
        let now_us = now.total_micros() as f64;
        let mut depart = now_us;
        if let Some(rate) = self.cfg.rate_mbit {
            depart = depart.max(self.free_at);
            // Bits over megabits per second is microseconds.
            self.free_at = depart + (frame.len() * 8) as f64 / rate;
            if depart > now_us {
                self.counters.shaped += 1;
            }
        }
        let mut delay = self.cfg.delay_ms * 1000.0;
        if self.cfg.jitter_ms > 0.0 {
            delay += (self.rng.unit() * 2.0 - 1.0) * self.cfg.jitter_ms * 1000.0;
        }
        let delay = delay.max(0.0);
        if delay > 0.0 {
            self.counters.delayed += 1;
        }
        let release = (depart + delay).ceil() as i64;
        if self.holding {
            // This frame overtakes the one held back, which leaves right after it.
            self.insert(release, frame, false);
            self.release_held_back(release);
        } else if self.rng.chance(self.cfg.reorder) {
            self.holding = true;
            self.insert(release.saturating_add(REORDER_MAX_HOLD_US), frame, true);
        } else {
            self.insert(release, frame, false);
        }
    }

    /// Moves the held-back frame right behind a frame released at `after`.
    fn release_held_back(&mut self, after: i64) {
        self.holding = false;
        let Some(at) = self.queue.iter().position(|h| h.held_back) else {
            return;
        };
        let Some(mut h) = self.queue.remove(at) else {
            return;
        };
        let own = h.release.saturating_sub(REORDER_MAX_HOLD_US);
        h.release = own.max(after);
        if own <= after {
            self.counters.reordered += 1;
        }
        self.insert(h.release, h.frame, false);
    }

    /// Queues a frame after every frame released no later than it.
    fn insert(&mut self, release: i64, frame: Vec<u8>, held_back: bool) {
        let at = self
            .queue
            .iter()
            .rposition(|h| h.release <= release)
            .map_or(0, |i| i + 1);
        self.queue.insert(
            at,
            Held {
                release,
                frame,
                held_back,
            },
        );
    }
}
