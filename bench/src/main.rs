//! sixstack-bench command line: parses arguments and calls into the library.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sixstack_bench::{
    resolve, run_tcp_rr, run_udp_rr, EchoOptions, EchoServer, Report, RrConfig, UdpRrConfig,
};

#[derive(Debug, Parser)]
#[command(
    name = "sixstack-bench",
    version,
    about = "sixstack load generator and kernel-stack comparison server"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// TCP request/response, closed loop, against an echo server.
    Rr(RrArgs),
    /// Kernel-stack TCP + UDP echo server (epoll) for comparison runs.
    KernelEcho(EchoArgs),
    /// UDP request/response against an echo, one datagram in flight.
    UdpRr(UdpRrArgs),
    /// TCP connect/request/close: a new connection per 1-byte transaction.
    Crr(SimpleArgs),
    /// TCP streams of 64 KiB writes into a discard server.
    Bulk(BulkArgs),
    /// TLS handshakes, a new connection each (full, or resumed with --resume).
    TlsHs(TlsArgs),
    /// One TLS connection of 64 KiB writes into a TLS discard server.
    TlsBulk(TlsArgs),
    /// Open-loop TCP request/response at a fixed rate, latency from each request's due
    /// time (corrects coordinated omission).
    OpenLoop(OpenLoopArgs),
    /// Every workload against the kernel and sixstack (AF_XDP, TAP) on the lab link,
    /// interleaved; writes the raw results (needs root).
    Run(RunArgs),
    /// Turns raw results into bench/results/<date>-<host>.md + .json + .svg.
    Report(ReportArgs),
    /// The workload manager's benchmark: 1 KiB transactions beside bulk uploads on one
    /// shard, the manager off, on, and the kernel's stack; writes
    /// bench/results/<date>-<host>-mix.md + .json (needs root).
    Mix(MixArgs),
    /// FTP transfers with curl (RETR to /dev/null or STOR of a local file), in parallel
    /// streams, plain or explicit FTPS.
    Ftp(FtpArgs),
    /// Recovery under loss: goodput of one transfer against the sender's loss rate and
    /// the cost of loss bursts, sixstack (pipe, virtual time) against the kernel (veth,
    /// netem); writes bench/results/<date>-recovery.md (needs root).
    Recovery(RecoveryArgs),
}

