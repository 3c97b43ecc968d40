//! What `sixstack stats` prints: a table of a [`StatsReport`], its JSON, and the watch
//! loop that redraws per-second rates. It talks to the appliance only through
//! [`query_stats`]; it is not the server (that is [`crate::control`]).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::{query_stats, ratio, ShardReport, StatsReport};

/// ANSI: cursor home, clear screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The shortest and longest `--watch` interval accepted (seconds).
const WATCH_MIN_S: f64 = 0.05;
const WATCH_MAX_S: f64 = 86_400.0;

/// Lays out rows as columns: the first column left-aligned, the others right-aligned.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            if c == 0 {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn pct(f: f64) -> String {
    format!("{:.1}", f * 100.0)
}

fn np_pct(f: f64) -> String {
    format!("{:.2}", f * 100.0)
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `1h02m03s`, `4m05s`, `6.2s`.
fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else {
        format!("{m}m{s:02}s")
    }
}

fn header(r: &StatsReport) -> String {
    format!(
        "sixstack {}, up {}, {} shard{}, np {}%\n",
        r.version,
        duration(r.uptime_s),
        r.shards.len(),
        if r.shards.len() == 1 { "" } else { "s" },
        np_pct(r.np_ratio)
    )
}

/// Connections opened either way: actively and accepted.
fn opened(s: &ShardReport) -> u64 {
    s.conns_opened.saturating_add(s.conns_accepted)
}

fn table_row(name: String, core: String, queue: String, s: &ShardReport) -> Vec<String> {
    vec![
        name,
        core,
        queue,
        s.rx_packets.to_string(),
        s.tx_packets.to_string(),
        mb(s.rx_bytes),
        mb(s.tx_bytes),
        s.drops_total().to_string(),
        format!("{}/{}", s.handoffs_out, s.handoffs_in),
        format!("{}/{}", s.conns_open, opened(s)),
        s.tasks.to_string(),
        pct(s.busy_fraction()),
        np_pct(ratio(s.np_ns, s.busy_ns)),
        us(s.loop_us.p99_us),
    ]
}

fn placement_and_drops(out: &mut String, r: &StatsReport, total: &ShardReport) {
    if total.drops.values().any(|&n| n > 0) {
        let reasons: Vec<String> = total
            .drops
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "drops: {}", reasons.join(", "));
    }
    for p in &r.placement {
        let _ = writeln!(out, "{p}");
    }
}

/// The report as a table: a header line, one row per shard and a total row, then the drop
/// reasons and the placement lines. `conns` shows open/opened, where opened counts active
/// opens and accepts; busy% is `busy / (busy + idle)`; the total row's loop p99 is the
/// worst shard's.
pub fn render_table(r: &StatsReport) -> String {
    let mut rows = vec![[
        "shard",
        "core",
        "queue",
        "rx_pkts",
        "tx_pkts",
        "rx_MB",
        "tx_MB",
        "drops",
        "handoffs(out/in)",
        "conns(open/opened)",
        "tasks",
        "busy%",
        "np%",
        "loop_p99_us",
    ]
    .map(String::from)
    .to_vec()];
    for s in &r.shards {
        rows.push(table_row(
            s.shard.to_string(),
            s.core.map_or_else(|| "-".into(), |c| c.to_string()),
            s.queue.to_string(),
            s,
        ));
    }
    let total = r.total();
    let mut row = table_row("total".into(), String::new(), String::new(), &total);
    // The report's own ratio is authoritative for the whole appliance.
    row[12] = np_pct(r.np_ratio);
    rows.push(row);
    let mut out = header(r);
    out.push_str(&columns(&rows));
    placement_and_drops(&mut out, r, &total);
    service_counters(&mut out, r);
    proxy_tables(&mut out, r);
    if !r.services.is_empty() {
        out.push_str("\nworkload (sixstack workload for more):\n");
        out.push_str(&crate::workload_view::service_table(&r.services));
    }
    out
}

