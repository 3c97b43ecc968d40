//! Where the shards' workload managers and the appliance's control thread meet: the policy
//! in force (changed at run time, picked up by every shard at its next interval end with
//! one atomic load) and, per shard, the report its manager publishes at each interval end
//! (velocity per service and per performance group, the busiest tasks, the termination
//! statistics). A shard's slot is written only by that shard, once an interval; nothing
//! here is touched on a frame's or a task's path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::rules::{Policy, PolicyError};
use super::summary::Summary;

/// The shared policy and the shards' reports.
#[derive(Debug)]
pub struct Board {
    generation: AtomicU64,
    policy: Mutex<Policy>,
    shards: Mutex<Vec<Arc<Mutex<ShardLoad>>>>,
}

impl Board {
    /// A board whose policy starts as `policy` (already checked by the configuration).
    pub fn new(policy: Policy) -> Arc<Board> {
        Arc::new(Board {
            generation: AtomicU64::new(0),
            policy: Mutex::new(policy),
            shards: Mutex::new(Vec::new()),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Replaces the policy; every shard takes it at its next interval end. A policy that
    /// fails [`Policy::check`] is refused and nothing changes.
    pub fn set_policy(&self, policy: Policy) -> Result<(), PolicyError> {
        policy.check()?;
        if let Ok(mut g) = self.policy.lock() {
            *g = policy;
            self.generation.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// The policy, when it changed since generation `seen`; with its generation.
    pub(crate) fn newer(&self, seen: u64) -> Option<(u64, Policy)> {
        let now = self.generation.load(Ordering::Acquire);
        if now == seen {
            return None;
        }
        self.policy.lock().ok().map(|g| (now, g.clone()))
    }

    /// The generation of the policy in force.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A slot for one more shard's reports, in shard start order.
    pub(crate) fn attach(&self) -> Arc<Mutex<ShardLoad>> {
        let slot = Arc::new(Mutex::new(ShardLoad::default()));
        if let Ok(mut g) = self.shards.lock() {
            g.push(slot.clone());
        }
        slot
    }

    /// Every shard's latest report, in shard start order.
    pub fn report(&self) -> Vec<ShardLoad> {
        let slots = self.shards.lock().map(|g| g.clone()).unwrap_or_default();
        slots
            .iter()
            .map(|s| s.lock().map(|g| g.clone()).unwrap_or_default())
            .collect()
    }
}

/// One shard's workload report.
#[derive(Debug, Clone, Default)]
pub struct ShardLoad {
    /// Shard index.
    pub shard: u32,
    /// Per service: its live and ended tasks.
    pub services: Vec<ServiceLoad>,
    /// Per performance group, in the last interval.
    pub groups: Vec<GroupLoad>,
    /// The live tasks that did the most work in the last interval (at most
    /// [`BUSIEST`]), busiest first.
    pub busiest: Vec<TaskView>,
    /// Termination statistics of the tasks that ended.
    pub summary: Summary,
    /// Frames of connections ranked below this priority wait in the deferred ingress lane
    /// (0: none do).
    pub ingress_cut: u8,
    /// Frames that waited in the deferred lane, in all.
    pub frames_deferred: u64,
}

/// How many of the busiest tasks a report lists.
pub const BUSIEST: usize = 16;

/// A service's tasks on one shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceLoad {
    /// The service's name (e.g. `echo tcp/7`, `proxy web`, `ftp`).
    pub name: String,
    /// Its performance group, if any.
    pub group: Option<String>,
    /// Tasks alive now.
    pub live: u64,
    /// Tasks that ended.
    pub ended: u64,
    /// Samples in which its tasks had what they needed (running, or waiting on the
    /// network).
    pub using: u64,
    /// Samples in which its tasks were ready but not run.
    pub delayed: u64,
    /// Work units, in all.
    pub work: u64,
    /// Priority changes the manager made to its tasks.
    pub changes: u64,
    /// Runaway intervals of its tasks.
    pub runaways: u64,
    /// The lowest and highest priority of its live tasks (`None` with none alive).
    pub priorities: Option<(u8, u8)>,
}

impl ServiceLoad {
    /// Velocity of work: the share of samples in which its tasks were not delayed, in
    /// percent (`None` before the first sample).
    pub fn velocity(&self) -> Option<f64> {
        velocity(self.using, self.delayed)
    }

    /// Adds another shard's figures for the same service.
    pub fn add(&mut self, o: &ServiceLoad) {
        self.live += o.live;
        self.ended += o.ended;
        self.using += o.using;
        self.delayed += o.delayed;
        self.work += o.work;
        self.changes += o.changes;
        self.runaways += o.runaways;
        self.priorities = match (self.priorities, o.priorities) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (p, None) | (None, p) => p,
        };
    }
}

/// A performance group in the last interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupLoad {
    /// The group's name.
    pub name: String,
    /// Its live tasks.
    pub live: u64,
    /// Velocity of its tasks in the last interval, percent (`None`: no task sampled).
    pub velocity: Option<f64>,
    /// Whether it is the group dispatched first in this interval.
    pub boosted: bool,
}

/// One live task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskView {
    /// The task's slot on its shard.
    pub task: u32,
    /// Its service's name.
    pub service: String,
    /// The priority it runs at.
    pub priority: u8,
    /// The priority the configuration gave it.
    pub initial: u8,
    /// Work units in the last interval.
    pub work: u64,
    /// Work units in all.
    pub total: u64,
    /// Its velocity of work, percent.
    pub velocity: Option<f64>,
}

/// `using / (using + delayed)` in percent; `None` without samples.
pub fn velocity(using: u64, delayed: u64) -> Option<f64> {
    let all = using + delayed;
    (all > 0).then(|| using as f64 * 100.0 / all as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_change_reaches_a_shard_once_and_a_bad_one_changes_nothing() {
        let board = Board::new(Policy::default());
        let seen = board.generation();
        assert!(board.newer(seen).is_none());
        let p = Policy {
            cicsint: 4000,
            ..Policy::default()
        };
        board.set_policy(p.clone()).unwrap();
        let (g, got) = board.newer(seen).unwrap();
        assert_eq!(got, p);
        assert!(board.newer(g).is_none(), "taken once");
        let bad = Policy {
            prtymin: 200,
            prtymax: 100,
            ..Policy::default()
        };
        assert!(board.set_policy(bad).is_err());
        assert!(
            board.newer(g).is_none(),
            "a refused policy is not published"
        );
        assert_eq!(board.policy(), p);
    }

    #[test]
    fn service_figures_add_up_across_shards() {
        let mut a = ServiceLoad {
            live: 1,
            using: 3,
            delayed: 1,
            priorities: Some((60, 100)),
            ..ServiceLoad::default()
        };
        let b = ServiceLoad {
            live: 2,
            using: 1,
            delayed: 3,
            priorities: Some((50, 90)),
            ..ServiceLoad::default()
        };
        a.add(&b);
        assert_eq!(a.live, 3);
        assert_eq!(a.velocity(), Some(50.0));
        assert_eq!(a.priorities, Some((50, 100)));
        assert_eq!(ServiceLoad::default().velocity(), None);
    }
}
