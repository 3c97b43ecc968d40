//! A proxy listener on one shard: accept a client, choose a backend, connect to it (the
//! next backend when the connect fails or times out; a backend that fails `eject_after`
//! times in a row is taken out for `retry_after`, then tried again), and splice the two
//! streams until both sides have closed (or sat idle too long). A client for whom no
//! backend is left is reset, or gets the configured banner. With an acceptor the listener
//! terminates TLS first (implicit TLS in front of a plain backend); a backend with TLS
//! settings is spoken to over TLS (origination). What it does is published on the
//! listener's [`ListenerBoard`], where the operator's drain and enable commands arrive.

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use sixstack_stack::smoltcp::time::Instant;
use sixstack_stack::smoltcp::wire::{IpEndpoint, IpListenEndpoint};
use sixstack_stack::{timeout, ListenOptions, Net, TcpListener, TcpStream};
use sixstack_tls::client::ClientSettings;
use sixstack_tls::rustls::ClientConfig;
use sixstack_tls::ShardAcceptor;

use crate::balance::{Algorithm, Backend, Balancer};
use crate::board::{Health, ListenerBoard, ShardBoard};
use crate::proxy_protocol::{header, TlsFacts};
use crate::splice::{splice, End, Splice};

/// One backend of a listener.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Name in statistics and the drain command (its address unless configured).
    pub name: String,
    /// Where it listens.
    pub endpoint: IpEndpoint,
    /// Weight (weighted algorithms), at least 1.
    pub weight: u32,
    /// Send a PROXY protocol header before the client's bytes.
    pub proxy_protocol: Option<crate::proxy_protocol::Version>,
    /// Speak TLS to the backend (origination).
    pub tls: Option<BackendTls>,
}

/// TLS from the proxy to a backend.
#[derive(Debug, Clone)]
pub struct BackendTls {
    /// The name the backend's certificate must carry (also sent as SNI).
    pub server_name: String,
    /// CA to verify it with, and an optional client certificate to present.
    pub settings: ClientSettings,
}

/// A proxy listener.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Name (logs, statistics, the drain command).
    pub name: String,
    /// Port the listener accepts on.
    pub port: u16,
    /// The stack address it accepts on (`None`: every address, IPv4 and IPv6).
    pub address: Option<IpAddr>,
    /// How connections are spread.
    pub algorithm: Algorithm,
    /// The backends.
    pub backends: Vec<BackendConfig>,
    /// How long a backend connect may take before the next backend is tried.
    pub connect_timeout: Duration,
    /// Consecutive failed connects that take a backend out.
    pub eject_after: u32,
    /// How long an ejected backend stays out before it is tried again.
    pub retry_after: Duration,
    /// Active health checks (`None`: passive ejection only).
    pub health: Option<HealthCheck>,
    /// A connection on which nothing moved either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Sent to a client (then a normal close) when no backend is available; without it the
    /// client is reset.
    pub down_banner: Option<Vec<u8>>,
    /// Receive and transmit buffer of each connection, both sides (`None`: the stack's
    /// defaults). The receive buffer is the window each side offers.
    pub buffers: Option<(usize, usize)>,
}

/// Active health checks of every backend, from every shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may take (connect, send, expect).
    pub timeout: Duration,
    /// Consecutive passed checks that bring a backend back up.
    pub rise: u32,
    /// Consecutive failed checks that take it down.
    pub fall: u32,
    /// Sent after connecting (may be empty).
    pub send: Vec<u8>,
    /// Must appear in what the backend answers (empty: connecting is enough).
    pub expect: Vec<u8>,
}

/// Per-shard state of a listener.
struct State {
    balancer: Balancer,
    fails: Vec<u32>,
    out_until: Vec<Option<Instant>>,
    /// What the health checks say (true until they say otherwise).
    healthy: Vec<bool>,
    /// Consecutive check results: positive passes, negative failures.
    streak: Vec<i64>,
    /// The listener's board and this shard's slots on it.
    board: Arc<ListenerBoard>,
    slots: Arc<ShardBoard>,
    /// The board's drain generation the balancer last copied.
    drain_seen: u64,
    /// Whether the last client found no backend (logged once per outage).
    all_down: bool,
}

impl State {
    /// Brings back ejected backends whose time out is over (if the checks agree), and
    /// takes over the operator's drain flags when they changed.
    fn refresh(&mut self, now: Instant) {
        for (i, until) in self.out_until.iter_mut().enumerate() {
            if until.is_some_and(|t| now >= t) {
                *until = None;
                self.balancer.set_up(i, self.healthy[i]);
                self.slots.slot(i).set_health(if self.healthy[i] {
                    Health::Up
                } else {
                    Health::Down
                });
            }
        }
        let g = self.board.drain_generation();
        if g != self.drain_seen {
            self.drain_seen = g;
            for i in 0..self.fails.len() {
                self.balancer.set_draining(i, self.board.draining(i));
            }
        }
    }

