//! Two more workloads over kernel sockets: **connect/request/close** (a new TCP connection
//! per 1-byte transaction: connections per second) and **bulk** (one stream of 64 KiB writes
//! into a discard server: bytes per second), plus the kernel-side discard server the bulk
//! workload runs against.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::stats::{new_histogram, Errors, Report};

/// Connect, send 1 byte, read it back, close — repeated for `secs` after `warmup`. The
/// client closes with a reset (`SO_LINGER` 0): a graceful close leaves a TIME-WAIT socket
/// per connection on the client for 60 s, and a few thousand connections a second then
/// exhaust its ephemeral ports, so later runs would measure the client's port search
/// rather than the server (rates fell to a twentieth in back-to-back runs).
pub fn run_crr(target: SocketAddr, secs: f64, warmup: f64) -> Result<Report, String> {
    let secs_d = Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid secs {secs}"))?;
    let warm_d =
        Duration::try_from_secs_f64(warmup).map_err(|_| format!("invalid warmup {warmup}"))?;
    let mut hist = new_histogram();
    let mut errors = Errors::default();
    let start = Instant::now();
    let measure_from = start + warm_d;
    let end = measure_from + secs_d;
    let mut transactions = 0u64;
    let mut connected = 0usize;
    while Instant::now() < end {
        let t = Instant::now();
        let r = (|| -> std::io::Result<()> {
            let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
            s.set_nodelay(true)?;
            crate::sys::set_linger_zero(std::os::fd::AsRawFd::as_raw_fd(&s))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(&[0x5a])?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
            if b[0] != 0x5a {
                return Err(std::io::Error::other("echo mismatch"));
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                connected += 1;
                if t >= measure_from {
                    transactions += 1;
                    let _ = hist.record((t.elapsed().as_nanos() as u64).max(1));
                }
            }
            Err(e) => {
                errors.push(format!("connect/request/close: {e}"));
                if errors.count > 100 {
                    break;
                }
            }
        }
    }
    Ok(Report {
        mode: "tcp_crr",
        target,
        conns: 1,
        connected: connected.min(1),
        threads: 1,
        size: 1,
        secs,
        transactions,
        losses: 0,
        errors,
        hist,
    })
}

/// Writes 64 KiB blocks to a discard server for `secs` after `warmup`; `transactions`
/// counts blocks (`size` = 65536), so bytes/s = tps × size.
pub fn run_bulk(target: SocketAddr, secs: f64, warmup: f64) -> Result<Report, String> {
    const BLOCK: usize = 64 * 1024;
    let secs_d = Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid secs {secs}"))?;
    let warm_d =
        Duration::try_from_secs_f64(warmup).map_err(|_| format!("invalid warmup {warmup}"))?;
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5))
        .map_err(|e| format!("connect {target}: {e}"))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let block: Vec<u8> = (0..BLOCK).map(|i| (i % 253) as u8).collect();
    let mut hist = new_histogram();
    let mut errors = Errors::default();
    let start = Instant::now();
    let measure_from = start + warm_d;
    let end = measure_from + secs_d;
    let mut transactions = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        if let Err(e) = s.write_all(&block) {
            errors.push(format!("write: {e}"));
            break;
        }
        if t >= measure_from {
            transactions += 1;
            let _ = hist.record((t.elapsed().as_nanos() as u64).max(1));
        }
    }
    Ok(Report {
        mode: "tcp_bulk",
        target,
        conns: 1,
        connected: 1,
        threads: 1,
        size: BLOCK,
        secs,
        transactions,
        losses: 0,
        errors,
        hist,
    })
}

