//! `fork()` support. Before the fork, the prepare handler holds the runtime's locks, so the
//! child never finds one held by a thread that does not exist there. In the child only the
//! forking thread exists, so the child handler, running single-threaded, makes every domain
//! consistent again: other threads' reader slots are ended and freed, no grace-period leader
//! or sleeper is left, the budget is recounted without the batches the parent's worker held,
//! the process re-registers with membarrier, and the workers that ran in the parent are
//! started again (an `Atomic` caller could not start them).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::gp::stall::StallSink;
use crate::raw::barrier;
use crate::state::{DomainRef, DomainState, GLOBAL_STATE};

impl DomainState {
    /// Single-threaded repair in a forked child; see the module docs. `worker_here`: the
    /// forking thread is this domain's worker (a fork from one of its callbacks), which goes
    /// on in the child with its own loop, its batches and its registration: its worker is
    /// neither forgotten nor restarted, and what it holds is not lost.
    fn reset_after_fork(&self, worker_here: bool) {
        self.readers.reset_after_fork(|slot| self.adopt(slot));
        if !worker_here {
            self.recount_budget_after_fork();
        }
        self.queues.drained.reset_after_fork();
        self.queues.alloc.reset_after_fork();
        self.gp.reset_after_fork();
        self.counters.reset_after_fork();
        if !worker_here {
            self.worker.reset_after_fork();
            self.queues.collect_again_after_fork();
        }
        self.async_waiters.after_fork();
    }

    /// The references to this state that runtime threads of the parent held and that nobody
    /// in the child can drop, to be released once the restarted threads hold their own (see
    /// `worker_thread::ThreadRef`). None while the forking thread itself is starting this
    /// domain's threads (a fork from a signal handler that interrupted `start`): the
    /// references it holds on its stack are counted too, and the state is leaked instead.
    fn dead_refs_after_fork(&self, worker_here: bool, starting_here: bool) -> usize {
        if starting_here {
            return 0;
        }
        // The forking worker's own reference is alive in the child.
        let alive = usize::from(worker_here);
        // Relaxed: the child has a single thread.
        let counted = self.runtime_refs.load(Ordering::Relaxed);
        // Relaxed: as above; the restarted threads count theirs from here.
        self.runtime_refs.store(counted.min(alive), Ordering::Relaxed);
        counted.saturating_sub(alive)
    }
}

/// Restarts, in a forked child, the threads of a domain that ran in the parent: an `Atomic`
/// caller cannot start them (it may not allocate), so a child whose only requests are
/// `Atomic` ones (`start_poll`, `kvfree_rcu` under a spinlock) would otherwise never see them
/// served. A dropped domain's threads are told to stop again, so that its worker serves what
/// is left and exits. If the forking thread is the domain's worker, only the refill worker
/// is restarted.
fn restart_threads(domain: &DomainRef, was_running: bool, worker_here: bool) {
    if !was_running {
        return;
    }
    let live = domain.is_live();
    if worker_here {
        crate::runtime::worker_thread::start_refill(domain);
    } else {
        crate::runtime::worker_thread::start(domain.clone());
    }
    if !live {
        domain.worker.request_stop();
        domain.queues.alloc.request_stop_refill();
    }
}

/// Before `fork()`: holds the runtime's locks, so that no other thread is inside one of
/// their critical sections when the process is copied.
pub(crate) extern "C" fn prepare_fork() {
    StallSink::hold_for_fork();
    rcu_alloc::hold_registry_for_fork();
}

/// After `fork()`, in the parent: releases what `prepare_fork` took.
pub(crate) extern "C" fn parent_after_fork() {
    // SAFETY: (1) `prepare_fork` took both on this thread just before the fork.
    unsafe {
        rcu_alloc::release_registry_after_fork();
        StallSink::release_after_fork();
    }
}

pub(crate) extern "C" fn child_after_fork() {
    // First, before anything here waits: the parent's sleepers do not exist in the child
    // (the park backend's table would keep their slots; a no-op on the futex backend).
    // SAFETY: (1) a fork child handler runs on the child's only thread, which is not waiting.
    unsafe { rcu_sys::futex::reset_after_fork() };
    // SAFETY: (1) the thread this child was forked from took both in `prepare_fork`.
    unsafe {
        rcu_alloc::release_registry_after_fork();
        StallSink::release_after_fork();
    }
    crate::state::fork_epoch::begin_after_fork();
    barrier::reregister_after_fork();
    let worker_here = crate::runtime::worker_thread::worker_of_this_thread();
    let starting_here = crate::runtime::worker_thread::starting_on_this_thread();
    let global_ran = GLOBAL_STATE.worker.is_started();
    let global_worker_here = core::ptr::eq(worker_here, &GLOBAL_STATE);
    GLOBAL_STATE.reset_after_fork(global_worker_here);
    let mut restart = vec![(DomainRef::Global(&GLOBAL_STATE), global_ran, global_worker_here, 0)];
    for state in crate::state::tracking::tracked() {
        let state = state.cast::<DomainState>();
        // SAFETY: a tracked pointer is a domain state whose fields are all intact
        // (`Domain::try_new` tracks its `Arc`'s pointer; `untrack` clears it first thing in
        // the state's `Drop`, before any field is freed), and no other thread exists to free
        // it now. The probe is never dropped: it takes no reference.
        let probe = core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(state) });
        if Arc::strong_count(&probe) == 0 {
            // Its last reference was being dropped at the fork, on a thread that does not
            // exist here: the state is leaked in the child, never brought back.
            continue;
        }
        let here = core::ptr::eq(worker_here, state);
        let ran = probe.worker.is_started();
        probe.reset_after_fork(here);
        // The references the parent's worker and refill threads held: those threads do not
        // exist here, so they are released below, once the restarted threads hold their
        // own; else a dropped domain's restarted worker would never find itself holding
        // the last reference (issue 21, defect 5).
        let dead_refs = probe.dead_refs_after_fork(here, core::ptr::eq(starting_here, state));
        // SAFETY: the state's strong count is not zero (checked above), so taking one more
        // strong reference to it is sound.
        let arc = unsafe {
            Arc::increment_strong_count(state);
            Arc::from_raw(state)
        };
        restart.push((DomainRef::Owned(arc), ran, here, dead_refs));
    }
    // Only once every domain is consistent: the new threads start at once.
    for (domain, ran, here, dead_refs) in restart {
        restart_threads(&domain, ran, here);
        if let DomainRef::Owned(arc) = &domain {
            for _ in 0..dead_refs {
                // SAFETY: one of the references the parent's runtime threads held (counted in
                // `runtime_refs` only while held, and not one alive here: see
                // `dead_refs_after_fork`), which nobody in the child can drop; `arc` keeps
                // the count above zero meanwhile.
                unsafe { Arc::decrement_strong_count(Arc::as_ptr(arc)) };
            }
        }
    }
}
