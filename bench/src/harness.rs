//! `sixstack-bench run` and `report`: the same workloads against the Linux kernel's stack
//! and against sixstack (AF_XDP and TAP) on the lab link, in one session, interleaved
//! (round by round: kernel, sixstack-xdp, sixstack-tap, ...), every server pinned to the
//! same core and every client to another, with CPU accounting for each run. `report` turns
//! the raw runs into medians, ratios against the kernel, a Markdown table and an SVG chart.
//! The proxy workloads compare sixstack's proxy listener with HAProxy instead ([`proxy`]),
//! the FTP workloads sixstack's FTP server with vsftpd ([`ftp`]).

mod ftp;
mod mix;
mod proxy;

pub use mix::{render_mix_markdown, run_mix, MixPlan};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The Linux kernel's stack: `sixstack-bench kernel-echo` in the appliance namespace.
    Kernel,
    /// The same kernel server on a veth lab with every offload on (GSO/GRO, checksums):
    /// the kernel's best case, which an XSK link cannot use.
    KernelOffloads,
    /// sixstack over AF_XDP on the veth lab.
    Xdp,
    /// sixstack over TAP.
    Tap,
    /// The kernel server on the jumbo-frame lab (MTU 9000, offloads off); bulk only.
    KernelJumbo,
    /// sixstack over multi-buffer AF_XDP on the jumbo-frame lab; bulk only.
    XdpJumbo,
    /// `openssl s_server` on the kernel's stack (the veth lab, the kernel server's address
    /// and core); TLS workloads only.
    KernelOpenssl,
    /// sixstack's `[[proxy]]` listeners, in the same appliance as [`Server::Xdp`], in front
    /// of the bench's backends; proxy workloads only.
    SixstackProxy,
    /// HAProxy on the kernel's stack in the appliance namespace, core 1, in front of the same
    /// backends; proxy workloads only.
    Haproxy,
    /// No proxy: the client talks to one backend itself (the baseline of the added
    /// latency); proxy workloads only.
    Direct,
    /// sixstack's `[ftp]` server, in the same appliance as [`Server::Xdp`]; FTP workloads
    /// only.
    SixstackFtp,
    /// vsftpd on the kernel's stack in the appliance namespace, core 1; FTP workloads only.
    Vsftpd,
}

/// Where the TLS workloads' certificates live (ECDSA P-256, for every TLS server).
pub const BENCH_TLS_DIR: &str = "/run/sixstack/bench-tls";
const BENCH_TLS_CA: &str = "/run/sixstack/bench-tls/ca.pem";

impl Server {
    /// Name used in results.
    pub fn name(self) -> &'static str {
        match self {
            Server::Kernel => "kernel",
            Server::KernelOffloads => "kernel-offloads",
            Server::Xdp => "sixstack-xdp",
            Server::Tap => "sixstack-tap",
            Server::KernelJumbo => "kernel-jumbo",
            Server::XdpJumbo => "sixstack-xdp-jumbo",
            Server::KernelOpenssl => "kernel-openssl",
            Server::SixstackProxy => "sixstack-proxy",
            Server::Haproxy => "haproxy",
            Server::Direct => "direct",
            Server::SixstackFtp => "sixstack-ftp",
            Server::Vsftpd => "vsftpd",
        }
    }

    /// Whether the server runs `workload`: the jumbo-frame servers only move bulk data, the
    /// TLS workloads run against sixstack over AF_XDP and `openssl s_server` only, the proxy
    /// workloads against the two proxies and the direct baseline only, the FTP workloads
    /// against the two FTP servers only.
    pub fn runs(self, workload: &Workload) -> bool {
        let (tls, proxied, ftp) = (workload.is_tls(), workload.is_proxy(), workload.is_ftp());
        match self {
            Server::SixstackProxy | Server::Haproxy | Server::Direct => proxied,
            Server::SixstackFtp | Server::Vsftpd => ftp,
            _ if proxied || ftp => false,
            Server::KernelJumbo | Server::XdpJumbo => workload.port == 9,
            Server::KernelOpenssl => tls,
            Server::Xdp => true,
            Server::Kernel | Server::KernelOffloads | Server::Tap => !tls,
        }
    }

    /// Whether the server is one of the proxy comparison's (needs the backends).
    fn is_proxy_side(self) -> bool {
        matches!(
            self,
            Server::SixstackProxy | Server::Haproxy | Server::Direct
        )
    }

    /// The `ADDR:PORT` the client drives for `workload`.
    fn target_for(self, workload: &Workload) -> String {
        match self {
            Server::Direct => format!(
                "{}:{}",
                proxy::BACKEND_ADDR,
                proxy::direct_port(workload.port)
            ),
            _ => format!("{}:{}", self.target(), workload.port),
        }
    }

    fn target(self) -> &'static str {
        match self {
            Server::Kernel => "10.77.0.3",
            Server::KernelOffloads => "10.79.0.3",
            Server::Xdp => "10.77.0.2",
            Server::Tap => "10.78.0.2",
            Server::KernelJumbo => "10.80.0.3",
            Server::XdpJumbo => "10.80.0.2",
            Server::KernelOpenssl => "10.77.0.3",
            Server::SixstackProxy => "10.77.0.2",
            Server::Haproxy => proxy::HAPROXY_ADDR,
            Server::Direct => proxy::BACKEND_ADDR,
            Server::SixstackFtp => "10.77.0.2",
            Server::Vsftpd => ftp::VSFTPD_ADDR,
        }
    }

    /// Whether the server is one of the FTP comparison's.
    fn is_ftp_side(self) -> bool {
        matches!(self, Server::SixstackFtp | Server::Vsftpd)
    }

    fn client_ns(self) -> &'static str {
        match self {
            Server::Tap => "sixtap",
            Server::KernelOffloads => "sixkpeer",
            Server::KernelJumbo | Server::XdpJumbo => "sixjpeer",
            _ => "sixpeer",
        }
    }
}

/// One workload: the client subcommand and its arguments (the target is added).
#[derive(Debug, Clone)]
pub struct Workload {
    /// Name in results.
    pub name: &'static str,
    /// Client arguments.
    pub args: Vec<&'static str>,
    /// Server port: 7 (echo), 9 (discard), 7443 (TLS discard), the proxies' 8007 (echo
    /// backends) and 8009 (discard backends), or FTP's 21.
    pub port: u16,
}

impl Workload {
    /// Whether it is one of the TLS workloads (run against sixstack and OpenSSL only).
    pub fn is_tls(&self) -> bool {
        self.name.starts_with("tls_")
    }

    /// Whether it is one of the proxy workloads (run through the two proxies and directly
    /// against a backend only).
    pub fn is_proxy(&self) -> bool {
        self.name.starts_with("proxy_")
    }

    /// Whether it is one of the FTP workloads (run against sixstack's FTP server and vsftpd
    /// only).
    pub fn is_ftp(&self) -> bool {
        self.name.starts_with("ftp_")
    }
}

