//! The control socket end to end: a `ControlServer` on a temporary path, queried by the
//! client, by raw clients sending garbage, and by a client running as another user.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sixstack::control::{
    query_stats, ControlError, ControlServer, Histo, ShardReport, StatsReport, StatsSource,
};

/// A directory under the system temp dir, removed when dropped; mode 0755 so that a client
/// running as another user can reach a socket inside.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sixstack-control-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }

    fn sock(&self) -> PathBuf {
        self.0.join("control.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shard(i: u32) -> ShardReport {
    ShardReport {
        shard: i,
        core: Some(i),
        queue: i,
        link: format!("pipe q{i}"),
        rx_packets: 100 + u64::from(i),
        rx_bytes: 150_000,
        tx_packets: 90,
        tx_bytes: 100_000,
        drops: BTreeMap::from([("checksum".to_string(), u64::from(i))]),
        handoffs_out: 1,
        handoffs_in: 2,
        conns_open: 3,
        conns_opened: 4,
        conns_accepted: 5,
        conns_reset: 0,
        tasks: 6,
        priority_changes: 0,
        runaways: 0,
        busy_ns: 1_000_000,
        idle_ns: 9_000_000,
        np_ns: 1_000,
        np_ratio: 0.0,
        loop_us: Histo {
            count: 10,
            p50_us: 1.0,
            p90_us: 2.0,
            p99_us: 3.0,
            p999_us: 4.0,
            max_us: 5.0,
        },
        request_us: Histo::default(),
        counters: BTreeMap::from([("tls_full".to_string(), 10 + u64::from(i))]),
    }
}

fn report() -> StatsReport {
    StatsReport::new(
        42.0,
        vec![shard(0), shard(1)],
        vec!["echo tcp/7 on shards [0, 1]".into()],
    )
}

fn source() -> StatsSource {
    Arc::new(report)
}

fn connect(path: &Path) -> (BufReader<UnixStream>, UnixStream) {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

fn ask(r: &mut BufReader<UnixStream>, w: &mut UnixStream, req: &[u8]) -> serde_json::Value {
    w.write_all(req).unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.ends_with('\n'), "one line per answer: {line:?}");
    serde_json::from_str(&line).unwrap()
}

#[test]
fn serves_stats_and_survives_garbage() {
    let dir = TempDir::new();
    let path = dir.sock();
    let server = ControlServer::start(&path, None, source()).unwrap();
    assert_eq!(server.path(), path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);

    assert_eq!(query_stats(&path).unwrap(), report());

    // A client that connects and says nothing does not hold the others up.
    let _idle = UnixStream::connect(&path).unwrap();

    // Garbage, then a good request on the same connection.
    let (mut r, mut w) = connect(&path);
    let v = ask(&mut r, &mut w, b"hello there\n");
    assert_eq!(v["ok"], false);
    assert!(
        v["error"].as_str().unwrap().contains("unknown command"),
        "{v}"
    );
    let v = ask(&mut r, &mut w, b"\xff\xfe\x00\n");
    assert_eq!(v["ok"], false);
    let v = ask(&mut r, &mut w, b"\n");
    assert_eq!(v["ok"], false);
    let v = ask(&mut r, &mut w, b"stats\n");
    assert_eq!(v["ok"], true);
    let got: StatsReport = serde_json::from_value(v["stats"].clone()).unwrap();
    assert_eq!(got, report());

    // An over-long line: an error line, then the connection is closed.
    let (mut r, mut w) = connect(&path);
    let mut long = vec![b'x'; 5000];
    long.push(b'\n');
    let v = ask(&mut r, &mut w, &long);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("longer"), "{v}");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "closed after the error");

    // A client that hangs up mid-line does no harm either.
    {
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"sta").unwrap();
    }

    // Still serving.
    assert_eq!(query_stats(&path).unwrap(), report());
    server.stop();
    assert!(!path.exists(), "socket file removed on stop");
}

#[test]
fn second_server_on_a_live_path_is_refused() {
    let dir = TempDir::new();
    let path = dir.sock();
    let server = ControlServer::start(&path, None, source()).unwrap();
    let err = ControlServer::start(&path, None, source()).unwrap_err();
    assert!(matches!(err, ControlError::InUse(_)), "{err:?}");
    assert!(err.to_string().contains("already answers"), "{err}");
    // The first one is unharmed.
    assert_eq!(query_stats(&path).unwrap(), report());
    drop(server);
    assert!(!path.exists(), "socket file removed on drop");
    assert!(matches!(
        query_stats(&path),
        Err(ControlError::Connect { .. })
    ));
}

