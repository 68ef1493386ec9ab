//! Issue 22, family 1 (DESIGN §5.1): user code never kills or wedges a runtime thread, and no
//! panic frees early. Wherever the runtime runs user code on one of its own threads, or inside
//! a call the user made for something else, a panic there is contained: caught, counted,
//! reported on stderr, its payload dropped with the payload's own panics caught too, and the
//! thread goes on serving. A grace-period wait whose user code panicked goes on waiting.
//!
//! Each test injects one panic at one place, with one of three payloads ([`Payload`]): a plain
//! panic, `panic_any(Bomb)` whose `Drop` panics, and a `Bomb` whose `Drop` panics with another
//! `Bomb`. Then, on the same domain, it checks that the injected code ran where the inventory
//! says, that the counter moved by exactly the panics injected, and that the domain still
//! serves ([`assert_serving`]): later callbacks and frees run, `rcu_barrier` returns (within
//! `PATIENCE`, on a helper thread: a dead worker fails the test instead of hanging it), and
//! `synchronize_rcu_async` / `rcu_barrier_async` futures are woken and complete. Sites that
//! exist on both get the global domain and a private one.
//!
//! # Where the runtime runs user code
//!
//! | site | where it runs | contained by, counted in | tests |
//! |---|---|---|---|
//! | `call_rcu` callback | the domain's worker, running a batch | `deferred::run`; `callback_panics` | `callback_on_the_worker` |
//! | `call_rcu_fn` closure (and its captures' drops) | the worker | the same | `closure_on_the_worker` |
//! | `Drop` of a retired value (`kvfree_rcu`, `kvfree_rcu_mightsleep`, `RcuCell` writes), also in blocks whose deallocations are given back to their owner (`run_keeping_dealloc`) | the worker | the same | `retired_drop_on_the_worker` |
//! | callbacks and drops of parked blocks, run inline at a `Sleepable` call's block boundary | the caller's thread, inside its free | the same | `inline_at_a_block_boundary` |
//! | the same, paid as owed reclaim work when a scope is opened from a `Sleepable` token (global domain) | the caller's thread, inside `ctx.atomic()` | the same | `inline_at_a_scope_opening` |
//! | what a dropped domain still has queued (its final batches; `Queues::drop` if anything is left when the state goes, contained by the same `deferred::run`) | the stopping worker | the same | `final_run_of_a_dropped_domain` |
//! | `Waker::wake` of a `synchronize_rcu_async` / `rcu_barrier_async` future | the worker (`wake_ready`) | `contain`; `contained_panics` | `waker_wake` |
//! | `Waker` drop when the registry's reference is the last (the future was dropped or re-registered); also `AsyncWaiters::drop` when the state goes (contained, not counted: the domain is gone) | the worker | `contain`; `contained_panics` | `waker_drop` |
//! | stall handler, the grace period led by a `synchronize_rcu` caller | the caller's thread, inside `synchronize_rcu` | `StallSink::report`; `contained_panics` | `stall_handler_in_synchronize` |
//! | stall handler, the grace period led by the worker (`start_poll`, futures, batches) | the worker | the same | `stall_handler_on_the_worker` |
//! | stall handler for a staging-bracket stall (`StallCause::StagingBracket`) | the worker's collection; a barrier's caller | the same (via `BracketWatch`) | `signals_bracket.rs` |
//! | a stall handler's drop, when `report`'s clone is the last reference (replaced meanwhile) | the leader (here the worker) | the same | `stall_handler_drop` |
//! | `Shrinker::count`, `Shrinker::scan`, and the shrinker's drop when the runtime's clone is the last (unregistered meanwhile) | the thread whose `Reclaim`-policy block allocation really failed, inside its call | `shrink_all`; `AllocStats::shrinker_panics` | `shrinker_count`, `shrinker_scan`, `shrinker_drop` |
//! | panic payloads and their `Drop` (and payloads' payloads) | wherever the panic was caught | `contain::drop_payload` | every test, three payloads each |
//! | `Hash` / `Eq` of map keys | rcu-collections' writers and readers | rcu-collections | covered by the rcu-collections tests |
//!
//! Not contained, by design: the caller's own code in its own call, whose panic reaches the
//! caller with the runtime's state consistent: an `RcuCell::update` closure (its read section
//! is closed while unwinding; `reclaim_misc.rs`), a `Waker`'s clone in `poll` and the drop of
//! a future's own registration, a stall handler replaced by `set_stall_handler` (dropped after
//! the lock), a shrinker dropped with its `ShrinkerHandle` (likewise), the inline drop of
//! `kvfree_rcu_mightsleep`'s fallback (no block: it waits for a grace period and drops the
//! caller's own value in the caller's call, uncounted). A payer set with
//! `rcu_ctx::owed::set_payer` is trusted code: installing one is `unsafe`.
//! Not containable: the `#[global_allocator]` (unwinding out of it is undefined behaviour),
//! and user code that blocks for ever instead of panicking.
//!
//! # Not contained at cee4677: user code that waits for the worker it runs on
//! The worker runs some user code outside any atomic or no-reclaim scope: a waker's `wake`
//! and drop (so that executors may lock and allocate there), a stall handler's drop (after
//! the call's atomic scope), a panic payload's drop (after the scope it was raised in has
//! unwound). Such code can acquire a root `Sleepable` and call `rcu_barrier` of the same
//! domain, which waits for a collection only the worker can make: the worker is wedged for
//! ever, and so is every later barrier of the domain. Two tests show it, ignored until fixed:
//! `a_waker_that_calls_rcu_barrier_does_not_wedge_the_worker`,
//! `a_stall_handler_whose_drop_calls_rcu_barrier_does_not_wedge_the_worker`.
//!
//! The tests run one at a time ([`run_serially`]): they change the global domain's settings
//! and count its panics exactly, and shrinkers are process-wide. Provoked panics are kept out of
//! the output by a panic hook, and the runtime's one-line reports of them by a report sink
//! (`rcu_tests::quiet`), which records them for the tests to check.
#![cfg(not(loom))]

mod common;
#[path = "common/failing_alloc.rs"]
mod failing_alloc;

use std::future::Future;
use std::ops::Deref;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{gettid, wait_until, Pending, ReaderThread, HOLD, PATIENCE};
use failing_alloc::{failing_blocks, FailBlocks};
use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, Shrinker, ShrinkerHandle, StallHandler, StallReport};
use rcu_tests::drop_log::DropLog;
use rcu_tests::SpinLock;

