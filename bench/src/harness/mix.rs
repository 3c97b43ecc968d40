//! `sixstack-bench mix`: what the workload manager buys short transactions on a saturated
//! shard. Four bulk uploads into the discard service saturate one shard (core 1) while a
//! probe sends 1 KiB requests to the echo service at a fixed rate (open loop, so every
//! mode carries the same offered load and a stall counts against every request it
//! delays). The same mix runs against the appliance with its workload manager off and on
//! (switched at run time over the control socket, in one appliance, so nothing else
//! differs) and against the Linux kernel's stack on the same link and cores; the modes
//! are interleaved round by round. The probe shares core 0 with the bulk senders, so it
//! runs at a real-time priority (`chrt -f 50`) and sleeps between requests: the client's
//! own scheduling would otherwise dominate its tail for every server alike.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{median, sh, Running};

/// The appliance's address on the lab link (one queue, one shard on core 1).
const APPLIANCE: &str = "10.77.0.2";
/// The kernel server's address on the same link.
const KERNEL: &str = "10.77.0.3";
/// The appliance's control socket.
const SOCKET: &str = "/run/sixstack/bench-mix.sock";

/// What to run.
#[derive(Debug, Clone)]
pub struct MixPlan {
    /// The `sixstack` binary.
    pub sixstack: PathBuf,
    /// This binary (clients and the kernel server).
    pub me: PathBuf,
    /// Rounds (each runs every mode once).
    pub rounds: usize,
    /// Measured seconds per run.
    pub secs: f64,
    /// Warmup seconds per run (the manager ranks the bulk tasks within its first
    /// intervals).
    pub warmup: f64,
    /// Probe requests per second.
    pub rate: f64,
    /// Bulk streams.
    pub streams: usize,
    /// The manager's `cicsint` for the run.
    pub cicsint: u64,
    /// Where the raw results go (JSON).
    pub out: PathBuf,
}

/// The modes, in the order of the first round (later rounds rotate it). `alone` is the
/// probe against the appliance with no bulk transfer: the floor the other modes are read
/// against (what the probe itself, the link and the shard's wake-ups cost).
const MODES: [&str; 4] = ["manager-off", "manager-on", "kernel", "alone"];

fn appliance_config(cicsint: u64) -> String {
    format!(
        "[interface]\nname = \"six0\"\ndriver = \"af_xdp\"\nnetns = \"sixapp\"\ncores = [1]\n\n\
         [addresses]\nipv4 = \"{APPLIANCE}/24\"\n\n[control]\nsocket = \"{SOCKET}\"\n\n\
         [workload]\nenabled = true\ncicsint = {cicsint}\n\n\
         [[service]]\nkind = \"echo\"\nport = 7\n\n\
         [[service]]\nkind = \"discard\"\nport = 9\nproto = \"tcp\"\nrx_buffer = 131072\n"
    )
}

