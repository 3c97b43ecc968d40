//! The shard's single-threaded executor: a slab of `!Send` tasks, a ready queue that
//! wakers push into, and the workload manager's order among ready tasks: highest priority
//! first, first in first out within a priority (see [`crate::workload`]). Every poll, and
//! every KiB its sockets move, is a work unit of its task; at the end of each interval the manager's rules move the
//! priorities.
//!
//! Wakers are `Send + Sync` (the `Waker` contract) but nearly always fire on the shard's
//! own thread, from inside smoltcp's poll; a wake from another thread also rings the
//! shard's doorbell so a sleeping shard notices it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;

use crossbeam_queue::SegQueue;
use sixstack_drivers::wait::Doorbell;

use crate::workload::board::{ServiceLoad, ShardLoad, TaskView, BUSIEST};
use crate::workload::{groups, Levels, Policy, Registry, RunawayAction, ServiceId, Summary};
use crate::workload::{TaskLoad, Verdict};

/// The priority of a task nothing else gave one (mixed work, in the managed range).
pub const DEFAULT_PRIORITY: u8 = 100;

/// Bytes a task moves through its sockets per work unit beyond the first of a poll.
pub const UNIT_BYTES: u64 = 1024;

/// What the executor and the running task tell each other during one poll.
#[derive(Debug)]
pub(crate) struct Running {
    /// The configured priority of the task being polled (what a task it spawns starts at).
    pub(crate) initial: Cell<u8>,
    /// The priority it runs at now (what its sockets' frames are ranked by).
    pub(crate) now: Cell<u8>,
    /// Bytes its sockets moved during this poll.
    pub(crate) moved: Cell<u64>,
    /// Its service (what a task it spawns belongs to).
    pub(crate) service: Cell<ServiceId>,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            initial: Cell::new(DEFAULT_PRIORITY),
            now: Cell::new(DEFAULT_PRIORITY),
            moved: Cell::new(0),
            service: Cell::new(ServiceId::default()),
        }
    }
}

/// The work units of one poll that moved `bytes`: one, plus one per [`UNIT_BYTES`] beyond
/// the first.
pub fn work_units(bytes: u64) -> u64 {
    1 + bytes.saturating_sub(1) / UNIT_BYTES
}

pub(crate) type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Where wakers put the tasks they wake.
#[derive(Debug)]
pub(crate) struct ReadyQueue {
    queue: SegQueue<(u32, u32)>,
    owner: ThreadId,
    bell: Arc<Doorbell>,
}

struct TaskWaker {
    slot: u32,
    generation: u32,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.queue.push((self.slot, self.generation));
            if std::thread::current().id() != self.ready.owner {
                self.ready.bell.ring();
            }
        }
    }
}

struct Slot {
    generation: u32,
    task: Option<LocalFuture>,
    waker: Option<Arc<TaskWaker>>,
    load: TaskLoad,
    service: ServiceId,
    group: Option<u16>,
    /// The `run_ready` call that last polled it.
    ran: u64,
}

/// What a new task is: its priority and the service it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spawn {
    pub(crate) priority: u8,
    pub(crate) service: ServiceId,
}

/// What the tasks of one service that ended did (kept for its velocity and totals).
#[derive(Debug, Clone, Copy, Default)]
struct Ended {
    tasks: u64,
    using: u64,
    delayed: u64,
    work: u64,
    changes: u64,
    runaways: u64,
}

/// Runs the tasks of one shard.
pub(crate) struct Executor {
    slots: Vec<Slot>,
    free: Vec<u32>,
    ready: Arc<ReadyQueue>,
    /// Woken tasks by priority.
    levels: Levels<(u32, u32)>,
    live: usize,
    policy: Policy,
    summary: Summary,
    /// See [`Executor::top_active`].
    top_active: u8,
    /// Per service, its ended tasks.
    ended: Vec<Ended>,
    /// The performance group dispatched first this interval.
    boosted: Option<u16>,
    /// Per group, its live tasks and the velocity of the last interval.
    group_view: Vec<(u64, Option<f64>)>,
    /// The tasks that did the most work in the last interval, with that work.
    busiest: Vec<(u32, u64)>,
    /// `run_ready` calls so far.
    calls: u64,
}

