//! What the operator sees and steers of the proxy listeners across shards.
//!
//! Each shard's listener task keeps its own balancer and health view (nothing shared on the
//! data path); the board is where they publish and where the control thread reaches them:
//! - per backend and shard a slot of counters (connections open and opened, failed
//!   connects, bytes each way, the shard's view of its health), written only by that shard
//!   with relaxed atomics on its own cache line and summed by the control thread;
//! - per backend a drain flag, written by the control thread (`sixstack proxy drain`); a
//!   shard compares the listener's drain generation before each pick and re-reads the flags
//!   only when it moved.
//!
//! The one lock is taken when a shard's listener starts (to add its slots) and when the
//! control thread reads them, never per connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use crate::listener::ProxyConfig;

/// A backend's health as one shard sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Taking connections.
    Up = 0,
    /// Active health checks failed `fall` times in a row.
    Down = 1,
    /// Taken out after `eject_after` failed connects, until `retry_after` has passed.
    Ejected = 2,
}

impl Health {
    fn from_u8(v: u8) -> Health {
        match v {
            1 => Health::Down,
            2 => Health::Ejected,
            _ => Health::Up,
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Ejected => "ejected",
        }
    }
}

/// Adds to a counter only its own shard writes: a plain load and store, no locked
/// read-modify-write on the data path.
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// One shard's counters for one backend (written by that shard only).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Slot {
    active: AtomicU64,
    opened: AtomicU64,
    failed: AtomicU64,
    to_backend: AtomicU64,
    to_client: AtomicU64,
    health: AtomicU8,
}

impl Slot {
    /// A connection to the backend was opened.
    pub fn opened(&self) {
        bump(&self.opened, 1);
        bump(&self.active, 1);
    }

    /// A connection opened with [`Slot::opened`] ended.
    pub fn closed(&self) {
        bump(&self.active, u64::MAX);
    }

    /// A connect failed or timed out.
    pub fn failed(&self) {
        bump(&self.failed, 1);
    }

    /// Bytes moved from the client to the backend.
    pub fn to_backend(&self, n: usize) {
        bump(&self.to_backend, n as u64);
    }

    /// Bytes moved from the backend to the client.
    pub fn to_client(&self, n: usize) {
        bump(&self.to_client, n as u64);
    }

    /// This shard's view of the backend's health.
    pub fn set_health(&self, h: Health) {
        self.health.store(h as u8, Relaxed);
    }
}

/// One shard's part of a listener's board.
#[derive(Debug)]
pub struct ShardBoard {
    slots: Box<[Slot]>,
    refused: AtomicU64,
}

impl ShardBoard {
    /// Backend `i`'s slot.
    pub fn slot(&self, i: usize) -> &Slot {
        &self.slots[i]
    }

    /// A client was turned away because no backend was available.
    pub fn refused(&self) {
        bump(&self.refused, 1);
    }
}

#[derive(Debug)]
struct BackendEntry {
    name: String,
    address: SocketAddr,
    weight: u32,
    draining: AtomicBool,
}

/// One listener's board.
#[derive(Debug)]
pub struct ListenerBoard {
    name: String,
    port: u16,
    algorithm: String,
    backends: Vec<BackendEntry>,
    drain_generation: AtomicU64,
    shards: Mutex<Vec<Arc<ShardBoard>>>,
}

