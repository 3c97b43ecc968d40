//! Turning a validated configuration into a running appliance: find the NIC's queues,
//! open one link per queue in the interface's namespace, start one pinned shard thread per
//! link with the configured services, and stop them all on request.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sixstack_basic::Kind;
use sixstack_drivers::afxdp::{XdpAttachMode, XdpConfig, XdpFilter, XdpLink, XdpProgram, ZeroCopy};
use sixstack_drivers::fault::{FaultConfig, FaultLink};
use sixstack_drivers::pcap::PcapLink;
use sixstack_drivers::rss::{self, NtupleRule, Proto as RssProto, RssConfig};
use sixstack_drivers::tap::TapLink;
use sixstack_drivers::{netdev, Link};
use sixstack_stack::{
    IpAddress, ListenOptions, MeshEnd, Net, Proto as StackProto, ReceiveQueueFn, Shard,
    ShardControl, ShardStats, StackConfig,
};

use sixstack_tls::{ClientAuth, ServerFactory, ServerSettings, TlsPolicy};

use crate::config::{
    ClientAuthSetting, Config, DriverKind, Proto, RssSetting, ServiceKind, XdpMode, ZeroCopySetting,
};
use crate::control::{ControlServer, Histo, ShardReport, StatsReport, StatsSource};

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
    /// A shard thread failed.
    #[error("shard: {0}")]
    Shard(String),
    /// The control socket could not be opened.
    #[error("control socket: {0}")]
    Control(String),
    /// The TLS material or policy was refused.
    #[error("tls: {0}")]
    Tls(String),
    /// A file the configuration names was refused (e.g. the FTP security file).
    #[error("{0}")]
    Config(String),
}

/// The MAC a TAP-attached stack uses when none is configured (locally administered).
pub const TAP_DEFAULT_MAC: [u8; 6] = [0x02, 0x53, 0x49, 0x58, 0x00, 0x02];

/// What runs on each shard once it is built: `(net, shard index)`.
pub type ShardJob = Arc<dyn Fn(&Net, u32) + Send + Sync>;

/// Where each shard runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Shard index.
    pub shard: u32,
    /// NIC queue.
    pub queue: u32,
    /// Pinned core, if pinning worked.
    pub core: Option<usize>,
    /// The link's description.
    pub link: String,
}

fn stack_config(cfg: &Config, mac: [u8; 6]) -> StackConfig {
    stack_config_with(cfg, mac, None)
}

/// The stack's configuration, the workload manager's policy taken from `board` when given.
fn stack_config_with(
    cfg: &Config,
    mac: [u8; 6],
    board: Option<&Arc<sixstack_stack::workload::Board>>,
) -> StackConfig {
    let mut s = StackConfig::new(mac);
    s.ipv4 = cfg.ipv4;
    s.ipv6 = cfg.ipv6.clone();
    s.gateway4 = cfg.gateway4;
    s.gateway6 = cfg.gateway6;
    s.tcp_rx_buffer = *cfg.file.tcp.rx_buffer.get_ref();
    s.tcp_tx_buffer = *cfg.file.tcp.tx_buffer.get_ref();
    s.backlog = *cfg.file.tcp.backlog.get_ref();
    s.max_per_source = *cfg.file.tcp.max_per_source.get_ref();
    s.socket_memory = cfg
        .file
        .tcp
        .memory_budget_mb
        .get_ref()
        .saturating_mul(1 << 20);
    s.busy_poll_us = u64::from(cfg.file.interface.busy_poll_us);
    s.workload = cfg
        .file
        .workload
        .as_ref()
        .map(|w| w.get_ref().policy())
        .unwrap_or_default();
    s.workload_board = board.cloned();
    s.seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    s
}

/// Whether `svc` runs on `shard`.
fn runs_on(svc: &crate::config::Service, shard: u32) -> bool {
    svc.shards
        .as_ref()
        .is_none_or(|s| s.get_ref().contains(&shard))
}

/// Loads the TLS material of `[tls]` (once, before the shards start): every shard's
/// acceptor is made from it.
pub fn tls_factory(cfg: &Config) -> Result<Option<Arc<ServerFactory>>, AppError> {
    let Some(t) = &cfg.file.tls else {
        return Ok(None);
    };
    let mut s = ServerSettings::new(cfg.path(t.cert.get_ref()), cfg.path(t.key.get_ref()));
    s.client_ca = t.client_ca.as_ref().map(|p| cfg.path(p.get_ref()));
    s.client_auth = match t.client_auth.get_ref() {
        ClientAuthSetting::None => ClientAuth::None,
        ClientAuthSetting::Optional => ClientAuth::Optional,
        ClientAuthSetting::Required => ClientAuth::Required,
    };
    s.policy = TlsPolicy {
        require_tls13: t.min_version.get_ref() == "1.3",
    };
    s.session_cache = t.session_cache;
    s.tickets = t.tickets;
    s.ticket_rotation = Duration::from_secs(*t.ticket_rotation_s.get_ref());
    let f = ServerFactory::new(s).map_err(|e| AppError::Tls(e.to_string()))?;
    if let Some(leaf) = f.resolver().leaf() {
        log::info!(
            "tls: serving {} ({} {} bits, not after {}) with {}",
            leaf.subject,
            leaf.key_type,
            leaf.key_bits,
            leaf.not_after,
            sixstack_tls::provider::name()
        );
    }
    Ok(Some(Arc::new(f)))
}

