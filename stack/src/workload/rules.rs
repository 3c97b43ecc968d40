//! The workload manager's rules, with no clock and no executor in them: the executor counts
//! what each task does ([`TaskLoad`]), samples who was delayed, and at the end of each
//! interval asks [`Policy::end_interval`] what becomes of every task's priority.
//!
//! A **work unit** is one poll of a task that was woken (one step of progress: a request
//! handled, a read or write), plus one per KiB its sockets moved in that poll beyond the
//! first ([`crate::executor::work_units`]). Counting bytes as well as polls is what tells a
//! bulk transfer (a few polls a round, each moving tens of KiB) from a busy short
//! transaction (a poll per request, a KiB or so each): counted by polls alone they look
//! alike.
//!
//! The rules, per interval, for a task whose priority lies in `prtymin..=prtymax`:
//! - more than `cicsint` work units: one step down (not below `prtymin`);
//! - otherwise, ready but passed over for higher-priority work: one step up (not above
//!   `prtymax`);
//! - more than `runaway × cicsint` work units (any task but housekeeping): a runaway, and the
//!   configured action (log it, demote it to `prtymin`, or abort its connection).
//!
//! Priorities outside the range stay where the configuration put them; 0 and 255 belong to
//! the shard's housekeeping.

use std::time::Duration;

/// The lowest priority, kept for housekeeping.
pub const HOUSEKEEPING_LOW: u8 = 0;
/// The highest priority, kept for housekeeping.
pub const HOUSEKEEPING_HIGH: u8 = 255;

/// What is done with a runaway task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunawayAction {
    /// Logged and counted; nothing else.
    Log,
    /// Put at `prtymin` (and logged).
    Demote,
    /// Its connection is reset (and logged).
    Abort,
}

/// The manager's thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Off: priorities stay as configured, only statistics are kept.
    pub enabled: bool,
    /// Work units a task may use in one interval before it drops a step.
    pub cicsint: u64,
    /// The lowest priority the manager moves a task to.
    pub prtymin: u8,
    /// The highest priority the manager moves a task to.
    pub prtymax: u8,
    /// A task using more than `runaway × cicsint` units in one interval is a runaway.
    pub runaway: u64,
    /// What happens to a runaway.
    pub action: RunawayAction,
    /// Tasks that used at most this many work units in all are left out of the
    /// termination statistics (0: none is).
    pub trivial: u64,
    /// How often the rules run.
    pub interval: Duration,
    /// How far one demotion or promotion moves a priority.
    pub step: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            cicsint: 100,
            prtymin: 50,
            prtymax: 150,
            runaway: 100,
            action: RunawayAction::Log,
            trivial: 0,
            interval: Duration::from_millis(100),
            step: 1,
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            RunawayAction::Log => "log",
            RunawayAction::Demote => "demote",
            RunawayAction::Abort => "abort",
        };
        write!(
            f,
            "enabled={} cicsint={} prtymin={} prtymax={} runaway={} runaway_action={action} \
             trivial={} interval_ms={} step={}",
            self.enabled,
            self.cicsint,
            self.prtymin,
            self.prtymax,
            self.runaway,
            self.trivial,
            self.interval.as_millis(),
            self.step
        )
    }
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The range is empty or touches the housekeeping priorities.
    #[error("prtymin ({0}) and prtymax ({1}) must satisfy 1 <= prtymin <= prtymax <= 254")]
    Range(u8, u8),
    /// A threshold of zero.
    #[error("cicsint, runaway and step must be at least 1")]
    Zero,
    /// An interval too short to mean anything, or too long to react.
    #[error("the interval must be between 1 ms and 60 s")]
    Interval,
}

