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

use crate::workload::{Levels, Policy, RunawayAction, Summary, TaskLoad, Verdict};

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
}

impl Default for Running {
    fn default() -> Self {
        Running {
            initial: Cell::new(DEFAULT_PRIORITY),
            now: Cell::new(DEFAULT_PRIORITY),
            moved: Cell::new(0),
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
        }
    }

    /// The workload manager's thresholds from now on.
    pub(crate) fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
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

    /// The end of a workload interval: every live task's sample (delayed or not) and the
    /// rules applied to its priority; the tasks that moved or ran away. A runaway whose
    /// action is abort is ended here (its sockets close as it is dropped).
    pub(crate) fn end_interval(&mut self) -> Vec<Moved> {
        let mut moved = Vec::new();
        let mut top = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.task.is_none() {
                continue;
            }
            let work = slot.load.interval_work;
            if work > 0 && slot.load.priority != crate::workload::rules::HOUSEKEEPING_HIGH {
                top = top.max(slot.load.priority);
            }
            let starved = slot.load.starved;
            slot.load.sample(starved);
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
        if !moved.is_empty() {
            // Tasks already queued move to their new levels.
            let queued: Vec<_> = std::iter::from_fn(|| self.levels.pop()).collect();
            for (_, (slot, generation)) in queued {
                if let Some(entry) = self.slots.get(slot as usize) {
                    self.levels.push(entry.load.priority, (slot, generation));
                }
            }
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

    /// Adds a task at `priority` and queues it for its first poll.
    pub(crate) fn insert(&mut self, priority: u8, task: LocalFuture) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    task: None,
                    waker: None,
                    load: TaskLoad::new(priority),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize].load = TaskLoad::new(priority);
        let entry = &mut self.slots[slot as usize];
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
                    self.levels.push(entry.load.priority, (slot, generation));
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
            let (Some(task), Some(arc)) = (entry.task.as_mut(), entry.waker.as_ref()) else {
                continue;
            };
            arc.queued.store(false, Ordering::Release);
            let waker = Waker::from(arc.clone());
            let mut cx = Context::from_waker(&waker);
            polled += 1;
            running.initial.set(entry.load.initial);
            running.now.set(entry.load.priority);
            running.moved.set(0);
            let done = task.as_mut().poll(&mut cx).is_ready();
            entry.load.worked_units(work_units(running.moved.get()));
            running.initial.set(DEFAULT_PRIORITY);
            running.now.set(DEFAULT_PRIORITY);
            if done {
                self.finish(slot);
            }
        }
        if polled >= budget {
            self.collect();
            for &(slot, _) in self.levels.iter() {
                if let Some(entry) = self.slots.get_mut(slot as usize) {
                    entry.load.starved = true;
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
    use std::cell::Cell;

    #[test]
    fn runs_tasks_fifo_and_frees_slots() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..3 {
            let o = order.clone();
            ex.insert(
                DEFAULT_PRIORITY,
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
            DEFAULT_PRIORITY,
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
    fn higher_priority_runs_first_and_spawns_inherit_the_given_priority() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let mut ex = Executor::new(bell);
        let log = Rc::new(RefCell::new(Vec::new()));
        ex.insert(100, busy('m', 2, log.clone()));
        ex.insert(20, busy('l', 2, log.clone()));
        ex.insert(200, busy('h', 2, log.clone()));
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        let current = Rc::new(Running::default());
        let c = current.clone();
        ex.insert(
            180,
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
        ex.insert(101, busy('b', 1000, log.clone()));
        ex.insert(100, busy('s', 1000, log.clone()));
        let current = Running::default();
        // A budget the bulk task uses up: s is passed over.
        ex.run_ready(10, &current);
        assert!(log.borrow().iter().all(|&c| c == 'b'));
        let moved = ex.end_interval();
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
        ex.insert(100, busy('r', 1000, log.clone()));
        ex.insert(100, busy('q', 2, log.clone()));
        ex.run_ready(10, &Running::default());
        assert_eq!(ex.live(), 1, "q finished");
        let moved = ex.end_interval();
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
