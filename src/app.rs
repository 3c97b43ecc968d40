//! Turning a validated configuration into a running appliance: open the link in its
//! namespace, build the shard, start the configured services, run until told to stop.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use sixstack_basic::Kind;
use sixstack_drivers::afxdp::{XdpAttachMode, XdpConfig, XdpFilter, XdpLink, ZeroCopy};
use sixstack_drivers::pcap::PcapLink;
use sixstack_drivers::tap::TapLink;
use sixstack_drivers::{netdev, Link};
use sixstack_stack::{Net, Shard, ShardControl, ShardStats, StackConfig};

use crate::config::{Config, DriverKind, Proto, ServiceKind, XdpMode, ZeroCopySetting};

/// Why the appliance could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The link could not be opened.
    #[error("cannot open {ifname}: {reason}")]
    Link {
        /// Interface.
        ifname: String,
        /// Why.
        reason: String,
    },
    /// The stack refused the configuration.
    #[error("stack configuration: {0}")]
    Stack(String),
    /// The shard thread failed.
    #[error("shard: {0}")]
    Shard(String),
}

/// The MAC a TAP-attached stack uses when none is configured (locally administered).
pub const TAP_DEFAULT_MAC: [u8; 6] = [0x02, 0x53, 0x49, 0x58, 0x00, 0x02];

fn stack_config(cfg: &Config, mac: [u8; 6]) -> StackConfig {
    let mut s = StackConfig::new(mac);
    s.ipv4 = cfg.ipv4;
    s.ipv6 = cfg.ipv6.clone();
    s.gateway4 = cfg.gateway4;
    s.gateway6 = cfg.gateway6;
    s.tcp_rx_buffer = *cfg.file.tcp.rx_buffer.get_ref();
    s.tcp_tx_buffer = *cfg.file.tcp.tx_buffer.get_ref();
    s.backlog = *cfg.file.tcp.backlog.get_ref();
    s.seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    s
}

/// Starts the configured services on a shard.
pub fn start_services(net: &Net, cfg: &Config) {
    for svc in &cfg.file.services {
        let kind = match svc.kind {
            ServiceKind::Echo => Kind::Echo,
            ServiceKind::Discard => Kind::Discard,
            ServiceKind::Chargen => Kind::Chargen,
        };
        let port = *svc.port.get_ref();
        if svc.proto != Proto::Udp {
            let n = net.clone();
            net.spawn(async move {
                if let Err(e) = sixstack_basic::serve_tcp(n, kind, port).await {
                    log::error!("tcp {} on port {port} stopped: {e}", kind.name());
                }
            });
        }
        if svc.proto != Proto::Tcp {
            let n = net.clone();
            net.spawn(async move {
                if let Err(e) = sixstack_basic::serve_udp(n, kind, port).await {
                    log::error!("udp {} on port {port} stopped: {e}", kind.name());
                }
            });
        }
    }
}

/// What runs on the shard thread once the link is open.
pub type ShardJob = Box<dyn FnOnce(&Net) + Send>;

/// The stack's view of a finished shard.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// Final counters.
    pub stats: ShardStats,
}

fn run_shard<L: Link>(
    link: L,
    stack: StackConfig,
    job: ShardJob,
    ready: mpsc::Sender<Result<ShardControl, AppError>>,
) -> Result<Finished, AppError> {
    let describe = link.describe();
    let mut shard = match Shard::new(link, stack) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(AppError::Stack(e.to_string())));
            return Err(AppError::Stack(e.to_string()));
        }
    };
    log::info!("shard 0 on {describe}");
    job(&shard.net());
    let _ = ready.send(Ok(shard.control()));
    shard.run().map_err(|e| AppError::Shard(e.to_string()))?;
    Ok(Finished {
        stats: shard.stats(),
    })
}

