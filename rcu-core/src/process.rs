//! Process-wide setup and `fork()` support.
//!
//! [`init`] runs once before the first reader registers or grace period runs: it decides the
//! barrier mode (`raw::barrier`) and installs a `pthread_atfork` child handler. In the child
//! only the forking thread exists, so the handler, running single-threaded, makes every
//! domain consistent again: other threads' reader slots are ended and freed, no grace-period
//! leader or sleeper is left, the budget is recounted without the batches the parent's worker
//! held, the process re-registers with membarrier, and the workers that ran in the parent are
//! started again (an `Atomic` caller could not start them). A prepare handler holds the
//! runtime's locks across the fork, so the child never finds one held by a thread that does
//! not exist there.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Once};

use crate::domain::{DomainRef, DomainState, GLOBAL_STATE};
use crate::raw::barrier;
use crate::stall::StallSink;
use crate::worker::Worker;

/// One entry of the list of live non-global domains; entries are reused, never freed.
struct Tracked {
    state: AtomicPtr<DomainState>,
    next: *const Tracked,
}

/// Head of the list. Append-only with lock-free push, so the fork handler never meets a
/// lock held by a thread that does not exist in the child.
static TRACKED: AtomicPtr<Tracked> = AtomicPtr::new(ptr::null_mut());
static INIT: Once = Once::new();

/// Idempotent process-wide setup; cheap after the first call.
pub(crate) fn init() {
    barrier::init();
    INIT.call_once(|| {
        // The global domain's block pool is a shrinker for the life of the process.
        core::mem::forget(rcu_alloc::register_shrinker(std::sync::Arc::new(
            crate::domain::GlobalPoolShrinker,
        )));
        // SAFETY: the handlers are `extern "C" fn()`s that live forever.
        let rc = unsafe {
            libc::pthread_atfork(
                Some(prepare_fork),
                Some(parent_after_fork),
                Some(child_after_fork),
            )
        };
        assert!(
            rc == 0,
            "rcu-core: pthread_atfork failed ({rc}, out of memory): the runtime needs its fork \
             handler to keep working in a forked child"
        );
    });
}

fn tracked() -> impl Iterator<Item = &'static Tracked> {
    // Acquire: pairs with the Release CAS in `track` that published the entry.
    let mut cur: *const Tracked = TRACKED.load(Ordering::Acquire);
    core::iter::from_fn(move || {
        // SAFETY: entries are leaked on creation and never freed.
        let t = unsafe { cur.as_ref()? };
        cur = t.next;
        Some(t)
    })
}

/// Adds a new domain's state to the list the fork handler walks.
pub(crate) fn track(state: &Arc<DomainState>) {
    init();
    let raw = Arc::as_ptr(state) as *mut DomainState;
    for t in tracked() {
        // AcqRel: claims a free entry; the fork handler reads it single-threaded.
        if t.state
            .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
    // Relaxed: published by the Release CAS below.
    let mut head = TRACKED.load(Ordering::Relaxed);
    let entry = Box::leak(Box::new(Tracked { state: AtomicPtr::new(raw), next: head }));
    // Release: publishes the entry to `tracked`.
    while let Err(actual) =
        TRACKED.compare_exchange_weak(head, entry, Ordering::Release, Ordering::Relaxed)
    {
        head = actual;
        entry.next = head;
    }
}

/// Removes a domain state (being dropped) from the list; a no-op for untracked states.
pub(crate) fn untrack(state: &DomainState) {
    let raw = state as *const DomainState as *mut DomainState;
    for t in tracked() {
        // Release: the entry may be reused once free.
        if t.state
            .compare_exchange(raw, ptr::null_mut(), Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

impl DomainState {
    /// Single-threaded repair in a forked child; see the module docs.
    fn reset_after_fork(&self) {
        self.readers.reset_after_fork(|slot| self.adopt(slot));
        self.recount_budget_after_fork();
        self.reclaim.alloc.reset_after_fork();
        self.gp.reset_after_fork();
        self.worker.reset_after_fork();
    }
}

/// Restarts, in a forked child, a worker that ran in the parent: an `Atomic` caller cannot
/// start one (it may not allocate), so a child whose only requests are `Atomic` ones
/// (`start_poll`, `kvfree_rcu` under a spinlock) would otherwise never see them served. A
/// dropped domain's worker is told to stop again, so it serves what is left and exits.
fn restart_worker(domain: DomainRef, was_running: bool) {
    if !was_running {
        return;
    }
    let live = domain.is_live();
    Worker::start(domain.clone());
    if !live {
        domain.worker.request_stop();
    }
}

/// Before `fork()`: holds the runtime's locks, so that no other thread is inside one of
/// their critical sections when the process is copied.
extern "C" fn prepare_fork() {
    StallSink::hold_for_fork();
    rcu_alloc::hold_registry_for_fork();
}

/// After `fork()`, in the parent: releases what `prepare_fork` took.
extern "C" fn parent_after_fork() {
    // SAFETY: (1) `prepare_fork` took both on this thread just before the fork.
    unsafe {
        rcu_alloc::release_registry_after_fork();
        StallSink::release_after_fork();
    }
}

extern "C" fn child_after_fork() {
    // SAFETY: (1) the thread this child was forked from took both in `prepare_fork`.
    unsafe {
        rcu_alloc::release_registry_after_fork();
        StallSink::release_after_fork();
    }
    barrier::reregister_after_fork();
    let global_ran = GLOBAL_STATE.worker.is_started();
    GLOBAL_STATE.reset_after_fork();
    let mut restart = vec![(DomainRef::Global(&GLOBAL_STATE), global_ran)];
    for t in tracked() {
        // Relaxed: the child has a single thread.
        let state = t.state.load(Ordering::Relaxed);
        // SAFETY: a non-null entry is a live domain state: `untrack` clears it first thing in
        // the state's `Drop`, before any field is freed, and no other thread exists to free
        // it now.
        if let Some(state) = unsafe { state.as_ref() } {
            let ran = state.worker.is_started();
            state.reset_after_fork();
            // SAFETY: `state` came from `Arc::as_ptr` of a live Arc (tracked while alive):
            // taking one more strong reference to it is sound.
            let arc = unsafe {
                Arc::increment_strong_count(state);
                Arc::from_raw(state)
            };
            restart.push((DomainRef::Owned(arc), ran));
        }
    }
    // Only once every domain is consistent: the new workers start at once.
    for (domain, ran) in restart {
        restart_worker(domain, ran);
    }
}
