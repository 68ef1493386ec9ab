//! The worker's side of the async futures (`gp_future`): whether a waiter's target is
//! reached, waking the waiters whose target is (`wait_async` holds them), and, in a fork
//! child, relaying the wakers registered before the fork to threads of their own.

use std::sync::Arc;

use crate::state::wait_async::{PreForkWork, Target};
use crate::state::{DomainRef, DomainState};
use crate::stats::Counters;

impl DomainState {
    /// True once `target` is reached. Acquire loads: whoever sees it reached also sees what
    /// made it so (the readers' ends; the batch's effects).
    pub(crate) fn reached(&self, target: Target) -> bool {
        match target {
            Target::GracePeriod(seq) => self.gp.seq.is_completed(seq),
            // Generation `g` has run and the deallocations its batches gave back are done
            // (`finish_given_back`, which the worker runs for async barriers).
            Target::Generation(g) => self.given_back_finished(g),
        }
    }

    /// Counts and reports a waker that panicked (in its wake or its drop) on `thread`.
    fn waker_panicked(&self, thread: &str) {
        Counters::bump(&self.counters.contained_panics);
        rcu_sys::stderr::report_line(&format!(
            "rcu-core: an async waker panicked on the {thread} of domain '{}' (in its wake or \
             its drop; see the message above); the thread goes on. Rule: a Waker's wake and \
             drop must not panic. Fix: the executor's or the test's Waker",
            self.name()
        ));
    }

    /// Worker, in its idle re-check: async waiters to take or wake, or an async barrier
    /// whose given-back deallocations the worker must finish.
    pub(crate) fn async_work_waiting(&self) -> bool {
        self.async_waiters.has_work(|t| self.reached(t)) || self.async_barrier_needs_finishing()
    }
}

impl DomainRef {
    /// Worker, once per loop, outside any atomic scope and leading no grace period: wakes
    /// the async waiters whose target is reached. In a fork child, those registered before
    /// the fork are woken (and dropped) on relay threads (`wait_async`, "In a fork child").
    pub(crate) fn wake_async_waiters(&self) {
        self.async_waiters.wake_ready(
            |t| self.reached(t),
            || self.waker_panicked("worker"),
            |work| self.relay_pre_fork_work(work),
        );
    }

    /// Starts the relay threads for `work`: a waker that takes a lock a thread of the
    /// parent held at the fork blocks its relay only, never the worker nor another wake.
    /// They hold the state weakly (one may block for ever). If no thread can be started,
    /// the worker runs the work itself, and says so.
    fn relay_pre_fork_work(&self, work: PreForkWork) {
        let count: Arc<dyn Fn() + Send + Sync> = match self {
            DomainRef::Global(state) => {
                let state: &'static DomainState = state;
                Arc::new(move || state.waker_panicked("fork-wake relay thread"))
            }
            DomainRef::Owned(state) => {
                let state = Arc::downgrade(state);
                Arc::new(move || {
                    if let Some(state) = state.upgrade() {
                        state.waker_panicked("fork-wake relay thread");
                    }
                })
            }
        };
        if let Err((e, work)) = spawn_relay(work, count) {
            rcu_sys::stderr::report_line(&format!(
                "rcu-core: no thread could be started ({e}) to wake, in this fork child, the \
                 async tasks of domain '{}' registered before the fork; the worker wakes them \
                 itself (a waker that blocks would block it)",
                self.name()
            ));
            let mut work = work;
            while let Some(item) = work.pop() {
                item.run(&|| self.waker_panicked("worker"));
            }
        }
    }
}

/// Starts a relay thread for `work`, or hands `work` back with the error. The relay takes
/// one item, starts the next relay with the rest (or runs the rest itself after its own, if
/// none can be started), then runs its item: each item on its own thread.
fn spawn_relay(
    work: PreForkWork,
    count: Arc<dyn Fn() + Send + Sync>,
) -> Result<(), (std::io::Error, PreForkWork)> {
    // Shared so that a failed spawn (whose closure is dropped unrun) leaves the work here.
    let shared = Arc::new(std::sync::Mutex::new(Some(work)));
    let take = |shared: &std::sync::Mutex<Option<PreForkWork>>| {
        shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    };
    let body = {
        let shared = Arc::clone(&shared);
        move || {
            let Some(mut work) = take(&shared) else { return };
            let Some(item) = work.pop() else { return };
            let rest = if work.is_empty() {
                None
            } else {
                spawn_relay(work, Arc::clone(&count)).err().map(|(_, rest)| rest)
            };
            item.run(&*count);
            if let Some(mut rest) = rest {
                while let Some(item) = rest.pop() {
                    item.run(&*count);
                }
            }
        }
    };
    match rcu_sys::spawn_detached("rcu-fork-wake", body) {
        Ok(()) => Ok(()),
        Err(e) => Err((e, take(&shared).unwrap_or(PreForkWork::default()))),
    }
}
