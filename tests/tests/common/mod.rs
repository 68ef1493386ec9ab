//! Helpers shared by the grace-period integration tests (`mod common;` in each file).
//!
//! The tests run on shared, noisy machines, so nothing here relies on timing for ordering:
//! a [`ReaderThread`] acknowledges each command only once its read section has begun or
//! ended, and [`Pending`] reports completion through a channel. Time appears only as
//! generous bounds on things that must happen ([`PATIENCE`]) and as deliberate holds
//! ([`HOLD`]) during which something must *not* happen.

// Each test file uses a different subset.
#![allow(dead_code)]

/// The sleepable-domain (SRCU) tests' helpers.
pub(crate) mod srcu;

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, ReadGuard};

/// Upper bound on anything that must happen (a grace period ending once its readers have
/// left, a polled cookie completing): a watchdog meaning "hung", not a speed target. 5 s
/// was once too short under ThreadSanitizer on a loaded 2-CPU machine (issue 23). A test
/// that waits this long has found a bug; failures say how long was actually waited.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A deliberate hold: how long a reader stays inside while a test checks that a grace
/// period does *not* complete.
pub(crate) const HOLD: Duration = Duration::from_millis(100);

/// Polls `condition` (every millisecond or so) until it is true or `timeout` has passed;
/// returns its last value. On a timeout it prints the time waited (the caller's assertion
/// message follows it in the test's output), with `write(2)`: fork children call it too, and
/// must not take std's stderr lock.
#[track_caller]
pub(crate) fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= timeout {
            let last = condition();
            if !last {
                let caller = std::panic::Location::caller();
                let msg =
                    format!("wait_until at {caller}: still false after {:?}\n", start.elapsed());
                // SAFETY: `msg` is valid for its length; a short write only shortens the note.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            }
            return last;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Asserts that `condition` stays true for `duration`, checking it every few milliseconds.
#[track_caller]
pub(crate) fn assert_holds_for(
    duration: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < duration {
        assert!(condition(), "{what} (after {:?})", start.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(condition(), "{what} (after {:?})", start.elapsed());
}

/// The calling thread's kernel thread id.
pub(crate) fn gettid() -> i32 {
    // The id stall and leak reports print: the kernel's tid on Linux.
    rcu_sys::thread_id()
}

/// A closure running on its own thread, whose result is collected later. Used for calls
/// that must block (a `synchronize_rcu` held up by a reader), so that the test thread can
/// check they have not returned yet.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    result: Receiver<T>,
    done: Option<T>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Pending<T> {
    /// Runs `f` on a new thread called `name`.
    pub(crate) fn spawn(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _ = tx.send(f());
            })
            .expect("spawn a helper thread");
        Pending { result: rx, done: None, thread: Some(thread) }
    }

    /// True once `f` has returned. Never blocks.
    pub(crate) fn is_done(&mut self) -> bool {
        if self.done.is_none() {
            match self.result.try_recv() {
                Ok(v) => self.done = Some(v),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => self.propagate_panic(),
            }
        }
        self.done.is_some()
    }

    /// Waits up to `timeout` for `f` to return; true if it has.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> bool {
        if self.done.is_none() {
            match self.result.recv_timeout(timeout) {
                Ok(v) => self.done = Some(v),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.propagate_panic(),
            }
        }
        self.done.is_some()
    }

    /// Waits up to [`PATIENCE`] for `f` to return and hands back its result.
    ///
    /// # Panics
    /// If `f` has not returned by then (`what` says what was expected), or panicked.
    #[track_caller]
    pub(crate) fn join(mut self, what: &str) -> T {
        let start = Instant::now();
        assert!(self.wait_timeout(PATIENCE), "{what}: still blocked after {:?}", start.elapsed());
        if let Some(t) = self.thread.take() {
            t.join().expect("the helper thread panicked after sending its result");
        }
        self.done.take().expect("checked above")
    }

    fn propagate_panic(&mut self) -> ! {
        let thread = self.thread.take().expect("a helper thread");
        match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the helper thread ended without sending a result"),
        }
    }
}

/// What a [`ReaderThread`] is told to do.
enum Command {
    /// Enter a read section (nested in the current one, if any).
    Enter,
    /// Leave the innermost read section.
    Exit,
}

/// A thread that enters and leaves read sections of one domain on command and holds them
/// in between, so that a test can place a reader exactly where it wants relative to a grace
/// period. Every command returns once the thread has carried it out.
///
/// Dropping it ends any open sections and joins the thread.
#[derive(Debug)]
pub(crate) struct ReaderThread {
    commands: Option<Sender<Command>>,
    acks: Receiver<usize>,
    depth: usize,
    tid: i32,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Enter => "Enter",
            Command::Exit => "Exit",
        })
    }
}

