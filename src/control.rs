//! The control socket: a Unix stream socket served by a control thread (never a shard), and
//! the client that `sixstack stats` uses. It is not the data path: shards publish snapshots
//! of their counters, and the [`StatsSource`] the appliance passes in reads those snapshots.
//!
//! # Protocol
//!
//! Line based and extensible. The client sends one request line (at most
//! [`MAX_REQUEST`] bytes, `\n` terminated); the server answers with one line of JSON and
//! waits for the next request on the same connection until the client closes it.
//!
//! | request  | answer                                  |
//! |----------|-----------------------------------------|
//! | `stats`  | `{"ok":true,"stats":{...StatsReport}}`  |
//! | `proxy drain LISTENER BACKEND` | `{"ok":true,"message":"..."}` |
//! | `proxy enable LISTENER BACKEND` | `{"ok":true,"message":"..."}` |
//! | anything else, not UTF-8, too long | `{"ok":false,"error":"..."}` |
//!
//! A request that is too long ends the connection after the error line; any other bad
//! request leaves it open. Later commands are new words on the request line and new
//! optional fields in the answer.
//!
//! # Who is served
//!
//! The socket file gets mode 0660 and, when a group is given, that group. On top of the
//! file permissions the server checks the peer's credentials (`SO_PEERCRED`): uid 0, the
//! appliance's own effective uid, or a primary gid equal to the configured group. Other
//! peers get an error line and are disconnected.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the appliance listens unless told otherwise; the server creates `/run/sixstack`
/// when it is missing.
pub const DEFAULT_SOCKET: &str = "/run/sixstack/control.sock";

/// The longest request line the server reads, newline included.
pub const MAX_REQUEST: usize = 4096;

/// The longest answer line the client accepts.
const MAX_RESPONSE: usize = 64 << 20;

/// How many clients are served at once; more get a "busy" error line.
const MAX_CLIENTS: usize = 32;

/// A connection with no request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the client waits for the appliance to answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the accept loop looks at the stop flag.
const ACCEPT_TICK_NS: i64 = 100_000_000;

/// A latency distribution, summarised (microseconds).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Histo {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Histo {
    /// From a summary in nanoseconds laid out as `[samples, p50, p90, p99, p99.9, max]`
    /// (the layout of the stack's `ShardStats::loop_ns`).
    pub fn from_ns_summary(ns: &[u64; 6]) -> Histo {
        let us = |v: u64| v as f64 / 1e3;
        Histo {
            count: ns[0],
            p50_us: us(ns[1]),
            p90_us: us(ns[2]),
            p99_us: us(ns[3]),
            p999_us: us(ns[4]),
            max_us: us(ns[5]),
        }
    }
}

/// One shard's counters as published to the control thread.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ShardReport {
    /// Shard index.
    pub shard: u32,
    /// The core the shard is pinned to, if pinned.
    pub core: Option<u32>,
    /// The NIC queue the shard owns.
    pub queue: u32,
    /// The link, described by its driver (e.g. `af_xdp eth0 q3 zero-copy`).
    pub link: String,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Frames handed to another shard.
    pub handoffs_out: u64,
    /// Frames handed over by another shard.
    pub handoffs_in: u64,
    /// TCP connections open now.
    pub conns_open: u64,
    /// TCP connections opened actively (connect).
    pub conns_opened: u64,
    /// TCP connections accepted.
    pub conns_accepted: u64,
    /// TCP connections reset.
    pub conns_reset: u64,
    /// Tasks alive.
    pub tasks: u64,
    /// Task priority changes the workload manager made.
    #[serde(default)]
    pub priority_changes: u64,
    /// Runaway intervals of tasks.
    #[serde(default)]
    pub runaways: u64,
    /// Nanoseconds spent working.
    pub busy_ns: u64,
    /// Nanoseconds spent idle (spinning or asleep).
    pub idle_ns: u64,
    /// Nanoseconds of the busy time spent in serialized (non-parallel) work.
    pub np_ns: u64,
    /// `np_ns / busy_ns`, 0 when the shard has not been busy.
    pub np_ratio: f64,
    /// Shard loop iteration time.
    pub loop_us: Histo,
    /// Request latency, where a service reports it.
    pub request_us: Histo,
    /// Service counters by name (TLS handshakes full/resumed/refused, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

