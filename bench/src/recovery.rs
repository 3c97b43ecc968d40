//! Recovery under loss: how fast one TCP transfer goes when the sender's frames are lost,
//! sixstack against the Linux kernel on the same emulated path.
//!
//! * **sixstack**: two shards in one thread over the in-memory pipe, the sender's link
//!   wrapped in the fault link (seeded loss or deterministic bursts on the data direction,
//!   the same delay and rate both ways), run on virtual time: the figures are the protocol
//!   engine's own, free of this machine's noise, and the same on every run.
//! * **kernel**: two network namespaces joined by a veth pair, a kernel socket sending to a
//!   kernel socket; the same rate both ways (tbf), the same loss of the sender's segments
//!   (an nftables rule dropping at random), the same delay where the kernel has netem (a
//!   path with delay needs it); wall time, the median of several runs.
//!
//! Both move `size` bytes one way over a connection already established (the handshake,
//! and on the pipe the first address resolution, are not timed) and stop when the
//! receiver has read them all and said so. Goodput is bytes over that time; the ratio to
//! the same stack's loss-free goodput is what the loss cost it.

use std::cell::Cell;
use std::io::{Read, Write};
use std::process::Command;
use std::rc::Rc;

use sixstack_drivers::fault::{BurstLoss, FaultConfig, FaultDirection, FaultLink, FaultStats};
use sixstack_drivers::pipe;
use sixstack_stack::smoltcp::time::{Duration, Instant};
use sixstack_stack::{IpAddress, Shard, StackConfig, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Virtual seconds after which a transfer on the pipe is called stalled.
pub const VIRTUAL_LIMIT_S: u64 = 120;

/// The emulated path: one-way delay and bottleneck rate, both directions.
#[derive(Debug, Clone, Copy)]
pub struct Path {
    /// One-way delay, milliseconds.
    pub delay_ms: f64,
    /// Bottleneck rate, megabits per second.
    pub rate_mbit: f64,
}

/// What happens to the sender's frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Each frame is lost with this probability.
    Random(f64),
    /// `length` consecutive frames lost every `every` frames.
    Burst { every: u64, length: u64 },
}

/// One finished transfer.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Seconds from the established connection's first byte to the receiver's
    /// confirmation.
    pub secs: f64,
    /// Bytes per second of payload, as megabits.
    pub goodput_mbit: f64,
    /// Frames the path dropped on the data direction (sixstack: counted by the fault
    /// link; kernel: not known, 0).
    pub dropped: u64,
    /// Segments the sender retransmitted (kernel: its counter; sixstack: not counted, 0).
    pub retransmits: u64,
}

/// The virtual times the connection was established and the transfer confirmed, or why
/// it failed.
type Outcome = Result<(Instant, Instant), String>;

fn shard_config(host: u8, buffer: usize) -> StackConfig {
    let mut c = StackConfig::new([0x02, 0, 0, 0, 0, host]);
    c.ipv4 = Some((std::net::Ipv4Addr::new(10, 0, 0, host), 24));
    c.seed = u64::from(host) * 7919;
    c.tcp_rx_buffer = buffer;
    c.tcp_tx_buffer = buffer;
    c
}

/// `size` bytes from shard A to shard B over the pipe, A's outgoing frames hurt by
/// `loss`, on virtual time. `buffer`: each socket's buffers (the window).
pub fn sixstack_transfer(
    path: Path,
    loss: Loss,
    size: usize,
    buffer: usize,
    seed: u64,
) -> Result<Transfer, String> {
    let mut data = FaultDirection {
        delay_ms: path.delay_ms,
        rate_mbit: Some(path.rate_mbit),
        queue_limit: 100_000,
        ..FaultDirection::default()
    };
    let acks = data;
    match loss {
        Loss::Random(p) => data.loss = p,
        Loss::Burst { every, length } => data.burst_loss = Some(BurstLoss { every, length }),
    }
    let (la, lb) = pipe::pair(4096, 1500);
    let config = FaultConfig {
        seed,
        rx: acks,
        tx: data,
    };
    let la = FaultLink::new(la, config).map_err(|e| e.to_string())?;
    let mut a = Shard::new(la, shard_config(1, buffer)).map_err(|e| e.to_string())?;
    let mut b = Shard::new(lb, shard_config(2, buffer)).map_err(|e| e.to_string())?;

    let nb = b.net();
    let listener = TcpListener::bind(&nb, 9).map_err(|e| e.to_string())?;
    nb.spawn(async move {
        // Reads everything, then confirms with one byte.
        if let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            let _ = s.write_all(b"k").await;
            let _ = s.shutdown().await;
        }
    });
    let na = a.net();
    let done: Rc<Cell<Option<Outcome>>> = Rc::new(Cell::new(None));
    let d2 = done.clone();
    let na2 = na.clone();
    na.spawn(async move {
        let r: std::io::Result<(Instant, Instant)> = async {
            let mut s = TcpStream::connect(&na2, (IpAddress::v4(10, 0, 0, 2), 9)).await?;
            let t0 = na2.now();
            let chunk = vec![0x5au8; 64 * 1024];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                s.write_all(&chunk[..n]).await?;
                left -= n;
            }
            s.shutdown().await?;
            let mut k = [0u8; 1];
            s.read_exact(&mut k).await?;
            Ok((t0, na2.now()))
        }
        .await;
        d2.set(Some(r.map_err(|e| e.to_string())));
    });

    let start = Instant::from_secs(1_000);
    let limit = Duration::from_secs(VIRTUAL_LIMIT_S);
    let mut now = start;
    let (began, finished) = loop {
        let wa = a.poll_at(now);
        let wb = b.poll_at(now);
        if let Some(r) = done.take() {
            break r?;
        }
        if now > start + limit {
            let s = a.link().fault_stats();
            return Err(format!(
                "{} lost of {} sent, {} ACKs back",
                s.tx.lost + s.tx.burst_lost,
                s.tx.frames,
                s.rx.frames
            ));
        }
        let soon = [wa, wb, a.link().next_release()]
            .into_iter()
            .flatten()
            .min();
        now = match soon {
            Some(t) if t > now => t.min(now + Duration::from_millis(1)),
            _ => now + Duration::from_micros(10),
        };
    };
    let secs = (finished - began).total_micros() as f64 / 1e6;
    let stats: FaultStats = a.link().fault_stats();
    Ok(Transfer {
        secs,
        goodput_mbit: size as f64 * 8.0 / secs / 1e6,
        dropped: stats.tx.lost + stats.tx.burst_lost,
        retransmits: 0,
    })
}

