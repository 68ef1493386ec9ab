//! A domain's worker thread: it drives the grace periods that `start_poll` asked for, and
//! runs deferred reclamation: every batch delay it collects queued items into a batch, waits
//! for the batch's grace period, and runs it with an `Atomic` token.
//!
//! The worker is a known-sleepable context. It leads grace periods like any caller of
//! `synchronize_rcu`; it hurries (expedited grace periods, immediate collection) while a
//! barrier waits, the domain is over budget, or it is stopping. Stopping drains everything.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcu_alloc::futex;
use rcu_alloc::BlockAllocator;
use rcu_ctx::{Context, Sleepable};

use crate::domain::{DomainRef, DomainState};
use crate::grace_period::Urgency;
use crate::reclaim::Batches;

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

    /// Starts the worker (and the allocator's refill worker) of `domain` unless running.
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
        BlockAllocator::start_refill(AllocHandle(domain.clone()), domain.name());
        let for_thread = domain.clone();
        let handle = std::thread::Builder::new()
            .name(format!("rcu-gp-{}", domain.name()))
            .spawn(move || run(&for_thread))
            .expect(
                "rcu-core: could not spawn the domain's worker thread, which runs its grace \
                 periods and callbacks (the process is at its thread limit or out of memory)",
            );
        *worker.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Records a request for grace period `seq` and wakes the worker if it sleeps. Never
    /// blocks, never allocates.
    pub(crate) fn request(&self, seq: u64) {
        // SeqCst: see `wake_if_sleeping`.
        self.requested.fetch_max(seq, Ordering::SeqCst);
        self.wake_if_sleeping();
    }

    /// Wakes the worker if it is asleep or about to sleep. Lock-free, allocation-free and
    /// async-signal-safe (a futex wake).
    pub(crate) fn wake_if_sleeping(&self) {
        // SeqCst fence: store-buffering pair with the worker's `sleeping` store and fence in
        // `idle`: either the worker's re-check sees what the caller queued before calling
        // this, or we see it sleeping and wake it.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if self.sleeping.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    fn wake(&self) {
        // SeqCst: the futex re-check in `idle` then sees the bump, or the wake reaches it.
        self.event.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.event);
    }

    /// Stops the worker, which first runs everything queued, and waits for it.
    pub(crate) fn stop(&self) {
        // SeqCst: ordered before the wake, checked by `run` on every loop.
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

impl DomainState {
    /// Wakes this domain's worker if it sleeps (see `Worker::wake_if_sleeping`).
    pub(crate) fn wake_worker(&self) {
        self.worker.wake_if_sleeping();
    }
}

/// Lets the refill worker hold the domain (and so its allocator) alive.
#[derive(Clone)]
struct AllocHandle(DomainRef);

impl core::ops::Deref for AllocHandle {
    type Target = BlockAllocator;
    fn deref(&self) -> &BlockAllocator {
        &self.0.reclaim.alloc
    }
}

fn run(domain: &DomainRef) {
    let worker = &domain.worker;
    // The worker is a sleepable context by construction; callbacks get an Atomic scope.
    let mut root = Sleepable::enter();
    // Registered, so callbacks that queue more work use a block like anyone else.
    crate::reader::ensure_registered(domain);
    let mut batches = Batches::new();
    let mut last_collect = Instant::now();
    loop {
        let stopping = worker.stopping();
        // SeqCst: see `Worker::wake_if_sleeping`.
        let wanted = worker.requested.load(Ordering::SeqCst);
        if !domain.gp.seq.is_completed(wanted) {
            domain.gp.wait_until_completed(domain, wanted, Urgency::Normal);
        }

        let reclaim = &domain.reclaim;
        let hurry = stopping || reclaim.collection_wanted() || reclaim.expediting();
        if hurry || last_collect.elapsed() >= reclaim.batch_delay() {
            last_collect = Instant::now();
            batches.push_back(domain.collect());
        }
        if let Some(oldest) = batches.front() {
            let urgency = if hurry { Urgency::Expedited } else { Urgency::Normal };
            domain.gp.wait_until_completed(domain, oldest.cookie, urgency);
        }
        {
            let atomic = root.atomic();
            while batches.front().is_some_and(|b| domain.gp.seq.is_completed(b.cookie)) {
                let batch = batches.pop_front().expect("front exists");
                domain.run_batch(batch, &atomic);
            }
        }

        if stopping {
            if batches.is_empty() && !domain.anything_staged() {
                break;
            }
            continue;
        }
        if batches.is_empty() {
            let until_collect = reclaim.batch_delay().saturating_sub(last_collect.elapsed());
            idle(domain, until_collect);
        }
    }
}

/// Sleeps until woken, or for `until_collect` if items are staged (they must be collected
/// within the batch delay), or `MAX_IDLE`.
fn idle(domain: &DomainState, until_collect: Duration) {
    let worker = &domain.worker;
    // SeqCst: see `Worker::wake_if_sleeping`.
    worker.sleeping.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let seen = worker.event.load(Ordering::SeqCst);
    // SeqCst: as above.
    let requested = worker.requested.load(Ordering::SeqCst);
    let work_waiting = !domain.gp.seq.is_completed(requested)
        || domain.reclaim.collection_wanted()
        || domain.reclaim.expediting()
        || worker.stopping();
    if !work_waiting {
        let timeout = if domain.anything_staged() { until_collect } else { MAX_IDLE };
        if !timeout.is_zero() {
            futex::wait(&worker.event, seen, Some(timeout));
        }
    }
    // Relaxed: only this thread decides on it; a waker that still sees `true` wakes us
    // needlessly, which is harmless.
    worker.sleeping.store(false, Ordering::Relaxed);
}