#[derive(Debug, Args)]
struct RecoveryArgs {
    /// MiB moved per transfer.
    #[arg(long, default_value_t = 32)]
    size_mib: usize,
    /// Kernel runs per loss rate (interleaved; medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// One-way delay of the emulated path, milliseconds (above 0 the kernel's side needs
    /// netem).
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
    /// Rate of the emulated path, megabits per second.
    #[arg(long, default_value_t = 1000.0)]
    rate_mbit: f64,
    /// sixstack's socket buffers (its window), KiB: the appliance's default.
    #[arg(long, default_value_t = 64)]
    buffer_kib: usize,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct FtpArgs {
    #[command(flatten)]
    common: SimpleArgs,
    /// `retr` (download to /dev/null) or `stor` (upload --source as /up/<user>-s<stream>).
    #[arg(long, default_value = "retr")]
    op: String,
    /// Parallel curl processes.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// The file to download, its path on the server.
    #[arg(long)]
    file: String,
    /// The file's size in bytes (a transfer of another size is an error).
    #[arg(long)]
    size: u64,
    /// The local file to upload.
    #[arg(long, default_value = "/dev/null")]
    source: std::path::PathBuf,
    /// USER:PASSWORD.
    #[arg(long, default_value = "anonymous:bench")]
    login: String,
    /// Explicit FTPS (AUTH TLS, PROT P), the server verified against this CA.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct TlsArgs {
    #[command(flatten)]
    common: SimpleArgs,
    /// PEM CA certificate the server's chain must lead to.
    #[arg(long)]
    ca: std::path::PathBuf,
    /// Offer the previous connection's session (TLS 1.3 ticket, TLS 1.2 ticket or ID).
    #[arg(long)]
    resume: bool,
    /// TLS 1.2 instead of 1.3.
    #[arg(long)]
    tls12: bool,
}

#[derive(Debug, Args)]
struct SimpleArgs {
    /// Server address, ADDR:PORT.
    #[arg(long)]
    target: String,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Warmup before measuring, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct BulkArgs {
    #[command(flatten)]
    common: SimpleArgs,
    /// Parallel streams.
    #[arg(long, default_value_t = 1)]
    streams: usize,
}

#[derive(Debug, Args)]
struct OpenLoopArgs {
    #[command(flatten)]
    common: SimpleArgs,
    /// Requests per second.
    #[arg(long)]
    rate: f64,
    /// Request (= response) size in bytes.
    #[arg(long, default_value_t = 1)]
    size: usize,
    /// Sleep until each request is due instead of spinning (a probe beside other load on
    /// its core).
    #[arg(long)]
    sleep: bool,
}

#[derive(Debug, Args)]
struct MixArgs {
    /// Rounds (each runs every mode once; medians are reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Warmup seconds per run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Probe requests per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Bulk streams.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// The workload manager's `cicsint` (see the README).
    #[arg(long, default_value_t = 2000)]
    cicsint: u64,
    /// The sixstack binary (default: beside this one).
    #[arg(long)]
    sixstack: Option<std::path::PathBuf>,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    dir: std::path::PathBuf,
    /// Only render the report of an earlier run's raw results (JSON) to standard output.
    #[arg(long, value_name = "JSON")]
    report: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Include the slow workloads (10 000 idle connections).
    #[arg(long)]
    all: bool,
    /// Rounds per workload and server (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Warmup seconds per run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Servers: kernel, xdp, tap, kernel-offloads (the kernel on a veth with every offload
    /// on, which an XSK cannot use), kernel-jumbo and xdp-jumbo (MTU 9000 lab; bulk only),
    /// kernel-openssl (`openssl s_server`; TLS workloads only), and for the proxy workloads
    /// only: sixstack-proxy (the xdp appliance's proxy listeners), haproxy (Debian's, started
    /// by the bench) and direct (the client straight to a backend), and for the FTP
    /// workloads only: sixstack-ftp (the xdp appliance's FTP server) and vsftpd (Debian's,
    /// started by the bench).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kernel,xdp,tap,kernel-offloads,kernel-jumbo,xdp-jumbo,kernel-openssl,\
                         sixstack-proxy,haproxy,direct,sixstack-ftp,vsftpd"
    )]
    servers: Vec<String>,
    /// Only these workloads (names as in the report).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// The sixstack binary (default: next to this one).
    #[arg(long)]
    sixstack: Option<std::path::PathBuf>,
    /// Raw results file.
    #[arg(long, default_value = "bench/results/raw-latest.json")]
    out: std::path::PathBuf,
    /// The size of every file the FTP workloads move, MiB (default: 256 with one stream,
    /// 64 with several).
    #[arg(long)]
    ftp_mib: Option<u64>,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Raw results from `run`.
    #[arg(long, default_value = "bench/results/raw-latest.json")]
    input: std::path::PathBuf,
    /// Folder for the report.
    #[arg(long, default_value = "bench/results")]
    dir: std::path::PathBuf,
    /// File names' stem (default: <date>-<host>), e.g. 2026-12-01-proxy.
    #[arg(long)]
    stem: Option<String>,
}

