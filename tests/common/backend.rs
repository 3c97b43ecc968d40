//! Kernel backends for the proxy tests: each greets a connection with a line naming it,
//! then echoes until end of file; and the client side that counts where connections went.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::in_ns;

/// A kernel backend: answers each connection with `b<id>\n`, then echoes until EOF.
pub struct KernelBackend {
    stop: Arc<AtomicBool>,
    pub addr: SocketAddr,
}

impl KernelBackend {
    /// One backend per port at `ip` in `ns`, greeting `b1`, `b2`, ... in port order.
    pub fn start_all(ns: &str, ip: std::net::IpAddr, ports: &[u16]) -> Vec<KernelBackend> {
        ports
            .iter()
            .enumerate()
            .map(|(i, &p)| KernelBackend::start(ns, SocketAddr::new(ip, p), i as u8 + 1))
            .collect()
    }

    pub fn start(ns: &str, addr: SocketAddr, id: u8) -> KernelBackend {
        KernelBackend::start_with(ns, addr, format!("b{id}\n"))
    }

    /// A backend that greets with `greeting` (a sick one answers something else).
    pub fn start_with(ns: &str, addr: SocketAddr, greeting: String) -> KernelBackend {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        in_ns(ns, move || {
            let l = TcpListener::bind(addr).unwrap();
            l.set_nonblocking(true).unwrap();
            // Threads created here stay in the namespace.
            std::thread::spawn(move || {
                while !s2.load(Ordering::Acquire) {
                    match l.accept() {
                        Ok((mut c, _)) => {
                            c.set_nonblocking(false).unwrap();
                            let greeting = greeting.clone();
                            std::thread::spawn(move || {
                                let _ = c.write_all(greeting.as_bytes());
                                let mut r = c.try_clone().unwrap();
                                let _ = std::io::copy(&mut r, &mut c);
                                let _ = c.shutdown(std::net::Shutdown::Write);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
        });
        KernelBackend { stop, addr }
    }
}

impl Drop for KernelBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One connection through the proxy: the id of the backend that answered.
pub fn which(to: SocketAddr) -> Option<u8> {
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).ok()?;
    let id: String = line
        .trim()
        .strip_prefix('b')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    id.parse().ok()
}

pub fn distribution(ns: &str, to: SocketAddr, n: usize) -> [usize; 3] {
    let v = spread(ns, to, n, 3);
    [v[0], v[1], v[2]]
}

/// `n` connections through the proxy at `to`, one after the other: how many each of `k`
/// backends (ids 1..=k) answered.
pub fn spread(ns: &str, to: SocketAddr, n: usize, k: usize) -> Vec<usize> {
    in_ns(ns, move || {
        let mut c = vec![0usize; k];
        for _ in 0..n {
            let id = which(to).expect("a connection through the proxy");
            c[usize::from(id) - 1] += 1;
        }
        c
    })
}

/// Waits (up to 20 s) until `ok` holds.
pub fn wait_for(mut ok: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            std::time::Instant::now() < end,
            "condition not reached in 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
