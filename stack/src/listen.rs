//! The shard's side of TCP listeners: one *armed* listening socket per listener in the
//! listen set, and the handshakes under way in their own connection buckets.
//!
//! smoltcp's listening socket takes exactly one connection and then *is* that connection,
//! and it scans a whole socket set on every ingress and egress poll. Keeping a listener's
//! whole backlog of listening sockets in one set made every SYN and every handshake
//! segment cost O(backlog). Here the listen set holds one listening socket per listener;
//! when it takes a SYN, [`Core::syn_taken`] moves it (now SYN-RECEIVED) into the bucket its
//! flow hashes to, records it in the flow table and in the listener's handshake list, and
//! arms a fresh listening socket, as long as fewer than `backlog` handshakes are pending.
//! `accept` picks established connections off that list.

use std::task::Waker;

use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpListenEndpoint;

use crate::flow::FlowKey;
use crate::net::{Core, FlowEntry};
use crate::sockets::{Sock, LISTEN_SET};

/// One listener's state in the shard.
#[derive(Debug)]
pub(crate) struct ListenState {
    pub(crate) endpoint: IpListenEndpoint,
    pub(crate) rx_buffer: usize,
    pub(crate) tx_buffer: usize,
    pub(crate) backlog: usize,
    /// The listening socket in the listen set, if armed.
    pub(crate) armed: Option<Sock>,
    /// Connections whose SYN was taken and that `accept` has not handed out yet, oldest
    /// first, each in its connection bucket.
    pub(crate) pending: Vec<(Sock, FlowKey)>,
    /// The task waiting in `accept`.
    pub(crate) waker: Option<Waker>,
}

impl ListenState {
    fn matches(&self, key: &FlowKey) -> bool {
        self.endpoint.port == key.local_port && self.endpoint.addr.is_none_or(|a| a == key.local)
    }
}

impl Core {
    /// Arms listener `id` with a listening socket if it has none and its backlog has room.
    /// Fails only for an endpoint smoltcp cannot listen on, which `bind` reports; once a
    /// listener exists its endpoint has been armed before.
    pub(crate) fn arm(&mut self, id: usize) -> Result<(), tcp::ListenError> {
        let Some(Some(ls)) = self.listeners.get_mut(id) else {
            return Ok(());
        };
        if ls.armed.is_some() || ls.pending.len() >= ls.backlog {
            return Ok(());
        }
        let (rx, tx, endpoint) = (ls.rx_buffer, ls.tx_buffer, ls.endpoint);
        if !self.memory_allows(rx + tx) {
            // Over the shard's budget: SYNs are refused (RST) until connections close.
            return Ok(());
        }
        let mut s = self.pool.take(rx, tx);
        s.listen(endpoint)?;
        let sock = self.sockets.add_to(LISTEN_SET, s);
        if let Some(Some(ls)) = self.listeners.get_mut(id) {
            ls.armed = Some(sock);
        }
        Ok(())
    }

    /// [`Core::arm`] from the shard's own paths, where a failure can only be logged.
    fn rearm(&mut self, id: usize) {
        if let Err(e) = self.arm(id) {
            log::warn!("listener {id}: {e}");
        }
    }

    /// Called after a SYN for `key` went to the listen set: if a listener's armed socket
    /// took it, that socket moves to its connection bucket as a pending handshake and the
    /// listener is armed again.
    pub(crate) fn syn_taken(&mut self, key: &FlowKey, now: Instant) {
        let set = self.set_for(key);
        for id in 0..self.listeners.len() {
            let Some(ls) = self.listeners[id].as_mut() else {
                continue;
            };
            let Some(armed) = ls.armed.filter(|_| ls.matches(key)) else {
                continue;
            };
            let s = self.sockets.get::<tcp::Socket>(armed);
            if s.state() == tcp::State::Listen {
                continue;
            }
            let sock = self.sockets.move_to(armed, set);
            if let Some(w) = &ls.waker {
                self.sockets
                    .get_mut::<tcp::Socket>(sock)
                    .register_recv_waker(w);
            }
            ls.armed = None;
            ls.pending.push((sock, *key));
            // The handshake's entry (if any) keeps its place in the ingress lanes.
            let entry = self
                .flows
                .entry(*key)
                .or_insert(FlowEntry::new(Some(sock), now));
            entry.socket = Some(sock);
            entry.since = now;
            if !entry.inbound {
                entry.inbound = true;
                *self.per_source.entry(key.remote).or_insert(0) += 1;
            }
            self.rearm(id);
            return;
        }
    }

