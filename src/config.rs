//! The appliance's TOML configuration: parsed, validated, and rejected with the file, line
//! and reason when anything is wrong. Nothing is started from a half-valid file.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Deserialize;
use sixstack_drivers::fault::{BurstLoss, Direction, FaultConfig, FaultDirection};
use toml::Spanned;

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value is of the wrong form.
    #[error("{path}:{line}:{column}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Which driver carries the appliance's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// AF_XDP on a NIC queue (the production driver).
    AfXdp,
    /// A TAP device.
    Tap,
}

/// XDP attach mode setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum XdpMode {
    /// Native (driver) mode if the driver has it, generic otherwise.
    #[default]
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

/// Zero-copy setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZeroCopySetting {
    /// Zero-copy where the NIC allows, copy mode otherwise.
    #[default]
    Auto,
    /// Fail unless zero-copy binds.
    Require,
    /// Always copy mode.
    Off,
}

/// `[interface]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// NIC (af_xdp) or TAP device name.
    pub name: String,
    /// Driver.
    pub driver: DriverKind,
    /// NIC queue the shard binds (af_xdp).
    #[serde(default)]
    pub queue: u32,
    /// Network namespace to open the interface in (as under /run/netns).
    #[serde(default)]
    pub netns: Option<String>,
    /// XDP attach mode.
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// Zero-copy policy.
    #[serde(default)]
    pub zero_copy: ZeroCopySetting,
    /// The stack's MAC; default: the NIC's own for af_xdp, a fixed local one for tap.
    #[serde(default)]
    pub mac: Option<Spanned<String>>,
    /// Record every frame to this pcap file.
    #[serde(default)]
    pub pcap: Option<String>,
    /// IP MTU of the link. af_xdp: default the interface's own MTU; above 3826 (a 4096-byte
    /// UMEM frame minus the kernel's headroom and the Ethernet header) frames travel as
    /// several buffers (multi-buffer AF_XDP, kernel 6.6+). tap: default 1500.
    #[serde(default)]
    pub mtu: Option<usize>,
    /// NIC receive queues to serve, one shard each (default: every RX queue of the NIC).
    #[serde(default)]
    pub queues: Option<Spanned<Vec<u32>>>,
    /// Cores to pin the shards to, in shard order (default: 0, 1, 2, ...). The number of
    /// shards is capped at the number of cores.
    #[serde(default)]
    pub cores: Option<Spanned<Vec<usize>>>,
    /// How the stack learns the NIC's receive hash, to pick client ports whose replies
    /// come back to the opening shard.
    #[serde(default)]
    pub rss: RssSetting,
    /// After work, a shard keeps polling its rings this long before it sleeps on the
    /// link's fd (microseconds; 0: sleep at once). Also set as the socket's
    /// `SO_BUSY_POLL` where the kernel supports preferred busy polling.
    #[serde(default = "default_busy_poll")]
    pub busy_poll_us: u32,
    /// Fault injection on every shard's link, for tests and demonstrations:
    /// `fault = { loss = 0.02, seed = 7 }`.
    #[serde(default)]
    pub fault: Option<Spanned<FaultTable>>,
}

fn default_busy_poll() -> u32 {
    50
}

/// `[interface] fault`: what the fault link does to the frames of every shard. The fields
/// at the top apply both ways; an `rx` or `tx` table overrides them for one direction
/// (`rx`: frames from the NIC to the stack, `tx`: frames the stack sends). See
/// `sixstack_drivers::fault` for what each one does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultTable {
    /// Seeds the decisions (default 1); shard `i` derives its own from it.
    #[serde(default)]
    pub seed: Option<Spanned<u64>>,
    /// Probability a frame is dropped.
    #[serde(default)]
    pub loss: Option<Spanned<f64>>,
    /// Probability a frame is delivered twice.
    #[serde(default)]
    pub duplicate: Option<Spanned<f64>>,
    /// Probability a frame is held back until the next one has passed it.
    #[serde(default)]
    pub reorder: Option<Spanned<f64>>,
    /// Probability one byte after the Ethernet header is flipped.
    #[serde(default)]
    pub corrupt: Option<Spanned<f64>>,
    /// Fixed delay, milliseconds.
    #[serde(default)]
    pub delay_ms: Option<Spanned<f64>>,
    /// Uniform variation of the delay either way, milliseconds.
    #[serde(default)]
    pub jitter_ms: Option<Spanned<f64>>,
    /// Shaping rate, megabits per second (frames queue behind each other).
    #[serde(default)]
    pub rate_mbit: Option<Spanned<f64>>,
    /// `{ every = M, length = N }`: the last N of every M frames are dropped.
    #[serde(default)]
    pub burst_loss: Option<Spanned<BurstLossTable>>,
    /// The most frames held at once per direction (default 1000).
    #[serde(default)]
    pub queue_limit: Option<Spanned<usize>>,
    /// Overrides for frames from the NIC to the stack.
    #[serde(default)]
    pub rx: Option<Spanned<Box<FaultTable>>>,
    /// Overrides for frames the stack sends.
    #[serde(default)]
    pub tx: Option<Spanned<Box<FaultTable>>>,
}

/// `burst_loss = { every = M, length = N }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstLossTable {
    /// The period, in frames.
    pub every: u64,
    /// Frames dropped in a row at the end of each period.
    pub length: u64,
}

impl FaultTable {
    /// Where `field` is set in this table.
    fn span_of(&self, field: &str) -> Option<std::ops::Range<usize>> {
        let f64s = [
            ("loss", &self.loss),
            ("duplicate", &self.duplicate),
            ("reorder", &self.reorder),
            ("corrupt", &self.corrupt),
            ("delay_ms", &self.delay_ms),
            ("jitter_ms", &self.jitter_ms),
            ("rate_mbit", &self.rate_mbit),
        ];
        match field {
            "burst_loss" => self.burst_loss.as_ref().map(Spanned::span),
            "queue_limit" => self.queue_limit.as_ref().map(Spanned::span),
            _ => f64s
                .into_iter()
                .find(|(name, _)| *name == field)
                .and_then(|(_, v)| v.as_ref().map(Spanned::span)),
        }
    }

    /// Sets the fields given in this table on `d`.
    fn apply(&self, d: &mut FaultDirection) {
        let get = |v: &Option<Spanned<f64>>| v.as_ref().map(|v| *v.get_ref());
        d.loss = get(&self.loss).unwrap_or(d.loss);
        d.duplicate = get(&self.duplicate).unwrap_or(d.duplicate);
        d.reorder = get(&self.reorder).unwrap_or(d.reorder);
        d.corrupt = get(&self.corrupt).unwrap_or(d.corrupt);
        d.delay_ms = get(&self.delay_ms).unwrap_or(d.delay_ms);
        d.jitter_ms = get(&self.jitter_ms).unwrap_or(d.jitter_ms);
        if let Some(r) = get(&self.rate_mbit) {
            d.rate_mbit = Some(r);
        }
        if let Some(b) = &self.burst_loss {
            let b = b.get_ref();
            d.burst_loss = Some(BurstLoss {
                every: b.every,
                length: b.length,
            });
        }
        if let Some(q) = &self.queue_limit {
            d.queue_limit = *q.get_ref();
        }
    }
}