/// What the end of an interval did to one task (for the shard's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    /// The task's slot.
    pub(crate) task: u32,
    /// Its work units in the interval that ended.
    pub(crate) work: u64,
    /// What the rules decided.
    pub(crate) verdict: Verdict,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("live", &self.live)
            .field("ready", &self.ready.queue.len())
            .finish()
    }
}

impl Executor {
    pub(crate) fn new(bell: Arc<Doorbell>) -> Executor {
        Executor {
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::new(ReadyQueue {
                queue: SegQueue::new(),
                owner: std::thread::current().id(),
                bell,
            }),
            levels: Levels::default(),
            live: 0,
            policy: Policy::default(),
            summary: Summary::default(),
            top_active: 0,
            ended: Vec::new(),
            boosted: None,
            group_view: Vec::new(),
            busiest: Vec::new(),
            calls: 0,
        }
    }

    /// The workload manager's thresholds from now on. Switching the manager off puts every
    /// task back at the priority it was given (and ends group dispatching), so "off" means
    /// the configured priorities, whatever the manager had done.
    pub(crate) fn set_policy(&mut self, policy: Policy) {
        let switched_off = self.policy.enabled && !policy.enabled;
        self.policy = policy;
        if switched_off {
            self.boosted = None;
            for slot in self.slots.iter_mut().filter(|s| s.task.is_some()) {
                slot.load.priority = slot.load.initial;
            }
            self.relevel();
        }
    }

    /// Moves the tasks already queued to the levels of their dispatch priorities now.
    fn relevel(&mut self) {
        let queued: Vec<_> = std::iter::from_fn(|| self.levels.pop()).collect();
        for (_, (slot, generation)) in queued {
            if let Some(entry) = self.slots.get(slot as usize) {
                let p = Self::dispatch(&self.policy, self.boosted, entry);
                self.levels.push(p, (slot, generation));
            }
        }
    }

    /// The priority a task is dispatched (and its frames ranked) at: its own, lifted when
    /// its performance group goes first this interval.
    fn dispatch(policy: &Policy, boosted: Option<u16>, slot: &Slot) -> u8 {
        if boosted.is_some() && slot.group == boosted {
            groups::lifted(policy, slot.load.priority)
        } else {
            slot.load.priority
        }
    }

    /// The thresholds in force.
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The highest priority of a task that did work in the last interval (0: none did):
    /// frames of connections ranked below it wait in the shard's deferred ingress lane.
    pub(crate) fn top_active(&self) -> u8 {
        self.top_active
    }

