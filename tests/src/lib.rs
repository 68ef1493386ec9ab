//! Shared code of the test package: helpers for the integration tests, and the rcutorture
//! stress tester (a library, so that `cargo test` runs short configurations in-process and
//! the binary stays a thin CLI).

#[cfg(not(loom))]
pub mod quiet;
#[cfg(not(loom))]
pub mod torture;

pub mod drop_log {
    //! Drop tracking for the deferred-reclamation tests: every tracked object has an id and a
    //! state in a shared log, so a test can tell exactly which objects were freed, whether any
    //! was freed twice, and whether one was freed while a reader still held it.
    //!
    //! Everything here is lock-free and allocation-free after [`DropLog::new`], so tracked
    //! objects may be dropped on any thread (RCU workers) and created from pre-sized logs.

    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    const UNUSED: u8 = 0;
    const LIVE: u8 = 1;
    const FREED: u8 = 2;

    /// The states of up to `capacity` tracked objects.
    #[derive(Debug)]
    pub struct DropLog {
        states: Box<[AtomicU8]>,
        next: AtomicUsize,
        freed: AtomicUsize,
        double_frees: AtomicUsize,
        bogus_frees: AtomicUsize,
    }

    /// An object whose drop is recorded in a [`DropLog`].
    #[derive(Debug)]
    pub struct Tracked {
        id: usize,
        log: &'static DropLog,
    }

    impl DropLog {
        /// A log for `capacity` objects. Leaked: objects may outlive any test scope (they are
        /// dropped on RCU worker threads) and hold a `&'static` to it.
        pub fn new(capacity: usize) -> &'static DropLog {
            let states = (0..capacity).map(|_| AtomicU8::new(UNUSED)).collect();
            Box::leak(Box::new(DropLog {
                states,
                next: AtomicUsize::new(0),
                freed: AtomicUsize::new(0),
                double_frees: AtomicUsize::new(0),
                bogus_frees: AtomicUsize::new(0),
            }))
        }

        /// A new live object with the next id.
        ///
        /// # Panics
        /// When the log is full.
        pub fn track(&'static self) -> Tracked {
            // Relaxed: a unique id is all that is needed.
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            assert!(id < self.states.len(), "DropLog of {} objects is full", self.states.len());
            // Relaxed: the object is handed to other threads through the RCU API, which
            // orders this store before anything they do with it.
            self.states[id].store(LIVE, Ordering::Relaxed);
            Tracked { id, log: self }
        }

        /// Objects created so far.
        pub fn allocated(&self) -> usize {
            // Relaxed: a count read after the test synchronized with the creators.
            self.next.load(Ordering::Relaxed).min(self.states.len())
        }

        /// Objects freed (once) so far.
        pub fn freed(&self) -> usize {
            // SeqCst: read by checks racing with frees; the strongest order keeps them simple.
            self.freed.load(Ordering::SeqCst)
        }

        /// Drops of an object that was already freed.
        pub fn double_frees(&self) -> usize {
            // SeqCst: as in `freed`.
            self.double_frees.load(Ordering::SeqCst)
        }

        /// True once object `id` has been dropped.
        pub fn is_freed(&self, id: usize) -> bool {
            // SeqCst: as in `freed`.
            self.states[id].load(Ordering::SeqCst) == FREED
        }

        /// Asserts that no object was dropped twice (or dropped without being created).
        pub fn assert_no_double_free(&self) {
            assert_eq!(self.double_frees(), 0, "objects dropped twice");
            // SeqCst: as in `freed`.
            assert_eq!(self.bogus_frees.load(Ordering::SeqCst), 0, "unknown objects dropped");
        }

        /// Asserts that every object created so far was dropped exactly once.
        pub fn assert_all_freed_once(&self) {
            self.assert_no_double_free();
            let allocated = self.allocated();
            let missing: Vec<usize> =
                (0..allocated).filter(|&id| !self.is_freed(id)).take(10).collect();
            assert!(
                missing.is_empty(),
                "{} of {allocated} objects were never dropped; first ids: {missing:?}",
                allocated - self.freed()
            );
            assert_eq!(self.freed(), allocated);
        }