/// The fault link's settings from `[interface] fault`, or the place and reason they are
/// refused.
fn fault_config(t: &Spanned<FaultTable>) -> Result<FaultConfig, (std::ops::Range<usize>, String)> {
    let top = t.get_ref();
    for sub in [&top.rx, &top.tx].into_iter().flatten() {
        let s = sub.get_ref();
        if s.seed.is_some() || s.rx.is_some() || s.tx.is_some() {
            return Err((
                sub.span(),
                "seed, rx and tx belong in the fault table itself, not in rx or tx".into(),
            ));
        }
    }
    let mut shared = FaultDirection::default();
    top.apply(&mut shared);
    let (mut rx, mut tx) = (shared, shared);
    if let Some(s) = &top.rx {
        s.get_ref().apply(&mut rx);
    }
    if let Some(s) = &top.tx {
        s.get_ref().apply(&mut tx);
    }
    let cfg = FaultConfig {
        seed: top.seed.as_ref().map_or(1, |s| *s.get_ref()),
        rx,
        tx,
    };
    cfg.validate().map_err(|e| {
        let sub = match e.direction {
            Direction::Rx => &top.rx,
            Direction::Tx => &top.tx,
        };
        let (span, name) = match sub.as_ref().and_then(|s| s.get_ref().span_of(e.field)) {
            Some(span) => (span, format!("{}.{}", e.direction.name(), e.field)),
            None => (
                top.span_of(e.field).unwrap_or(t.span()),
                e.field.to_string(),
            ),
        };
        (
            span,
            format!("interface.fault.{name} = {} {}", e.value, e.reason),
        )
    })?;
    Ok(cfg)
}

/// Receive-hash knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RssSetting {
    /// Read the NIC's key and table (ethtool); none reported: hand replies over.
    #[default]
    Auto,
    /// The lab's emulated RSS: the well-known default key and a round-robin table.
    Lab,
    /// Do not steer client ports: replies that land on another shard are handed over.
    Off,
}

/// `[control]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The control socket `sixstack stats` talks to.
    #[serde(default = "default_socket")]
    pub socket: String,
    /// A group (gid) whose members may use the socket besides root.
    #[serde(default)]
    pub group: Option<u32>,
    /// Seconds open connections get to finish at shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace_s: f64,
}

fn default_socket() -> String {
    "/run/sixstack/control.sock".into()
}

fn default_grace() -> f64 {
    5.0
}

impl Default for Control {
    fn default() -> Control {
        Control {
            socket: default_socket(),
            group: None,
            shutdown_grace_s: default_grace(),
        }
    }
}

/// `[addresses]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// `A.B.C.D/len`.
    #[serde(default)]
    pub ipv4: Option<Spanned<String>>,
    /// `addr/len` list.
    #[serde(default)]
    pub ipv6: Vec<Spanned<String>>,
    /// IPv4 default gateway.
    #[serde(default)]
    pub gateway4: Option<Spanned<String>>,
    /// IPv6 default gateway.
    #[serde(default)]
    pub gateway6: Option<Spanned<String>>,
}

/// `[tcp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tcp {
    /// Receive buffer per socket.
    #[serde(default = "default_buf")]
    pub rx_buffer: Spanned<usize>,
    /// Send buffer per socket.
    #[serde(default = "default_buf")]
    pub tx_buffer: Spanned<usize>,
    /// Listening sockets ready per listener.
    #[serde(default = "default_backlog")]
    pub backlog: Spanned<usize>,
    /// MiB of socket buffers (receive plus send) one shard may hold; new connections are
    /// refused cleanly beyond it.
    #[serde(default = "default_memory_budget")]
    pub memory_budget_mb: Spanned<usize>,
    /// The most connections one client address may hold with each shard's listeners
    /// (handshakes and accepted connections); SYNs beyond it are answered with RST.
    /// 0: no limit.
    #[serde(default = "default_max_per_source")]
    pub max_per_source: Spanned<u32>,
}

fn default_max_per_source() -> Spanned<u32> {
    Spanned::new(0..0, 0)
}

fn default_memory_budget() -> Spanned<usize> {
    Spanned::new(0..0, 1024)
}

fn default_buf() -> Spanned<usize> {
    Spanned::new(0..0, 64 * 1024)
}

fn default_backlog() -> Spanned<usize> {
    Spanned::new(0..0, 64)
}

impl Default for Tcp {
    fn default() -> Tcp {
        Tcp {
            rx_buffer: default_buf(),
            tx_buffer: default_buf(),
            backlog: default_backlog(),
            memory_budget_mb: default_memory_budget(),
            max_per_source: default_max_per_source(),
        }
    }
}

/// `[workload]`: the workload manager of every shard's executor (see the README on
/// choosing `cicsint`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Off: priorities stay as configured (statistics are still kept).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Work units a task may use in one interval before it drops a step (a work unit is
    /// one poll of the task, plus one per KiB its connections moved in that poll).
    #[serde(default = "default_cicsint")]
    pub cicsint: u64,
    /// The lowest priority the manager moves a task to.
    #[serde(default = "default_prtymin")]
    pub prtymin: u8,
    /// The highest priority the manager moves a task to.
    #[serde(default = "default_prtymax")]
    pub prtymax: u8,
    /// A task using more than `runaway × cicsint` units in one interval is a runaway.
    #[serde(default = "default_runaway")]
    pub runaway: u64,
    /// What happens to a runaway: `log`, `demote` (to `prtymin`) or `abort` (its task
    /// ends, its connections close).
    #[serde(default)]
    pub runaway_action: RunawaySetting,
    /// Tasks with at most this many work units are left out of the statistics.
    #[serde(default)]
    pub trivial: u64,
    /// The interval, milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// How far one demotion or promotion moves a priority.
    #[serde(default = "default_step")]
    pub step: u8,
}

/// `runaway_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunawaySetting {
    /// Logged and counted.
    #[default]
    Log,
    /// Put at `prtymin`.
    Demote,
    /// Its task ends.
    Abort,
}

fn default_cicsint() -> u64 {
    100
}

fn default_prtymin() -> u8 {
    50
}

fn default_prtymax() -> u8 {
    150
}

fn default_runaway() -> u64 {
    100
}

fn default_interval_ms() -> u64 {
    100
}

fn default_step() -> u8 {
    1
}

fn default_priority() -> u8 {
    100
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            enabled: true,
            cicsint: default_cicsint(),
            prtymin: default_prtymin(),
            prtymax: default_prtymax(),
            runaway: default_runaway(),
            runaway_action: RunawaySetting::Log,
            trivial: 0,
            interval_ms: default_interval_ms(),
            step: default_step(),
        }
    }
}

impl Workload {
    /// The stack's policy for these settings.
    pub fn policy(&self) -> sixstack_stack::workload::Policy {
        use sixstack_stack::workload::{Policy, RunawayAction};
        Policy {
            enabled: self.enabled,
            cicsint: self.cicsint,
            prtymin: self.prtymin,
            prtymax: self.prtymax,
            runaway: self.runaway,
            action: match self.runaway_action {
                RunawaySetting::Log => RunawayAction::Log,
                RunawaySetting::Demote => RunawayAction::Demote,
                RunawaySetting::Abort => RunawayAction::Abort,
            },
            trivial: self.trivial,
            interval: std::time::Duration::from_millis(self.interval_ms),
            step: self.step,
        }
    }
}

/// Transport of a built-in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Both.
    #[default]
    Both,
}

