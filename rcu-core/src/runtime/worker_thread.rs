//! A domain's worker thread: it drives the grace periods that `start_poll` asked for, and
//! runs deferred reclamation: it collects queued items into a batch (sealed blocks and
//! fallback items as soon as they wait, blocks being filled every batch delay), waits for
//! the batch's grace period, and runs it with an `Atomic` token.
//!
//! The worker is a known-sleepable context. It leads grace periods like any caller of
//! `synchronize_rcu`; it hurries (expedited grace periods, immediate collection) while a
//! barrier waits or the domain is over budget.
//!
//! Dropping a `Domain` only asks its worker to stop: the worker keeps serving while anything
//! else holds the domain's state (cells that still retire values; thread registrations hold
//! it only weakly), then runs what is left, exits and frees the state itself. So a `Domain`
//! may be dropped anywhere, in one of its own callbacks or in a value freed inline, without
//! waiting for a thread that waits for the caller.

use core::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rcu_alloc::BlockAllocator;
use rcu_ctx::{Context, MaySleep, Sleepable};

use crate::gp::grace_period::Urgency;
use crate::queue::queues::Batches;
use crate::state::{DomainRef, DomainState};

/// How long requested grace periods, or a backlog of sealed blocks, gather before the worker
/// runs a grace period for them (see `run`).
const GATHER: Duration = Duration::from_micros(50);

/// How long `rcu_core::init` waits for a worker to start (see `wait_until_looping`).
const START_WAIT: Duration = Duration::from_secs(1);

/// Defensive bound on one idle sleep; see `grace_period::MAX_EVENT_WAIT`.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How often a stopping worker checks whether it holds the last reference to its domain's
/// state: nothing wakes it when the last cell goes, so this bounds how long the state and
/// the thread outlive their last user.
const STOPPING_IDLE: Duration = Duration::from_millis(50);

/// Starts the worker (and the allocator's refill worker) of `domain` unless running.
/// Caller: after `process::init`.
pub(crate) fn start(domain: DomainRef) {
    if domain.worker.is_started() {
        return;
    }
    let _starting = Starting::mark(&domain);
    start_refill(&domain);
    let for_thread = ThreadRef::new(&domain);
    domain.worker.thread.start(format!("rcu-gp-{}", domain.name()), move || {
        let state = for_thread;
        // Declared after `state`, so dropped before it: the mark is gone before this thread
        // gives up its reference (possibly the state's last) and runs its thread-local
        // destructors, where a fork must not take a freed state, or one allocated at its
        // address since, for this thread's domain (red team, round 2).
        let _mark = WorkerMark::set(&state.0);
        run(&state.0);
    });
}

/// Starts the refill worker of `domain`'s allocator unless it runs.
pub(crate) fn start_refill(domain: &DomainRef) {
    BlockAllocator::start_refill(AllocHandle(ThreadRef::new(domain)), domain.name());
}

thread_local! {
    /// On a domain's worker thread, while it holds its reference, that domain's state; null
    /// elsewhere (`WorkerMark`).
    static WORKER_OF: Cell<*const DomainState> = const { Cell::new(core::ptr::null()) };
    /// The domain whose runtime threads this thread is starting (`start`), null otherwise:
    /// meanwhile `ThreadRef`s counted in its `runtime_refs` are on this thread's stack.
    static STARTING: Cell<*const DomainState> = const { Cell::new(core::ptr::null()) };
}

/// The domain whose worker the calling thread is, if any (a fork from one of its callbacks:
/// that worker goes on in the child).
pub(crate) fn worker_of_this_thread() -> *const DomainState {
    WORKER_OF.with(Cell::get)
}

/// The domain whose runtime threads the calling thread is starting, if any (a fork from a
/// signal handler that interrupted `start`).
pub(crate) fn starting_on_this_thread() -> *const DomainState {
    STARTING.with(Cell::get)
}

/// Marks the calling thread as `domain`'s worker (`WORKER_OF`), until dropped.
struct WorkerMark;

impl WorkerMark {
    fn set(domain: &DomainState) -> Self {
        WORKER_OF.with(|w| w.set(domain));
        WorkerMark
    }
}