    /// Records one health check of backend `i`; returns the new state if it changed.
    fn checked(&mut self, i: usize, passed: bool, rise: u32, fall: u32) -> Option<bool> {
        let s = &mut self.streak[i];
        *s = if passed {
            (*s).max(0) + 1
        } else {
            (*s).min(0) - 1
        };
        let flip = if self.healthy[i] {
            !passed && -*s >= i64::from(fall)
        } else {
            passed && *s >= i64::from(rise)
        };
        if !flip {
            return None;
        }
        self.healthy[i] = passed;
        let up = passed && self.out_until[i].is_none();
        self.balancer.set_up(i, up);
        self.slots.slot(i).set_health(match (passed, up) {
            (false, _) => Health::Down,
            (true, true) => Health::Up,
            (true, false) => Health::Ejected,
        });
        Some(passed)
    }
}

fn client_ip(ep: IpEndpoint) -> IpAddr {
    ep.addr.into()
}

/// How the proxy speaks TLS to one backend: its client configuration and the name its
/// certificate must carry; `None` for a plain backend.
type Origin = Option<(Arc<ClientConfig>, String)>;

/// The client configurations of the backends that speak TLS, built on this shard (each
/// shard keeps its own resumption cache).
fn backend_tls(cfg: &ProxyConfig) -> io::Result<Vec<Origin>> {
    cfg.backends
        .iter()
        .map(|b| {
            b.tls
                .as_ref()
                .map(|t| {
                    sixstack_tls::client::client_config(&t.settings)
                        .map(|c| (c, t.server_name.clone()))
                        .map_err(|e| {
                            io::Error::other(format!("proxy {} backend {}: {e}", cfg.name, b.name))
                        })
                })
                .transpose()
        })
        .collect()
}

/// Runs listener `cfg` on this shard until the shard drains; with `tls`, clients speak TLS
/// to the listener (the backends get plain text unless they have TLS settings). Counters
/// and the operator's drain flags live on `board`.
pub async fn serve(
    net: Net,
    cfg: ProxyConfig,
    tls: Option<ShardAcceptor>,
    board: Arc<ListenerBoard>,
) -> io::Result<()> {
    let mut opts = ListenOptions::from_config(&net);
    if let Some((rx, tx)) = cfg.buffers {
        opts.rx_buffer = rx;
        opts.tx_buffer = tx;
    }
    let (rx, tx) = (opts.rx_buffer, opts.tx_buffer);
    let listener = TcpListener::bind_with(
        &net,
        IpListenEndpoint {
            addr: cfg.address.map(Into::into),
            port: cfg.port,
        },
        opts,
    )?;
    let origin = Rc::new(backend_tls(&cfg)?);
    let backends = cfg
        .backends
        .iter()
        .map(|b| Backend::new(b.endpoint.to_string(), b.weight))
        .collect();
    let seed = u64::from(cfg.port) ^ (net.now().total_micros() as u64);
    let slots = board.join_shard();
    let n = cfg.backends.len();
    let state = Rc::new(RefCell::new(State {
        balancer: Balancer::new(cfg.algorithm, backends, seed),
        fails: vec![0; n],
        out_until: vec![None; n],
        healthy: vec![true; n],
        streak: vec![0; n],
        board,
        slots,
        drain_seen: u64::MAX,
        all_down: false,
    }));
    let cfg = Rc::new(ProxyConfig {
        buffers: Some((rx, tx)),
        ..cfg
    });
    if let Some(h) = cfg.health.clone() {
        for i in 0..n {
            let (net2, state, cfg, origin) =
                (net.clone(), state.clone(), cfg.clone(), origin.clone());
            let h = h.clone();
            net.spawn(
                async move { check_loop(&net2, &cfg, &state, i, &h, origin[i].as_ref()).await },
            );
        }
    }
    log::info!(
        "proxy {} listening on port {} ({}, {} backends)",
        cfg.name,
        cfg.port,
        cfg.algorithm.name(),
        n
    );
    listener
        .serve_each(|client, peer| {
            let (net, state, cfg, tls, origin) = (
                net.clone(),
                state.clone(),
                cfg.clone(),
                tls.clone(),
                origin.clone(),
            );
            async move {
                client.set_nodelay(true);
                let r = match tls {
                    Some(acceptor) => match acceptor.accept(client, &peer).await {
                        // The acceptor logs refused handshakes.
                        Ok(s) => proxy_one(&net, &cfg, &state, &origin, s, peer).await,
                        Err(_) => Ok(()),
                    },
                    None => proxy_one(&net, &cfg, &state, &origin, client, peer).await,
                };
                if let Err(e) = r {
                    log::debug!("proxy {}: {peer}: {e}", cfg.name);
                }
            }
        })
        .await
}

