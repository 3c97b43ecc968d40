//! A stream whose reads and writes may wait at most an idle limit: how a service bounds a
//! client that holds a connection open without making progress (a slowloris client that
//! sends nothing, or one that never reads so writes cannot go on).
//!
//! Each direction has its own clock. It starts when an operation has to wait and stops
//! at the first progress; an operation that waits longer than the limit fails with
//! `TimedOut`. A read or write that is ready at once costs no timer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Net, Sleep};

/// `inner` with an idle limit on each direction (see the module documentation).
#[derive(Debug)]
pub struct IdleLimit<S> {
    inner: S,
    net: Net,
    limit: Duration,
    read: Option<Sleep>,
    write: Option<Sleep>,
}

impl<S> IdleLimit<S> {
    /// Wraps `inner`; its reads and writes fail after waiting `limit` of shard time.
    pub fn new(inner: S, net: &Net, limit: Duration) -> IdleLimit<S> {
        IdleLimit {
            inner,
            net: net.clone(),
            limit,
            read: None,
            write: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably (to abort it after a timeout, say).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether an operation that is waiting has waited past the limit: arms the clock of its
/// direction at the first wait.
fn expired(
    clock: &mut Option<Sleep>,
    net: &Net,
    limit: Duration,
    cx: &mut Context<'_>,
) -> Option<io::Error> {
    let sleep = clock.get_or_insert_with(|| net.sleep(limit));
    if Pin::new(sleep).poll(cx).is_ready() {
        *clock = None;
        return Some(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no progress for {limit:?} (idle limit)"),
        ));
    }
    None
}

/// Passes a finished operation on and stops its direction's clock.
fn settle<T>(clock: &mut Option<Sleep>, r: Poll<T>) -> Poll<T> {
    if r.is_ready() {
        *clock = None;
    }
    r
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleLimit<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = settle(&mut me.read, Pin::new(&mut me.inner).poll_read(cx, buf));
        if r.is_pending() {
            if let Some(e) = expired(&mut me.read, &me.net, me.limit, cx) {
                return Poll::Ready(Err(e));
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> IdleLimit<S> {
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let r = settle(&mut self.write, op(Pin::new(&mut self.inner), cx));
        if r.is_pending() {
            if let Some(e) = expired(&mut self.write, &self.net, self.limit, cx) {
                return Poll::Ready(Err(e));
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleLimit<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard_write(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard_write(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard_write(cx, |s, cx| s.poll_shutdown(cx))
    }
}