/// One table per proxy listener: every backend's state, connections, failures and bytes.
fn proxy_tables(out: &mut String, r: &StatsReport) {
    for p in &r.proxies {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "proxy {} on port {} ({}), {} clients refused (no backend)",
            p.name, p.port, p.algorithm, p.refused
        );
        let mut rows = vec![[
            "  backend",
            "address",
            "weight",
            "state",
            "active",
            "conns",
            "failures",
            "to_backend_MB",
            "to_client_MB",
        ]
        .map(String::from)
        .to_vec()];
        for b in &p.backends {
            let state = if b.draining {
                format!("draining ({})", b.state)
            } else {
                b.state.clone()
            };
            rows.push(vec![
                format!("  {}", b.name),
                b.address.clone(),
                b.weight.to_string(),
                state,
                b.active.to_string(),
                b.connections.to_string(),
                b.failures.to_string(),
                mb(b.bytes_to_backend),
                mb(b.bytes_to_client),
            ]);
        }
        out.push_str(&columns(&rows));
    }
}

/// One line of service counters, summed over the shards.
fn service_counters(out: &mut String, r: &StatsReport) {
    let mut sum: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for s in &r.shards {
        for (k, v) in &s.counters {
            *sum.entry(k.as_str()).or_default() += v;
        }
    }
    if sum.is_empty() {
        return;
    }
    let parts: Vec<String> = sum.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("counters: {}\n", parts.join(" ")));
}

/// The report as pretty-printed JSON (no trailing newline).
pub fn render_json(r: &StatsReport) -> String {
    serde_json::to_string_pretty(r)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the report: {e}\"}}"))
}

/// Per-second rates between two reports of the same appliance taken `secs` apart: one row
/// per shard of `cur` (a shard missing from `prev` is compared with zeros) and a total.
/// busy% and np% are over the interval; conns shows those open now and new ones per second.
pub fn render_rates(prev: &StatsReport, cur: &StatsReport, secs: f64) -> String {
    let secs = if secs.is_finite() && secs > 0.0 {
        secs
    } else {
        1.0
    };
    let zero = ShardReport::default();
    let rate = |a: u64, b: u64| format!("{:.0}", b.saturating_sub(a) as f64 / secs);
    let mbit = |a: u64, b: u64| format!("{:.2}", b.saturating_sub(a) as f64 * 8.0 / 1e6 / secs);
    let row = |name: String, p: &ShardReport, c: &ShardReport| {
        let busy = c.busy_ns.saturating_sub(p.busy_ns);
        let idle = c.idle_ns.saturating_sub(p.idle_ns);
        let np = c.np_ns.saturating_sub(p.np_ns);
        vec![
            name,
            rate(p.rx_packets, c.rx_packets),
            rate(p.tx_packets, c.tx_packets),
            mbit(p.rx_bytes, c.rx_bytes),
            mbit(p.tx_bytes, c.tx_bytes),
            rate(p.drops_total(), c.drops_total()),
            format!(
                "{}/{}",
                rate(p.handoffs_out, c.handoffs_out),
                rate(p.handoffs_in, c.handoffs_in)
            ),
            format!("{}/{}", c.conns_open, rate(opened(p), opened(c))),
            c.tasks.to_string(),
            pct(ratio(busy, busy.saturating_add(idle))),
            np_pct(ratio(np, busy)),
            us(c.loop_us.p99_us),
        ]
    };
    let mut rows = vec![[
        "shard",
        "rx_pps",
        "tx_pps",
        "rx_Mbps",
        "tx_Mbps",
        "drops/s",
        "handoffs/s(out/in)",
        "conns(open/new/s)",
        "tasks",
        "busy%",
        "np%",
        "loop_p99_us",
    ]
    .map(String::from)
    .to_vec()];
    for c in &cur.shards {
        let p = prev
            .shards
            .iter()
            .find(|p| p.shard == c.shard)
            .unwrap_or(&zero);
        rows.push(row(c.shard.to_string(), p, c));
    }
    let total = cur.total();
    rows.push(row("total".into(), &prev.total(), &total));
    let mut out = header(cur);
    let _ = writeln!(out, "rates over the last {secs:.1}s");
    out.push_str(&columns(&rows));
    placement_and_drops(&mut out, cur, &total);
    proxy_tables(&mut out, cur);
    out
}

/// Writes to stdout; `false` when stdout is gone (e.g. a closed pipe).
fn emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).is_ok() && out.flush().is_ok()
}

