//! The deferred ingress lane: when the workload manager has ranked connections apart,
//! frames of connections ranked below the shard's most important active work are copied
//! out of the link's receive ring into this queue, so the ring drains at once and frames
//! of higher-ranked connections behind them are handled this round instead of after every
//! bulk frame that arrived first (in the style of a NIC's multi-priority receive queues).
//! The lane is fed back a bounded number of frames every round, oldest first, and a
//! connection with frames in the lane queues every later frame behind them: no flow's
//! frames are ever reordered.

use std::collections::VecDeque;

use crate::flow::FlowKey;

/// Frames the lane holds at most; with a full lane the shard stops taking frames from the
/// ring (the ring holds the rest, as it would with no lane).
pub(crate) const LANE_FRAMES: usize = 4096;

/// Spare buffers kept for reuse.
const SPARE: usize = 256;

/// The queue of deferred frames.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    frames: VecDeque<(Vec<u8>, FlowKey)>,
    spare: Vec<Vec<u8>>,
    /// Frames deferred in all (for the shard's statistics).
    pub(crate) deferred: u64,
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

    /// Copies `frame` of flow `key` to the back of the lane; false when it is full.
    pub(crate) fn push(&mut self, frame: &[u8], key: FlowKey) -> bool {
        if self.is_full() {
            return false;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.frames.push_back((buf, key));
        self.deferred += 1;
        true
    }

    /// The oldest frame.
    pub(crate) fn pop(&mut self) -> Option<(Vec<u8>, FlowKey)> {
        self.frames.pop_front()
    }

    /// Puts a frame back at the front (it could not be handled this round).
    pub(crate) fn unpop(&mut self, frame: Vec<u8>, key: FlowKey) {
        self.frames.push_front((frame, key));
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
    use crate::flow::Proto;
    use smoltcp::wire::IpAddress;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            local: IpAddress::v4(10, 0, 0, 2),
            local_port: 9,
            remote: IpAddress::v4(10, 0, 0, 1),
            remote_port: port,
        }
    }

    #[test]
    fn first_in_first_out_bounded_and_buffers_reused() {
        let mut lane = Lane::default();
        for i in 0..LANE_FRAMES {
            assert!(lane.push(&[i as u8; 60], key(i as u16)));
        }
        assert!(lane.is_full());
        assert!(!lane.push(&[0; 60], key(0)), "a full lane refuses");
        let (f, k) = lane.pop().unwrap();
        assert_eq!((f[0], k.remote_port), (0, 0));
        lane.unpop(f, k);
        let (f, _) = lane.pop().unwrap();
        assert_eq!(f[0], 0, "put back at the front");
        let cap = f.capacity();
        lane.recycle(f);
        assert!(lane.push(&[7; 10], key(1)));
        let mut last = None;
        while let Some((f, _)) = lane.pop() {
            last = Some(f);
        }
        let last = last.unwrap();
        assert_eq!(
            last,
            vec![7; 10],
            "a reused buffer holds only the new frame"
        );
        assert!(last.capacity() >= cap.min(10));
        assert_eq!(lane.deferred, LANE_FRAMES as u64 + 1);
        assert!(lane.is_empty());
    }
}
