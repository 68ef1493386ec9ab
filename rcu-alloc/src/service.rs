//! A background thread's lifecycle: started once, on demand; woken through a futex event;
//! stopped and joined; forgotten in a forked child (where it does not exist). The runtime's
//! background threads, each domain's worker and each allocator's refill worker, are built
//! on it.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::futex;

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

/// Spawns `body` on a thread that starts with every signal blocked (a thread inherits its
/// creator's mask): the process's signal handlers never run on a runtime thread, where they
/// could interrupt the runtime's own allocations (DESIGN §5.1; liburcu's threads do the same).
fn spawn_with_signals_blocked(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    struct RestoreMask(libc::sigset_t);
    impl Drop for RestoreMask {
        fn drop(&mut self) {
            // SAFETY: restores the mask saved when this guard was made (also on unwind).
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, core::ptr::null_mut()) };
        }
    }
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut all: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: both are valid sigset_t; pthread_sigmask only changes this thread's mask,
    // which `_restore` puts back before this function returns or unwinds.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let _restore = RestoreMask(old);
    std::thread::Builder::new().name(name.to_owned()).spawn(body)
}

/// The controls of one background thread.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rcu_alloc::ServiceThread;
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
    event: AtomicU32,
    state: AtomicU8,
    /// The thread's `JoinHandle`, boxed, or null. An atomic pointer rather than a mutex: a
    /// mutex held by a thread that does not exist in a forked child would block the child.
    handle: AtomicPtr<JoinHandle<()>>,
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
            event: AtomicU32::new(0),
            state: AtomicU8::new(NOT_STARTED),
            handle: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// True once started (until forgotten after a fork).
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
            "rcu-alloc: background thread name {name:?} contains a NUL byte: thread names are C \
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
        let join = spawn_with_signals_blocked(&name, body).unwrap_or_else(|e| {
            panic!(
                "rcu: could not spawn the background thread '{name}' ({e}): the process is at \
                 its thread limit or out of memory"
            )
        });
        self.put_handle(join);
        true
    }

    /// Wakes the thread. Never blocks, allocates or locks: a futex wake, async-signal-safe.
    pub fn wake(&self) {
        // SeqCst: the thread reads the event (`event`) before re-checking for work and sleeps
        // only while it is unchanged: either it sees our bump or the futex wake reaches it.
        self.event.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.event);
    }

    /// The thread side: the event to pass to `sleep` after re-checking for work.
    pub fn event(&self) -> u32 {
        // SeqCst: see `wake`.
        self.event.load(Ordering::SeqCst)
    }

    /// The thread side: sleeps while the event is still `seen`, at most `timeout` (a bound on
    /// the damage of a lost wake-up, which the protocol rules out).
    pub fn sleep(&self, seen: u32, timeout: Duration) {
        futex::wait(&self.event, seen, Some(timeout));
    }

    /// Asks the thread to stop, wakes it and waits for it to exit (if it was running).
    pub fn stop(&self) {
        // SeqCst: ordered before the wake; the thread checks `stopping` after each wake-up.
        if self.state.swap(STOPPING, Ordering::SeqCst) != RUNNING {
            return;
        }
        self.wake();
        if let Some(h) = self.take_handle() {
            // A panic on the thread was already reported by the panic hook.
            let _ = h.join();
        }
    }

    fn put_handle(&self, join: JoinHandle<()>) {
        let boxed = Box::into_raw(Box::new(join));
        // AcqRel: Release publishes the box to `take_handle`; Acquire takes ownership of a
        // box left by an earlier start (none in practice: a thread starts once).
        let old = self.handle.swap(boxed, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: every non-null value stored came from Box::into_raw above, and the swap
            // made it ours. Dropping a JoinHandle detaches the thread.
            drop(unsafe { Box::from_raw(old) });
        }
    }

    fn take_handle(&self) -> Option<JoinHandle<()>> {
        // AcqRel: Acquire pairs with the Release in `put_handle`.
        let raw = self.handle.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: as in `put_handle`: a box from Box::into_raw, now ours.
        (!raw.is_null()).then(|| *unsafe { Box::from_raw(raw) })
    }

    /// Asks the thread to stop and wakes it, without waiting for it: the thread finishes on
    /// its own and its handle is detached. For callers that may be the thread itself, or may
    /// run code the thread waits for (a domain dropped from one of its own callbacks).
    pub fn request_stop(&self) {
        // SeqCst: as in `stop`.
        if self.state.swap(STOPPING, Ordering::SeqCst) != RUNNING {
            return;
        }
        self.wake();
        // Detach: dropping a JoinHandle never waits. (A `start` racing with this stores its
        // handle later; `Drop` detaches that one.)
        drop(self.take_handle());
    }

    /// The thread side: true once `stop` or `request_stop` was called.
    pub fn stopping(&self) -> bool {
        // SeqCst: see `stop`.
        self.state.load(Ordering::SeqCst) == STOPPING
    }

    /// In a forked child the thread does not exist: forget it, so that it is started again on
    /// demand and never joined. Call single-threaded (from a fork child handler).
    ///
    /// Returns true if the thread had been started (running or stopping) in the parent.
    pub fn forget_after_fork(&self) -> bool {
        // Leaked, never dropped: detaching a thread that does not exist is undefined.
        core::mem::forget(self.take_handle());
        // Relaxed (both): the child has a single thread.
        let was = self.state.swap(NOT_STARTED, Ordering::Relaxed);
        was != NOT_STARTED
    }
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        // Detaches a thread whose handle nobody took (a `start` that raced with
        // `request_stop`); the thread itself holds what it needs.
        drop(self.take_handle());
    }
}