impl ShardReport {
    /// Frames dropped, all reasons together.
    pub fn drops_total(&self) -> u64 {
        self.drops.values().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Fraction of the shard's time spent busy: `busy / (busy + idle)`, 0 when no time
    /// has been accounted yet.
    pub fn busy_fraction(&self) -> f64 {
        ratio(self.busy_ns, self.busy_ns.saturating_add(self.idle_ns))
    }
}

/// Everything `sixstack stats` shows.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StatsReport {
    /// The appliance's version.
    pub version: String,
    /// Seconds since the appliance started.
    pub uptime_s: f64,
    /// One report per shard, in shard order.
    pub shards: Vec<ShardReport>,
    /// Sum of `np_ns` over sum of `busy_ns` across shards.
    pub np_ratio: f64,
    /// Where services run, one line each, e.g. `echo tcp/7 on shards [0, 1]`.
    pub placement: Vec<String>,
    /// Proxy listeners and their backends.
    #[serde(default)]
    pub proxies: Vec<sixstack_proxy::ProxyReport>,
    /// The workload manager's view of each service (velocity of work), all shards
    /// together.
    #[serde(default)]
    pub services: Vec<crate::workload_view::ServiceView>,
}

impl StatsReport {
    /// A report of this build's version, filling in the derived fields: each shard's
    /// `np_ratio` and the overall one.
    pub fn new(uptime_s: f64, mut shards: Vec<ShardReport>, placement: Vec<String>) -> Self {
        for s in &mut shards {
            s.np_ratio = ratio(s.np_ns, s.busy_ns);
        }
        let (np, busy) = shards.iter().fold((0u64, 0u64), |(np, busy), s| {
            (np.saturating_add(s.np_ns), busy.saturating_add(s.busy_ns))
        });
        StatsReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s,
            shards,
            np_ratio: ratio(np, busy),
            placement,
            proxies: Vec::new(),
            services: Vec::new(),
        }
    }

    /// All shards added up. Counters and times are sums, drops are summed per reason,
    /// `np_ratio` is recomputed from the sums; histogram counts are summed and their
    /// percentiles are the worst shard's (an upper bound, not a merged distribution);
    /// `core` is `None` and `link` is empty.
    pub fn total(&self) -> ShardReport {
        let mut t = ShardReport::default();
        for s in &self.shards {
            t.rx_packets = t.rx_packets.saturating_add(s.rx_packets);
            t.rx_bytes = t.rx_bytes.saturating_add(s.rx_bytes);
            t.tx_packets = t.tx_packets.saturating_add(s.tx_packets);
            t.tx_bytes = t.tx_bytes.saturating_add(s.tx_bytes);
            for (reason, n) in &s.drops {
                let e = t.drops.entry(reason.clone()).or_insert(0);
                *e = e.saturating_add(*n);
            }
            t.handoffs_out = t.handoffs_out.saturating_add(s.handoffs_out);
            t.handoffs_in = t.handoffs_in.saturating_add(s.handoffs_in);
            t.conns_open = t.conns_open.saturating_add(s.conns_open);
            t.conns_opened = t.conns_opened.saturating_add(s.conns_opened);
            t.conns_accepted = t.conns_accepted.saturating_add(s.conns_accepted);
            t.conns_reset = t.conns_reset.saturating_add(s.conns_reset);
            t.tasks = t.tasks.saturating_add(s.tasks);
            t.priority_changes = t.priority_changes.saturating_add(s.priority_changes);
            t.runaways = t.runaways.saturating_add(s.runaways);
            t.busy_ns = t.busy_ns.saturating_add(s.busy_ns);
            t.idle_ns = t.idle_ns.saturating_add(s.idle_ns);
            t.np_ns = t.np_ns.saturating_add(s.np_ns);
            worst(&mut t.loop_us, &s.loop_us);
            worst(&mut t.request_us, &s.request_us);
        }
        t.np_ratio = ratio(t.np_ns, t.busy_ns);
        t
    }
}

fn worst(acc: &mut Histo, h: &Histo) {
    acc.count = acc.count.saturating_add(h.count);
    acc.p50_us = acc.p50_us.max(h.p50_us);
    acc.p90_us = acc.p90_us.max(h.p90_us);
    acc.p99_us = acc.p99_us.max(h.p99_us);
    acc.p999_us = acc.p999_us.max(h.p999_us);
    acc.max_us = acc.max_us.max(h.max_us);
}

