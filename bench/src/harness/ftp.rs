//! The FTP comparison of `sixstack-bench run`: sixstack's `[ftp]` server against vsftpd
//! (Debian's, started here with an equivalent configuration), RETR and STOR throughput and
//! concurrent downloads, plain and with explicit FTPS, driven by the same client (curl,
//! [`crate::ftp`]). Not the FTP server itself (that is `services/ftp`), only what the bench
//! starts and reports.
//!
//! Topology on the veth lab: the client's curl processes run in the peer namespace, pinned
//! to core 0; both servers run in the appliance namespace pinned to core 1, sixstack on
//! 10.77.0.2 (AF_XDP, one shard), vsftpd on the kernel's 10.77.0.3 (a process per session,
//! all inheriting the pinning). Both serve the same directory on /dev/shm (tmpfs, so no
//! disk in the way), passive mode on the same port range; sixstack signs on a user with an
//! Argon2id password, vsftpd an anonymous user with the same rights (read, upload,
//! overwrite); a login is nothing beside a transfer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{
    figure, ratio_cell, sh, start_pinned_peer, Cell, Plan, Running, Server, Workload, BENCH_TLS_CA,
};
use super::{Value, BENCH_TLS_DIR};

/// The directory both servers serve (tmpfs); uploads go to `up/` beneath it.
pub(super) const ROOT: &str = "/dev/shm/sixstack-bench-ftp";
/// The control port of both servers.
pub(super) const PORT: u16 = 21;
/// Where vsftpd listens: the kernel server's address in the appliance namespace.
pub(super) const VSFTPD_ADDR: &str = "10.77.0.3";
/// Passive data ports, the same range for both servers.
const PASSIVE: (u16, u16) = (50000, 50999);
/// sixstack's user (vsftpd's is `anonymous`).
const USER: &str = "bench";
const PASSWORD: &str = "sixstack-bench-ftp";
/// sixstack's security file.
const USERS: &str = "/run/sixstack/bench-ftp-users.toml";
/// The file size of the one-stream workloads, MiB; the concurrent ones move 64 MiB files.
const BIG_MIB: u64 = 256;
const SMALL_MIB: u64 = 64;