fn listen_options(net: &Net, svc: &crate::config::Service) -> ListenOptions {
    let mut opts = ListenOptions::from_config(net);
    if let Some(b) = &svc.rx_buffer {
        opts.rx_buffer = *b.get_ref();
    }
    if let Some(b) = &svc.tx_buffer {
        opts.tx_buffer = *b.get_ref();
    }
    opts
}

/// The proxy listener `p` of the configuration, for the proxy crate; paths are resolved
/// against the configuration file's directory.
pub fn proxy_config(cfg: &Config, p: &crate::config::Proxy) -> sixstack_proxy::ProxyConfig {
    use crate::config::BalanceSetting as B;
    use sixstack_proxy::Algorithm as A;
    sixstack_proxy::ProxyConfig {
        name: p.name.get_ref().clone(),
        port: *p.port.get_ref(),
        // Checked when the configuration was loaded.
        address: p.address.as_ref().and_then(|a| a.get_ref().parse().ok()),
        algorithm: match p.algorithm {
            B::RoundRobin => A::RoundRobin,
            B::WeightedRoundRobin => A::WeightedRoundRobin,
            B::LeastConnections => A::LeastConnections,
            B::PowerOfTwo => A::PowerOfTwo,
            B::Maglev => A::Maglev,
        },
        backends: p
            .backends
            .iter()
            .filter_map(|b| {
                // Checked when the configuration was loaded.
                let sa: std::net::SocketAddr = b.address.get_ref().parse().ok()?;
                let tls = b.tls.then(|| sixstack_proxy::BackendTls {
                    server_name: b
                        .tls_name
                        .as_ref()
                        .map_or_else(|| sa.ip().to_string(), |n| n.get_ref().clone()),
                    settings: sixstack_tls::client::ClientSettings {
                        ca: b.tls_ca.as_ref().map(|c| cfg.path(c.get_ref())),
                        cert: b.tls_cert.as_ref().map(|c| cfg.path(c.get_ref())),
                        key: b.tls_key.as_ref().map(|c| cfg.path(c.get_ref())),
                        ..Default::default()
                    },
                });
                Some(sixstack_proxy::BackendConfig {
                    name: b
                        .name
                        .as_ref()
                        .map_or_else(|| b.address.get_ref().clone(), |n| n.get_ref().clone()),
                    endpoint: sixstack_stack::IpEndpoint::new(sa.ip().into(), sa.port()),
                    weight: *b.weight.get_ref(),
                    proxy_protocol: b.proxy_protocol.map(|v| match v {
                        crate::config::ProxyProtocolSetting::V1 => {
                            sixstack_proxy::proxy_protocol::Version::V1
                        }
                        crate::config::ProxyProtocolSetting::V2 => {
                            sixstack_proxy::proxy_protocol::Version::V2
                        }
                    }),
                    tls,
                })
            })
            .collect(),
        connect_timeout: Duration::from_millis(p.connect_timeout_ms),
        eject_after: p.eject_after,
        retry_after: Duration::from_secs_f64(p.retry_after_s),
        health: (p.check_interval_ms > 0).then(|| sixstack_proxy::HealthCheck {
            interval: Duration::from_millis(p.check_interval_ms),
            // A check must end before the next one is due.
            timeout: Duration::from_millis(p.connect_timeout_ms.min(p.check_interval_ms)),
            rise: p.check_rise,
            fall: p.check_fall,
            send: p.check_send.clone().into_bytes(),
            expect: p.check_expect.clone().into_bytes(),
        }),
        idle_timeout: (p.idle_timeout_s > 0.0).then(|| Duration::from_secs_f64(p.idle_timeout_s)),
        down_banner: p.down_banner.clone().map(String::into_bytes),
        buffers: match (&p.rx_buffer, &p.tx_buffer) {
            (None, None) => None,
            (rx, tx) => Some((
                rx.as_ref()
                    .map_or(*cfg.file.tcp.rx_buffer.get_ref(), |v| *v.get_ref()),
                tx.as_ref()
                    .map_or(*cfg.file.tcp.tx_buffer.get_ref(), |v| *v.get_ref()),
            )),
        },
    }
}

/// The board of every proxy listener of `cfg` (counters, drain flags), after checking
/// that each TLS backend's client configuration can be built (CA and certificate files
/// readable and valid).
pub fn proxy_board(cfg: &Config) -> Result<Arc<sixstack_proxy::Board>, AppError> {
    let proxies: Vec<_> = cfg
        .file
        .proxies
        .iter()
        .map(|p| proxy_config(cfg, p))
        .collect();
    for p in &proxies {
        for b in &p.backends {
            if let Some(t) = &b.tls {
                sixstack_tls::client::client_config(&t.settings).map_err(|e| {
                    AppError::Tls(format!("proxy {} backend {}: {e}", p.name, b.name))
                })?;
            }
        }
    }
    Ok(Arc::new(sixstack_proxy::Board::new(&proxies)))
}

/// What every shard's services share: the TLS material, the proxies' board, the FTP
/// server's configuration (its users loaded).
#[derive(Clone, Debug)]
pub struct ServiceContext {
    /// TLS server factory, when `[tls]` is configured.
    pub tls: Option<Arc<ServerFactory>>,
    /// The proxy listeners' board.
    pub board: Arc<sixstack_proxy::Board>,
    /// The FTP server, when `[ftp]` is configured.
    pub ftp: Option<Arc<sixstack_ftp::FtpConfig>>,
}