/// Built-in service kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Echo.
    Echo,
    /// Discard.
    Discard,
    /// Chargen.
    Chargen,
    /// Echo under implicit TLS (needs `[tls]`; TCP only).
    #[serde(rename = "tls-echo", alias = "tls_echo")]
    TlsEcho,
    /// Discard under implicit TLS (needs `[tls]`; TCP only).
    #[serde(rename = "tls-discard", alias = "tls_discard")]
    TlsDiscard,
    /// An HTTP/1.1 page describing the TLS session (needs `[tls]`; TCP only).
    #[serde(rename = "tls-http", alias = "tls_http")]
    TlsHttp,
    /// Plain-text greeting, `STARTTLS`, then echo under TLS (needs `[tls]`; TCP only).
    #[serde(rename = "starttls-echo", alias = "starttls_echo")]
    StarttlsEcho,
}

impl ServiceKind {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Discard => "discard",
            ServiceKind::Chargen => "chargen",
            ServiceKind::TlsEcho => "tls-echo",
            ServiceKind::TlsDiscard => "tls-discard",
            ServiceKind::TlsHttp => "tls-http",
            ServiceKind::StarttlsEcho => "starttls-echo",
        }
    }

    /// Whether the service speaks TLS (and so needs `[tls]`).
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            ServiceKind::TlsEcho
                | ServiceKind::TlsDiscard
                | ServiceKind::TlsHttp
                | ServiceKind::StarttlsEcho
        )
    }
}

/// Whether TLS listeners ask for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthSetting {
    /// No.
    #[default]
    None,
    /// Asked for; clients without one are admitted.
    Optional,
    /// Required.
    Required,
}

/// `[tls]`: the material and policy of the TLS services. Relative paths are relative to
/// the configuration file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert: Spanned<String>,
    /// PEM private key (PKCS#8, SEC1 or RSA).
    pub key: Spanned<String>,
    /// PEM CA certificates that client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<Spanned<String>>,
    /// `none`, `optional` or `required`.
    #[serde(default = "default_client_auth")]
    pub client_auth: Spanned<ClientAuthSetting>,
    /// Lowest protocol version: "1.2" (default) or "1.3".
    #[serde(default = "default_min_version")]
    pub min_version: Spanned<String>,
    /// Sessions cached per shard for resumption (0: none).
    #[serde(default = "default_session_cache")]
    pub session_cache: usize,
    /// Issue session tickets.
    #[serde(default = "default_true")]
    pub tickets: bool,
    /// Seconds between ticket-key rotations.
    #[serde(default = "default_rotation")]
    pub ticket_rotation_s: Spanned<u64>,
    /// Seconds a client has to complete the TLS handshake of a TLS service (a client that
    /// connects and stays silent is dropped: slowloris).
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_s: Spanned<f64>,
}

fn default_handshake_timeout() -> Spanned<f64> {
    Spanned::new(0..0, 10.0)
}

fn default_client_auth() -> Spanned<ClientAuthSetting> {
    Spanned::new(0..0, ClientAuthSetting::None)
}

fn default_min_version() -> Spanned<String> {
    Spanned::new(0..0, "1.2".to_string())
}

fn default_session_cache() -> usize {
    4096
}

fn default_true() -> bool {
    true
}

fn default_rotation() -> Spanned<u64> {
    Spanned::new(0..0, 6 * 3600)
}

/// `[[service]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Which service.
    pub kind: ServiceKind,
    /// Port.
    pub port: Spanned<u16>,
    /// Transport.
    #[serde(default)]
    pub proto: Proto,
    /// The shards (queues) that run it; default: every shard.
    #[serde(default)]
    pub shards: Option<Spanned<Vec<u32>>>,
    /// Receive buffer of each TCP connection, bytes (default: `[tcp] rx_buffer`). A bulk
    /// service wants a large one (its window), a service with many short connections a
    /// small one: every accepted connection allocates and clears its buffers.
    #[serde(default)]
    pub rx_buffer: Option<Spanned<usize>>,
    /// Transmit buffer of each TCP connection, bytes (default: `[tcp] tx_buffer`).
    #[serde(default)]
    pub tx_buffer: Option<Spanned<usize>>,
    /// The priority its tasks start at (0–255; the workload manager moves them within
    /// `prtymin..=prtymax`).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Its performance group (see `[workload]`): at each interval the group whose tasks
    /// were delayed most is dispatched first.
    #[serde(default)]
    pub group: Option<String>,
    /// Seconds a TCP connection may go without progress (nothing received while the
    /// service waits for data, nothing taken while it waits to send) before it is closed:
    /// clients that hold connections open and idle cannot pile up.
    #[serde(default = "default_service_idle")]
    pub idle_timeout_s: Spanned<f64>,
}

fn default_service_idle() -> Spanned<f64> {
    Spanned::new(0..0, 300.0)
}

/// A balancing algorithm in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BalanceSetting {
    /// Round robin.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest open connections per unit of weight.
    LeastConnections,
    /// The less loaded of two random backends.
    PowerOfTwo,
    /// Consistent hashing of the client address (Maglev): sticky clients.
    Maglev,
}

/// `[[proxy.backend]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyBackend {
    /// `ADDR:PORT` (`[ADDR]:PORT` for IPv6).
    pub address: Spanned<String>,
    /// Weight for the weighted algorithms (1 to 1000).
    #[serde(default = "default_weight")]
    pub weight: Spanned<u32>,
    /// Send a PROXY protocol header (`v1` or `v2`) to this backend.
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocolSetting>,
    /// Name in `sixstack stats` and `sixstack proxy drain` (default: the address).
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// Speak TLS to this backend (its certificate is verified against `tls_ca`).
    #[serde(default)]
    pub tls: bool,
    /// PEM CA file the backend's certificate must chain to (required with `tls`).
    #[serde(default)]
    pub tls_ca: Option<Spanned<String>>,
    /// The name the backend's certificate must carry, sent as SNI (default: its address).
    #[serde(default)]
    pub tls_name: Option<Spanned<String>>,
    /// A client certificate (PEM chain) to present to the backend, with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<Spanned<String>>,
    /// The client certificate's private key.
    #[serde(default)]
    pub tls_key: Option<Spanned<String>>,
}

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocolSetting {
    /// Text header.
    V1,
    /// Binary header with TLVs (TLS version, client certificate common name).
    V2,
}

fn default_weight() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