#[derive(Debug, Args)]
struct RrArgs {
    /// Echo server address, ADDR:PORT (e.g. 10.0.0.2:7 or [fd77::2]:7).
    #[arg(long)]
    target: String,
    /// Number of connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Request (= response) size in bytes.
    #[arg(long, default_value_t = 1)]
    size: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Warmup before measuring, in seconds (not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Worker threads; connections are spread over them.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Cores to pin the worker threads to, round robin (e.g. 2,3).
    #[arg(long, value_delimiter = ',', value_name = "CORE,...")]
    pin: Vec<usize>,
    /// Print one JSON object instead of human-readable lines.
    #[arg(long)]
    json: bool,
    /// Open this many extra connections to the target first and keep them idle during the
    /// run (the server's per-packet cost must not grow with them). Raise `ulimit -n`.
    #[arg(long, default_value_t = 0)]
    idle: usize,
}

#[derive(Debug, Args)]
struct EchoArgs {
    /// Address to listen on (TCP and UDP), ADDR:PORT (e.g. 0.0.0.0:7 or [::]:7).
    #[arg(long)]
    listen: String,
    /// Cores to pin the worker threads to, round robin.
    #[arg(long, value_delimiter = ',', value_name = "CORE,...")]
    pin: Vec<usize>,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    secs: Option<f64>,
    /// Also run a TCP discard server on this port (same address).
    #[arg(long)]
    discard: Option<u16>,
}

#[derive(Debug, Args)]
struct UdpRrArgs {
    /// Echo server address, ADDR:PORT.
    #[arg(long)]
    target: String,
    /// Datagram size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Warmup before measuring, in seconds (not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Reply timeout in milliseconds; a datagram not answered in time is a loss.
    #[arg(long, default_value_t = 200)]
    timeout_ms: u64,
    /// Core to pin the sender to.
    #[arg(long, value_name = "CORE")]
    pin: Option<usize>,
    /// Print one JSON object instead of human-readable lines.
    #[arg(long)]
    json: bool,
}

fn print_report(r: &Report, json: bool) -> ExitCode {
    if json {
        println!("{}", r.json());
    } else {
        print!("{}", r.human());
    }
    let _ = std::io::stdout().flush();
    if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn rr(a: RrArgs) -> Result<ExitCode, String> {
    let mut cfg = RrConfig::new(resolve(&a.target)?);
    cfg.conns = a.conns;
    cfg.size = a.size;
    cfg.secs = a.secs;
    cfg.warmup = a.warmup;
    cfg.threads = a.threads;
    cfg.pin = a.pin;
    let mut idle = Vec::with_capacity(a.idle);
    for i in 0..a.idle {
        let s = std::net::TcpStream::connect_timeout(&cfg.target, Duration::from_secs(5))
            .map_err(|e| format!("idle connection {i} of {}: {e}", a.idle))?;
        idle.push(s);
    }
    let r = run_tcp_rr(&cfg)?;
    // The idle connections must still be open: a server that dropped them would look flat.
    let mut lost = 0;
    for s in &idle {
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 1];
        match std::io::Read::read(&mut &*s, &mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => lost += 1,
        }
    }
    drop(idle);
    if lost > 0 {
        return Err(format!(
            "{lost} of {} idle connections were closed during the run",
            a.idle
        ));
    }
    Ok(print_report(&r, a.json))
}

fn udp_rr(a: UdpRrArgs) -> Result<ExitCode, String> {
    let mut cfg = UdpRrConfig::new(resolve(&a.target)?);
    cfg.size = a.size;
    cfg.secs = a.secs;
    cfg.warmup = a.warmup;
    cfg.timeout = Duration::from_millis(a.timeout_ms);
    cfg.pin = a.pin;
    let r = run_udp_rr(&cfg)?;
    Ok(print_report(&r, a.json))
}

fn kernel_echo(a: EchoArgs) -> Result<ExitCode, String> {
    let addr = resolve(&a.listen)?;
    let server = EchoServer::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    if let Some(port) = a.discard {
        let mut daddr = addr;
        daddr.set_port(port);
        let l = std::net::TcpListener::bind(daddr).map_err(|e| format!("bind {daddr}: {e}"))?;
        let stop2 = Arc::clone(&stop);
        let pin = a.pin.first().copied();
        std::thread::spawn(move || {
            if let Some(c) = pin {
                core_affinity::set_for_current(core_affinity::CoreId { id: c });
            }
            sixstack_bench::discard_server(l, &stop2)
        });
    }
    let opts = EchoOptions {
        threads: a.threads.max(1),
        pin: a.pin,
        secs: a.secs,
    };
    println!(
        "kernel-echo listening on {} (tcp+udp, threads={}, pin={:?})",
        server.local_addr(),
        opts.threads,
        opts.pin
    );
    let _ = std::io::stdout().flush();
    let stats = server.run(&opts, &stop).map_err(|e| format!("echo: {e}"))?;
    eprintln!(
        "kernel-echo stopped: accepted={} tcp_bytes={} udp_datagrams={} udp_bytes={}",
        stats.accepted, stats.tcp_bytes, stats.udp_datagrams, stats.udp_bytes
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_run(a: RunArgs) -> Result<ExitCode, String> {
    use sixstack_bench::harness::{self, Plan, Server};
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let sixstack = match a.sixstack {
        Some(p) => p,
        None => me.with_file_name("sixstack"),
    };
    if !sixstack.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release) or pass --sixstack",
            sixstack.display()
        ));
    }
    let mut servers = Vec::new();
    for s in &a.servers {
        servers.push(match s.as_str() {
            "kernel" => Server::Kernel,
            "kernel-offloads" => Server::KernelOffloads,
            "xdp" => Server::Xdp,
            "tap" => Server::Tap,
            "kernel-jumbo" => Server::KernelJumbo,
            "kernel-openssl" => Server::KernelOpenssl,
            "xdp-jumbo" => Server::XdpJumbo,
            "sixstack-proxy" => Server::SixstackProxy,
            "haproxy" => Server::Haproxy,
            "direct" => Server::Direct,
            "sixstack-ftp" => Server::SixstackFtp,
            "vsftpd" => Server::Vsftpd,
            other => {
                return Err(format!(
                    "unknown server {other:?} (kernel, xdp, tap, kernel-offloads, \
                     kernel-jumbo, xdp-jumbo, kernel-openssl, sixstack-proxy, haproxy, direct, \
                     sixstack-ftp, vsftpd)"
                ))
            }
        });
    }
    let mut workloads = harness::workloads(a.all);
    if !a.workloads.is_empty() {
        workloads.retain(|w| a.workloads.iter().any(|n| n == w.name));
        if workloads.is_empty() {
            return Err("no workload matches --workloads".into());
        }
    }
    let plan = Plan {
        sixstack,
        me,
        rounds: a.rounds.max(1),
        secs: a.secs,
        warmup: a.warmup,
        workloads,
        servers,
        out: a.out.clone(),
        ftp_mib: a.ftp_mib,
    };
    harness::run(&plan)?;
    println!("raw results: {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Today's date as the results' file names carry it (YYYY-MM-DD).
fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "today".into())
}

