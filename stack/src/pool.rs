//! Recycled TCP sockets. A connection's sockets carry its receive and send buffers (tens
//! of KiB each); allocating and clearing them for every connection is a measurable share
//! of a short connection's cost (a proxied connection needs two sockets). smoltcp cannot
//! hand a socket's buffers back, so closed sockets themselves are kept, per buffer size,
//! and reused: `listen` and `connect` reset every piece of connection state, and the
//! options a connection may have changed are put back to their defaults here. A reused
//! buffer holds an earlier connection's bytes, but a socket only ever reads what it wrote.

use smoltcp::socket::{tcp, Socket};

/// At most this many buffer bytes are kept per shard.
const MAX_BYTES: usize = 32 << 20;

/// Closed sockets ready for reuse, by buffer sizes.
#[derive(Default)]
pub(crate) struct SocketPool {
    classes: Vec<(usize, usize, Vec<tcp::Socket<'static>>)>,
    bytes: usize,
    /// Sockets handed out again instead of allocated.
    pub(crate) reused: u64,
}

impl SocketPool {
    /// A closed socket with `rx`/`tx` bytes of buffer: a recycled one when there is one.
    pub(crate) fn take(&mut self, rx: usize, tx: usize) -> tcp::Socket<'static> {
        if let Some((_, _, free)) = self
            .classes
            .iter_mut()
            .find(|(r, t, _)| *r == rx && *t == tx)
        {
            if let Some(mut s) = free.pop() {
                self.bytes -= rx + tx;
                self.reused += 1;
                defaults(&mut s);
                return s;
            }
        }
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; rx]),
            tcp::SocketBuffer::new(vec![0u8; tx]),
        )
    }

    /// Keeps a removed socket for reuse if it is a closed TCP socket and the budget allows.
    pub(crate) fn give(&mut self, s: Socket<'static>) {
        let Socket::Tcp(s) = s else {
            return;
        };
        let (rx, tx) = (s.recv_capacity(), s.send_capacity());
        if s.state() != tcp::State::Closed || self.bytes + rx + tx > MAX_BYTES {
            return;
        }
        self.bytes += rx + tx;
        match self
            .classes
            .iter_mut()
            .find(|(r, t, _)| *r == rx && *t == tx)
        {
            Some((_, _, free)) => free.push(s),
            None => self.classes.push((rx, tx, vec![s])),
        }
    }
}

/// Puts back what a connection may have changed (its state is reset by `listen` and
/// `connect`).
fn defaults(s: &mut tcp::Socket<'static>) {
    s.set_timeout(None);
    s.set_keep_alive(None);
    s.set_nagle_enabled(true);
    s.set_ack_delay(Some(smoltcp::time::Duration::from_millis(10)));
    s.set_hop_limit(None);
    s.set_congestion_control(s.congestion_control());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn closed_sockets_come_back_with_their_sizes_and_defaults() {
        let mut p = SocketPool::default();
        let mut s = p.take(1024, 2048);
        s.set_nagle_enabled(false);
        s.set_timeout(Some(smoltcp::time::Duration::from_secs(1)));
        p.give(Socket::Tcp(s));
        let other = p.take(512, 512);
        assert_eq!(p.reused, 0);
        assert_eq!(other.recv_capacity(), 512);
        let s = p.take(1024, 2048);
        assert_eq!(p.reused, 1);
        assert_eq!((s.recv_capacity(), s.send_capacity()), (1024, 2048));
        assert!(s.nagle_enabled());
        assert_eq!(s.timeout(), None);
        assert_eq!(p.bytes, 0);
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let mut p = SocketPool::default();
        let big = MAX_BYTES / 2;
        for _ in 0..3 {
            let s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0u8; big]),
                tcp::SocketBuffer::new(vec![0u8; 1]),
            );
            p.give(Socket::Tcp(s));
        }
        assert_eq!(p.classes[0].2.len(), 1);
    }
}