#[test]
fn stale_socket_is_replaced_other_files_are_not() {
    let dir = TempDir::new();
    let path = dir.sock();
    // A socket left behind by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ControlServer::start(&path, None, source()).unwrap();
    assert_eq!(query_stats(&path).unwrap(), report());
    server.stop();

    std::fs::write(&path, b"not a socket").unwrap();
    let err = ControlServer::start(&path, None, source()).unwrap_err();
    assert!(matches!(err, ControlError::NotASocket(_)), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[test]
fn creates_the_directory_and_stats_command_reads_it() {
    let dir = TempDir::new();
    let path = dir.0.join("run/sixstack/control.sock");
    let server = ControlServer::start(&path, None, source()).unwrap();
    sixstack::stats_view::stats_command(&path, false, None).unwrap();
    sixstack::stats_view::stats_command(&path, true, None).unwrap();
    assert!(sixstack::stats_view::stats_command(&path, false, Some(0.0)).is_err());
    server.stop();
    let err = sixstack::stats_view::stats_command(&path, false, None).unwrap_err();
    assert!(err.contains("cannot connect"), "{err}");
}

/// What a client running as uid/gid 65534 with no other groups gets: the answer line, or
/// `connect-error ...` when the kernel refuses the connection. `None` when the test cannot
/// run here (not root, no setpriv or python3).
fn as_nobody(path: &Path) -> Option<String> {
    const SCRIPT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-error", e)
    sys.exit(0)
s.settimeout(5)
try:
    s.sendall(b"stats\n")
except OSError:
    pass
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
sys.stdout.write(buf.decode())
"#;
    let python = ["/usr/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return None;
    }
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            python,
            "-c",
            SCRIPT,
        ])
        .arg(path)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn only_root_or_the_group_is_served() {
    let dir = TempDir::new();
    let path = dir.sock();

    // No group: the file permissions keep uid 65534 out...
    let server = ControlServer::start(&path, None, source()).unwrap();
    let Some(out) = as_nobody(&path) else {
        eprintln!("skipping: needs root, setpriv and python3");
        return;
    };
    assert!(out.starts_with("connect-error"), "{out}");
    // ...and if they are loosened, the server's own check still refuses it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false, "{out}");
    assert!(
        v["error"].as_str().unwrap().contains("permission denied"),
        "{out}"
    );
    // Root is still served.
    assert_eq!(query_stats(&path).unwrap(), report());
    server.stop();

    // With the group: the file belongs to it and its members are served.
    let server = ControlServer::start(&path, Some(65534), source()).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.gid(), 65534);
        assert_eq!(m.mode() & 0o777, 0o660);
    }
    let out = as_nobody(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true, "{out}");
    let got: StatsReport = serde_json::from_value(v["stats"].clone()).unwrap();
    assert_eq!(got, report());
    server.stop();
}

#[test]
fn workload_policy_changes_at_run_time_all_or_nothing() {
    use sixstack_stack::workload::{Board, Policy};
    let dir = TempDir::new();
    let path = dir.sock();
    let board = Board::new(Policy::default());
    // Without a board the commands are refused, with a reason.
    let plain = ControlServer::start(&path, None, source()).unwrap();
    let e = sixstack::control::query_workload(&path).unwrap_err();
    assert!(e.to_string().contains("no workload manager"), "{e}");
    plain.stop();
    let server =
        ControlServer::start_with(&path, None, source(), None, Some(board.clone())).unwrap();
    let v = sixstack::control::query_workload(&path).unwrap();
    assert!(v.policy.enabled);
    assert_eq!(v.policy.cicsint, 100);
    let line = sixstack::control::workload_set(
        &path,
        &["cicsint=4000".into(), "runaway_action=demote".into()],
    )
    .unwrap();
    assert!(line.contains("cicsint=4000"), "{line}");
    assert_eq!(board.policy().cicsint, 4000);
    let v = sixstack::control::query_workload(&path).unwrap();
    assert_eq!(v.policy.runaway_action, "demote");
    // A bad value anywhere in the line changes nothing.
    for bad in [
        vec!["cicsint=1".to_string(), "prtymax=255".to_string()],
        vec!["interval_ms=0".to_string()],
        vec!["speed=9".to_string()],
        vec!["cicsint".to_string()],
    ] {
        let e = sixstack::control::workload_set(&path, &bad).unwrap_err();
        assert!(matches!(e, ControlError::Refused(_)), "{bad:?}: {e}");
    }
    assert_eq!(board.policy().cicsint, 4000);
    // The raw protocol says the same.
    let (mut r, mut w) = connect(&path);
    let v = ask(&mut r, &mut w, b"workload set enabled=maybe\n");
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("enabled"), "{v}");
    server.stop();
}