/// The streams a workload runs (its `--streams`, else 1).
fn streams(w: &Workload) -> usize {
    w.args
        .iter()
        .position(|a| *a == "--streams")
        .and_then(|i| w.args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Whether an FTP workload runs over explicit FTPS.
pub(super) fn is_tls(w: &Workload) -> bool {
    w.name.ends_with("_tls")
}

/// The size of the files a workload moves, MiB (`--ftp-mib` overrides it for every one).
fn file_mib(w: &Workload, plan: &Plan) -> u64 {
    plan.ftp_mib
        .unwrap_or(if streams(w) == 1 { BIG_MIB } else { SMALL_MIB })
}

fn file_name(mib: u64) -> String {
    format!("f{mib}m")
}

/// The client's arguments beyond the workload's own: the file, the login, the CA for FTPS.
pub(super) fn client_args(server: Server, w: &Workload, plan: &Plan) -> Vec<String> {
    let mib = file_mib(w, plan);
    let name = file_name(mib);
    let login = if server == Server::Vsftpd {
        "anonymous:bench".to_string()
    } else {
        format!("{USER}:{PASSWORD}")
    };
    let mut v = vec![
        "--file".to_string(),
        name.clone(),
        "--size".to_string(),
        (mib << 20).to_string(),
        "--source".to_string(),
        format!("{ROOT}/{name}"),
        "--login".to_string(),
        login,
    ];
    if is_tls(w) {
        v.extend(["--ca".to_string(), BENCH_TLS_CA.to_string()]);
    }
    v
}

/// Makes the served directory with a file of each size the plan moves (pseudo-random
/// bytes), the upload directory (writable by vsftpd's `ftp` user), and sixstack's security
/// file with the bench user's password set by `sixstack ftp passwd`.
pub(super) fn prepare(plan: &Plan) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(ROOT);
    let up = Path::new(ROOT).join("up");
    std::fs::create_dir_all(&up).map_err(|e| format!("{}: {e}", up.display()))?;
    sh(Command::new("chmod").arg("777").arg(&up))?;
    let mut sizes: Vec<u64> = plan
        .workloads
        .iter()
        .filter(|w| w.is_ftp())
        .map(|w| file_mib(w, plan))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for mib in sizes {
        let path = Path::new(ROOT).join(file_name(mib));
        let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // xorshift: incompressible, cheap, the same bytes every session.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for chunk in block.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    std::fs::write(
        USERS,
        format!("[[user]]\nname = \"{USER}\"\nhome = \"{ROOT}\"\naccess = \"read-write\"\n"),
    )
    .map_err(|e| format!("{USERS}: {e}"))?;
    let mut child = Command::new(&plan.sixstack)
        .args(["ftp", "passwd", USER, "--users", USERS])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sixstack ftp passwd: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{PASSWORD}");
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("sixstack ftp passwd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sixstack ftp passwd: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The appliance's `[ftp]` section: the same passive range as vsftpd, no delay on a failed
/// login, connection limits above the bench's streams.
pub(super) fn appliance_section() -> String {
    format!(
        "\n[ftp]\nport = {PORT}\nusers = \"{USERS}\"\npassive_ports = [{}, {}]\n\
         failure_delay_ms = 0\nmax_clients = 256\nmax_per_address = 64\n",
        PASSIVE.0, PASSIVE.1
    )
}

/// vsftpd's configuration: standalone in the foreground on the kernel address, anonymous
/// with read, upload and overwrite in the same directory, passive on the same range, no
/// transfer log, no seccomp sandbox (it trips over newer C libraries); with `tls`, explicit
/// FTPS with the bench's certificate, optional as on sixstack, data connections required
/// to resume the control connection's session (`require_ssl_reuse`, as sixstack's
/// `require_data_resumption`).
pub(super) fn vsftpd_config(tls: bool) -> String {
    let mut s = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address={VSFTPD_ADDR}\nlisten_port={PORT}\n\
         background=NO\nanonymous_enable=YES\nno_anon_password=YES\nanon_root={ROOT}\n\
         local_enable=NO\nwrite_enable=YES\nanon_upload_enable=YES\n\
         anon_other_write_enable=YES\nanon_umask=022\npasv_enable=YES\n\
         pasv_min_port={}\npasv_max_port={}\nseccomp_sandbox=NO\n\
         secure_chroot_dir=/var/run/vsftpd/empty\nxferlog_enable=NO\nmax_clients=256\n\
         max_per_ip=64\n",
        PASSIVE.0, PASSIVE.1
    );
    if tls {
        let _ = write!(
            s,
            "ssl_enable=YES\nrsa_cert_file={BENCH_TLS_DIR}/server.pem\n\
             rsa_private_key_file={BENCH_TLS_DIR}/server.key\nallow_anon_ssl=YES\n\
             force_anon_logins_ssl=NO\nforce_anon_data_ssl=NO\nrequire_ssl_reuse=YES\n\
             ssl_ciphers=HIGH\nssl_sslv2=NO\nssl_sslv3=NO\n"
        );
    }
    s
}

/// Writes vsftpd's configuration and starts it in the appliance namespace, pinned to core 1.
pub(super) fn start_vsftpd(tls: bool) -> Result<Running, String> {
    let _ = std::fs::create_dir_all("/var/run/vsftpd/empty");
    let cfg = std::env::temp_dir().join("sixstack-bench-vsftpd.conf");
    std::fs::write(&cfg, vsftpd_config(tls)).map_err(|e| format!("{}: {e}", cfg.display()))?;
    start_pinned_peer("vsftpd", &["vsftpd"], &cfg)
}

/// vsftpd's version as the run recorded it, for the report.
fn vsftpd_version(raw: &Value) -> String {
    raw["vsftpd"]
        .as_str()
        .filter(|v| !v.is_empty())
        .map_or_else(|| "vsftpd".to_string(), str::to_string)
}

/// vsftpd's version line, asked once per run (stored with the raw results).
pub(super) fn probe_vsftpd_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "vsftpd"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("vsftpd {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_default()
}

/// The workloads of the table, in order.
const NAMES: [&str; 8] = [
    "ftp_retr_1stream",
    "ftp_stor_1stream",
    "ftp_retr_4streams",
    "ftp_retr_16streams",
    "ftp_retr_1stream_tls",
    "ftp_stor_1stream_tls",
    "ftp_retr_4streams_tls",
    "ftp_retr_16streams_tls",
];

/// A cell's figure, or nothing where every run failed.
type Pick = fn(&Cell) -> Option<f64>;

fn rate(c: &Cell) -> Option<f64> {
    (c.failed == 0 || c.gbps > 0.0).then_some(c.gbps)
}

fn per_core(c: &Cell, cores: f64) -> Option<f64> {
    rate(c).filter(|_| cores > 0.0).map(|g| g / cores)
}

/// The "FTP vs vsftpd" section, when any FTP workload ran.
pub(super) fn render(s: &mut String, raw: &Value, cells: &BTreeMap<(String, String), Cell>) {
    let get = |w: &str, srv: &str| cells.get(&(w.to_string(), srv.to_string())).cloned();
    if NAMES
        .iter()
        .all(|w| get(w, "sixstack-ftp").is_none() && get(w, "vsftpd").is_none())
    {
        return;
    }
    let _ = writeln!(
        s,
        "\n**FTP vs vsftpd** (sixstack's `[ftp]` server over AF_XDP, one shard, against {} \
         from Debian on the kernel's stack, each pinned to core 1; the client is curl, \
         passive mode, pinned to core 0 with one process per stream, each stream moving a \
         file after another for the run: {}; files on /dev/shm (tmpfs), RETR \
         into /dev/null, STOR from the served file. `_tls`: explicit FTPS (AUTH TLS, PROT P, \
         the data connection resuming the control connection's session), the same ECDSA \
         P-256 certificate. A server's cores in use are core 1's non-idle time (/proc/stat) \
         over the run's wall time: vsftpd (every session process) and its softirq work are \
         all that run there; sixstack busy-polls, so its core is always busy and its shard's \
         busy time is the work. On veth the receiving side's kernel work runs on the sending \
         core: an upload's TCP receive for vsftpd runs on the client's core 0, so the last \
         rows count both cores (medians summed). Ratio = sixstack ÷ vsftpd (for cores, lower \
         is better).\n",
        vsftpd_version(raw),
        raw["ftp_mib"].as_u64().map_or_else(
            || format!("{BIG_MIB} MiB files with one stream, {SMALL_MIB} MiB with several"),
            |m| format!("{m} MiB files (`--ftp-mib {m}`)")
        )
    );
    let _ = writeln!(s, "| workload | metric | vsftpd | sixstack-ftp | ratio |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    let rows: [(&str, Pick, Pick); 7] = [
        ("Gbit/s", rate, rate),
        (
            "server cores in use (core 1 busy)",
            |c| Some(c.cores),
            |c| Some(c.cores),
        ),
        (
            "server cores in use (vsftpd: core 1 busy; sixstack: shard busy)",
            |c| Some(c.cores),
            |c| Some(c.busy_cores),
        ),
        (
            "Gbit/s per server core (core 1 busy)",
            |c| per_core(c, c.cores),
            |c| per_core(c, c.cores),
        ),
        (
            "Gbit/s per server core (vsftpd: core 1 busy; sixstack: shard busy)",
            |c| per_core(c, c.cores),
            |c| per_core(c, c.busy_cores),
        ),
        (
            "client core in use (core 0 busy)",
            |c| Some(c.client_cores),
            |c| Some(c.client_cores),
        ),
        (
            "Gbit/s per core of the machine (core 0 + vsftpd's core 1 / sixstack's shard)",
            |c| per_core(c, c.cores + c.client_cores),
            |c| per_core(c, c.busy_cores + c.client_cores),
        ),
    ];
    for w in NAMES {
        let (v, x) = (get(w, "vsftpd"), get(w, "sixstack-ftp"));
        if v.is_none() && x.is_none() {
            continue;
        }
        for (metric, fv, fx) in rows {
            let (a, b) = (v.as_ref().and_then(fv), x.as_ref().and_then(fx));
            let _ = writeln!(
                s,
                "| {w} | {metric} | {} | {} | {} |",
                figure(a),
                figure(b),
                ratio_cell(b, a)
            );
        }
    }
    let mut lines = Vec::new();
    for w in NAMES {
        if let (Some(v), Some(x)) = (get(w, "vsftpd"), get(w, "sixstack-ftp")) {
            if let (Some(vc), Some(xc), Some(xb)) = (
                per_core(&v, v.cores),
                per_core(&x, x.cores),
                per_core(&x, x.busy_cores),
            ) {
                let machine = match (
                    per_core(&v, v.cores + v.client_cores),
                    per_core(&x, x.busy_cores + x.client_cores),
                ) {
                    (Some(vm), Some(xm)) if v.client_cores > 0.0 => {
                        format!(", {:.2}× per core of the machine", xm / vm)
                    }
                    _ => String::new(),
                };
                lines.push(format!(
                    "{w}: {:.2}× counting sixstack's core, {:.2}× counting its shard's busy \
                     time{machine}",
                    xc / vc,
                    xb / vc
                ));
            }
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            s,
            "\nGbit/s per server core, sixstack ÷ vsftpd (the aim is ≥ 1.2×):\n"
        );
        for l in lines {
            let _ = writeln!(s, "- {l}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{render_markdown, render_svg, workloads};
    use super::*;
    use serde_json::json;

    #[test]
    fn ftp_section_rates_per_core_and_marks_failures() {
        // 10 files of 64 MiB a second: 5.37 Gbit/s.
        let run = |w: &str, srv: &str, tps: f64, core: f64, busy: f64, errors: u64| {
            json!({"round": 1, "workload": w, "server": srv,
                   "result": {"tps": tps, "transactions": tps * 5.0, "errors": errors,
                              "size": 64u64 << 20, "latency_us": {"p50": 1.0, "p99": 2.0}},
                   "server_cpu_s": 1.0, "server_core_softirq_s": 0.0,
                   "server_core_busy_s": core, "shard_busy_s": busy, "wall_s": 6.0})
        };
        let raw = json!({"machine": {"host": "h", "cores": 2, "cpu": "c", "kernel": "k"},
               "secs": 5, "rounds": 1, "pinning": "p", "vsftpd": "vsftpd 3.0.3-13", "runs": [
               run("ftp_retr_1stream", "vsftpd", 10.0, 6.0, 0.0, 0),
               run("ftp_retr_1stream", "sixstack-ftp", 12.0, 6.0, 3.0, 0),
               run("ftp_stor_1stream_tls", "vsftpd", 0.0, 0.1, 0.0, 1),
               run("ftp_stor_1stream_tls", "sixstack-ftp", 2.0, 6.0, 1.5, 0)]});
        let md = render_markdown(&raw, "x.svg");
        assert!(!md.contains("| ftp_retr_1stream | per second |"), "{md}");
        assert!(!render_svg(&raw).contains("ftp_"));
        assert!(md.contains("vsftpd 3.0.3-13 from Debian"), "{md}");
        for row in [
            "| ftp_retr_1stream | Gbit/s | 5.37 | 6.44 | 1.20× |",
            "| ftp_retr_1stream | server cores in use (vsftpd: core 1 busy; sixstack: shard busy) | 1.00 | 0.50 | 0.50× |",
            "| ftp_retr_1stream | Gbit/s per server core (vsftpd: core 1 busy; sixstack: shard busy) | 5.37 | 12.88 | 2.40× |",
            // Every vsftpd run failed: no figure, so the smoke's grep fails too.
            "| ftp_stor_1stream_tls | Gbit/s | - | 1.07 | - |",
            "- ftp_retr_1stream: 1.20× counting sixstack's core, 2.40× counting its shard's busy time",
        ] {
            assert!(md.contains(row), "{row}\n{md}");
        }
    }

    #[test]
    fn ftp_workloads_run_on_the_ftp_servers_only_with_their_files() {
        let all = workloads(false);
        let ftp: Vec<&Workload> = all.iter().filter(|w| w.is_ftp()).collect();
        assert_eq!(ftp.len(), NAMES.len());
        for w in &ftp {
            assert!(NAMES.contains(&w.name));
            assert!(Server::SixstackFtp.runs(w) && Server::Vsftpd.runs(w));
            assert!(!Server::Xdp.runs(w) && !Server::Kernel.runs(w) && !Server::Haproxy.runs(w));
        }
        assert!(all
            .iter()
            .filter(|w| !w.is_ftp())
            .all(|w| !Server::Vsftpd.runs(w) && !Server::SixstackFtp.runs(w)));
        let w16 = ftp
            .iter()
            .find(|w| w.name == "ftp_retr_16streams_tls")
            .unwrap();
        assert_eq!(streams(w16), 16);
        assert!(is_tls(w16));
        let plan = Plan {
            sixstack: "sixstack".into(),
            me: "me".into(),
            rounds: 1,
            secs: 1.0,
            warmup: 0.0,
            workloads: all.clone(),
            servers: vec![Server::Vsftpd],
            out: "o".into(),
            ftp_mib: None,
        };
        let args = client_args(Server::Vsftpd, w16, &plan);
        assert_eq!(args[..4], ["--file", "f64m", "--size", "67108864"]);
        assert!(args.contains(&"anonymous:bench".to_string()));
        assert_eq!(args[args.len() - 2..], ["--ca", BENCH_TLS_CA]);
        let w1 = ftp.iter().find(|w| w.name == "ftp_stor_1stream").unwrap();
        let args = client_args(
            Server::SixstackFtp,
            w1,
            &Plan {
                ftp_mib: Some(1),
                ..plan
            },
        );
        assert_eq!(args[..4], ["--file", "f1m", "--size", "1048576"]);
        assert!(args.contains(&format!("{USER}:{PASSWORD}")));
        assert!(!args.contains(&"--ca".to_string()));
    }
}