/// `[[proxy]]`: a load-balanced listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// Name, unique among the proxies.
    pub name: Spanned<String>,
    /// Port it listens on.
    pub port: Spanned<u16>,
    /// The priority its tasks start at (see `[workload]`).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Its performance group (see `[workload]`).
    #[serde(default)]
    pub group: Option<String>,
    /// The one stack address it listens on (default: every address, IPv4 and IPv6).
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// How connections are spread over the backends.
    #[serde(default)]
    pub algorithm: BalanceSetting,
    /// Milliseconds a backend connect may take before the next backend is tried.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Consecutive failed connects that take a backend out.
    #[serde(default = "default_eject_after")]
    pub eject_after: u32,
    /// Seconds an ejected backend stays out before it is tried again.
    #[serde(default = "default_retry_after")]
    pub retry_after_s: f64,
    /// Terminate TLS at the listener with the `[tls]` material (implicit TLS in front of
    /// plain backends).
    #[serde(default)]
    pub tls: bool,
    /// Milliseconds between active health checks of each backend (0: none, passive
    /// ejection only). A check (connect, `check_send`, wait for `check_expect`) may take
    /// the smaller of this and `connect_timeout_ms`.
    #[serde(default = "default_check_interval")]
    pub check_interval_ms: u64,
    /// Consecutive passed checks that bring a backend back.
    #[serde(default = "default_rise")]
    pub check_rise: u32,
    /// Consecutive failed checks that take a backend down.
    #[serde(default = "default_fall")]
    pub check_fall: u32,
    /// Sent by a check after connecting.
    #[serde(default)]
    pub check_send: String,
    /// What a check must find in the answer (empty: a connect is enough).
    #[serde(default)]
    pub check_expect: String,
    /// Seconds a connection may sit with nothing moving either way before it is closed
    /// (0: no limit).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_s: f64,
    /// Sent to clients when every backend is down (then a normal close); without it they
    /// are reset. `\r\n` escapes are written as in TOML strings.
    #[serde(default)]
    pub down_banner: Option<String>,
    /// Receive buffer of each connection, client and backend side (default: `[tcp]
    /// rx_buffer`): the window each side offers.
    #[serde(default)]
    pub rx_buffer: Option<Spanned<usize>>,
    /// Transmit buffer of each connection, both sides (default: `[tcp] tx_buffer`).
    #[serde(default)]
    pub tx_buffer: Option<Spanned<usize>>,
    /// The backends.
    #[serde(default, rename = "backend")]
    pub backends: Vec<ProxyBackend>,
}

fn default_check_interval() -> u64 {
    2000
}

fn default_idle_timeout() -> f64 {
    300.0
}

fn default_rise() -> u32 {
    2
}

fn default_fall() -> u32 {
    3
}

fn default_connect_timeout() -> u64 {
    2000
}

fn default_eject_after() -> u32 {
    3
}

fn default_retry_after() -> f64 {
    5.0
}

/// `[ftp]`: the FTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ftp {
    /// Control port.
    #[serde(default = "default_ftp_port")]
    pub port: Spanned<u16>,
    /// The security method: `standard` (the `users` file), `resource-rules` (the `rules`
    /// file) or `exit` (`exit_program`).
    #[serde(default)]
    pub method: FtpMethod,
    /// The security file of the `standard` method (users, Argon2id hashes, homes).
    #[serde(default)]
    pub users: Option<Spanned<String>>,
    /// The rules file of the `resource-rules` method (users, groups, profiles).
    #[serde(default)]
    pub rules: Option<Spanned<String>>,
    /// The program of the `exit` method, called for every login and file access.
    #[serde(default)]
    pub exit_program: Option<Spanned<String>>,
    /// Its arguments.
    #[serde(default)]
    pub exit_args: Vec<String>,
    /// Milliseconds one call of it may take (then: denied).
    #[serde(default = "default_exit_timeout")]
    pub exit_timeout_ms: u64,
    /// Passive data ports, `[first, last]`, within 49152..65535.
    #[serde(default = "default_passive_ports")]
    pub passive_ports: Spanned<[u16; 2]>,
    /// Seconds a control connection may wait for a command.
    #[serde(default = "default_ftp_idle")]
    pub idle_timeout_s: f64,
    /// Seconds a data connection may take to open, or stall.
    #[serde(default = "default_ftp_data")]
    pub data_timeout_s: f64,
    /// The greeting's text.
    #[serde(default)]
    pub banner: Option<String>,
    /// Implicit FTPS port (TLS from the first byte; needs `[tls]`), e.g. 990.
    #[serde(default)]
    pub implicit_port: Option<Spanned<u16>>,
    /// A PROT P data connection must resume the control connection's TLS session (stops
    /// data-connection theft); turn off for clients that cannot.
    #[serde(default = "default_true")]
    pub require_data_resumption: bool,
    /// Every user must protect the control connection (AUTH TLS or implicit FTPS).
    #[serde(default)]
    pub require_tls: bool,
    /// CCC may take a protected control connection back to clear text after login (RFC
    /// 4217; for firewalls that must read the data ports). Never for an account or server
    /// that requires TLS.
    #[serde(default)]
    pub allow_ccc: bool,
    /// Control connections open at once.
    #[serde(default = "default_ftp_max_clients")]
    pub max_clients: u32,
    /// Control connections open at once from one address.
    #[serde(default = "default_ftp_per_address")]
    pub max_per_address: u32,
    /// Failed logins of a user from one address that lock them out there.
    #[serde(default = "default_ftp_failures")]
    pub lockout_after: u32,
    /// Seconds a lockout lasts.
    #[serde(default = "default_ftp_lockout")]
    pub lockout_s: f64,
    /// Milliseconds a failed login waits before its reply.
    #[serde(default = "default_ftp_delay")]
    pub failure_delay_ms: u64,
    /// A verified client certificate whose common name is a user's name signs that user on
    /// without a password (beside the fingerprints listed per user).
    #[serde(default)]
    pub certificate_common_name: bool,
    /// Receive and send buffer of each data connection, bytes: the window a transfer gets.
    #[serde(default = "default_ftp_data_buffer")]
    pub data_buffer: Spanned<usize>,
    /// A port for control connections from a `[[proxy]]` listener of this appliance (a
    /// backend with `proxy_protocol = "v2"`): implicit FTPS by way of the proxy's TLS
    /// wrapping, the data connections coming straight to the passive ports.
    #[serde(default)]
    pub proxied_port: Option<Spanned<u16>>,
    /// Other proxies that may connect to `proxied_port` (their PROXY header is believed).
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A PROT P upload must end with the client's TLS close_notify (else it failed);
    /// off by default, as many clients close without it.
    #[serde(default)]
    pub strict_tls_upload_eof: bool,
    /// Seconds a verified password is remembered (as a keyed digest) so a client that logs
    /// in again with it skips the Argon2id check; 0: every login is checked in full.
    #[serde(default = "default_login_cache")]
    pub login_cache_s: f64,
    /// The priority the FTP server's tasks start at.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// The FTP server's performance group (see `[workload]`).
    #[serde(default)]
    pub group: Option<String>,
    /// The transfer log (xferlog format, appended; relative to this file). Without it,
    /// transfers are logged as log lines under `sixstack_ftp::xferlog`.
    #[serde(default)]
    pub xferlog: Option<Spanned<String>>,
}

fn default_ftp_data_buffer() -> Spanned<usize> {
    Spanned::new(0..0, 512 * 1024)
}

fn default_login_cache() -> f64 {
    300.0
}

fn default_ftp_max_clients() -> u32 {
    256
}

fn default_ftp_per_address() -> u32 {
    16
}

fn default_ftp_failures() -> u32 {
    5
}

fn default_ftp_lockout() -> f64 {
    300.0
}

fn default_ftp_delay() -> u64 {
    1000
}

/// The FTP server's security method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FtpMethod {
    /// Users and per-path rules in a security file.
    #[default]
    Standard,
    /// Users, groups and resource profiles.
    ResourceRules,
    /// An external program decides.
    Exit,
}

fn default_exit_timeout() -> u64 {
    2000
}

fn default_ftp_port() -> Spanned<u16> {
    Spanned::new(0..0, 21)
}

fn default_passive_ports() -> Spanned<[u16; 2]> {
    Spanned::new(0..0, [50000, 50999])
}

fn default_ftp_idle() -> f64 {
    300.0
}