/// The stall timeout of the stall-handler tests.
const STALL: Duration = Duration::from_millis(50);

/// Bound on how long a stopped domain's threads may take to exit: normally milliseconds
/// (the worker re-checks every 50 ms); generous for a loaded machine.
const EXIT_PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Payloads.

/// How an injected panic panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    /// `panic!` with a message.
    Plain,
    /// `panic_any(Bomb(1))`: dropping the payload panics (with a message).
    Bomb,
    /// `panic_any(Bomb(2))`: dropping the payload panics with `Bomb(1)`, whose drop panics.
    BombInBomb,
}

/// A panic payload whose drop panics: `Bomb(1)` with a message, `Bomb(n)` with `Bomb(n - 1)`.
struct Bomb(u8);

impl Drop for Bomb {
    fn drop(&mut self) {
        match self.0 {
            0 => {}
            1 => panic!("a panic payload's drop panics (on purpose)"),
            n => panic_any(Bomb(n - 1)),
        }
    }
}

/// Panics as `payload` says; `site` names the place in a plain panic's message.
fn provoke(payload: Payload, site: &str) -> ! {
    match payload {
        Payload::Plain => panic!("{site} panics (on purpose)"),
        Payload::Bomb => panic_any(Bomb(1)),
        Payload::BombInBomb => panic_any(Bomb(2)),
    }
}

/// Keeps the panics these tests provoke, and the runtime's reports of them, out of the
/// output (any other panic or report is printed).
fn quiet_provoked_panics() {
    rcu_tests::quiet::quiet_payloads(|payload| payload.is::<Bomb>());
    for provoked in [
        "RCU callback(s) of domain '",
        "an async waker panicked on the",
        "the stall handler of domain '",
        "shrinker call(s) panicked",
    ] {
        rcu_tests::quiet::quiet_reports(provoked);
    }
}

/// Waits for the runtime's reports of `injected` more panicking callbacks of `dom` than
/// `before` (a report follows the count the test checked).
fn assert_callbacks_reported(dom: &Domain, before: u64, injected: u64) {
    let reported = || rcu_tests::quiet::reported_callback_panics(dom.name());
    assert!(
        wait_until(PATIENCE, || reported() >= before + injected),
        "{injected} callback panics of domain '{}' counted, {} reported",
        dom.name(),
        reported() - before
    );
    assert_eq!(reported() - before, injected, "a callback panic reported twice");
}

/// Runs a test's body on a thread of its own, one test at a time (see the module docs), and
/// joins that thread before the next test may start: a thread that used the global domain
/// hands its cached blocks to the worker when it exits, which makes the worker lead a grace
/// period; that exit must not overlap the next test (whose stall handler would then run on
/// the worker instead of the caller it expects). Installs the panic hook.
fn run_serially(body: impl FnOnce() + Send + 'static) {
    static SERIAL: Mutex<()> = Mutex::new(());
    quiet_provoked_panics();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let thread = std::thread::Builder::new().name("pc-site".into()).spawn(body);
    if let Err(panic) = thread.expect("spawn a test thread").join() {
        // A provoked panic that reached the test escaped from the runtime: say so (the hook
        // keeps its own message quiet, and the test harness would drop a `Bomb` and panic in
        // its own code).
        if panic.is::<Bomb>() {
            std::mem::forget(panic);
            panic!("a provoked panic's payload (a Bomb) escaped from the runtime to the test");
        }
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("(on purpose)") {
            let message = message.replace(" (on purpose)", "");
            panic!("a provoked panic escaped from the runtime to the test: {message}");
        }
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------
// Where injected code ran.

/// The thread injected code is expected to run on (`expect_on`), and how often it ran there
/// and elsewhere. SeqCst (all three): plain test bookkeeping, read after the runtime ran the
/// code (a barrier, a wait that saw its effect).
static EXPECT_TID: AtomicI32 = AtomicI32::new(0);
static RAN_THERE: AtomicUsize = AtomicUsize::new(0);
static RAN_ELSEWHERE: AtomicUsize = AtomicUsize::new(0);

fn expect_on(tid: i32) {
    EXPECT_TID.store(tid, Ordering::SeqCst);
    RAN_THERE.store(0, Ordering::SeqCst);
    RAN_ELSEWHERE.store(0, Ordering::SeqCst);
}

/// Called by injected code just before it panics.
fn note_ran() {
    if gettid() == EXPECT_TID.load(Ordering::SeqCst) {
        RAN_THERE.fetch_add(1, Ordering::SeqCst);
    } else {
        RAN_ELSEWHERE.fetch_add(1, Ordering::SeqCst);
    }
}

/// (runs on the expected thread, runs elsewhere).
fn ran() -> (usize, usize) {
    (RAN_THERE.load(Ordering::SeqCst), RAN_ELSEWHERE.load(Ordering::SeqCst))
}

/// A `call_rcu` callback that panics as its object says.
fn panicking_callback(obj: Box<Rcu<Payload>>, _ctx: &Atomic<'_>) {
    note_ran();
    let payload = **obj;
    drop(obj);
    provoke(payload, "an RCU callback");
}

/// A `call_rcu` callback that counts.
fn counting_callback(obj: Box<Rcu<Arc<AtomicUsize>>>, _ctx: &Atomic<'_>) {
    // SeqCst: read by the test after the run it waits for.
    obj.fetch_add(1, Ordering::SeqCst);
    drop(obj);
}

/// A value whose drop panics (a retired value's `Drop`).
struct PanicOnDrop(Payload);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        note_ran();
        if !std::thread::panicking() {
            provoke(self.0, "a retired value's drop");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Domains.

/// The global domain, or a private one: what a site test runs on.
#[derive(Clone, Debug)]
enum Dom {
    Global,
    Private(Arc<Domain>),
}

impl Deref for Dom {
    type Target = Domain;
    fn deref(&self) -> &Domain {
        match self {
            Dom::Global => Domain::global(),
            Dom::Private(domain) => domain,
        }
    }
}

impl Dom {
    /// A new private domain made from `config`, named `pNNN` (its threads' names, `rcu-gp-pNNN`
    /// and `rcu-refill-pNNN`, are then unique and untruncated).
    fn private(config: DomainConfig) -> Dom {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // Relaxed: a unique number is all that is needed.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Dom::Private(Arc::new(Domain::new(config.name(format!("p{n:03}")))))
    }

    /// The kernel thread id of the domain's worker.
    #[track_caller]
    fn worker_tid(&self) -> i32 {
        self.runtime_thread("gp")
    }

    /// The kernel thread id of the domain's runtime thread `rcu-{kind}-{name}`.
    #[track_caller]
    fn runtime_thread(&self, kind: &str) -> i32 {
        let name = format!("rcu-{kind}-{}", self.name());
        let mut tid = None;
        assert!(
            wait_until(PATIENCE, || {
                tid = task_named(&name);
                tid.is_some()
            }),
            "no thread named {name}"
        );
        tid.expect("checked above")
    }
}

/// A thread's name as the kernel shows it: cut to 15 bytes.
fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(15)]
}

/// The kernel thread id of this process's thread called `name`, if the listing shows one.
/// Only to find a thread: a listing of /proc/self/task may skip a live thread when another
/// exits meanwhile (it resumes by position), so "not listed" does not mean "exited"; see
/// `still_runs`. Panics if the threads cannot be listed.
fn task_named(name: &str) -> Option<i32> {
    let name = kernel_name(name);
    let tasks = std::fs::read_dir("/proc/self/task").expect("list /proc/self/task");
    tasks.map(|task| task.expect("list /proc/self/task")).find_map(|task| {
        // A thread that exited meanwhile has no `comm` left: not the one looked for.
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        (comm.trim_end() == name).then(|| task.file_name().to_str()?.parse().ok()).flatten()
    })
}

/// True while thread `tid`, found by `task_named(name)`, has not exited: looked up by its id,
/// which no other thread's exit can hide (a later thread given the same id has another
/// name). Panics on an error other than "no such thread".
fn still_runs(tid: i32, name: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) {
        Ok(comm) => comm.trim_end() == kernel_name(name),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            false
        }
        Err(e) => panic!("read /proc/self/task/{tid}/comm: {e}"),
    }
}

