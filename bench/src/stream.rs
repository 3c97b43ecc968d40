//! Two more workloads over kernel sockets: **connect/request/close** (a new TCP connection
//! per 1-byte transaction: connections per second) and **bulk** (one stream of 64 KiB writes
//! into a discard server: bytes per second), plus the kernel-side discard server the bulk
//! workload runs against.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::stats::{new_histogram, Errors, Report};

/// Connect, send 1 byte, read it back, close — repeated for `secs` after `warmup`.
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
