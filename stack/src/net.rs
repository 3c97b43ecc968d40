//! The shard's network state and the [`Net`] handle that services use to reach it.
//!
//! `Net` is a cheap `Rc` handle: it is `!Send` on purpose, so a socket can only be used on
//! the shard (thread) that owns it. Sockets are addressed by smoltcp handles into the
//! shard's socket set, never by pointers between objects.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use smoltcp::iface::Interface;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

use crate::executor::{with_join, JoinHandle, LocalFuture};
use crate::flow::FlowKey;
use crate::sockets::{Sets, Sock};
use crate::timer::{Sleep, Timers};
use crate::workload::ServiceId;
use crate::StackConfig;

/// Counters a shard keeps about its sockets and tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// TCP connections handed to applications by `accept`.
    pub tcp_accepted: u64,
    /// TCP connections opened by `connect` that reached ESTABLISHED.
    pub tcp_connected: u64,
    /// TCP connect attempts that failed (refused, timed out).
    pub tcp_connect_failed: u64,
    /// Sockets closed and returned to the pool.
    pub sockets_reaped: u64,
    /// TCP sockets that had to be aborted because they did not close in time.
    pub sockets_aborted: u64,
    /// Tasks spawned.
    pub tasks_spawned: u64,
    /// New sockets refused because the shard's socket memory budget was spent.
    pub socket_memory_refused: u64,
    /// SYNs refused because their source already held the most connections allowed
    /// ([`StackConfig::max_per_source`](crate::StackConfig::max_per_source)).
    pub per_source_refused: u64,
}

/// The state one shard owns: interface, sockets, ports and sockets being closed.
pub(crate) struct Core {
    pub(crate) iface: Interface,
    pub(crate) sockets: Sets,
    /// Sockets whose owner is gone, with the time by which they must have closed.
    pub(crate) closing: Vec<(Sock, Instant, Option<u16>, Option<FlowKey>)>,
    /// Closed TCP sockets kept for reuse.
    pub(crate) pool: crate::pool::SocketPool,
    /// The most TCP buffer bytes the shard's sockets may hold (see
    /// [`StackConfig::socket_memory`](crate::StackConfig::socket_memory)).
    pub(crate) socket_memory: usize,
    /// The most inbound connections one source address may hold on this shard (0: no
    /// limit), and how many each holds now (handshakes taken by a listener, accepted
    /// connections, until their flow entry is removed).
    pub(crate) max_per_source: u32,
    pub(crate) per_source: HashMap<IpAddress, u32, Fast>,
    /// Ephemeral ports in use by connections this shard opened, by socket.
    pub(crate) ports: HashSet<u16, Fast>,
    pub(crate) next_port: u16,
    pub(crate) counters: NetCounters,
    /// TCP flows this shard owns: open connections and handshakes under way (`None`
    /// socket: still in a listener's backlog, with the time it was seen).
    /// Every TCP connection of the shard, looked up for each frame.
    pub(crate) flows: HashMap<FlowKey, FlowEntry, Fast>,
    /// TCP ports with a listener on this shard (count of listeners).
    pub(crate) listen_ports: HashMap<u16, u32, Fast>,
    /// The listeners, by id (`None`: a free slot).
    pub(crate) listeners: Vec<Option<crate::listen::ListenState>>,
    /// UDP ports bound on this shard.
    pub(crate) udp_ports: HashMap<u16, u32, Fast>,
    /// Shard index, shard count, own queue, receive hash.
    pub(crate) shard: u32,
    pub(crate) shards: u32,
    pub(crate) queue: u32,
    pub(crate) receive_queue: Option<crate::config::ReceiveQueueFn>,
    /// Counter for echo identifiers of `Net::ping`.
    pub(crate) ping_ident: u16,
    /// Ports whose service runs only on other shards.
    pub(crate) elsewhere: HashMap<(crate::flow::Proto, u16), Vec<u32>, Fast>,
}

/// A flow's entry in the shard's flow table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowEntry {
    pub(crate) socket: Option<Sock>,
    pub(crate) since: Instant,
    /// The priority of the task that last used the connection (its frames' rank).
    pub(crate) priority: u8,
    /// The lane position of its last frame put in the shard's deferred ingress lane: while
    /// the lane has not handed that one back, later frames queue behind it (a flow's
    /// frames are never reordered).
    pub(crate) lane_last: u64,
    /// Taken by a listener: counted in its source's connections until removed.
    pub(crate) inbound: bool,
}