/// Restores the global domain's settings that tests change.
struct RestoreGlobal;

impl Drop for RestoreGlobal {
    fn drop(&mut self) {
        let global = Domain::global();
        global.set_stall_handler(None);
        global.set_stall_timeout(Duration::from_secs(21));
        global.set_batch_delay(Duration::from_millis(5));
    }
}

/// Runs `site` on the global domain, then on a new private domain made from `config`.
fn on_both(config: DomainConfig, mut site: impl FnMut(&Dom)) {
    let _restore = RestoreGlobal;
    site(&Dom::Global);
    site(&Dom::private(config));
}

// ---------------------------------------------------------------------------------------
// Executors and wakers.

/// What a [`TestWaker`] saw. SeqCst (all): test bookkeeping shared with the worker.
#[derive(Debug, Default)]
struct WakeLog {
    woken: AtomicBool,
    wakes: AtomicUsize,
    wake_tid: AtomicI32,
    dropped: AtomicBool,
    drop_tid: AtomicI32,
}

impl WakeLog {
    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

/// A waker that records its wakes (and unparks the thread that made it), and panics in its
/// wake or its drop if told to.
struct TestWaker {
    log: Arc<WakeLog>,
    thread: std::thread::Thread,
    panic_in_wake: Option<Payload>,
    panic_in_drop: Option<Payload>,
}

impl Wake for TestWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.log.wakes.fetch_add(1, Ordering::SeqCst);
        self.log.wake_tid.store(gettid(), Ordering::SeqCst);
        if let Some(payload) = self.panic_in_wake {
            note_ran();
            provoke(payload, "a Waker's wake");
        }
        self.log.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

impl Drop for TestWaker {
    fn drop(&mut self) {
        self.log.drop_tid.store(gettid(), Ordering::SeqCst);
        self.log.dropped.store(true, Ordering::SeqCst);
        if let Some(payload) = self.panic_in_drop {
            note_ran();
            if !std::thread::panicking() {
                provoke(payload, "a Waker's drop");
            }
        }
    }
}

fn test_waker(log: &Arc<WakeLog>, in_wake: Option<Payload>, in_drop: Option<Payload>) -> Waker {
    Waker::from(Arc::new(TestWaker {
        log: log.clone(),
        thread: std::thread::current(),
        panic_in_wake: in_wake,
        panic_in_drop: in_drop,
    }))
}

fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut TaskContext::from_waker(waker))
}