impl Drop for WorkerMark {
    fn drop(&mut self) {
        WORKER_OF.with(|w| w.set(core::ptr::null()));
    }
}

/// Marks the calling thread as starting a domain's threads, until dropped.
struct Starting(*const DomainState);

impl Starting {
    fn mark(domain: &DomainState) -> Self {
        Starting(STARTING.with(|s| s.replace(domain)))
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        STARTING.with(|s| s.set(self.0));
    }
}

/// A reference to a domain's state held by one of its runtime threads (the worker, the
/// refill worker), counted in `DomainState::runtime_refs` while it lives, so that a forked
/// child, where those threads do not exist, can release the references they held
/// (`fork::child_after_fork`). Counted after the reference exists and uncounted before it
/// goes, so the count never exceeds the references really held.
struct ThreadRef(DomainRef);

impl ThreadRef {
    fn new(domain: &DomainRef) -> Self {
        let held = domain.clone();
        // Relaxed: read only by a fork child's handler, single-threaded (the fork copies
        // this thread's own last store, or an earlier one: never a count above the truth).
        held.runtime_refs.fetch_add(1, Ordering::Relaxed);
        ThreadRef(held)
    }
}

impl Clone for ThreadRef {
    fn clone(&self) -> Self {
        ThreadRef::new(&self.0)
    }
}

