//! The proxy comparison of `sixstack-bench run`: sixstack's load-balancing listener against
//! HAProxy (Debian's, started here) in front of the same three kernel backends, driven by
//! the same client, with a direct-to-a-backend baseline for the added latency. Not the
//! proxy itself (that is `services/proxy`), only what the bench starts and reports.
//!
//! Topology on the veth lab: the backends (`sixstack-bench kernel-echo`, echo and discard)
//! and the client run in the peer namespace on the peer's address, pinned to core 0; both
//! proxies run in the appliance namespace pinned to core 1, sixstack on 10.77.0.2 (AF_XDP),
//! HAProxy on the kernel's 10.77.0.3. A proxied connection crosses the veth twice each way
//! (client to proxy, proxy to backend); the direct baseline reaches the backend over the
//! peer namespace's loopback, so "added" latency is everything the proxy path costs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};

use super::{figure, ratio_cell, sh, start_pinned_peer, Cell, Metric, Plan, Running};

/// The proxies' listener for the echo backends (both proxies, on their own address).
pub(super) const ECHO_PORT: u16 = 8007;
/// The proxies' listener for the discard backends.
pub(super) const DISCARD_PORT: u16 = 8009;
/// The backends' address: the peer's, in the client's namespace.
pub(super) const BACKEND_ADDR: &str = "10.77.0.1";
/// Each backend's (echo, discard) ports.
pub(super) const BACKENDS: [(u16, u16); 3] = [(7001, 7101), (7002, 7102), (7003, 7103)];
/// Where HAProxy listens: the kernel server's address in the appliance namespace.
pub(super) const HAPROXY_ADDR: &str = "10.77.0.3";

/// The port the direct baseline uses in place of a proxy's listener: the first backend's.
pub(super) fn direct_port(proxy_port: u16) -> u16 {
    if proxy_port == DISCARD_PORT {
        BACKENDS[0].1
    } else {
        BACKENDS[0].0
    }
}

/// `[[proxy]]` sections for the appliance: round robin over the backends, no active
/// health checks (HAProxy gets none either).
pub(super) fn appliance_section() -> String {
    let mut s = String::new();
    // The bulk listener gets the window the appliance's own bulk service gets.
    for (name, port, pick, buffers) in [
        ("echo", ECHO_PORT, 0usize, ""),
        (
            "discard",
            DISCARD_PORT,
            1usize,
            "rx_buffer = 131072\ntx_buffer = 131072\n",
        ),
    ] {
        let _ = write!(
            s,
            "\n[[proxy]]\nname = \"{name}\"\nport = {port}\nalgorithm = \"round_robin\"\n\
             check_interval_ms = 0\n{buffers}"
        );
        for b in BACKENDS {
            let p = if pick == 0 { b.0 } else { b.1 };
            let _ = write!(s, "\n[[proxy.backend]]\naddress = \"{BACKEND_ADDR}:{p}\"\n");
        }
    }
    s
}

/// HAProxy's configuration: TCP mode, round robin, one thread on core 1, no health checks,
/// no logging, connection limits far above what one client opens (and within a file
/// descriptor limit of 20 000: HAProxy wants two descriptors per connection).
pub(super) fn haproxy_config() -> String {
    let mut s = String::from(
        "global\n    nbthread 1\n    cpu-map 1/1 1\n    maxconn 8000\n\n\
         defaults\n    mode tcp\n    maxconn 8000\n    timeout connect 2s\n    \
         timeout client 30s\n    timeout server 30s\n",
    );
    for (name, port, pick) in [
        ("echo", ECHO_PORT, 0usize),
        ("discard", DISCARD_PORT, 1usize),
    ] {
        let _ = write!(
            s,
            "\nfrontend {name}\n    bind {HAPROXY_ADDR}:{port}\n    default_backend {name}\n\n\
             backend {name}\n    balance roundrobin\n"
        );
        for (i, b) in BACKENDS.iter().enumerate() {
            let p = if pick == 0 { b.0 } else { b.1 };
            let _ = writeln!(s, "    server b{} {BACKEND_ADDR}:{p}", i + 1);
        }
    }
    s
}