/// Two namespaces joined by a veth pair with netem on both ends; removed on drop.
#[derive(Debug)]
pub struct KernelPath {
    ns: [String; 2],
}

impl KernelPath {
    /// Creates the namespaces and the link, with `path` both ways.
    pub fn new(path: Path) -> Result<KernelPath, String> {
        let tag = std::process::id() % 100_000;
        let kp = KernelPath {
            ns: [format!("sixrec-a-{tag}"), format!("sixrec-b-{tag}")],
        };
        let [a, b] = &kp.ns;
        let (va, vb) = (format!("srca{tag}"), format!("srcb{tag}"));
        run(&["ip", "netns", "add", a])?;
        run(&["ip", "netns", "add", b])?;
        run(&[
            "ip", "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b,
        ])?;
        for (ns, dev, addr) in [(a, &va, "10.199.0.1/24"), (b, &vb, "10.199.0.2/24")] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])?;
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            // With segmentation offloads a dropped packet would be 64 KiB of segments.
            run(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro",
                "off",
            ])?;
        }
        kp.set_loss(path, 0.0)?;
        Ok(kp)
    }

    fn dev(&self, i: usize) -> String {
        let tag = std::process::id() % 100_000;
        format!("{}{tag}", ["srca", "srcb"][i])
    }

    /// Sets the path on both ends (netem with a delay, else tbf) and `loss` of the sender's
    /// (a's) segments to the receiver's port (dropped as they reach b).
    pub fn set_loss(&self, path: Path, loss: f64) -> Result<(), String> {
        for i in 0..2 {
            let (ns, dev) = (&self.ns[i], self.dev(i));
            let rate = format!("{}mbit", path.rate_mbit);
            let mut tc = vec![
                "ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", &dev,
            ];
            let delay = format!("{}ms", path.delay_ms);
            if path.delay_ms > 0.0 {
                tc.extend([
                    "root", "netem", "delay", &delay, "rate", &rate, "limit", "100000",
                ]);
            } else {
                tc.extend([
                    "root", "tbf", "rate", &rate, "burst", "256kb", "latency", "100ms",
                ]);
            }
            run(&tc)?;
        }
        // Dropped on arrival at the receiver: a drop in the sender's own output path would
        // be reported back to its TCP, which resends at once (no loss on the path).
        let b = &self.ns[1];
        let _ = run(&[
            "ip", "netns", "exec", b, "nft", "delete", "table", "ip", "sixrec",
        ]);
        if loss > 0.0 {
            let per_million = ((loss * 1e6).round() as u64).to_string();
            run(&[
                "ip", "netns", "exec", b, "nft", "add", "table", "ip", "sixrec",
            ])?;
            run(&[
                "ip",
                "netns",
                "exec",
                b,
                "nft",
                "add",
                "chain",
                "ip",
                "sixrec",
                "in",
                "{ type filter hook prerouting priority -300; }",
            ])?;
            run(&[
                "ip",
                "netns",
                "exec",
                b,
                "nft",
                "add",
                "rule",
                "ip",
                "sixrec",
                "in",
                "tcp",
                "dport",
                "9",
                "numgen",
                "random",
                "mod",
                "1000000",
                "<",
                &per_million,
                "drop",
            ])?;
        }
        Ok(())
    }

    /// `size` bytes from a to b over kernel sockets.
    pub fn transfer(&self, size: usize) -> Result<Transfer, String> {
        let (a, b) = (self.ns[0].clone(), self.ns[1].clone());
        let listener =
            sixstack_drivers::netdev::in_netns(&b, || std::net::TcpListener::bind("10.199.0.2:9"))
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        let receiver = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut s, _) = listener.accept()?;
            let mut buf = vec![0u8; 64 * 1024];
            while s.read(&mut buf)? > 0 {}
            s.write_all(b"k")
        });
        let before = retransmits(&a);
        let secs = sixstack_drivers::netdev::in_netns(&a, move || -> std::io::Result<f64> {
            let mut s = std::net::TcpStream::connect("10.199.0.2:9")?;
            let t = std::time::Instant::now();
            let chunk = vec![0x5au8; 64 * 1024];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                s.write_all(&chunk[..n])?;
                left -= n;
            }
            s.shutdown(std::net::Shutdown::Write)?;
            let mut k = [0u8; 1];
            s.read_exact(&mut k)?;
            Ok(t.elapsed().as_secs_f64())
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        receiver
            .join()
            .map_err(|_| "the receiver panicked".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(Transfer {
            secs,
            goodput_mbit: size as f64 * 8.0 / secs / 1e6,
            dropped: 0,
            retransmits: retransmits(&a).saturating_sub(before),
        })
    }
}

impl Drop for KernelPath {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// The kernel's count of retransmitted segments in namespace `ns`.
fn retransmits(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output();
    let Ok(out) = out else { return 0 };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RetransSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The median of `xs` (0 for none).
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
