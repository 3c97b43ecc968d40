//! A proxy listener on one shard: accept a client, choose a backend, connect to it (the
//! next backend when the connect fails or times out; a backend that fails `eject_after`
//! times in a row is taken out for `retry_after`, then tried again), and splice the two
//! streams until both sides have closed. A client for whom no backend is left is reset.
//! With an acceptor the listener terminates TLS first (implicit TLS in front of a plain
//! backend).

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use sixstack_stack::smoltcp::time::Instant;
use sixstack_stack::smoltcp::wire::{IpEndpoint, IpListenEndpoint};
use sixstack_stack::{timeout, ListenOptions, Net, TcpListener, TcpStream};
use sixstack_tls::ShardAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::balance::{Algorithm, Backend, Balancer};
use crate::proxy_protocol::{header, TlsFacts};

/// One backend of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Where it listens.
    pub endpoint: IpEndpoint,
    /// Weight (weighted algorithms), at least 1.
    pub weight: u32,
    /// Send a PROXY protocol header before the client's bytes.
    pub proxy_protocol: Option<crate::proxy_protocol::Version>,
}

/// A proxy listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Name (logs, statistics, the drain command).
    pub name: String,
    /// Port the listener accepts on (every stack address, IPv4 and IPv6).
    pub port: u16,
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
}

impl State {
    /// Brings back ejected backends whose time out is over (if the checks agree).
    fn revive(&mut self, now: Instant) {
        for (i, until) in self.out_until.iter_mut().enumerate() {
            if until.is_some_and(|t| now >= t) {
                *until = None;
                self.balancer.set_up(i, self.healthy[i]);
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
        self.balancer
            .set_up(i, passed && self.out_until[i].is_none());
        Some(passed)
    }
}

fn client_ip(ep: IpEndpoint) -> IpAddr {
    ep.addr.into()
}

/// Runs listener `cfg` on this shard until the shard drains; with `tls`, clients speak TLS
/// to the listener (the backends get plain text).
pub async fn serve(net: Net, cfg: ProxyConfig, tls: Option<ShardAcceptor>) -> io::Result<()> {
    let opts = ListenOptions::from_config(&net);
    let listener = TcpListener::bind_with(
        &net,
        IpListenEndpoint {
            addr: None,
            port: cfg.port,
        },
        opts,
    )?;
    let backends = cfg
        .backends
        .iter()
        .map(|b| Backend::new(b.endpoint.to_string(), b.weight))
        .collect();
    let seed = u64::from(cfg.port) ^ (net.now().total_micros() as u64);
    let state = Rc::new(RefCell::new(State {
        balancer: Balancer::new(cfg.algorithm, backends, seed),
        fails: vec![0; cfg.backends.len()],
        out_until: vec![None; cfg.backends.len()],
        healthy: vec![true; cfg.backends.len()],
        streak: vec![0; cfg.backends.len()],
    }));
    let cfg = Rc::new(cfg);
    if let Some(h) = cfg.health.clone() {
        for i in 0..cfg.backends.len() {
            let (net2, state, cfg) = (net.clone(), state.clone(), cfg.clone());
            let h = h.clone();
            net.spawn(async move { check_loop(&net2, &cfg, &state, i, &h).await });
        }
    }
    log::info!(
        "proxy {} listening on port {} ({:?}, {} backends)",
        cfg.name,
        cfg.port,
        cfg.algorithm,
        cfg.backends.len()
    );
    listener
        .serve_each(|client, peer| {
            let (net, state, cfg, tls) = (net.clone(), state.clone(), cfg.clone(), tls.clone());
            async move {
                client.set_nodelay(true);
                let r = match tls {
                    Some(acceptor) => match acceptor.accept(client, &peer).await {
                        // The acceptor logs refused handshakes.
                        Ok(s) => proxy_one(&net, &cfg, &state, s, peer).await,
                        Err(_) => Ok(()),
                    },
                    None => proxy_one(&net, &cfg, &state, client, peer).await,
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
pub trait Resettable: AsyncRead + AsyncWrite + Unpin {
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

fn socket_addr(ep: IpEndpoint) -> std::net::SocketAddr {
    std::net::SocketAddr::new(ep.addr.into(), ep.port)
}

async fn proxy_one<C: Resettable>(
    net: &Net,
    cfg: &ProxyConfig,
    state: &RefCell<State>,
    mut client: C,
    peer: IpEndpoint,
) -> io::Result<()> {
    let mut tried = Vec::new();
    loop {
        let pick = {
            let mut s = state.borrow_mut();
            s.revive(net.now());
            s.balancer.pick(client_ip(peer), &tried)
        };
        let Some(i) = pick else {
            log::warn!(
                "proxy {}: no backend available for {peer}; connection reset",
                cfg.name
            );
            client.reset();
            return Ok(());
        };
        tried.push(i);
        let to = cfg.backends[i].endpoint;
        match timeout(net, cfg.connect_timeout, TcpStream::connect(net, to)).await {
            Ok(Ok(mut backend)) => {
                backend.set_nodelay(true);
                if let (Some(v), Some(local)) = (cfg.backends[i].proxy_protocol, client.local()) {
                    use tokio::io::AsyncWriteExt;
                    let tls = client.tls_facts();
                    let h = header(v, socket_addr(peer), socket_addr(local), tls.as_ref());
                    backend.write_all(&h).await?;
                }
                {
                    let mut s = state.borrow_mut();
                    s.fails[i] = 0;
                    s.balancer.opened(i);
                }
                let r = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                state.borrow_mut().balancer.closed(i);
                return r.map(drop);
            }
            Ok(Err(e)) => fail(net, cfg, state, i, &e.to_string()),
            Err(_) => fail(net, cfg, state, i, "connect timed out"),
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
) {
    let ep = cfg.backends[i].endpoint;
    while !net.is_draining() {
        let passed = matches!(
            timeout(net, h.timeout, check_once(net, ep, h)).await,
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

/// One check: connect, send, read until the expected bytes appear.
async fn check_once(net: &Net, ep: IpEndpoint, h: &HealthCheck) -> io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(net, ep).await?;
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
    s.abort();
    Ok(ok)
}

fn fail(net: &Net, cfg: &ProxyConfig, state: &RefCell<State>, i: usize, why: &str) {
    let mut s = state.borrow_mut();
    s.fails[i] += 1;
    let ep = cfg.backends[i].endpoint;
    if s.fails[i] >= cfg.eject_after && s.out_until[i].is_none() {
        s.balancer.set_up(i, false);
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
