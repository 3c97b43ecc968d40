//! Closed-loop request/response load generators over kernel sockets.
//!
//! * TCP: N connections over T threads; each connection writes `size` bytes,
//!   waits for the same bytes to be echoed back, verifies them and repeats.
//!   A thread that owns exactly one connection uses a plain blocking loop,
//!   otherwise non-blocking sockets multiplexed with edge-triggered epoll.
//! * UDP: one outstanding datagram at a time; no reply within the timeout
//!   counts as a loss.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::stats::{new_histogram, Errors, Report};
use crate::sys::{core_for, event_buffer, event_parts, pin_current, Epoll};

/// Above this request size a lone connection still uses the epoll loop, so a
/// large echo can never deadlock a blocking write against a full receive buffer.
const BLOCKING_MAX_SIZE: usize = 16 * 1024;
/// Socket timeout in blocking mode: how often the deadline is re-checked.
const BLOCKING_POLL: Duration = Duration::from_millis(20);
/// Longest epoll wait between deadline checks.
const EPOLL_MAX_WAIT_MS: u128 = 10;

/// TCP request/response parameters.
#[derive(Debug, Clone)]
pub struct RrConfig {
    pub target: SocketAddr,
    pub conns: usize,
    pub size: usize,
    /// Measured duration, seconds.
    pub secs: f64,
    /// Unrecorded warmup before the measured interval, seconds.
    pub warmup: f64,
    pub threads: usize,
    /// Cores to pin worker threads to (round robin); empty: no pinning.
    pub pin: Vec<usize>,
    pub connect_timeout: Duration,
}

impl RrConfig {
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            conns: 1,
            size: 1,
            secs: 5.0,
            warmup: 1.0,
            threads: 1,
            pin: Vec::new(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// UDP request/response parameters.
#[derive(Debug, Clone)]
pub struct UdpRrConfig {
    pub target: SocketAddr,
    pub size: usize,
    pub secs: f64,
    pub warmup: f64,
    /// A datagram with no reply after this long is counted as lost.
    pub timeout: Duration,
    pub pin: Option<usize>,
}

impl UdpRrConfig {
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            size: 64,
            secs: 5.0,
            warmup: 1.0,
            timeout: Duration::from_millis(200),
            pin: None,
        }
    }
}

fn secs_duration(what: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("invalid {what}: {s}"))
}

/// The time frame of a run: transactions completing in `[warm_end, end]` count.
#[derive(Debug, Clone, Copy)]
struct Window {
    warm_end: Instant,
    end: Instant,
}

impl Window {
    fn starting_now(warmup: Duration, secs: Duration) -> Self {
        let warm_end = Instant::now() + warmup;
        Self {
            warm_end,
            end: warm_end + secs,
        }
    }

    fn measured(&self, t: Instant) -> bool {
        t >= self.warm_end && t <= self.end
    }
}

