//! Timers on shard time: `Net::sleep` and `timeout`. The shard loop fires due timers
//! and sleeps no longer than the earliest one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use smoltcp::time::Instant;

use crate::Net;

/// The timers of one shard.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: HashMap<u64, Waker, crate::net::Fast>,
    next_id: u64,
    /// Heap entries whose timer was cancelled (not yet popped).
    cancelled: usize,
}

impl Timers {
    fn register(&mut self, id: Option<u64>, at: Instant, waker: &Waker) -> u64 {
        match id {
            Some(id) if self.wakers.contains_key(&id) => {
                if let Some(w) = self.wakers.get_mut(&id) {
                    if !w.will_wake(waker) {
                        *w = waker.clone();
                    }
                }
                id
            }
            _ => {
                self.next_id += 1;
                let id = self.next_id;
                self.heap.push(Reverse((at, id)));
                self.wakers.insert(id, waker.clone());
                id
            }
        }
    }

    fn cancel(&mut self, id: u64) {
        if self.wakers.remove(&id).is_some() {
            // Its heap entry stays until it reaches the top; when most of the heap is
            // such entries (long timeouts cancelled early, like an idle limit of a
            // connection that ended), rebuild it from the live ones: amortized O(1) per
            // cancel, and the heap never grows with the rate of cancelled timers.
            self.cancelled += 1;
            if self.cancelled > 1024 && self.cancelled * 2 > self.heap.len() {
                let live = &self.wakers;
                self.heap.retain(|Reverse((_, id))| live.contains_key(id));
                self.cancelled = 0;
            }
        }
    }

    /// Wakes every timer due at `now`; returns how many fired.
    pub(crate) fn fire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(w) = self.wakers.remove(&id) {
                w.wake();
                n += 1;
            } else {
                self.cancelled = self.cancelled.saturating_sub(1);
            }
        }
        n
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if self.wakers.contains_key(&id) {
                return Some(at);
            }
            self.heap.pop();
            self.cancelled = self.cancelled.saturating_sub(1);
        }
        None
    }
}

/// A future that completes at a point of shard time.
#[derive(Debug)]
pub struct Sleep {
    net: Net,
    deadline: Instant,
    id: Option<u64>,
}

impl Sleep {
    pub(crate) fn new(net: Net, after: Duration) -> Sleep {
        let deadline = net.now() + smoltcp::time::Duration::from_micros(after.as_micros() as u64);
        Sleep {
            net,
            deadline,
            id: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.net.now() >= self.deadline {
            if let Some(id) = self.id.take() {
                self.net.timers().cancel(id);
            }
            return Poll::Ready(());
        }
        let (id, at) = (self.id, self.deadline);
        let id = self.net.timers().register(id, at, cx.waker());
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.net.timers().cancel(id);
        }
    }
}

/// The deadline of a [`timeout`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline elapsed")
    }
}

/// Runs `fut` for at most `limit` of shard time.
pub async fn timeout<F: Future>(net: &Net, limit: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = std::pin::pin!(net.sleep(limit));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_timers_do_not_pile_up_in_the_heap() {
        let mut t = Timers::default();
        let far = Instant::from_secs(300);
        let w = Waker::noop();
        let ids: Vec<u64> = (0..5000).map(|_| t.register(None, far, w)).collect();
        for id in &ids[10..] {
            t.cancel(*id);
        }
        assert!(t.heap.len() < 2100, "{} heap entries", t.heap.len());
        assert_eq!(t.next_deadline(), Some(far));
        assert_eq!(t.fire(far), 10);
        assert_eq!(t.next_deadline(), None);
    }
}
