//! The kernel-stack comparison server: an epoll TCP + UDP echo server on
//! one port, built on plain non-blocking kernel sockets.
//!
//! Each worker thread has its own epoll instance holding the shared listener
//! and UDP socket (registered with `EPOLLEXCLUSIVE`, so one worker wakes per
//! event); accepted connections stay on the worker that accepted them.
//! Everything is level-triggered: a connection is watched for `EPOLLIN` until
//! a write would block, then only for `EPOLLOUT` until its backlog drains
//! (backpressure instead of unbounded buffering).
//!
//! UDP is batched like a tuned kernel server: each readiness event drains the
//! socket with `recvmmsg` (up to [`UDP_BATCH`] datagrams a call) and echoes
//! each batch with `sendmmsg`, from buffers preallocated per worker.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sys::{core_for, event_buffer, event_parts, pin_current, set_backlog, Epoll, MmsgBatch};

const TOKEN_LISTENER: u64 = u64::MAX;
const TOKEN_UDP: u64 = u64::MAX - 1;
/// How often the stop flag and deadline are checked.
const STOP_POLL_MS: i32 = 50;
/// Reads per readiness event on one connection before yielding to others.
const READS_PER_EVENT: usize = 16;
/// Datagrams per `recvmmsg` / `sendmmsg` call.
const UDP_BATCH: usize = 64;
/// `recvmmsg` calls per readiness event on the UDP socket before yielding to
/// the TCP connections (level-triggered: leftovers wake us again).
const UDP_BATCHES_PER_EVENT: usize = 4;
/// Payload room per datagram at first: any datagram on a 1500-byte MTU path.
const UDP_SLOT: usize = 2048;
/// Payload room once a longer datagram was seen (it is dropped, see
/// [`EchoServer::echo_udp`]): the largest UDP payload (65507 bytes over IPv4,
/// 65527 over IPv6) fits.
const UDP_SLOT_MAX: usize = 65536;
const BUF_SIZE: usize = 64 * 1024;
const LISTEN_BACKLOG: i32 = 4096;

/// Runtime options of [`EchoServer::run`].
#[derive(Debug, Clone, Default)]
pub struct EchoOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Cores to pin workers to (round robin); empty: no pinning.
    pub pin: Vec<usize>,
    /// Stop after this long, in addition to the stop flag.
    pub secs: Option<f64>,
}

/// Counters reported when the server stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    pub accepted: u64,
    pub tcp_bytes: u64,
    /// UDP datagrams echoed.
    pub udp_datagrams: u64,
    /// Payload bytes of the UDP datagrams echoed.
    pub udp_bytes: u64,
    /// UDP datagrams received but not echoed: the send buffer was full, the
    /// send failed, or the datagram was longer than the receive slot.
    pub udp_dropped: u64,
}

impl EchoStats {
    fn add(&mut self, o: &EchoStats) {
        self.accepted += o.accepted;
        self.tcp_bytes += o.tcp_bytes;
        self.udp_datagrams += o.udp_datagrams;
        self.udp_bytes += o.udp_bytes;
        self.udp_dropped += o.udp_dropped;
    }
}

/// A bound (TCP listener + UDP socket) echo server, not yet running.
#[derive(Debug)]
pub struct EchoServer {
    tcp: TcpListener,
    udp: UdpSocket,
    addr: SocketAddr,
    /// Set once any worker has seen a UDP datagram longer than [`UDP_SLOT`]:
    /// every worker then grows its slots to [`UDP_SLOT_MAX`].
    udp_large: AtomicBool,
}