/// An executor that polls only when woken: polls `fut`, then waits (at most `PATIENCE`) for
/// its waker before polling again. A future whose wake never comes fails the test.
#[track_caller]
fn block_on_woken<F: Future + Unpin>(mut fut: F, what: &str) -> F::Output {
    let log = Arc::new(WakeLog::default());
    let waker = test_waker(&log, None, None);
    loop {
        // Cleared before the poll: a wake during the poll is not lost.
        log.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(v) = poll_once(&mut fut, &waker) {
            return v;
        }
        let deadline = Instant::now() + PATIENCE;
        while !log.woken.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{what}: the future was never woken ({PATIENCE:?})");
            std::thread::park_timeout(left);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The check after every injection.

/// `rcu_barrier` on a helper thread, joined within `PATIENCE`: a barrier whose worker died
/// fails the test instead of hanging it.
#[track_caller]
fn barrier_within_patience(dom: &Dom, what: &str) {
    let domain = dom.clone();
    Pending::spawn("pc-barrier", move || domain.rcu_barrier(&Sleepable::enter()))
        .join(&format!("rcu_barrier of domain '{}' {what}", dom.name()));
}

/// The domain still serves after the injection `after`: a callback and a deferred free queued
/// now run, `rcu_barrier` returns, and both kinds of async future are woken and complete.
#[track_caller]
fn assert_serving(dom: &Dom, after: &str) {
    let ctx = Sleepable::enter();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    // SeqCst: read after the barrier, which orders the callback before its return anyway.
    dom.call_rcu_fn(&ctx, move |_| flag.store(true, Ordering::SeqCst));
    let log = DropLog::new(1);
    dom.kvfree_rcu(&ctx, Rcu::boxed(log.track()));
    barrier_within_patience(dom, &format!("after {after}"));
    assert!(ran.load(Ordering::SeqCst), "a callback queued after {after} never ran");
    log.assert_all_freed_once();
    block_on_woken(dom.synchronize_rcu_async(), &format!("synchronize_rcu_async after {after}"));
    block_on_woken(dom.rcu_barrier_async(), &format!("rcu_barrier_async after {after}"));
}

// ---------------------------------------------------------------------------------------
// Sites: batches on the worker.

/// What user code a batch on the worker runs.
#[derive(Clone, Copy, Debug)]
enum WorkerItem {
    Callback,
    Closure,
    RetiredDrop,
}

/// Queues panicking items (and one that counts, after them), and has the worker run them
/// with a barrier. On the private domain (4-entry blocks) the retired values fill a block
/// that its owner seals under `Reclaim` and parks: the barrier's collection takes it, tagged,
/// so the worker drops the values and gives their deallocations back
/// (`run_keeping_dealloc`), which the barrier finishes.
fn on_the_worker(item: WorkerItem, payload: Payload) {
    on_both(DomainConfig::new().alloc(AllocConfig::new().small_blocks()), |dom| {
        let mut ctx = Sleepable::enter();
        dom.register_current_thread(&ctx);
        expect_on(dom.worker_tid());
        let reported = rcu_tests::quiet::reported_callback_panics(dom.name());
        let before = dom.stats();
        let injected = match item {
            WorkerItem::Callback => {
                dom.call_rcu(&ctx, Rcu::boxed(payload), panicking_callback);
                1
            }
            WorkerItem::Closure => {
                let capture = Arc::new(());
                dom.call_rcu_fn(&ctx, move |_| {
                    let _keep = &capture;
                    note_ran();
                    provoke(payload, "a call_rcu_fn closure");
                });
                1
            }
            WorkerItem::RetiredDrop => {
                dom.kvfree_rcu(&ctx, Rcu::boxed(PanicOnDrop(payload)));
                dom.kvfree_rcu_mightsleep(&ctx, Box::new(PanicOnDrop(payload)));
                dom.kvfree_rcu(&ctx.atomic(), Rcu::boxed(PanicOnDrop(payload)));
                dom.kvfree_rcu(&ctx.no_reclaim(), Rcu::boxed(PanicOnDrop(payload)));
                4
            }
        };
        let followers = Arc::new(AtomicUsize::new(0));
        dom.call_rcu(&ctx, Rcu::boxed(followers.clone()), counting_callback);
        barrier_within_patience(dom, &format!("whose batch had {injected} panicking {item:?}"));
        assert_eq!(ran(), (injected, 0), "{item:?} did not run (only) on the worker");
        let after = dom.stats();
        assert_eq!(after.callback_panics - before.callback_panics, injected as u64, "{after:?}");
        assert_callbacks_reported(dom, reported, injected as u64);
        // SeqCst: as in `counting_callback`.
        assert_eq!(followers.load(Ordering::SeqCst), 1, "the item after the panics never ran");
        assert_serving(dom, &format!("a panicking {item:?} ({payload:?})"));
    });
}

fn callback_on_the_worker(payload: Payload) {
    on_the_worker(WorkerItem::Callback, payload);
}

fn closure_on_the_worker(payload: Payload) {
    on_the_worker(WorkerItem::Closure, payload);
}

fn retired_drop_on_the_worker(payload: Payload) {
    on_the_worker(WorkerItem::RetiredDrop, payload);
}

/// A dropped domain's worker runs what is queued, then exits: with panicking items among
/// them it still runs the rest and exits (it does not die on the way, nor stay).
fn final_run_of_a_dropped_domain(payload: Payload) {
    let dom = Dom::private(DomainConfig::new());
    let name = dom.name().to_owned();
    let ctx = Sleepable::enter();
    dom.register_current_thread(&ctx);
    let threads =
        ["gp", "refill"].map(|kind| (dom.runtime_thread(kind), format!("rcu-{kind}-{name}")));
    expect_on(threads[0].0);
    dom.call_rcu(&ctx, Rcu::boxed(payload), panicking_callback);
    dom.call_rcu_fn(&ctx, move |_| {
        note_ran();
        provoke(payload, "a call_rcu_fn closure of a dropped domain");
    });
    dom.kvfree_rcu(&ctx, Rcu::boxed(PanicOnDrop(payload)));
    let followers = Arc::new(AtomicUsize::new(0));
    dom.call_rcu(&ctx, Rcu::boxed(followers.clone()), counting_callback);
    drop(dom);
    let gone =
        wait_until(EXIT_PATIENCE, || threads.iter().all(|(tid, name)| !still_runs(*tid, name)));
    assert!(gone, "the threads of dropped domain '{name}' still run after {EXIT_PATIENCE:?}");
    // The worker ran everything before it exited.
    assert_eq!(ran(), (3, 0), "the dropped domain's items did not run (only) on its worker");
    // SeqCst: as in `counting_callback`.
    assert_eq!(followers.load(Ordering::SeqCst), 1, "the item after the panics never ran");
}

// ---------------------------------------------------------------------------------------
// Sites: inline runs in the caller's call.

/// Callbacks of a parked block run inline, on the caller's thread, when a `Sleepable` call
/// reaches its next block boundary after the block's grace period: the call returns normally.
/// The batch delay is "never", so the worker collects nothing but what the barrier at the
/// start asks for, which leaves the thread without a current block.
fn inline_at_a_block_boundary(payload: Payload) {
    let small = AllocConfig::new().small_blocks();
    let config = DomainConfig::new().alloc(small).batch_delay(Duration::MAX);
    on_both(config, |dom| {
        let cap = match dom {
            Dom::Global => {
                Domain::global().set_batch_delay(Duration::MAX);
                AllocConfig::new().block_capacity()
            }
            Dom::Private(_) => small.block_capacity(),
        };
        let ctx = Sleepable::enter();
        dom.register_current_thread(&ctx);
        // Empties this thread's blocks; the worker has seen the batch delay once it returns.
        dom.rcu_barrier(&ctx);
        expect_on(gettid());
        let reported = rcu_tests::quiet::reported_callback_panics(dom.name());
        let before = dom.stats();
        let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        dom.call_rcu(&ctx, Rcu::boxed(payload), panicking_callback);
        for _ in 1..cap {
            dom.call_rcu(&ctx, Rcu::boxed(first.clone()), counting_callback);
        }
        // The first block is full: this call seals and parks it.
        dom.call_rcu(&ctx, Rcu::boxed(second.clone()), counting_callback);
        dom.synchronize_rcu(&ctx);
        for _ in 1..cap {
            dom.call_rcu(&ctx, Rcu::boxed(second.clone()), counting_callback);
        }
        assert_eq!(ran(), (0, 0), "the parked block ran before its owner's block boundary");
        // The second block is full: this call runs the first one, ready, inline.
        dom.call_rcu(&ctx, Rcu::boxed(second.clone()), counting_callback);
        assert_eq!(ran(), (1, 0), "the parked block's callback did not run inline");
        // SeqCst: as in `counting_callback`.
        assert_eq!(first.load(Ordering::SeqCst), cap - 1, "the rest of the block did not run");
        let after = dom.stats();
        assert_eq!(after.callback_panics - before.callback_panics, 1, "{after:?}");
        assert_callbacks_reported(dom, reported, 1);
        assert_serving(dom, &format!("a panicking callback run inline ({payload:?})"));
    });
}

/// On the global domain, a block sealed under `Atomic` is parked for its thread, which runs
/// it (once its grace period has passed) when it next opens a scope from its `Sleepable`
/// token: the opening returns normally.
fn inline_at_a_scope_opening(payload: Payload) {
    let _restore = RestoreGlobal;
    let global = Domain::global();
    global.set_batch_delay(Duration::MAX);
    let cap = AllocConfig::new().block_capacity();
    let mut ctx = Sleepable::enter();
    global.register_current_thread(&ctx);
    global.rcu_barrier(&ctx);
    expect_on(gettid());
    let reported = rcu_tests::quiet::reported_callback_panics(global.name());
    let before = global.stats();
    let followers = Arc::new(AtomicUsize::new(0));
    // From the `Sleepable` token, which may allocate the block the rest fill: an `Atomic`
    // call may only take one from the pool, which may not be stocked yet on the global
    // domain's first use (its items then go to the worker, as a fallback: issue 23's CI).
    global.call_rcu(&ctx, Rcu::boxed(payload), panicking_callback);
    {
        let atomic = ctx.atomic();
        for _ in 1..cap {
            global.call_rcu(&atomic, Rcu::boxed(followers.clone()), counting_callback);
        }
        // Seals the full block and parks it, owed to this thread.
        global.call_rcu(&atomic, Rcu::boxed(Arc::new(AtomicUsize::new(0))), counting_callback);
    }
    global.synchronize_rcu(&ctx);
    assert_eq!(ran(), (0, 0), "the parked block ran before a scope opening paid it");
    drop(ctx.atomic());
    assert_eq!(ran(), (1, 0), "the owed block's callback did not run in the scope opening");
    // SeqCst: as in `counting_callback`.
    assert_eq!(followers.load(Ordering::SeqCst), cap - 1, "the rest of the block did not run");
    let after = global.stats();
    assert_eq!(after.callback_panics - before.callback_panics, 1, "{after:?}");
    assert_callbacks_reported(global, reported, 1);
    assert_serving(
        &Dom::Global,
        &format!("a panicking callback paid at a scope opening ({payload:?})"),
    );
}

// ---------------------------------------------------------------------------------------
// Sites: wakers.

/// A `synchronize_rcu_async` and an `rcu_barrier_async` future, each polled once (Pending:
/// `reader` holds their grace period) with a waker made by `waker`.
fn two_pending_futures(
    dom: &Dom,
    ctx: &Sleepable,
    waker: impl Fn(&Arc<WakeLog>) -> Waker,
) -> [(Arc<WakeLog>, Box<dyn Future<Output = ()> + Unpin>); 2] {
    let gp_log = Arc::new(WakeLog::default());
    let mut gp = dom.synchronize_rcu_async();
    assert!(poll_once(&mut gp, &waker(&gp_log)).is_pending(), "no reader holds the grace period");
    // A batch that needs a grace period, so that the barrier's generation waits for it.
    dom.kvfree_rcu(ctx, Rcu::boxed(0u64));
    let barrier_log = Arc::new(WakeLog::default());
    let mut barrier = dom.rcu_barrier_async();
    assert!(poll_once(&mut barrier, &waker(&barrier_log)).is_pending(), "no reader holds it");
    [(gp_log, Box::new(gp)), (barrier_log, Box::new(barrier))]
}

/// The worker wakes a future's waker, whose `wake` panics (issue 22, defect 4: one such
/// waker stopped the worker for good).
fn waker_wake(payload: Payload) {
    on_both(DomainConfig::new(), |dom| {
        let ctx = Sleepable::enter();
        dom.register_current_thread(&ctx);
        let worker = dom.worker_tid();
        expect_on(worker);
        let before = dom.stats();
        let mut reader = ReaderThread::spawn(dom.clone(), "pc-reader");
        reader.enter();
        let futures = two_pending_futures(dom, &ctx, |log| test_waker(log, Some(payload), None));
        reader.exit();
        let woken = wait_until(PATIENCE, || futures.iter().all(|(log, _)| log.wakes() >= 1));
        let wakes: Vec<usize> = futures.iter().map(|(log, _)| log.wakes()).collect();
        assert!(woken, "the worker did not wake both registered wakers (wakes: {wakes:?})");
        for (log, _) in &futures {
            assert_eq!(log.wake_tid.load(Ordering::SeqCst), worker, "woken elsewhere");
        }
        assert!(
            wait_until(PATIENCE, || dom.stats().contained_panics >= before.contained_panics + 2)
        );
        drop(futures);
        assert_serving(dom, &format!("two panicking wakes ({payload:?})"));
        let after = dom.stats();
        assert_eq!(after.contained_panics - before.contained_panics, 2, "{after:?}");
        assert_eq!(ran(), (2, 0));
    });
}

/// The futures are dropped while registered: the registry's reference to each waker is the
/// last, so the worker drops the wakers when it unlinks the cancelled nodes, and each drop
/// panics.
fn waker_drop(payload: Payload) {
    on_both(DomainConfig::new(), |dom| {
        let ctx = Sleepable::enter();
        dom.register_current_thread(&ctx);
        let worker = dom.worker_tid();
        expect_on(worker);
        let before = dom.stats();
        let mut reader = ReaderThread::spawn(dom.clone(), "pc-reader");
        reader.enter();
        let futures = two_pending_futures(dom, &ctx, |log| test_waker(log, None, Some(payload)));
        let logs: Vec<Arc<WakeLog>> = futures.iter().map(|(log, _)| log.clone()).collect();
        // The wakers made for the polls are gone; dropping the futures cancels the nodes, so
        // the worker's next pass drops the wakers.
        drop(futures);
        reader.exit();
        let dropped =
            wait_until(PATIENCE, || logs.iter().all(|l| l.dropped.load(Ordering::SeqCst)));
        assert!(dropped, "the worker never dropped the cancelled registrations");
        for log in &logs {
            assert_eq!(log.drop_tid.load(Ordering::SeqCst), worker, "dropped elsewhere");
        }
        assert!(
            wait_until(PATIENCE, || dom.stats().contained_panics >= before.contained_panics + 2)
        );
        assert_serving(dom, &format!("two panicking waker drops ({payload:?})"));
        let after = dom.stats();
        assert_eq!(after.contained_panics - before.contained_panics, 2, "{after:?}");
        assert_eq!(ran(), (2, 0));
    });
}

// ---------------------------------------------------------------------------------------
// Sites: stall handlers.

/// Calls of the current test's stall handler, and the thread of the last one. SeqCst (both):
/// test bookkeeping shared with the leader's thread.
static STALL_CALLS: AtomicUsize = AtomicUsize::new(0);
static STALL_TID: AtomicI32 = AtomicI32::new(0);

/// A stall handler that records its call, then panics as `payload` says.
fn panicking_stall_handler(payload: Payload) -> StallHandler {
    STALL_CALLS.store(0, Ordering::SeqCst);
    Arc::new(move |_: &StallReport| {
        STALL_CALLS.fetch_add(1, Ordering::SeqCst);
        STALL_TID.store(gettid(), Ordering::SeqCst);
        note_ran();
        provoke(payload, "a stall handler");
    })
}

fn stall_config() -> DomainConfig {
    DomainConfig::new().stall_timeout(STALL)
}

/// Sets the stall timeout on the global domain (private ones were made with it), and lets the
/// worker finish whatever it had in flight, so that it leads no grace period of its own.
fn prepare_stall(dom: &Dom, ctx: &Sleepable) {
    if let Dom::Global = dom {
        Domain::global().set_stall_timeout(STALL);
    }
    dom.register_current_thread(ctx);
    dom.rcu_barrier(ctx);
}

/// A `synchronize_rcu` caller leads the stalled grace period: its stall handler panics in the
/// caller's call, which goes on waiting for the reader (no panic frees early), then returns.
fn stall_handler_in_synchronize(payload: Payload) {
    on_both(stall_config(), |dom| {
        let ctx = Sleepable::enter();
        prepare_stall(dom, &ctx);
        let before = dom.stats();
        dom.set_stall_handler(Some(panicking_stall_handler(payload)));
        let mut reader = ReaderThread::spawn(dom.clone(), "pc-reader");
        reader.enter();
        let writer_tid = Arc::new(AtomicI32::new(0));
        expect_on(-1);
        let mut writer = Pending::spawn("pc-writer", {
            let (dom, writer_tid) = (dom.clone(), writer_tid.clone());
            move || {
                let tid = gettid();
                writer_tid.store(tid, Ordering::SeqCst);
                EXPECT_TID.store(tid, Ordering::SeqCst);
                dom.synchronize_rcu(&Sleepable::enter());
            }
        });
        let reported = wait_until(PATIENCE, || {
            dom.stats().contained_panics > before.contained_panics || writer.is_done()
        });
        assert!(reported, "no stall report reached the handler in {PATIENCE:?}");
        for _ in 0..2 {
            assert!(
                !writer.is_done(),
                "synchronize_rcu returned while its reader was still inside (its stall \
                 handler panicked)"
            );
            std::thread::sleep(HOLD / 2);
        }
        assert_eq!(STALL_TID.load(Ordering::SeqCst), writer_tid.load(Ordering::SeqCst));
        reader.exit();
        writer.join("synchronize_rcu whose stall handler panicked, once its reader left");
        let calls = STALL_CALLS.load(Ordering::SeqCst);
        let after = dom.stats();
        assert_eq!(after.contained_panics - before.contained_panics, calls as u64, "{after:?}");
        assert_eq!(ran(), (calls, 0), "the handler ran on another thread than the writer");
        dom.set_stall_handler(None);
        assert_serving(dom, &format!("a panicking stall handler in synchronize_rcu ({payload:?})"));
    });
}

/// The worker leads the stalled grace period (asked for by `start_poll`): its stall handler
/// panics on the worker (issue 22, defect 6: the worker died).
fn stall_handler_on_the_worker(payload: Payload) {
    on_both(stall_config(), |dom| {
        let ctx = Sleepable::enter();
        prepare_stall(dom, &ctx);
        let worker = dom.worker_tid();
        expect_on(worker);
        let before = dom.stats();
        dom.set_stall_handler(Some(panicking_stall_handler(payload)));
        let mut reader = ReaderThread::spawn(dom.clone(), "pc-reader");
        reader.enter();
        // Retired after the reader entered: freed only after it leaves, panic or not.
        let log = DropLog::new(1);
        dom.kvfree_rcu(&ctx, Rcu::boxed(log.track()));
        let cookie = dom.start_poll(&ctx);
        let reported =
            wait_until(PATIENCE, || dom.stats().contained_panics > before.contained_panics);
        assert!(reported, "no stall report reached the handler in {PATIENCE:?}");
        assert_eq!(STALL_TID.load(Ordering::SeqCst), worker, "the worker did not lead");
        for _ in 0..2 {
            assert!(
                !log.is_freed(0),
                "freed while its reader was inside (a stall handler panicked)"
            );
            std::thread::sleep(HOLD / 2);
        }
        reader.exit();
        assert!(wait_until(PATIENCE, || dom.poll(cookie)), "the grace period never completed");
        let calls = STALL_CALLS.load(Ordering::SeqCst);
        let after = dom.stats();
        assert_eq!(after.contained_panics - before.contained_panics, calls as u64, "{after:?}");
        assert_eq!(ran(), (calls, 0), "the handler ran on another thread than the worker");
        dom.set_stall_handler(None);
        assert_serving(dom, &format!("a panicking stall handler on the worker ({payload:?})"));
        log.assert_all_freed_once();
    });
}

/// Panics when dropped, as its payload says.
struct ProvokeOnDrop(Payload);

impl Drop for ProvokeOnDrop {
    fn drop(&mut self) {
        note_ran();
        if !std::thread::panicking() {
            provoke(self.0, "a stall handler's drop");
        }
    }
}

/// The handler is replaced while it runs (on the worker), so the reference `report` holds is
/// the last: the handler's drop, which panics, runs on the worker after the call.
fn stall_handler_drop(payload: Payload) {
    static RELEASE: AtomicBool = AtomicBool::new(false);
    on_both(stall_config(), |dom| {
        let ctx = Sleepable::enter();
        prepare_stall(dom, &ctx);
        let worker = dom.worker_tid();
        expect_on(worker);
        let before = dom.stats();
        STALL_CALLS.store(0, Ordering::SeqCst);
        RELEASE.store(false, Ordering::SeqCst);
        let on_drop = ProvokeOnDrop(payload);
        dom.set_stall_handler(Some(Arc::new(move |_: &StallReport| {
            let _keep = &on_drop;
            STALL_CALLS.fetch_add(1, Ordering::SeqCst);
            STALL_TID.store(gettid(), Ordering::SeqCst);
            // Until the test has replaced this handler (bounded: a failing test goes on).
            let start = Instant::now();
            while !RELEASE.load(Ordering::SeqCst) && start.elapsed() < PATIENCE {
                std::thread::sleep(Duration::from_millis(1));
            }
        })));
        let mut reader = ReaderThread::spawn(dom.clone(), "pc-reader");
        reader.enter();
        let cookie = dom.start_poll(&ctx);
        let called = wait_until(PATIENCE, || STALL_CALLS.load(Ordering::SeqCst) > 0);
        assert!(called, "no stall report reached the handler in {PATIENCE:?}");
        dom.set_stall_handler(Some(Arc::new(|_: &StallReport| {})));
        RELEASE.store(true, Ordering::SeqCst);
        let contained =
            wait_until(PATIENCE, || dom.stats().contained_panics > before.contained_panics);
        assert!(contained, "the handler's drop panicked uncounted (or never ran)");
        assert_eq!(STALL_TID.load(Ordering::SeqCst), worker, "the worker did not lead");
        assert_eq!(ran(), (1, 0), "the handler was not dropped on the worker");
        reader.exit();
        assert!(wait_until(PATIENCE, || dom.poll(cookie)), "the grace period never completed");
        dom.set_stall_handler(None);
        assert_serving(dom, &format!("a stall handler whose drop panicked ({payload:?})"));
        let after = dom.stats();
        assert_eq!(after.contained_panics - before.contained_panics, 1, "{after:?}");
    });
}

// ---------------------------------------------------------------------------------------
// Sites: shrinkers.

/// Where a [`PanickyShrinker`] panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PanicsIn {
    Count,
    Scan,
    /// In its drop, which the runtime runs: `scan` unregisters the shrinker, so the clone
    /// the runtime holds for the call is the last reference.
    Drop,
}

struct PanickyShrinker {
    panics: PanicsIn,
    payload: Payload,
    /// Its own registration, for `InDrop` (dropped by `scan`).
    handle: SpinLock<Option<ShrinkerHandle>>,
}

impl Shrinker for PanickyShrinker {
    fn count(&self) -> usize {
        if self.panics == PanicsIn::Count {
            note_ran();
            provoke(self.payload, "a shrinker's count");
        }
        1
    }

    fn scan(&self, _nr_to_scan: usize) -> usize {
        if self.panics == PanicsIn::Scan {
            note_ran();
            provoke(self.payload, "a shrinker's scan");
        }
        drop(self.handle.with(Option::take));
        0
    }
}

impl Drop for PanickyShrinker {
    fn drop(&mut self) {
        if self.panics == PanicsIn::Drop && !std::thread::panicking() {
            note_ran();
            provoke(self.payload, "a shrinker's drop");
        }
    }
}

/// A `Sleepable` free on a domain whose block allocation really fails runs the shrinkers, in
/// the caller's call: the call returns normally and its item is freed later.
fn shrinker_site(panics: PanicsIn, payload: Payload) {
    let dom = Dom::private(DomainConfig::new().alloc(failing_blocks()));
    let ctx = Sleepable::enter();
    dom.register_current_thread(&ctx);
    expect_on(gettid());
    let shrinker = Arc::new(PanickyShrinker { panics, payload, handle: SpinLock::new(None) });
    let handle = rcu_core::register_shrinker(shrinker.clone());
    let kept = if panics == PanicsIn::Drop {
        shrinker.handle.with(|h| *h = Some(handle));
        drop(shrinker);
        None
    } else {
        Some((handle, shrinker))
    };
    let before = dom.alloc_stats();
    let log = DropLog::new(1);
    let outcome = {
        let _fail = FailBlocks::on();
        catch_unwind(AssertUnwindSafe(|| dom.kvfree_rcu(&ctx, Rcu::boxed(log.track()))))
    };
    assert!(outcome.is_ok(), "kvfree_rcu unwound with the panic of a shrinker ({panics:?})");
    let after = dom.alloc_stats();
    assert!(after.alloc_failures_real > before.alloc_failures_real, "{after:?}");
    assert_eq!(after.shrinker_panics - before.shrinker_panics, 1, "{after:?}");
    assert_eq!(ran(), (1, 0), "the shrinker did not run in the caller's call");
    drop(kept);
    assert_serving(&dom, &format!("a shrinker that panicked {panics:?} ({payload:?})"));
    log.assert_all_freed_once();
}

fn shrinker_count(payload: Payload) {
    shrinker_site(PanicsIn::Count, payload);
}

fn shrinker_scan(payload: Payload) {
    shrinker_site(PanicsIn::Scan, payload);
}

fn shrinker_drop(payload: Payload) {
    shrinker_site(PanicsIn::Drop, payload);
}

// ---------------------------------------------------------------------------------------
// Wedges: user code the worker runs outside any restricted scope, which waits for the worker.

/// Calls `rcu_barrier` of `domain` with a root acquired on the spot: what hostile user code
/// run by the worker may do. Records that it started and whether it returned or panicked.
fn barrier_from_user_code(domain: &Domain, log: &WakeLog) {
    log.wakes.fetch_add(1, Ordering::SeqCst);
    // Returned, or refused with a panic: either way it came back, the worker is not wedged.
    let refused = "Sleepable::enter() called inside";
    let _ = rcu_tests::quiet::expect_panic_quietly(refused, || {
        domain.rcu_barrier(&Sleepable::enter());
    });
    log.woken.store(true, Ordering::SeqCst);
}

/// A waker whose `wake` calls `rcu_barrier` of the domain whose worker wakes it.
struct BarrierWaker(Arc<Domain>, Arc<WakeLog>);

impl Wake for BarrierWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        barrier_from_user_code(&self.0, &self.1);
    }
}

