//! One shard: a link, an interface, a socket set and an executor on one thread, run to
//! completion in rounds. A round takes a batch of frames in, fires due timers, runs ready
//! tasks, sends what the sockets have to send and flushes the link once.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{DeviceCapabilities, RxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress};

use sixstack_drivers::wait::{wait_readable, Doorbell};
use sixstack_drivers::{Link, LinkStats};

use crate::executor::Executor;
use crate::flow::{classify, Class};
use crate::ingress::{feed, steer, steer_classified, SteerCounters};
use crate::mesh::{Handoff, MeshEnd};
use crate::net::{Core, Inner, NetCounters, EPHEMERAL};
use crate::timer::Timers;
use crate::{AddressError, JoinHandle, Net, StackConfig};

/// Frames taken in per round before the shard runs tasks and sends.
const RX_BATCH: usize = 64;
/// Frames taken from the link per round at most while the deferred ingress lane is in use
/// (frames of lower-ranked connections are copied aside, not handled, so the round can
/// look deeper into the ring for higher-ranked ones).
const RX_SWEEP: usize = 1024;
/// Deferred frames handled between two looks at the link's ring.
const LANE_CHUNK: usize = 16;
/// Task polls per round before the shard goes back to the link.
const TASK_BUDGET: usize = 256;
/// Longest sleep when the link offers no descriptor to sleep on.
const POLL_ONLY_SLEEP: Duration = Duration::from_micros(200);

/// Stops a running shard from any thread.
#[derive(Debug, Clone)]
pub struct ShardControl {
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    bell: Arc<Doorbell>,
}

impl ShardControl {
    /// Asks the shard to stop accepting connections and to leave its loop once its open
    /// connections have closed (or when [`ShardControl::stop`] comes).
    pub fn drain(&self) {
        self.drain.store(true, Ordering::Release);
        self.bell.ring();
    }