/// The standard workloads; `all` adds the slow ones (10 000 idle connections).
pub fn workloads(all: bool) -> Vec<Workload> {
    let mut w = vec![
        Workload {
            name: "tcp_rr_1B_1conn",
            args: vec!["rr", "--size", "1", "--conns", "1"],
            port: 7,
        },
        Workload {
            name: "tcp_rr_1B_10conn",
            args: vec!["rr", "--size", "1", "--conns", "10"],
            port: 7,
        },
        Workload {
            name: "tcp_rr_1B_100conn",
            args: vec!["rr", "--size", "1", "--conns", "100"],
            port: 7,
        },
        Workload {
            name: "tcp_rr_1B_1000conn",
            args: vec!["rr", "--size", "1", "--conns", "1000"],
            port: 7,
        },
        Workload {
            name: "tcp_rr_1KB_100conn",
            args: vec!["rr", "--size", "1024", "--conns", "100"],
            port: 7,
        },
        Workload {
            name: "udp_rr_64B",
            args: vec!["udp-rr", "--size", "64"],
            port: 7,
        },
        Workload {
            name: "udp_rr_1KB",
            args: vec!["udp-rr", "--size", "1024"],
            port: 7,
        },
        Workload {
            name: "tcp_connect_request_close",
            args: vec!["crr"],
            port: 7,
        },
        Workload {
            name: "tcp_bulk_1stream",
            args: vec!["bulk"],
            port: 9,
        },
        Workload {
            name: "tcp_bulk_4streams",
            args: vec!["bulk", "--streams", "4"],
            port: 9,
        },
        Workload {
            name: "tls_handshake_full",
            args: vec!["tls-hs", "--ca", BENCH_TLS_CA],
            port: 7443,
        },
        Workload {
            name: "tls_handshake_resumed",
            args: vec!["tls-hs", "--resume", "--ca", BENCH_TLS_CA],
            port: 7443,
        },
        Workload {
            name: "tls_handshake_full_tls12",
            args: vec!["tls-hs", "--tls12", "--ca", BENCH_TLS_CA],
            port: 7443,
        },
        Workload {
            name: "tls_handshake_resumed_tls12",
            args: vec!["tls-hs", "--tls12", "--resume", "--ca", BENCH_TLS_CA],
            port: 7443,
        },
        Workload {
            name: "tls_bulk_1stream",
            args: vec!["tls-bulk", "--ca", BENCH_TLS_CA],
            port: 7443,
        },
        Workload {
            name: "tcp_rr_1B_1conn_open_loop_10k",
            args: vec!["open-loop", "--rate", "10000"],
            port: 7,
        },
        Workload {
            name: "proxy_connect_request_close",
            args: vec!["crr"],
            port: proxy::ECHO_PORT,
        },
        Workload {
            name: "proxy_rr_1B_1conn",
            args: vec!["rr", "--size", "1", "--conns", "1"],
            port: proxy::ECHO_PORT,
        },
        Workload {
            name: "proxy_bulk_1stream",
            args: vec!["bulk"],
            port: proxy::DISCARD_PORT,
        },
    ];
    for (name, args) in [
        ("ftp_retr_1stream", vec!["ftp", "--op", "retr"]),
        ("ftp_stor_1stream", vec!["ftp", "--op", "stor"]),
        (
            "ftp_retr_4streams",
            vec!["ftp", "--op", "retr", "--streams", "4"],
        ),
        (
            "ftp_retr_16streams",
            vec!["ftp", "--op", "retr", "--streams", "16"],
        ),
        ("ftp_retr_1stream_tls", vec!["ftp", "--op", "retr"]),
        ("ftp_stor_1stream_tls", vec!["ftp", "--op", "stor"]),
        (
            "ftp_retr_4streams_tls",
            vec!["ftp", "--op", "retr", "--streams", "4"],
        ),
        (
            "ftp_retr_16streams_tls",
            vec!["ftp", "--op", "retr", "--streams", "16"],
        ),
    ] {
        w.push(Workload {
            name,
            args,
            port: ftp::PORT,
        });
    }
    if all {
        w.push(Workload {
            name: "tcp_rr_1B_10k_idle",
            args: vec!["rr", "--size", "1", "--conns", "1", "--idle", "10000"],
            port: 7,
        });
    }
    w
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `sixstack` binary.
    pub sixstack: PathBuf,
    /// This binary (clients and the kernel server are run as subprocesses of it).
    pub me: PathBuf,
    /// Rounds per workload and server.
    pub rounds: usize,
    /// Measured seconds per run.
    pub secs: f64,
    /// Warmup seconds per run.
    pub warmup: f64,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Servers.
    pub servers: Vec<Server>,
    /// Where to write the raw results (JSON).
    pub out: PathBuf,
    /// The size of every file the FTP workloads move, MiB (default: 256 with one stream,
    /// 64 with several).
    pub ftp_mib: Option<u64>,
}

fn sh(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// CPU seconds (user + system) a process and its threads used so far.
fn proc_cpu(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the state.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    100.0
}

/// Softirq seconds spent on `core` so far (/proc/stat), where the kernel does its
/// receive work for the frames the pinned server takes.
fn softirq(core: usize) -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let tag = format!("cpu{core} ");
    s.lines()
        .find(|l| l.starts_with(&tag))
        .and_then(|l| l.split_whitespace().nth(7))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |t| t / clock_ticks())
}

/// Non-idle seconds of `core` so far (/proc/stat: user, nice, system, irq, softirq, steal):
/// everything the core did for whatever ran on it, each tick counted once (with tick-based
/// accounting a softirq tick is charged to both the running task and the softirq counter).
fn core_busy(core: usize) -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let tag = format!("cpu{core} ");
    s.lines()
        .find(|l| l.starts_with(&tag))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .enumerate()
                // Skip idle (3) and iowait (4).
                .filter(|(i, _)| *i != 3 && *i != 4)
                .filter_map(|(_, v)| v.parse::<f64>().ok())
                .sum::<f64>()
        })
        .map_or(0.0, |t| t / clock_ticks())
}

/// Busy seconds of every shard, from a running appliance's control socket.
fn shard_busy(sixstack: &Path, socket: &str) -> f64 {
    let Ok(out) = sh(Command::new(sixstack).args(["stats", "--json", "--socket", socket])) else {
        return 0.0;
    };
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| {
            v["shards"].as_array().map(|a| {
                a.iter()
                    .map(|s| s["busy_ns"].as_f64().unwrap_or(0.0))
                    .sum::<f64>()
                    / 1e9
            })
        })
        .unwrap_or(0.0)
}

struct Running {
    child: Child,
    socket: Option<String>,
}