        /// Waits (up to `timeout`) until `freed() >= n`; returns whether it got there.
        pub fn wait_freed(&self, n: usize, timeout: Duration) -> bool {
            wait_until(timeout, || self.freed() >= n)
        }
    }

    impl Tracked {
        /// The object's id in its log.
        pub fn id(&self) -> usize {
            self.id
        }

        /// The log the object reports to.
        pub fn log(&self) -> &'static DropLog {
            self.log
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            // SeqCst: see `DropLog::freed`.
            match self.log.states[self.id].swap(FREED, Ordering::SeqCst) {
                LIVE => {
                    // SeqCst: as above.
                    self.log.freed.fetch_add(1, Ordering::SeqCst);
                }
                FREED => {
                    // SeqCst: as above.
                    self.log.double_frees.fetch_add(1, Ordering::SeqCst);
                }
                _ => {
                    // SeqCst: as above.
                    self.log.bogus_frees.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// Polls `cond` every millisecond until it holds or `timeout` passes; returns its last
    /// value. For conditions that depend on background workers: generous timeouts, no
    /// assumption about how fast the machine is. A timeout past what `Instant` can represent
    /// (`Duration::MAX`) waits forever.
    pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        // None: beyond any representable instant, that is never.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if cond() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Which context token a test step uses; [`with_token!`] turns it into a real token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// The thread's root `Sleepable`.
    Sleepable,
    /// A `NoReclaim` scope of it.
    NoReclaim,
    /// An atomic scope of it (`ctx.atomic()`).
    Atomic,
    /// The `Atomic` token of a read section of the domain (`guard.ctx()`).
    InReadSection,
}

impl TokenKind {
    /// Every kind.
    pub const ALL: [TokenKind; 4] =
        [TokenKind::Sleepable, TokenKind::NoReclaim, TokenKind::Atomic, TokenKind::InReadSection];
}

/// `with_token!(ctx, domain, kind, |t| body)`: evaluates `body` with `t` bound to a token of
/// `kind` derived from `ctx` (a `&mut Sleepable`); `InReadSection` enters a read section of
/// `domain` for the duration of `body`. The body is instantiated once per token type.
#[macro_export]
macro_rules! with_token {
    // `$t` bound to `&mut` the token, for APIs that borrow it mutably (`RcuCell::update`).
    ($ctx:expr, $domain:expr, $kind:expr, |mut $t:ident| $body:expr) => {
        match $kind {
            $crate::TokenKind::Sleepable => {
                let $t = &mut *$ctx;
                $body
            }
            $crate::TokenKind::NoReclaim => {
                let mut scope = ::rcu_core::MaySleep::no_reclaim(&mut *$ctx);
                let $t = &mut scope;
                $body
            }
            $crate::TokenKind::Atomic => {
                let mut scope = ::rcu_core::Context::atomic(&mut *$ctx);
                let $t = &mut scope;
                $body
            }
            $crate::TokenKind::InReadSection => {
                let guard = $domain.read_lock(&mut *$ctx);
                let mut scope = guard.ctx().nested();
                let $t = &mut scope;
                $body
            }
        }
    };
    ($ctx:expr, $domain:expr, $kind:expr, |$t:ident| $body:expr) => {
        match $kind {
            $crate::TokenKind::Sleepable => {
                let $t = &*$ctx;
                $body
            }
            $crate::TokenKind::NoReclaim => {
                let scope = ::rcu_core::MaySleep::no_reclaim(&mut *$ctx);
                let $t = &scope;
                $body
            }
            $crate::TokenKind::Atomic => {
                let scope = ::rcu_core::Context::atomic(&mut *$ctx);
                let $t = &scope;
                $body
            }
            $crate::TokenKind::InReadSection => {
                let guard = $domain.read_lock(&mut *$ctx);
                let $t = guard.ctx();
                $body
            }
        }
    };
}

#[cfg(not(loom))]
pub mod readers {
    //! Readers that check grace periods: they load a published object under a read guard,
    //! hold it for a while and check that it was not freed meanwhile.

    use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

    use rcu_core::{Domain, Rcu, RcuCell, ReadGuard, Sleepable};

    use crate::drop_log::Tracked;

    /// An RCU-protected pointer to a tracked object (the raw form of an `RcuCell`, for tests
    /// that retire with `kvfree_rcu`/`call_rcu` themselves).
    #[derive(Debug)]
    pub struct Published {
        ptr: AtomicPtr<Rcu<Tracked>>,
    }

    impl Published {
        /// Publishes `obj`.
        pub fn new(obj: Box<Rcu<Tracked>>) -> Self {
            Published { ptr: AtomicPtr::new(Box::into_raw(obj)) }
        }

        /// The current object, valid while `guard` lives.
        ///
        /// The guard must be a read section of the domain whose grace periods the old objects
        /// are retired through (see [`Published::swap`]).
        pub fn load<'g>(&'g self, _guard: &'g ReadGuard<'_>) -> &'g Rcu<Tracked> {
            // Acquire: pairs with the AcqRel swap that published the object.
            let p = self.ptr.load(Ordering::Acquire);
            // SAFETY: objects are only freed after a grace period that began after they were
            // unpublished (the contract of `swap`), and the caller's read section began
            // before that, so the object lives while `'g` does.
            unsafe { &*p }
        }

        /// Publishes `new` and hands back the old object, still visible to readers.
        ///
        /// # Safety
        /// 1. The returned box is only dropped through the RCU API (`kvfree_rcu`, `call_rcu`
        ///    whose callback drops it, ...) of the domain the readers use.
        pub unsafe fn swap(&self, new: Box<Rcu<Tracked>>) -> Box<Rcu<Tracked>> {
            // AcqRel: Release publishes `new`; Acquire takes ownership of the old value.
            let old = self.ptr.swap(Box::into_raw(new), Ordering::AcqRel);
            // SAFETY: the pointer came from `Box::into_raw`; the caller keeps readers safe (1).
            unsafe { Box::from_raw(old) }
        }
    }

    impl Drop for Published {
        fn drop(&mut self) {
            // SAFETY: `&mut self`: no reader can hold the object; it came from a Box.
            drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
        }
    }

    /// Something a checking reader loads a tracked object from under a read guard.
    pub trait LoadTracked: Sync {
        /// The current object, valid while `guard` lives.
        fn load_tracked<'g>(&'g self, guard: &'g ReadGuard<'_>) -> &'g Tracked;
    }

    impl LoadTracked for Published {
        fn load_tracked<'g>(&'g self, guard: &'g ReadGuard<'_>) -> &'g Tracked {
            self.load(guard)
        }
    }

    impl LoadTracked for RcuCell<Tracked> {
        fn load_tracked<'g>(&'g self, guard: &'g ReadGuard<'_>) -> &'g Tracked {
            self.load(guard)
        }
    }

    /// What one checking reader saw.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ReaderReport {
        /// Read sections completed.
        pub reads: u64,
        /// Objects found freed (or changed) while the reader still held them.
        pub violations: u64,
    }

    /// Sets its flag when dropped: a writer holds one so that checking readers stop even if
    /// the writer panics (the scope joining them would otherwise wait forever).
    #[derive(Debug)]
    pub struct StopOnDrop<'a>(pub &'a AtomicBool);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            // SeqCst: a flag, read by `check_reads`.
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Loads from `source` in read sections of `domain` until `stop`, holding each object
    /// across a few yields and checking it was not freed meanwhile. Run on its own thread.
    pub fn check_reads(
        domain: &Domain,
        stop: &AtomicBool,
        source: &impl LoadTracked,
    ) -> ReaderReport {
        let mut ctx = Sleepable::enter();
        let mut report = ReaderReport::default();
        // SeqCst: a flag; the harness joins the thread afterwards anyway.
        while !stop.load(Ordering::SeqCst) || report.reads == 0 {
            let guard = domain.read_lock(&mut ctx);
            let obj = source.load_tracked(&guard);
            let (id, log) = (obj.id(), obj.log());
            if log.is_freed(id) {
                report.violations += 1;
            }
            for _ in 0..(report.reads % 4) {
                std::thread::yield_now();
            }
            if report.reads % 16 == 0 {
                // Now and then a longer hold, so that batches run while readers hold objects.
                let hold = if report.reads % 128 == 0 { 1000 } else { 200 };
                std::thread::sleep(std::time::Duration::from_micros(hold));
            }
            if log.is_freed(id) || obj.id() != id {
                report.violations += 1;
            }
            drop(guard);
            report.reads += 1;
        }
        report
    }

    /// A reader thread that holds every grace period of a domain until told: it enters a
    /// read section, and stays inside until [`release`](Self::release) (or the drop of this
    /// handle).
    #[derive(Debug)]
    pub struct HeldGracePeriods {
        go: std::sync::mpsc::Sender<()>,
        reader: std::thread::JoinHandle<()>,
    }

    impl HeldGracePeriods {
        /// Spawns the reader; returns once it is inside its read section.
        pub fn spawn(domain: &'static Domain) -> Self {
            let (held_tx, held_rx) = std::sync::mpsc::channel();
            let (go, go_rx) = std::sync::mpsc::channel::<()>();
            let reader = std::thread::spawn(move || {
                let mut ctx = Sleepable::enter();
                let guard = domain.read_lock(&mut ctx);
                held_tx.send(()).unwrap();
                // Err: the handle was dropped without `release`; leave all the same.
                let _ = go_rx.recv();
                drop(guard);
            });
            held_rx.recv().expect("the reader entered its read section");
            HeldGracePeriods { go, reader }
        }

        /// Lets the reader leave its read section, and joins it.
        pub fn release(self) {
            self.go.send(()).unwrap();
            self.reader.join().unwrap();
        }
    }
}