impl Policy {
    /// Checks the thresholds.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.prtymin == HOUSEKEEPING_LOW
            || self.prtymax == HOUSEKEEPING_HIGH
            || self.prtymin > self.prtymax
        {
            return Err(PolicyError::Range(self.prtymin, self.prtymax));
        }
        if self.cicsint == 0 || self.runaway == 0 || self.step == 0 {
            return Err(PolicyError::Zero);
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(60)).contains(&self.interval) {
            return Err(PolicyError::Interval);
        }
        Ok(())
    }

    /// This policy with `key` set to `value` (the names of the configuration's
    /// `[workload]` table: `enabled`, `cicsint`, `prtymin`, `prtymax`, `runaway`,
    /// `runaway_action`, `trivial`, `interval_ms`, `step`). The result is not checked as a
    /// whole; see [`Policy::check`].
    pub fn with(&self, key: &str, value: &str) -> Result<Policy, String> {
        fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{key}: {v:?} is not a number in range"))
        }
        let mut p = self.clone();
        match key {
            "enabled" => {
                p.enabled = match value {
                    "true" | "on" | "yes" => true,
                    "false" | "off" | "no" => false,
                    _ => return Err(format!("enabled: {value:?} is not true or false")),
                }
            }
            "cicsint" => p.cicsint = num(key, value)?,
            "prtymin" => p.prtymin = num(key, value)?,
            "prtymax" => p.prtymax = num(key, value)?,
            "runaway" => p.runaway = num(key, value)?,
            "trivial" => p.trivial = num(key, value)?,
            "step" => p.step = num(key, value)?,
            "interval_ms" => p.interval = Duration::from_millis(num(key, value)?),
            "runaway_action" => {
                p.action = match value {
                    "log" => RunawayAction::Log,
                    "demote" => RunawayAction::Demote,
                    "abort" => RunawayAction::Abort,
                    _ => {
                        return Err(format!(
                            "runaway_action: {value:?} is not log, demote or abort"
                        ))
                    }
                }
            }
            _ => {
                let shown: String = key.chars().take(40).collect();
                return Err(format!(
                    "unknown setting {shown:?}; settings: enabled, cicsint, prtymin, prtymax, \
                     runaway, runaway_action, trivial, interval_ms, step"
                ));
            }
        }
        Ok(p)
    }

    /// Whether `priority` is in the managed range.
    pub fn manages(&self, priority: u8) -> bool {
        (self.prtymin..=self.prtymax).contains(&priority)
    }

    /// The end of an interval for one task: applies the rules to its priority, and starts
    /// its next interval.
    pub fn end_interval(&self, t: &mut TaskLoad) -> Verdict {
        let work = std::mem::take(&mut t.interval_work);
        let starved = std::mem::take(&mut t.starved);
        let housekeeping = matches!(t.priority, HOUSEKEEPING_LOW | HOUSEKEEPING_HIGH);
        if !self.enabled || housekeeping {
            return Verdict::Unchanged;
        }
        if work > self.runaway.saturating_mul(self.cicsint) {
            t.runaways += 1;
            if self.action == RunawayAction::Demote && t.priority != self.prtymin {
                let from = t.priority;
                t.priority = self.prtymin;
                t.changes += 1;
                return Verdict::Runaway {
                    action: self.action,
                    moved: Some((from, self.prtymin)),
                };
            }
            let moved = self.demote(t, work);
            return Verdict::Runaway {
                action: self.action,
                moved,
            };
        }
        if let Some(m) = self.demote(t, work) {
            return Verdict::Demoted(m.0, m.1);
        }
        if starved && self.manages(t.priority) && t.priority < self.prtymax {
            let from = t.priority;
            t.priority = from.saturating_add(self.step).min(self.prtymax);
            t.changes += 1;
            return Verdict::Promoted(from, t.priority);
        }
        Verdict::Unchanged
    }

    /// One step down for a managed task over `cicsint`; the move, if any.
    fn demote(&self, t: &mut TaskLoad, work: u64) -> Option<(u8, u8)> {
        if work <= self.cicsint || !self.manages(t.priority) || t.priority == self.prtymin {
            return None;
        }
        let from = t.priority;
        t.priority = from.saturating_sub(self.step).max(self.prtymin);
        t.changes += 1;
        Some((from, t.priority))
    }
}

/// What the end of an interval did to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its priority stays.
    Unchanged,
    /// It used more than `cicsint`: from, to.
    Demoted(u8, u8),
    /// It was passed over: from, to.
    Promoted(u8, u8),
    /// It used more than `runaway × cicsint`: the action to carry out, and the priority
    /// change made (from, to), if any.
    Runaway {
        /// The configured action.
        action: RunawayAction,
        /// The priority change made.
        moved: Option<(u8, u8)>,
    },
}