impl ReaderThread {
    /// Starts a reader thread named `name` for `domain` (`Domain::global()`, or an
    /// `Arc<Domain>`). It registers with the domain at once (one empty read section), so
    /// registration never happens inside a test's critical window.
    pub(crate) fn spawn<D>(domain: D, name: &str) -> Self
    where
        D: Deref<Target = Domain> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
        let (ack_tx, ack_rx) = mpsc::channel::<usize>();
        let (tid_tx, tid_rx) = mpsc::channel::<i32>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut ctx = Sleepable::enter();
                drop(domain.read_lock(&mut ctx));
                let _ = tid_tx.send(gettid());
                while let Ok(command) = cmd_rx.recv() {
                    match command {
                        Command::Enter => {
                            let guard = domain.read_lock(&mut ctx);
                            if ack_tx.send(1).is_err() {
                                return;
                            }
                            if !Self::hold(&guard, 1, &cmd_rx, &ack_tx) {
                                return;
                            }
                            drop(guard);
                            if ack_tx.send(0).is_err() {
                                return;
                            }
                        }
                        Command::Exit => panic!("ReaderThread: Exit outside any read section"),
                    }
                }
            })
            .expect("spawn a reader thread");
        let tid = tid_rx.recv_timeout(PATIENCE).expect("the reader thread started");
        ReaderThread { commands: Some(cmd_tx), acks: ack_rx, depth: 0, tid, thread: Some(thread) }
    }

    /// Inside the section of `guard` (at `depth`): serves commands until told to leave it.
    /// Returns false when the test has gone away.
    fn hold(
        guard: &ReadGuard<'_>,
        depth: usize,
        commands: &Receiver<Command>,
        acks: &Sender<usize>,
    ) -> bool {
        while let Ok(command) = commands.recv() {
            match command {
                Command::Enter => {
                    let inner = guard.nest();
                    if acks.send(depth + 1).is_err()
                        || !Self::hold(&inner, depth + 1, commands, acks)
                    {
                        return false;
                    }
                    drop(inner);
                    if acks.send(depth).is_err() {
                        return false;
                    }
                }
                Command::Exit => return true,
            }
        }
        false
    }

    fn command(&mut self, command: Command) {
        let what = format!("{command:?}");
        self.commands.as_ref().expect("running").send(command).expect("the reader thread runs");
        let start = Instant::now();
        match self.acks.recv_timeout(PATIENCE) {
            Ok(depth) => self.depth = depth,
            Err(e) => {
                panic!(
                    "ReaderThread did not acknowledge {what} ({e:?} after {:?})",
                    start.elapsed()
                )
            }
        }
    }

    /// Enters a read section (nested in the current one if the thread is inside); returns
    /// once the section has begun.
    pub(crate) fn enter(&mut self) {
        self.command(Command::Enter);
    }

    /// Leaves the innermost read section; returns once it has ended.
    ///
    /// # Panics
    /// If the thread is not inside a read section.
    pub(crate) fn exit(&mut self) {
        assert!(self.depth > 0, "ReaderThread::exit outside any read section");
        self.command(Command::Exit);
    }

    /// Leaves every open read section.
    pub(crate) fn exit_all(&mut self) {
        while self.depth > 0 {
            self.exit();
        }
    }

    /// How many read sections the thread is inside.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// True while the thread is inside a read section.
    pub(crate) fn is_inside(&self) -> bool {
        self.depth > 0
    }

    /// The thread's kernel thread id.
    pub(crate) fn tid(&self) -> i32 {
        self.tid
    }
}

impl Drop for ReaderThread {
    fn drop(&mut self) {
        // Closing the channel makes the thread unwind out of its sections and return.
        self.commands.take();
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if result.is_err() && !std::thread::panicking() {
                panic!("the reader thread panicked");
            }
        }
    }
}

/// The names of this process's threads (as the kernel knows them: at most 15 bytes).
/// A thread exiting while the kernel lists them may hide one listed after it (the listing
/// resumes by position), so a missing name may be a live thread: a test that needs a thread
/// really gone looks it up by id (`panic_containment.rs`, `still_runs`).
pub(crate) fn thread_names() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// A new domain made from `config` whose worker has registered as a reader (it does so as it
/// starts), so that `stats().readers` counts the worker and nothing else yet.
pub(crate) fn settled_domain(config: DomainConfig) -> Arc<Domain> {
    let domain = Arc::new(Domain::new(config));
    assert!(
        wait_until(PATIENCE, || domain.stats().readers == 1),
        "the worker of a new domain did not register: {:?}",
        domain.stats()
    );
    domain
}

/// A value that records its drop and poisons itself.
pub(crate) struct Canary {
    value: AtomicU64,
    dropped: Arc<AtomicBool>,
}

impl Canary {
    pub(crate) fn new(value: u64) -> (Self, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        (Canary { value: AtomicU64::new(value), dropped: dropped.clone() }, dropped)
    }

    pub(crate) fn value(&self) -> u64 {
        // Relaxed: ordered by the RCU publication or the test's channels.
        self.value.load(Ordering::Relaxed)
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        // Relaxed: poison, read as evidence by the test thread after joins or barriers.
        self.value.store(0xdead_dead, Ordering::Relaxed);
        self.dropped.store(true, Ordering::SeqCst);
    }
}