impl FlowEntry {
    /// A flow seen at `since`, its socket if it has one yet.
    pub(crate) fn new(socket: Option<Sock>, since: Instant) -> FlowEntry {
        FlowEntry {
            socket,
            since,
            priority: crate::executor::DEFAULT_PRIORITY,
            lane_last: 0,
            inbound: false,
        }
    }
}

/// An embryonic flow (SYN seen, not accepted) is forgotten after this long.
pub(crate) const EMBRYONIC_TTL: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(30);

/// Local port range for active opens.
pub(crate) const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;
/// How long a closed socket may linger (FIN handshake, TIME-WAIT) before it is aborted.
pub(crate) const LINGER: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(30);
/// How long a socket reset after overstaying [`LINGER`] is kept for its RST to go out.
pub(crate) const RST_GRACE: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(1);

/// The hasher of the shard's tables, looked up for every frame and every round: foldhash
/// (fast, seeded at random per process) instead of SipHash.
pub(crate) type Fast = foldhash::fast::RandomState;

impl Core {
    /// The socket set a connection lives in: its flow's bucket, or the local set when the
    /// peer is one of the stack's own addresses (its frames loop back, see `hairpin`).
    pub(crate) fn set_for(&self, key: &FlowKey) -> u32 {
        if self.iface.has_ip_addr(key.remote) {
            crate::sockets::LOCAL_SET
        } else {
            Sets::bucket_for(key)
        }
    }

    /// The shard that owns an ephemeral local port (`port % shards`).
    pub(crate) fn port_owner(&self, port: u16) -> Option<u32> {
        (self.shards > 1 && EPHEMERAL.contains(&port)).then(|| u32::from(port) % self.shards)
    }

    /// Picks a free ephemeral port owned by this shard (`port % shards == shard`). For a
    /// connection to `peer` from `local`, and when the NIC's receive hash is known, the
    /// port is also one whose replies the NIC delivers to this shard's queue.
    pub(crate) fn alloc_port(&mut self, peer: Option<(IpAddress, u16, IpAddress)>) -> Option<u16> {
        self.alloc_port_in(EPHEMERAL, peer)
    }

