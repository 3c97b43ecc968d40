//! What the fault link does to frames: the settings of each direction, their defaults and
//! their checks. Plain data; the appliance's TOML parsing maps onto it in the binary.

use std::fmt;

use crate::fault::rng::mix;

/// The most frames a direction holds (delayed, held back for reordering, or waiting for
/// the rate) unless [`FaultDirection::queue_limit`] says otherwise; netem's default.
pub const DEFAULT_QUEUE_LIMIT: usize = 1000;

/// The longest a frame held back for reordering waits for a later frame to overtake it,
/// in microseconds; after that it is released anyway (the last frame of a burst).
pub const REORDER_MAX_HOLD_US: i64 = 10_000;

/// Which way a frame travels through the fault link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the wrapped link to the stack.
    Rx,
    /// From the stack to the wrapped link.
    Tx,
}

impl Direction {
    /// `rx` or `tx`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
        }
    }
}

/// Deterministic burst loss: of every `every` frames, the last `length` are dropped in a
/// row. Exact and repeatable, for measuring how the stack recovers from a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstLoss {
    /// The period, in frames (at least 2).
    pub every: u64,
    /// Consecutive frames dropped at the end of each period (1 to `every - 1`).
    pub length: u64,
}

/// The faults applied to the frames of one direction. The default hurts nothing.
///
/// A frame goes through the steps in this order: burst loss, random loss, corruption,
/// duplication (the copy takes the remaining steps too), the rate limit, delay and jitter,
/// reordering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultDirection {
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back until the next frame has passed it (or
    /// [`REORDER_MAX_HOLD_US`] went by). At most one frame is held back at a time.
    pub reorder: f64,
    /// Probability that one byte after the Ethernet header is flipped (frames of 14 bytes
    /// or less are left alone), so the damage reaches the IP and TCP/UDP checksums.
    pub corrupt: f64,
    /// Fixed delay of every frame, milliseconds.
    pub delay_ms: f64,
    /// Each frame's delay varies uniformly by up to this much either way, milliseconds
    /// (never below zero). Jitter reorders frames, as on a real path.
    pub jitter_ms: f64,
    /// A shaper: frames leave no faster than this many megabits per second, queuing behind
    /// each other (a bottleneck link, not a policer); `None`: no limit.
    pub rate_mbit: Option<f64>,
    /// Deterministic burst loss; `None`: none.
    pub burst_loss: Option<BurstLoss>,
    /// The most frames held at once; a received frame arriving at a full queue is dropped
    /// (counted as overflow), a full transmit queue refuses `transmit` (the stack retries).
    pub queue_limit: usize,
}

impl Default for FaultDirection {
    fn default() -> FaultDirection {
        FaultDirection {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay_ms: 0.0,
            jitter_ms: 0.0,
            rate_mbit: None,
            burst_loss: None,
            queue_limit: DEFAULT_QUEUE_LIMIT,
        }
    }
}

impl FaultDirection {
    /// Whether any fault is set; a direction without one passes frames straight through.
    pub fn is_active(&self) -> bool {
        self.loss > 0.0
            || self.duplicate > 0.0
            || self.reorder > 0.0
            || self.corrupt > 0.0
            || self.delay_ms > 0.0
            || self.jitter_ms > 0.0
            || self.rate_mbit.is_some()
            || self.burst_loss.is_some()
    }

    /// Checks every value's range.
    ///
    /// # Errors
    /// The first value out of range, naming `dir` and the field.
    pub fn validate(&self, dir: Direction) -> Result<(), FaultConfigError> {
        let bad = |field: &'static str, reason: &'static str, value: String| {
            Err(FaultConfigError {
                direction: dir,
                field,
                value,
                reason,
            })
        };
        for (field, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, "is not a probability (0 to 1)", p.to_string());
            }
        }
        for (field, ms) in [("delay_ms", self.delay_ms), ("jitter_ms", self.jitter_ms)] {
            if !(0.0..=60_000.0).contains(&ms) {
                return bad(field, "must be between 0 and 60000 ms", ms.to_string());
            }
        }
        if let Some(r) = self.rate_mbit {
            if !(0.001..=1_000_000.0).contains(&r) {
                return bad(
                    "rate_mbit",
                    "must be between 0.001 and 1000000 Mbit/s",
                    r.to_string(),
                );
            }
        }
        if let Some(b) = self.burst_loss {
            if b.every < 2 || b.length == 0 || b.length >= b.every {
                return bad(
                    "burst_loss",
                    "needs every >= 2 and 1 <= length < every",
                    format!("every {} length {}", b.every, b.length),
                );
            }
        }
        if !(1..=1_000_000).contains(&self.queue_limit) {
            return bad(
                "queue_limit",
                "must be between 1 and 1000000 frames",
                self.queue_limit.to_string(),
            );
        }
        Ok(())
    }
}

/// The whole fault link: a seed and the faults of each direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Seeds the decisions; the same seed and frame sequence give the same faults.
    pub seed: u64,
    /// Frames the wrapped link received, on their way to the stack.
    pub rx: FaultDirection,
    /// Frames the stack sends, on their way to the wrapped link.
    pub tx: FaultDirection,
}