fn bench_recovery(a: RecoveryArgs) -> Result<ExitCode, String> {
    use sixstack_bench::recovery::{self, KernelPath, Loss, Path};
    use std::fmt::Write as _;
    let path = Path {
        delay_ms: a.delay_ms,
        rate_mbit: a.rate_mbit,
    };
    let size = a.size_mib << 20;
    let buffer = a.buffer_kib << 10;
    let rates = [0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.10];
    let mut six = Vec::new();
    for &p in &rates {
        let t = recovery::sixstack_transfer(path, Loss::Random(p), size, buffer, 7);
        eprintln!("sixstack loss {p}: {t:?}");
        six.push(t);
    }
    let clean = six[0].clone()?;
    // The kernel's side needs netem (sch_netem); where the kernel has none, the report
    // says so and gives sixstack's figures alone.
    let mut runs: Vec<Vec<recovery::Transfer>> = vec![Vec::new(); rates.len()];
    let kernel_missing = match KernelPath::new(path) {
        Ok(kernel) => {
            for round in 0..a.rounds.max(1) {
                for (i, &p) in rates.iter().enumerate() {
                    kernel.set_loss(path, p)?;
                    let t = kernel.transfer(size)?;
                    eprintln!("kernel round {round} loss {p}: {t:?}");
                    runs[i].push(t);
                }
            }
            None
        }
        Err(e) => {
            eprintln!("no kernel comparison: {e}");
            Some(e)
        }
    };
    let bursts = [1u64, 3, 10, 30, 100];
    let every = 5_000u64;
    let mut burst_rows = Vec::new();
    for &length in &bursts {
        let t = recovery::sixstack_transfer(path, Loss::Burst { every, length }, size, buffer, 7);
        eprintln!("sixstack burst {length}/{every}: {t:?}");
        burst_rows.push((length, t));
    }

    // Larger windows against one loss rate: where the protocol engine's recovery gives way.
    let windows = [256usize, 512, 1024, 2048, 4096];
    let mut window_rows = Vec::new();
    for &kib in &windows {
        let t = recovery::sixstack_transfer(path, Loss::Random(0.001), size, kib << 10, 7);
        eprintln!("sixstack window {kib} KiB at 0.1 %: {t:?}");
        window_rows.push((kib, t));
    }

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Recovery under loss, {} ({} cores, {})\n",
        today(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sixstack_bench::harness::machine()["kernel"]
            .as_str()
            .unwrap_or("?")
    );
    let _ = writeln!(
        md,
        "Command: `sixstack-bench recovery --size-mib {} --buffer-kib {} --rounds {}`. One TCP \
         transfer of {} MiB one way over a path of {} ms each way and {} Mbit/s; the sender's \
         frames are lost (the returning ACKs are not). **sixstack**: two shards over the pipe \
         driver (sixstack at both ends), the sender's link wrapped in the fault link, on \
         virtual time: exact, the same on every run; {} KiB socket buffers. **kernel**: two \
         namespaces over a veth pair, the same rate (tbf, or netem with a delay), the \
         sender's segments dropped at the same rate by an nftables rule, segmentation \
         offloads off; kernel sockets with their own buffer tuning, wall time, median of {} \
         interleaved runs.\n\nsixstack's protocol engine (smoltcp 0.14) has a minimum \
         retransmission timeout of 1 s (the kernel's: 200 ms), retransmits fast only the \
         first loss of a window (three duplicate ACKs; no partial-ACK recovery), resends \
         everything after the first unacknowledged byte when the timer fires, doubles the \
         timeout at each expiry, and neither sends nor uses SACK.\n",
        a.size_mib,
        a.buffer_kib,
        a.rounds,
        a.size_mib,
        a.delay_ms,
        a.rate_mbit,
        a.buffer_kib,
        a.rounds
    );
    if let Some(e) = &kernel_missing {
        let _ = writeln!(
            md,
            "**No kernel comparison in this run**: the emulated path could not be set up \
             (`{e}`).\n"
        );
    }
    let _ = writeln!(md, "## Goodput against the sender's loss rate\n");
    if kernel_missing.is_none() {
        let _ = writeln!(
            md,
            "| loss | sixstack Mbit/s | of its loss-free | frames lost | kernel Mbit/s | of its \
             loss-free | kernel retransmits | sixstack / kernel |\n|---|---|---|---|---|---|---|---|"
        );
    } else {
        let _ = writeln!(
            md,
            "| loss | sixstack Mbit/s | of its loss-free | frames lost |\n|---|---|---|---|"
        );
    }
    let k0 = recovery::median(runs[0].iter().map(|t| t.goodput_mbit).collect());
    for (i, &p) in rates.iter().enumerate() {
        let (g, share, lost, gm) = match &six[i] {
            Ok(s) => (
                format!("{:.0}", s.goodput_mbit),
                format!("{:.0} %", s.goodput_mbit * 100.0 / clean.goodput_mbit),
                s.dropped.to_string(),
                s.goodput_mbit,
            ),
            Err(e) => ("stalled".into(), "0 %".into(), e.clone(), 0.0),
        };
        let _ = write!(md, "| {:.1} % | {g} | {share} | {lost} |", p * 100.0);
        if kernel_missing.is_none() {
            let k = recovery::median(runs[i].iter().map(|t| t.goodput_mbit).collect());
            let kr = recovery::median(runs[i].iter().map(|t| t.retransmits as f64).collect());
            let _ = write!(
                md,
                " {k:.0} | {:.0} % | {kr:.0} | {:.2} |",
                k * 100.0 / k0,
                gm / k
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "\n## Cost of a burst of losses (sixstack)\n\n`length` consecutive frames of the \
         sender lost every {every} frames; the extra time of the transfer over the loss-free \
         one, per burst.\n\n| burst (frames) | bursts | transfer s | extra per burst ms |\n\
         |---|---|---|---|"
    );
    for (length, t) in &burst_rows {
        match t {
            Ok(t) => {
                let n = (t.dropped / length).max(1);
                let extra = (t.secs - clean.secs) * 1000.0 / n as f64;
                let _ = writeln!(md, "| {length} | {n} | {:.3} | {:.1} |", t.secs, extra);
            }
            Err(e) => {
                let _ = writeln!(md, "| {length} | - | stalled ({e}) | - |");
            }
        }
    }
    let _ = writeln!(
        md,
        "\n## Window size at 0.1 % loss (sixstack)\n\nThe same transfer with other socket \
         buffers; \"stalled\": no end within {} s of virtual time.\n\n| buffers KiB | Mbit/s \
         | transfer s | frames lost |\n|---|---|---|---|",
        recovery::VIRTUAL_LIMIT_S
    );
    for (kib, t) in &window_rows {
        match t {
            Ok(t) => {
                let _ = writeln!(
                    md,
                    "| {kib} | {:.0} | {:.3} | {} |",
                    t.goodput_mbit, t.secs, t.dropped
                );
            }
            Err(e) => {
                let _ = writeln!(md, "| {kib} | stalled | - | {e} |");
            }
        }
    }
    let out = a.dir.join(format!("{}-recovery.md", today()));
    std::fs::write(&out, &md).map_err(|e| format!("{}: {e}", out.display()))?;
    print!("{md}");
    eprintln!("written: {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn bench_mix(a: MixArgs) -> Result<ExitCode, String> {
    use sixstack_bench::harness;
    if let Some(input) = &a.report {
        let text =
            std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", input.display()))?;
        print!("{}", harness::render_mix_markdown(&raw));
        return Ok(ExitCode::SUCCESS);
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let sixstack = a.sixstack.unwrap_or_else(|| me.with_file_name("sixstack"));
    if !sixstack.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release) or pass --sixstack",
            sixstack.display()
        ));
    }
    let date = today();
    let host = sixstack_bench::harness::machine()["host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or("host")
        .to_string();
    let stem = a.dir.join(format!("{date}-{host}-mix"));
    let raw = harness::run_mix(&harness::MixPlan {
        sixstack,
        me,
        rounds: a.rounds.max(1),
        secs: a.secs,
        warmup: a.warmup,
        rate: a.rate,
        streams: a.streams.max(1),
        cicsint: a.cicsint,
        out: stem.with_extension("json"),
    })?;
    let md = harness::render_mix_markdown(&raw);
    let path = stem.with_extension("md");
    std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    print!("{md}");
    eprintln!(
        "wrote {} and {}",
        path.display(),
        stem.with_extension("json").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_report(a: ReportArgs) -> Result<ExitCode, String> {
    use sixstack_bench::harness;
    let text =
        std::fs::read_to_string(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let raw: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let host = raw["machine"]["host"]
        .as_str()
        .unwrap_or("host")
        .to_string();
    let date = today();
    let stem = a.stem.clone().unwrap_or_else(|| format!("{date}-{host}"));
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let svg = format!("{stem}.svg");
    let md = harness::render_markdown(&raw, &svg);
    let mut files = vec![
        (format!("{stem}.md"), md.clone()),
        (format!("{stem}.json"), text.clone()),
    ];
    // No chart for a report without the kernel table (a TLS or proxy run alone).
    if md.contains(&svg) {
        files.push((svg.clone(), harness::render_svg(&raw)));
    }
    for (name, body) in files {
        let p = a.dir.join(&name);
        std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    println!("{md}");
    println!("report: {}", a.dir.join(format!("{stem}.md")).display());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Rr(a) => rr(a),
        Cmd::KernelEcho(a) => kernel_echo(a),
        Cmd::UdpRr(a) => udp_rr(a),
        Cmd::Crr(a) => resolve(&a.target)
            .and_then(|t| sixstack_bench::run_crr(t, a.secs, a.warmup))
            .map(|r| print_report(&r, a.json)),
        Cmd::TlsHs(a) => resolve(&a.common.target)
            .and_then(|t| {
                sixstack_bench::run_tls_handshakes(
                    t,
                    &a.ca,
                    a.resume,
                    a.tls12,
                    a.common.secs,
                    a.common.warmup,
                )
            })
            .map(|r| print_report(&r, a.common.json)),
        Cmd::TlsBulk(a) => resolve(&a.common.target)
            .and_then(|t| sixstack_bench::run_tls_bulk(t, &a.ca, a.common.secs, a.common.warmup))
            .map(|r| print_report(&r, a.common.json)),
        Cmd::Bulk(a) => resolve(&a.common.target)
            .and_then(|t| {
                sixstack_bench::run_bulk_streams(t, a.common.secs, a.common.warmup, a.streams)
            })
            .map(|r| print_report(&r, a.common.json)),
        Cmd::OpenLoop(a) => resolve(&a.common.target)
            .and_then(|t| {
                sixstack_bench::run_open_loop(
                    t,
                    a.rate,
                    a.size,
                    a.common.secs,
                    a.common.warmup,
                    a.sleep,
                )
            })
            .map(|r| print_report(&r, a.common.json)),
        Cmd::Run(a) => bench_run(a),
        Cmd::Report(a) => bench_report(a),
        Cmd::Mix(a) => bench_mix(a),
        Cmd::Recovery(a) => bench_recovery(a),
        Cmd::Ftp(a) => resolve(&a.common.target).and_then(|target| {
            let op = match a.op.as_str() {
                "retr" => sixstack_bench::ftp::FtpOp::Retr,
                "stor" => sixstack_bench::ftp::FtpOp::Stor,
                other => return Err(format!("unknown --op {other:?} (retr, stor)")),
            };
            let r = sixstack_bench::ftp::run_ftp(&sixstack_bench::ftp::FtpPlan {
                target,
                op,
                streams: a.streams,
                file: a.file,
                size: a.size,
                source: a.source,
                login: a.login,
                ca: a.ca,
                secs: a.common.secs,
                warmup: a.common.warmup,
            });
            Ok(print_report(&r, a.common.json))
        }),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sixstack-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
