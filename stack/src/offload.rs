//! Work too heavy for a shard's loop (an Argon2id password check takes tens of
//! milliseconds of CPU): it runs on a thread of its own and the task awaits the result,
//! woken through the shard's doorbell. For rare events like logins, never per packet.

use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

struct Slot<T> {
    result: Option<T>,
    waker: Option<Waker>,
    gone: bool,
}

/// Runs `f` on a new thread and waits for its result without blocking the shard.
pub async fn offload<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        result: None,
        waker: None,
        gone: false,
    }));
    let theirs = slot.clone();
    std::thread::Builder::new()
        .name("sixstack-offload".into())
        .spawn(move || {
            let out = f();
            let mut s = theirs.lock().unwrap_or_else(PoisonError::into_inner);
            s.result = Some(out);
            s.gone = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        })?;
    poll_fn(|cx| {
        let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = s.result.take() {
            return Poll::Ready(Ok(v));
        }
        if s.gone {
            return Poll::Ready(Err(io::Error::other("offloaded work panicked")));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}