fn default_ftp_data() -> f64 {
    60.0
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// The link.
    pub interface: Interface,
    /// The stack's addresses.
    pub addresses: Addresses,
    /// TCP sizing.
    #[serde(default)]
    pub tcp: Tcp,
    /// Services.
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
    /// The control socket.
    #[serde(default)]
    pub control: Control,
    /// TLS material and policy.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Load-balanced proxy listeners.
    #[serde(default, rename = "proxy")]
    pub proxies: Vec<Proxy>,
    /// The FTP server.
    #[serde(default)]
    pub ftp: Option<Ftp>,
    /// The workload manager (defaults when absent).
    #[serde(default)]
    pub workload: Option<Spanned<Workload>>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The parsed file.
    pub file: File,
    /// IPv4 address and prefix.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// IPv6 addresses and prefixes.
    pub ipv6: Vec<(Ipv6Addr, u8)>,
    /// IPv4 gateway.
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// Explicit MAC.
    pub mac: Option<[u8; 6]>,
    /// Fault injection on the links (`[interface] fault`), validated; shard 0's seed.
    pub fault: Option<FaultConfig>,
    /// The directory relative paths in the file are taken from.
    pub base_dir: std::path::PathBuf,
}

fn locate(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// Parses `addr/len`.
pub fn parse_cidr<A: std::str::FromStr>(s: &str, max: u8) -> Result<(A, u8), String> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' needs a prefix length, as in ADDRESS/LEN"))?;
    let addr = a
        .parse::<A>()
        .map_err(|_| format!("'{a}' is not a valid address"))?;
    let len: u8 = l
        .parse()
        .map_err(|_| format!("'{l}' is not a valid prefix length"))?;
    if len > max {
        return Err(format!("prefix length /{len} is longer than {max}"));
    }
    Ok((addr, len))
}