/// DESIGN §5.1: user code never wedges a runtime thread. A waker runs on the worker outside
/// any atomic or no-reclaim scope (so that it may lock and allocate), so a root `Sleepable`
/// can be acquired there, and an `rcu_barrier` of the same domain made with it waits for a
/// collection that only the worker, now inside the waker, can make: at cee4677 the worker
/// is wedged for ever, and so is every later barrier of the domain. (A stall handler's call
/// runs in an atomic scope, which refuses such a call with a panic.)
#[test]
fn a_waker_that_calls_rcu_barrier_does_not_wedge_the_worker() {
    run_serially(|| {
        let Dom::Private(domain) = Dom::private(DomainConfig::new()) else { unreachable!() };
        let log = Arc::new(WakeLog::default());
        let mut reader = ReaderThread::spawn(domain.clone(), "pc-reader");
        reader.enter();
        let mut fut = domain.synchronize_rcu_async();
        let waker = Waker::from(Arc::new(BarrierWaker(domain.clone(), log.clone())));
        assert!(poll_once(&mut fut, &waker).is_pending(), "no reader holds the grace period");
        reader.exit();
        assert!(wait_until(PATIENCE, || log.wakes() > 0), "the worker never woke the waker");
        assert!(
            wait_until(PATIENCE, || log.woken.load(Ordering::SeqCst)),
            "the waker's rcu_barrier neither returned nor was refused: the worker is wedged"
        );
        assert_serving(&Dom::Private(domain), "a waker that called rcu_barrier");
    });
}