/// The calling thread's name, as the kernel has it (cut to 15 bytes); empty if it has none.
/// Works on the runtime's threads, which are raw pthreads that std knows no name for.
pub fn thread_name() -> String {
    let mut buf = [0u8; 32];
    rcu_sys::thread_name(&mut buf);
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// How many of this process's threads have a name starting with `prefix` (as the kernel has
/// it, `/proc/self/task/*/comm`): a domain's runtime threads are `rcu-gp-<name>`, so a test
/// can wait for a dropped domain's threads to be gone. 0 where `/proc` cannot be read.
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(not(loom))]
pub mod wakers {
    //! Wakers and a minimal executor for the tests that poll grace-period futures by hand.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::task::{Context as TaskContext, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use rcu_core::Domain;

    /// Polls `fut` to completion on the calling thread, parking until woken: a lost wake-up
    /// hangs it (DESIGN §5.1 rules those out; the stage's timeout then names the test).
    pub fn block_on<F: Future + Unpin>(mut fut: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = TaskContext::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = Pin::new(&mut fut).poll(&mut cx) {
                return v;
            }
            // Spurious returns just poll again.
            std::thread::park();
        }
    }

    /// What an [`OnWake`] runs.
    pub type Step = Box<dyn FnOnce() + Send>;

    /// A waker that runs its step once, on whichever thread wakes it first.
    pub struct OnWake(pub Mutex<Option<Step>>);

    impl std::fmt::Debug for OnWake {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("OnWake")
        }
    }

    impl Wake for OnWake {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let step = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(step) = step {
                step();
            }
        }
    }

    /// Runs `step` on the worker of `domain`, as the waker of a `synchronize_rcu_async`
    /// future; returns what it returned and the name of the thread it ran on. Panics after
    /// `patience` if the waker never runs.
    pub fn run_on_worker<R: Send + 'static>(
        domain: &Domain,
        patience: Duration,
        step: impl FnOnce() -> R + Send + 'static,
    ) -> (R, String) {
        let (tx, rx) = mpsc::channel();
        let step: Step = Box::new(move || {
            let r = step();
            let _ = tx.send((r, crate::thread_name()));
        });
        let waker = Waker::from(Arc::new(OnWake(Mutex::new(Some(step)))));
        let mut cx = TaskContext::from_waker(&waker);
        // A grace period may complete before the first poll (nothing holds one up): then
        // the waker is never registered, and a new future is tried.
        let started = Instant::now();
        let fut = loop {
            let mut fut = domain.synchronize_rcu_async();
            if Pin::new(&mut fut).poll(&mut cx).is_pending() {
                break fut;
            }
            assert!(started.elapsed() < patience, "every future was ready at once: hung?");
        };
        let r = rx.recv_timeout(patience).expect("the waker never ran: hung");
        drop(fut);
        r
    }

    /// A waker that sets its flag (a parked executor's "woken"); tests read or clear it.
    #[derive(Debug, Default)]
    pub struct FlagWaker(pub AtomicBool);

    impl Wake for FlagWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            // SeqCst: the tests' plain ordering between the wake and their checks.
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// `std::thread::scope` whose threads are joined explicitly before it returns.
///
/// A plain scope waits for its threads inside std, and std is not instrumented in the
/// ThreadSanitizer stage (ci/tsan.sh), so TSan would not see the threads' ends happen before
/// what follows the scope and would report races that cannot happen. An explicit join is a
/// `pthread_join`, which TSan understands. A thread's panic is propagated.
pub fn scope<'env, T>(f: impl for<'scope> FnOnce(&JoiningScope<'scope, 'env>) -> T) -> T {
    std::thread::scope(|s| {
        let joining = JoiningScope { scope: s, handles: std::cell::RefCell::new(Vec::new()) };
        let result = f(&joining);
        for handle in joining.handles.into_inner() {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        result
    })
}

/// The scope handed out by [`scope`]: spawned threads are joined when it ends.
#[derive(Debug)]
pub struct JoiningScope<'scope, 'env: 'scope> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    handles: std::cell::RefCell<Vec<std::thread::ScopedJoinHandle<'scope, ()>>>,
}

