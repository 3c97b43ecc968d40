//! The shard's single-threaded executor: a slab of `!Send` tasks, a ready queue that
//! wakers push into, and FIFO order among ready tasks.
//!
//! Wakers are `Send + Sync` (the `Waker` contract) but nearly always fire on the shard's
//! own thread, from inside smoltcp's poll; a wake from another thread also rings the
//! shard's doorbell so a sleeping shard notices it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;

use crossbeam_queue::SegQueue;
use sixstack_drivers::wait::Doorbell;

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
}

/// Runs the tasks of one shard.
pub(crate) struct Executor {
    slots: Vec<Slot>,
    free: Vec<u32>,
    ready: Arc<ReadyQueue>,
    live: usize,
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
            live: 0,
        }
    }

    /// Adopts the thread that will run this executor (a shard may be built on one thread
    /// and run on another).
    pub(crate) fn set_owner_thread(&mut self) {
        if let Some(ready) = Arc::get_mut(&mut self.ready) {
            ready.owner = std::thread::current().id();
        }
    }

    /// Adds a task and queues it for its first poll.
    pub(crate) fn insert(&mut self, task: LocalFuture) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    task: None,
                    waker: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
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
        !self.ready.queue.is_empty()
    }

    /// Polls up to `budget` ready tasks in FIFO order; returns how many were polled.
    pub(crate) fn run_ready(&mut self, budget: usize) -> usize {
        let mut polled = 0;
        while polled < budget {
            let Some((slot, generation)) = self.ready.queue.pop() else {
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
            if task.as_mut().poll(&mut cx).is_ready() {
                entry.task = None;
                entry.waker = None;
                self.free.push(slot);
                self.live -= 1;
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
            ex.insert(Box::pin(async move { o.borrow_mut().push(i) }));
        }
        assert_eq!(ex.live(), 3);
        assert_eq!(ex.run_ready(10), 3);
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
        ex.insert(Box::pin(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            if p.get() < 2 {
                *s.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })));
        ex.run_ready(10);
        assert_eq!(ex.live(), 1);
        assert_eq!(ex.run_ready(10), 0, "not woken: not polled");
        slot.borrow_mut().take().unwrap().wake();
        assert_eq!(ex.run_ready(10), 1);
        assert_eq!(ex.live(), 0);
    }
}