    /// Termination statistics of the tasks that ended.
    pub(crate) fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The manager's report: per service (live and ended tasks), per performance group (the
    /// last interval), the busiest live tasks of the last interval.
    pub(crate) fn load(&self, registry: &Registry) -> ShardLoad {
        let mut services: Vec<ServiceLoad> = registry
            .services
            .iter()
            .map(|(name, group)| ServiceLoad {
                name: name.clone(),
                group: group
                    .and_then(|g| registry.groups.get(usize::from(g)))
                    .cloned(),
                ..ServiceLoad::default()
            })
            .collect();
        for (i, e) in self.ended.iter().enumerate() {
            if let Some(s) = services.get_mut(i) {
                s.ended = e.tasks;
                s.using = e.using;
                s.delayed = e.delayed;
                s.work = e.work;
                s.changes = e.changes;
                s.runaways = e.runaways;
            }
        }
        for slot in self.slots.iter().filter(|s| s.task.is_some()) {
            let Some(s) = services.get_mut(usize::from(slot.service.0)) else {
                continue;
            };
            let l = &slot.load;
            s.live += 1;
            s.using += l.using;
            s.delayed += l.delayed;
            s.work += l.total_work;
            s.changes += u64::from(l.changes);
            s.runaways += u64::from(l.runaways);
            s.priorities = Some(match s.priorities {
                None => (l.priority, l.priority),
                Some((lo, hi)) => (lo.min(l.priority), hi.max(l.priority)),
            });
        }
        // Services with nothing to say (no task ever) are left out.
        services.retain(|s| s.live + s.ended > 0);
        let groups = registry
            .groups
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (live, velocity) = self.group_view.get(i).copied().unwrap_or((0, None));
                crate::workload::GroupLoad {
                    name: name.clone(),
                    live,
                    velocity,
                    boosted: self.boosted == Some(i as u16),
                }
            })
            .collect();
        let busiest = self
            .busiest
            .iter()
            .filter_map(|&(task, work)| {
                let slot = self.slots.get(task as usize).filter(|s| s.task.is_some())?;
                Some(TaskView {
                    task,
                    service: registry.name_of(slot.service.0).to_string(),
                    priority: slot.load.priority,
                    initial: slot.load.initial,
                    work,
                    total: slot.load.total_work,
                    velocity: slot.load.velocity(),
                })
            })
            .collect();
        ShardLoad {
            services,
            groups,
            busiest,
            summary: self.summary.clone(),
            ..ShardLoad::default()
        }
    }

    /// The end of a workload interval: every live task's sample (delayed or not) and the
    /// rules applied to its priority; the tasks that moved or ran away. A runaway whose
    /// action is abort is ended here (its sockets close as it is dropped).
    pub(crate) fn end_interval(&mut self, groups_named: usize) -> Vec<Moved> {
        let mut moved = Vec::new();
        self.busiest.clear();
        let mut top = 0;
        let mut samples = vec![(0u64, 0u64); groups_named];
        let mut live = vec![0u64; groups_named];
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.task.is_none() {
                continue;
            }
            let work = slot.load.interval_work;
            if work > 0 {
                self.busiest.push((i as u32, work));
            }
            let dispatch = Self::dispatch(&self.policy, self.boosted, slot);
            if work > 0 && dispatch != crate::workload::rules::HOUSEKEEPING_HIGH {
                top = top.max(dispatch);
            }
            let starved = slot.load.starved;
            slot.load.sample(starved);
            if let Some(g) = slot.group.and_then(|g| samples.get_mut(usize::from(g))) {
                if starved {
                    g.1 += 1;
                } else {
                    g.0 += 1;
                }
            }
            if let Some(n) = slot.group.and_then(|g| live.get_mut(usize::from(g))) {
                *n += 1;
            }
            let verdict = self.policy.end_interval(&mut slot.load);
            if verdict != Verdict::Unchanged {
                moved.push(Moved {
                    task: i as u32,
                    work,
                    verdict,
                });
            }
        }
        self.top_active = top;
        if self.busiest.len() > BUSIEST {
            self.busiest
                .select_nth_unstable_by_key(BUSIEST - 1, |&(_, w)| std::cmp::Reverse(w));
            self.busiest.truncate(BUSIEST);
        }
        self.busiest.sort_by_key(|&(_, w)| std::cmp::Reverse(w));
        let boosted = if self.policy.enabled {
            groups::slowest(&samples).map(|g| g as u16)
        } else {
            None
        };
        self.group_view = samples
            .iter()
            .zip(&live)
            .map(|(&(u, d), &n)| (n, crate::workload::board::velocity(u, d)))
            .collect();
        if !moved.is_empty() || boosted != self.boosted {
            self.boosted = boosted;
            self.relevel();
        }
        for m in &moved {
            if let Verdict::Runaway {
                action: RunawayAction::Abort,
                ..
            } = m.verdict
            {
                self.finish(m.task);
            }
        }
        moved
    }

    /// A task is over (finished, or ended by the manager): its slot is freed and its
    /// statistics kept.
    fn finish(&mut self, slot: u32) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if entry.task.take().is_none() {
            return;
        }
        entry.waker = None;
        self.summary.record(&self.policy, &entry.load);
        let i = usize::from(entry.service.0);
        if self.ended.len() <= i {
            self.ended.resize(i + 1, Ended::default());
        }
        let e = &mut self.ended[i];
        let l = &entry.load;
        e.tasks += 1;
        e.using += l.using;
        e.delayed += l.delayed;
        e.work += l.total_work;
        e.changes += u64::from(l.changes);
        e.runaways += u64::from(l.runaways);
        self.free.push(slot);
        self.live -= 1;
    }

    /// Adopts the thread that will run this executor (a shard may be built on one thread
    /// and run on another).
    pub(crate) fn set_owner_thread(&mut self) {
        if let Some(ready) = Arc::get_mut(&mut self.ready) {
            ready.owner = std::thread::current().id();
        }
    }

    /// Adds a task of service `spawn.service` (in performance group `group`) at
    /// `spawn.priority` and queues it for its first poll.
    pub(crate) fn insert(&mut self, spawn: Spawn, group: Option<u16>, task: LocalFuture) {
        let Spawn { priority, service } = spawn;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    task: None,
                    waker: None,
                    load: TaskLoad::new(priority),
                    service,
                    group,
                    ran: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.load = TaskLoad::new(priority);
        entry.service = service;
        entry.group = group;
        entry.generation = entry.generation.wrapping_add(1);
        let waker = Arc::new(TaskWaker {
            slot,
            generation: entry.generation,
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        entry.task = Some(task);
        waker.wake_by_ref();
        entry.waker = Some(waker);
        self.live += 1;
    }

    /// Tasks alive (not finished).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Whether any task is queued to run.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.queue.is_empty() || !self.levels.is_empty()
    }

    /// Moves what wakers queued into the priority levels.
    fn collect(&mut self) {
        while let Some((slot, generation)) = self.ready.queue.pop() {
            if let Some(entry) = self.slots.get(slot as usize) {
                if entry.generation == generation && entry.task.is_some() {
                    let p = Self::dispatch(&self.policy, self.boosted, entry);
                    self.levels.push(p, (slot, generation));
                }
            }
        }
    }

    /// Polls up to `budget` ready tasks, highest priority first (first in first out within
    /// a priority); returns how many were polled. While a task runs, `running` holds the
    /// priority it was given (what the tasks it spawns start at), the one it runs at, and
    /// counts the bytes its sockets move (its work units). Tasks still ready when
    /// the budget is spent were passed over: the manager raises them.
    pub(crate) fn run_ready(&mut self, budget: usize, running: &Running) -> usize {
        let mut polled = 0;
        self.calls = self.calls.wrapping_add(1);
        while polled < budget {
            self.collect();
            let Some((_, (slot, generation))) = self.levels.pop() else {
                break;
            };
            let Some(entry) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if entry.generation != generation {
                continue;
            }
            let dispatch = Self::dispatch(&self.policy, self.boosted, entry);
            let (Some(task), Some(arc)) = (entry.task.as_mut(), entry.waker.as_ref()) else {
                continue;
            };
            arc.queued.store(false, Ordering::Release);
            let waker = Waker::from(arc.clone());
            let mut cx = Context::from_waker(&waker);
            polled += 1;
            entry.ran = self.calls;
            running.initial.set(entry.load.initial);
            running.now.set(dispatch);
            running.moved.set(0);
            running.service.set(entry.service);
            let done = task.as_mut().poll(&mut cx).is_ready();
            entry.load.worked_units(work_units(running.moved.get()));
            running.initial.set(DEFAULT_PRIORITY);
            running.now.set(DEFAULT_PRIORITY);
            running.service.set(ServiceId::default());
            if done {
                self.finish(slot);
            }
        }
        if polled >= budget {
            // Passed over: ready and not run in this call (a task that ran and woke itself
            // again had its turn).
            self.collect();
            for &(slot, _) in self.levels.iter() {
                if let Some(entry) = self.slots.get_mut(slot as usize) {
                    if entry.ran != self.calls {
                        entry.load.starved = true;
                    }
                }
            }
        }
        polled
    }
}