/// Loads what the services need before any shard starts (TLS material, FTP users, backend
/// TLS settings); every failure is reported here, with its file.
pub fn service_context(cfg: &Config) -> Result<ServiceContext, AppError> {
    let ftp = match &cfg.file.ftp {
        None => None,
        Some(f) => {
            use crate::config::FtpMethod;
            let file = |v: &Option<toml::Spanned<String>>| {
                v.as_ref()
                    .map(|p| cfg.path(p.get_ref()))
                    .unwrap_or_default()
            };
            let security = match f.method {
                FtpMethod::Standard => sixstack_ftp::Security::Standard(Arc::new(
                    sixstack_ftp::users::Users::load(&file(&f.users))
                        .map_err(|e| AppError::Config(format!("ftp users: {e}")))?,
                )),
                FtpMethod::ResourceRules => sixstack_ftp::Security::Rules(Arc::new(
                    sixstack_ftp::rules::RuleBase::load(&file(&f.rules))
                        .map_err(|e| AppError::Config(format!("ftp rules: {e}")))?,
                )),
                FtpMethod::Exit => {
                    let program = file(&f.exit_program);
                    if !program.is_file() {
                        return Err(AppError::Config(format!(
                            "ftp exit_program {}: not a file",
                            program.display()
                        )));
                    }
                    sixstack_ftp::Security::Exit(Arc::new(sixstack_ftp::exit::ExitProgram {
                        program,
                        args: f.exit_args.clone(),
                        timeout: Duration::from_millis(f.exit_timeout_ms),
                    }))
                }
            };
            let mut signon = security.certificate_map();
            signon.common_name_is_user = f.certificate_common_name;
            let xferlog = match &f.xferlog {
                None => None,
                Some(_) => {
                    let path = file(&f.xferlog);
                    let log = sixstack_ftp::xferlog::XferLog::open(&path).map_err(|e| {
                        AppError::Config(format!("ftp xferlog {}: {e}", path.display()))
                    })?;
                    Some(log)
                }
            };
            let [a, b] = *f.passive_ports.get_ref();
            let mut policy = sixstack_ftp::SessionPolicy {
                require_tls: f.require_tls,
                allow_ccc: f.allow_ccc,
                ..Default::default()
            };
            if let Some(banner) = &f.banner {
                policy.banner = banner.clone();
            }
            Some(Arc::new(sixstack_ftp::FtpConfig {
                port: *f.port.get_ref(),
                security,
                passive_ports: a..=b,
                policy,
                idle_timeout: Duration::from_secs_f64(f.idle_timeout_s),
                data_timeout: Duration::from_secs_f64(f.data_timeout_s),
                implicit_port: f.implicit_port.as_ref().map(|p| *p.get_ref()),
                require_data_resumption: f.require_data_resumption,
                limits: sixstack_ftp::limits::Limits::new(sixstack_ftp::limits::LimitsConfig {
                    max_clients: f.max_clients,
                    max_per_address: f.max_per_address,
                    max_failures: f.lockout_after,
                    lockout: Duration::from_secs_f64(f.lockout_s),
                }),
                failure_delay: Duration::from_millis(f.failure_delay_ms),
                signon: Arc::new(signon),
                data_buffer: *f.data_buffer.get_ref(),
                xferlog,
                proxied_port: f.proxied_port.as_ref().map(|p| *p.get_ref()),
                trusted_proxies: f.trusted_proxies.clone(),
                strict_tls_upload_eof: f.strict_tls_upload_eof,
                login_cache: Arc::new(sixstack_ftp::login_cache::LoginCache::new(
                    Duration::from_secs_f64(f.login_cache_s),
                )),
            }))
        }
    };
    Ok(ServiceContext {
        tls: tls_factory(cfg)?,
        board: proxy_board(cfg)?,
        ftp,
    })
}

/// This shard's TLS acceptor for `what` (a service or a proxy), or `None` after logging
/// why there is none.
fn shard_acceptor(
    net: &Net,
    tls: Option<&ServerFactory>,
    what: &str,
) -> Option<sixstack_tls::ShardAcceptor> {
    match tls.map(|f| f.acceptor_on(net)) {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            log::error!("{what}: {e}");
            None
        }
        None => {
            log::error!("{what}: no [tls] material");
            None
        }
    }
}