impl<'scope> JoiningScope<'scope, '_> {
    /// Spawns a thread that is joined when the scope ends.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'scope) {
        self.handles.borrow_mut().push(self.scope.spawn(f));
    }
}

/// Collects `domain`'s stall reports, with its stall timeout set to 50 ms: what its handler
/// is given, in order. (In a [`SpinLock`], which ThreadSanitizer sees, not a `Mutex`.)
#[cfg(not(loom))]
pub fn collect_stalls(
    domain: &rcu_core::Domain,
) -> std::sync::Arc<SpinLock<Vec<rcu_core::StallReport>>> {
    let reports = std::sync::Arc::new(SpinLock::new(Vec::new()));
    let sink = reports.clone();
    domain.set_stall_timeout(std::time::Duration::from_millis(50));
    domain.set_stall_handler(Some(std::sync::Arc::new(move |r: &rcu_core::StallReport| {
        sink.with(|v| v.push(r.clone()));
    })));
    reports
}

/// A minimal spin lock for test bookkeeping shared with runtime threads (e.g. a stall
/// handler's records).
///
/// `std::sync::Mutex` would do, except in the ThreadSanitizer stage: std is not instrumented
/// there, so TSan cannot see the mutex's ordering and reports the data behind it as racing.
/// This lock's Acquire/Release operations are compiled in this crate, where TSan sees them.
#[derive(Debug, Default)]
pub struct SpinLock<T> {
    locked: std::sync::atomic::AtomicBool,
    value: std::cell::UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `value` (needs `T: Send`).
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A lock around `value`.
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: std::sync::atomic::AtomicBool::new(false),
            value: std::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access to the value.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        use std::sync::atomic::Ordering;
        // Acquire: pairs with the Release store below: the previous holder's writes are
        // visible.
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        struct Unlock<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // Release: publishes this holder's writes (also when `f` panics).
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: the lock is held until `_unlock` drops, after `f` returns.
        f(unsafe { &mut *self.value.get() })
    }
}