    /// A SYN for `key` is about to reach the listen set. If its listener has no socket
    /// armed because its backlog is full, the oldest handshake that is still half-open
    /// (SYN-RECEIVED: the peer never answered the SYN-ACK, as in a spoofed SYN flood) is
    /// reset and dropped to make room, so a flood cannot lock legitimate clients out while
    /// half-open state stays bounded by the backlog. Established connections waiting for
    /// `accept` are never evicted: with the backlog full of those, the SYN is refused.
    /// Returns whether a handshake was evicted.
    pub(crate) fn make_room(&mut self, key: &FlowKey, now: Instant) -> bool {
        for id in 0..self.listeners.len() {
            let Some(ls) = self.listeners[id].as_mut() else {
                continue;
            };
            if ls.armed.is_some() || !ls.matches(key) {
                continue;
            }
            if ls.pending.len() < ls.backlog {
                // Unarmed for want of memory earlier: there may be room again now.
                self.rearm(id);
                return false;
            }
            let sockets = &self.sockets;
            let oldest = ls.pending.iter().position(|&(sock, _)| {
                sockets.get::<tcp::Socket>(sock).state() == tcp::State::SynReceived
            });
            let Some(i) = oldest else {
                continue;
            };
            let (sock, flow) = ls.pending.remove(i);
            self.sockets.get_mut::<tcp::Socket>(sock).abort();
            self.release(sock, now, None, Some(flow));
            self.rearm(id);
            return true;
        }
        false
    }

    /// Whether a new socket with `bytes` of buffers fits the shard's memory budget; counts
    /// a refusal when it does not.
    pub(crate) fn memory_allows(&mut self, bytes: usize) -> bool {
        if self.sockets.buffer_bytes() + bytes <= self.socket_memory {
            return true;
        }
        self.counters.socket_memory_refused += 1;
        false
    }

    /// Takes listener `id`'s oldest established connection, dropping handshakes that
    /// failed; registers `waker` on the rest when there is none.
    pub(crate) fn take_established(&mut self, id: usize, waker: &Waker) -> Option<(Sock, FlowKey)> {
        let ls = self.listeners.get_mut(id)?.as_mut()?;
        let mut i = 0;
        let mut found = None;
        let mut failed = Vec::new();
        while i < ls.pending.len() {
            let (sock, key) = ls.pending[i];
            match self.sockets.get::<tcp::Socket>(sock).state() {
                tcp::State::Listen | tcp::State::SynReceived => i += 1,
                tcp::State::Closed => {
                    // Reset or timed out before it was accepted: forget it quietly.
                    ls.pending.remove(i);
                    let s = self.sockets.remove(sock);
                    self.pool.give(s);
                    failed.push(key);
                }
                _ => {
                    ls.pending.remove(i);
                    found = Some((sock, key));
                    break;
                }
            }
        }
        if found.is_none() && !ls.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            ls.waker = Some(waker.clone());
            for &(sock, _) in &ls.pending {
                self.sockets
                    .get_mut::<tcp::Socket>(sock)
                    .register_recv_waker(waker);
            }
        }
        for key in &failed {
            self.forget_flow(key);
        }
        // A handshake left the backlog: there may be room to arm again.
        self.rearm(id);
        found
    }

    /// Removes listener `id`: its listening socket, and every pending handshake is reset
    /// (handed to the reaper, so the RST goes out).
    pub(crate) fn unlisten(&mut self, id: usize, now: Instant) {
        let Some(ls) = self.listeners.get_mut(id).and_then(Option::take) else {
            return;
        };
        if let Some(a) = ls.armed {
            self.sockets.remove(a);
        }
        for (sock, key) in ls.pending {
            self.sockets.get_mut::<tcp::Socket>(sock).abort();
            self.release(sock, now, None, Some(key));
        }
    }
}