/// Starts the configured services that run on `shard` (TLS ones with an acceptor made
/// from `tls` for this shard), and the proxy listeners (publishing on `board`).
pub fn start_services(net: &Net, cfg: &Config, shard: u32, ctx: &ServiceContext) {
    let tls = ctx.tls.as_deref();
    let board = &ctx.board;
    // The FTP server and the proxy listeners of a shard share one acceptor, so one session
    // cache: a session begun at a proxy listener resumes at the FTP server (implicit FTPS
    // by way of a proxy listener, whose data connections come to the FTP server).
    let shared = tls.and_then(|_| shard_acceptor(net, tls, "ftp and proxy listeners"));
    if let Some(f) = &ctx.ftp {
        let (n, fc) = (net.clone(), std::rc::Rc::new((**f).clone()));
        let acceptor = shared.clone();
        let priority = cfg.file.ftp.as_ref().map_or(100, |f| f.priority);
        let group = cfg.file.ftp.as_ref().and_then(|f| f.group.as_deref());
        let id = net.register_service("ftp", group);
        net.spawn_service(id, priority, async move {
            if let Err(e) = sixstack_ftp::serve(n, fc, acceptor).await {
                log::error!("ftp stopped: {e}");
            }
        });
    }
    for p in &cfg.file.proxies {
        let pc = proxy_config(cfg, p);
        let Some(lb) = board.listener(&pc.name) else {
            log::error!("proxy {}: not on the board; not started", pc.name);
            continue;
        };
        let acceptor = if p.tls {
            let Some(a) = shared.clone() else {
                log::error!("proxy {}: no [tls] material; not started", pc.name);
                continue;
            };
            Some(a)
        } else {
            None
        };
        let n = net.clone();
        let id = net.register_service(&format!("proxy {}", pc.name), p.group.as_deref());
        net.spawn_service(id, p.priority, async move {
            let name = pc.name.clone();
            if let Err(e) = sixstack_proxy::serve(n, pc, acceptor, lb).await {
                log::error!("proxy {name} stopped: {e}");
            }
        });
    }
    for svc in cfg.file.services.iter().filter(|s| runs_on(s, shard)) {
        let port = *svc.port.get_ref();
        let group = svc.group.as_deref();
        let tls_kind = match svc.kind {
            ServiceKind::TlsEcho => Some(sixstack_tls::service::Kind::Echo),
            ServiceKind::TlsDiscard => Some(sixstack_tls::service::Kind::Discard),
            ServiceKind::TlsHttp => Some(sixstack_tls::service::Kind::Http),
            ServiceKind::StarttlsEcho => Some(sixstack_tls::service::Kind::StartTlsEcho),
            _ => None,
        };
        if let Some(tkind) = tls_kind {
            let what = format!("{} on port {port}", tkind.name());
            let Some(acceptor) = shard_acceptor(net, tls, &what) else {
                continue;
            };
            let n = net.clone();
            let opts = listen_options(net, svc);
            let limit = cfg
                .file
                .tls
                .as_ref()
                .map_or(10.0, |t| *t.handshake_timeout_s.get_ref());
            let limit = Duration::from_secs_f64(limit);
            let idle = Duration::from_secs_f64(*svc.idle_timeout_s.get_ref());
            let id = net.register_service(&format!("{} tcp/{port}", tkind.name()), group);
            net.spawn_service(id, svc.priority, async move {
                if let Err(e) =
                    sixstack_tls::service::serve(n, tkind, port, opts, acceptor, limit, idle).await
                {
                    log::error!("{} on port {port} stopped: {e}", tkind.name());
                }
            });
            continue;
        }
        let kind = match svc.kind {
            ServiceKind::Discard => Kind::Discard,
            ServiceKind::Chargen => Kind::Chargen,
            _ => Kind::Echo,
        };
        if svc.proto != Proto::Udp {
            let n = net.clone();
            let opts = listen_options(net, svc);
            let idle = Duration::from_secs_f64(*svc.idle_timeout_s.get_ref());
            let id = net.register_service(&format!("{} tcp/{port}", kind.name()), group);
            net.spawn_service(id, svc.priority, async move {
                if let Err(e) = sixstack_basic::serve_tcp_with(n, kind, port, opts, idle).await {
                    log::error!("tcp {} on port {port} stopped: {e}", kind.name());
                }
            });
        }
        if svc.proto != Proto::Tcp {
            let n = net.clone();
            let id = net.register_service(&format!("{} udp/{port}", kind.name()), group);
            net.spawn_service(id, svc.priority, async move {
                if let Err(e) = sixstack_basic::serve_udp(n, kind, port).await {
                    log::error!("udp {} on port {port} stopped: {e}", kind.name());
                }
            });
        }
    }
}

/// The placement lines `run` prints: which shards run which service.
pub fn service_placement(cfg: &Config, shards: u32) -> Vec<String> {
    let all: Vec<u32> = (0..shards).collect();
    let proxies = cfg.file.proxies.iter().map(|p| {
        format!(
            "proxy {} tcp/{} -> {} backends ({:?}) on shards {all:?}",
            p.name.get_ref(),
            p.port.get_ref(),
            p.backends.len(),
            p.algorithm
        )
    });
    let services: Vec<String> = cfg
        .file
        .services
        .iter()
        .map(|svc| {
            let on: Vec<u32> = (0..shards).filter(|&s| runs_on(svc, s)).collect();
            let proto = match svc.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
                Proto::Both => "tcp+udp",
            };
            let proto = if svc.kind.is_tls() { "tcp" } else { proto };
            format!(
                "{} {proto}/{} on shards {on:?}",
                svc.kind.name(),
                svc.port.get_ref()
            )
        })
        .collect();
    services.into_iter().chain(proxies).collect()
}

/// Services pinned away from `shard`, for its steering table.
fn pinned_elsewhere(cfg: &Config, shard: u32, shards: u32) -> Vec<(StackProto, u16, Vec<u32>)> {
    let mut out = Vec::new();
    for svc in &cfg.file.services {
        if runs_on(svc, shard) {
            continue;
        }
        let on: Vec<u32> = (0..shards).filter(|&s| runs_on(svc, s)).collect();
        let port = *svc.port.get_ref();
        if svc.proto != Proto::Udp {
            out.push((StackProto::Tcp, port, on.clone()));
        }
        if svc.proto != Proto::Tcp {
            out.push((StackProto::Udp, port, on));
        }
    }
    out
}