/// Installs `handler` for `signal` (`SA_RESTART`, nothing blocked while it runs), for the
/// tests that interrupt threads inside the runtime.
///
/// # Panics
/// If `sigaction` refuses (an invalid or uncatchable signal).
pub fn install_signal_handler(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed `sigaction` is a valid starting point (empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: a valid `sigaction` whose handler is an `extern "C" fn` that lives for ever;
    // null old action.
    let rc = unsafe { libc::sigaction(signal, &sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction({signal}) failed: {}", std::io::Error::last_os_error());
}

/// This thread's `errno`, for signal handlers that save and restore it (so that the code
/// they interrupt does not see their system calls change it).
pub mod errno {
    /// The calling thread's `errno`.
    pub fn get() -> i32 {
        // SAFETY: the location is this thread's errno, valid for the thread's life.
        unsafe { *location() }
    }

    /// Sets the calling thread's `errno`.
    pub fn set(value: i32) {
        // SAFETY: as in `get`.
        unsafe { *location() = value };
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn location() -> *mut i32 {
        // SAFETY: no preconditions.
        unsafe { libc::__errno_location() }
    }

    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    fn location() -> *mut i32 {
        // SAFETY: no preconditions.
        unsafe { libc::__error() }
    }
}

pub mod fork {
    //! Running code in a forked child under a watchdog, for the `fork()` tests.

    use std::time::{Duration, Instant};

    /// Writes `msg` to fd 2 without locks (a forked child may not take its parent's).
    pub fn raw_eprint(msg: &str) {
        // SAFETY: writes `msg.len()` bytes from a live buffer to fd 2.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }

    /// A word that forked children share with the parent (an anonymous `MAP_SHARED` page,
    /// leaked): a child records how far it got, and the parent reads it when the child hangs.
    #[derive(Clone, Copy, Debug)]
    pub struct SharedProgress(&'static std::sync::atomic::AtomicU64);

    impl SharedProgress {
        /// A new word, 0.
        ///
        /// # Panics
        /// If the page cannot be mapped.
        pub fn new() -> Self {
            // SAFETY: a fresh anonymous mapping of one page; no file, no fixed address.
            let page = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(page, libc::MAP_FAILED, "mmap of a shared page failed");
            // SAFETY: the page is zeroed, aligned, never unmapped, and only ever accessed
            // through this atomic (in every process that shares it).
            SharedProgress(unsafe { &*page.cast::<std::sync::atomic::AtomicU64>() })
        }

        /// Records `step` (the child).
        pub fn set(self, step: u64) {
            // Relaxed: read by the parent only to report where a hung child stopped.
            self.0.store(step, std::sync::atomic::Ordering::Relaxed);
        }

        /// The last step recorded.
        pub fn get(self) -> u64 {
            // Relaxed: see `set`.
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    impl Default for SharedProgress {
        fn default() -> Self {
            Self::new()
        }
    }

    /// How a forked child ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ChildEnd {
        /// It exited with this status (0: success).
        Exited(i32),
        /// A signal ended it (`waitpid`'s raw status).
        Died(i32),
        /// It outlived the watchdog and was killed.
        Hung,
    }

    /// Forks. The child runs `body`, whose value is its exit status (a panic exits with 2),
    /// and `_exit`s without returning into the harness or running the parent's destructors.
    /// The parent waits for it at most `watchdog`, then kills it.
    ///
    /// # Safety
    /// 1. `body` does only what a child of a multi-threaded process may: rcu-core calls (its
    ///    fork handlers make it consistent), allocation (glibc makes it fork-safe), `write(2)`
    ///    (see [`raw_eprint`]); no std lock another parent thread may have held (stdout,
    ///    stderr, `std::thread::spawn`).
    /// 2. `body` uses no reference that another parent thread loaded under its read guard
    ///    (that thread's section is ended in the child).
    pub unsafe fn run_in_child(watchdog: Duration, body: impl FnOnce() -> i32) -> ChildEnd {
        // SAFETY: (1) and (2) are the caller's; the child never returns from this block.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|_| {
                    raw_eprint("fork child: panicked\n");
                    2
                });
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        reap(pid, watchdog)
    }

    /// Waits for the child `pid` (polling `waitpid` with `WNOHANG`, so a hung child cannot
    /// hang the caller) at most `watchdog`, then kills and reaps it.
    ///
    /// # Panics
    /// If `pid` is not positive (`waitpid` and `kill` would take it for a process group), or
    /// `waitpid` fails (`pid` is not a child of this process).
    pub fn reap(pid: libc::pid_t, watchdog: Duration) -> ChildEnd {
        assert!(pid > 0, "reap: not a child's pid: {pid}");
        let start = Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid out-pointer.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            assert!(rc >= 0, "waitpid failed");
            if rc == pid {
                break;
            }
            if start.elapsed() > watchdog {
                raw_eprint(&format!(
                    "fork child {pid} hung for {watchdog:?}; its threads:\n{}",
                    describe_threads(pid)
                ));
                hold_for_a_debugger(pid);
                // SAFETY: kill and reap our own child (waitpid just found it).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                return ChildEnd::Hung;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if libc::WIFEXITED(status) {
            ChildEnd::Exited(libc::WEXITSTATUS(status))
        } else {
            ChildEnd::Died(status)
        }
    }

    /// One line per thread of process `pid`: its tid, name, state, kernel wait channel and
    /// system call (from /proc), so that a hung child's report shows where each thread waits.
    pub fn describe_threads(pid: libc::pid_t) -> String {
        let read = |path: std::path::PathBuf| {
            std::fs::read_to_string(path).map(|s| s.trim_end().to_owned()).unwrap_or_default()
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return "  (no /proc/PID/task on this system)\n".to_owned();
        };
        let mut lines: Vec<String> = tasks
            .filter_map(|task| {
                let dir = task.ok()?.path();
                let tid = dir.file_name()?.to_string_lossy().into_owned();
                // `stat` is "tid (comm) state ...": the state is the field after the name.
                let stat = read(dir.join("stat"));
                let state = stat.rsplit_once(") ").map_or("?", |(_, rest)| &rest[..1]);
                Some(format!(
                    "  {tid} {:<15} state {state} wchan {:<24} syscall {}",
                    read(dir.join("comm")),
                    read(dir.join("wchan")),
                    read(dir.join("syscall"))
                ))
            })
            .collect();
        lines.sort();
        lines.join("\n") + "\n"
    }

    /// With `RCU_TEST_HOLD_HUNG_CHILD=SECONDS` set, waits that long before a hung child is
    /// killed, so that a debugger can be attached to it (`gdb -p PID`).
    fn hold_for_a_debugger(pid: libc::pid_t) {
        let Some(secs) =
            std::env::var("RCU_TEST_HOLD_HUNG_CHILD").ok().and_then(|s| s.parse().ok())
        else {
            return;
        };
        raw_eprint(&format!("holding hung child {pid} for {secs} s (RCU_TEST_HOLD_HUNG_CHILD)\n"));
        std::thread::sleep(Duration::from_secs(secs));
    }

    /// Forks from inside a runtime callout (a waker, a stall handler, a callback on a
    /// worker), for the tests of such forks. In the parent, returns the child's pid. In the
    /// child, starts a thread that runs `test` and `_exit`s with its value, and a watchdog
    /// thread that writes `hung` and `_exit`s with 3 after `watchdog`, then returns 0: the
    /// forking thread goes on with what it holds (a worker back to its loop), which is what
    /// these tests exercise.
    ///
    /// # Safety
    /// 1. and 2. of [`run_in_child`], for `test` and for whatever the forking thread goes on
    ///    to do in the child once this returns.
    pub unsafe fn fork_with_test_thread(
        watchdog: Duration,
        hung: &'static str,
        test: fn() -> i32,
    ) -> libc::pid_t {
        // SAFETY: (1) and (2) are the caller's.
        let pid = unsafe { libc::fork() };
        // -1 (fork failed) too: the caller's `reap` reports it.
        if pid != 0 {
            return pid;
        }
        std::thread::spawn(move || {
            std::thread::sleep(watchdog);
            raw_eprint(hung);
            // SAFETY: ends the child.
            unsafe { libc::_exit(3) };
        });
        std::thread::spawn(move || {
            let code = test();
            // SAFETY: ends the child.
            unsafe { libc::_exit(code) };
        });
        0
    }
}