/// A client stream the proxy can reset when no backend is left, and describe for a PROXY
/// protocol header.
pub trait Resettable: Splice {
    /// Resets the underlying TCP connection.
    fn reset(&mut self);
    /// The listener's own address of the connection.
    fn local(&self) -> Option<IpEndpoint>;
    /// The client's TLS session, for TLS-terminating listeners.
    fn tls_facts(&self) -> Option<TlsFacts> {
        None
    }
}

impl Resettable for TcpStream {
    fn reset(&mut self) {
        self.abort();
    }

    fn local(&self) -> Option<IpEndpoint> {
        self.local_addr()
    }
}

impl Resettable for sixstack_tls::tokio_rustls::server::TlsStream<TcpStream> {
    fn reset(&mut self) {
        self.get_mut().0.abort();
    }

    fn local(&self) -> Option<IpEndpoint> {
        self.get_ref().0.local_addr()
    }

    fn tls_facts(&self) -> Option<TlsFacts> {
        let info = sixstack_tls::server::SessionInfo::of(self.get_ref().1);
        Some(TlsFacts {
            version: info.version,
            client_cn: info.peer_chain.first().and_then(|c| c.common_name.clone()),
        })
    }
}

impl Resettable for sixstack_tls::tokio_rustls::client::TlsStream<TcpStream> {
    fn reset(&mut self) {
        self.get_mut().0.abort();
    }

    fn local(&self) -> Option<IpEndpoint> {
        self.get_ref().0.local_addr()
    }
}

fn socket_addr(ep: IpEndpoint) -> std::net::SocketAddr {
    std::net::SocketAddr::new(ep.addr.into(), ep.port)
}

/// Turns a client away: the banner and a normal close, or a reset.
async fn refuse<C: Resettable>(
    net: &Net,
    cfg: &ProxyConfig,
    state: &RefCell<State>,
    mut client: C,
    peer: IpEndpoint,
) {
    use tokio::io::AsyncWriteExt;
    {
        let mut s = state.borrow_mut();
        s.slots.refused();
        if !s.all_down {
            s.all_down = true;
            log::warn!(
                "proxy {}: no backend available (first refused client {peer}); {}",
                cfg.name,
                if cfg.down_banner.is_some() {
                    "clients get the down banner"
                } else {
                    "clients are reset"
                }
            );
        }
    }
    match &cfg.down_banner {
        Some(b) => {
            let sent = timeout(net, cfg.connect_timeout, async {
                client.write_all(b).await?;
                client.shutdown().await
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                client.reset();
            }
        }
        None => client.reset(),
    }
}

async fn proxy_one<C: Resettable>(
    net: &Net,
    cfg: &ProxyConfig,
    state: &RefCell<State>,
    origin: &[Origin],
    client: C,
    peer: IpEndpoint,
) -> io::Result<()> {
    let mut tried = Vec::new();
    loop {
        let pick = {
            let mut s = state.borrow_mut();
            s.refresh(net.now());
            s.balancer.pick(client_ip(peer), &tried)
        };
        let Some(i) = pick else {
            refuse(net, cfg, state, client, peer).await;
            return Ok(());
        };
        tried.push(i);
        let to = cfg.backends[i].endpoint;
        let (rx, tx) = cfg.buffers.unwrap_or((64 << 10, 64 << 10));
        let connected = timeout(net, cfg.connect_timeout, async {
            let tcp = TcpStream::connect_with(net, to, cfg.connect_timeout, rx, tx).await?;
            tcp.set_nodelay(true);
            Ok::<_, io::Error>(tcp)
        })
        .await;
        let mut backend = match connected {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                fail(net, cfg, state, i, &e.to_string());
                continue;
            }
            Err(_) => {
                fail(net, cfg, state, i, "connect timed out");
                continue;
            }
        };
        if let (Some(v), Some(local)) = (cfg.backends[i].proxy_protocol, client.local()) {
            use tokio::io::AsyncWriteExt;
            let tls = client.tls_facts();
            let h = header(v, socket_addr(peer), socket_addr(local), tls.as_ref());
            backend.write_all(&h).await?;
        }
        return match &origin[i] {
            None => relay(net, cfg, state, i, client, backend).await,
            Some((tc, name)) => {
                let hs = timeout(
                    net,
                    cfg.connect_timeout,
                    sixstack_tls::client::handshake(backend, name, tc.clone()),
                )
                .await;
                match hs {
                    Ok(Ok(b)) => relay(net, cfg, state, i, client, b).await,
                    Ok(Err(e)) => {
                        fail(net, cfg, state, i, &format!("TLS handshake: {e}"));
                        continue;
                    }
                    Err(_) => {
                        fail(net, cfg, state, i, "TLS handshake timed out");
                        continue;
                    }
                }
            }
        };
    }
}