/// Starts a kernel-stack peer server in the appliance namespace pinned to core 1 (`argv`
/// then `config`), its standard error in a log named after `name`; a server that exits at
/// once (a bad option, a busy address) is an error quoting that log.
fn start_pinned_peer(name: &str, argv: &[&str], config: &Path) -> Result<Running, String> {
    let log_path = std::env::temp_dir().join(format!("sixstack-bench-{name}.log"));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let child = Command::new("ip")
        .args(["netns", "exec", "sixapp", "taskset", "-c", "1"])
        .args(argv)
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{name} (apt-get install {name}): {e}"))?;
    let mut r = Running {
        child,
        socket: None,
    };
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(Some(status)) = r.child.try_wait() {
        let why = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(format!("{name} exited ({status}): {}", why.trim()));
    }
    Ok(r)
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM: the appliance drains and removes its XDP program.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `config` to `cfg` and runs the appliance on it until its control socket
/// `socket` appears; its warnings go to a log beside the configuration, quoted if it does
/// not start.
fn start_appliance(
    sixstack: &Path,
    cfg: &Path,
    config: &str,
    socket: &str,
) -> Result<Running, String> {
    std::fs::write(cfg, config).map_err(|e| format!("{}: {e}", cfg.display()))?;
    let log_path = cfg.with_extension("log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let child = Command::new(sixstack)
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("sixstack run: {e}"))?;
    let mut r = Running {
        child,
        socket: Some(socket.to_string()),
    };
    let t = Instant::now();
    while !Path::new(socket).exists() {
        let exited = matches!(r.child.try_wait(), Ok(Some(_)));
        if exited || t.elapsed() > Duration::from_secs(20) {
            let why = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("did not start: {}", why.trim()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(r)
}

/// The labs and servers of one session; everything is removed when dropped.
struct Session {
    sixstack: PathBuf,
    /// The server processes: one appliance serves both `sixstack-xdp` and `sixstack-proxy`.
    procs: Vec<Running>,
    /// Each server of the plan with its process in `procs` (none for the direct baseline).
    servers: Vec<(Server, Option<usize>)>,
    /// The proxies' backends, stopped after the proxies.
    backends: Vec<Running>,
    /// Whether the FTP servers' directory was made (removed with the session).
    ftp_root: bool,
    labs: Vec<&'static str>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.servers.clear();
        self.procs.clear();
        self.backends.clear();
        if self.ftp_root {
            let _ = std::fs::remove_dir_all(ftp::ROOT);
        }
        for lab in &self.labs {
            let mut c = Command::new(&self.sixstack);
            c.args(["lab", "down"]);
            if *lab == "tap" {
                c.arg("--tap");
            }
            if *lab == "offloads" {
                c.arg("--kernel-offloads");
            }
            if *lab == "jumbo" {
                c.arg("--jumbo");
            }
            let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

/// Receive buffer (the window) of the sixstack discard service, which the bulk workloads
/// drive: 128 KiB at MTU 1500, 256 KiB with jumbo frames; the echo service keeps the
/// default 64 KiB, as short connections want. Measured on the lab veth (1 and 4 streams,
/// 64 KiB to 1 MiB): a larger window only overflows the veth's 256-frame queue in front of
/// the XDP program (the peer's `tx dropped` climbs), and smoltcp, without SACK, recovers
/// slowly; a smaller one leaves a jumbo stream window-bound.
const fn bulk_buffer(server: Server) -> usize {
    match server {
        Server::XdpJumbo => 256 << 10,
        _ => 128 << 10,
    }
}

/// The appliance's configuration as `server`; `tls` adds the TLS discard service, `proxy`
/// the proxy listeners in front of the bench's backends, `ftp` the FTP server.
fn appliance_config(server: Server, socket: &str, tls: bool, proxy: bool, ftp: bool) -> String {
    let (name, driver, ns, addr) = match server {
        Server::Tap => ("sixtap0", "tap", "sixtap", "10.78.0.2"),
        Server::XdpJumbo => ("sixj0", "af_xdp", "sixjapp", "10.80.0.2"),
        _ => ("six0", "af_xdp", "sixapp", "10.77.0.2"),
    };
    let buf = bulk_buffer(server);
    let tls = if tls {
        format!(
            "[tls]\ncert = \"{BENCH_TLS_DIR}/server.pem\"\nkey = \"{BENCH_TLS_DIR}/server.key\"\n\n\
             [[service]]\nkind = \"tls-discard\"\nport = 7443\nrx_buffer = {buf}\n\n"
        )
    } else {
        String::new()
    };
    let mut proxy = if proxy {
        proxy::appliance_section()
    } else {
        String::new()
    };
    if ftp {
        proxy.push_str(&ftp::appliance_section());
    }
    format!(
        "[interface]\nname = \"{name}\"\ndriver = \"{driver}\"\nnetns = \"{ns}\"\ncores = [1]\n\n\
         [addresses]\nipv4 = \"{addr}/24\"\n\n[tcp]\nbacklog = 512\n\n\
         [control]\nsocket = \"{socket}\"\n\n{tls}\
         [[service]]\nkind = \"echo\"\nport = 7\n\n[[service]]\nkind = \"discard\"\nport = 9\nproto = \"tcp\"\nrx_buffer = {buf}\n{proxy}"
    )
}

fn start_labs(plan: &Plan) -> Result<Session, String> {
    let mut session = Session {
        sixstack: plan.sixstack.clone(),
        procs: Vec::new(),
        servers: Vec::new(),
        backends: Vec::new(),
        ftp_root: false,
        labs: Vec::new(),
    };
    let veth = plan.servers.iter().any(|s| {
        matches!(s, Server::Kernel | Server::Xdp | Server::KernelOpenssl)
            || s.is_proxy_side()
            || s.is_ftp_side()
    });
    if plan.servers.contains(&Server::KernelOffloads) {
        let _ = sh(Command::new(&plan.sixstack).args(["lab", "down", "--kernel-offloads"]));
        sh(Command::new(&plan.sixstack).args(["lab", "up", "--kernel-offloads"]))?;
        session.labs.push("offloads");
    }
    if plan
        .servers
        .iter()
        .any(|s| matches!(s, Server::KernelJumbo | Server::XdpJumbo))
    {
        let _ = sh(Command::new(&plan.sixstack).args(["lab", "down", "--jumbo"]));
        sh(Command::new(&plan.sixstack).args(["lab", "up", "--jumbo"]))?;
        session.labs.push("jumbo");
    }
    let tls = plan.workloads.iter().any(Workload::is_tls);
    if (tls
        && plan
            .servers
            .iter()
            .any(|s| matches!(s, Server::Xdp | Server::KernelOpenssl)))
        || (ftp_tls(plan) && plan.servers.iter().any(|s| s.is_ftp_side()))
    {
        // Fresh material each session: the same ECDSA P-256 certificate for every server.
        let _ = std::fs::remove_dir_all(BENCH_TLS_DIR);
        sh(Command::new(&plan.sixstack).args([
            "cert",
            "selfsigned",
            "--dir",
            BENCH_TLS_DIR,
            "--name",
            "10.77.0.2",
            "--name",
            "10.77.0.3",
        ]))?;
    }
    let tap = plan.servers.contains(&Server::Tap);
    if veth {
        let _ = sh(Command::new(&plan.sixstack).args(["lab", "down"]));
        // One queue: one shard on one core, the same as the kernel server gets.
        sh(Command::new(&plan.sixstack).args(["lab", "up", "--queues", "1"]))?;
        session.labs.push("veth");
    }
    if tap {
        let _ = sh(Command::new(&plan.sixstack).args(["lab", "down", "--tap"]));
        sh(Command::new(&plan.sixstack).args(["lab", "up", "--tap"]))?;
        session.labs.push("tap");
    }
    Ok(session)
}

/// Whether the plan has an FTP workload over FTPS.
fn ftp_tls(plan: &Plan) -> bool {
    plan.workloads.iter().any(|w| w.is_ftp() && ftp::is_tls(w))
}

fn start_servers(plan: &Plan, session: &mut Session) -> Result<(), String> {
    let proxied = plan.workloads.iter().any(Workload::is_proxy);
    if proxied && plan.servers.iter().any(|s| s.is_proxy_side()) {
        session.backends = proxy::start_backends(plan)?;
    }
    let ftp = plan.workloads.iter().any(Workload::is_ftp);
    if ftp && plan.servers.iter().any(|s| s.is_ftp_side()) {
        session.ftp_root = true;
        ftp::prepare(plan)?;
    }
    // The appliance's index in `procs`: `sixstack-xdp` and `sixstack-proxy` share it.
    let mut appliance = None;
    for &server in &plan.servers {
        let running = match server {
            Server::Direct => {
                session.servers.push((server, None));
                continue;
            }
            Server::Haproxy if !proxied => continue,
            Server::Vsftpd if !ftp => continue,
            Server::Xdp | Server::SixstackProxy | Server::SixstackFtp if appliance.is_some() => {
                session.servers.push((server, appliance));
                continue;
            }
            Server::Haproxy => proxy::start_haproxy()?,
            Server::Vsftpd => ftp::start_vsftpd(ftp_tls(plan))?,
            Server::Kernel | Server::KernelOffloads | Server::KernelJumbo => {
                let (ns, listen) = match server {
                    Server::Kernel => ("sixapp", "10.77.0.3:7"),
                    Server::KernelOffloads => ("sixkapp", "10.79.0.3:7"),
                    _ => ("sixjapp", "10.80.0.3:7"),
                };
                let child = Command::new("ip")
                    .args(["netns", "exec", ns])
                    .arg(&plan.me)
                    .args([
                        "kernel-echo",
                        "--listen",
                        listen,
                        "--discard",
                        "9",
                        "--pin",
                        "1",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("kernel-echo: {e}"))?;
                Running {
                    child,
                    socket: None,
                }
            }
            Server::KernelOpenssl => {
                // stdin stays open (never written): s_server ends a connection when its
                // stdin reaches end of file.
                let child = Command::new("ip")
                    .args(["netns", "exec", "sixapp", "taskset", "-c", "1", "openssl"])
                    .args(["s_server", "-quiet", "-accept", "10.77.0.3:7443"])
                    .args(["-cert", &format!("{BENCH_TLS_DIR}/server.pem")])
                    .args(["-key", &format!("{BENCH_TLS_DIR}/server.key")])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("openssl s_server: {e}"))?;
                Running {
                    child,
                    socket: None,
                }
            }
            Server::Xdp
            | Server::SixstackProxy
            | Server::SixstackFtp
            | Server::Tap
            | Server::XdpJumbo => {
                let app = if matches!(server, Server::SixstackProxy | Server::SixstackFtp) {
                    Server::Xdp
                } else {
                    server
                };
                let socket = format!("/run/sixstack/bench-{}.sock", app.name());
                let cfg = std::env::temp_dir().join(format!("sixstack-bench-{}.toml", app.name()));
                let with_ftp =
                    app == Server::Xdp && ftp && plan.servers.contains(&Server::SixstackFtp);
                let tls = app == Server::Xdp
                    && (plan.workloads.iter().any(Workload::is_tls) || with_ftp && ftp_tls(plan));
                let with_proxy =
                    app == Server::Xdp && proxied && plan.servers.contains(&Server::SixstackProxy);
                let config = appliance_config(app, &socket, tls, with_proxy, with_ftp);
                start_appliance(&plan.sixstack, &cfg, &config, &socket)
                    .map_err(|e| format!("{}: {e}", app.name()))?
            }
        };
        session.procs.push(running);
        let i = session.procs.len() - 1;
        if matches!(
            server,
            Server::Xdp | Server::SixstackProxy | Server::SixstackFtp
        ) {
            appliance = Some(i);
        }
        session.servers.push((server, Some(i)));
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

/// Runs every workload against every server, `rounds` times, interleaved; writes the raw
/// results to `plan.out` and returns them.
pub fn run(plan: &Plan) -> Result<Value, String> {
    let mut session = start_labs(plan)?;
    // The link's own limit, measured before any server holds the queue.
    let mut ceiling = json!(null);
    if plan.servers.contains(&Server::Xdp) {
        let mut c = serde_json::Map::new();
        for len in [64usize, 1514] {
            let r = crate::ceiling::measure(&crate::ceiling::CeilingPlan {
                tx_ns: "sixpeer".into(),
                tx_if: "six0p".into(),
                rx_ns: "sixapp".into(),
                rx_if: "six0".into(),
                dst: std::net::Ipv4Addr::new(10, 77, 0, 9),
                frame_len: len,
                secs: plan.secs,
            });
            match r {
                Ok(r) => {
                    eprintln!(
                        "XSK->XSK ceiling, {len}-byte frames: {:.0}/s received",
                        r.received_per_s
                    );
                    c.insert(format!("frames{len}_per_s"), json!(r.received_per_s));
                }
                Err(e) => {
                    eprintln!("XSK->XSK ceiling, {len}-byte frames: {e}");
                    c.insert(format!("frames{len}_error"), json!(e));
                }
            }
            // Let the queue be bound again (a closed XSK can answer EBUSY for a moment).
            std::thread::sleep(Duration::from_millis(500));
        }
        ceiling = Value::Object(c);
    }
    start_servers(plan, &mut session)?;
    let mut runs = Vec::new();
    let secs = plan.secs.to_string();
    let warmup = plan.warmup.to_string();
    for round in 0..plan.rounds {
        for w in &plan.workloads {
            for &(server, proc) in &session.servers {
                if !server.runs(w) {
                    continue;
                }
                let target = server.target_for(w);
                // The direct baseline has no server process of its own: no CPU to count.
                let running = proc.map(|i| &session.procs[i]);
                let pid = running.map(|r| r.child.id());
                let cpu_now = || pid.map_or(0.0, proc_cpu);
                let soft_now = || if pid.is_some() { softirq(1) } else { 0.0 };
                let core_now = || if pid.is_some() { core_busy(1) } else { 0.0 };
                let client0 = core_busy(0);
                let socket = running.and_then(|r| r.socket.as_deref());
                let busy_now = || socket.map_or(0.0, |s| shard_busy(&plan.sixstack, s));
                let (cpu0, soft0, core0, busy0) = (cpu_now(), soft_now(), core_now(), busy_now());
                let t = Instant::now();
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", server.client_ns(), "taskset", "-c", "0"])
                    .arg(&plan.me)
                    .args(&w.args)
                    .args([
                        "--target", &target, "--secs", &secs, "--warmup", &warmup, "--json",
                    ]);
                if w.is_ftp() {
                    cmd.args(ftp::client_args(server, w, plan));
                }
                let out = cmd.output().map_err(|e| format!("client: {e}"))?;
                let wall = t.elapsed().as_secs_f64();
                let cpu = cpu_now() - cpu0;
                let soft = soft_now() - soft0;
                let core = core_now() - core0;
                let busy = busy_now() - busy0;
                let client_core = core_busy(0) - client0;
                let text = String::from_utf8_lossy(&out.stdout);
                let result: Value = serde_json::from_str(text.trim()).unwrap_or_else(
                    |_| json!({"error": String::from_utf8_lossy(&out.stderr).trim().to_string()}),
                );
                eprintln!(
                    "round {} {} {}: {:.0}/s",
                    round + 1,
                    w.name,
                    server.name(),
                    result["tps"].as_f64().unwrap_or(0.0)
                );
                runs.push(json!({
                    "round": round + 1,
                    "workload": w.name,
                    "server": server.name(),
                    "result": result,
                    "server_cpu_s": cpu,
                    "server_core_softirq_s": soft,
                    "server_core_busy_s": core,
                    "shard_busy_s": busy,
                    "client_core_busy_s": client_core,
                    "wall_s": wall,
                }));
            }
        }
    }
    drop(session);
    let all = json!({
        "machine": machine(),
        "secs": plan.secs,
        "rounds": plan.rounds,
        "pinning": "servers on core 1, clients (and the proxies' backends) on core 0",
        "ftp_mib": plan.ftp_mib,
        "vsftpd": if plan.servers.contains(&Server::Vsftpd) {
            ftp::probe_vsftpd_version()
        } else {
            String::new()
        },
        "ceiling": ceiling,
        "runs": runs,
    });
    write_raw(&plan.out, &all)?;
    Ok(all)
}

/// Writes a run's raw results (pretty JSON), making the directory if needed.
fn write_raw(out: &Path, all: &Value) -> Result<(), String> {
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(out, serde_json::to_string_pretty(all).unwrap_or_default())
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// The machine a run was made on: host, CPU model, cores, kernel.
pub fn machine() -> Value {
    let host = sh(&mut Command::new("hostname")).unwrap_or_default();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = sh(Command::new("uname").arg("-r")).unwrap_or_default();
    json!({
        "host": host.trim(),
        "cpu": cpu_model,
        "cores": std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
            .unwrap_or(1),
        "kernel": kernel.trim(),
    })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Medians per (workload, server) of: rate, p50, p99, CPU µs per transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    /// Transactions (or 64 KiB blocks, for bulk) per second.
    pub rate: f64,
    /// Median latency, µs.
    pub p50: f64,
    /// 90th percentile latency, µs.
    pub p90: f64,
    /// 99th percentile latency, µs.
    pub p99: f64,
    /// 99.9th percentile latency, µs.
    pub p999: f64,
    /// Server CPU (process user+system, plus the server core's softirq) per transaction, µs.
    pub cpu_us: f64,
    /// For sixstack: shard busy time per transaction, µs (0 for the kernel).
    pub busy_us: f64,
    /// Gbit/s (bulk only).
    pub gbps: f64,
    /// The server core's non-idle time ÷ wall time: the cores the server kept busy.
    pub cores: f64,
    /// For sixstack: shards' busy time ÷ wall time (0 for the others).
    pub busy_cores: f64,
    /// The client's core (0) non-idle time ÷ wall time: the client, and whatever kernel
    /// work for the server ran there (on veth, the receive side of a sender's packets).
    pub client_cores: f64,
    /// Runs with errors.
    pub failed: usize,
}

/// Folds raw runs into medians.
pub fn summarize(raw: &Value) -> BTreeMap<(String, String), Cell> {
    let mut groups: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for r in raw["runs"].as_array().into_iter().flatten() {
        let k = (
            r["workload"].as_str().unwrap_or("").to_string(),
            r["server"].as_str().unwrap_or("").to_string(),
        );
        groups.entry(k).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(k, runs)| {
            let ok: Vec<&&Value> = runs
                .iter()
                .filter(|r| r["result"]["errors"].as_u64() == Some(0))
                .collect();
            let f = |get: &dyn Fn(&Value) -> f64| {
                median(ok.iter().map(|r| get(r)).collect()).unwrap_or(0.0)
            };
            let per_wall = |r: &Value, v: f64| {
                let wall = r["wall_s"].as_f64().unwrap_or(0.0);
                if wall > 0.0 {
                    v / wall
                } else {
                    0.0
                }
            };
            let per_tx = |r: &Value, v: f64| {
                let tx = r["result"]["transactions"].as_f64().unwrap_or(0.0);
                if tx > 0.0 {
                    v * 1e6 / tx
                } else {
                    0.0
                }
            };
            let cell = Cell {
                rate: f(&|r| r["result"]["tps"].as_f64().unwrap_or(0.0)),
                p50: f(&|r| r["result"]["latency_us"]["p50"].as_f64().unwrap_or(0.0)),
                p90: f(&|r| r["result"]["latency_us"]["p90"].as_f64().unwrap_or(0.0)),
                p99: f(&|r| r["result"]["latency_us"]["p99"].as_f64().unwrap_or(0.0)),
                p999: f(&|r| r["result"]["latency_us"]["p99_9"].as_f64().unwrap_or(0.0)),
                cpu_us: f(&|r| {
                    per_tx(
                        r,
                        r["server_cpu_s"].as_f64().unwrap_or(0.0)
                            + r["server_core_softirq_s"].as_f64().unwrap_or(0.0),
                    )
                }),
                busy_us: f(&|r| per_tx(r, r["shard_busy_s"].as_f64().unwrap_or(0.0))),
                gbps: f(&|r| {
                    r["result"]["tps"].as_f64().unwrap_or(0.0)
                        * r["result"]["size"].as_f64().unwrap_or(0.0)
                        * 8.0
                        / 1e9
                }),
                cores: f(&|r| per_wall(r, r["server_core_busy_s"].as_f64().unwrap_or(0.0))),
                busy_cores: f(&|r| per_wall(r, r["shard_busy_s"].as_f64().unwrap_or(0.0))),
                client_cores: f(&|r| per_wall(r, r["client_core_busy_s"].as_f64().unwrap_or(0.0))),
                failed: runs.len() - ok.len(),
            };
            (k, cell)
        })
        .collect()
}

/// Reads one figure out of a summary cell.
type Metric = fn(&Cell) -> f64;

/// The Markdown report.
pub fn render_markdown(raw: &Value, svg_name: &str) -> String {
    let cells = summarize(raw);
    let m = &raw["machine"];
    let mut s = String::new();
    let _ = writeln!(s, "# sixstack vs the Linux kernel\n");
    let _ = writeln!(
        s,
        "Machine: {} ({} cores, {}), kernel {}. {} rounds of {} s per workload and server, \
         interleaved; {}. Medians. Ratio = sixstack-xdp ÷ kernel (for latency and CPU, lower \
         is better).\n",
        m["host"].as_str().unwrap_or("?"),
        m["cores"],
        m["cpu"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        raw["rounds"],
        raw["secs"],
        raw["pinning"].as_str().unwrap_or("")
    );
    let workloads: Vec<String> = {
        let mut v: Vec<String> = cells.keys().map(|(w, _)| w.clone()).collect();
        v.dedup();
        v
    };
    // The kernel table (and its chart) leaves the TLS and proxy workloads to their own
    // tables; a run of those alone has no kernel table.
    let kernel_rows: Vec<&String> = workloads
        .iter()
        .filter(|w| !w.starts_with("tls_") && !w.starts_with("proxy_") && !w.starts_with("ftp_"))
        .collect();
    if !kernel_rows.is_empty() {
        let _ = writeln!(
            s,
            "| workload | metric | kernel | sixstack-xdp | sixstack-tap | ratio | kernel, offloads on |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    }
    for &w in &kernel_rows {
        let get = |srv: &str| cells.get(&(w.clone(), srv.to_string())).cloned();
        let (k, x, t) = (get("kernel"), get("sixstack-xdp"), get("sixstack-tap"));
        let ko = get("kernel-offloads");
        let bulk = w.contains("bulk");
        let metrics: Vec<(&str, Metric)> = if bulk {
            vec![
                ("Gbit/s", |c| c.gbps),
                ("server CPU µs / 64 KiB", |c| c.cpu_us),
            ]
        } else {
            vec![
                ("per second", |c| c.rate),
                ("p50 µs", |c| c.p50),
                ("p99 µs", |c| c.p99),
                ("server CPU µs / tx", |c| c.cpu_us),
                ("shard busy µs / tx", |c| c.busy_us),
            ]
        };
        for (name, f) in metrics {
            let fmt = |c: &Option<Cell>| match c {
                Some(c) if c.failed > 0 && f(c) == 0.0 => "failed".to_string(),
                Some(c) => format!("{:.2}", f(c)),
                None => "-".to_string(),
            };
            let ratio = match (&k, &x) {
                (Some(k), Some(x)) if f(k) > 0.0 => format!("{:.2}×", f(x) / f(k)),
                _ => "-".to_string(),
            };
            let _ = writeln!(
                s,
                "| {w} | {name} | {} | {} | {} | {ratio} | {} |",
                fmt(&k),
                fmt(&x),
                fmt(&t),
                fmt(&ko)
            );
        }
    }
    render_jumbo(&mut s, &cells, &workloads);
    render_tls(&mut s, &cells);
    proxy::render(&mut s, &cells);
    ftp::render(&mut s, raw, &cells);
    let c = &raw["ceiling"];
    if let Some(c64) = c["frames64_per_s"].as_f64() {
        let _ = writeln!(
            s,
            "\n**Link ceiling** (AF_XDP socket to AF_XDP socket across the veth, no stack): \
             {:.0} frames/s at 64 bytes, {:.0} frames/s at 1514 bytes.\n",
            c64,
            c["frames1514_per_s"].as_f64().unwrap_or(0.0)
        );
        let _ = writeln!(
            s,
            "| sixstack-xdp workload | stack frames/s | fraction of the ceiling |"
        );
        let _ = writeln!(s, "|---|---:|---:|");
        for (w, cell) in cells.iter().filter(|((_, srv), _)| srv == "sixstack-xdp") {
            let w = &w.0;
            let (frames, ceil) = if w.contains("bulk") {
                (
                    cell.gbps * 1e9 / 8.0 / 1514.0,
                    c["frames1514_per_s"].as_f64().unwrap_or(0.0),
                )
            } else if w.starts_with("udp") {
                // One datagram in, one out per transaction.
                (2.0 * cell.rate, c64)
            } else {
                continue;
            };
            if ceil > 0.0 {
                let _ = writeln!(s, "| {w} | {frames:.0} | {:.2} |", frames / ceil);
            }
        }
    }
    if !kernel_rows.is_empty() {
        let _ = writeln!(s, "\n![throughput and latency]({svg_name})\n");
        let _ = writeln!(
            s,
            "Server CPU is the server process's user+system time plus the softirq time of the \
             server's core over the run; shard busy time is the time sixstack's shards spent in \
             rounds that did work (a busy-polling shard's spinning is in the CPU figure, not in \
             busy time). On veth the kernel's receive work for a frame runs in the sender's \
             softirq (the client's core), so the kernel server's CPU here is a lower bound."
        );
    }
    s
}

/// A figure of the extra tables, or `-` when the server did not run.
fn figure(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}"))
}

/// `a ÷ b` as a ratio cell, or `-`.
fn ratio_cell(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".to_string(),
    }
}

/// The jumbo-frame table: sixstack over multi-buffer AF_XDP and the kernel on the MTU
/// 9000 lab, beside the kernel with every offload on (MTU 1500, GSO/GRO).
fn render_jumbo(s: &mut String, cells: &BTreeMap<(String, String), Cell>, workloads: &[String]) {
    let get = |w: &str, srv: &str| cells.get(&(w.to_string(), srv.to_string()));
    let rows: Vec<&String> = workloads
        .iter()
        .filter(|w| get(w, "sixstack-xdp-jumbo").is_some() || get(w, "kernel-jumbo").is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n**Jumbo frames** (veth MTU 9000, offloads off; sixstack on multi-buffer AF_XDP, \
         `XDP_USE_SG`). Gbit/s, and server CPU µs per 64 KiB.\n"
    );
    let _ = writeln!(
        s,
        "| workload | kernel, MTU 9000 | sixstack-xdp, MTU 9000 | ratio | kernel, offloads on | \
         ratio to offloads on | CPU kernel | CPU sixstack |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for w in rows {
        let g = |srv: &str| get(w, srv).map(|c| c.gbps);
        let cpu = |srv: &str| get(w, srv).map_or("-".to_string(), |c| format!("{:.2}", c.cpu_us));
        let (k, x, ko) = (
            g("kernel-jumbo"),
            g("sixstack-xdp-jumbo"),
            g("kernel-offloads"),
        );
        let _ = writeln!(
            s,
            "| {w} | {} | {} | {} | {} | {} | {} | {} |",
            figure(k),
            figure(x),
            ratio_cell(x, k),
            figure(ko),
            ratio_cell(x, ko),
            cpu("kernel-jumbo"),
            cpu("sixstack-xdp-jumbo")
        );
    }
}

/// The TLS table: sixstack over AF_XDP (rustls) against `openssl s_server` on the kernel,
/// same certificate (ECDSA P-256), same cores.
fn render_tls(s: &mut String, cells: &BTreeMap<(String, String), Cell>) {
    let get = |w: &str, srv: &str| cells.get(&(w.to_string(), srv.to_string())).cloned();
    let names = [
        "tls_handshake_full",
        "tls_handshake_resumed",
        "tls_handshake_full_tls12",
        "tls_handshake_resumed_tls12",
        "tls_bulk_1stream",
    ];
    if names
        .iter()
        .all(|w| get(w, "sixstack-xdp").is_none() && get(w, "kernel-openssl").is_none())
    {
        return;
    }
    let _ = writeln!(
        s,
        "\n**TLS** (sixstack: rustls with {} on the stack, `tls-discard`; kernel: `openssl \
         s_server` {}; the same ECDSA P-256 certificate, TLS 1.3, X25519). The client is one \
         rustls connection loop on core 0, so handshakes/s is bounded by the client: compare \
         the server's cost per handshake. For sixstack that is the shard's busy time (its CPU \
         time includes busy polling between the client's handshakes); for OpenSSL it is the \
         process's CPU plus its core's softirq time.\n",
        sixstack_tls::provider::name(),
        openssl_version()
    );
    let _ = writeln!(
        s,
        "| workload | metric | kernel + OpenSSL | sixstack-xdp | ratio |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for w in names {
        let (o, x) = (get(w, "kernel-openssl"), get(w, "sixstack-xdp"));
        let rows: Vec<(&str, Option<f64>, Option<f64>)> = if w.contains("bulk") {
            vec![
                (
                    "Gbit/s",
                    o.as_ref().map(|c| c.gbps),
                    x.as_ref().map(|c| c.gbps),
                ),
                (
                    "server CPU µs / 64 KiB",
                    o.as_ref().map(|c| c.cpu_us),
                    x.as_ref().map(|c| c.cpu_us),
                ),
                (
                    "server µs / 64 KiB (OpenSSL: CPU; sixstack: busy)",
                    o.as_ref().map(|c| c.cpu_us),
                    x.as_ref().map(|c| c.busy_us),
                ),
            ]
        } else {
            let per_core = |c: &Cell, own: f64| if own > 0.0 { 1e6 / own } else { c.rate };
            vec![
                (
                    "handshakes/s",
                    o.as_ref().map(|c| c.rate),
                    x.as_ref().map(|c| c.rate),
                ),
                (
                    "p50 µs",
                    o.as_ref().map(|c| c.p50),
                    x.as_ref().map(|c| c.p50),
                ),
                (
                    "server µs / handshake (OpenSSL: CPU; sixstack: busy)",
                    o.as_ref().map(|c| c.cpu_us),
                    x.as_ref().map(|c| c.busy_us),
                ),
                (
                    "handshakes per server core-second",
                    o.as_ref().map(|c| per_core(c, c.cpu_us)),
                    x.as_ref().map(|c| per_core(c, c.busy_us)),
                ),
            ]
        };
        for (metric, a, b) in rows {
            let _ = writeln!(
                s,
                "| {w} | {metric} | {} | {} | {} |",
                figure(a),
                figure(b),
                ratio_cell(b, a)
            );
        }
    }
    for (version, full, resumed) in [
        ("TLS 1.3", "tls_handshake_full", "tls_handshake_resumed"),
        (
            "TLS 1.2",
            "tls_handshake_full_tls12",
            "tls_handshake_resumed_tls12",
        ),
    ] {
        if let (Some(f), Some(r)) = (get(full, "sixstack-xdp"), get(resumed, "sixstack-xdp")) {
            if f.busy_us > 0.0 {
                let _ = writeln!(
                    s,
                    "\nsixstack, {version}: a resumed handshake costs {:.0}% of a full one \
                     ({:.1} vs {:.1} µs of shard time).",
                    100.0 * r.busy_us / f.busy_us,
                    r.busy_us,
                    f.busy_us
                );
            }
        }
    }
}

fn openssl_version() -> String {
    sh(Command::new("openssl").arg("version"))
        .map(|v| v.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "OpenSSL".into())
}

/// The report's figure (SVG): each workload's rate relative to the kernel, throughput
/// against connection count, and the 1-connection latency distribution (percentiles).
pub fn render_svg(raw: &Value) -> String {
    let cells = summarize(raw);
    let mut workloads: Vec<String> = cells.keys().map(|(w, _)| w.clone()).collect();
    workloads.dedup();
    // The proxy workloads have no kernel figure to be relative to (their table is in the
    // Markdown report).
    workloads.retain(|w| !w.starts_with("proxy_") && !w.starts_with("ftp_"));
    let servers = ["kernel", "sixstack-xdp", "sixstack-tap"];
    let colors = ["#777777", "#1f77b4", "#ff7f0e"];
    let value = |wl: &str, srv: &str| {
        cells
            .get(&(wl.to_string(), srv.to_string()))
            .map(|c| if wl.contains("bulk") { c.gbps } else { c.rate })
            .unwrap_or(0.0)
    };
    let (w, row) = (760.0, 34.0);
    let bars_h = 60.0 + row * workloads.len() as f64;
    let panel_h = 260.0;
    let h = bars_h + 2.0 * panel_h + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-weight=\"bold\">rate relative to the kernel (1.0 = kernel)</text>\n"
    );
    for (i, (name, color)) in servers.iter().zip(colors).enumerate() {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"30\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"39\">{name}</text>",
            400 + i * 120,
            414 + i * 120
        );
    }
    let scale = 120.0;
    for (i, wl) in workloads.iter().enumerate() {
        let y = 50.0 + row * i as f64;
        let _ = writeln!(s, "<text x=\"10\" y=\"{}\">{wl}</text>", y + 20.0);
        let base = value(wl, "kernel");
        for (j, (srv, color)) in servers.iter().zip(colors).enumerate() {
            let rel = if base > 0.0 {
                value(wl, srv) / base
            } else {
                0.0
            };
            let _ = writeln!(
                s,
                "<rect x=\"230\" y=\"{}\" width=\"{:.1}\" height=\"9\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{rel:.2}</text>",
                y + 5.0 + 9.0 * j as f64,
                (rel * scale).min(500.0),
                235.0 + (rel * scale).min(500.0),
                y + 13.0 + 9.0 * j as f64
            );
        }
    }
    // Panel 2: transactions/s against connections (1-byte request/response).
    let conns = [1u32, 10, 100, 1000];
    let series: Vec<Vec<(f64, f64)>> = servers
        .iter()
        .map(|srv| {
            conns
                .iter()
                .filter_map(|&c| {
                    let v = value(&format!("tcp_rr_1B_{c}conn"), srv);
                    (v > 0.0).then_some((f64::from(c), v))
                })
                .collect()
        })
        .collect();
    let top = bars_h + 20.0;
    line_panel(
        &mut s,
        top,
        "transactions/s against connections (1-byte TCP request/response)",
        "connections (log)",
        &series,
        &colors,
        true,
    );
    // Panel 3: latency percentiles of the 1-connection request/response.
    let pct = [50.0, 90.0, 99.0, 99.9];
    let series: Vec<Vec<(f64, f64)>> = servers
        .iter()
        .map(|srv| {
            cells
                .get(&("tcp_rr_1B_1conn".to_string(), srv.to_string()))
                .map(|c| {
                    [c.p50, c.p90, c.p99, c.p999]
                        .iter()
                        .zip(pct)
                        .filter(|(v, _)| **v > 0.0)
                        .map(|(v, p)| (*v, p))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    line_panel(
        &mut s,
        top + panel_h + 20.0,
        "latency distribution, 1 connection (x: µs, y: percentile)",
        "latency µs (log)",
        &series,
        &colors,
        true,
    );
    s.push_str("</svg>\n");
    s
}

/// One line chart, x on a log scale when `logx`.
fn line_panel(
    s: &mut String,
    top: f64,
    title: &str,
    xlabel: &str,
    series: &[Vec<(f64, f64)>],
    colors: &[&str],
    logx: bool,
) {
    let (x0, y0, pw, ph) = (70.0, top + 30.0, 640.0, 190.0);
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{title}</text>",
        top + 14.0
    );
    let pts: Vec<(f64, f64)> = series.iter().flatten().copied().collect();
    if pts.is_empty() {
        let _ = writeln!(s, "<text x=\"{x0}\" y=\"{}\">no data</text>", y0 + 20.0);
        return;
    }
    let fx = |x: f64| if logx { x.max(1e-9).log10() } else { x };
    let (mut xmin, mut xmax) = (f64::MAX, f64::MIN);
    let mut ymax: f64 = 0.0;
    for &(x, y) in &pts {
        xmin = xmin.min(fx(x));
        xmax = xmax.max(fx(x));
        ymax = ymax.max(y);
    }
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
    let px = |x: f64| x0 + (fx(x) - xmin) / (xmax - xmin) * pw;
    let py = |y: f64| y0 + ph - y / ymax * ph;
    let _ = writeln!(
        s,
        "<rect x=\"{x0}\" y=\"{y0}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#ccc\"/>\n\
         <text x=\"{}\" y=\"{}\">{xlabel}</text><text x=\"5\" y=\"{}\">{ymax:.0}</text><text x=\"5\" y=\"{}\">0</text>",
        x0 + pw / 2.0 - 40.0,
        y0 + ph + 28.0,
        y0 + 10.0,
        y0 + ph
    );
    for &(x, _) in &pts {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\">{x:.0}</text>",
            px(x) - 8.0,
            y0 + ph + 13.0
        );
    }
    for (line, color) in series.iter().zip(colors) {
        if line.is_empty() {
            continue;
        }
        let path: Vec<String> = line
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            path.join(" ")
        );
        for &(x, y) in line {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                px(x),
                py(y)
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw() -> Value {
        let run = |srv: &str, tps: f64, round: u32| {
            json!({"round": round, "workload": "tcp_rr_1B_1conn", "server": srv,
                   "result": {"tps": tps, "transactions": tps * 5.0, "errors": 0, "size": 1,
                              "latency_us": {"p50": 1e6 / tps, "p99": 2e6 / tps}},
                   "server_cpu_s": 5.0, "server_core_softirq_s": 0.0, "shard_busy_s": 1.0, "wall_s": 6.0})
        };
        json!({"machine": {"host": "h", "cores": 2, "cpu": "c", "kernel": "k"}, "secs": 5, "rounds": 3,
               "pinning": "p", "runs": [run("kernel", 10000.0, 1), run("sixstack-xdp", 30000.0, 1),
               run("kernel", 12000.0, 2), run("sixstack-xdp", 33000.0, 2), run("kernel", 11000.0, 3),
               run("sixstack-xdp", 31000.0, 3)]})
    }

    #[test]
    fn medians_and_ratios() {
        let cells = summarize(&raw());
        let k = &cells[&("tcp_rr_1B_1conn".to_string(), "kernel".to_string())];
        let x = &cells[&("tcp_rr_1B_1conn".to_string(), "sixstack-xdp".to_string())];
        assert_eq!(k.rate, 11000.0);
        assert_eq!(x.rate, 31000.0);
        let md = render_markdown(&raw(), "x.svg");
        assert!(
            md.contains("| tcp_rr_1B_1conn | per second | 11000.00 | 31000.00 | - | 2.82× |"),
            "{md}"
        );
        let svg = render_svg(&raw());
        assert!(svg.starts_with("<svg") && svg.contains("2.82"));
    }

    #[test]
    fn proxy_section_adds_latency_and_rates_per_core() {
        let run = |srv: &str, tps: f64, p50: f64, p99: f64, core: f64, busy: f64| {
            json!({"round": 1, "workload": "proxy_rr_1B_1conn", "server": srv,
                   "result": {"tps": tps, "transactions": tps * 5.0, "errors": 0, "size": 1,
                              "latency_us": {"p50": p50, "p99": p99}},
                   "server_cpu_s": 9.0, "server_core_softirq_s": 9.0, "server_core_busy_s": core,
                   "shard_busy_s": busy, "wall_s": 6.0})
        };
        let raw = json!({"machine": {"host": "h", "cores": 2, "cpu": "c", "kernel": "k"},
               "secs": 5, "rounds": 1, "pinning": "p", "runs": [
               run("direct", 50000.0, 10.0, 20.0, 0.0, 0.0),
               run("haproxy", 8000.0, 110.0, 220.0, 3.0, 0.0),
               run("sixstack-proxy", 12000.0, 60.0, 120.0, 6.0, 2.0)]});
        let cells = summarize(&raw);
        let h = &cells[&("proxy_rr_1B_1conn".to_string(), "haproxy".to_string())];
        assert_eq!(h.cores, 0.5);
        let md = render_markdown(&raw, "x.svg");
        // Not in the kernel table, and not a bar of the chart.
        assert!(!md.contains("| proxy_rr_1B_1conn | per second |"), "{md}");
        assert!(!render_svg(&raw).contains("proxy_"));
        for row in [
            "| proxy_rr_1B_1conn | transactions/s | 50000.00 | 8000.00 | 12000.00 | 1.50× |",
            "| proxy_rr_1B_1conn | added p50 µs (vs direct) | - | 100.00 | 50.00 | 0.50× |",
            "| proxy_rr_1B_1conn | added p99 µs (vs direct) | - | 200.00 | 100.00 | 0.50× |",
            "| proxy_rr_1B_1conn | transactions/s per proxy core (core 1 busy) | - | 16000.00 | 12000.00 | 0.75× |",
            "| proxy_rr_1B_1conn | transactions/s per proxy core (HAProxy: core 1 busy; sixstack: shard busy) | - | 16000.00 | 36000.00 | 2.25× |",
        ] {
            assert!(md.contains(row), "{row}\n{md}");
        }
    }
}