    /// [`Core::alloc_port`] within `range` (a part of the ephemeral range).
    pub(crate) fn alloc_port_in(
        &mut self,
        range: std::ops::RangeInclusive<u16>,
        peer: Option<(IpAddress, u16, IpAddress)>,
    ) -> Option<u16> {
        let range = (*range.start()).max(*EPHEMERAL.start())..=(*range.end()).min(*EPHEMERAL.end());
        if range.is_empty() {
            return None;
        }
        if !range.contains(&self.next_port) {
            self.next_port = *range.start();
        }
        let span = (range.end() - range.start()) as usize + 1;
        let mut fallback = None;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= *range.end() {
                *range.start()
            } else {
                p + 1
            };
            if self.shards > 1 && u32::from(p) % self.shards != self.shard {
                continue;
            }
            if self.ports.contains(&p) {
                continue;
            }
            if let (Some(f), Some((remote, rport, local))) = (&self.receive_queue, peer) {
                if f(remote, local, rport, p) != self.queue {
                    fallback = fallback.or(Some(p));
                    continue;
                }
            }
            self.ports.insert(p);
            return Some(p);
        }
        // No port hashes to this queue (a queue missing from the indirection table):
        // replies will be handed over.
        let p = fallback?;
        self.ports.insert(p);
        Some(p)
    }

    /// Removes a flow's entry; an inbound one no longer counts against its source.
    pub(crate) fn forget_flow(&mut self, key: &FlowKey) {
        if self.flows.remove(key).is_some_and(|e| e.inbound) {
            if let Some(n) = self.per_source.get_mut(&key.remote) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&key.remote);
                }
            }
        }
    }

    /// Whether a new connection from `key`'s source fits the per-source limit; counts a
    /// refusal when it does not. A SYN of a flow the shard already knows always passes.
    pub(crate) fn source_allows(&mut self, key: &FlowKey) -> bool {
        if self.max_per_source == 0
            || self.flows.contains_key(key)
            || self.per_source.get(&key.remote).copied().unwrap_or(0) < self.max_per_source
        {
            return true;
        }
        self.counters.per_source_refused += 1;
        false
    }

    /// Forgets handshakes that never reached `accept`.
    pub(crate) fn sweep_flows(&mut self, now: Instant) {
        self.flows
            .retain(|_, e| e.socket.is_some() || now < e.since + EMBRYONIC_TTL);
    }

    /// A connection is used by a task running at `priority` (a new one, or its own moved):
    /// its frames are ranked by it from now on, in the ingress lanes and in the order of
    /// egress.
    pub(crate) fn note_priority(&mut self, flow: Option<FlowKey>, sock: Sock, priority: u8) {
        if let Some(e) = flow.and_then(|k| self.flows.get_mut(&k)) {
            e.priority = priority;
        }
        self.sockets.rank(sock.set, priority);
    }

    /// Hands a TCP socket whose owner is gone to the reaper, which removes it once it has
    /// closed gracefully (or aborts it after [`LINGER`]).
    /// `port` is the ephemeral port the socket holds, if it was opened by `connect`.
    /// `flow` is its entry in the flow table, removed with the socket.
    pub(crate) fn release(
        &mut self,
        handle: Sock,
        now: Instant,
        port: Option<u16>,
        flow: Option<FlowKey>,
    ) {
        self.closing.push((handle, now + LINGER, port, flow));
    }

    /// Removes released sockets that finished closing (or overstayed); frees their ports.
    pub(crate) fn reap(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.closing.len() {
            let (h, deadline, port, flow) = self.closing[i];
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            let st = s.state();
            // An aborted socket stays until its RST has gone out (smoltcp forgets the peer
            // once it has sent it).
            let rst_pending = st == tcp::State::Closed && s.remote_endpoint().is_some();
            let done = if (st == tcp::State::Closed && !rst_pending) || st == tcp::State::TimeWait {
                true
            } else if now >= deadline {
                if rst_pending {
                    // Never sent (the link refused it): give up on it.
                    true
                } else {
                    // Overstayed: reset it, and keep it one more linger for the RST.
                    s.abort();
                    self.counters.sockets_aborted += 1;
                    self.closing[i].1 = now + RST_GRACE;
                    false
                }
            } else {
                false
            };
            if done {
                let s = self.sockets.remove(h);
                self.pool.give(s);
                if let Some(p) = port {
                    self.ports.remove(&p);
                }
                if let Some(k) = flow {
                    self.forget_flow(&k);
                }
                self.closing.swap_remove(i);
                self.counters.sockets_reaped += 1;
                removed += 1;
            } else {
                i += 1;
            }
        }
        removed
    }
}

pub(crate) struct Inner {
    pub(crate) core: RefCell<Core>,
    pub(crate) now: Cell<Instant>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) spawned: RefCell<Vec<(crate::executor::Spawn, LocalFuture)>>,
    /// The services and performance groups of the shard's tasks.
    pub(crate) registry: RefCell<crate::workload::Registry>,
    /// The task being polled: its priorities and the bytes it moves.
    pub(crate) running: crate::executor::Running,
    pub(crate) config: StackConfig,
    /// Set when the shard drains for shutdown: listeners stop accepting.
    pub(crate) draining: Cell<bool>,
    /// Tasks waiting in `accept`, woken when draining starts.
    pub(crate) accept_waiters: RefCell<Vec<std::task::Waker>>,
    /// The shard's io_uring for file I/O.
    pub(crate) disk: RefCell<crate::disk::Disk>,
    /// Request latencies services report (nanoseconds).
    pub(crate) requests: RefCell<Option<hdrhistogram::Histogram<u64>>>,
    /// Counters services registered by name (`Net::counter`).
    pub(crate) service_counters: RefCell<Vec<(&'static str, Counter)>>,
}

/// Counters a shard publishes for its services (`sixstack stats`); more names than this
/// get counters that are kept but not published.
pub const MAX_SERVICE_COUNTERS: usize = 16;

/// A service's counter on one shard, published with the shard's statistics under its name.
/// Cheap to clone; every clone counts into the same value.
#[derive(Debug, Clone, Default)]
pub struct Counter(Rc<Cell<u64>>);