/// Starts the three backends in the peer namespace, pinned to core 0 with the client.
pub(super) fn start_backends(plan: &Plan) -> Result<Vec<Running>, String> {
    let mut out = Vec::new();
    for (echo, discard) in BACKENDS {
        let child = Command::new("ip")
            .args(["netns", "exec", "sixpeer"])
            .arg(&plan.me)
            .args(["kernel-echo", "--listen"])
            .arg(format!("{BACKEND_ADDR}:{echo}"))
            .args(["--discard", &discard.to_string(), "--pin", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("backend kernel-echo: {e}"))?;
        out.push(Running {
            child,
            socket: None,
        });
    }
    Ok(out)
}

/// Writes HAProxy's configuration next to the other temporary files, checks it, and starts
/// HAProxy in the foreground in the appliance namespace, pinned to core 1.
pub(super) fn start_haproxy() -> Result<Running, String> {
    let cfg = std::env::temp_dir().join("sixstack-bench-haproxy.cfg");
    std::fs::write(&cfg, haproxy_config()).map_err(|e| format!("{}: {e}", cfg.display()))?;
    sh(Command::new("haproxy")
        .arg("-c")
        .arg("-q")
        .arg("-f")
        .arg(&cfg))
    .map_err(|e| format!("haproxy (apt-get install haproxy): {e}"))?;
    start_pinned_peer("haproxy", &["haproxy", "-db", "-f"], &cfg)
}

/// HAProxy's version line, for the report.
fn haproxy_version() -> String {
    sh(Command::new("haproxy").arg("-v"))
        .ok()
        .and_then(|v| v.lines().next().map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(2).map(|v| format!("HAProxy {v}")))
        .unwrap_or_else(|| "HAProxy".into())
}

/// A figure per cell: `None` where it means nothing (the direct baseline's CPU).
type Pick = fn(&Cell) -> Option<f64>;

/// The rate per proxy core: the rate over the cores the proxy kept busy during the run
/// (the warmup runs at the same rate, so the quotient holds over the run's wall time).
fn per_core(rate: f64, cores: f64) -> Option<f64> {
    (cores > 0.0 && rate > 0.0).then(|| rate / cores)
}

/// The rows of one proxy workload: (metric, direct, HAProxy, sixstack).
fn rows(workload: &str) -> Vec<(String, Pick, Pick, Pick)> {
    let bulk = workload.contains("bulk");
    let unit = if bulk {
        "Gbit/s"
    } else if workload.contains("connect") {
        "connections/s"
    } else {
        "transactions/s"
    };
    let rate: Pick = if bulk {
        |c| Some(c.gbps)
    } else {
        |c| Some(c.rate)
    };
    let none: Pick = |_| None;
    let mut v: Vec<(String, Pick, Pick, Pick)> = vec![(unit.to_string(), rate, rate, rate)];
    if !bulk {
        v.push((
            "p50 µs".into(),
            |c| Some(c.p50),
            |c| Some(c.p50),
            |c| Some(c.p50),
        ));
        v.push((
            "p99 µs".into(),
            |c| Some(c.p99),
            |c| Some(c.p99),
            |c| Some(c.p99),
        ));
    }
    v.push((
        "proxy cores in use (core 1 busy)".into(),
        none,
        |c| Some(c.cores),
        |c| Some(c.cores),
    ));
    v.push((
        "proxy cores in use (HAProxy: core 1 busy; sixstack: shard busy)".into(),
        none,
        |c| Some(c.cores),
        |c| Some(c.busy_cores),
    ));
    let (cpu, busy): (Pick, Pick) = if bulk {
        (
            |c| per_core(c.gbps, c.cores),
            |c| per_core(c.gbps, c.busy_cores),
        )
    } else {
        (
            |c| per_core(c.rate, c.cores),
            |c| per_core(c.rate, c.busy_cores),
        )
    };
    v.push((
        format!("{unit} per proxy core (core 1 busy)"),
        none,
        cpu,
        cpu,
    ));
    v.push((
        format!("{unit} per proxy core (HAProxy: core 1 busy; sixstack: shard busy)"),
        none,
        cpu,
        busy,
    ));
    v
}

/// The "Proxy vs HAProxy" section, when any proxy workload ran.
pub(super) fn render(s: &mut String, cells: &BTreeMap<(String, String), Cell>) {
    let get = |w: &str, srv: &str| cells.get(&(w.to_string(), srv.to_string())).cloned();
    let names = [
        "proxy_connect_request_close",
        "proxy_rr_1B_1conn",
        "proxy_bulk_1stream",
    ];
    if names
        .iter()
        .all(|w| get(w, "sixstack-proxy").is_none() && get(w, "haproxy").is_none())
    {
        return;
    }
    let _ = writeln!(
        s,
        "\n**Proxy vs HAProxy** (sixstack's `[[proxy]]` listener over AF_XDP against {} \
         from Debian, `mode tcp`, `nbthread 1`; both round robin over the same three kernel \
         backends with no health checks, both pinned to core 1; the client and the backends \
         share core 0). \"direct\" is the client talking to one backend itself, over the peer \
         namespace's loopback; added latency = proxy − direct in the same run. A proxy's cores \
         in use are core 1's non-idle time (/proc/stat) over the run's wall time: the proxy is \
         all that is pinned there, and unlike process time plus softirq time it counts a \
         softirq tick once. sixstack busy-polls, so its core is always busy; its shards' busy \
         time is the work. Ratio = sixstack ÷ HAProxy (for latency and cores, \
         lower is better).\n",
        haproxy_version()
    );
    let _ = writeln!(
        s,
        "| workload | metric | direct | HAProxy | sixstack-proxy | ratio |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    for w in names {
        let (d, h, x) = (
            get(w, "direct"),
            get(w, "haproxy"),
            get(w, "sixstack-proxy"),
        );
        for (metric, fd, fh, fx) in rows(w) {
            let (a, b, c) = (
                d.as_ref().and_then(fd),
                h.as_ref().and_then(fh),
                x.as_ref().and_then(fx),
            );
            let _ = writeln!(
                s,
                "| {w} | {metric} | {} | {} | {} | {} |",
                figure(a),
                figure(b),
                figure(c),
                ratio_cell(c, b)
            );
        }
        if w.contains("bulk") {
            continue;
        }
        let pcts: [(&str, Metric); 2] = [("p50", |c| c.p50), ("p99", |c| c.p99)];
        for (p, f) in pcts {
            let added = |proxy: &Option<Cell>| match (proxy, &d) {
                (Some(x), Some(d)) if f(x) > 0.0 && f(d) > 0.0 => Some(f(x) - f(d)),
                _ => None,
            };
            let (b, c) = (added(&h), added(&x));
            let _ = writeln!(
                s,
                "| {w} | added {p} µs (vs direct) | - | {} | {} | {} |",
                figure(b),
                figure(c),
                ratio_cell(c, b)
            );
        }
    }
    let w = "proxy_connect_request_close";
    if let (Some(h), Some(x)) = (get(w, "haproxy"), get(w, "sixstack-proxy")) {
        if let (Some(hc), Some(xc), Some(xb)) = (
            per_core(h.rate, h.cores),
            per_core(x.rate, x.cores),
            per_core(x.rate, x.busy_cores),
        ) {
            let _ = writeln!(
                s,
                "\nConnections/s per proxy core: HAProxy {hc:.0}; sixstack {xc:.0} counting its \
                 core ({:.2}×), {xb:.0} counting its shard's busy time ({:.2}×); the aim is ≥ 1.5×.",
                xc / hc,
                xb / hc
            );
        }
    }
}