/// Start line for the worker threads: the clock starts once every worker
/// has set up its connections.
#[derive(Debug, Default)]
struct StartGate {
    /// (workers arrived, gate open)
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl StartGate {
    fn lock(&self) -> MutexGuard<'_, (usize, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn arrive_and_wait(&self) {
        let mut g = self.lock();
        g.0 += 1;
        self.cv.notify_all();
        while !g.1 {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open_when_arrived(&self, n: usize) {
        let mut g = self.lock();
        while g.0 < n {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.1 = true;
        self.cv.notify_all();
    }
}

/// Per-thread accumulators.
#[derive(Debug)]
struct Tally {
    hist: Histogram<u64>,
    transactions: u64,
    connected: usize,
    errors: Errors,
}

impl Tally {
    fn new() -> Self {
        Self {
            hist: new_histogram(),
            transactions: 0,
            connected: 0,
            errors: Errors::default(),
        }
    }

    fn record(&mut self, win: &Window, started: Instant, done: Instant) {
        if win.measured(done) {
            let ns = done.duration_since(started).as_nanos();
            self.hist
                .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
            self.transactions += 1;
        }
    }
}

/// Fills a request so that every transaction (and connection) carries different bytes.
fn fill_pattern(buf: &mut [u8], seq: u64) {
    let base = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = base.wrapping_add(i as u8);
    }
}

fn first_mismatch(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One TCP connection and its in-flight transaction.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    written: usize,
    read: usize,
    seq: u64,
    started: Instant,
}

impl Conn {
    fn new(stream: TcpStream, size: usize, id: u64) -> Self {
        Self {
            stream,
            wbuf: vec![0; size],
            rbuf: vec![0; size],
            written: 0,
            read: 0,
            seq: id << 40,
            started: Instant::now(),
        }
    }

    fn start(&mut self, now: Instant) {
        self.seq = self.seq.wrapping_add(1);
        fill_pattern(&mut self.wbuf, self.seq);
        self.written = 0;
        self.read = 0;
        self.started = now;
    }

    /// Drives the transaction state machine until the socket would block (or
    /// a read/write timed out in blocking mode) or the run is over.
    fn progress(&mut self, win: &Window, tally: &mut Tally) -> Result<(), String> {
        let size = self.wbuf.len();
        loop {
            let mut moved = false;
            if self.written < size {
                match (&self.stream).write(&self.wbuf[self.written..]) {
                    Ok(0) => return Err("write returned 0".into()),
                    Ok(n) => {
                        self.written += n;
                        moved = true;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            if self.read < self.written {
                match (&self.stream).read(&mut self.rbuf[self.read..self.written]) {
                    Ok(0) => return Err("connection closed by peer".into()),
                    Ok(n) => {
                        self.read += n;
                        moved = true;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            if self.read == size {
                let now = Instant::now();
                if self.rbuf != self.wbuf {
                    let at = first_mismatch(&self.rbuf, &self.wbuf);
                    return Err(format!(
                        "echo mismatch at byte {at} of {size}: sent {:#04x}, got {:#04x}",
                        self.wbuf[at], self.rbuf[at]
                    ));
                }
                tally.record(win, self.started, now);
                if now >= win.end {
                    return Ok(());
                }
                self.start(now);
                continue;
            }
            if !moved {
                return Ok(());
            }
        }
    }
}

fn connect(cfg: &RrConfig) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&cfg.target, cfg.connect_timeout)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Runs a TCP request/response benchmark and returns its report.
///
/// Connection failures, resets and byte mismatches do not abort the run;
/// they are counted in `report.errors` (see [`Report::ok`]).
pub fn run_tcp_rr(cfg: &RrConfig) -> Result<Report, String> {
    if cfg.conns == 0 || cfg.size == 0 || cfg.threads == 0 {
        return Err("conns, size and threads must be at least 1".into());
    }
    let secs = secs_duration("secs", cfg.secs)?;
    let warmup = secs_duration("warmup", cfg.warmup)?;
    let threads = cfg.threads.min(cfg.conns);
    let gate = StartGate::default();

    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = cfg.conns / threads + usize::from(t < cfg.conns % threads);
                let gate = &gate;
                std::thread::Builder::new()
                    .name(format!("rr-{t}"))
                    .spawn_scoped(scope, move || tcp_worker(cfg, t, n, gate, warmup, secs))
            })
            .collect();
        gate.open_when_arrived(handles.iter().filter(|h| h.is_ok()).count());
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    let mut t = Tally::new();
                    t.errors.push("worker thread panicked");
                    t
                }),
                Err(e) => {
                    let mut t = Tally::new();
                    t.errors.push(format!("spawn: {e}"));
                    t
                }
            })
            .collect()
    });

    let mut report = Report {
        mode: "tcp_rr",
        target: cfg.target,
        conns: cfg.conns,
        connected: 0,
        threads,
        size: cfg.size,
        secs: cfg.secs,
        transactions: 0,
        losses: 0,
        errors: Errors::default(),
        hist: new_histogram(),
    };
    for t in tallies {
        report.connected += t.connected;
        report.transactions += t.transactions;
        report.errors.merge(t.errors);
        report
            .hist
            .add(&t.hist)
            .map_err(|e| format!("histogram merge: {e:?}"))?;
    }
    Ok(report)
}

