//! Termination statistics: what the tasks that ended did, for the report the manager
//! prints at shutdown and on demand (tasks, work units, velocity, priority changes,
//! runaways). Work units are kept in power-of-two buckets, so a percentile is the upper
//! end of its bucket (within a factor of two).

use std::fmt;

use super::rules::{Policy, TaskLoad};

/// Statistics of ended tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Tasks that ended.
    pub tasks: u64,
    /// Of them, trivial ones (left out of the figures below).
    pub trivial: u64,
    buckets: [u64; 65],
    work: u64,
    velocity_sum: f64,
    velocity_n: u64,
    /// Priority changes the manager made.
    pub changes: u64,
    /// Runaway intervals.
    pub runaways: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            tasks: 0,
            trivial: 0,
            buckets: [0; 65],
            work: 0,
            velocity_sum: 0.0,
            velocity_n: 0,
            changes: 0,
            runaways: 0,
        }
    }
}

impl Summary {
    /// Adds a task that ended.
    pub fn record(&mut self, policy: &Policy, t: &TaskLoad) {
        self.tasks += 1;
        self.changes += u64::from(t.changes);
        self.runaways += u64::from(t.runaways);
        if t.total_work <= policy.trivial {
            self.trivial += 1;
            return;
        }
        self.buckets[64 - t.total_work.leading_zeros() as usize] += 1;
        self.work += t.total_work;
        if let Some(v) = t.velocity() {
            self.velocity_sum += v;
            self.velocity_n += 1;
        }
    }

    /// Non-trivial tasks.
    pub fn counted(&self) -> u64 {
        self.tasks - self.trivial
    }

    /// Average work units of a non-trivial task.
    pub fn average_work(&self) -> Option<f64> {
        let n = self.counted();
        (n > 0).then(|| self.work as f64 / n as f64)
    }

    /// The work units `q` (0..=1) of the non-trivial tasks used at most (upper end of a
    /// power-of-two bucket).
    pub fn work_percentile(&self, q: f64) -> Option<u64> {
        let n = self.counted();
        if n == 0 {
            return None;
        }
        let want = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(if i == 0 { 0 } else { (1u64 << (i - 1)) * 2 - 1 });
            }
        }
        None
    }

    /// Average velocity of work of the non-trivial tasks, percent.
    pub fn average_velocity(&self) -> Option<f64> {
        (self.velocity_n > 0).then(|| self.velocity_sum / self.velocity_n as f64)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        let pct = |q| {
            self.work_percentile(q)
                .map_or_else(|| "-".into(), |v| v.to_string())
        };
        write!(
            f,
            "tasks {} ({} trivial); work units avg {} p50 <={} p90 <={} p99 <={}; velocity {}%; \
             priority changes {}; runaways {}",
            self.tasks,
            self.trivial,
            opt(self.average_work()),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            opt(self.average_velocity()),
            self.changes,
            self.runaways
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn task(work: u64, delayed: u64, changes: u32) -> TaskLoad {
        let mut t = TaskLoad::new(100);
        for _ in 0..work {
            t.worked();
        }
        for i in 0..4 {
            t.sample(i < delayed);
        }
        t.changes = changes;
        t
    }

    #[test]
    fn trivial_tasks_are_counted_apart() {
        let p = Policy {
            trivial: 2,
            ..Policy::default()
        };
        let mut s = Summary::default();
        for t in [task(1, 4, 0), task(2, 4, 0), task(10, 0, 1), task(30, 2, 3)] {
            s.record(&p, &t);
        }
        assert_eq!((s.tasks, s.trivial, s.counted()), (4, 2, 2));
        assert_eq!(s.average_work(), Some(20.0));
        assert_eq!(
            s.average_velocity(),
            Some(75.0),
            "100% and 50%; trivial ones left out"
        );
        assert_eq!(s.changes, 4, "changes count for every task");
        let text = s.to_string();
        assert!(
            text.starts_with("tasks 4 (2 trivial); work units avg 20.0"),
            "{text}"
        );
    }

    #[test]
    fn percentiles_are_bucket_bounds() {
        let p = Policy::default();
        let mut s = Summary::default();
        assert_eq!(s.work_percentile(0.5), None);
        for w in 1..=100u64 {
            s.record(&p, &task(w, 0, 0));
        }
        // 50 tasks used at most 50 units: the bucket 32..=63.
        assert_eq!(s.work_percentile(0.5), Some(63));
        assert_eq!(s.work_percentile(0.99), Some(127));
        assert_eq!(s.work_percentile(0.0), Some(1));
        assert!(s.work_percentile(1.0).unwrap() >= 100);
    }
}