impl Counter {
    /// A counter not published anywhere (for code running without a shard).
    pub fn detached() -> Counter {
        Counter::default()
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A handle to one shard's network: spawn tasks, open sockets, read shard time.
#[derive(Clone)]
pub struct Net {
    pub(crate) inner: Rc<Inner>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("now", &self.now()).finish()
    }
}

impl Net {
    pub(crate) fn core(&self) -> RefMut<'_, Core> {
        self.inner.core.borrow_mut()
    }

    pub(crate) fn timers(&self) -> RefMut<'_, Timers> {
        self.inner.timers.borrow_mut()
    }

    /// The shard's current time, as set by the shard loop at the start of each round.
    pub fn now(&self) -> Instant {
        self.inner.now.get()
    }

    /// Whether `addr` is one of the stack's own addresses (a connection from it comes from
    /// a service of this appliance, looped back inside the shard).
    pub fn is_own_address(&self, addr: std::net::IpAddr) -> bool {
        self.core()
            .iface
            .has_ip_addr(smoltcp::wire::IpAddress::from(addr))
    }

    /// The configuration the shard was started with.
    pub fn config(&self) -> &StackConfig {
        &self.inner.config
    }

    /// A future that completes after `d` of shard time.
    pub fn sleep(&self, d: Duration) -> Sleep {
        Sleep::new(self.clone(), d)
    }

    /// Runs `fut` as a task on this shard; the handle yields its output.
    pub fn spawn<F: Future + 'static>(&self, fut: F) -> JoinHandle<F::Output> {
        self.spawn_at(self.inner.running.initial.get(), fut)
    }

    /// Spawns a task at `priority` (0–255; the workload manager moves it within its
    /// managed range). [`Net::spawn`] starts a task at the priority its spawner was given:
    /// a listener started at a service's priority hands it to each connection's task.
    pub fn spawn_at<F: Future + 'static>(&self, priority: u8, fut: F) -> JoinHandle<F::Output> {
        self.spawn_service(self.inner.running.service.get(), priority, fut)
    }

    /// Names a service (and its performance group) on this shard for the workload
    /// manager's report and group dispatching; registering a name again gives the same
    /// service. Beyond 65 535 names, tasks are counted under "other" (and a warning said).
    pub fn register_service(&self, name: &str, group: Option<&str>) -> ServiceId {
        match self.inner.registry.borrow_mut().register(name, group) {
            Ok(id) => id,
            Err(e) => {
                log::warn!("workload: service {name}: {e}; counted under \"other\"");
                crate::workload::registry::UNNAMED
            }
        }
    }

    /// Spawns a task of `service` at `priority`; the tasks it spawns belong to the same
    /// service.
    pub fn spawn_service<F: Future + 'static>(
        &self,
        service: ServiceId,
        priority: u8,
        fut: F,
    ) -> JoinHandle<F::Output> {
        let (task, handle) = with_join(fut);
        let spawn = crate::executor::Spawn { priority, service };
        self.inner.spawned.borrow_mut().push((spawn, task));
        self.core().counters.tasks_spawned += 1;
        handle
    }

    /// The priority the running task was given (its spawner's, or its service's).
    pub fn task_priority(&self) -> u8 {
        self.inner.running.initial.get()
    }

    /// Records how long one request took, for the shard's request-latency histogram
    /// (`sixstack stats`). Services measure it themselves; the stack only keeps the counts.
    pub fn record_request(&self, took: Duration) {
        if let Some(h) = self.inner.requests.borrow_mut().as_mut() {
            let _ = h.record((took.as_nanos() as u64).max(1));
        }
    }

    /// The shard's counter named `name` (created at first use; the same name gives the
    /// same counter), published with the shard's statistics.
    pub fn counter(&self, name: &'static str) -> Counter {
        let mut all = self.inner.service_counters.borrow_mut();
        if let Some((_, c)) = all.iter().find(|(n, _)| *n == name) {
            return c.clone();
        }
        let c = Counter::default();
        if all.len() < MAX_SERVICE_COUNTERS {
            all.push((name, c.clone()));
        } else {
            log::warn!(
                "service counter {name} is not published: {MAX_SERVICE_COUNTERS} already are"
            );
        }
        c
    }

    /// Whether the shard is draining for shutdown (listeners refuse new connections).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.get()
    }

    /// Socket and task counters of this shard.
    pub fn counters(&self) -> NetCounters {
        self.core().counters
    }

    /// How many sockets the shard holds now (open, listening and closing).
    pub fn socket_count(&self) -> usize {
        self.core().sockets.len()
    }
}
