//! TCP for applications: [`TcpListener`] with a real listen backlog and [`TcpStream`]
//! implementing `tokio::io::AsyncRead`/`AsyncWrite` over a smoltcp socket.
//!
//! smoltcp's listening socket takes exactly one connection and then *is* that connection.
//! A listener therefore re-arms a fresh listening socket the moment one takes a SYN, and
//! keeps up to `backlog` handshakes under way, so a burst of SYNs is answered with
//! SYN-ACKs, not RSTs, at a cost per SYN that does not grow with the backlog.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::flow::{FlowKey, Proto};
use crate::listen::ListenState;
use crate::net::FlowEntry;
use crate::sockets::Sock;
use crate::Net;

/// How long an active open may take before it fails with `TimedOut`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a listener is set up: its backlog and the buffers of the connections it accepts.
/// Bulk services want large buffers (a large window), services with many short
/// connections small ones: each connection holds both (recycled from closed connections of
/// the same sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// Listening sockets kept ready (at least 1).
    pub backlog: usize,
    /// Receive buffer per connection, bytes (the advertised window's ceiling).
    pub rx_buffer: usize,
    /// Transmit buffer per connection, bytes.
    pub tx_buffer: usize,
}

impl ListenOptions {
    /// The shard's configured backlog and buffer sizes.
    pub fn from_config(net: &Net) -> ListenOptions {
        let cfg = net.config();
        ListenOptions {
            backlog: cfg.backlog,
            rx_buffer: cfg.tcp_rx_buffer,
            tx_buffer: cfg.tcp_tx_buffer,
        }
    }
}

/// A TCP listening port. One listening socket waits for the next SYN; connections in
/// their handshake (up to `backlog`) live in their own buckets until accepted (see the
/// shard's `listen` module).
pub struct TcpListener {
    net: Net,
    endpoint: IpListenEndpoint,
    id: usize,
    /// The port came from the shard's port allocator (freed on drop).
    owned_port: bool,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("endpoint", &self.endpoint)
            .field("id", &self.id)
            .finish()
    }
}

impl TcpListener {
    /// Listens on `endpoint` (address optional: all of the stack's addresses, v4 and v6)
    /// with the shard's configured backlog.
    pub fn bind(net: &Net, endpoint: impl Into<IpListenEndpoint>) -> io::Result<TcpListener> {
        let backlog = net.config().backlog;
        TcpListener::bind_with_backlog(net, endpoint, backlog)
    }

    /// Listens with an explicit backlog (at least 1).
    pub fn bind_with_backlog(
        net: &Net,
        endpoint: impl Into<IpListenEndpoint>,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let opts = ListenOptions {
            backlog,
            ..ListenOptions::from_config(net)
        };
        TcpListener::bind_with(net, endpoint, opts)
    }

