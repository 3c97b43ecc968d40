//! The shard's sockets, split into buckets so that the cost of a frame does not grow with
//! the number of connections. smoltcp scans a whole `SocketSet` for every segment and for
//! every egress poll; here set 0 holds UDP and ICMP sockets, set [`LISTEN_SET`] the
//! listeners' backlogs (so a datagram's egress poll does not walk hundreds of listening
//! sockets), and each TCP connection lives in one of [`BUCKETS`] small sets chosen by its
//! flow hash; set [`LOCAL_SET`] holds connections from the stack to its own addresses,
//! whose egress loops back instead of going to the link. Ingress
//! feeds a frame to the one set its flow table entry names; egress polls only the sets
//! that were touched or whose timers are due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, AnySocket, Socket};
use smoltcp::time::Instant;

use crate::flow::FlowKey;

/// Connection buckets (sets 1..=BUCKETS).
pub(crate) const BUCKETS: u32 = 1024;
/// The set of every listener's backlog of listening (and half-open) sockets.
pub(crate) const LISTEN_SET: u32 = BUCKETS + 1;
/// The set of connections to the stack's own addresses (see `hairpin`).
pub(crate) const LOCAL_SET: u32 = LISTEN_SET + 1;

/// A socket of the shard: which set, and smoltcp's handle in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Sock {
    pub(crate) set: u32,
    pub(crate) handle: SocketHandle,
}

/// All socket sets of a shard, with the bookkeeping of which need an egress poll.
pub(crate) struct Sets {
    sets: Vec<SocketSet<'static>>,
    dirty: Vec<bool>,
    dirty_list: Vec<u32>,
    next_at: Vec<Option<Instant>>,
    due: BinaryHeap<Reverse<(Instant, u32)>>,
    count: usize,
    /// Receive plus send buffer bytes of the TCP sockets held.
    buffer_bytes: usize,
    /// Per set, the priority of the task that last used one of its connections: the order
    /// of egress when it is ranked.
    rank: Vec<u8>,
    /// Whether any set's rank differs from the default (else egress keeps the plain order).
    ranked: bool,
}

impl Sets {
    pub(crate) fn new() -> Sets {
        let n = LOCAL_SET as usize + 1;
        Sets {
            sets: (0..n).map(|_| SocketSet::new(Vec::new())).collect(),
            dirty: vec![false; n],
            dirty_list: Vec::new(),
            next_at: vec![None; n],
            due: BinaryHeap::new(),
            count: 0,
            buffer_bytes: 0,
            rank: vec![crate::executor::DEFAULT_PRIORITY; n],
            ranked: false,
        }
    }

    /// The bucket a connection lives in.
    pub(crate) fn bucket_for(key: &FlowKey) -> u32 {
        // splitmix64's finalizer over the flow's words: every input bit reaches the low
        // bits the bucket index is taken from.
        fn fmix(mut z: u64) -> u64 {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        let mut h = fmix(u64::from(key.local_port) << 16 | u64::from(key.remote_port));
        match key.remote {
            smoltcp::wire::IpAddress::Ipv4(a) => h = fmix(h ^ u64::from(u32::from(a))),
            smoltcp::wire::IpAddress::Ipv6(a) => {
                let v = u128::from(a);
                h = fmix(h ^ (v as u64));
                h = fmix(h ^ ((v >> 64) as u64));
            }
        }
        1 + (h % u64::from(BUCKETS)) as u32
    }

    /// Marks a set as needing an egress poll.
    pub(crate) fn mark(&mut self, set: u32) {
        if let Some(d) = self.dirty.get_mut(set as usize) {
            if !*d {
                *d = true;
                self.dirty_list.push(set);
            }
        }
    }

    /// Ranks `set` at `priority` for egress (see [`Sets::take_work`]).
    pub(crate) fn rank(&mut self, set: u32, priority: u8) {
        if let Some(r) = self.rank.get_mut(set as usize) {
            *r = priority;
            self.ranked |= priority != crate::executor::DEFAULT_PRIORITY;
        }
    }

    /// Adds a socket to set 0.
    pub(crate) fn add<T: AnySocket<'static>>(&mut self, s: T) -> Sock {
        self.add_to(0, s)
    }

