//! A domain's worker thread: drives the grace periods that `start_poll` asked for, so that
//! polled cookies complete without anyone blocking in `synchronize_rcu`.
//!
//! The worker is a known-sleepable context: it leads grace periods like any caller of
//! `synchronize_rcu`, with normal urgency.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::domain::DomainRef;
use crate::grace_period::Urgency;
use crate::raw::futex;

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

/// Defensive bound on one idle sleep; see `grace_period::MAX_EVENT_WAIT`.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// The worker's controls, part of the domain state.
#[derive(Debug)]
pub(crate) struct Worker {
    /// The highest grace-period number requested through `start_poll`.
    requested: AtomicU64,
    /// Bumped to wake the worker; it sleeps on it.
    event: AtomicU32,
    sleeping: AtomicBool,
    state: AtomicU8,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    pub(crate) const fn new() -> Self {
        Worker {
            requested: AtomicU64::new(0),
            event: AtomicU32::new(0),
            sleeping: AtomicBool::new(false),
            state: AtomicU8::new(NOT_STARTED),
            handle: Mutex::new(None),
        }
    }

    pub(crate) fn is_started(&self) -> bool {
        // Relaxed: a hint; `start` re-checks with a CAS.
        self.state.load(Ordering::Relaxed) != NOT_STARTED
    }

    /// Starts the worker of `domain` unless it already runs.
    pub(crate) fn start(domain: DomainRef) {
        let worker = &domain.worker;
        // Relaxed: only elects the one thread that spawns; the spawn itself synchronizes
        // with the new thread.
        if worker
            .state
            .compare_exchange(NOT_STARTED, RUNNING, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        crate::process::init();
        let name = format!("rcu-gp-{}", domain.name());
        let for_thread = domain.clone();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(&for_thread))
            .expect("rcu-core: could not spawn the domain's worker thread");
        *worker.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Records a request for grace period `seq` and wakes the worker if it sleeps. Never
    /// blocks, never allocates.
    pub(crate) fn request(&self, seq: u64) {
        // SeqCst: store-buffering pair with `run`'s idle check (sleeping store, then
        // requested load): either the worker sees our request or we see it sleeping.
        self.requested.fetch_max(seq, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        // SeqCst: the futex re-check in `run` then sees the bump, or the wake reaches it.
        self.event.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.event);
    }

    /// Stops the worker and waits for it to exit.
    pub(crate) fn stop(&self) {
        // SeqCst: ordered before the wake, checked by `run` after its idle re-check.
        self.state.store(STOPPING, Ordering::SeqCst);
        self.wake();
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            // A panic in the worker was already reported by the panic hook.
            let _ = h.join();
        }
    }

    /// In a forked child the worker thread does not exist: forget it, so that it is started
    /// again on demand and never joined.
    pub(crate) fn reset_after_fork(&self) {
        if let Ok(mut h) = self.handle.try_lock() {
            core::mem::forget(h.take());
        }
        // Relaxed: the child has a single thread.
        self.sleeping.store(false, Ordering::Relaxed);
        // Relaxed: as above.
        if self.state.load(Ordering::Relaxed) == RUNNING {
            // Relaxed: as above.
            self.state.store(NOT_STARTED, Ordering::Relaxed);
        }
    }

    fn stopping(&self) -> bool {
        // SeqCst: see `stop`.
        self.state.load(Ordering::SeqCst) == STOPPING
    }
}

fn run(domain: &DomainRef) {
    let worker = &domain.worker;
    while !worker.stopping() {
        // SeqCst: see `request`.
        let wanted = worker.requested.load(Ordering::SeqCst);
        if !domain.gp.seq.is_completed(wanted) {
            domain.gp.wait_until_completed(domain, wanted, Urgency::Normal);
            continue;
        }
        // SeqCst: see `request`.
        worker.sleeping.store(true, Ordering::SeqCst);
        let seen = worker.event.load(Ordering::SeqCst);
        if domain.gp.seq.is_completed(worker.requested.load(Ordering::SeqCst)) && !worker.stopping()
        {
            futex::wait(&worker.event, seen, Some(MAX_IDLE));
        }
        // Relaxed: only this thread reads it as a decision; requesters over-waking is harmless.
        worker.sleeping.store(false, Ordering::Relaxed);
    }
}