/// The receive-hash function for client port choice, per the `rss` setting: the NIC's
/// own key and table (read in the interface's namespace), the lab emulator's, or none.
fn receive_queue_fn(cfg: &Config, queues: u32) -> Option<ReceiveQueueFn> {
    let ifc = &cfg.file.interface;
    let rss = match ifc.rss {
        RssSetting::Off => return None,
        RssSetting::Lab => RssConfig::with_queues(queues),
        RssSetting::Auto => {
            let name = ifc.name.clone();
            match in_ns(ifc.netns.as_deref(), || rss::read_from_nic(&name)) {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => {
                    log::info!("{}: the NIC reports no RSS hash; replies to client connections that land on another shard are handed over", ifc.name);
                    return None;
                }
                Ok(Err(e)) => {
                    log::warn!(
                        "{}: cannot read the RSS hash ({e}); client replies are handed over",
                        ifc.name
                    );
                    return None;
                }
                Err(e) => {
                    log::warn!("{e}");
                    return None;
                }
            }
        }
    };
    let to_ip = |a: IpAddress| -> IpAddr {
        match a {
            IpAddress::Ipv4(v) => IpAddr::V4(v),
            IpAddress::Ipv6(v) => IpAddr::V6(v),
        }
    };
    Some(Arc::new(move |src, dst, sport, dport| {
        rss.queue_for(to_ip(src), to_ip(dst), sport, dport)
    }))
}

/// For services pinned to some shards, n-tuple rules that steer their port to the first
/// such shard's queue, where the NIC has them; elsewhere (veth) frames that land on
/// another shard are handed over in software.
fn ntuple_rules(cfg: &Config, queues: &[u32]) -> Vec<NtupleRule> {
    let ifc = &cfg.file.interface;
    let mut rules = Vec::new();
    for svc in &cfg.file.services {
        let Some(on) = svc.shards.as_ref() else {
            continue;
        };
        let Some(&first) = on.get_ref().first() else {
            continue;
        };
        let Some(&queue) = queues.get(first as usize) else {
            continue;
        };
        let port = *svc.port.get_ref();
        for (want, proto) in [(Proto::Tcp, RssProto::Tcp), (Proto::Udp, RssProto::Udp)] {
            if svc.proto != want && svc.proto != Proto::Both {
                continue;
            }
            let name = ifc.name.clone();
            match in_ns(ifc.netns.as_deref(), || NtupleRule::insert(&name, proto, port, queue)) {
                Ok(Ok(rule)) => {
                    log::info!("{name}: n-tuple rule steers {proto:?} port {port} to queue {queue}");
                    rules.push(rule);
                }
                Ok(Err(e)) => log::info!(
                    "{name}: no n-tuple rule for {proto:?} port {port} ({e}); frames for it that land on other shards are handed over"
                ),
                Err(e) => log::warn!("{e}"),
            }
        }
    }
    rules
}

/// A running appliance: one thread per shard.
#[derive(Debug)]
pub struct Running {
    controls: Vec<ShardControl>,
    threads: Vec<std::thread::JoinHandle<Result<ShardStats, AppError>>>,
    slots: Vec<Arc<Mutex<ShardStats>>>,
    placement: Vec<Placement>,
    services: Vec<String>,
    started: std::time::Instant,
    workload: Arc<sixstack_stack::workload::Board>,
    // Dropped before the program: n-tuple rules are removed on the way out.
    _rules: Vec<NtupleRule>,
    _program: Option<XdpProgram>,
}

impl Running {
    /// Stops every shard and waits for them; returns each shard's final counters.
    pub fn stop(self) -> Result<Vec<ShardStats>, AppError> {
        for c in &self.controls {
            c.stop();
        }
        self.join()
    }