    /// Asks the shard to leave its loop; it finishes the current round first.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.bell.ring();
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Shard counters, for `stats` and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Rounds run.
    pub rounds: u64,
    /// Rounds in which a frame arrived or a task ran.
    pub busy_rounds: u64,
    /// Nanoseconds spent in busy rounds.
    pub busy_ns: u64,
    /// Times the shard went to sleep on its link.
    pub sleeps: u64,
    /// Frames taken in.
    pub frames_in: u64,
    /// Task polls.
    pub task_polls: u64,
    /// Nanoseconds the shard existed but was not busy (sleeping or spinning idle).
    pub idle_ns: u64,
    /// Nanoseconds of busy time spent in serialized work: handing frames between shards
    /// and publishing these counters (the numerator of the NP ratio).
    pub np_ns: u64,
    /// Hand-off counters.
    pub steer: SteerCounters,
    /// Socket sets polled for egress (touched or due); per round this stays small however
    /// many connections are open.
    pub egress_polls: u64,
    /// TCP connections open (flows in the flow table, handshakes included).
    pub conns_open: u64,
    /// Shard loop iteration time of busy rounds: samples, p50, p90, p99, p99.9, max (ns).
    pub loop_ns: [u64; 6],
    /// Request latency reported by services (`Net::record_request`), same layout.
    pub request_ns: [u64; 6],
    /// Tasks alive on the shard.
    pub tasks_live: u64,
    /// Task priority changes the workload manager made.
    pub workload_changes: u64,
    /// Runaway intervals of tasks.
    pub workload_runaways: u64,
    /// Frames of lower-ranked connections that waited in the deferred ingress lane.
    pub frames_deferred: u64,
    /// The link's own counters.
    pub link: LinkStats,
    /// Socket counters.
    pub net: NetCounters,
    /// Service counters by name (`Net::counter`); unused slots have an empty name.
    pub services: [(&'static str, u64); crate::net::MAX_SERVICE_COUNTERS],
}

/// One core's worth of network stack.
pub struct Shard<L: Link> {
    link: L,
    net: Net,
    executor: Executor,
    control: ShardControl,
    clock: Clock,
    stats: ShardStats,
    caps: DeviceCapabilities,
    mesh: Option<MeshEnd>,
    pending: VecDeque<Handoff>,
    loop_hist: hdrhistogram::Histogram<u64>,
    publish: Option<Arc<Mutex<ShardStats>>>,
    last_publish: Instant,
    last_sweep: Instant,
    egress_work: Vec<u32>,
    /// Frames from the stack to its own addresses, on their way back in.
    hairpin: crate::hairpin::Hairpin,
    last_reap: Instant,
    /// When the workload manager's current interval ends.
    next_interval: Instant,
    /// The workload board and this shard's slot on it, and the policy generation taken.
    board: Option<(
        Arc<crate::workload::Board>,
        Arc<Mutex<crate::workload::ShardLoad>>,
    )>,
    policy_seen: u64,
    /// Frames of connections ranked below this priority go to the deferred lane (0: none).
    ingress_cut: u8,
    lane: crate::lane::Lane,
}

/// Egress calls per socket set per round at most (each sends up to one segment per socket).
const EGRESS_PASSES: usize = 32;

/// How often sockets whose owners dropped them are checked for having closed.
const REAP_EVERY: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(20);

/// Samples, p50, p90, p99, p99.9 and max of a histogram.
fn summary(h: &hdrhistogram::Histogram<u64>) -> [u64; 6] {
    [
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    ]
}

/// How often a shard publishes its counters and sweeps stale handshakes.
const HOUSEKEEPING: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(100);

impl<L: Link> std::fmt::Debug for Shard<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("link", &self.link.describe())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Shard time: microseconds on the Unix time scale, advanced by a monotonic clock so it
/// never goes back (pcap files show real times).
#[derive(Debug)]
struct Clock {
    start: std::time::Instant,
    base_us: i64,
}

impl Clock {
    fn new() -> Clock {
        let base_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Clock {
            start: std::time::Instant::now(),
            base_us,
        }
    }

    fn now(&self) -> Instant {
        self.at(std::time::Instant::now())
    }

    /// Shard time at the monotonic instant `t` (read by the caller).
    fn at(&self, t: std::time::Instant) -> Instant {
        Instant::from_micros(
            self.base_us + t.saturating_duration_since(self.start).as_micros() as i64,
        )
    }
}

impl<L: Link> Shard<L> {
    /// Builds a shard over `link` with the addresses and sizes in `config`.
    pub fn new(link: L, config: StackConfig) -> Result<Shard<L>, AddressError> {
        Shard::with_mesh(link, config, None)
    }

    /// Builds a shard that is one of several: `mesh` joins it to the others for frame
    /// hand-offs (its doorbell is the mesh's).
    pub fn with_mesh(
        mut link: L,
        config: StackConfig,
        mesh: Option<MeshEnd>,
    ) -> Result<Shard<L>, AddressError> {
        let cidrs = config.cidrs()?;
        let clock = Clock::new();
        let now = clock.now();
        let mut ifc = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        ifc.random_seed = config.seed;
        let mut iface = Interface::new(ifc, &mut link, now);
        iface.update_ip_addrs(|addrs| {
            for c in cidrs {
                // The address count is bounded at compile time; extra addresses are refused
                // by config validation before they get here.
                let _ = addrs.push(c);
            }
        });
        if let Some(gw) = config.gateway4 {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = config.gateway6 {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        let bell = match &mesh {
            Some(m) => match m.bells.get(m.me as usize) {
                Some(b) => b.clone(),
                None => Arc::new(Doorbell::new().map_err(|e| AddressError::Mac(e.to_string()))?),
            },
            None => Arc::new(Doorbell::new().map_err(|e| AddressError::Mac(e.to_string()))?),
        };
        let mut executor = Executor::new(bell.clone());
        // With a board, its policy is the one in force (changed there at run time).
        let board = config
            .workload_board
            .as_ref()
            .map(|b| (b.clone(), b.attach()));
        let policy_seen = board.as_ref().map_or(0, |(b, _)| b.generation());
        executor.set_policy(
            board
                .as_ref()
                .map_or_else(|| config.workload.clone(), |(b, _)| b.policy()),
        );
        let caps = link.capabilities();
        let span = (EPHEMERAL.end() - EPHEMERAL.start()) as u64;
        let first_port = EPHEMERAL.start() + (config.seed % span) as u16;
        let inner = Inner {
            core: std::cell::RefCell::new(Core {
                iface,
                sockets: crate::sockets::Sets::new(),
                closing: Vec::new(),
                pool: Default::default(),
                socket_memory: config.socket_memory,
                max_per_source: config.max_per_source,
                per_source: Default::default(),
                ports: Default::default(),
                next_port: first_port,
                counters: NetCounters::default(),
                flows: Default::default(),
                listen_ports: Default::default(),
                listeners: Vec::new(),
                udp_ports: Default::default(),
                shard: config.shard,
                shards: config.shards.max(1),
                queue: config.queue,
                receive_queue: config.receive_queue.clone(),
                ping_ident: 0,
                elsewhere: config
                    .pinned_elsewhere
                    .iter()
                    .filter(|(_, _, shards)| !shards.is_empty())
                    .map(|(p, port, shards)| ((*p, *port), shards.clone()))
                    .collect(),
            }),
            now: std::cell::Cell::new(now),
            timers: std::cell::RefCell::new(Timers::default()),
            spawned: std::cell::RefCell::new(Vec::new()),
            registry: std::cell::RefCell::new(Default::default()),
            running: crate::executor::Running::default(),
            config,
            draining: std::cell::Cell::new(false),
            accept_waiters: std::cell::RefCell::new(Vec::new()),
            disk: std::cell::RefCell::new(Default::default()),
            requests: std::cell::RefCell::new(
                hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 2).ok(),
            ),
            service_counters: std::cell::RefCell::new(Vec::new()),
        };
        Ok(Shard {
            link,
            net: Net {
                inner: Rc::new(inner),
            },
            executor,
            control: ShardControl {
                stop: Arc::new(AtomicBool::new(false)),
                drain: Arc::new(AtomicBool::new(false)),
                bell,
            },
            clock,
            stats: ShardStats::default(),
            caps,
            mesh,
            pending: VecDeque::new(),
            loop_hist: hdrhistogram::Histogram::new_with_bounds(1, 10_000_000_000, 2)
                .map_err(|e| AddressError::Mac(e.to_string()))?,
            publish: None,
            last_publish: now,
            last_sweep: now,
            egress_work: Vec::new(),
            hairpin: crate::hairpin::Hairpin::default(),
            last_reap: now,
            next_interval: now,
            ingress_cut: 0,
            board,
            policy_seen,
            lane: crate::lane::Lane::default(),
        })
    }

    /// Publishes a copy of the counters into `slot` every 100 ms of shard time (for the
    /// control socket; the lock is this shard's own, shared only with the reader).
    pub fn publish_stats(&mut self, slot: Arc<Mutex<ShardStats>>) {
        self.publish = Some(slot);
    }

    /// The handle services use to open sockets and spawn tasks on this shard.
    pub fn net(&self) -> Net {
        self.net.clone()
    }

    /// A handle that stops [`Shard::run`] from another thread.
    pub fn control(&self) -> ShardControl {
        self.control.clone()
    }

    /// The link.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// The link, mutably (tests inject frames through it).
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Counters so far.
    pub fn stats(&self) -> ShardStats {
        let mut s = self.stats;
        s.link = self.link.stats();
        s.net = self.net.counters();
        s.tasks_live = self.executor.live() as u64;
        s.conns_open = self.net.core().flows.len() as u64;
        s.loop_ns = summary(&self.loop_hist);
        if let Some(h) = self.net.inner.requests.borrow().as_ref() {
            s.request_ns = summary(h);
        }
        for (slot, (name, c)) in s
            .services
            .iter_mut()
            .zip(self.net.inner.service_counters.borrow().iter())
        {
            *slot = (name, c.get());
        }
        s
    }

    /// The workload manager's thresholds from now on (refused if they do not hold).
    pub fn set_workload_policy(
        &mut self,
        policy: crate::workload::Policy,
    ) -> Result<(), crate::workload::PolicyError> {
        policy.check()?;
        self.executor.set_policy(policy);
        Ok(())
    }

    /// Termination statistics of the tasks that ended on this shard.
    pub fn workload_summary(&self) -> crate::workload::Summary {
        self.executor.summary().clone()
    }

    /// The workload manager's interval ends: priorities move, runaways are reported.
    fn end_workload_interval(&mut self, now: Instant) {
        use crate::workload::{RunawayAction, Verdict};
        if let Some((board, _)) = &self.board {
            if let Some((generation, policy)) = board.newer(self.policy_seen) {
                self.policy_seen = generation;
                log::info!("workload: policy now {policy}");
                self.executor.set_policy(policy);
            }
        }
        let interval = self.executor.policy().interval;
        self.next_interval =
            now + smoltcp::time::Duration::from_micros(interval.as_micros() as u64);
        let limit = {
            let p = self.executor.policy();
            p.runaway.saturating_mul(p.cicsint)
        };
        let groups = self.net.inner.registry.borrow().groups.len();
        let moved = self.executor.end_interval(groups);
        self.ingress_cut = if self.executor.policy().enabled {
            self.executor.top_active()
        } else {
            0
        };
        for m in moved {
            match m.verdict {
                Verdict::Unchanged => {}
                Verdict::Demoted(from, to) | Verdict::Promoted(from, to) => {
                    self.stats.workload_changes += 1;
                    log::debug!(
                        "workload: task {} priority {from} -> {to} ({} work units)",
                        m.task,
                        m.work
                    );
                }
                Verdict::Runaway { action, moved } => {
                    self.stats.workload_runaways += 1;
                    self.stats.workload_changes += u64::from(moved.is_some());
                    let what = match action {
                        RunawayAction::Log => "logged",
                        RunawayAction::Demote => "demoted",
                        RunawayAction::Abort => "ended, its connections closed",
                    };
                    log::warn!(
                        "workload: task {} is a runaway: {} work units in one interval \
                         (limit {limit}); {what}",
                        m.task,
                        m.work
                    );
                }
            }
        }
        if let Some((_, slot)) = &self.board {
            let mut load = self.executor.load(&self.net.inner.registry.borrow());
            load.shard = self.net.inner.core.borrow().shard;
            load.ingress_cut = self.ingress_cut;
            load.frames_deferred = self.lane.deferred;
            if let Ok(mut g) = slot.lock() {
                *g = load;
            }
        }
    }

    /// Whether `addr` is one of the stack's addresses.
    pub fn has_address(&self, addr: IpAddress) -> bool {
        self.net.core().iface.has_ip_addr(addr)
    }

    /// The shard's clock now (Unix-scale microseconds, monotonic).
    pub fn clock_now(&self) -> Instant {
        self.clock.now()
    }

    /// Runs one round at time `now` (real or virtual) and returns when the shard next
    /// needs a round: `Some(now)` for at once, `None` when only new frames can wake it.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.round(now);
        self.next_deadline(now)
    }

    fn round(&mut self, now: Instant) -> bool {
        self.net.inner.now.set(now);
        self.stats.rounds += 1;
        let mut worked = self.handoffs_in(now);
        {
            let mut core = self.net.core();
            let core = &mut *core;
            let mesh = self.mesh.as_ref();
            let caps = &self.caps;
            let counters = &mut self.stats.steer;
            let mut np = 0u64;
            let cut = self.ingress_cut;
            let lanes = cut > 0 || !self.lane.is_empty();
            let (mut taken, mut inline, mut from_lane) = (0, 0, 0);
            loop {
                // The link's ring: frames of connections ranked below the cut are copied to
                // the deferred lane, the rest handled now.
                // With the manager off (no cut) a lane left over drains before the ring is
                // read again: the ring's frames arrived after the lane's.
                let draining = cut == 0 && !self.lane.is_empty();
                while !draining && inline < RX_BATCH && taken < RX_SWEEP {
                    if lanes && self.lane.is_full() {
                        break;
                    }
                    let Some((rx, tx)) = self.link.receive(now) else {
                        break;
                    };
                    taken += 1;
                    let lane = &mut self.lane;
                    let handled = rx.consume(|frame| {
                        let class = classify(frame);
                        if let Class::Tcp {
                            key,
                            syn_only: false,
                        } = class
                        {
                            if let Some(e) = core.flows.get_mut(&key) {
                                let set = e.socket.map(|s| s.set);
                                if lanes && (lane.holds(e.lane_last) || e.priority < cut) {
                                    if let Some(at) = lane.push(frame, set) {
                                        e.lane_last = at;
                                        return false;
                                    }
                                }
                                // An established connection: no need to decide again.
                                if let Some(set) = set {
                                    feed(core, caps, frame, tx, now, set);
                                    return true;
                                }
                            }
                        }
                        steer_classified(
                            core, mesh, counters, caps, class, frame, tx, now, 0, &mut np,
                        );
                        true
                    });
                    inline += usize::from(handled);
                }
                // The deferred lane, a chunk at a time, oldest first, with a look at the
                // ring between chunks; once a higher-ranked frame was handled the round
                // goes on to its task after this chunk (every round moves the lane by at
                // least one chunk, so deferred connections are slowed, never stopped).
                if from_lane >= RX_BATCH || (inline > 0 && from_lane > 0) {
                    break;
                }
                let mut chunk = 0;
                while chunk < LANE_CHUNK {
                    let Some((frame, set)) = self.lane.pop() else {
                        break;
                    };
                    let Some(tx) = self.link.transmit(now) else {
                        self.lane.unpop(frame, set);
                        break;
                    };
                    match set {
                        Some(set) => feed(core, caps, &frame, tx, now, set),
                        None => {
                            steer(core, mesh, counters, caps, &frame, tx, now, 0, &mut np);
                        }
                    }
                    self.lane.recycle(frame);
                    chunk += 1;
                }
                from_lane += chunk;
                if chunk < LANE_CHUNK {
                    break;
                }
            }
            if taken + from_lane > 0 {
                self.stats.frames_in += taken as u64;
                worked = true;
            }
            self.stats.frames_deferred = self.lane.deferred;
            // Frames the stack sent to itself last round (replies they cause loop too).
            if !self.hairpin.is_empty() {
                worked = true;
                for _ in 0..RX_BATCH {
                    let Some(frame) = self.hairpin.pop() else {
                        break;
                    };
                    let tx = self.hairpin.tx();
                    steer(core, mesh, counters, caps, &frame, tx, now, 0, &mut np);
                    self.hairpin.recycle(frame);
                }
                // A connection waiting for its own address to resolve goes on at once.
                core.sockets.mark(crate::sockets::LOCAL_SET);
            }
            self.stats.np_ns += np;
        }
        self.net.timers().fire(now);
        let mut polled = 0;
        loop {
            // Most rounds spawn nothing: no allocation for them.
            if !self.net.inner.spawned.borrow().is_empty() {
                let spawned: Vec<_> = self.net.inner.spawned.borrow_mut().drain(..).collect();
                let registry = self.net.inner.registry.borrow();
                for (spawn, t) in spawned {
                    let group = registry.group_of(spawn.service);
                    self.executor.insert(spawn, group, t);
                }
            }
            if polled >= TASK_BUDGET || !self.executor.has_ready() {
                break;
            }
            polled += self
                .executor
                .run_ready(TASK_BUDGET - polled, &self.net.inner.running);
        }
        if polled > 0 {
            worked = true;
            self.stats.task_polls += polled as u64;
        }
        if now >= self.next_interval {
            self.end_workload_interval(now);
        }
        // Disk: submit what tasks queued this round, hand finished operations to their
        // tasks (which run next round).
        if self.net.inner.disk.borrow_mut().poll() {
            worked = true;
        }
        {
            let mut core = self.net.core();
            let core = &mut *core;
            let mut work = std::mem::take(&mut self.egress_work);
            core.sockets.take_work(now, &mut work);
            self.stats.egress_polls += work.len() as u64;
            for &set in &work {
                // smoltcp sends at most one segment per socket per call: call again while
                // it keeps sending (bounded), so a connection with a full window goes out
                // in one round instead of one segment per round.
                for _ in 0..EGRESS_PASSES {
                    let sent = if set == crate::sockets::LOCAL_SET {
                        let mut dev = crate::hairpin::HairpinDev {
                            queue: &mut self.hairpin,
                            caps: self.caps.clone(),
                        };
                        core.iface
                            .poll_egress(now, &mut dev, core.sockets.set_mut(set))
                    } else {
                        core.iface
                            .poll_egress(now, &mut self.link, core.sockets.set_mut(set))
                    };
                    if sent != smoltcp::iface::PollResult::SocketStateChanged {
                        break;
                    }
                }
                let at = core.iface.poll_at(now, core.sockets.set_mut(set));
                core.sockets.set_next(set, at);
            }
            self.egress_work = work;
            // Reaping walks every closing socket: do it every few milliseconds, not every
            // round, so a storm of closes does not make each round cost O(closing).
            if !core.closing.is_empty() && now >= self.last_reap + REAP_EVERY {
                core.reap(now);
                self.last_reap = now;
            }
            if now >= self.last_sweep + HOUSEKEEPING * 10 {
                core.sweep_flows(now);
                self.last_sweep = now;
            }
        }
        if self.publish.is_some() && now >= self.last_publish + HOUSEKEEPING {
            self.last_publish = now;
            let t = std::time::Instant::now();
            let snapshot = self.stats();
            if let Some(slot) = &self.publish {
                if let Ok(mut g) = slot.lock() {
                    *g = snapshot;
                }
            }
            // Serialized work of a busy round; an idle shard's publishing is counted as
            // idle time (the NP ratio is a share of busy time and stays within it).
            if worked {
                self.stats.np_ns += t.elapsed().as_nanos() as u64;
            }
        }
        if let Err(e) = self.link.flush() {
            log::warn!("{}: flush: {e}", self.link.describe());
        }
        worked
    }

    /// Starts draining on request; true once draining and no connection is left.
    fn drained(&mut self) -> bool {
        if !self.net.inner.draining.get() {
            self.net.inner.draining.set(true);
            for w in self.net.inner.accept_waiters.borrow_mut().drain(..) {
                w.wake();
            }
            return false;
        }
        let core = self.net.core();
        core.flows.is_empty() && core.closing.is_empty()
    }

    /// Takes frames other shards handed to this one and steers them like its own.
    fn handoffs_in(&mut self, now: Instant) -> bool {
        let Some(mesh) = self.mesh.as_ref() else {
            return false;
        };
        while self.pending.len() < RX_BATCH {
            match mesh.receiver.try_recv() {
                Ok(h) => self.pending.push_back(h),
                Err(_) => break,
            }
        }
        if self.pending.is_empty() {
            return false;
        }
        let t = std::time::Instant::now();
        let mut core = self.net.core();
        let core = &mut *core;
        while let Some(h) = self.pending.pop_front() {
            let Some(tx) = self.link.transmit(now) else {
                // No transmit slot for a reply yet: try again next round.
                self.pending.push_front(h);
                break;
            };
            if h.hops != crate::ingress::COPY {
                self.stats.steer.handoffs_in += 1;
            }
            // The whole hand-over intake is counted as serialized work below.
            let mut np = 0;
            steer(
                core,
                Some(mesh),
                &mut self.stats.steer,
                &self.caps,
                &h.bytes,
                tx,
                now,
                h.hops,
                &mut np,
            );
        }
        self.stats.np_ns += t.elapsed().as_nanos() as u64;
        true
    }

    fn next_deadline(&mut self, now: Instant) -> Option<Instant> {
        if self.executor.has_ready()
            || !self.net.inner.spawned.borrow().is_empty()
            || !self.pending.is_empty()
            || !self.hairpin.is_empty()
            || !self.lane.is_empty()
        {
            return Some(now);
        }
        let timer = self.net.timers().next_deadline();
        let (sockets, reaping) = {
            let mut core = self.net.core();
            (core.sockets.next_deadline(now), !core.closing.is_empty())
        };
        let reap = reaping.then_some(self.last_reap + REAP_EVERY);
        let publish = self
            .publish
            .is_some()
            .then_some(self.last_publish + HOUSEKEEPING);
        [timer, sockets, reap, publish].into_iter().flatten().min()
    }

    /// Runs rounds on the real clock until [`ShardControl::stop`]: busy-polls for the
    /// configured while after work, then sleeps on the link until a frame, a timer or
    /// the doorbell wakes it.
    pub fn run(&mut self) -> io::Result<()> {
        self.run_while(|| true)
    }

    /// Spawns `fut` and runs the shard until it completes (or the shard is stopped, which
    /// gives `None`).
    pub fn run_until<F: Future + 'static>(&mut self, fut: F) -> io::Result<Option<F::Output>> {
        let handle: JoinHandle<F::Output> = self.net.spawn(fut);
        self.run_while(|| !handle.is_finished())?;
        Ok(handle.try_take())
    }

    fn run_while(&mut self, mut go_on: impl FnMut() -> bool) -> io::Result<()> {
        self.executor.set_owner_thread();
        let busy_poll = Duration::from_micros(self.net.config().busy_poll_us);
        let mut last_work = std::time::Instant::now();
        // Two clock reads a round (its start and its end), shared by the protocol clock,
        // the busy/idle accounting and the busy-poll window: on a virtual machine a clock
        // read can cost as much as a small frame's whole trip through the stack.
        let mut started = std::time::Instant::now();
        while !self.control.is_stopped() && go_on() {
            if self.control.drain.load(Ordering::Acquire) && self.drained() {
                break;
            }
            let now = self.clock.at(started);
            let worked = self.round(now);
            let ended = std::time::Instant::now();
            let spent = ended.saturating_duration_since(started).as_nanos() as u64;
            if worked {
                self.stats.busy_rounds += 1;
                self.stats.busy_ns += spent;
                let _ = self.loop_hist.record(spent.max(1));
                last_work = ended;
            } else {
                self.stats.idle_ns += spent;
            }
            started = ended;
            if !go_on() {
                break;
            }
            let next = self.next_deadline(now);
            let now2 = self.clock.at(ended);
            if next.is_some_and(|t| t <= now2)
                || ended.saturating_duration_since(last_work) < busy_poll
            {
                continue;
            }
            let timeout = next.map(|t| Duration::from_micros((t - now2).total_micros()));
            self.control.bell.drain();
            if self.control.is_stopped() || self.executor.has_ready() {
                continue;
            }
            if !self.link.prepare_wait() || !self.net.inner.disk.borrow_mut().prepare_wait() {
                continue;
            }
            self.stats.sleeps += 1;
            let slept = ended;
            let disk_fd = self.net.inner.disk.borrow().wait_fd();
            match self.link.wait_fd() {
                Some(fd) => match disk_fd {
                    Some(d) => {
                        wait_readable(&[fd, self.control.bell.fd(), d], timeout)?;
                    }
                    None => {
                        wait_readable(&[fd, self.control.bell.fd()], timeout)?;
                    }
                },
                None => {
                    let t = timeout.map_or(POLL_ONLY_SLEEP, |t| t.min(POLL_ONLY_SLEEP));
                    wait_readable(&[self.control.bell.fd()], Some(t))?;
                }
            }
            started = std::time::Instant::now();
            self.stats.idle_ns += started.saturating_duration_since(slept).as_nanos() as u64;
        }
        // Frames other shards handed over that this shard will never take: counted, not
        // lost silently.
        if let Some(m) = &self.mesh {
            self.stats.steer.handoff_dropped += (m.receiver.len() + self.pending.len()) as u64;
            self.pending.clear();
        }
        Ok(())
    }
}
