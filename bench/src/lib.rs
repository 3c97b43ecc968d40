//! sixstack-bench: load generators and the kernel-stack comparison server.
//!
//! Everything here uses plain kernel sockets (std + libc epoll), so the same
//! tools can drive either sixstack or the Linux TCP/IP stack on a veth link.
//!
//! * [`rr::run_tcp_rr`]: closed-loop TCP request/response.
//! * [`rr::run_udp_rr`]: UDP request/response, one datagram in flight.
//! * [`echo_server::EchoServer`]: epoll TCP + UDP echo on one port.
//! * [`ftp::run_ftp`]: parallel curl FTP transfers (RETR, STOR; plain or FTPS).
//! * [`recovery`]: one transfer under loss, sixstack on virtual time against the kernel
//!   under netem.

pub mod ceiling;
pub mod echo_server;
pub mod ftp;
pub mod harness;
pub mod recovery;
pub mod rr;
pub mod stats;
pub mod stream;
mod sys;
pub mod tls;

use std::net::{SocketAddr, ToSocketAddrs};

pub use echo_server::{EchoOptions, EchoServer, EchoStats};
pub use rr::{run_tcp_rr, run_udp_rr, RrConfig, UdpRrConfig};
pub use stats::Report;
pub use stream::{discard_server, run_bulk, run_bulk_streams, run_crr, run_open_loop};
pub use tls::{run_tls_bulk, run_tls_handshakes};

/// Resolves `ADDR:PORT` (`10.0.0.2:7`, `[fd77::2]:7`, `localhost:7`) to one address.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr:?} resolves to no address"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, UdpSocket};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// An echo server on 127.0.0.1:<ephemeral> in a background thread.
    struct TestServer {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        handle: Option<JoinHandle<std::io::Result<EchoStats>>>,
    }

    impl TestServer {
        fn start(threads: usize) -> Self {
            let server = EchoServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = server.local_addr();
            assert_ne!(addr.port(), 0);
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let handle = std::thread::spawn(move || {
                let opts = EchoOptions {
                    threads,
                    pin: Vec::new(),
                    secs: Some(10.0),
                };
                server.run(&opts, &flag)
            });
            Self {
                addr,
                stop,
                handle: Some(handle),
            }
        }

        fn finish(mut self) -> EchoStats {
            self.stop.store(true, Ordering::Relaxed);
            self.handle.take().unwrap().join().unwrap().unwrap()
        }
    }

    fn tcp_cfg(addr: SocketAddr, conns: usize, threads: usize, size: usize) -> RrConfig {
        let mut cfg = RrConfig::new(addr);
        cfg.conns = conns;
        cfg.threads = threads;
        cfg.size = size;
        cfg.secs = 0.5;
        cfg.warmup = 0.1;
        cfg
    }

    fn assert_clean(r: &Report) {
        assert!(r.ok(), "errors: {:?}", r.errors);
        assert!(r.transactions > 0, "{}", r.human());
        assert_eq!(r.hist.len(), r.transactions);
        let l = r.latency();
        assert!(l.p50 > 0.0 && l.p50 <= l.p99 && l.p99 <= l.max);
    }

    #[test]
    fn resolve_forms() {
        assert_eq!(
            resolve("[fd77::2]:7").unwrap(),
            "[fd77::2]:7".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(resolve("10.0.0.2:7").unwrap().port(), 7);
        assert!(resolve("localhost:7").is_ok());
        assert!(resolve("no-port").is_err());
    }

    #[test]
    fn tcp_rr_one_connection_blocking() {
        let srv = TestServer::start(1);
        let r = run_tcp_rr(&tcp_cfg(srv.addr, 1, 1, 1)).unwrap();
        assert_clean(&r);
        assert_eq!(r.connected, 1);
        let stats = srv.finish();
        assert_eq!(stats.accepted, 1);
        assert!(stats.tcp_bytes >= r.transactions);
    }

    #[test]
    fn tcp_rr_fifty_connections_epoll() {
        let srv = TestServer::start(2);
        let r = run_tcp_rr(&tcp_cfg(srv.addr, 50, 2, 100)).unwrap();
        assert_clean(&r);
        assert_eq!(r.connected, 50);
        assert_eq!(r.threads, 2);
        assert!(r.json().contains("\"connected\":50,"));
        assert_eq!(srv.finish().accepted, 50);
    }

    #[test]
    fn tcp_rr_large_messages() {
        // 256 KiB requests: partial writes/reads and server-side backpressure.
        let srv = TestServer::start(1);
        let mut cfg = tcp_cfg(srv.addr, 2, 1, 256 * 1024);
        cfg.secs = 0.3;
        cfg.warmup = 0.0;
        let r = run_tcp_rr(&cfg).unwrap();
        assert_clean(&r);
        srv.finish();
    }

    #[test]
    fn udp_rr_against_echo() {
        let srv = TestServer::start(1);
        let mut cfg = UdpRrConfig::new(srv.addr);
        cfg.secs = 0.5;
        cfg.warmup = 0.1;
        let r = run_udp_rr(&cfg).unwrap();
        assert_clean(&r);
        assert_eq!(r.losses, 0);
        assert!(r.human().contains("losses: 0"));
        let stats = srv.finish();
        assert!(stats.udp_datagrams >= r.transactions);
    }

    #[test]
    fn udp_rr_counts_losses() {
        // Receives but never answers.
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut cfg = UdpRrConfig::new(sink.local_addr().unwrap());
        cfg.secs = 0.3;
        cfg.warmup = 0.0;
        cfg.timeout = Duration::from_millis(50);
        let r = run_udp_rr(&cfg).unwrap();
        assert!(r.ok());
        assert_eq!(r.transactions, 0);
        assert!(r.losses >= 3, "losses {}", r.losses);
    }

    #[test]
    fn tcp_rr_detects_corrupted_echo() {
        // A bad echo server that flips the bits of every byte.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    buf[..n].iter_mut().for_each(|b| *b = !*b);
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        });
        let mut cfg = tcp_cfg(addr, 1, 1, 8);
        cfg.secs = 0.2;
        cfg.warmup = 0.0;
        let r = run_tcp_rr(&cfg).unwrap();
        assert!(!r.ok());
        assert_eq!(r.errors.count, 1);
        assert!(r.errors.msgs[0].contains("mismatch"), "{:?}", r.errors.msgs);
    }

    #[test]
    fn tcp_rr_connection_refused_is_an_error() {
        // Bind then drop: nothing listens on this port any more.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = tcp_cfg(SocketAddr::from(([127, 0, 0, 1], port)), 3, 1, 1);
        cfg.secs = 0.1;
        cfg.warmup = 0.0;
        let r = run_tcp_rr(&cfg).unwrap();
        assert_eq!(r.connected, 0);
        assert_eq!(r.errors.count, 3);
        assert_eq!(r.transactions, 0);
    }

    #[test]
    fn echo_server_over_ipv6_loopback() {
        // Skipped where the host has no IPv6 loopback.
        let Ok(server) = EchoServer::bind("[::1]:0".parse().unwrap()) else {
            return;
        };
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let h = std::thread::spawn(move || {
            server.run(
                &EchoOptions {
                    threads: 1,
                    ..Default::default()
                },
                &flag,
            )
        });
        let mut cfg = tcp_cfg(addr, 4, 1, 32);
        cfg.secs = 0.2;
        cfg.warmup = 0.0;
        let r = run_tcp_rr(&cfg).unwrap();
        assert_clean(&r);
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap().unwrap();
    }
}