impl EchoServer {
    /// Binds TCP and UDP on `addr`. With port 0 both get the same ephemeral port.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let attempts = if addr.port() == 0 { 16 } else { 1 };
        let mut last_err = None;
        for _ in 0..attempts {
            let tcp = TcpListener::bind(addr)?;
            let local = tcp.local_addr()?;
            match UdpSocket::bind(local) {
                Ok(udp) => {
                    set_backlog(tcp.as_raw_fd(), LISTEN_BACKLOG)?;
                    tcp.set_nonblocking(true)?;
                    udp.set_nonblocking(true)?;
                    return Ok(Self {
                        tcp,
                        udp,
                        addr: local,
                        udp_large: AtomicBool::new(false),
                    });
                }
                // The ephemeral TCP port is taken for UDP: try another one.
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("bind failed")))
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is set (or `opts.secs` elapse); returns the counters.
    pub fn run(&self, opts: &EchoOptions, stop: &AtomicBool) -> io::Result<EchoStats> {
        let threads = opts.threads.max(1);
        let deadline = match opts.secs {
            Some(s) => Some(
                Instant::now()
                    + Duration::try_from_secs_f64(s).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidInput, format!("invalid secs {s}"))
                    })?,
            ),
            None => None,
        };
        // Multi-threaded: one wake-up per event on the shared sockets.
        let exclusive = if threads > 1 {
            libc::EPOLLEXCLUSIVE as u32
        } else {
            0
        };
        let results: Vec<io::Result<EchoStats>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let core = core_for(&opts.pin, i);
                    std::thread::Builder::new()
                        .name(format!("echo-{i}"))
                        .spawn_scoped(scope, move || {
                            if let Some(core) = core {
                                pin_current(core).map_err(io::Error::other)?;
                            }
                            self.worker(exclusive, stop, deadline)
                        })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("echo worker panicked"))),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        Err(e)
                    }
                })
                .collect()
        });
        let mut total = EchoStats::default();
        for r in results {
            total.add(&r?);
        }
        Ok(total)
    }

    fn worker(
        &self,
        exclusive: u32,
        stop: &AtomicBool,
        deadline: Option<Instant>,
    ) -> io::Result<EchoStats> {
        let r = self.worker_loop(exclusive, stop, deadline);
        if r.is_err() {
            // Bring the other workers down too.
            stop.store(true, Ordering::Relaxed);
        }
        r
    }

    fn worker_loop(
        &self,
        exclusive: u32,
        stop: &AtomicBool,
        deadline: Option<Instant>,
    ) -> io::Result<EchoStats> {
        let ep = Epoll::new()?;
        let ein = libc::EPOLLIN as u32;
        ep.add(self.tcp.as_raw_fd(), ein | exclusive, TOKEN_LISTENER)?;
        ep.add(self.udp.as_raw_fd(), ein | exclusive, TOKEN_UDP)?;
        let mut conns: HashMap<u64, EchoConn> = HashMap::new();
        let mut stats = EchoStats::default();
        let mut buf = vec![0u8; BUF_SIZE];
        let mut udp = UdpEcho {
            batch: MmsgBatch::new(UDP_BATCH, UDP_SLOT),
            out: Vec::with_capacity(UDP_BATCH),
            large: false,
        };
        let mut events = event_buffer(256);
        loop {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(stats);
            }
            let n = ep.wait(&mut events, STOP_POLL_MS)?;
            for ev in &events[..n] {
                let (token, bits) = event_parts(ev);
                match token {
                    TOKEN_LISTENER => self.accept_all(&ep, &mut conns, &mut stats)?,
                    TOKEN_UDP => self.echo_udp(&mut udp, &mut stats),
                    _ => {
                        let keep = match conns.get_mut(&token) {
                            Some(c) => c.on_event(&ep, token, bits, &mut buf, &mut stats),
                            None => continue,
                        };
                        if !keep {
                            // Dropping the stream closes it, which also removes
                            // it from the epoll set.
                            conns.remove(&token);
                        }
                    }
                }
            }
        }
    }

    fn accept_all(
        &self,
        ep: &Epoll,
        conns: &mut HashMap<u64, EchoConn>,
        stats: &mut EchoStats,
    ) -> io::Result<()> {
        loop {
            match self.tcp.accept() {
                Ok((stream, _peer)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let fd = stream.as_raw_fd();
                    let token = fd as u64;
                    ep.add(fd, libc::EPOLLIN as u32, token)?;
                    conns.insert(
                        token,
                        EchoConn {
                            stream,
                            pending: Vec::new(),
                            pending_off: 0,
                        },
                    );
                    stats.accepted += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Transient per-connection failures (ECONNABORTED, EMFILE, ...):
                // try again on the next readiness event.
                Err(_) => return Ok(()),
            }
        }
    }

    /// Drains the UDP socket in `recvmmsg` batches and echoes each batch.
    ///
    /// A datagram longer than the current slot arrives truncated: it is
    /// dropped (an echo must be byte-exact) and the slots of every worker
    /// grow to [`UDP_SLOT_MAX`] so later ones fit. Small datagrams keep the
    /// compact 2 KiB slots; a run of large ones loses about one datagram
    /// per server (a few if workers race), not one per worker.
    fn echo_udp(&self, u: &mut UdpEcho, stats: &mut EchoStats) {
        if !u.large && self.udp_large.load(Ordering::Relaxed) {
            u.batch.set_slot_size(UDP_SLOT_MAX);
            u.large = true;
        }
        for _ in 0..UDP_BATCHES_PER_EVENT {
            let n = match u.batch.recv(&self.udp) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // EINTR, or an error queued on the socket by an earlier send:
                // it is consumed by this call, try again.
                Err(_) => continue,
            };
            u.out.clear();
            let mut grow = false;
            for i in 0..n {
                if u.batch.truncated(i) {
                    stats.udp_dropped += 1;
                    grow = true;
                } else {
                    u.out.push(i);
                }
            }
            self.send_batch(u, stats);
            if grow {
                u.batch.set_slot_size(UDP_SLOT_MAX);
                u.large = true;
                self.udp_large.store(true, Ordering::Relaxed);
            }
            if n < u.batch.capacity() {
                // Drained (level-triggered: more data will wake us again).
                return;
            }
        }
    }

    /// Echoes the datagrams in `u.out` with `sendmmsg`, resending the
    /// remainder after a partial send.
    ///
    /// Drop policy: when the send buffer is full (`EAGAIN`) the rest of the
    /// batch is dropped and counted in `udp_dropped`, as a congested network
    /// would drop it, rather than stalling this worker (and its TCP
    /// connections) on writability; the kernel server did the same before
    /// batching. A datagram whose send fails otherwise is dropped alone.
    fn send_batch(&self, u: &mut UdpEcho, stats: &mut EchoStats) {
        let mut off = 0;
        while off < u.out.len() {
            match u.batch.send_back(&self.udp, &u.out[off..]) {
                Ok(k) if k > 0 => {
                    let k = k.min(u.out.len() - off);
                    for &i in &u.out[off..off + k] {
                        stats.udp_datagrams += 1;
                        stats.udp_bytes += u.batch.len(i) as u64;
                    }
                    off += k;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                    stats.udp_dropped += 1;
                    off += 1;
                }
                // Full send buffer (or nothing sent): drop the rest.
                _ => {
                    stats.udp_dropped += (u.out.len() - off) as u64;
                    return;
                }
            }
        }
    }
}