    /// Listens with explicit options.
    pub fn bind_with(
        net: &Net,
        endpoint: impl Into<IpListenEndpoint>,
        opts: ListenOptions,
    ) -> io::Result<TcpListener> {
        let endpoint = endpoint.into();
        if endpoint.port == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a listener needs a port",
            ));
        }
        let state = ListenState {
            endpoint,
            rx_buffer: opts.rx_buffer.max(1),
            tx_buffer: opts.tx_buffer.max(1),
            backlog: opts.backlog.max(1),
            armed: None,
            pending: Vec::new(),
            waker: None,
        };
        let mut core = net.core();
        let id = match core.listeners.iter().position(Option::is_none) {
            Some(free) => {
                core.listeners[free] = Some(state);
                free
            }
            None => {
                core.listeners.push(Some(state));
                core.listeners.len() - 1
            }
        };
        if let Err(e) = core.arm(id) {
            // Nothing was armed: free the slot again.
            core.listeners[id] = None;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listen: {e}"),
            ));
        }
        *core.listen_ports.entry(endpoint.port).or_insert(0) += 1;
        drop(core);
        Ok(TcpListener {
            net: net.clone(),
            endpoint,
            id,
            owned_port: false,
        })
    }

    /// Listens on a free port of `range` (within 49152..=65535) that this shard owns: a
    /// SYN for it that arrives on another shard's queue is handed to this one, so the
    /// connection lands here (an FTP data connection beside its control connection). The
    /// port is held until the listener is dropped.
    pub fn bind_owned_port(
        net: &Net,
        addr: Option<IpAddress>,
        range: std::ops::RangeInclusive<u16>,
        opts: ListenOptions,
    ) -> io::Result<TcpListener> {
        let port = net
            .core()
            .alloc_port_in(range, None)
            .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port in the range"))?;
        match TcpListener::bind_with(net, IpListenEndpoint { addr, port }, opts) {
            Ok(mut l) => {
                l.owned_port = true;
                Ok(l)
            }
            Err(e) => {
                net.core().ports.remove(&port);
                Err(e)
            }
        }
    }

    /// The endpoint this listener accepts on.
    pub fn local_endpoint(&self) -> IpListenEndpoint {
        self.endpoint
    }

    /// Waits for the next established connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, IpEndpoint)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Accepts connections until the shard drains, running `handle(stream, peer)` as a task
    /// of its own for each. Returns `Ok` when the shard drains, or the error `accept` gave.
    pub async fn serve_each<F, Fut>(&self, mut handle: F) -> io::Result<()>
    where
        F: FnMut(TcpStream, IpEndpoint) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        loop {
            let (stream, peer) = match self.accept().await {
                Ok(v) => v,
                // The shard is draining for shutdown: stop accepting, quietly.
                Err(_) if self.net.is_draining() => return Ok(()),
                Err(e) => return Err(e),
            };
            self.net.spawn(handle(stream, peer));
        }
    }

    /// Poll form of [`TcpListener::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, IpEndpoint)>> {
        if self.net.is_draining() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the shard is shutting down",
            )));
        }
        let mut core = self.net.core();
        if let Some((sock, key)) = core.take_established(self.id, cx.waker()) {
            core.counters.tcp_accepted += 1;
            drop(core);
            let mut stream = TcpStream::from_handle(&self.net, sock, None);
            stream.flow = Some(key);
            return Poll::Ready(Ok((stream, IpEndpoint::new(key.remote, key.remote_port))));
        }
        drop(core);
        let mut waiters = self.net.inner.accept_waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let now = self.net.now();
        let mut core = self.net.core();
        let port = self.endpoint.port;
        if let Some(n) = core.listen_ports.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                core.listen_ports.remove(&port);
            }
        }
        core.unlisten(self.id, now);
        if self.owned_port {
            core.ports.remove(&port);
        }
    }
}

/// A TCP connection on the stack.
pub struct TcpStream {
    net: Net,
    handle: Sock,
    port: Option<u16>,
    flow: Option<FlowKey>,
    fin_sent: bool,
    /// The priority its frames were last ranked at (0: not yet).
    ranked: u8,
}

/// Bookkeeping of a use of a connection by the running task: `bytes` moved count towards
/// its work units, and the connection's frames take the task's priority when it changed.
fn used(
    net: &Net,
    core: &mut crate::net::Core,
    ranked: &mut u8,
    flow: Option<FlowKey>,
    handle: Sock,
    bytes: usize,
) {
    let running = &net.inner.running;
    running.moved.set(running.moved.get() + bytes as u64);
    let now = running.now.get();
    if now != *ranked {
        *ranked = now;
        core.note_priority(flow, handle, now);
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr())
            .field("peer", &self.peer_addr())
            .finish()
    }
}

impl TcpStream {
    fn from_handle(net: &Net, handle: Sock, port: Option<u16>) -> TcpStream {
        TcpStream {
            net: net.clone(),
            handle,
            port,
            flow: None,
            fin_sent: false,
            ranked: 0,
        }
    }

    /// Opens a connection to `remote` from an ephemeral port.
    pub async fn connect(net: &Net, remote: impl Into<IpEndpoint>) -> io::Result<TcpStream> {
        TcpStream::connect_timeout(net, remote, CONNECT_TIMEOUT).await
    }

    /// Opens a connection, failing with `TimedOut` after `limit`.
    pub async fn connect_timeout(
        net: &Net,
        remote: impl Into<IpEndpoint>,
        limit: Duration,
    ) -> io::Result<TcpStream> {
        let (rx, tx) = {
            let cfg = net.config();
            (cfg.tcp_rx_buffer, cfg.tcp_tx_buffer)
        };
        TcpStream::connect_with(net, remote, limit, rx, tx).await
    }