/// What the manager knows of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLoad {
    /// The priority it runs at now.
    pub priority: u8,
    /// The priority the configuration gave it.
    pub initial: u8,
    /// Work units in the current interval.
    pub interval_work: u64,
    /// Work units in all.
    pub total_work: u64,
    /// It was ready but not run in this interval (higher-priority work used the shard).
    pub starved: bool,
    /// Samples in which it had what it needed (running, or waiting on the network).
    pub using: u64,
    /// Samples in which it was ready but not run.
    pub delayed: u64,
    /// Priority changes the manager made.
    pub changes: u32,
    /// Intervals in which it was a runaway.
    pub runaways: u32,
}

impl TaskLoad {
    /// A task that starts at `priority`.
    pub fn new(priority: u8) -> TaskLoad {
        TaskLoad {
            priority,
            initial: priority,
            interval_work: 0,
            total_work: 0,
            starved: false,
            using: 0,
            delayed: 0,
            changes: 0,
            runaways: 0,
        }
    }

    /// One work unit (one poll that moved at most [`crate::executor::UNIT_BYTES`]).
    pub fn worked(&mut self) {
        self.worked_units(1);
    }

    /// `units` work units (one poll and the bytes it moved).
    pub fn worked_units(&mut self, units: u64) {
        self.interval_work += units;
        self.total_work += units;
    }

    /// One sample of its state: `delayed` when it was ready and not run.
    pub fn sample(&mut self, delayed: bool) {
        if delayed {
            self.delayed += 1;
            self.starved = true;
        } else {
            self.using += 1;
        }
    }