/// Brings the lab up and starts the appliance and the kernel server.
fn start(plan: &MixPlan) -> Result<(Vec<Running>, Lab), String> {
    let _ = sh(Command::new(&plan.sixstack).args(["lab", "down"]));
    sh(Command::new(&plan.sixstack).args(["lab", "up", "--queues", "1"]))?;
    let lab = Lab(plan.sixstack.clone());
    let cfg = std::env::temp_dir().join("sixstack-bench-mix.toml");
    let appliance = super::start_appliance(
        &plan.sixstack,
        &cfg,
        &appliance_config(plan.cicsint),
        SOCKET,
    )
    .map_err(|e| format!("the appliance {e}"))?;
    let kernel = Command::new("ip")
        .args(["netns", "exec", "sixapp"])
        .arg(&plan.me)
        .args(["kernel-echo", "--listen", &format!("{KERNEL}:7")])
        .args(["--discard", "9", "--pin", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("kernel-echo: {e}"))?;
    let kernel = Running {
        child: kernel,
        socket: None,
    };
    std::thread::sleep(Duration::from_millis(500));
    Ok((vec![appliance, kernel], lab))
}

/// Takes the lab down when dropped (after the servers, which are dropped first).
struct Lab(PathBuf);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(&self.0)
            .args(["lab", "down"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Switches the appliance's manager on or off and checks that it took.
fn switch(plan: &MixPlan, on: bool) -> Result<(), String> {
    let setting = format!("enabled={on}");
    sh(Command::new(&plan.sixstack).args(["workload", "--socket", SOCKET, "set", &setting]))?;
    // Every shard takes it at its next interval end (100 ms); then the report shows it.
    std::thread::sleep(Duration::from_millis(300));
    let out = sh(Command::new(&plan.sixstack).args(["workload", "--socket", SOCKET, "--json"]))?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("workload --json: {e}"))?;
    if v["policy"]["enabled"].as_bool() != Some(on) {
        return Err(format!(
            "the manager did not switch {}",
            if on { "on" } else { "off" }
        ));
    }
    Ok(())
}

/// Frames deferred so far (all shards).
fn deferred(plan: &MixPlan) -> u64 {
    sh(Command::new(&plan.sixstack).args(["workload", "--socket", SOCKET, "--json"]))
        .ok()
        .and_then(|out| serde_json::from_str::<Value>(&out).ok())
        .and_then(|v| {
            v["shards"].as_array().map(|a| {
                a.iter()
                    .map(|s| s["frames_deferred"].as_u64().unwrap_or(0))
                    .sum()
            })
        })
        .unwrap_or(0)
}

/// One run of the mix against `target`: the bulk streams and the probe together.
fn one(plan: &MixPlan, target: &str, with_bulk: bool) -> Result<(Value, Value), String> {
    let secs = plan.secs.to_string();
    let warmup = plan.warmup.to_string();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", "sixpeer", "taskset", "-c", "0"])
        .arg(&plan.me)
        .args(["bulk", "--streams", &plan.streams.to_string()])
        .args(["--target", &format!("{target}:9"), "--secs", &secs])
        .args(["--warmup", &warmup, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let bulk = if with_bulk {
        Some(cmd.spawn().map_err(|e| format!("bulk client: {e}"))?)
    } else {
        None
    };
    let probe = Command::new("ip")
        .args([
            "netns", "exec", "sixpeer", "taskset", "-c", "0", "chrt", "-f", "50",
        ])
        .arg(&plan.me)
        .args([
            "open-loop",
            "--rate",
            &plan.rate.to_string(),
            "--size",
            "1024",
            "--sleep",
        ])
        .args(["--target", &format!("{target}:7"), "--secs", &secs])
        .args(["--warmup", &warmup, "--json"])
        .output()
        .map_err(|e| format!("probe: {e}"))?;
    let bulk = match bulk {
        Some(b) => Some(
            b.wait_with_output()
                .map_err(|e| format!("bulk client: {e}"))?,
        ),
        None => None,
    };
    let parse = |out: &std::process::Output| -> Value {
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or_else(
            |_| json!({"error": String::from_utf8_lossy(&out.stderr).trim().to_string()}),
        )
    };
    Ok((parse(&probe), bulk.as_ref().map_or(Value::Null, parse)))
}

/// Runs every mode `rounds` times, interleaved; writes and returns the raw results.
pub fn run_mix(plan: &MixPlan) -> Result<Value, String> {
    let (servers, lab) = start(plan)?;
    let mut runs = Vec::new();
    for round in 0..plan.rounds {
        for k in 0..MODES.len() {
            let mode = MODES[(k + round) % MODES.len()];
            let target = match mode {
                "kernel" => KERNEL,
                m => {
                    switch(plan, m != "manager-off")?;
                    APPLIANCE
                }
            };
            let before = deferred(plan);
            let (probe, bulk) = one(plan, target, mode != "alone")?;
            let frames_deferred = deferred(plan).saturating_sub(before);
            let gbit = bulk["tps"].as_f64().map(|t| t * 65536.0 * 8.0 / 1e9);
            eprintln!(
                "round {} {mode}: p50 {} us p99 {} us p99.9 {} us, bulk {} Gbit/s",
                round + 1,
                probe["latency_us"]["p50"],
                probe["latency_us"]["p99"],
                probe["latency_us"]["p99_9"],
                gbit.map_or_else(|| "-".into(), |g| format!("{g:.2}")),
            );
            runs.push(json!({
                "round": round + 1,
                "mode": mode,
                "probe": probe,
                "bulk": bulk,
                "bulk_gbit_s": gbit,
                "frames_deferred": if mode == "kernel" { 0 } else { frames_deferred },
            }));
        }
    }
    drop(servers);
    drop(lab);
    let all = json!({
        "machine": super::machine(),
        "secs": plan.secs,
        "warmup": plan.warmup,
        "rounds": plan.rounds,
        "rate": plan.rate,
        "streams": plan.streams,
        "cicsint": plan.cicsint,
        "pinning": "servers on core 1; bulk senders and the probe (chrt -f 50) on core 0",
        "runs": runs,
    });
    super::write_raw(&plan.out, &all)?;
    Ok(all)
}

/// Medians of one mode's runs: p50, p90, p99, p99.9 (µs), bulk Gbit/s, deferred frames.
fn medians(raw: &Value, mode: &str) -> [Option<f64>; 6] {
    let runs: Vec<&Value> = raw["runs"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["mode"] == mode).collect())
        .unwrap_or_default();
    let col =
        |f: &dyn Fn(&Value) -> Option<f64>| median(runs.iter().filter_map(|r| f(r)).collect());
    [
        col(&|r| r["probe"]["latency_us"]["p50"].as_f64()),
        col(&|r| r["probe"]["latency_us"]["p90"].as_f64()),
        col(&|r| r["probe"]["latency_us"]["p99"].as_f64()),
        col(&|r| r["probe"]["latency_us"]["p99_9"].as_f64()),
        col(&|r| r["bulk_gbit_s"].as_f64()),
        col(&|r| r["frames_deferred"].as_f64()),
    ]
}

/// The Markdown report of a mix run.
pub fn render_mix_markdown(raw: &Value) -> String {
    use std::fmt::Write as _;
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    let mut s = String::new();
    let m = &raw["machine"];
    let _ = writeln!(
        s,
        "# Workload manager: short transactions beside bulk transfers\n\n\
         {} ({} cores, kernel {}). {} bulk uploads into the discard service and a probe of \
         {} requests/s of 1 KiB (open loop) into the echo service, on one shard (core 1); \
         clients on core 0, the probe at `chrt -f 50`. `cicsint` {}. Medians of {} \
         interleaved rounds of {} s (after {} s of warmup). Command: `sixstack-bench mix \
         --rounds {} --secs {}`.\n",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["kernel"].as_str().unwrap_or("?"),
        raw["streams"],
        raw["rate"],
        raw["cicsint"],
        raw["rounds"],
        raw["secs"],
        raw["warmup"],
        raw["rounds"],
        raw["secs"],
    );
    s.push_str("| mode | p50 µs | p90 µs | p99 µs | p99.9 µs | bulk Gbit/s | frames deferred |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    let mut by_mode = Vec::new();
    for mode in MODES {
        let c = medians(raw, mode);
        let _ = writeln!(
            s,
            "| {mode} | {} | {} | {} | {} | {} | {} |",
            num(c[0]),
            num(c[1]),
            num(c[2]),
            num(c[3]),
            c[4].map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            num(c[5]),
        );
        by_mode.push(c);
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a / b < 0.01 => format!("{:.4}", a / b),
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    let (off, on, kernel, alone) = (&by_mode[0], &by_mode[1], &by_mode[2], &by_mode[3]);
    let _ = writeln!(
        s,
        "\n- p99 with the manager on / off: **{}** (aim ≤ 0.2); p50 on / off: {}; p99.9 on / \
         off: {}\n- p99 with the manager on / the kernel's: {}\n- bulk throughput on / off: \
         **{}** (aim ≥ 0.9); off / the kernel's: {}\n- the probe alone (no bulk): p50 {} µs, \
         p99 {} µs; with the manager on beside the bulk the p99 is {}× that floor, with it \
         off {}×",
        ratio(on[2], off[2]),
        ratio(on[0], off[0]),
        ratio(on[3], off[3]),
        ratio(on[2], kernel[2]),
        ratio(on[4], off[4]),
        ratio(off[4], kernel[4]),
        num(alone[0]),
        num(alone[2]),
        ratio(on[2], alone[2]),
        ratio(off[2], alone[2]),
    );
    s.push_str(
        "\nThe kernel row is the bench's kernel server on the same link and core: one epoll \
         thread for echo and a thread per discard connection, under the kernel's default \
         scheduler, with no notion of which work is short. The probe's requests queue \
         behind the bulk threads' turns on the core (open loop: each late request delays the \
         ones after it), which is the situation the workload manager exists for.\n",
    );
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_report_takes_medians_and_ratios() {
        let run = |mode: &str, p99: f64, gbit: f64| {
            json!({"mode": mode, "probe": {"latency_us": {"p50": 100.0, "p90": 150.0,
                   "p99": p99, "p99_9": 2.0 * p99}}, "bulk_gbit_s": gbit,
                   "frames_deferred": 5})
        };
        let raw = json!({
            "machine": {"cpu": "x", "cores": 2, "kernel": "6"},
            "streams": 4, "rate": 1000.0, "cicsint": 2000, "rounds": 3, "secs": 5.0,
            "warmup": 1.0,
            "runs": [run("manager-off", 800.0, 6.0), run("manager-off", 900.0, 6.2),
                     run("manager-off", 1000.0, 6.1), run("manager-on", 150.0, 5.6),
                     run("kernel", 600.0, 7.0),
                     json!({"mode": "alone", "probe": {"latency_us": {"p50": 90.0, "p90": 95.0,
                            "p99": 120.0, "p99_9": 200.0}}, "bulk_gbit_s": null,
                            "frames_deferred": 0})],
        });
        let md = render_mix_markdown(&raw);
        assert!(
            md.contains("| manager-off | 100 | 150 | 900 | 1800 | 6.10 | 5 |"),
            "{md}"
        );
        assert!(md.contains("on / off: **0.17**"), "{md}");
        assert!(md.contains("bulk throughput on / off: **0.92**"), "{md}");
        assert!(md.contains("on / the kernel's: 0.25"), "{md}");
        assert!(
            md.contains("| alone | 90 | 95 | 120 | 200 | - | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("p99 is 1.25× that floor, with it off 7.50×"),
            "{md}"
        );
    }
}