fn open_and_run(
    cfg: &Config,
    job: ShardJob,
    ready: mpsc::Sender<Result<ShardControl, AppError>>,
) -> Result<Finished, AppError> {
    let ifc = &cfg.file.interface;
    let fail = |reason: String| AppError::Link {
        ifname: ifc.name.clone(),
        reason,
    };
    macro_rules! with_pcap {
        ($link:expr, $stack:expr) => {{
            match &ifc.pcap {
                Some(path) => {
                    let f = std::fs::File::create(path)
                        .map_err(|e| fail(format!("pcap file {path}: {e}")))?;
                    let l = PcapLink::new($link, f).map_err(|e| fail(format!("pcap: {e}")))?;
                    run_shard(l, $stack, job, ready)
                }
                None => run_shard($link, $stack, job, ready),
            }
        }};
    }
    match ifc.driver {
        DriverKind::AfXdp => {
            let mac = match cfg.mac {
                Some(m) => m,
                None => netdev::mac_address(&ifc.name).map_err(|e| fail(e.to_string()))?,
            };
            let stack = stack_config(cfg, mac);
            let (v4, v6) = stack.addresses();
            let mut xc = XdpConfig::new(
                ifc.name.clone(),
                ifc.queue,
                XdpFilter { ipv4: v4, ipv6: v6 },
            );
            xc.attach = match ifc.xdp_mode {
                XdpMode::Auto => XdpAttachMode::Auto,
                XdpMode::Native => XdpAttachMode::Native,
                XdpMode::Generic => XdpAttachMode::Generic,
            };
            xc.zero_copy = match ifc.zero_copy {
                ZeroCopySetting::Auto => ZeroCopy::Auto,
                ZeroCopySetting::Require => ZeroCopy::Require,
                ZeroCopySetting::Off => ZeroCopy::Off,
            };
            let link = XdpLink::open(&xc).map_err(|e| fail(e.to_string()))?;
            with_pcap!(link, stack)
        }
        DriverKind::Tap => {
            let stack = stack_config(cfg, cfg.mac.unwrap_or(TAP_DEFAULT_MAC));
            let link = TapLink::open(&ifc.name, ifc.mtu).map_err(|e| fail(e.to_string()))?;
            with_pcap!(link, stack)
        }
    }
}

/// A running appliance: one shard thread.
#[derive(Debug)]
pub struct Running {
    control: ShardControl,
    thread: std::thread::JoinHandle<Result<Finished, AppError>>,
}

impl Running {
    /// Stops the shard and waits for it.
    pub fn stop(self) -> Result<Finished, AppError> {
        self.control.stop();
        self.join()
    }

    /// Whether the shard thread has ended (by error).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the shard thread.
    pub fn join(self) -> Result<Finished, AppError> {
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(AppError::Shard("the shard thread panicked".into())),
        }
    }
}

/// Opens the link (in the configured namespace), builds the shard, runs `job` on it, and
/// returns once the shard is serving.
pub fn start(cfg: Config, job: ShardJob) -> Result<Running, AppError> {
    let (tx, rx) = mpsc::channel();
    let ns = cfg.file.interface.netns.clone();
    let thread = std::thread::Builder::new()
        .name("shard-0".into())
        .spawn(move || {
            let tx2 = tx.clone();
            let r = match ns {
                Some(ns) => netdev::in_netns(&ns, move || open_and_run(&cfg, job, tx))
                    .map_err(|e| AppError::Link {
                        ifname: format!("namespace {ns}"),
                        reason: e.to_string(),
                    })
                    .and_then(|r| r),
                None => open_and_run(&cfg, job, tx),
            };
            if let Err(e) = &r {
                let _ = tx2.send(Err(AppError::Shard(e.to_string())));
            }
            r
        })
        .map_err(|e| AppError::Shard(e.to_string()))?;
    match rx.recv() {
        Ok(Ok(control)) => Ok(Running { control, thread }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(AppError::Shard(
                "the shard thread ended before it started".into(),
            )),
        },
    }
}

/// Runs the appliance until `stop` is set (SIGINT/SIGTERM in the binary).
pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> Result<Finished, AppError> {
    let services = cfg.clone();
    let running = start(
        cfg,
        Box::new(move |net: &Net| start_services(net, &services)),
    )?;
    while !stop.load(Ordering::Acquire) && !running.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
    }
    running.stop()
}

/// Parses a ping destination.
pub fn parse_dest(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}