    /// Whether any shard thread has ended (by error).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().any(|t| t.is_finished())
    }

    /// Where the shards run.
    pub fn placement(&self) -> &[Placement] {
        &self.placement
    }

    /// Which shards run which service.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The latest published counters of every shard (at most 100 ms old).
    pub fn snapshot(&self) -> Vec<ShardStats> {
        self.slots
            .iter()
            .map(|s| s.lock().map(|g| *g).unwrap_or_default())
            .collect()
    }

    /// The published counter slots, for readers on other threads.
    pub fn stat_slots(&self) -> Vec<Arc<Mutex<ShardStats>>> {
        self.slots.clone()
    }

    /// Waits for every shard thread.
    pub fn join(self) -> Result<Vec<ShardStats>, AppError> {
        let mut out = Vec::new();
        let mut first_err = None;
        for t in self.threads {
            match t.join() {
                Ok(Ok(s)) => out.push(s),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(AppError::Shard("a shard thread panicked".into()));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// Runs `f` inside the configured namespace (or here).
fn in_ns<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T, AppError> {
    match ns {
        Some(ns) => netdev::in_netns(ns, f).map_err(|e| AppError::Link {
            ifname: format!("namespace {ns}"),
            reason: e.to_string(),
        }),
        None => Ok(f()),
    }
}

struct Plan {
    queues: Vec<u32>,
    cores: Vec<Option<usize>>,
}

fn plan(cfg: &Config, nic_queues: u32) -> Plan {
    let ifc = &cfg.file.interface;
    let mut queues: Vec<u32> = match &ifc.queues {
        Some(q) => q.get_ref().clone(),
        None => (0..nic_queues.max(1)).collect(),
    };
    let cores: Vec<usize> = match &ifc.cores {
        Some(c) => c.get_ref().clone(),
        None => {
            let n = core_affinity::get_core_ids().map_or(1, |v| v.len().max(1));
            (0..n).collect()
        }
    };
    if queues.len() > cores.len() {
        log::warn!(
            "{} queues but {} cores: serving queues {:?}; frames on the others go to the kernel",
            queues.len(),
            cores.len(),
            &queues[..cores.len()]
        );
        queues.truncate(cores.len());
    }
    let pin = ifc.cores.is_some() || queues.len() > 1;
    Plan {
        cores: (0..queues.len())
            .map(|i| pin.then(|| cores[i % cores.len()]))
            .collect(),
        queues,
    }
}

fn pcap_path(base: &str, shard: u32) -> String {
    if shard == 0 {
        base.to_string()
    } else {
        format!("{base}.{shard}")
    }
}

/// Opens the links (in the configured namespace), builds one shard per link, runs `job` on
/// each, and returns once every shard is serving.
pub fn start(cfg: Config, job: ShardJob) -> Result<Running, AppError> {
    let ifc = cfg.file.interface.clone();
    let ns = ifc.netns.as_deref();
    let fail = |reason: String| AppError::Link {
        ifname: ifc.name.clone(),
        reason,
    };
    if let Some(f) = &cfg.fault {
        log::warn!(
            "fault injection is on: {f} (for tests and demonstrations: frames are hurt on \
             purpose, and shards busy-poll while delayed frames are held)"
        );
    }
    let mut program = None;
    let mut rules = Vec::new();
    let mut pending: Vec<Box<dyn FnOnce(ShardSetup) -> Spawned + Send>> = Vec::new();
    let (mac, plan) = match ifc.driver {
        DriverKind::AfXdp => {
            let name = ifc.name.clone();
            let (mac, nq, if_mtu) = in_ns(ns, || {
                (
                    netdev::mac_address(&name),
                    netdev::rx_queue_count(&name),
                    netdev::mtu(&name),
                )
            })?;
            let if_mtu = if_mtu.map_err(|e| fail(e.to_string()))?;
            let mtu = match ifc.mtu {
                Some(m) => {
                    let m = u32::try_from(m).unwrap_or(u32::MAX);
                    if m != if_mtu {
                        log::warn!(
                            "{name}: configured mtu {m} differs from the interface's {if_mtu}"
                        );
                    }
                    m
                }
                None => if_mtu,
            };
            let mac = match cfg.mac {
                Some(m) => m,
                None => mac.map_err(|e| fail(e.to_string()))?,
            };
            let plan = plan(&cfg, nq);
            let probe = stack_config(&cfg, mac);
            let (v4, v6) = probe.addresses();
            let filter = XdpFilter { ipv4: v4, ipv6: v6 };
            let attach = match ifc.xdp_mode {
                XdpMode::Auto => XdpAttachMode::Auto,
                XdpMode::Native => XdpAttachMode::Native,
                XdpMode::Generic => XdpAttachMode::Generic,
            };
            let zero_copy = match ifc.zero_copy {
                ZeroCopySetting::Auto => ZeroCopy::Auto,
                ZeroCopySetting::Require => ZeroCopy::Require,
                ZeroCopySetting::Off => ZeroCopy::Off,
            };
            let queues = plan.queues.clone();
            let busy_poll = ifc.busy_poll_us;
            let top = queues.iter().copied().max().unwrap_or(0) + 1;
            let (prog, links) = in_ns(ns, || -> Result<_, String> {
                let prog =
                    XdpProgram::attach(&name, &filter, attach, top).map_err(|e| e.to_string())?;
                let mut links = Vec::new();
                for &q in &queues {
                    let mut xc = XdpConfig::new(name.clone(), q, filter.clone());
                    xc.attach = attach;
                    xc.zero_copy = zero_copy;
                    xc.mtu = mtu;
                    if xc.multi_buffer() {
                        // Page-sized buffers: a 9000-byte frame in three, not six.
                        xc.frame_size = 4096;
                    }
                    let link = XdpLink::bind(&prog, &xc).map_err(|e| e.to_string())?;
                    if busy_poll > 0 {
                        if let Err(e) = link.set_busy_poll(busy_poll, 64) {
                            log::debug!("{name} q{q}: no preferred busy polling: {e}");
                        }
                    }
                    links.push(link);
                }
                Ok((prog, links))
            })?
            .map_err(fail)?;
            program = Some(prog);
            rules = ntuple_rules(&cfg, &plan.queues);
            for link in links {
                pending.push(wrapped(link, ifc.pcap.clone(), cfg.fault));
            }
            (mac, plan)
        }
        DriverKind::Tap => {
            let name = ifc.name.clone();
            let mtu = ifc.mtu.unwrap_or(1500);
            let link = in_ns(ns, || TapLink::open(&name, mtu))?.map_err(|e| fail(e.to_string()))?;
            pending.push(wrapped(link, ifc.pcap.clone(), cfg.fault));
            let mut p = plan(&cfg, 1);
            p.queues.truncate(1);
            p.cores.truncate(1);
            (cfg.mac.unwrap_or(TAP_DEFAULT_MAC), p)
        }
    };
    let n = pending.len() as u32;
    let meshes: Vec<Option<MeshEnd>> = if n > 1 {
        sixstack_stack::mesh(n)
            .map_err(|e| AppError::Stack(e.to_string()))?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None]
    };
    let receive_queue = match ifc.driver {
        DriverKind::AfXdp => receive_queue_fn(&cfg, plan.queues.len() as u32),
        DriverKind::Tap => None,
    };
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    let mut slots = Vec::new();
    let workload = sixstack_stack::workload::Board::new(stack_config(&cfg, mac).workload);
    for (i, (open, mesh)) in pending.into_iter().zip(meshes).enumerate() {
        let i = i as u32;
        let mut stack = stack_config_with(&cfg, mac, Some(&workload));
        stack.shard = i;
        stack.shards = n;
        stack.queue = plan.queues[i as usize];
        stack.receive_queue = receive_queue.clone();
        stack.pinned_elsewhere = pinned_elsewhere(&cfg, i, n);
        let slot = Arc::new(Mutex::new(ShardStats::default()));
        slots.push(slot.clone());
        let setup = ShardSetup {
            index: i,
            core: plan.cores[i as usize],
            stack,
            mesh,
            job: job.clone(),
            slot,
            ready: tx.clone(),
        };
        threads.push(open(setup).0);
    }
    drop(tx);
    let mut controls = Vec::new();
    let mut placement = Vec::new();
    for _ in 0..n {
        match rx.recv() {
            Ok(Ok((control, p))) => {
                controls.push(control);
                placement.push(p);
            }
            Ok(Err(e)) => {
                for c in &controls {
                    c.stop();
                }
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
            Err(_) => {
                for c in &controls {
                    c.stop();
                }
                let mut err = AppError::Shard("a shard thread ended before it started".into());
                for t in threads {
                    if let Ok(Err(e)) = t.join() {
                        err = e;
                    }
                }
                return Err(err);
            }
        }
    }
    placement.sort_by_key(|p| p.shard);
    Ok(Running {
        controls,
        threads,
        slots,
        placement,
        services: service_placement(&cfg, n),
        started: std::time::Instant::now(),
        workload,
        _rules: rules,
        _program: program,
    })
}

type Ready = mpsc::Sender<Result<(ShardControl, Placement), AppError>>;

/// Everything a shard thread needs besides its link.
struct ShardSetup {
    index: u32,
    core: Option<usize>,
    stack: StackConfig,
    mesh: Option<MeshEnd>,
    job: ShardJob,
    slot: Arc<Mutex<ShardStats>>,
    ready: Ready,
}

struct Spawned(std::thread::JoinHandle<Result<ShardStats, AppError>>);

/// Wraps a shard's link as configured. The fault link sits inside the pcap wrapper, so a
/// capture shows the frames as the stack itself sent and received them: sent frames before
/// the faults hit them, received frames after (a corrupted byte, a duplicate or a new order
/// is visible; a frame lost on receive is absent, one lost on send is present).
/// Each shard's faults get a seed derived from the configured one and the shard's index,
/// so shards do not drop in lockstep.
fn wrapped<L: Link + Send + 'static>(
    link: L,
    pcap: Option<String>,
    fault: Option<FaultConfig>,
) -> Box<dyn FnOnce(ShardSetup) -> Spawned + Send> {
    let Some(fault) = fault else {
        return with_pcap(link, pcap);
    };
    Box::new(move |setup: ShardSetup| {
        let fault = fault.for_shard(setup.index);
        match FaultLink::new(link, fault) {
            Ok(link) => with_pcap(link, pcap)(setup),
            Err(e) => spawn_shard::<L>(setup, move || Err(format!("fault: {e}"))),
        }
    })
}

fn with_pcap<L: Link + Send + 'static>(
    link: L,
    pcap: Option<String>,
) -> Box<dyn FnOnce(ShardSetup) -> Spawned + Send> {
    Box::new(move |setup: ShardSetup| match pcap {
        Some(base) => {
            let path = pcap_path(&base, setup.index);
            spawn_shard(setup, move || {
                let f =
                    std::fs::File::create(&path).map_err(|e| format!("pcap file {path}: {e}"))?;
                PcapLink::new(link, f).map_err(|e| format!("pcap: {e}"))
            })
        }
        None => spawn_shard(setup, move || Ok(link)),
    })
}

fn spawn_shard<L: Link + 'static>(
    setup: ShardSetup,
    make: impl FnOnce() -> Result<L, String> + Send + 'static,
) -> Spawned {
    let name = format!("shard-{}", setup.index);
    let ready = setup.ready.clone();
    let handle = std::thread::Builder::new().name(name).spawn(move || {
        let ShardSetup {
            index,
            core,
            stack,
            mesh,
            job,
            slot,
            ready,
        } = setup;
        let pinned =
            core.filter(|&c| core_affinity::set_for_current(core_affinity::CoreId { id: c }));
        let queue = stack.queue;
        let result = make()
            .map_err(|e| AppError::Link {
                ifname: format!("shard {index}"),
                reason: e,
            })
            .and_then(|link| {
                Shard::with_mesh(link, stack, mesh).map_err(|e| AppError::Stack(e.to_string()))
            });
        let mut shard = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(AppError::Shard(e.to_string())));
                return Err(e);
            }
        };
        shard.publish_stats(slot);
        let link = shard.link().describe();
        log::info!("shard {index}: queue {queue}, core {pinned:?}, {link}");
        job(&shard.net(), index);
        let _ = ready.send(Ok((
            shard.control(),
            Placement {
                shard: index,
                queue,
                core: pinned,
                link,
            },
        )));
        shard.run().map_err(|e| AppError::Shard(e.to_string()))?;
        // The workload manager's termination statistics.
        log::info!("shard {index}: workload: {}", shard.workload_summary());
        Ok(shard.stats())
    });
    match handle {
        Ok(h) => Spawned(h),
        Err(e) => {
            let msg = e.to_string();
            let _ = ready.send(Err(AppError::Shard(msg.clone())));
            Spawned(std::thread::spawn(move || Err(AppError::Shard(msg))))
        }
    }
}

