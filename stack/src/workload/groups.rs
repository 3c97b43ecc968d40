//! Performance groups: at each interval end the group whose tasks showed the lowest
//! velocity of work (and were delayed at all) is dispatched first among the groups, so one
//! group cannot monopolise a shard. Pure functions, tested on their own.

use super::board::velocity;
use super::rules::{Policy, HOUSEKEEPING_HIGH};

/// One group's samples in an interval: (using, delayed).
pub type Samples = (u64, u64);

/// The group to dispatch first: the lowest velocity among groups that were delayed in the
/// interval (ties: the first). `None` when fewer than two groups have tasks or none was
/// delayed.
pub fn slowest(groups: &[Samples]) -> Option<usize> {
    if groups.iter().filter(|(u, d)| u + d > 0).count() < 2 {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    for (i, &(u, d)) in groups.iter().enumerate() {
        if d == 0 {
            continue;
        }
        let v = velocity(u, d).unwrap_or(100.0);
        if best.is_none_or(|(_, b)| v < b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// The priority a task of the first-dispatched group is dispatched at: a managed priority
/// lifted by the width of the managed range (above every other managed task, keeping the
/// group's own order), never into housekeeping; others stay as they are.
pub fn lifted(policy: &Policy, priority: u8) -> u8 {
    if !policy.enabled || !policy.manages(priority) {
        return priority;
    }
    let width = u16::from(policy.prtymax - policy.prtymin) + 1;
    (u16::from(priority) + width).min(u16::from(HOUSEKEEPING_HIGH) - 1) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_delayed_group_goes_first() {
        assert_eq!(slowest(&[(10, 0), (5, 5), (1, 3)]), Some(2));
        assert_eq!(slowest(&[(10, 0), (8, 0)]), None, "nobody was delayed");
        assert_eq!(slowest(&[(1, 9)]), None, "one group alone");
        assert_eq!(slowest(&[(0, 0), (1, 9)]), None, "one group with tasks");
        assert_eq!(slowest(&[(1, 1), (2, 2)]), Some(0), "ties: the first");
    }

    #[test]
    fn a_lift_moves_managed_priorities_above_the_range() {
        let p = Policy::default();
        assert_eq!(lifted(&p, 50), 151);
        assert_eq!(lifted(&p, 150), 251);
        assert_eq!(lifted(&p, 20), 20, "unmanaged stays");
        assert_eq!(lifted(&p, 200), 200, "unmanaged stays");
        let wide = Policy {
            prtymin: 1,
            prtymax: 254,
            ..Policy::default()
        };
        assert_eq!(lifted(&wide, 100), 254, "never housekeeping");
        let off = Policy {
            enabled: false,
            ..Policy::default()
        };
        assert_eq!(lifted(&off, 100), 100);
    }
}