/// `part / whole`, 0 when `whole` is 0 (the NP ratio is `ratio(np_ns, busy_ns)`).
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Where the report comes from (the appliance passes a closure that reads its shards'
/// published snapshots). It runs on the control thread, never on a shard.
pub type StatsSource = Arc<dyn Fn() -> StatsReport + Send + Sync>;

/// Drains (`true`) or enables a proxy backend: `(listener, backend, drain)`; answers a line
/// for the operator or why it could not. Runs on the control thread.
pub type ProxyControl = Arc<dyn Fn(&str, &str, bool) -> Result<String, String> + Send + Sync>;

/// What went wrong starting the control server or talking to one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The socket's directory was missing and could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A running appliance already answers on the socket path.
    #[error("another sixstack already answers on {0}: stop it first or use another socket")]
    InUse(PathBuf),
    /// Something that is not a socket sits at the path; it is left alone.
    #[error("{0} exists and is not a socket; not replacing it")]
    NotASocket(PathBuf),
    /// Binding the socket, or removing a stale one first, failed.
    #[error("cannot bind {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The socket's mode or group could not be set.
    #[error("cannot set mode/group of {path}: {source}")]
    Permissions {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The control thread could not be started.
    #[error("cannot start the control thread: {0}")]
    Thread(io::Error),
    /// The client could not connect: no appliance runs there, or no permission.
    #[error("cannot connect to {path}: {source} (is the appliance running? is this the right --socket?)")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The connection failed or timed out while sending a request or reading the answer.
    #[error("talking to {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The answer was not the JSON line the protocol promises.
    #[error("malformed answer from the appliance: {0}")]
    BadResponse(String),
    /// The appliance answered with an error (e.g. permission denied).
    #[error("the appliance refused: {0}")]
    Refused(String),
    /// The request cannot be sent as given.
    #[error("{0}")]
    BadRequest(String),
}

/// One answer line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Response {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stats: Option<StatsReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workload: Option<crate::workload_view::WorkloadView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Response {
    fn error(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            stats: None,
            workload: None,
            message: None,
            error: Some(msg.into()),
        }
    }

    fn message(msg: String) -> Response {
        Response {
            ok: true,
            stats: None,
            workload: None,
            message: Some(msg),
            error: None,
        }
    }

    fn line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_else(|e| {
            format!(r#"{{"ok":false,"error":"cannot encode the answer: {e}"}}"#).into_bytes()
        });
        v.push(b'\n');
        v
    }
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    /// `stats`: the report.
    Stats,
    /// `proxy drain|enable LISTENER BACKEND`.
    Proxy {
        drain: bool,
        listener: String,
        backend: String,
    },
    /// `workload`: the managers' report.
    Workload,
    /// `workload set KEY=VALUE ...`: change the policy.
    WorkloadSet(Vec<String>),
}

/// The commands the server knows, for error messages.
const COMMANDS: &str = "stats, proxy drain LISTENER BACKEND, proxy enable LISTENER BACKEND, \
                        workload, workload set KEY=VALUE ...";

impl Request {
    fn parse(line: &[u8]) -> Result<Request, String> {
        let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
        let mut words = text.split_ascii_whitespace();
        let Some(cmd) = words.next() else {
            return Err(format!("empty request; commands: {COMMANDS}"));
        };
        let req = match cmd {
            "stats" => Request::Stats,
            "workload" => match words.next() {
                None => Request::Workload,
                Some("set") => {
                    let settings: Vec<String> = words.map(String::from).collect();
                    if settings.is_empty() || settings.len() > 16 {
                        return Err("usage: workload set KEY=VALUE ... (1 to 16 settings)".into());
                    }
                    return Ok(Request::WorkloadSet(settings));
                }
                Some(_) => return Err("usage: workload, or workload set KEY=VALUE ...".into()),
            },
            "proxy" => {
                let usage = "usage: proxy drain|enable LISTENER BACKEND";
                let drain = match words.next() {
                    Some("drain") => true,
                    Some("enable") => false,
                    _ => return Err(usage.into()),
                };
                let (Some(listener), Some(backend)) = (words.next(), words.next()) else {
                    return Err(usage.into());
                };
                if words.next().is_some() {
                    return Err(usage.into());
                }
                return Ok(Request::Proxy {
                    drain,
                    listener: listener.into(),
                    backend: backend.into(),
                });
            }
            _ => {
                let shown: String = cmd.chars().take(64).collect();
                return Err(format!("unknown command {shown:?}; commands: {COMMANDS}"));
            }
        };
        if words.next().is_some() {
            return Err(format!("{cmd} takes no arguments"));
        }
        Ok(req)
    }
}