/// Splices a client and its backend `i` until both close (or idle out), counting on the
/// board.
async fn relay<C: Resettable, B: Resettable>(
    net: &Net,
    cfg: &ProxyConfig,
    state: &RefCell<State>,
    i: usize,
    mut client: C,
    mut backend: B,
) -> io::Result<()> {
    let slots = {
        let mut s = state.borrow_mut();
        s.fails[i] = 0;
        s.all_down = false;
        s.balancer.opened(i);
        s.slots.slot(i).opened();
        s.slots.clone()
    };
    let slot = slots.slot(i);
    let r = splice(net, &mut client, &mut backend, cfg.idle_timeout, |m| {
        if m.to_backend > 0 {
            slot.to_backend(m.to_backend as usize);
        }
        if m.to_client > 0 {
            slot.to_client(m.to_client as usize);
        }
    })
    .await;
    state.borrow_mut().balancer.closed(i);
    slot.closed();
    match r {
        Ok(End::Closed) => Ok(()),
        Ok(End::Idle) => {
            log::info!(
                "proxy {}: connection to {} idle for {:?}; closed",
                cfg.name,
                cfg.backends[i].name,
                cfg.idle_timeout.unwrap_or_default()
            );
            client.reset();
            backend.reset();
            Ok(())
        }
        Err(e) => {
            // A side whose stream was cut short must not mistake the end for a clean close;
            // one that already got everything up to its end of file is closed normally.
            if !e.client_complete {
                client.reset();
            }
            if !e.backend_complete {
                backend.reset();
            }
            Err(e.error)
        }
    }
}

/// Checks backend `i` every `h.interval` until the shard drains.
async fn check_loop(
    net: &Net,
    cfg: &ProxyConfig,
    state: &RefCell<State>,
    i: usize,
    h: &HealthCheck,
    tls: Option<&(Arc<ClientConfig>, String)>,
) {
    let ep = cfg.backends[i].endpoint;
    while !net.is_draining() {
        let passed = matches!(
            timeout(net, h.timeout, check_once(net, ep, h, tls)).await,
            Ok(Ok(true))
        );
        let flipped = state.borrow_mut().checked(i, passed, h.rise, h.fall);
        match flipped {
            Some(true) => log::info!(
                "proxy {}: backend {ep} is up (health checks pass)",
                cfg.name
            ),
            Some(false) => log::warn!(
                "proxy {}: backend {ep} is down ({} health checks failed in a row)",
                cfg.name,
                h.fall
            ),
            None => {}
        }
        net.sleep(h.interval).await;
    }
}

/// One check: connect (and the TLS handshake for a TLS backend), send, read until the
/// expected bytes appear.
async fn check_once(
    net: &Net,
    ep: IpEndpoint,
    h: &HealthCheck,
    tls: Option<&(Arc<ClientConfig>, String)>,
) -> io::Result<bool> {
    let s = TcpStream::connect(net, ep).await?;
    match tls {
        None => converse(s, h).await,
        Some((c, name)) => {
            converse(
                sixstack_tls::client::handshake(s, name, c.clone()).await?,
                h,
            )
            .await
        }
    }
}

/// The send/expect part of a check.
async fn converse<S: Resettable>(mut s: S, h: &HealthCheck) -> io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !h.send.is_empty() {
        s.write_all(&h.send).await?;
    }
    let mut ok = h.expect.is_empty();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !ok && got.len() < 16 * 1024 {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        ok = got
            .windows(h.expect.len())
            .any(|w| w == h.expect.as_slice());
    }
    s.reset();
    Ok(ok)
}

fn fail(net: &Net, cfg: &ProxyConfig, state: &RefCell<State>, i: usize, why: &str) {
    let mut s = state.borrow_mut();
    s.fails[i] += 1;
    let ep = cfg.backends[i].endpoint;
    s.slots.slot(i).failed();
    if s.fails[i] >= cfg.eject_after && s.out_until[i].is_none() {
        s.balancer.set_up(i, false);
        s.slots.slot(i).set_health(Health::Ejected);
        let back = net.now()
            + sixstack_stack::smoltcp::time::Duration::from_micros(
                cfg.retry_after.as_micros() as u64
            );
        s.out_until[i] = Some(back);
        log::warn!(
            "proxy {}: backend {ep} out after {} failed connects ({why}); retried in {:?}",
            cfg.name,
            s.fails[i],
            cfg.retry_after
        );
    } else {
        log::debug!("proxy {}: backend {ep}: {why}", cfg.name);
    }
}