impl ListenerBoard {
    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a shard's slots (once per shard, when its listener starts).
    pub fn join_shard(&self) -> Arc<ShardBoard> {
        let sb = Arc::new(ShardBoard {
            slots: (0..self.backends.len()).map(|_| Slot::default()).collect(),
            refused: AtomicU64::new(0),
        });
        self.shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sb.clone());
        sb
    }

    /// Bumped whenever a drain flag changes.
    pub fn drain_generation(&self) -> u64 {
        self.drain_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether backend `i` is drained by the operator.
    pub fn draining(&self, i: usize) -> bool {
        self.backends
            .get(i)
            .is_some_and(|b| b.draining.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Finds a backend by its name, its address as configured (`10.0.0.5:80`,
    /// `[2001:db8::5]:80`) or its position in the configuration (1-based).
    fn find(&self, which: &str) -> Option<usize> {
        if let Some(i) = self.backends.iter().position(|b| b.name == which) {
            return Some(i);
        }
        if let Ok(sa) = which.parse::<SocketAddr>() {
            return self.backends.iter().position(|b| b.address == sa);
        }
        match which.parse::<usize>() {
            Ok(n) if (1..=self.backends.len()).contains(&n) => Some(n - 1),
            _ => None,
        }
    }

    /// The listener's report: every shard's slots summed per backend.
    pub fn report(&self) -> ProxyReport {
        let shards = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let backends = self
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut r = BackendReport {
                    name: b.name.clone(),
                    address: b.address.to_string(),
                    weight: b.weight,
                    draining: b.draining.load(Relaxed),
                    ..BackendReport::default()
                };
                let mut views = [0u32; 3];
                for s in &shards {
                    let slot = &s.slots[i];
                    r.active += slot.active.load(Relaxed);
                    r.connections += slot.opened.load(Relaxed);
                    r.failures += slot.failed.load(Relaxed);
                    r.bytes_to_backend += slot.to_backend.load(Relaxed);
                    r.bytes_to_client += slot.to_client.load(Relaxed);
                    views[Health::from_u8(slot.health.load(Relaxed)) as usize] += 1;
                }
                r.state = summarize(views, shards.len());
                r
            })
            .collect();
        ProxyReport {
            name: self.name.clone(),
            port: self.port,
            algorithm: self.algorithm.clone(),
            refused: shards.iter().map(|s| s.refused.load(Relaxed)).sum(),
            backends,
        }
    }
}

/// One word for the shards' views: `up`, `down`, `ejected`, or `up on 1 of 2 shards`.
fn summarize(views: [u32; 3], shards: usize) -> String {
    let n = shards as u32;
    if n == 0 {
        return "starting".into();
    }
    for h in [Health::Up, Health::Down, Health::Ejected] {
        if views[h as usize] == n {
            return h.name().into();
        }
    }
    format!("up on {} of {n} shards", views[Health::Up as usize])
}

/// Every proxy listener's board; shared by the shards and the control thread.
#[derive(Debug, Default)]
pub struct Board {
    listeners: Vec<Arc<ListenerBoard>>,
}

/// Why a drain or enable request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// No listener of that name.
    #[error("no proxy listener named '{0}' (listeners: {1})")]
    NoListener(String, String),
    /// The listener has no such backend.
    #[error("proxy '{0}' has no backend '{1}' (backends: {2})")]
    NoBackend(String, String, String),
}

impl Board {
    /// A board for these listeners.
    pub fn new(proxies: &[ProxyConfig]) -> Board {
        Board {
            listeners: proxies
                .iter()
                .map(|p| {
                    Arc::new(ListenerBoard {
                        name: p.name.clone(),
                        port: p.port,
                        algorithm: p.algorithm.name().into(),
                        backends: p
                            .backends
                            .iter()
                            .map(|b| BackendEntry {
                                name: b.name.clone(),
                                address: SocketAddr::new(b.endpoint.addr.into(), b.endpoint.port),
                                weight: b.weight,
                                draining: AtomicBool::new(false),
                            })
                            .collect(),
                        drain_generation: AtomicU64::new(0),
                        shards: Mutex::new(Vec::new()),
                    })
                })
                .collect(),
        }
    }

    /// The board of listener `name`.
    pub fn listener(&self, name: &str) -> Option<Arc<ListenerBoard>> {
        self.listeners.iter().find(|l| l.name == name).cloned()
    }

    /// Drains (`on`) or enables backend `backend` of listener `listener`; returns a line
    /// for the operator.
    pub fn set_draining(
        &self,
        listener: &str,
        backend: &str,
        on: bool,
    ) -> Result<String, BoardError> {
        let Some(l) = self.listeners.iter().find(|l| l.name == listener) else {
            let names: Vec<&str> = self.listeners.iter().map(|l| l.name.as_str()).collect();
            return Err(BoardError::NoListener(
                listener.chars().take(64).collect(),
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            ));
        };
        let Some(i) = l.find(backend) else {
            let names: Vec<String> = l.backends.iter().map(|b| b.name.clone()).collect();
            return Err(BoardError::NoBackend(
                l.name.clone(),
                backend.chars().take(64).collect(),
                names.join(", "),
            ));
        };
        let b = &l.backends[i];
        let was = b.draining.swap(on, std::sync::atomic::Ordering::AcqRel);
        l.drain_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let active: u64 = l
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|s| s.slots[i].active.load(Relaxed))
            .sum();
        let what = match (was, on) {
            (false, true) => "now draining: no new connections",
            (true, true) => "was already draining",
            (true, false) => "enabled again: taking new connections",
            (false, false) => "was not drained; it takes new connections",
        };
        let line = format!(
            "proxy {}: backend {} ({}) {what}; {active} open",
            l.name, b.name, b.address
        );
        log::info!("{line}");
        Ok(line)
    }

    /// Every listener's report.
    pub fn report(&self) -> Vec<ProxyReport> {
        self.listeners.iter().map(|l| l.report()).collect()
    }
}