/// Why a line could not be read.
#[derive(Debug)]
enum LineError {
    /// More than the limit without a newline.
    TooLong,
    /// The connection failed or timed out.
    Io(io::Error),
}

/// Reads one `\n`-terminated line of at most `max` bytes (newline included), without the
/// newline. `Ok(None)` at a clean end of stream; a final line without newline counts.
fn read_line<R: BufRead>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if buf.is_empty() {
            return Ok(if line.is_empty() { None } else { Some(line) });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(LineError::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}

/// Who may talk to the server.
#[derive(Debug, Clone, Copy)]
struct Policy {
    group: Option<u32>,
    own_uid: u32,
}

impl Policy {
    fn check(&self, stream: &UnixStream) -> Result<(), String> {
        let cred = rustix::net::sockopt::socket_peercred(stream)
            .map_err(|e| format!("cannot read peer credentials: {e}"))?;
        let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
        if uid == 0 || uid == self.own_uid || self.group == Some(gid) {
            Ok(())
        } else {
            Err(format!(
                "permission denied: uid {uid} gid {gid} is not root, the appliance's user{}",
                match self.group {
                    Some(g) => format!(" or in group {g}"),
                    None => String::new(),
                }
            ))
        }
    }
}

/// What every connection thread shares.
struct Shared {
    source: StatsSource,
    proxy: Option<ProxyControl>,
    workload: Option<Arc<sixstack_stack::workload::Board>>,
    policy: Policy,
    stop: AtomicBool,
    /// Clones of the live connections, so that stopping can shut them down.
    conns: Mutex<HashMap<u64, UnixStream>>,
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, UnixStream>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves requests on a Unix socket in its own thread; removes the socket file when
/// dropped or stopped.
pub struct ControlServer {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Identifies the file we bound, so we never remove someone else's socket.
    ino: Option<(u64, u64)>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("path", &self.path)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl ControlServer {
    /// Binds `path` (removing a stale socket file first, but refusing if another live
    /// appliance answers on it), sets mode 0660 and, when `group` is given, that group
    /// (gid) as the file's group. Only peers whose uid is 0 or the appliance's own, or whose
    /// primary gid equals `group`, are served; others get an error line and are
    /// disconnected. A missing parent directory is created (mode 0755).
    pub fn start(
        path: &Path,
        group: Option<u32>,
        source: StatsSource,
    ) -> Result<ControlServer, ControlError> {
        ControlServer::start_with(path, group, source, None, None)
    }

    /// [`ControlServer::start`] with a handler for the `proxy drain|enable` commands and
    /// the workload managers' board for the `workload` commands.
    pub fn start_with(
        path: &Path,
        group: Option<u32>,
        source: StatsSource,
        proxy: Option<ProxyControl>,
        workload: Option<Arc<sixstack_stack::workload::Board>>,
    ) -> Result<ControlServer, ControlError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .map_err(|source| ControlError::CreateDir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
        }
        remove_stale(path)?;
        let bind_err = |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        let ino = file_id(path);
        // From here on, a failure must not leave our socket file behind.
        let cleanup = |e: ControlError| {
            if file_id(path) == ino {
                let _ = std::fs::remove_file(path);
            }
            e
        };
        let perm_err = |source| ControlError::Permissions {
            path: path.to_path_buf(),
            source,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(perm_err)
            .map_err(cleanup)?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(path, None, Some(gid))
                .map_err(perm_err)
                .map_err(cleanup)?;
        }
        listener
            .set_nonblocking(true)
            .map_err(bind_err)
            .map_err(cleanup)?;
        let shared = Arc::new(Shared {
            source,
            proxy,
            workload,
            policy: Policy {
                group,
                own_uid: rustix::process::geteuid().as_raw(),
            },
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sixstack-control".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(ControlError::Thread)
            .map_err(cleanup)?;
        log::info!("control socket on {}", path.display());
        Ok(ControlServer {
            path: path.to_path_buf(),
            shared,
            thread: Some(thread),
            ino,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving: closes every connection, waits for the control thread and removes
    /// the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for c in self.shared.conns().values() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Remove the file only if it is still the one we bound.
        if let Some(ino) = self.ino.take() {
            if file_id(&self.path) == Some(ino) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Clears the way for binding `path`: nothing there is fine; a socket nobody answers on is
/// removed; a live socket or anything that is not a socket is an error.
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ControlError::Bind {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ControlError::InUse(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing stale control socket {}", path.display());
            std::fs::remove_file(path).map_err(|source| ControlError::Bind {
                path: path.to_path_buf(),
                source,
            })
        }
        // Someone holds it but we cannot tell who (e.g. no permission): do not steal it.
        Err(source) => Err(ControlError::Bind {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: ACCEPT_TICK_NS,
    };
    let mut next_id = 0u64;
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        workers.retain(|w| !w.is_finished());
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => {
                log::error!("control socket poll failed, no longer serving: {e}");
                break;
            }
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors and the like: wait for the next tick and retry.
                log::warn!("control socket accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if let Err(msg) = shared.policy.check(&stream) {
            log::warn!("control socket: {msg}");
            reject(stream, &msg);
            continue;
        }
        let clone = {
            let mut conns = shared.conns();
            if conns.len() >= MAX_CLIENTS {
                None
            } else {
                match stream.try_clone() {
                    Ok(c) => {
                        next_id += 1;
                        conns.insert(next_id, c);
                        Some(next_id)
                    }
                    Err(e) => {
                        log::warn!("control socket: {e}");
                        None
                    }
                }
            }
        };
        let Some(id) = clone else {
            reject(stream, "busy: too many control clients");
            continue;
        };
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("sixstack-control-conn".into())
            .spawn(move || {
                serve(&stream, &s);
                s.conns().remove(&id);
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                log::warn!("control socket: cannot start a client thread: {e}");
                if let Some(c) = shared.conns().remove(&id) {
                    reject(c, "busy: cannot start a client thread");
                }
            }
        }
    }
    for c in shared.conns().values() {
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Sends one error line (best effort, without blocking for long) and closes.
fn reject(stream: UnixStream, msg: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = (&stream).write_all(&Response::error(msg).line());
}

/// Answers requests on one connection until it closes, idles out or the server stops.
fn serve(stream: &UnixStream, shared: &Shared) {
    // Accepted sockets do not inherit O_NONBLOCK on Linux, but say so anyway.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IDLE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut writer = stream;
    while !shared.stop.load(Ordering::Acquire) {
        let (resp, close) = match read_line(&mut reader, MAX_REQUEST) {
            Ok(None) | Err(LineError::Io(_)) => return,
            Ok(Some(line)) => (answer(&line, shared), false),
            Err(LineError::TooLong) => (
                Response::error(format!(
                    "request longer than {MAX_REQUEST} bytes; closing the connection"
                )),
                true,
            ),
        };
        if writer.write_all(&resp.line()).is_err() || close {
            return;
        }
    }
}

fn answer(line: &[u8], shared: &Shared) -> Response {
    match Request::parse(line) {
        Err(e) => Response::error(e),
        Ok(Request::Stats) => {
            let source = &shared.source;
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source())) {
                Ok(stats) => Response {
                    ok: true,
                    stats: Some(stats),
                    workload: None,
                    message: None,
                    error: None,
                },
                Err(_) => Response::error("the stats source failed"),
            }
        }
        Ok(Request::Workload) => match &shared.workload {
            None => Response::error("this appliance runs no workload manager"),
            Some(b) => Response {
                ok: true,
                stats: None,
                workload: Some(crate::workload_view::view(b)),
                message: None,
                error: None,
            },
        },
        Ok(Request::WorkloadSet(settings)) => match &shared.workload {
            None => Response::error("this appliance runs no workload manager"),
            Some(b) => match crate::workload_view::apply(b, &settings) {
                Ok(line) => {
                    log::info!("control: {line}");
                    Response::message(line)
                }
                Err(e) => Response::error(e),
            },
        },
        Ok(Request::Proxy {
            drain,
            listener,
            backend,
        }) => match &shared.proxy {
            None => Response::error("this appliance has no proxy listeners"),
            Some(f) => match f(&listener, &backend, drain) {
                Ok(line) => Response::message(line),
                Err(e) => Response::error(e),
            },
        },
    }
}

/// Sends one request line to the appliance listening on `path` and reads its answer.
fn request(path: &Path, line: &str) -> Result<Response, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(CLIENT_TIMEOUT))
        .map_err(io_err)?;
    // The server may refuse us before reading anything; a failed write then still leaves
    // its error line to read.
    let wrote = (&stream).write_all(format!("{line}\n").as_bytes());
    let mut reader = BufReader::new(&stream);
    let answer = match read_line(&mut reader, MAX_RESPONSE) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(match wrote {
                Err(e) => io_err(e),
                Ok(()) => ControlError::BadResponse("connection closed without an answer".into()),
            })
        }
        Err(LineError::TooLong) => {
            return Err(ControlError::BadResponse(format!(
                "answer longer than {MAX_RESPONSE} bytes"
            )))
        }
        Err(LineError::Io(e)) => return Err(io_err(e)),
    };
    let resp: Response = serde_json::from_slice(&answer)
        .map_err(|e| ControlError::BadResponse(format!("not the expected JSON: {e}")))?;
    if !resp.ok {
        return Err(ControlError::Refused(
            resp.error.unwrap_or_else(|| "no reason given".into()),
        ));
    }
    Ok(resp)
}

/// Asks the appliance listening on `path` for its report.
pub fn query_stats(path: &Path) -> Result<StatsReport, ControlError> {
    request(path, "stats")?
        .stats
        .ok_or_else(|| ControlError::BadResponse("answer has no \"stats\" field".into()))
}

/// Asks the appliance listening on `path` for its workload managers' report.
pub fn query_workload(path: &Path) -> Result<crate::workload_view::WorkloadView, ControlError> {
    request(path, "workload")?
        .workload
        .ok_or_else(|| ControlError::BadResponse("answer has no \"workload\" field".into()))
}

/// Changes the workload policy of the appliance listening on `path` (`KEY=VALUE`
/// settings, all or none); returns the appliance's line about it.
pub fn workload_set(path: &Path, settings: &[String]) -> Result<String, ControlError> {
    if settings.is_empty() {
        return Err(ControlError::BadRequest(
            "nothing to set: give KEY=VALUE settings".into(),
        ));
    }
    for s in settings {
        if s.is_empty() || s.contains(char::is_whitespace) || s.len() > 64 {
            return Err(ControlError::BadRequest(format!(
                "setting {s:?} must be one KEY=VALUE word of at most 64 bytes"
            )));
        }
    }
    request(path, &format!("workload set {}", settings.join(" ")))?
        .message
        .ok_or_else(|| ControlError::BadResponse("answer has no \"message\" field".into()))
}

/// Drains (`drain`) or enables backend `backend` of proxy listener `listener` of the
/// appliance listening on `path`; returns the appliance's line about it.
pub fn proxy_command(
    path: &Path,
    drain: bool,
    listener: &str,
    backend: &str,
) -> Result<String, ControlError> {
    for (what, v) in [("listener", listener), ("backend", backend)] {
        if v.is_empty() || v.contains(char::is_whitespace) || v.len() > 256 {
            return Err(ControlError::BadRequest(format!(
                "{what} name {v:?} must be one word of at most 256 bytes"
            )));
        }
    }
    let verb = if drain { "drain" } else { "enable" };
    request(path, &format!("proxy {verb} {listener} {backend}"))?
        .message
        .ok_or_else(|| ControlError::BadResponse("answer has no \"message\" field".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn shard(i: u32) -> ShardReport {
        ShardReport {
            shard: i,
            core: Some(i + 2),
            queue: i,
            link: format!("af_xdp eth0 q{i}"),
            rx_packets: 1000 * u64::from(i + 1),
            rx_bytes: 1_500_000 * u64::from(i + 1),
            tx_packets: 900,
            tx_bytes: 1_000_000,
            drops: BTreeMap::from([("checksum".to_string(), 3), ("no_socket".to_string(), 1)]),
            handoffs_out: 5,
            handoffs_in: 7,
            conns_open: 2,
            conns_opened: 10,
            conns_accepted: 20,
            conns_reset: 1,
            tasks: 4,
            priority_changes: 3,
            runaways: 0,
            busy_ns: 1_000_000 * u64::from(i + 1),
            idle_ns: 3_000_000,
            np_ns: 10_000,
            np_ratio: 0.0,
            loop_us: Histo {
                count: 100,
                p50_us: 1.0,
                p90_us: 2.0,
                p99_us: 3.5 + f64::from(i),
                p999_us: 9.0,
                max_us: 12.0,
            },
            request_us: Histo::default(),
            counters: BTreeMap::from([
                ("tls_full".to_string(), 5 * u64::from(i + 1)),
                ("tls_refused".to_string(), 1),
            ]),
        }
    }

    pub(crate) fn report() -> StatsReport {
        StatsReport::new(
            12.5,
            vec![shard(0), shard(1)],
            vec!["echo tcp/7 on shards [0, 1]".into()],
        )
    }

    #[test]
    fn json_round_trip() {
        let r = report();
        let text = serde_json::to_string(&r).unwrap();
        let back: StatsReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let resp = Response {
            ok: true,
            stats: Some(r.clone()),
            workload: None,
            message: None,
            error: None,
        };
        let line = resp.line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Response = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.stats, Some(r));
    }

    #[test]
    fn np_ratio() {
        assert_eq!(ratio(5, 0), 0.0);
        assert_eq!(ratio(0, 0), 0.0);
        assert!((ratio(1, 4) - 0.25).abs() < 1e-12);
        let r = report();
        // shard 0: 10_000 / 1_000_000, shard 1: 10_000 / 2_000_000, total: 20_000 / 3_000_000
        assert!((r.shards[0].np_ratio - 0.01).abs() < 1e-12);
        assert!((r.shards[1].np_ratio - 0.005).abs() < 1e-12);
        assert!((r.np_ratio - 20_000.0 / 3_000_000.0).abs() < 1e-12);
        assert!((r.total().np_ratio - r.np_ratio).abs() < 1e-12);
        let idle = StatsReport::new(0.0, vec![ShardReport::default()], vec![]);
        assert_eq!(idle.np_ratio, 0.0);
        assert_eq!(idle.shards[0].busy_fraction(), 0.0);
    }

    #[test]
    fn totals() {
        let t = report().total();
        assert_eq!(t.rx_packets, 3000);
        assert_eq!(t.drops["checksum"], 6);
        assert_eq!(t.drops_total(), 8);
        assert_eq!(t.loop_us.count, 200);
        assert_eq!(t.loop_us.p99_us, 4.5);
    }

    #[test]
    fn requests() {
        assert_eq!(Request::parse(b"stats"), Ok(Request::Stats));
        assert_eq!(Request::parse(b"  stats \t"), Ok(Request::Stats));
        assert!(Request::parse(b"").is_err());
        assert!(Request::parse(b"stats now").is_err());
        assert!(Request::parse(b"drain 3").is_err());
        assert!(Request::parse(&[0xff, 0xfe]).is_err());
        assert_eq!(
            Request::parse(b"proxy drain web 10.0.0.5:80"),
            Ok(Request::Proxy {
                drain: true,
                listener: "web".into(),
                backend: "10.0.0.5:80".into()
            })
        );
        assert!(matches!(
            Request::parse(b"proxy enable web blue"),
            Ok(Request::Proxy { drain: false, .. })
        ));
        for bad in [
            &b"proxy"[..],
            b"proxy drain web",
            b"proxy stop web a",
            b"proxy drain web a b",
            b"workload set",
            b"workload show",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Request::parse(b"workload"), Ok(Request::Workload));
        assert_eq!(
            Request::parse(b"workload set cicsint=4000 enabled=off"),
            Ok(Request::WorkloadSet(vec![
                "cicsint=4000".into(),
                "enabled=off".into()
            ]))
        );
    }

    #[test]
    fn lines() {
        let mut r = BufReader::with_capacity(4, &b"ab\r\ncd\nlast"[..]);
        assert_eq!(read_line(&mut r, 16).unwrap(), Some(b"ab".to_vec()));
        assert_eq!(read_line(&mut r, 16).unwrap(), Some(b"cd".to_vec()));
        assert_eq!(read_line(&mut r, 16).unwrap(), Some(b"last".to_vec()));
        assert_eq!(read_line(&mut r, 16).unwrap(), None);
        let long = [b'x'; 100];
        let mut r = BufReader::with_capacity(8, &long[..]);
        assert!(matches!(read_line(&mut r, 16), Err(LineError::TooLong)));
        // Exactly at the limit, newline included, is fine.
        let mut r = &b"1234567\n"[..];
        assert_eq!(read_line(&mut r, 8).unwrap(), Some(b"1234567".to_vec()));
    }

    #[test]
    fn histo_from_ns() {
        let h = Histo::from_ns_summary(&[10, 1000, 2000, 3000, 4000, 5500]);
        assert_eq!(h.count, 10);
        assert_eq!(h.p50_us, 1.0);
        assert_eq!(h.max_us, 5.5);
    }
}