/// Per-worker UDP batch state: the `recvmmsg`/`sendmmsg` buffers and the
/// slots of the current batch to echo (both preallocated).
#[derive(Debug)]
struct UdpEcho {
    batch: MmsgBatch,
    out: Vec<usize>,
    /// The slots have grown to [`UDP_SLOT_MAX`].
    large: bool,
}

/// One accepted TCP connection.
#[derive(Debug)]
struct EchoConn {
    stream: TcpStream,
    /// Bytes read but not yet echoed (only while the socket is not writable).
    pending: Vec<u8>,
    pending_off: usize,
}

impl EchoConn {
    /// Handles readiness; returns false when the connection should be closed.
    fn on_event(
        &mut self,
        ep: &Epoll,
        token: u64,
        bits: u32,
        buf: &mut [u8],
        stats: &mut EchoStats,
    ) -> bool {
        let fd = self.stream.as_raw_fd();
        if self.pending_off < self.pending.len() {
            match self.flush(stats) {
                Ok(true) => {
                    if ep.modify(fd, libc::EPOLLIN as u32, token).is_err() {
                        return false;
                    }
                }
                Ok(false) => return true,
                Err(_) => return false,
            }
        } else if bits & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 == 0 {
            return true;
        }
        for _ in 0..READS_PER_EVENT {
            let n = match (&self.stream).read(buf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            let mut off = 0;
            while off < n {
                match (&self.stream).write(&buf[off..n]) {
                    Ok(0) => return false,
                    Ok(w) => {
                        off += w;
                        stats.tcp_bytes += w as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            if off < n {
                // Socket full: keep the rest and wait for writability only.
                self.pending.clear();
                self.pending.extend_from_slice(&buf[off..n]);
                self.pending_off = 0;
                return ep.modify(fd, libc::EPOLLOUT as u32, token).is_ok();
            }
            if n < buf.len() {
                // Drained (level-triggered: more data will wake us again).
                return true;
            }
        }
        true
    }

    /// Writes pending bytes; Ok(true) once all are out.
    fn flush(&mut self, stats: &mut EchoStats) -> io::Result<bool> {
        while self.pending_off < self.pending.len() {
            match (&self.stream).write(&self.pending[self.pending_off..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(w) => {
                    self.pending_off += w;
                    stats.tcp_bytes += w as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.pending_off = 0;
        Ok(true)
    }
}