impl Default for FaultConfig {
    fn default() -> FaultConfig {
        FaultConfig {
            seed: 1,
            rx: FaultDirection::default(),
            tx: FaultDirection::default(),
        }
    }
}

impl FaultConfig {
    /// The same faults both ways.
    pub fn both(seed: u64, faults: FaultDirection) -> FaultConfig {
        FaultConfig {
            seed,
            rx: faults,
            tx: faults,
        }
    }

    /// Checks both directions.
    ///
    /// # Errors
    /// The first value out of range.
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        self.rx.validate(Direction::Rx)?;
        self.tx.validate(Direction::Tx)
    }

    /// This configuration for shard `index`: shard 0 keeps the seed, the others get one
    /// derived from it, so shards do not drop their frames in lockstep.
    pub fn for_shard(&self, index: u32) -> FaultConfig {
        let mut c = *self;
        if index > 0 {
            c.seed = mix(self.seed ^ mix(u64::from(index)));
        }
        c
    }
}

impl fmt::Display for FaultConfig {
    /// One line naming the faults that are on, e.g. `seed 7, rx/tx loss 0.02`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {}", self.seed)?;
        if self.rx == self.tx {
            return write_direction(f, "rx/tx", &self.rx);
        }
        write_direction(f, "rx", &self.rx)?;
        write_direction(f, "tx", &self.tx)
    }
}

fn write_direction(f: &mut fmt::Formatter<'_>, name: &str, d: &FaultDirection) -> fmt::Result {
    if !d.is_active() {
        return write!(f, ", {name} untouched");
    }
    write!(f, ", {name}")?;
    for (field, v) in [
        ("loss", d.loss),
        ("duplicate", d.duplicate),
        ("reorder", d.reorder),
        ("corrupt", d.corrupt),
        ("delay_ms", d.delay_ms),
        ("jitter_ms", d.jitter_ms),
    ] {
        if v > 0.0 {
            write!(f, " {field} {v}")?;
        }
    }
    if let Some(r) = d.rate_mbit {
        write!(f, " rate_mbit {r}")?;
    }
    if let Some(b) = d.burst_loss {
        write!(f, " burst_loss {}/{}", b.length, b.every)?;
    }
    Ok(())
}

/// A fault setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault.{}.{field} = {value} {reason}", direction.name())]
pub struct FaultConfigError {
    /// The direction whose setting is wrong.
    pub direction: Direction,
    /// The setting's name, as in the configuration file (`loss`, `delay_ms`, ...).
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What the value must be.
    pub reason: &'static str,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_is_inactive_and_valid() {
        let c = FaultConfig::default();
        assert!(!c.rx.is_active() && !c.tx.is_active());
        c.validate().unwrap();
        assert_eq!(c.to_string(), "seed 1, rx/tx untouched");
    }

    #[test]
    fn out_of_range_values_are_refused_by_name() {
        let mut c = FaultConfig::default();
        c.tx.loss = 1.5;
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "fault.tx.loss = 1.5 is not a probability (0 to 1)"
        );
        let mut c = FaultConfig::default();
        c.rx.delay_ms = -1.0;
        assert_eq!(c.validate().unwrap_err().field, "delay_ms");
        c.rx.delay_ms = f64::NAN;
        assert_eq!(c.validate().unwrap_err().field, "delay_ms");
        let mut c = FaultConfig::default();
        c.rx.burst_loss = Some(BurstLoss {
            every: 10,
            length: 10,
        });
        assert_eq!(c.validate().unwrap_err().field, "burst_loss");
        let mut c = FaultConfig::default();
        c.rx.rate_mbit = Some(0.0);
        assert_eq!(c.validate().unwrap_err().field, "rate_mbit");
        c.rx.rate_mbit = Some(10.0);
        c.rx.queue_limit = 0;
        assert_eq!(c.validate().unwrap_err().field, "queue_limit");
    }

    #[test]
    fn shards_get_distinct_seeds_and_shard_zero_keeps_it() {
        let c = FaultConfig {
            seed: 7,
            ..FaultConfig::default()
        };
        assert_eq!(c.for_shard(0).seed, 7);
        let s1 = c.for_shard(1).seed;
        let s2 = c.for_shard(2).seed;
        assert!(s1 != 7 && s2 != 7 && s1 != s2);
        assert_eq!(c.for_shard(1).seed, s1);
    }

    #[test]
    fn display_names_the_faults_that_are_on() {
        let mut c = FaultConfig::both(
            7,
            FaultDirection {
                loss: 0.02,
                ..FaultDirection::default()
            },
        );
        assert_eq!(c.to_string(), "seed 7, rx/tx loss 0.02");
        c.tx.delay_ms = 20.0;
        c.tx.rate_mbit = Some(100.0);
        assert_eq!(
            c.to_string(),
            "seed 7, rx loss 0.02, tx loss 0.02 delay_ms 20 rate_mbit 100"
        );
    }
}