/// Waits for a spawned task's result.
pub struct JoinHandle<T> {
    pub(crate) state: Rc<RefCell<JoinState<T>>>,
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

pub(crate) struct JoinState<T> {
    pub(crate) value: Option<T>,
    pub(crate) done: bool,
    pub(crate) waker: Option<Waker>,
}

impl<T> JoinHandle<T> {
    /// Whether the task has completed.
    pub fn is_finished(&self) -> bool {
        self.state.borrow().done
    }

    /// Takes the result if the task has completed.
    pub fn try_take(&self) -> Option<T> {
        self.state.borrow_mut().value.take()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.state.borrow_mut();
        if let Some(v) = st.value.take() {
            return Poll::Ready(v);
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Wraps a future so its output lands in a join state.
pub(crate) fn with_join<F: Future + 'static>(fut: F) -> (LocalFuture, JoinHandle<F::Output>) {
    let state = Rc::new(RefCell::new(JoinState {
        value: None,
        done: false,
        waker: None,
    }));
    let st2 = state.clone();
    let task = Box::pin(async move {
        let v = fut.await;
        let mut st = st2.borrow_mut();
        st.value = Some(v);
        st.done = true;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    });
    (task, JoinHandle { state })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sp(priority: u8) -> Spawn {
        Spawn {
            priority,
            service: ServiceId::default(),
        }
    }
    use std::cell::Cell;

    #[test]
    fn runs_tasks_fifo_and_frees_slots() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..3 {
            let o = order.clone();
            ex.insert(
                sp(DEFAULT_PRIORITY),
                None,
                Box::pin(async move { o.borrow_mut().push(i) }),
            );
        }
        assert_eq!(ex.live(), 3);
        assert_eq!(ex.run_ready(10, &Running::default()), 3);
        assert_eq!(*order.borrow(), vec![0, 1, 2]);
        assert_eq!(ex.live(), 0);
        assert!(!ex.has_ready());
    }

    #[test]
    fn pending_task_runs_again_when_woken() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let polls = Rc::new(Cell::new(0));
        let (s, p) = (slot.clone(), polls.clone());
        ex.insert(
            sp(DEFAULT_PRIORITY),
            None,
            Box::pin(std::future::poll_fn(move |cx| {
                p.set(p.get() + 1);
                if p.get() < 2 {
                    *s.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })),
        );
        let current = Running::default();
        ex.run_ready(10, &current);
        assert_eq!(ex.live(), 1);
        assert_eq!(ex.run_ready(10, &current), 0, "not woken: not polled");
        slot.borrow_mut().take().unwrap().wake();
        assert_eq!(ex.run_ready(10, &current), 1);
        assert_eq!(ex.live(), 0);
    }

    /// A task that wakes itself and yields `polls` times, recording its polls in `log`.
    fn busy(name: char, polls: usize, log: Rc<RefCell<Vec<char>>>) -> LocalFuture {
        let mut left = polls;
        Box::pin(std::future::poll_fn(move |cx| {
            log.borrow_mut().push(name);
            left -= 1;
            if left == 0 {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }))
    }

    #[test]
    fn the_slowest_group_goes_first_and_the_report_names_services() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        let mut reg = Registry::default();
        let bulk = reg.register("discard tcp/9", Some("bulk")).unwrap();
        let short = reg.register("echo tcp/7", Some("short")).unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let at = |priority, service| Spawn { priority, service };
        ex.insert(
            at(110, bulk),
            reg.group_of(bulk),
            busy('b', 50, log.clone()),
        );
        ex.insert(
            at(100, short),
            reg.group_of(short),
            busy('s', 50, log.clone()),
        );
        let running = Running::default();
        // One poll a round: the bulk task (higher) always runs, the short one waits.
        for _ in 0..3 {
            ex.run_ready(1, &running);
        }
        assert_eq!(*log.borrow(), vec!['b'; 3]);
        ex.end_interval(reg.groups.len());
        let load = ex.load(&reg);
        let short_group = load.groups.iter().find(|g| g.name == "short").unwrap();
        assert!(short_group.boosted, "{load:?}");
        assert_eq!(short_group.velocity, Some(0.0));
        let bulk_group = load.groups.iter().find(|g| g.name == "bulk").unwrap();
        assert!(!bulk_group.boosted);
        assert_eq!(bulk_group.velocity, Some(100.0));
        // Dispatched first now, although its own priority (101 after its promotion) is
        // still below the other's.
        log.borrow_mut().clear();
        ex.run_ready(1, &running);
        assert_eq!(*log.borrow(), vec!['s']);
        assert_eq!(running.now.get(), DEFAULT_PRIORITY, "reset after the poll");
        let names: Vec<_> = load.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["discard tcp/9", "echo tcp/7"]);
        let echo = &load.services[1];
        assert_eq!((echo.live, echo.delayed, echo.using), (1, 1, 0));
        assert_eq!(echo.velocity(), Some(0.0));
        assert_eq!(load.busiest.first().map(|t| t.work), Some(3));
        assert_eq!(
            load.busiest.first().map(|t| t.service.as_str()),
            Some("discard tcp/9")
        );
    }