impl Drop for ThreadRef {
    fn drop(&mut self) {
        // Relaxed: see `new`; before the reference itself goes (the field drops after this).
        self.0.runtime_refs.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lets the refill worker hold the domain (and so its allocator) alive.
#[derive(Clone)]
struct AllocHandle(ThreadRef);

impl core::ops::Deref for AllocHandle {
    type Target = BlockAllocator;
    fn deref(&self) -> &BlockAllocator {
        &self.0 .0.queues.alloc
    }
}

fn run(domain: &DomainRef) {
    let worker = &domain.worker;
    // The worker is a sleepable context by construction; callbacks get an Atomic scope.
    let mut root = Sleepable::enter();
    // Registered, so callbacks that queue more work use a block like anyone else.
    crate::state::registration::register(domain);
    worker.mark_looping();
    // Wakes `rcu_core::init`, which waits for this (waiters of the event re-check).
    domain.signal_drained();
    let mut batches = Batches::new();
    let mut last_collect = Instant::now();
    loop {
        // Every scope the worker opens in an iteration closes within it: what user code run
        // meanwhile left open is found, and undone, at its end.
        let user_code = UserCode::begin();
        let stopping = worker.stopping();
        // SeqCst: see `Worker::wake_if_sleeping`.
        if !domain.gp.seq.is_completed(worker.requested.load(Ordering::SeqCst)) {
            // Requests (`start_poll` left unpolled, async futures) gather first, so that one
            // grace period serves every request made meanwhile: served at once, when parked
            // blocks still asked for theirs, a `Sleepable` flood ran one grace period per
            // block, each a membarrier interrupting the producer's CPU (rcuscale W5: 16
            // Mops/s; 25-26 with a 20-100 us gathering). Who waits for a grace period leads
            // it or polls it forward; only requests served by the worker alone pay this.
            std::thread::sleep(GATHER);
            // SeqCst: as above.
            let wanted = worker.requested.load(Ordering::SeqCst);
            domain.gp.wait_until_completed(&**domain, wanted, Urgency::Normal);
        }

        let queues = &domain.queues;
        // A dropped domain hurries what is staged: its memory should come back promptly.
        let hurry = (stopping && domain.anything_staged())
            || queues.collection_wanted()
            || queues.expediting();
        let backlog = queues.has_backlog();
        if hurry || last_collect.elapsed() >= queues.batch_delay() {
            last_collect = Instant::now();
            batches.push_back(domain.collect());
        } else if backlog {
            // Sealed blocks or fallback items wait: a backlog is collected without waiting
            // for the batch delay (which is for blocks still being filled), so a
            // `NoReclaim`/`Atomic` flood is freed at the pace of grace periods. It first
            // gathers, as requests do above: collected at once, a flood ran one expedited
            // grace period per block (rcuscale W5 `NoReclaim`: 16-17 k grace periods for 5 M
            // frees, 15 Mops/s; gathered, 1.0-1.2 k and 23-25 Mops/s, peak pending memory
            // 0.7-2.4 MiB against 1.9-6.2).
            std::thread::sleep(GATHER);
            batches.push_back(domain.collect_lists());
        }
        if let Some(oldest) = batches.front() {
            // Published, so that producers and pollers can move it forward while this thread
            // waits (`help_grace_period`). SeqCst: as every access to `requested`.
            worker.requested.fetch_max(oldest.cookie, Ordering::SeqCst);
            // A backlog grows while its grace period waits (its producers may not wait), so
            // a reader that holds it up is re-checked every 50 us, not every 2 ms.
            let urgency = if hurry || backlog { Urgency::Expedited } else { Urgency::Normal };
            domain.gp.wait_until_completed(&**domain, oldest.cookie, urgency);
        }
        {
            // Opening the scope may pay this thread's own debts (`rcu_ctx::owed`: blocks its
            // callbacks sealed on the global domain), which runs callbacks too: `user_code`
            // covers the whole iteration.
            let atomic = root.atomic();
            while batches.front().is_some_and(|b| domain.gp.seq.is_completed(b.cookie)) {
                let batch = batches.pop_front().expect("front exists");
                domain.run_batch(batch, &atomic);
            }
        }
        // An async barrier completes once the deallocations given back by its batches are
        // done: the worker finishes them, so that polling never waits.
        if domain.async_barrier_needs_finishing() {
            domain.finish_given_back();
        }
        // Outside the atomic scope, leading nothing: wakers may lock or allocate. In a
        // no-reclaim scope: a waker that waited for this worker's progress (an `rcu_barrier`
        // through a root it took) would wait for itself for ever; inside the scope, taking
        // a root (`Sleepable::enter()` or `NoReclaimRoot::enter()`) and every reclaiming call
        // panic (contained) instead. No user code the worker runs can thus take a root, which
        // is what lets `UserCode` judge reachability by the count of live roots
        // (red5_waker_root_swap.rs: when a waker could take a `NoReclaimRoot`, one kept and
        // one leaked left the count unchanged, and a live guard's section was ended).
        {
            let _no_reclaim = root.no_reclaim();
            domain.wake_async_waiters();
        }
        user_code.end(domain);

        if stopping && batches.is_empty() && !domain.anything_staged() {
            // The handle is gone; this thread's own registration holds the state too.
            crate::state::registration::unregister(domain);
            if holds_the_last_reference(domain) {
                break;
            }
        }
        if batches.is_empty() {
            let until_collect = queues.batch_delay().saturating_sub(last_collect.elapsed());
            idle(domain, until_collect);
        }
    }
}

/// The worker's context state at the start of an iteration of its loop, to undo what user
/// code run in it (callbacks, wakers, parked blocks paid at a scope's opening) forgot. A callback that forgot a scope or a read guard opened from the `&Atomic`
/// it was lent (`mem::forget(ctx.nested())`, `mem::forget(domain.read_lock_nested(ctx))`),
/// or a waker that forgot one opened from a root it took and dropped, left this thread's
/// depths raised, or a section open that holds every later grace period of the domain, which
/// the worker itself waits for: it would wedge the worker for good. Nothing can reach through
/// what they forgot (it borrowed a token whose borrow ended with the call), unless they also
/// leaked a root (`live_roots` grew: then a guard may be `'static`, and stays). Undone: the
/// worker's open sections, in every domain it is registered with, are ended (it is in none
/// while it runs user code) and its depths set back. Reported, and each ended section counted
/// in its domain's `leaked_read_sections`.
struct UserCode {
    depths: rcu_ctx::thread_state::Snapshot,
    roots: u32,
}

impl UserCode {
    fn begin() -> Self {
        UserCode {
            depths: rcu_ctx::thread_state::snapshot(),
            roots: rcu_ctx::thread_state::live_roots(),
        }
    }

    /// After the user code ran.
    fn end(self, domain: &DomainState) {
        // A sleepable section changes no depth (its token keeps its parent's kind): the
        // worker's slots say whether user code forgot one (red team of issue 25: a callback
        // that forgot a guard of its own sleepable domain wedged that domain's worker).
        if rcu_ctx::thread_state::snapshot() != self.depths
            || crate::state::registration::any_open_sleepable_section()
        {
            self.undo(domain);
        }
    }

    #[cold]
    fn undo(self, domain: &DomainState) {
        let what = "user code the worker ran (a callback, including one run when a scope \
                    opening paid the worker's debts, or a waker)";
        let after = rcu_ctx::thread_state::snapshot();
        if rcu_ctx::thread_state::live_roots() != self.roots {
            rcu_sys::stderr::report_line(&format!(
                "rcu-core: {what} on the worker of domain '{}' left scopes open (depths before \
                 {:?}, after {after:?}) and leaked a root, so they may still be \
                 reached: the worker keeps them. Rule: drop every scope, guard and root you \
                 open; never leak one",
                domain.name(),
                self.depths
            ));
            return;
        }
        let ended = if self.depths.read_depth == 0 {
            crate::state::registration::end_forgotten_sections()
        } else {
            0
        };
        // SAFETY: (1) `self.depths` was taken on this thread at the start of the iteration;
        // every scope the worker itself opened since has closed, so every scope still counted
        // was opened by user code from a token lent for its call or from a root it took and
        // did not leak (the root count is back where it was), and every borrow it held has
        // ended: forgotten, unreachable.
        unsafe { rcu_ctx::thread_state::restore(self.depths) };
        rcu_sys::stderr::report_line(&format!(
            "rcu-core: {what} on the worker of domain '{}' forgot scopes or read guards it \
             opened (depths before {:?}, after {after:?}; {ended} read section(s) ended); the \
             worker undid them. Rule: drop every scope and guard you open; never mem::forget \
             one",
            domain.name(),
            self.depths
        ));
    }
}

/// `rcu_core::init`: waits until the worker of `domain` runs its loop, so that the first
/// frees do not pile up while its thread waits for a CPU (rcuscale W5 saw 3 MiB queued
/// before the worker's first collection). At most `START_WAIT`: a worker that cannot get a
/// CPU that long starts on its own.
pub(crate) fn wait_until_looping(domain: &DomainState) {
    let deadline = Instant::now() + START_WAIT;
    loop {
        // The key before the condition (see `rcu_sys::EventCount`).
        let seen = domain.queues.drained.key();
        if domain.worker.is_looping() || Instant::now() >= deadline {
            return;
        }
        domain.sleep_until_drained(seen);
    }
}

/// True when only the worker itself holds its domain's state: nobody can queue work or read
/// any more, and what was queued has run.
fn holds_the_last_reference(domain: &DomainRef) -> bool {
    match domain {
        DomainRef::Global(_) => false,
        DomainRef::Owned(state) => std::sync::Arc::strong_count(state) == 1,
    }
}

/// Sleeps until woken, or for `until_collect` if items are staged (they must be collected
/// within the batch delay), or `MAX_IDLE` (`STOPPING_IDLE` once stopping).
fn idle(domain: &DomainState, until_collect: Duration) {
    let worker = &domain.worker;
    let mut timed = domain.anything_staged();
    loop {
        worker.announce_sleep(timed);
        let seen = worker.thread.event();
        // SeqCst: see `Worker::wake_if`.
        let requested = worker.requested.load(Ordering::SeqCst);
        let work_waiting = !domain.gp.seq.is_completed(requested)
            || domain.queues.collection_wanted()
            || domain.queues.expediting()
            || domain.queues.has_backlog()
            || domain.async_work_waiting();
        if work_waiting {
            break;
        }
        let staged = domain.anything_staged();
        if timed && !staged {
            // Announced a timed sleep, but what bounded it is gone: a block staged from now
            // on must wake us (`wake_if_deep`). Announce a deep sleep and re-check.
            timed = false;
            continue;
        }
        let idle = if worker.stopping() { STOPPING_IDLE } else { MAX_IDLE };
        let timeout = if staged { until_collect.min(idle) } else { idle };
        if !timeout.is_zero() {
            worker.thread.sleep(seen, timeout);
        }
        break;
    }
    worker.announce_awake();
}