/// One shard's published counters as the control socket reports them.
pub fn shard_report(p: &Placement, s: &ShardStats) -> ShardReport {
    let mut drops = std::collections::BTreeMap::new();
    for (reason, n) in [
        ("rx_ring", s.link.rx_dropped),
        ("tx_ring", s.link.tx_dropped),
        ("handoff_full", s.steer.handoff_dropped),
        ("syn_evicted", s.steer.syn_evicted),
        ("socket_memory", s.net.socket_memory_refused),
        ("per_source_limit", s.net.per_source_refused),
    ] {
        if n > 0 {
            drops.insert(reason.to_string(), n);
        }
    }
    ShardReport {
        shard: p.shard,
        core: p.core.and_then(|c| u32::try_from(c).ok()),
        queue: p.queue,
        link: p.link.clone(),
        rx_packets: s.link.rx_frames,
        rx_bytes: s.link.rx_bytes,
        tx_packets: s.link.tx_frames,
        tx_bytes: s.link.tx_bytes,
        drops,
        handoffs_out: s.steer.handoffs_out,
        handoffs_in: s.steer.handoffs_in,
        conns_open: s.conns_open,
        conns_opened: s.net.tcp_connected,
        conns_accepted: s.net.tcp_accepted,
        conns_reset: s.net.sockets_aborted + s.net.tcp_connect_failed,
        tasks: s.tasks_live,
        priority_changes: s.workload_changes,
        runaways: s.workload_runaways,
        busy_ns: s.busy_ns,
        idle_ns: s.idle_ns,
        np_ns: s.np_ns,
        np_ratio: 0.0,
        loop_us: Histo::from_ns_summary(&s.loop_ns),
        request_us: Histo::from_ns_summary(&s.request_ns),
        counters: s
            .services
            .iter()
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, v)| (name.to_string(), *v))
            .collect(),
    }
}