/// Parses `aa:bb:cc:dd:ee:ff` (unicast only).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!(
            "'{s}' is not a MAC address (six hex bytes with ':')"
        ));
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("'{s}' is not a MAC address"))?;
    }
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(format!("'{s}' is not a unicast MAC address"));
    }
    Ok(mac)
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            cfg.base_dir = dir.to_path_buf();
        }
        Ok(cfg)
    }

    /// A path from the file, resolved against [`Config::base_dir`].
    pub fn path(&self, p: &str) -> std::path::PathBuf {
        self.base_dir.join(p)
    }

    /// Parses and validates `text`; `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        let err = |span: std::ops::Range<usize>, reason: String| {
            let (line, column) = locate(text, span.start);
            ConfigError::Invalid {
                path: name.to_string(),
                line,
                column,
                reason,
            }
        };
        let file: File = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            err(span, e.message().to_string())
        })?;
        let ipv4 = match &file.addresses.ipv4 {
            Some(s) => Some(parse_cidr::<Ipv4Addr>(s.get_ref(), 32).map_err(|r| err(s.span(), r))?),
            None => None,
        };
        let mut ipv6 = Vec::new();
        for s in &file.addresses.ipv6 {
            let (a, l) = parse_cidr::<Ipv6Addr>(s.get_ref(), 128).map_err(|r| err(s.span(), r))?;
            if a.is_multicast() || a.is_unspecified() {
                return Err(err(s.span(), format!("{a} cannot be an interface address")));
            }
            ipv6.push((a, l));
        }
        if ipv6.len() > 6 {
            return Err(err(
                file.addresses.ipv6[6].span(),
                "at most 6 IPv6 addresses per interface".into(),
            ));
        }
        if let Some((a, _)) = ipv4 {
            if a.is_multicast() || a.is_unspecified() || a.is_broadcast() {
                let s = file
                    .addresses
                    .ipv4
                    .as_ref()
                    .map(|s| s.span())
                    .unwrap_or(0..0);
                return Err(err(s, format!("{a} cannot be an interface address")));
            }
        }
        if ipv4.is_none() && ipv6.is_empty() {
            return Err(err(
                0..0,
                "[addresses] needs an ipv4 address, ipv6 addresses, or both".into(),
            ));
        }
        let gateway4 = match &file.addresses.gateway4 {
            Some(s) => Some(s.get_ref().parse::<Ipv4Addr>().map_err(|_| {
                err(
                    s.span(),
                    format!("'{}' is not an IPv4 address", s.get_ref()),
                )
            })?),
            None => None,
        };
        let gateway6 = match &file.addresses.gateway6 {
            Some(s) => Some(s.get_ref().parse::<Ipv6Addr>().map_err(|_| {
                err(
                    s.span(),
                    format!("'{}' is not an IPv6 address", s.get_ref()),
                )
            })?),
            None => None,
        };
        let mac = match &file.interface.mac {
            Some(s) => Some(parse_mac(s.get_ref()).map_err(|r| err(s.span(), r))?),
            None => None,
        };
        for s in &file.services {
            if !(0.1..=86_400.0).contains(s.idle_timeout_s.get_ref()) {
                return Err(err(
                    s.idle_timeout_s.span(),
                    "service.idle_timeout_s must be between 0.1 and 86400".into(),
                ));
            }
        }
        let service_buffers = file.services.iter().flat_map(|s| {
            [
                s.rx_buffer.as_ref().map(|v| (v, "service.rx_buffer")),
                s.tx_buffer.as_ref().map(|v| (v, "service.tx_buffer")),
            ]
            .into_iter()
            .flatten()
        });
        let ftp_buffers = file.ftp.iter().map(|f| (&f.data_buffer, "ftp.data_buffer"));
        let proxy_buffers = file.proxies.iter().flat_map(|p| {
            [
                p.rx_buffer.as_ref().map(|v| (v, "proxy.rx_buffer")),
                p.tx_buffer.as_ref().map(|v| (v, "proxy.tx_buffer")),
            ]
            .into_iter()
            .flatten()
        });
        for (v, what) in [
            (&file.tcp.rx_buffer, "tcp.rx_buffer"),
            (&file.tcp.tx_buffer, "tcp.tx_buffer"),
        ]
        .into_iter()
        .chain(service_buffers)
        .chain(proxy_buffers)
        .chain(ftp_buffers)
        {
            if !(1024..=64 * 1024 * 1024).contains(v.get_ref()) {
                return Err(err(
                    v.span(),
                    format!("{what} must be between 1024 and 67108864 bytes"),
                ));
            }
        }
        if !(1..=4096).contains(file.tcp.backlog.get_ref()) {
            return Err(err(
                file.tcp.backlog.span(),
                "tcp.backlog must be between 1 and 4096".into(),
            ));
        }
        if !(1..=1 << 20).contains(file.tcp.memory_budget_mb.get_ref()) {
            return Err(err(
                file.tcp.memory_budget_mb.span(),
                "tcp.memory_budget_mb must be between 1 and 1048576".into(),
            ));
        }
        if *file.tcp.max_per_source.get_ref() > 1_000_000 {
            return Err(err(
                file.tcp.max_per_source.span(),
                "tcp.max_per_source must be at most 1000000 (0: no limit)".into(),
            ));
        }
        if file.interface.name.is_empty() || file.interface.name.len() > 15 {
            return Err(err(
                0..0,
                format!(
                    "interface name '{}' must be 1 to 15 characters",
                    file.interface.name
                ),
            ));
        }
        if let Some(q) = &file.interface.queues {
            if q.get_ref().is_empty() {
                return Err(err(q.span(), "queues must name at least one queue".into()));
            }
            let mut v = q.get_ref().clone();
            v.sort_unstable();
            v.dedup();
            if v.len() != q.get_ref().len() {
                return Err(err(q.span(), "a queue is listed twice".into()));
            }
        }
        if let Some(c) = &file.interface.cores {
            if c.get_ref().is_empty() {
                return Err(err(c.span(), "cores must name at least one core".into()));
            }
        }
        if file.interface.busy_poll_us > 1_000_000 {
            return Err(err(
                0..0,
                "interface.busy_poll_us must be at most 1000000".into(),
            ));
        }
        if !(0.0..=3600.0).contains(&file.control.shutdown_grace_s) {
            return Err(err(
                0..0,
                "control.shutdown_grace_s must be between 0 and 3600".into(),
            ));
        }
        if let Some(t) = &file.tls {
            if !["1.2", "1.3"].contains(&t.min_version.get_ref().as_str()) {
                return Err(err(
                    t.min_version.span(),
                    format!(
                        "tls.min_version '{}' is not \"1.2\" or \"1.3\" (older versions are never spoken)",
                        t.min_version.get_ref()
                    ),
                ));
            }
            if *t.client_auth.get_ref() != ClientAuthSetting::None && t.client_ca.is_none() {
                return Err(err(
                    t.client_auth.span(),
                    "tls.client_auth needs tls.client_ca (the CA client certificates chain to)"
                        .into(),
                ));
            }
            if !(60..=7 * 24 * 3600).contains(t.ticket_rotation_s.get_ref()) {
                return Err(err(
                    t.ticket_rotation_s.span(),
                    "tls.ticket_rotation_s must be between 60 and 604800".into(),
                ));
            }
            if !(0.1..=300.0).contains(t.handshake_timeout_s.get_ref()) {
                return Err(err(
                    t.handshake_timeout_s.span(),
                    "tls.handshake_timeout_s must be between 0.1 and 300".into(),
                ));
            }
        }
        let mut seen: Vec<(u16, bool, bool)> = Vec::new();
        for s in &file.services {
            let port = *s.port.get_ref();
            if port == 0 {
                return Err(err(s.port.span(), "port 0 is not a service port".into()));
            }
            if s.kind.is_tls() {
                if file.tls.is_none() {
                    return Err(err(
                        s.port.span(),
                        "a TLS service needs a [tls] section (cert and key)".into(),
                    ));
                }
                if s.proto == Proto::Udp {
                    return Err(err(s.port.span(), "TLS services run over TCP only".into()));
                }
            }
            let tcp = s.proto != Proto::Udp;
            let udp = s.proto != Proto::Tcp && !s.kind.is_tls();
            if seen
                .iter()
                .any(|&(p, t, u)| p == port && ((t && tcp) || (u && udp)))
            {
                return Err(err(
                    s.port.span(),
                    format!("port {port} is already used by another service"),
                ));
            }
            seen.push((port, tcp, udp));
        }
        if let Some(w) = &file.workload {
            if let Err(e) = w.get_ref().policy().check() {
                return Err(err(w.span(), format!("[workload]: {e}")));
            }
        }
        if let Some(f) = &file.ftp {
            let port = *f.port.get_ref();
            if port == 0 || seen.iter().any(|&(q, t, _)| q == port && t) {
                return Err(err(
                    f.port.span(),
                    format!("ftp port {port} is 0 or already used by a service"),
                ));
            }
            seen.push((port, true, false));
            let extra = [
                (&f.implicit_port, "implicit_port"),
                (&f.proxied_port, "proxied_port"),
            ];
            for (field, name) in extra {
                let Some(pp) = field else { continue };
                let p = *pp.get_ref();
                if p == 0 || seen.iter().any(|&(q, t, _)| q == p && t) {
                    return Err(err(
                        pp.span(),
                        format!("ftp {name} {p} is 0 or already used"),
                    ));
                }
                seen.push((p, true, false));
            }
            let (needed, what) = match f.method {
                FtpMethod::Standard => (f.users.is_some(), "users"),
                FtpMethod::ResourceRules => (f.rules.is_some(), "rules"),
                FtpMethod::Exit => (f.exit_program.is_some(), "exit_program"),
            };
            if !needed {
                return Err(err(
                    f.port.span(),
                    format!("the ftp method {:?} needs `{what}`", f.method),
                ));
            }
            if !(10..=60_000).contains(&f.exit_timeout_ms) {
                return Err(err(
                    f.port.span(),
                    "exit_timeout_ms must be between 10 and 60000".into(),
                ));
            }
            if (f.implicit_port.is_some() || f.require_tls) && file.tls.is_none() {
                return Err(err(
                    f.port.span(),
                    "implicit_port and require_tls need a [tls] section".into(),
                ));
            }
            let [a, b] = *f.passive_ports.get_ref();
            if a > b || a < 49152 {
                return Err(err(
                    f.passive_ports.span(),
                    "passive_ports must be [first, last] within 49152..65535 (ports the \
                     shards own)"
                        .into(),
                ));
            }
            if f.max_clients == 0
                || f.max_per_address == 0
                || f.lockout_after == 0
                || !(1.0..=86_400.0).contains(&f.lockout_s)
                || f.failure_delay_ms > 60_000
                || !(0.0..=86_400.0).contains(&f.login_cache_s)
            {
                return Err(err(
                    f.port.span(),
                    "max_clients, max_per_address and lockout_after must be at least 1, \
                     lockout_s 1 to 86400, failure_delay_ms at most 60000, login_cache_s 0 \
                     to 86400"
                        .into(),
                ));
            }
            if !(1.0..=86_400.0).contains(&f.idle_timeout_s)
                || !(1.0..=3600.0).contains(&f.data_timeout_s)
            {
                return Err(err(
                    f.port.span(),
                    "idle_timeout_s must be 1 to 86400, data_timeout_s 1 to 3600".into(),
                ));
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for p in &file.proxies {
            let port = *p.port.get_ref();
            if port == 0 {
                return Err(err(p.port.span(), "port 0 is not a listener port".into()));
            }
            if seen.iter().any(|&(q, t, _)| q == port && t) {
                return Err(err(
                    p.port.span(),
                    format!("port {port} is already used by a service or another proxy"),
                ));
            }
            seen.push((port, true, false));
            if names.contains(&p.name.get_ref().as_str()) {
                return Err(err(
                    p.name.span(),
                    format!("a proxy named '{}' already exists", p.name.get_ref()),
                ));
            }
            names.push(p.name.get_ref());
            if let Some(a) = &p.address {
                let own = a.get_ref().parse::<std::net::IpAddr>().ok().filter(|ip| {
                    let v4 = file.addresses.ipv4.iter();
                    v4.chain(file.addresses.ipv6.iter()).any(|c| {
                        c.get_ref()
                            .split('/')
                            .next()
                            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                            == Some(*ip)
                    })
                });
                if own.is_none() {
                    return Err(err(
                        a.span(),
                        format!(
                            "proxy '{}': {} is not one of the stack's [addresses]",
                            p.name.get_ref(),
                            a.get_ref()
                        ),
                    ));
                }
            }
            if p.tls && file.tls.is_none() {
                return Err(err(
                    p.name.span(),
                    format!(
                        "proxy '{}' terminates TLS but there is no [tls] section",
                        p.name.get_ref()
                    ),
                ));
            }
            if p.backends.is_empty() {
                return Err(err(
                    p.name.span(),
                    format!("proxy '{}' has no [[proxy.backend]]", p.name.get_ref()),
                ));
            }
            for b in &p.backends {
                if b.address.get_ref().parse::<std::net::SocketAddr>().is_err() {
                    return Err(err(
                        b.address.span(),
                        format!(
                            "'{}' is not ADDR:PORT (IPv6: [ADDR]:PORT)",
                            b.address.get_ref()
                        ),
                    ));
                }
                if !(1..=1000).contains(b.weight.get_ref()) {
                    return Err(err(
                        b.weight.span(),
                        "backend weight must be between 1 and 1000".into(),
                    ));
                }
                if b.tls && b.tls_ca.is_none() {
                    return Err(err(
                        b.address.span(),
                        "a backend with tls = true needs tls_ca (the CA its certificate is \
                         verified against)"
                            .into(),
                    ));
                }
                if !b.tls
                    && (b.tls_ca.is_some()
                        || b.tls_name.is_some()
                        || b.tls_cert.is_some()
                        || b.tls_key.is_some())
                {
                    return Err(err(
                        b.address.span(),
                        "tls_ca, tls_name, tls_cert and tls_key need tls = true".into(),
                    ));
                }
                if b.tls_cert.is_some() != b.tls_key.is_some() {
                    return Err(err(
                        b.address.span(),
                        "a client certificate needs both tls_cert and tls_key".into(),
                    ));
                }
            }
            let mut backend_names: Vec<String> = Vec::new();
            for b in &p.backends {
                let name = b
                    .name
                    .as_ref()
                    .map_or_else(|| b.address.get_ref().clone(), |n| n.get_ref().clone());
                if backend_names.contains(&name) {
                    let span = b.name.as_ref().map_or(b.address.span(), |n| n.span());
                    return Err(err(
                        span,
                        format!(
                            "proxy '{}' has two backends named '{name}'",
                            p.name.get_ref()
                        ),
                    ));
                }
                backend_names.push(name);
            }
            if !(0.0..=86_400.0).contains(&p.idle_timeout_s) {
                return Err(err(
                    p.name.span(),
                    "idle_timeout_s must be between 0 (no limit) and 86400".into(),
                ));
            }
            if p.down_banner.as_ref().is_some_and(|b| b.len() > 4096) {
                return Err(err(
                    p.name.span(),
                    "down_banner is limited to 4096 bytes".into(),
                ));
            }
            if p.eject_after == 0 || !(0.1..=3600.0).contains(&p.retry_after_s) {
                return Err(err(
                    p.name.span(),
                    "eject_after must be at least 1 and retry_after_s between 0.1 and 3600".into(),
                ));
            }
            if p.check_interval_ms > 0
                && (p.check_interval_ms < 50 || p.check_rise == 0 || p.check_fall == 0)
            {
                return Err(err(
                    p.name.span(),
                    "check_interval_ms must be 0 (off) or at least 50, check_rise and \
                     check_fall at least 1"
                        .into(),
                ));
            }
            if !(1..=600_000).contains(&p.connect_timeout_ms) {
                return Err(err(
                    p.name.span(),
                    "connect_timeout_ms must be between 1 and 600000".into(),
                ));
            }
        }
        let fault = match &file.interface.fault {
            Some(t) => Some(fault_config(t).map_err(|(span, r)| err(span, r))?),
            None => None,
        };
        Ok(Config {
            ipv4,
            ipv6,
            gateway4,
            gateway6,
            mac,
            fault,
            file,
            base_dir: std::path::PathBuf::from("."),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[interface]
name = "six0"
driver = "af_xdp"

[addresses]
ipv4 = "10.77.0.2/24"
ipv6 = ["fd77::2/64"]

[[service]]
kind = "echo"
port = 7
"#;

    #[test]
    fn parses_a_good_file() {
        let c = Config::parse(GOOD, "good.toml").unwrap();
        assert_eq!(c.ipv4, Some((Ipv4Addr::new(10, 77, 0, 2), 24)));
        assert_eq!(c.ipv6.len(), 1);
        assert_eq!(c.file.services.len(), 1);
        assert_eq!(*c.file.tcp.backlog.get_ref(), 64);
    }

    fn error_of(text: &str) -> String {
        Config::parse(text, "bad.toml").unwrap_err().to_string()
    }

    #[test]
    fn proxies_are_checked() {
        let good = format!(
            "{GOOD}\n[[proxy]]\nname = \"web\"\nport = 8080\nalgorithm = \"maglev\"\n\
             [[proxy.backend]]\naddress = \"10.0.0.1:80\"\n\
             [[proxy.backend]]\naddress = \"[2001:db8::1]:80\"\nweight = 3\n"
        );
        let c = Config::parse(&good, "good.toml").unwrap();
        assert_eq!(c.file.proxies[0].backends.len(), 2);
        assert_eq!(c.file.proxies[0].algorithm, BalanceSetting::Maglev);
        let e = error_of(&good.replace("10.0.0.1:80", "10.0.0.1"));
        assert!(
            e.contains("bad.toml:") && e.contains("is not ADDR:PORT"),
            "{e}"
        );
        let e = error_of(&good.replace("port = 8080", "port = 7"));
        assert!(e.contains("already used"), "{e}");
        let e = error_of(&good.replace("weight = 3", "weight = 0"));
        assert!(e.contains("weight"), "{e}");
        let e = error_of(&good.replace("maglev", "random"));
        assert!(e.contains("unknown variant"), "{e}");
        let v6 = good.replace("port = 8080", "port = 8080\naddress = \"fd77::2\"");
        assert!(Config::parse(&v6, "v6.toml").is_ok());
        let e = error_of(&good.replace("port = 8080", "port = 8080\naddress = \"10.77.0.9\""));
        assert!(e.contains("not one of the stack's [addresses]"), "{e}");
        let tls = good.replace(
            "weight = 3",
            "weight = 3\ntls = true\ntls_name = \"db.example\"",
        );
        assert!(error_of(&tls).contains("needs tls_ca"));
        let e = error_of(&good.replace("weight = 3", "weight = 3\ntls_ca = \"ca.pem\""));
        assert!(e.contains("need tls = true"), "{e}");
        let e = error_of(&good.replace(
            "[2001:db8::1]:80\"",
            "10.0.0.1:80\"\nname = \"10.0.0.1:80\"",
        ));
        assert!(e.contains("two backends named"), "{e}");
        let e = error_of(&good.replace("maglev\"", "maglev\"\nidle_timeout_s = -1.0"));
        assert!(e.contains("idle_timeout_s"), "{e}");
    }

    #[test]
    fn bad_address_names_line_and_reason() {
        let e = error_of(&GOOD.replace("10.77.0.2/24", "10.77.0.299/24"));
        assert!(e.starts_with("bad.toml:7:"), "{e}");
        assert!(e.contains("not a valid address"), "{e}");
    }

    #[test]
    fn unknown_key_and_bad_driver_are_rejected() {
        let e = error_of(&GOOD.replace("driver = \"af_xdp\"", "driver = \"dpdk\""));
        assert!(e.starts_with("bad.toml:4:"), "{e}");
        let e = error_of(&GOOD.replace("[[service]]", "[[service]]\ncolour = 1"));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn workload_settings_are_checked() {
        let cfg = Config::parse(GOOD, "good.toml").unwrap();
        assert!(cfg.file.workload.is_none(), "defaults when absent");
        let good = format!(
            "{GOOD}\n[workload]\ncicsint = 40\nprtymin = 20\nprtymax = 180\n\
             runaway_action = \"demote\"\ninterval_ms = 50\n"
        );
        let cfg = Config::parse(&good, "good.toml").unwrap();
        let p = cfg.file.workload.as_ref().unwrap().get_ref().policy();
        assert_eq!((p.cicsint, p.prtymin, p.prtymax), (40, 20, 180));
        assert_eq!(p.action, sixstack_stack::workload::RunawayAction::Demote);
        assert_eq!(p.interval, std::time::Duration::from_millis(50));
        let e = error_of(&good.replace("prtymax = 180", "prtymax = 10"));
        assert!(e.contains("[workload]") && e.contains("prtymin"), "{e}");
        let e = error_of(&good.replace("cicsint = 40", "cicsint = 0"));
        assert!(e.contains("cicsint"), "{e}");
        let e = error_of(&good.replace("\"demote\"", "\"kill\""));
        assert!(e.contains("kill"), "{e}");
        let e = error_of(&good.replace("interval_ms = 50", "interval_ms = 0"));
        assert!(e.contains("interval"), "{e}");
        let prio = GOOD.replace("[[service]]", "[[service]]\npriority = 200");
        let cfg = Config::parse(&prio, "good.toml").unwrap();
        assert!(cfg.file.services.iter().any(|s| s.priority == 200));
        let e = error_of(&GOOD.replace("[[service]]", "[[service]]\npriority = 256"));
        assert!(e.contains("priority") || e.contains("256"), "{e}");
    }

    #[test]
    fn ftp_ports_and_their_conflicts() {
        let good = format!(
            "{GOOD}\n[ftp]\nusers = \"u.toml\"\nproxied_port = 2122\n\
             trusted_proxies = [\"10.77.0.9\", \"fd77::9\"]\nxferlog = \"x.log\"\n"
        );
        let cfg = Config::parse(&good, "good.toml").unwrap();
        let f = cfg.file.ftp.as_ref().unwrap();
        assert_eq!(f.proxied_port.as_ref().map(|p| *p.get_ref()), Some(2122));
        assert_eq!(f.trusted_proxies.len(), 2);
        assert!(!f.allow_ccc, "CCC is off by default");
        let e = error_of(&good.replace("proxied_port = 2122", "proxied_port = 21"));
        assert!(e.contains("proxied_port 21 is 0 or already used"), "{e}");
        let e = error_of(&good.replace("\"fd77::9\"", "\"fd77::zz\""));
        assert!(
            e.contains(":17:") && e.contains("invalid IP address"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_port_and_syntax_errors() {
        let e = error_of(&format!(
            "{GOOD}\n[[service]]\nkind = \"discard\"\nport = 7\n"
        ));
        assert!(e.contains("already used"), "{e}");
        let e = error_of("[interface\nname=");
        assert!(e.starts_with("bad.toml:1:"), "{e}");
        let e = error_of(&GOOD.replace("ipv6 = [\"fd77::2/64\"]", "ipv6 = [\"ff02::1/64\"]"));
        assert!(e.contains("cannot be an interface address"), "{e}");
    }

    #[test]
    fn fault_option_parses_inline_and_as_a_table() {
        assert!(Config::parse(GOOD, "good.toml").unwrap().fault.is_none());
        let inline = GOOD.replace(
            "driver = \"af_xdp\"",
            "driver = \"af_xdp\"\nfault = { loss = 0.02, seed = 7 }",
        );
        let f = Config::parse(&inline, "good.toml").unwrap().fault.unwrap();
        assert_eq!((f.seed, f.rx.loss, f.tx.loss), (7, 0.02, 0.02));
        assert_eq!(f.rx.delay_ms, 0.0);
        let table = format!(
            "{GOOD}\n[interface.fault]\nloss = 0.01\ndelay_ms = 20\n\
             burst_loss = {{ every = 100, length = 5 }}\nrx = {{ loss = 0.05 }}\n\
             tx = {{ rate_mbit = 100, jitter_ms = 2.5, queue_limit = 50 }}\n"
        );
        let f = Config::parse(&table, "good.toml").unwrap().fault.unwrap();
        assert_eq!(f.seed, 1, "the default seed");
        assert_eq!((f.rx.loss, f.tx.loss), (0.05, 0.01));
        assert_eq!((f.rx.delay_ms, f.tx.delay_ms), (20.0, 20.0));
        assert_eq!((f.rx.rate_mbit, f.tx.rate_mbit), (None, Some(100.0)));
        assert_eq!((f.rx.jitter_ms, f.tx.jitter_ms), (0.0, 2.5));
        assert_eq!((f.rx.queue_limit, f.tx.queue_limit), (1000, 50));
        let burst = sixstack_drivers::fault::BurstLoss {
            every: 100,
            length: 5,
        };
        assert_eq!(
            (f.rx.burst_loss, f.tx.burst_loss),
            (Some(burst), Some(burst))
        );
    }

    #[test]
    fn bad_fault_values_are_refused_with_their_line() {
        let with = |fault: &str| {
            error_of(&GOOD.replace(
                "driver = \"af_xdp\"",
                &format!("driver = \"af_xdp\"\nfault = {fault}"),
            ))
        };
        let e = with("{ loss = 1.5 }");
        assert!(e.starts_with("bad.toml:5:"), "{e}");
        assert!(
            e.contains("interface.fault.loss = 1.5 is not a probability"),
            "{e}"
        );
        let e = with("{ loss = 0.1, rx = { duplicate = -0.1 } }");
        assert!(e.starts_with("bad.toml:5:"), "{e}");
        assert!(e.contains("interface.fault.rx.duplicate = -0.1"), "{e}");
        assert!(with("{ delay_ms = -5 }").contains("delay_ms"));
        assert!(with("{ jitter_ms = 1e9 }").contains("jitter_ms"));
        assert!(with("{ rate_mbit = 0 }").contains("rate_mbit"));
        assert!(with("{ tx = { queue_limit = 0 } }").contains("tx.queue_limit"));
        let e = with("{ burst_loss = { every = 5, length = 5 } }");
        assert!(
            e.contains("burst_loss") && e.contains("length < every"),
            "{e}"
        );
        let e = with("{ los = 0.1 }");
        assert!(e.starts_with("bad.toml:5:") && e.contains("los"), "{e}");
        let e = with("{ rx = { seed = 3 } }");
        assert!(e.contains("belong in the fault table itself"), "{e}");
        assert!(with("{ seed = -1 }").starts_with("bad.toml:5:"));
        assert!(with("{ loss = \"lots\" }").starts_with("bad.toml:5:"));
        let e = error_of(&format!(
            "{GOOD}\n[interface.fault]\nseed = 2\nreorder = 2\n"
        ));
        assert!(e.starts_with("bad.toml:16:"), "{e}");
    }

    #[test]
    fn mac_forms() {
        assert_eq!(parse_mac("02:00:00:00:00:01").unwrap(), [2, 0, 0, 0, 0, 1]);
        assert!(parse_mac("01:00:00:00:00:01").is_err());
        assert!(parse_mac("zz").is_err());
    }
}