/// One listener as `sixstack stats` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyReport {
    /// Listener name.
    pub name: String,
    /// Its port.
    pub port: u16,
    /// Balancing algorithm.
    pub algorithm: String,
    /// Clients turned away because no backend was available.
    pub refused: u64,
    /// Its backends, in configuration order.
    pub backends: Vec<BackendReport>,
}

/// One backend as `sixstack stats` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackendReport {
    /// Name (the address unless configured).
    pub name: String,
    /// Address.
    pub address: String,
    /// Weight.
    pub weight: u32,
    /// Health: `up`, `down`, `ejected`, or how many shards see it up.
    pub state: String,
    /// Drained by the operator.
    pub draining: bool,
    /// Connections open now.
    pub active: u64,
    /// Connections opened since start.
    pub connections: u64,
    /// Failed connects.
    pub failures: u64,
    /// Bytes from clients to the backend.
    pub bytes_to_backend: u64,
    /// Bytes from the backend to clients.
    pub bytes_to_client: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::listener::BackendConfig;
    use crate::Algorithm;
    use std::time::Duration;

    fn cfg() -> ProxyConfig {
        let b = |port: u16, name: &str| BackendConfig {
            name: name.into(),
            endpoint: sixstack_stack::smoltcp::wire::IpEndpoint::new(
                sixstack_stack::smoltcp::wire::Ipv4Address::new(10, 0, 0, 5).into(),
                port,
            ),
            weight: 1,
            proxy_protocol: None,
            tls: None,
        };
        ProxyConfig {
            name: "web".into(),
            port: 8080,
            address: None,
            algorithm: Algorithm::RoundRobin,
            backends: vec![b(80, "10.0.0.5:80"), b(81, "blue")],
            connect_timeout: Duration::from_secs(1),
            eject_after: 3,
            retry_after: Duration::from_secs(5),
            health: None,
            idle_timeout: None,
            down_banner: None,
            buffers: None,
        }
    }

    #[test]
    fn drain_by_address_name_or_position() {
        let board = Board::new(&[cfg()]);
        let l = board.listener("web").unwrap();
        let s0 = l.join_shard();
        let g = l.drain_generation();
        s0.slot(0).opened();
        let line = board.set_draining("web", "10.0.0.5:80", true).unwrap();
        assert!(
            line.contains("now draining") && line.contains("1 open"),
            "{line}"
        );
        assert!(l.draining(0) && !l.draining(1));
        assert_ne!(l.drain_generation(), g);
        board.set_draining("web", "blue", true).unwrap();
        board.set_draining("web", "1", false).unwrap();
        assert!(!l.draining(0) && l.draining(1));
        assert!(matches!(
            board.set_draining("web", "10.0.0.5:99", true),
            Err(BoardError::NoBackend(..))
        ));
        assert!(matches!(
            board.set_draining("mail", "1", true),
            Err(BoardError::NoListener(..))
        ));
        assert!(board.set_draining("web", "3", true).is_err());
    }

    #[test]
    fn report_sums_shards_and_names_mixed_health() {
        let board = Board::new(&[cfg()]);
        let l = board.listener("web").unwrap();
        let (a, b) = (l.join_shard(), l.join_shard());
        a.slot(1).opened();
        b.slot(1).opened();
        b.slot(1).closed();
        a.slot(1).to_backend(10);
        b.slot(1).to_client(7);
        a.slot(0).failed();
        a.slot(0).set_health(Health::Down);
        b.refused();
        let r = board.report();
        let web = &r[0];
        assert_eq!(web.refused, 1);
        assert_eq!(web.backends[0].state, "up on 1 of 2 shards");
        assert_eq!(web.backends[0].failures, 1);
        let blue = &web.backends[1];
        assert_eq!((blue.active, blue.connections), (1, 2));
        assert_eq!((blue.bytes_to_backend, blue.bytes_to_client), (10, 7));
        assert_eq!(blue.state, "up");
        b.slot(0).set_health(Health::Down);
        assert_eq!(board.report()[0].backends[0].state, "down");
    }
}