fn tcp_worker(
    cfg: &RrConfig,
    index: usize,
    nconns: usize,
    gate: &StartGate,
    warmup: Duration,
    secs: Duration,
) -> Tally {
    let mut tally = Tally::new();
    let mut conns = Vec::with_capacity(nconns);
    let pinned = match core_for(&cfg.pin, index) {
        Some(core) => pin_current(core),
        None => Ok(()),
    };
    match pinned {
        Ok(()) => {
            for k in 0..nconns {
                match connect(cfg) {
                    Ok(s) => conns.push(Conn::new(s, cfg.size, ((index as u64) << 20) | k as u64)),
                    Err(e) => tally.errors.push(format!("connect {}: {e}", cfg.target)),
                }
            }
        }
        Err(e) => {
            for _ in 0..nconns {
                tally.errors.push(e.clone());
            }
        }
    }
    // Everyone starts the clock together, once all connections are up.
    gate.arrive_and_wait();
    tally.connected = conns.len();
    if conns.is_empty() {
        return tally;
    }
    let win = Window::starting_now(warmup, secs);
    if conns.len() == 1 && cfg.size <= BLOCKING_MAX_SIZE {
        if let Some(c) = conns.pop() {
            run_blocking(c, &win, &mut tally);
        }
    } else if let Err(e) = run_epoll(conns, &win, &mut tally) {
        tally.errors.push(format!("epoll: {e}"));
    }
    tally
}

fn run_blocking(mut c: Conn, win: &Window, tally: &mut Tally) {
    let setup = c
        .stream
        .set_read_timeout(Some(BLOCKING_POLL))
        .and_then(|()| c.stream.set_write_timeout(Some(BLOCKING_POLL)));
    if let Err(e) = setup {
        tally.errors.push(format!("socket timeout: {e}"));
        return;
    }
    c.start(Instant::now());
    loop {
        if let Err(e) = c.progress(win, tally) {
            tally.errors.push(e);
            return;
        }
        if Instant::now() >= win.end {
            return;
        }
    }
}

fn run_epoll(conns: Vec<Conn>, win: &Window, tally: &mut Tally) -> io::Result<()> {
    let ep = Epoll::new()?;
    let mut slots: Vec<Option<Conn>> = Vec::with_capacity(conns.len());
    for (i, c) in conns.into_iter().enumerate() {
        c.stream.set_nonblocking(true)?;
        let ev = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        ep.add(c.stream.as_raw_fd(), ev, i as u64)?;
        slots.push(Some(c));
    }
    let mut alive = slots.len();
    let now = Instant::now();
    for slot in slots.iter_mut() {
        if let Some(c) = slot {
            c.start(now);
            if let Err(e) = c.progress(win, tally) {
                tally.errors.push(e);
                *slot = None;
                alive -= 1;
            }
        }
    }
    let mut events = event_buffer(slots.len().min(1024));
    while alive > 0 {
        let now = Instant::now();
        if now >= win.end {
            break;
        }
        let rem_us = win.end.duration_since(now).as_micros();
        let timeout = rem_us.div_ceil(1000).min(EPOLL_MAX_WAIT_MS) as i32;
        let n = ep.wait(&mut events, timeout)?;
        for ev in &events[..n] {
            let (token, _bits) = event_parts(ev);
            let Some(slot) = slots.get_mut(token as usize) else {
                continue;
            };
            if let Some(c) = slot {
                // Edge-triggered: progress() runs until both directions would
                // block, so errors and hang-ups surface as read/write errors.
                if let Err(e) = c.progress(win, tally) {
                    tally.errors.push(e);
                    *slot = None;
                    alive -= 1;
                }
            }
        }
    }
    Ok(())
}