    #[test]
    fn switching_the_manager_off_restores_the_given_priorities() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        ex.set_policy(Policy {
            cicsint: 2,
            ..Policy::default()
        });
        let log = Rc::new(RefCell::new(Vec::new()));
        ex.insert(sp(100), None, busy('h', 20, log.clone()));
        let running = Running::default();
        ex.run_ready(5, &running);
        ex.end_interval(0);
        assert_eq!(ex.slots[0].load.priority, 99, "demoted");
        ex.set_policy(Policy {
            enabled: false,
            ..Policy::default()
        });
        assert_eq!(ex.slots[0].load.priority, 100, "back where it was given");
        ex.run_ready(1, &running);
        assert_eq!(log.borrow().len(), 6, "still queued, still runs");
    }

    #[test]
    fn work_units_count_polls_and_kibibytes() {
        assert_eq!(work_units(0), 1);
        assert_eq!(work_units(1024), 1);
        assert_eq!(work_units(1025), 2);
        assert_eq!(work_units(64 * 1024), 64);
    }

    #[test]
    fn higher_priority_runs_first_and_spawns_inherit_the_given_priority() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        let log = Rc::new(RefCell::new(Vec::new()));
        ex.insert(sp(100), None, busy('m', 2, log.clone()));
        ex.insert(sp(20), None, busy('l', 2, log.clone()));
        ex.insert(sp(200), None, busy('h', 2, log.clone()));
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        let current = Rc::new(Running::default());
        let c = current.clone();
        ex.insert(
            sp(180),
            None,
            Box::pin(async move {
                s.set(c.initial.get());
            }),
        );
        ex.run_ready(100, &current);
        // h twice (it wakes itself and stays the highest), then the spawner at 180, m, l.
        assert_eq!(*log.borrow(), vec!['h', 'h', 'm', 'm', 'l', 'l']);
        assert_eq!(seen.get(), 180, "a task sees the priority it was given");
        assert_eq!(
            current.initial.get(),
            DEFAULT_PRIORITY,
            "reset after each poll"
        );
    }

    #[test]
    fn the_manager_demotes_the_heavy_and_raises_the_passed_over() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        ex.set_policy(Policy {
            cicsint: 5,
            ..Policy::default()
        });
        let log = Rc::new(RefCell::new(Vec::new()));
        ex.insert(sp(101), None, busy('b', 1000, log.clone()));
        ex.insert(sp(100), None, busy('s', 1000, log.clone()));
        let current = Running::default();
        // A budget the bulk task uses up: s is passed over.
        ex.run_ready(10, &current);
        assert!(log.borrow().iter().all(|&c| c == 'b'));
        let moved = ex.end_interval(0);
        let verdicts: Vec<_> = moved.iter().map(|m| (m.task, m.work, m.verdict)).collect();
        assert_eq!(
            verdicts,
            [
                (0, 10, Verdict::Demoted(101, 100)),
                (1, 0, Verdict::Promoted(100, 101))
            ]
        );
        // Now s runs first.
        log.borrow_mut().clear();
        ex.run_ready(1, &current);
        assert_eq!(*log.borrow(), vec!['s']);
        assert_eq!(
            ex.slots[1].load.velocity(),
            Some(0.0),
            "delayed in its one sample"
        );
    }

    #[test]
    fn an_aborted_runaway_ends_and_is_counted() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        ex.set_policy(Policy {
            cicsint: 2,
            runaway: 3,
            action: RunawayAction::Abort,
            ..Policy::default()
        });
        let log = Rc::new(RefCell::new(Vec::new()));
        ex.insert(sp(100), None, busy('r', 1000, log.clone()));
        ex.insert(sp(100), None, busy('q', 2, log.clone()));
        ex.run_ready(10, &Running::default());
        assert_eq!(ex.live(), 1, "q finished");
        let moved = ex.end_interval(0);
        assert!(matches!(
            moved[0].verdict,
            Verdict::Runaway {
                action: RunawayAction::Abort,
                ..
            }
        ));
        assert_eq!(ex.live(), 0);
        assert!(!ex.has_ready() || ex.run_ready(10, &Running::default()) == 0);
        let s = ex.summary();
        assert_eq!((s.tasks, s.runaways), (2, 1));
    }
}