    /// Velocity of work: the share of samples, in percent, in which it had what it needed;
    /// `None` before the first sample.
    pub fn velocity(&self) -> Option<f64> {
        let all = self.using + self.delayed;
        (all > 0).then(|| self.using as f64 * 100.0 / all as f64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn settings_by_name_and_their_errors() {
        let p = Policy::default();
        let q = p
            .with("cicsint", "4000")
            .and_then(|q| q.with("enabled", "off"))
            .and_then(|q| q.with("runaway_action", "abort"))
            .and_then(|q| q.with("interval_ms", "50"))
            .unwrap();
        assert_eq!(q.cicsint, 4000);
        assert!(!q.enabled);
        assert_eq!(q.action, RunawayAction::Abort);
        assert_eq!(q.interval, Duration::from_millis(50));
        assert!(p.with("prtymin", "300").unwrap_err().contains("prtymin"));
        assert!(p.with("cicsint", "-1").is_err());
        assert!(p.with("enabled", "maybe").is_err());
        assert!(p
            .with("speed", "1")
            .unwrap_err()
            .contains("unknown setting"));
        let shown = q.to_string();
        assert!(shown.contains("enabled=false cicsint=4000"), "{shown}");
        assert!(shown.contains("runaway_action=abort"), "{shown}");
    }

    fn heavy(p: &Policy, t: &mut TaskLoad, units: u64) -> Verdict {
        for _ in 0..units {
            t.worked();
        }
        p.end_interval(t)
    }

    #[test]
    fn over_cicsint_drops_a_step_down_to_prtymin() {
        let p = Policy {
            prtymin: 98,
            ..Policy::default()
        };
        let mut t = TaskLoad::new(100);
        assert_eq!(
            heavy(&p, &mut t, 100),
            Verdict::Unchanged,
            "at cicsint: stays"
        );
        assert_eq!(heavy(&p, &mut t, 101), Verdict::Demoted(100, 99));
        assert_eq!(heavy(&p, &mut t, 500), Verdict::Demoted(99, 98));
        assert_eq!(
            heavy(&p, &mut t, 500),
            Verdict::Unchanged,
            "not below prtymin"
        );
        assert_eq!((t.priority, t.changes, t.total_work), (98, 2, 1201));
        assert_eq!(t.interval_work, 0, "each interval starts afresh");
    }

    #[test]
    fn starved_tasks_rise_a_step_up_to_prtymax() {
        let p = Policy {
            prtymax: 101,
            ..Policy::default()
        };
        let mut t = TaskLoad::new(100);
        assert_eq!(p.end_interval(&mut t), Verdict::Unchanged, "not starved");
        t.sample(true);
        assert_eq!(p.end_interval(&mut t), Verdict::Promoted(100, 101));
        t.sample(true);
        assert_eq!(
            p.end_interval(&mut t),
            Verdict::Unchanged,
            "not above prtymax"
        );
        // Heavy and starved at once: the work decides.
        t.sample(true);
        assert_eq!(heavy(&p, &mut t, 150), Verdict::Demoted(101, 100));
        assert_eq!(t.priority, 100);
    }

    #[test]
    fn priorities_outside_the_range_are_left_alone() {
        let p = Policy::default();
        for prio in [1, 49, 151, 254] {
            let mut t = TaskLoad::new(prio);
            assert_eq!(heavy(&p, &mut t, 1000), Verdict::Unchanged, "{prio}");
            t.sample(true);
            assert_eq!(p.end_interval(&mut t), Verdict::Unchanged, "{prio}");
            assert_eq!(t.priority, prio);
        }
        // Housekeeping is never managed, not even as a runaway.
        let mut t = TaskLoad::new(HOUSEKEEPING_HIGH);
        assert_eq!(heavy(&p, &mut t, 1_000_000), Verdict::Unchanged);
        assert_eq!(t.runaways, 0);
    }

    #[test]
    fn runaways_and_their_actions() {
        let p = Policy {
            cicsint: 10,
            runaway: 5,
            ..Policy::default()
        };
        // Log: counted, and the ordinary demotion.
        let mut t = TaskLoad::new(100);
        assert_eq!(
            heavy(&p, &mut t, 50),
            Verdict::Demoted(100, 99),
            "at the limit"
        );
        assert_eq!(
            heavy(&p, &mut t, 51),
            Verdict::Runaway {
                action: RunawayAction::Log,
                moved: Some((99, 98))
            }
        );
        assert_eq!(t.runaways, 1);
        // Demote: straight to prtymin, even from outside the range.
        let d = Policy {
            action: RunawayAction::Demote,
            ..p.clone()
        };
        let mut t = TaskLoad::new(200);
        assert_eq!(
            heavy(&d, &mut t, 51),
            Verdict::Runaway {
                action: RunawayAction::Demote,
                moved: Some((200, 50))
            }
        );
        assert_eq!(t.priority, 50);
        // Abort: the caller resets the connection.
        let a = Policy {
            action: RunawayAction::Abort,
            ..p
        };
        let mut t = TaskLoad::new(10);
        assert_eq!(
            heavy(&a, &mut t, 51),
            Verdict::Runaway {
                action: RunawayAction::Abort,
                moved: None
            }
        );
    }

    #[test]
    fn switched_off_nothing_moves() {
        let p = Policy {
            enabled: false,
            ..Policy::default()
        };
        let mut t = TaskLoad::new(100);
        t.sample(true);
        assert_eq!(heavy(&p, &mut t, 1_000_000), Verdict::Unchanged);
        assert_eq!((t.priority, t.changes, t.runaways), (100, 0, 0));
        assert_eq!(t.total_work, 1_000_000, "statistics are still kept");
    }

    #[test]
    fn velocity_is_the_share_not_delayed() {
        let mut t = TaskLoad::new(100);
        assert_eq!(t.velocity(), None);
        for delayed in [false, false, false, true] {
            t.sample(delayed);
        }
        assert_eq!(t.velocity(), Some(75.0));
    }

    #[test]
    fn bad_policies_are_refused() {
        assert_eq!(Policy::default().check(), Ok(()));
        let bad = |f: fn(&mut Policy)| {
            let mut p = Policy::default();
            f(&mut p);
            p.check()
        };
        assert_eq!(bad(|p| p.prtymin = 0), Err(PolicyError::Range(0, 150)));
        assert_eq!(bad(|p| p.prtymax = 255), Err(PolicyError::Range(50, 255)));
        assert_eq!(
            bad(|p| (p.prtymin, p.prtymax) = (151, 150)),
            Err(PolicyError::Range(151, 150))
        );
        assert_eq!(bad(|p| p.cicsint = 0), Err(PolicyError::Zero));
        assert_eq!(bad(|p| p.runaway = 0), Err(PolicyError::Zero));
        assert_eq!(
            bad(|p| p.interval = Duration::ZERO),
            Err(PolicyError::Interval)
        );
    }
}
