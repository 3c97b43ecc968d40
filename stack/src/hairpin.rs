//! Connections from the stack to its own addresses: a proxy listener in front of a service
//! of the same appliance (implicit TLS on 990 in front of the stack's own FTP on 21).
//!
//! smoltcp sends a frame for one of its own addresses out on the link like any other. Such
//! connections live in their own socket set ([`LOCAL_SET`](crate::sockets::LOCAL_SET)),
//! whose egress goes to this queue instead of the link; the shard feeds the queued frames
//! back into its own ingress, with a transmit token of the queue for any immediate reply
//! (an ARP reply, a reset). Address resolution of the stack's own address runs through the
//! queue too: smoltcp learns its own MAC from its own ARP request (IPv4) or neighbor
//! solicitation (IPv6). Nothing of it reaches the wire.

use std::collections::VecDeque;

use smoltcp::phy::{Device, DeviceCapabilities, RxToken, TxToken};
use smoltcp::time::Instant;

/// Frames held at most; more are dropped (and counted), as a full link ring would.
const MAX_FRAMES: usize = 4096;

/// The queue of frames on their way from the stack back to itself.
#[derive(Debug, Default)]
pub(crate) struct Hairpin {
    frames: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    /// Frames dropped because the queue was full.
    pub(crate) dropped: u64,
    /// Frames that went round.
    pub(crate) frames_looped: u64,
}

impl Hairpin {
    /// Whether frames are waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The next frame to feed to ingress.
    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// Gives a fed frame's buffer back for reuse.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 64 {
            self.spare.push(buf);
        }
    }

    /// A transmit token into the queue.
    pub(crate) fn tx(&mut self) -> HairpinTx<'_> {
        HairpinTx(self)
    }
}

/// Transmit token: the frame is written into a queue buffer.
pub(crate) struct HairpinTx<'a>(&'a mut Hairpin);

impl TxToken for HairpinTx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let q = self.0;
        let mut buf = q.spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(len, 0);
        let r = f(&mut buf);
        if q.frames.len() < MAX_FRAMES {
            q.frames.push_back(buf);
            q.frames_looped += 1;
        } else {
            q.dropped += 1;
        }
        r
    }
}

/// The device the local set's egress is polled with: transmit only.
pub(crate) struct HairpinDev<'a> {
    pub(crate) queue: &'a mut Hairpin,
    pub(crate) caps: DeviceCapabilities,
}

/// Never produced: the hairpin device does not receive (the shard feeds its frames).
pub(crate) enum NoRx {}

impl RxToken for NoRx {
    fn consume<R, F>(self, _f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        match self {}
    }
}

impl Device for HairpinDev<'_> {
    type RxToken<'a>
        = NoRx
    where
        Self: 'a;
    type TxToken<'a>
        = HairpinTx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(NoRx, HairpinTx<'_>)> {
        None
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<HairpinTx<'_>> {
        Some(self.queue.tx())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_round_in_order_and_the_queue_is_bounded() {
        let mut h = Hairpin::default();
        for i in 0..3u8 {
            h.tx().consume(4, |b| b.fill(i));
        }
        assert_eq!(h.pop().unwrap(), vec![0; 4]);
        let b = h.pop().unwrap();
        assert_eq!(b, vec![1; 4]);
        h.recycle(b);
        h.tx().consume(2, |b| b.fill(9));
        assert_eq!(h.pop().unwrap(), vec![2; 4]);
        assert_eq!(h.pop().unwrap(), vec![9; 2]);
        assert!(h.is_empty());
        for _ in 0..MAX_FRAMES + 5 {
            h.tx().consume(1, |_| ());
        }
        assert_eq!(h.dropped, 5);
    }
}