    /// Adds a socket to `set`.
    pub(crate) fn add_to<T: AnySocket<'static>>(&mut self, set: u32, s: T) -> Sock {
        let s = s.upcast();
        self.buffer_bytes += buffer_bytes(&s);
        let handle = self.sets[set as usize].add(s);
        self.count += 1;
        self.mark(set);
        Sock { set, handle }
    }

    /// Moves a socket to another set (a connection leaving its listener's backlog).
    pub(crate) fn move_to(&mut self, sock: Sock, set: u32) -> Sock {
        if sock.set == set {
            return sock;
        }
        let s: Socket<'static> = self.sets[sock.set as usize].remove(sock.handle);
        let handle = self.sets[set as usize].add(s);
        self.mark(set);
        Sock { set, handle }
    }

    /// The socket behind a handle.
    pub(crate) fn get<T: AnySocket<'static>>(&self, sock: Sock) -> &T {
        self.sets[sock.set as usize].get::<T>(sock.handle)
    }

    /// The socket behind a handle, to change: its set will get an egress poll.
    pub(crate) fn get_mut<T: AnySocket<'static>>(&mut self, sock: Sock) -> &mut T {
        self.mark(sock.set);
        self.sets[sock.set as usize].get_mut::<T>(sock.handle)
    }

    /// Two different TCP sockets at once, to change (a splice moves bytes from one's
    /// receive buffer straight into the other's send buffer); both sets get an egress poll.
    /// `None` when `a == b` or either is not a TCP socket.
    pub(crate) fn tcp_pair_mut(
        &mut self,
        a: Sock,
        b: Sock,
    ) -> Option<(&mut tcp::Socket<'static>, &mut tcp::Socket<'static>)> {
        if a == b {
            return None;
        }
        self.mark(a.set);
        self.mark(b.set);
        if a.set != b.set {
            let (lo, hi) = (a.set.min(b.set) as usize, a.set.max(b.set) as usize);
            let (left, right) = self.sets.split_at_mut(hi);
            let (low, high) = (&mut left[lo], &mut right[0]);
            let (sa, sb) = if a.set < b.set {
                (
                    low.get_mut::<tcp::Socket>(a.handle),
                    high.get_mut::<tcp::Socket>(b.handle),
                )
            } else {
                (
                    high.get_mut::<tcp::Socket>(a.handle),
                    low.get_mut::<tcp::Socket>(b.handle),
                )
            };
            return Some((sa, sb));
        }
        // One bucket holds a handful of connections: find both in one pass.
        let (mut sa, mut sb) = (None, None);
        for (h, s) in self.sets[a.set as usize].iter_mut() {
            if h == a.handle {
                sa = tcp::Socket::downcast_mut(s);
            } else if h == b.handle {
                sb = tcp::Socket::downcast_mut(s);
            }
        }
        Some((sa?, sb?))
    }

    /// Removes a socket and returns it (for the pool).
    pub(crate) fn remove(&mut self, sock: Sock) -> Socket<'static> {
        self.count = self.count.saturating_sub(1);
        let s = self.sets[sock.set as usize].remove(sock.handle);
        self.buffer_bytes = self.buffer_bytes.saturating_sub(buffer_bytes(&s));
        s
    }

    /// Receive plus send buffer bytes of the TCP sockets held.
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Sockets held.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// One set, for smoltcp.
    pub(crate) fn set_mut(&mut self, set: u32) -> &mut SocketSet<'static> {
        &mut self.sets[set as usize]
    }

    /// The sets that need an egress poll at `now`: touched ones and those whose timers are
    /// due. Clears their dirty marks.
    pub(crate) fn take_work(&mut self, now: Instant, out: &mut Vec<u32>) {
        out.clear();
        while let Some(&Reverse((at, set))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            if self.next_at[set as usize] == Some(at) {
                self.next_at[set as usize] = None;
                self.mark(set);
            }
        }
        for set in self.dirty_list.drain(..) {
            self.dirty[set as usize] = false;
            out.push(set);
        }
        // Egress priority: when the transmit ring is the bottleneck, the sets polled first
        // are the ones whose frames leave; higher-ranked connections go first (stable, so
        // equal ranks keep the order they were touched in).
        if self.ranked && out.len() > 1 {
            let rank = &self.rank;
            out.sort_by_key(|&s| Reverse(rank.get(s as usize).copied().unwrap_or(0)));
        }
    }

    /// Records when `set` next needs a poll (from smoltcp's `poll_at`).
    pub(crate) fn set_next(&mut self, set: u32, at: Option<Instant>) {
        self.next_at[set as usize] = at;
        if let Some(at) = at {
            self.due.push(Reverse((at, set)));
        }
    }

    /// The earliest time any set needs a poll; `Some(now)`-like when a set is dirty.
    pub(crate) fn next_deadline(&mut self, now: Instant) -> Option<Instant> {
        if !self.dirty_list.is_empty() {
            return Some(now);
        }
        while let Some(&Reverse((at, set))) = self.due.peek() {
            if self.next_at[set as usize] == Some(at) {
                return Some(at);
            }
            self.due.pop();
        }
        None
    }
}

/// A socket's buffer bytes (TCP: receive plus send capacity; others are not counted).
fn buffer_bytes(s: &Socket<'static>) -> usize {
    match s {
        Socket::Tcp(t) => t.recv_capacity() + t.send_capacity(),
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Proto;

    #[test]
    fn one_client_spreads_over_the_buckets() {
        let mut used = std::collections::HashSet::new();
        let mut fullest = std::collections::HashMap::new();
        for port in 32768..(32768 + 10_000u16) {
            let key = FlowKey {
                proto: Proto::Tcp,
                local: smoltcp::wire::IpAddress::v4(10, 0, 0, 2),
                local_port: 7,
                remote: smoltcp::wire::IpAddress::v4(10, 0, 0, 1),
                remote_port: port,
            };
            let b = Sets::bucket_for(&key);
            assert!((1..=BUCKETS).contains(&b));
            used.insert(b);
            *fullest.entry(b).or_insert(0) += 1;
        }
        assert!(used.len() > 1000, "{} buckets used", used.len());
        assert!(fullest.values().all(|&n| n < 30), "a bucket is crowded");
    }
}