/// Runs a UDP request/response benchmark (one datagram in flight).
///
/// Timeouts are counted as losses; a reply with the right sequence number
/// but wrong bytes, or a socket error (e.g. ICMP port unreachable), is an error.
/// A socket error ends the run.
pub fn run_udp_rr(cfg: &UdpRrConfig) -> Result<Report, String> {
    if cfg.size == 0 || cfg.size > 65_507 {
        return Err(format!("invalid UDP size {} (1..=65507)", cfg.size));
    }
    if cfg.timeout.is_zero() {
        return Err("timeout must be positive".into());
    }
    let secs = secs_duration("secs", cfg.secs)?;
    let warmup = secs_duration("warmup", cfg.warmup)?;
    if let Some(core) = cfg.pin {
        pin_current(core)?;
    }
    let local: SocketAddr = match cfg.target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).map_err(|e| format!("udp bind: {e}"))?;
    sock.connect(cfg.target)
        .map_err(|e| format!("udp connect {}: {e}", cfg.target))?;
    sock.set_read_timeout(Some(cfg.timeout))
        .map_err(|e| format!("udp timeout: {e}"))?;

    let mut report = Report {
        mode: "udp_rr",
        target: cfg.target,
        conns: 1,
        connected: 1,
        threads: 1,
        size: cfg.size,
        secs: cfg.secs,
        transactions: 0,
        losses: 0,
        errors: Errors::default(),
        hist: new_histogram(),
    };
    let size = cfg.size;
    let hdr = size.min(8);
    let mut wbuf = vec![0u8; size];
    let mut rbuf = vec![0u8; 65_536];
    let mut seq: u64 = 0;
    let mut short_timeout = false;
    let win = Window::starting_now(warmup, secs);

    'run: while Instant::now() < win.end {
        seq = seq.wrapping_add(1);
        fill_pattern(&mut wbuf, seq);
        wbuf[..hdr].copy_from_slice(&seq.to_le_bytes()[..hdr]);
        if short_timeout {
            let _ = sock.set_read_timeout(Some(cfg.timeout));
            short_timeout = false;
        }
        let sent = Instant::now();
        let in_window = win.measured(sent) && sent < win.end;
        loop {
            match sock.send(&wbuf) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    report.errors.push(format!("udp send: {e}"));
                    break 'run;
                }
            }
        }
        let deadline = sent + cfg.timeout;
        loop {
            match sock.recv(&mut rbuf) {
                Ok(n) if n >= hdr && rbuf[..hdr] == wbuf[..hdr] => {
                    let now = Instant::now();
                    if rbuf[..n] != wbuf[..] {
                        let at = first_mismatch(&rbuf[..n], &wbuf);
                        report.errors.push(format!(
                            "udp echo mismatch: {n} bytes back for {size}, first difference at byte {at}"
                        ));
                    } else if win.measured(now) {
                        let ns = now.duration_since(sent).as_nanos();
                        report
                            .hist
                            .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
                        report.transactions += 1;
                    }
                    break;
                }
                Ok(_) => {
                    // A late reply to an earlier (lost) datagram: keep waiting.
                    let now = Instant::now();
                    if now >= deadline {
                        if in_window {
                            report.losses += 1;
                        }
                        break;
                    }
                    let _ = sock.set_read_timeout(Some(deadline - now));
                    short_timeout = true;
                }
                Err(e) if would_block(&e) => {
                    if in_window {
                        report.losses += 1;
                    }
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    report.errors.push(format!("udp recv: {e}"));
                    break 'run;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pattern_differs_between_transactions() {
        let mut a = [0u8; 4];
        let mut b = [0u8; 4];
        fill_pattern(&mut a, 1);
        fill_pattern(&mut b, 2);
        assert_ne!(a, b);
        assert_eq!(first_mismatch(&[1, 2, 3], &[1, 9, 3]), 1);
        assert_eq!(first_mismatch(&[1, 2], &[1, 2, 3]), 2);
    }

    #[test]
    fn rejects_bad_config() {
        let mut cfg = RrConfig::new("127.0.0.1:9".parse().unwrap());
        cfg.conns = 0;
        assert!(run_tcp_rr(&cfg).is_err());
        let mut u = UdpRrConfig::new("127.0.0.1:9".parse().unwrap());
        u.size = 0;
        assert!(run_udp_rr(&u).is_err());
        u.size = 1;
        u.secs = -1.0;
        assert!(run_udp_rr(&u).is_err());
    }
}