/// `sixstack stats [--socket P] [--json] [--watch SECS]`: what `main.rs` calls. Without
/// watch, prints the report once (table or JSON). With watch, redraws every SECS (clearing
/// the screen with ANSI when stdout is a terminal, else printing again) until Ctrl-C; the
/// table then shows per-second rates computed from two consecutive reports, JSON shows
/// each report.
pub fn stats_command(socket: &Path, json: bool, watch: Option<f64>) -> Result<(), String> {
    let render = |r: &StatsReport| {
        if json {
            render_json(r) + "\n"
        } else {
            render_table(r)
        }
    };
    let Some(secs) = watch else {
        let r = query_stats(socket).map_err(|e| e.to_string())?;
        emit(&render(&r));
        return Ok(());
    };
    if !(WATCH_MIN_S..=WATCH_MAX_S).contains(&secs) {
        return Err(format!(
            "--watch takes seconds between {WATCH_MIN_S} and {WATCH_MAX_S}, not {secs}"
        ));
    }
    let interval = Duration::from_secs_f64(secs);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            log::warn!("cannot catch signal {sig}: {e}");
        }
    }
    let tty = std::io::stdout().is_terminal();
    let mut prev: Option<(StatsReport, Instant)> = None;
    while !stop.load(Ordering::Acquire) {
        let r = query_stats(socket).map_err(|e| e.to_string())?;
        let now = Instant::now();
        let mut text = String::new();
        if tty {
            text.push_str(CLEAR);
        }
        match &prev {
            Some((p, then)) if !json && r.uptime_s >= p.uptime_s => {
                // The appliance's own clock is the better base; ours if it did not move.
                let dt = r.uptime_s - p.uptime_s;
                let dt = if dt > 0.0 {
                    dt
                } else {
                    now.duration_since(*then).as_secs_f64()
                };
                text.push_str(&render_rates(p, &r, dt));
            }
            Some(_) if !json => {
                text.push_str("the appliance restarted; totals since then:\n");
                text.push_str(&render_table(&r));
            }
            _ => text.push_str(&render(&r)),
        }
        if !tty && !json {
            text.push('\n');
        }
        if !emit(&text) {
            return Ok(());
        }
        prev = Some((r, now));
        while !stop.load(Ordering::Acquire) && now.elapsed() < interval {
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::control::tests::report;

    #[test]
    fn table_has_rows_and_total() {
        let r = report();
        let t = render_table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("sixstack "), "{t}");
        assert!(lines[1].starts_with("shard"), "{t}");
        assert!(lines[1].contains("loop_p99_us"), "{t}");
        assert!(lines[2].starts_with('0'), "{t}");
        assert!(lines[3].starts_with('1'), "{t}");
        assert!(lines[4].starts_with("total"), "{t}");
        // shard 0: rx 1000, core 2; total rx 3000, busy 3 ms of 9 ms.
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(&cells[..4], &["0", "2", "0", "1000"]);
        let total: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(total[1], "3000");
        assert_eq!(total[7], "4/60", "conns open/opened: {t}");
        assert_eq!(total[9], "33.3", "busy%: {t}");
        assert_eq!(total[10], "0.67", "np%: {t}");
        assert_eq!(total[11], "4.5", "worst loop p99: {t}");
        assert!(t.contains("drops: checksum 6, no_socket 2"), "{t}");
        assert!(t.contains("echo tcp/7 on shards [0, 1]"), "{t}");
        // Service counters, summed over the shards (5 + 10 handshakes, 1 + 1 refused).
        assert!(t.contains("counters: tls_full=15 tls_refused=2"), "{t}");
        // The columns line up.
        assert_eq!(lines[2].len(), lines[3].len());
    }

    #[test]
    fn json_is_the_report() {
        let r = report();
        let back: StatsReport = serde_json::from_str(&render_json(&r)).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn rates() {
        let a = report();
        let mut b = a.clone();
        for s in &mut b.shards {
            s.rx_packets += 2000;
            s.busy_ns += 500_000_000;
            s.idle_ns += 1_500_000_000;
        }
        b.uptime_s += 2.0;
        let t = render_rates(&a, &b, 2.0);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].contains("2.0s"), "{t}");
        let s0: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(s0[1], "1000", "rx_pps: {t}");
        assert_eq!(s0[9], "25.0", "busy%: {t}");
        let total: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(total[0], "total");
        assert_eq!(total[1], "2000", "{t}");
        // A counter that went backwards gives 0, not a huge number.
        let t = render_rates(&b, &a, 1.0);
        assert!(
            t.lines().nth(5).unwrap().split_whitespace().nth(1) == Some("0"),
            "{t}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration(6.25), "6.2s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3723.0), "1h02m03s");
        assert_eq!(duration(f64::NAN), "?");
    }
}