impl Running {
    /// The workload managers' board: the policy in force (changeable) and their reports.
    pub fn workload(&self) -> Arc<sixstack_stack::workload::Board> {
        self.workload.clone()
    }

    /// A stats source for the control socket: reads the shards' published counters.
    pub fn stats_source(&self) -> StatsSource {
        let slots = self.slots.clone();
        let placement = self.placement.clone();
        let services = self.services.clone();
        let started = self.started;
        Arc::new(move || {
            let shards = slots
                .iter()
                .zip(&placement)
                .map(|(slot, p)| {
                    let s = slot.lock().map(|g| *g).unwrap_or_default();
                    shard_report(p, &s)
                })
                .collect();
            StatsReport::new(started.elapsed().as_secs_f64(), shards, services.clone())
        })
    }

    /// Stops gracefully: shards stop accepting, open connections get up to `grace` to
    /// finish, then everything stops.
    pub fn shutdown(self, grace: Duration) -> Result<Vec<ShardStats>, AppError> {
        for c in &self.controls {
            c.drain();
        }
        let until = std::time::Instant::now() + grace;
        while std::time::Instant::now() < until && !self.threads.iter().all(|t| t.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop()
    }
}

/// Prints where shards and services run.
pub fn print_placement(running: &Running) {
    for p in running.placement() {
        println!(
            "shard {}: queue {}, core {}, {}",
            p.shard,
            p.queue,
            p.core.map_or("-".to_string(), |c| c.to_string()),
            p.link
        );
    }
    for s in running.services() {
        println!("{s}");
    }
}

/// Runs the appliance with its control socket until `stop` is set (SIGINT/SIGTERM in the
/// binary), then shuts down gracefully.
pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> Result<Vec<ShardStats>, AppError> {
    let services = cfg.clone();
    let control = cfg.file.control.clone();
    let ctx = service_context(&cfg)?;
    let tls = ctx.tls.clone();
    let board = ctx.board.clone();
    let running = start(
        cfg,
        Arc::new(move |net: &Net, shard| start_services(net, &services, shard, &ctx)),
    )?;
    // SIGHUP reloads the TLS material; a failed reload keeps the current one.
    let reload = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()) {
        log::warn!("cannot catch SIGHUP: {e}");
    }
    let stats = running.stats_source();
    let board_stats = board.clone();
    let workload = running.workload();
    let workload_stats = workload.clone();
    let source: StatsSource = Arc::new(move || {
        let mut r = stats();
        r.proxies = board_stats.report();
        r.services = crate::workload_view::view(&workload_stats).services;
        r
    });
    let proxy: Option<crate::control::ProxyControl> = (!board.report().is_empty()).then(|| {
        let b = board.clone();
        let f: crate::control::ProxyControl =
            Arc::new(move |listener: &str, backend: &str, drain| {
                b.set_draining(listener, backend, drain)
                    .map_err(|e| e.to_string())
            });
        f
    });
    let server = match ControlServer::start_with(
        std::path::Path::new(&control.socket),
        control.group,
        source,
        proxy,
        Some(workload),
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = running.stop();
            return Err(AppError::Control(e.to_string()));
        }
    };
    print_placement(&running);
    println!("control socket: {}", control.socket);
    while !stop.load(Ordering::Acquire) && !running.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        if reload.swap(false, Ordering::AcqRel) {
            if let Some(f) = &tls {
                match f.resolver().reload() {
                    Ok(leaf) => log::info!(
                        "tls: reloaded: now serving {} (serial {}, not after {})",
                        leaf.subject,
                        leaf.serial,
                        leaf.not_after
                    ),
                    Err(e) => log::error!("tls: reload failed, the current certificate stays: {e}"),
                }
            }
        }
    }
    log::info!(
        "shutting down: open connections get {} s",
        control.shutdown_grace_s
    );
    let r = running.shutdown(Duration::from_secs_f64(control.shutdown_grace_s));
    server.stop();
    r
}

/// Parses a ping destination.
pub fn parse_dest(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}