    /// [`TcpStream::connect_timeout`] with receive and transmit buffers of these sizes
    /// (a relay's backend side wants the same window as its client side).
    pub async fn connect_with(
        net: &Net,
        remote: impl Into<IpEndpoint>,
        limit: Duration,
        rx: usize,
        tx: usize,
    ) -> io::Result<TcpStream> {
        let remote = remote.into();
        let stream = {
            let mut core = net.core();
            let local = core.iface.get_source_address(&remote.addr).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("no source address to reach {remote}"),
                )
            })?;
            let port = core
                .alloc_port(Some((remote.addr, remote.port, local)))
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::AddrNotAvailable, "no free ephemeral port")
                })?;
            if !core.memory_allows(rx + tx) {
                core.ports.remove(&port);
                core.counters.tcp_connect_failed += 1;
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "the shard's socket memory budget is spent (tcp.memory_budget_mb)",
                ));
            }
            let mut s = core.pool.take(rx, tx);
            s.set_timeout(Some(smoltcp::time::Duration::from_micros(
                limit.as_micros() as u64,
            )));
            let core = &mut *core;
            let local_ep = IpListenEndpoint {
                addr: Some(local),
                port,
            };
            if let Err(e) = s.connect(core.iface.context(), remote, local_ep) {
                core.ports.remove(&port);
                core.counters.tcp_connect_failed += 1;
                let kind = match e {
                    tcp::ConnectError::Unaddressable => io::ErrorKind::AddrNotAvailable,
                    _ => io::ErrorKind::InvalidInput,
                };
                return Err(io::Error::new(kind, format!("connect to {remote}: {e}")));
            }
            let key = FlowKey {
                proto: Proto::Tcp,
                local,
                local_port: port,
                remote: remote.addr,
                remote_port: remote.port,
            };
            let set = core.set_for(&key);
            let h = core.sockets.add_to(set, s);
            let since = net.now();
            core.flows.insert(key, FlowEntry::new(Some(h), since));
            let mut stream = TcpStream::from_handle(net, h, Some(port));
            stream.flow = Some(key);
            stream
        };
        let started = net.now();
        poll_fn(|cx| {
            let mut core = net.core();
            let s = core.sockets.get_mut::<tcp::Socket>(stream.handle);
            match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    s.register_send_waker(cx.waker());
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed => {
                    core.counters.tcp_connect_failed += 1;
                    let waited = net.now() - started;
                    let timed_out = waited.total_micros() as u128 >= limit.as_micros();
                    Poll::Ready(Err(if timed_out {
                        io::Error::new(io::ErrorKind::TimedOut, format!("connect to {remote}"))
                    } else {
                        io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!("connect to {remote}"),
                        )
                    }))
                }
                _ => {
                    s.set_timeout(None);
                    core.counters.tcp_connected += 1;
                    Poll::Ready(Ok(()))
                }
            }
        })
        .await?;
        Ok(stream)
    }

    /// The local address and port.
    pub fn local_addr(&self) -> Option<IpEndpoint> {
        self.net
            .core()
            .sockets
            .get::<tcp::Socket>(self.handle)
            .local_endpoint()
    }

    /// The peer's address and port.
    pub fn peer_addr(&self) -> Option<IpEndpoint> {
        self.net
            .core()
            .sockets
            .get::<tcp::Socket>(self.handle)
            .remote_endpoint()
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&self, nodelay: bool) {
        self.net
            .core()
            .sockets
            .get_mut::<tcp::Socket>(self.handle)
            .set_nagle_enabled(!nodelay);
    }

    /// Sends keep-alive probes after `interval` of silence (`None`: off).
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.net
            .core()
            .sockets
            .get_mut::<tcp::Socket>(self.handle)
            .set_keep_alive(
                interval.map(|d| smoltcp::time::Duration::from_micros(d.as_micros() as u64)),
            );
    }

    /// The TCP state, for diagnostics.
    pub fn state(&self) -> tcp::State {
        self.net
            .core()
            .sockets
            .get::<tcp::Socket>(self.handle)
            .state()
    }

    /// Bytes written but not yet acknowledged by the peer.
    pub fn send_queue(&self) -> usize {
        self.net
            .core()
            .sockets
            .get::<tcp::Socket>(self.handle)
            .send_queue()
    }

    /// Resets the connection now (RST), discarding unsent data.
    pub fn abort(&mut self) {
        self.net
            .core()
            .sockets
            .get_mut::<tcp::Socket>(self.handle)
            .abort();
        self.fin_sent = true;
    }

    /// Moves bytes received on this connection straight into `to`'s send buffer: one copy,
    /// from one socket's receive ring into the other's send ring, with no buffer between
    /// (the proxy's splice). `Ready(Ok(n))` with `n > 0`: bytes moved; `Ready(Ok(0))`: this
    /// side sent FIN and everything before it has been moved; an error when this side was
    /// reset or `to` can no longer send. Pending registers this side's receive waker (nothing
    /// to move) or `to`'s send waker (no room).
    pub fn poll_splice_to(
        &mut self,
        to: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if !Rc::ptr_eq(&self.net.inner, &to.net.inner) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a splice joins two connections of the same shard",
            )));
        }
        if to.fin_sent {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let mut core = self.net.core();
        let Some((from, into)) = core.sockets.tcp_pair_mut(self.handle, to.handle) else {
            return Poll::Ready(Err(io::Error::other("splice of a connection to itself")));
        };
        if from.can_recv() {
            if into.can_send() {
                let moved = from.recv(|rx| {
                    let n = into.send_slice(rx).unwrap_or(0);
                    (n, n)
                });
                return match moved {
                    Ok(n) => {
                        used(
                            &self.net,
                            &mut core,
                            &mut self.ranked,
                            self.flow,
                            self.handle,
                            n,
                        );
                        used(&to.net, &mut core, &mut to.ranked, to.flow, to.handle, 0);
                        Poll::Ready(Ok(n))
                    }
                    Err(e) => Poll::Ready(Err(io::Error::other(e.to_string()))),
                };
            }
            return match into.state() {
                tcp::State::Established
                | tcp::State::CloseWait
                | tcp::State::SynSent
                | tcp::State::SynReceived => {
                    into.register_send_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
                _ => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            };
        }
        match from.state() {
            tcp::State::CloseWait
            | tcp::State::LastAck
            | tcp::State::Closing
            | tcp::State::TimeWait => Poll::Ready(Ok(0)),
            tcp::State::Closed if self.fin_sent => Poll::Ready(Ok(0)),
            tcp::State::Closed => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            _ => {
                from.register_recv_waker(cx.waker());
                Poll::Pending
            }
        }
    }

    /// Whether this side has sent its FIN (shut down for writing) or been aborted.
    pub fn write_closed(&self) -> bool {
        self.fin_sent
    }

    /// Waits until everything written has been acknowledged by the peer.
    pub async fn drain(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut core = self.net.core();
            let s = core.sockets.get_mut::<tcp::Socket>(self.handle);
            if s.send_queue() == 0 {
                return Poll::Ready(Ok(()));
            }
            if s.state() == tcp::State::Closed {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            s.register_send_waker(cx.waker());
            Poll::Pending
        })
        .await
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut core = this.net.core();
        let s = core.sockets.get_mut::<tcp::Socket>(this.handle);
        if s.can_recv() {
            return match s.recv_slice(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    used(
                        &this.net,
                        &mut core,
                        &mut this.ranked,
                        this.flow,
                        this.handle,
                        n,
                    );
                    Poll::Ready(Ok(()))
                }
                Err(e) => Poll::Ready(Err(io::Error::other(e.to_string()))),
            };
        }
        match s.state() {
            tcp::State::CloseWait
            | tcp::State::LastAck
            | tcp::State::Closing
            | tcp::State::TimeWait => Poll::Ready(Ok(())),
            tcp::State::Closed if this.fin_sent => Poll::Ready(Ok(())),
            tcp::State::Closed => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            _ => {
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut core = this.net.core();
        let s = core.sockets.get_mut::<tcp::Socket>(this.handle);
        if s.can_send() {
            return match s.send_slice(buf) {
                Ok(n) => {
                    used(
                        &this.net,
                        &mut core,
                        &mut this.ranked,
                        this.flow,
                        this.handle,
                        n,
                    );
                    Poll::Ready(Ok(n))
                }
                Err(e) => Poll::Ready(Err(io::Error::other(e.to_string()))),
            };
        }
        if this.fin_sent {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        match s.state() {
            tcp::State::Closed => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            tcp::State::Established | tcp::State::CloseWait => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            _ => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes already sit in the socket's send buffer; the shard sends them at the
        // end of this round.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.fin_sent {
            this.net
                .core()
                .sockets
                .get_mut::<tcp::Socket>(this.handle)
                .close();
            this.fin_sent = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let now = self.net.now();
        let mut core = self.net.core();
        let s = core.sockets.get_mut::<tcp::Socket>(self.handle);
        // Closed and forgotten by smoltcp: nothing left to send. Closed with a peer still
        // known means an abort whose RST has not gone out yet: it lingers until it has.
        if s.state() == tcp::State::Closed && s.remote_endpoint().is_none() {
            let s = core.sockets.remove(self.handle);
            core.pool.give(s);
            if let Some(p) = self.port {
                core.ports.remove(&p);
            }
            if let Some(k) = self.flow {
                core.forget_flow(&k);
            }
            core.counters.sockets_reaped += 1;
        } else {
            s.close();
            core.release(self.handle, now, self.port, self.flow);
        }
    }
}
