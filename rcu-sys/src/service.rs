//! A background thread's lifecycle: started once, on demand (with `pthread_create`, see
//! `raw_thread`); woken through a futex event; stopped and joined, or detached; forgotten in
//! a forked child (where it does not exist). The runtime's
//! background threads, each domain's worker and each allocator's refill worker, are built
//! on it.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use crate::raw_thread::{self, RawThread};
use crate::EventCount;

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

/// The controls of one background thread.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rcu_sys::ServiceThread;
///
/// let service = Arc::new(ServiceThread::new());
/// let for_thread = service.clone();
/// assert!(service.start("example".into(), move || {
///     while !for_thread.stopping() {
///         let seen = for_thread.event();
///         // ... do the work ...
///         for_thread.sleep(seen, Duration::from_millis(10));
///     }
/// }));
/// service.wake();
/// service.stop(); // wakes it and joins it
/// ```
#[derive(Debug)]
pub struct ServiceThread {
    /// Bumped by every wake; the thread sleeps on it.
    events: EventCount,
    state: AtomicU8,
    /// The thread's `pthread_t` as a word (`RawThread::into_word`), or 0 (no valid `pthread_t`
    /// is 0). An
    /// atomic rather than a mutex: a mutex held by a thread that does not exist in a forked
    /// child would block the child.
    handle: AtomicUsize,
}

impl Default for ServiceThread {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceThread {
    /// Controls of a thread not started yet; `const`, for statics.
    pub const fn new() -> Self {
        ServiceThread {
            events: EventCount::new(),
            state: AtomicU8::new(NOT_STARTED),
            handle: AtomicUsize::new(0),
        }
    }

    /// True once started (until forgotten after a fork).
    #[inline]
    pub fn is_started(&self) -> bool {
        // Relaxed: a hint; `start` re-checks with a CAS.
        self.state.load(Ordering::Relaxed) != NOT_STARTED
    }

    /// Spawns the thread running `body`, unless it was started before. Returns whether this
    /// call started it.
    ///
    /// # Panics
    /// If `name` contains a NUL byte (before anything is started), or if the thread cannot be
    /// spawned (the process is at its thread limit or out of memory).
    #[track_caller]
    pub fn start(&self, name: String, body: impl FnOnce() + Send + 'static) -> bool {
        assert!(
            !name.contains('\0'),
            "rcu-sys: background thread name {name:?} contains a NUL byte: thread names are C \
             strings. Fix: remove the NUL byte (a domain's name is part of its threads' names; \
             Domain::try_new reports it as a ConfigError)"
        );
        // Relaxed: elects the one spawning thread; the spawn synchronizes with the thread.
        if self
            .state
            .compare_exchange(NOT_STARTED, RUNNING, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let join = raw_thread::spawn(&name, body).unwrap_or_else(|e| {
            panic!(
                "rcu-sys: could not spawn the background thread '{name}' ({e}): the process is at \
                 its thread limit or out of memory"
            )
        });
        self.put_handle(join);
        true
    }

    /// Wakes the thread. Never blocks, allocates or locks: a futex wake, async-signal-safe.
    pub fn wake(&self) {
        // The thread takes `event()` before re-checking for work (see `EventCount`).
        self.events.notify_all();
    }

    /// The thread side: the event to pass to `sleep` after re-checking for work.
    pub fn event(&self) -> u32 {
        self.events.key()
    }

    /// The thread side: sleeps while the event is still `seen`, at most `timeout` (a bound on
    /// the damage of a lost wake-up, which the protocol rules out).
    pub fn sleep(&self, seen: u32, timeout: Duration) {
        self.events.wait(seen, Some(timeout));
    }

    /// Asks the thread to stop, wakes it and waits for it to exit (if it was running).
    pub fn stop(&self) {
        if let Some(thread) = self.signal_stop() {
            thread.join();
        }
    }

    /// Marks the thread stopping and wakes it; returns its handle if it was running (and this
    /// call is the one that stopped it).
    fn signal_stop(&self) -> Option<RawThread> {
        // SeqCst: ordered before the wake; the thread checks `stopping` after each wake-up.
        if self.state.swap(STOPPING, Ordering::SeqCst) != RUNNING {
            return None;
        }
        self.wake();
        self.take_handle()
    }

    fn put_handle(&self, thread: RawThread) {
        // AcqRel: Release publishes the handle to `take_handle`; Acquire takes one left by an
        // earlier start (none in practice: a thread starts once), which is detached.
        let old = self.handle.swap(thread.into_word(), Ordering::AcqRel);
        if old != 0 {
            RawThread::from_word(old).detach();
        }
    }

    /// Takes the handle: whoever gets it joins, detaches or forgets it, once.
    fn take_handle(&self) -> Option<RawThread> {
        // AcqRel: Acquire pairs with the Release in `put_handle`.
        let raw = self.handle.swap(0, Ordering::AcqRel);
        (raw != 0).then(|| RawThread::from_word(raw))
    }

    /// Asks the thread to stop and wakes it, without waiting for it: the thread finishes on
    /// its own and its handle is detached. For callers that may be the thread itself, or may
    /// run code the thread waits for (a domain dropped from one of its own callbacks).
    pub fn request_stop(&self) {
        // Detach: the thread finishes on its own. (A `start` racing with this stores its
        // handle later; `Drop` detaches that one.)
        if let Some(thread) = self.signal_stop() {
            thread.detach();
        }
    }

    /// The thread side: true once `stop` or `request_stop` was called.
    pub fn stopping(&self) -> bool {
        // SeqCst: pairs with the swap in `signal_stop`.
        self.state.load(Ordering::SeqCst) == STOPPING
    }

    /// In a forked child the thread does not exist: forget it, so that it is started again on
    /// demand and never joined. Call single-threaded (from a fork child handler).
    ///
    /// Returns true if the thread had been started (running or stopping) in the parent.
    pub fn forget_after_fork(&self) -> bool {
        self.events.reset_after_fork();
        // Forgotten, neither joined nor detached: the thread does not exist here.
        let _ = self.take_handle();
        // Relaxed (both): the child has a single thread.
        let was = self.state.swap(NOT_STARTED, Ordering::Relaxed);
        was != NOT_STARTED
    }
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        // Detaches a thread whose handle nobody took (a `start` that raced with
        // `request_stop`); the thread itself holds what it needs.
        if let Some(thread) = self.take_handle() {
            thread.detach();
        }
    }
}