/// Calls `rcu_barrier` of its domain when dropped.
struct BarrierOnDrop(Arc<Domain>, Arc<WakeLog>);

impl Drop for BarrierOnDrop {
    fn drop(&mut self) {
        barrier_from_user_code(&self.0, &self.1);
    }
}

/// The same for a stall handler's drop, which the worker runs after the call (outside the
/// call's atomic scope) when the handler was replaced meanwhile: at cee4677 the worker is
/// wedged for ever. (So would be a panic payload's drop, which `contain` runs after the
/// handler's atomic scope has unwound.)
#[test]
fn a_stall_handler_whose_drop_calls_rcu_barrier_does_not_wedge_the_worker() {
    static RELEASE: AtomicBool = AtomicBool::new(false);
    run_serially(|| {
        let Dom::Private(domain) = Dom::private(stall_config()) else { unreachable!() };
        let log = Arc::new(WakeLog::default());
        let on_drop = BarrierOnDrop(domain.clone(), log.clone());
        STALL_CALLS.store(0, Ordering::SeqCst);
        RELEASE.store(false, Ordering::SeqCst);
        domain.set_stall_handler(Some(Arc::new(move |_: &StallReport| {
            let _keep = &on_drop;
            STALL_CALLS.fetch_add(1, Ordering::SeqCst);
            let start = Instant::now();
            while !RELEASE.load(Ordering::SeqCst) && start.elapsed() < PATIENCE {
                std::thread::sleep(Duration::from_millis(1));
            }
        })));
        let mut reader = ReaderThread::spawn(domain.clone(), "pc-reader");
        reader.enter();
        let ctx = Sleepable::enter();
        let cookie = domain.start_poll(&ctx);
        assert!(wait_until(PATIENCE, || STALL_CALLS.load(Ordering::SeqCst) > 0));
        domain.set_stall_handler(None);
        RELEASE.store(true, Ordering::SeqCst);
        assert!(wait_until(PATIENCE, || log.wakes() > 0), "the handler was never dropped");
        reader.exit();
        assert!(
            wait_until(PATIENCE, || log.woken.load(Ordering::SeqCst)),
            "the handler drop's rcu_barrier neither returned nor was refused: the worker is \
             wedged"
        );
        assert!(wait_until(PATIENCE, || domain.poll(cookie)));
        assert_serving(&Dom::Private(domain), "a stall handler whose drop called rcu_barrier");
    });
}