/// A kernel TCP discard server: a thread per connection reads until EOF. Runs until `stop`.
pub fn discard_server(listener: TcpListener, stop: &AtomicBool) -> std::io::Result<u64> {
    listener.set_nonblocking(true)?;
    let mut accepted = 0;
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((mut s, _)) => {
                accepted += 1;
                let _ = s.set_nonblocking(false);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(accepted)
}

/// [`run_bulk`] over `streams` parallel connections; the reports are summed.
pub fn run_bulk_streams(
    target: SocketAddr,
    secs: f64,
    warmup: f64,
    streams: usize,
) -> Result<Report, String> {
    let handles: Vec<_> = (0..streams.max(1))
        .map(|_| std::thread::spawn(move || run_bulk(target, secs, warmup)))
        .collect();
    let mut total: Option<Report> = None;
    for h in handles {
        let r = h
            .join()
            .map_err(|_| "bulk stream thread panicked".to_string())??;
        match total.as_mut() {
            None => total = Some(r),
            Some(t) => {
                t.transactions += r.transactions;
                t.conns += 1;
                t.connected += r.connected;
                t.threads += 1;
                t.errors.merge(r.errors);
                let _ = t.hist.add(&r.hist);
            }
        }
    }
    total.ok_or_else(|| "no stream".to_string())
}

/// Open-loop TCP request/response at a fixed `rate` (requests per second) over one
/// connection: request k is due at `start + k / rate`, and its latency is measured from
/// that due time, not from when it could be sent — so a stall counts against every
/// request it delayed (no coordinated omission).
/// `sleep` makes the client sleep until each request is due instead of spinning: for a
/// probe that shares its core with other load (it then runs at a real-time priority, and
/// any lateness of its wake-up counts against the latency, the same for every server).
pub fn run_open_loop(
    target: SocketAddr,
    rate: f64,
    size: usize,
    secs: f64,
    warmup: f64,
    sleep: bool,
) -> Result<Report, String> {
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(format!("invalid rate {rate}"));
    }
    let secs_d = Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid secs {secs}"))?;
    let warm_d =
        Duration::try_from_secs_f64(warmup).map_err(|_| format!("invalid warmup {warmup}"))?;
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5))
        .map_err(|e| format!("connect {target}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let req: Vec<u8> = (0..size.max(1)).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; req.len()];
    let mut hist = new_histogram();
    let mut errors = Errors::default();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let measure_from = start + warm_d;
    let end = measure_from + secs_d;
    let mut transactions = 0u64;
    let mut k: u32 = 0;
    loop {
        let due = start + interval * k;
        if due >= end {
            break;
        }
        if sleep {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let r = s.write_all(&req).and_then(|()| s.read_exact(&mut back));
        if let Err(e) = r {
            errors.push(format!("request {k}: {e}"));
            break;
        }
        if back != req {
            errors.push(format!("request {k}: echo mismatch"));
            break;
        }
        if due >= measure_from {
            transactions += 1;
            let _ = hist.record((due.elapsed().as_nanos() as u64).max(1));
        }
        k = k.saturating_add(1);
    }
    Ok(Report {
        mode: "tcp_open_loop",
        target,
        conns: 1,
        connected: 1,
        threads: 1,
        size: req.len(),
        secs,
        transactions,
        losses: 0,
        errors,
        hist,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn crr_and_bulk_against_local_servers() {
        let server = crate::EchoServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let h = std::thread::spawn(move || {
            server.run(
                &crate::EchoOptions {
                    threads: 1,
                    pin: Vec::new(),
                    secs: None,
                },
                &s2,
            )
        });
        let r = run_crr(addr, 0.5, 0.1).unwrap();
        assert!(r.transactions > 10, "{}", r.human());
        assert_eq!(r.errors.count, 0);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let daddr = l.local_addr().unwrap();
        let s3 = stop.clone();
        let d = std::thread::spawn(move || discard_server(l, &s3));
        let b = run_bulk(daddr, 0.5, 0.1).unwrap();
        assert!(b.transactions > 10);
        assert_eq!(b.errors.count, 0);
        stop.store(true, Ordering::Release);
        h.join().unwrap().unwrap();
        assert_eq!(d.join().unwrap().unwrap(), 1);
    }
}
