//! The deferred ingress lane: when the workload manager has ranked connections apart,
//! frames of connections ranked below the shard's most important active work are copied
//! out of the link's receive ring into this queue, so the ring drains at once and frames
//! of higher-ranked connections behind them are handled this round instead of after every
//! bulk frame that arrived first (in the style of a NIC's multi-priority receive queues).
//! The lane is fed back a bounded number of frames every round, oldest first, and a
//! connection with frames in the lane queues every later frame behind them: no flow's
//! frames are ever reordered.

use std::collections::VecDeque;

/// Frames the lane holds at most; with a full lane the shard stops taking frames from the
/// ring (the ring holds the rest, as it would with no lane).
pub(crate) const LANE_FRAMES: usize = 4096;

/// Spare buffers kept for reuse.
const SPARE: usize = 256;

/// The queue of deferred frames.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    frames: VecDeque<(Vec<u8>, Option<u32>)>,
    spare: Vec<Vec<u8>>,
    /// Frames deferred in all (for the shard's statistics); the position of the last one.
    pub(crate) deferred: u64,
    /// Frames handed back in all: a flow whose last deferred frame is at a position above
    /// this still has frames waiting.
    pub(crate) done: u64,
}

impl Lane {
    /// Whether no frame waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether no more frames fit.
    pub(crate) fn is_full(&self) -> bool {
        self.frames.len() >= LANE_FRAMES
    }

    /// Copies `frame` to the back of the lane, with the socket set of its connection if it
    /// has one; its position, or `None` when the lane is full.
    pub(crate) fn push(&mut self, frame: &[u8], set: Option<u32>) -> Option<u64> {
        if self.is_full() {
            return None;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.frames.push_back((buf, set));
        self.deferred += 1;
        Some(self.deferred)
    }

    /// Whether a flow whose last deferred frame is at `last` still has frames waiting.
    pub(crate) fn holds(&self, last: u64) -> bool {
        last > self.done
    }

    /// The oldest frame (counted as handed back).
    pub(crate) fn pop(&mut self) -> Option<(Vec<u8>, Option<u32>)> {
        let f = self.frames.pop_front()?;
        self.done += 1;
        Some(f)
    }

    /// Puts a frame back at the front (it could not be handled this round).
    pub(crate) fn unpop(&mut self, frame: Vec<u8>, set: Option<u32>) {
        self.done -= 1;
        self.frames.push_front((frame, set));
    }

    /// Gives a handled frame's buffer back for reuse.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE {
            self.spare.push(buf);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_bounded_and_buffers_reused() {
        let mut lane = Lane::default();
        for i in 0..LANE_FRAMES {
            assert_eq!(
                lane.push(&[i as u8; 60], Some(i as u32)),
                Some(i as u64 + 1)
            );
        }
        assert!(lane.is_full());
        assert_eq!(lane.push(&[0; 60], None), None, "a full lane refuses");
        assert!(lane.holds(1) && lane.holds(LANE_FRAMES as u64));
        let (f, set) = lane.pop().unwrap();
        assert_eq!((f[0], set), (0, Some(0)));
        assert!(!lane.holds(1), "the first frame is handed back");
        lane.unpop(f, set);
        assert!(lane.holds(1), "put back: waiting again");
        let (f, _) = lane.pop().unwrap();
        assert_eq!(f[0], 0, "put back at the front");
        lane.recycle(f);
        assert_eq!(lane.push(&[7; 10], None), Some(LANE_FRAMES as u64 + 1));
        let mut last = None;
        while let Some((f, _)) = lane.pop() {
            last = Some(f);
        }
        assert_eq!(
            last.unwrap(),
            vec![7; 10],
            "a reused buffer holds only the new frame"
        );
        assert!(!lane.holds(LANE_FRAMES as u64 + 1));
        assert!(lane.is_empty());
    }
}