// ---------------------------------------------------------------------------------------
// The tests: every site with every payload.

macro_rules! with_every_payload {
    ($($(#[$meta:meta])* $site:ident;)*) => {$(
        $(#[$meta])*
        mod $site {
            use super::Payload;

            #[test]
            fn plain() {
                super::run_serially(|| super::$site(Payload::Plain));
            }

            #[test]
            fn bomb() {
                super::run_serially(|| super::$site(Payload::Bomb));
            }

            #[test]
            fn bomb_in_bomb() {
                super::run_serially(|| super::$site(Payload::BombInBomb));
            }
        }
    )*};
}

with_every_payload! {
    /// A `call_rcu` callback, run by the worker.
    callback_on_the_worker;
    /// A `call_rcu_fn` closure, run by the worker (issue 22, defect 5).
    closure_on_the_worker;
    /// Retired values' drops, run by the worker.
    retired_drop_on_the_worker;
    /// What a dropped domain still had queued.
    final_run_of_a_dropped_domain;
    /// A parked block run inline at a `Sleepable` call's block boundary.
    inline_at_a_block_boundary;
    /// A parked block paid at a scope opening (global domain).
    inline_at_a_scope_opening;
    /// Wakers' wakes (issue 22, defect 4).
    waker_wake;
    /// Wakers' drops.
    waker_drop;
    /// A stall handler in a `synchronize_rcu` caller's grace period.
    stall_handler_in_synchronize;
    /// A stall handler on the worker (issue 22, defect 6).
    stall_handler_on_the_worker;
    /// A stall handler's drop.
    stall_handler_drop;
    /// A shrinker's `count`.
    shrinker_count;
    /// A shrinker's `scan`.
    shrinker_scan;
    /// A shrinker's drop.
    shrinker_drop;
}
