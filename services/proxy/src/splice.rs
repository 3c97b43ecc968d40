//! The splice between a client and its backend: both directions in one task, each
//! direction ending with a half-close (FIN) of the other side once its source has sent
//! everything, until both have; backpressure by readiness (a direction waits while the
//! receiving socket's send buffer is full, which in turn closes the source's window).
//!
//! Between two plain connections of the shard the bytes go from one socket's receive ring
//! straight into the other's send ring ([`TcpStream::poll_splice_to`]): one copy, no buffer
//! in between. A TLS side needs its plaintext, so such a splice goes through a 16 KiB buffer
//! per direction (one TLS record).
//!
//! An idle limit ends the splice when no byte moved either way for that long. It costs one
//! timer per idle period, not one per wake-up: the timer is re-armed from the last activity
//! only when it fires.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use sixstack_stack::smoltcp::time::Instant;
use sixstack_stack::{Net, TcpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes a buffered direction holds at most.
const BUF: usize = 16 * 1024;

/// Rounds of progress in one poll before the task yields to the others on the shard.
const ROUNDS_PER_POLL: usize = 32;

/// A stream the splice can use: every stream is readable and writable; a plain stack
/// connection also offers the copy-free path.
pub trait Splice: AsyncRead + AsyncWrite + Unpin {
    /// The plain stack connection, when this is one.
    fn as_tcp(&mut self) -> Option<&mut TcpStream> {
        None
    }
}

impl Splice for TcpStream {
    fn as_tcp(&mut self) -> Option<&mut TcpStream> {
        Some(self)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Splice
    for sixstack_tls::tokio_rustls::server::TlsStream<IO>
{
}
impl<IO: AsyncRead + AsyncWrite + Unpin> Splice
    for sixstack_tls::tokio_rustls::client::TlsStream<IO>
{
}

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides sent everything and closed.
    Closed,
    /// Nothing moved for the idle limit.
    Idle,
}

/// A splice that failed: the error, and which sides had already received everything the
/// other sent up to its end of file (those may be closed normally; the others must learn
/// that their stream is incomplete, by a reset).
#[derive(Debug)]
pub struct SpliceError {
    /// What failed.
    pub error: io::Error,
    /// The client got the backend's whole stream.
    pub client_complete: bool,
    /// The backend got the client's whole stream.
    pub backend_complete: bool,
}

impl std::fmt::Display for SpliceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// Bytes moved, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// From the client to the backend.
    pub to_backend: u64,
    /// From the backend to the client.
    pub to_client: u64,
}

/// One direction's state.
struct Dir {
    buf: Option<Box<[u8]>>,
    pos: usize,
    cap: usize,
    read_done: bool,
    need_flush: bool,
    done: bool,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            buf: None,
            pos: 0,
            cap: 0,
            read_done: false,
            need_flush: false,
            done: false,
        }
    }

    /// Moves what it can from `r` to `w`: `Ready(Ok(n))` with the bytes moved (0 when the
    /// direction just finished), `Pending` when it waits on either side.
    fn poll<R: Splice, W: Splice>(
        &mut self,
        r: &mut R,
        w: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.buf.is_none() {
            if let (Some(rt), Some(wt)) = (r.as_tcp(), w.as_tcp()) {
                return match rt.poll_splice_to(wt, cx) {
                    Poll::Ready(Ok(0)) => {
                        self.done = true;
                        Pin::new(wt).poll_shutdown(cx).map_ok(|()| 0)
                    }
                    other => other,
                };
            }
        }
        let buf = self
            .buf
            .get_or_insert_with(|| vec![0u8; BUF].into_boxed_slice());
        loop {
            if self.pos < self.cap {
                let n =
                    std::task::ready!(Pin::new(&mut *w).poll_write(cx, &buf[self.pos..self.cap]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.need_flush = true;
                return Poll::Ready(Ok(n));
            }
            if self.read_done {
                std::task::ready!(Pin::new(&mut *w).poll_flush(cx))?;
                std::task::ready!(Pin::new(&mut *w).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(0));
            }
            let mut rb = ReadBuf::new(buf);
            if Pin::new(&mut *r).poll_read(cx, &mut rb)?.is_pending() {
                // A TLS writer may hold records back: flush them before waiting on the
                // reader again.
                if self.need_flush && Pin::new(&mut *w).poll_flush(cx)?.is_ready() {
                    self.need_flush = false;
                }
                return Poll::Pending;
            }
            let n = rb.filled().len();
            if n == 0 {
                self.read_done = true;
            } else {
                self.pos = 0;
                self.cap = n;
            }
        }
    }
}

/// Splices `client` and `backend` until both directions have closed or, with `idle`, nothing
/// moved for that long; `moved` is told every step (for live statistics).
pub async fn splice<C: Splice, B: Splice>(
    net: &Net,
    client: &mut C,
    backend: &mut B,
    idle: Option<Duration>,
    mut moved: impl FnMut(Moved),
) -> Result<End, SpliceError> {
    let mut up = Dir::new();
    let mut down = Dir::new();
    let mut last = net.now();
    let mut timer = idle.map(|d| Box::pin(net.sleep(d)));
    poll_fn(|cx| {
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = false;
            if !up.done {
                match up.poll(client, backend, cx) {
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        if n > 0 {
                            moved(Moved {
                                to_backend: n as u64,
                                to_client: 0,
                            });
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(failed(e, &up, &down))),
                    Poll::Pending => {}
                }
            }
            if !down.done {
                match down.poll(backend, client, cx) {
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        if n > 0 {
                            moved(Moved {
                                to_backend: 0,
                                to_client: n as u64,
                            });
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(failed(e, &up, &down))),
                    Poll::Pending => {}
                }
            }
            if up.done && down.done {
                return Poll::Ready(Ok(End::Closed));
            }
            if !progress {
                return poll_idle(net, idle, &mut timer, last, cx)
                    .map_err(|e| failed(e, &up, &down));
            }
            last = net.now();
        }
        // Still moving: let the shard's other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

fn failed(error: io::Error, up: &Dir, down: &Dir) -> SpliceError {
    SpliceError {
        error,
        client_complete: down.done,
        backend_complete: up.done,
    }
}

/// Whether the idle limit has run out since `last`; re-arms the timer from `last` when it
/// fired early.
fn poll_idle(
    net: &Net,
    idle: Option<Duration>,
    timer: &mut Option<Pin<Box<sixstack_stack::Sleep>>>,
    last: Instant,
    cx: &mut Context<'_>,
) -> Poll<io::Result<End>> {
    let (Some(limit), Some(t)) = (idle, timer.as_mut()) else {
        return Poll::Pending;
    };
    loop {
        if t.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let since = net.now() - last;
        let limit_us = limit.as_micros() as u64;
        if since.total_micros() >= limit_us {
            return Poll::Ready(Ok(End::Idle));
        }
        let rest = Duration::from_micros(limit_us - since.total_micros());
        t.set(net.sleep(rest));
    }
}
