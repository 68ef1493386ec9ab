//! Keeping what the tests provoke on purpose out of a green run's stderr, while any other
//! panic or runtime report still prints.
//!
//! The runtime's threads are raw pthreads, so libtest's output capture does not reach them:
//! a panic there, or a report the runtime writes to fd 2, lands in the run's output even
//! when the test passes. Nothing here filters by thread or by test, since tests of one
//! binary run in parallel and one must not hide another's failure:
//!
//! - a panic is deliberate if its message carries [`ON_PURPOSE`] (the tests' own panics say
//!   it), if its payload is of a type a test registered with [`quiet_payloads`] (panics with
//!   a non-string payload), or if the panicking thread is inside [`expect_panic_quietly`]
//!   and the message has the substring it expects (the runtime's refusals, which cannot
//!   carry the marker); every other panic goes to the default hook;
//! - a runtime report is kept off stderr if it contains a substring a test registered with
//!   [`quiet_reports`] (each names what the test provokes, and its domain where it can); all
//!   reports are recorded, so tests can check them with [`wait_for_reports`].

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The marker of a panic raised on purpose by a test.
pub const ON_PURPOSE: &str = "(on purpose)";

// `PanicHookInfo` is newer than the MSRV (1.81); this alias names the same type on both.
#[allow(deprecated)]
type HookInfo<'a> = std::panic::PanicInfo<'a>;
type Hook = Box<dyn Fn(&HookInfo<'_>) + Sync + Send>;

/// The hook that was installed before ours (std's default). A pointer in an atomic rather
/// than a capture: the hook runs on runtime threads, and ThreadSanitizer (ci/tsan.sh) cannot
/// see std's own synchronisation of hooks, only this Release/Acquire pair.
static DEFAULT: AtomicPtr<Hook> = AtomicPtr::new(std::ptr::null_mut());

thread_local! {
    /// The substring a panic of this thread must carry to be expected (`expect_panic_quietly`).
    static EXPECTED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Installs, once per process, the panic hook described in the module docs.
pub fn quiet_deliberate_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = Box::into_raw(Box::new(std::panic::take_hook()));
        // Release: the hook is published before it can run; pairs with the Acquire below.
        DEFAULT.store(default, Ordering::Release);
        std::panic::set_hook(Box::new(|info| {
            if !is_deliberate(info.payload()) {
                // Acquire: pairs with the Release store above.
                let default = DEFAULT.load(Ordering::Acquire);
                // SAFETY: set (and leaked) before this hook was installed; never freed.
                unsafe { (*default)(info) };
            }
        }));
    });
}

/// Whether a panic with this payload was provoked on purpose (see the module docs).
fn is_deliberate(payload: &(dyn Any + Send)) -> bool {
    if PAYLOADS.iter().any(|p| p.matches(payload)) {
        return true;
    }
    let message = message(payload);
    message.contains(ON_PURPOSE)
        || EXPECTED
            .try_with(|e| e.get().is_some_and(|expected| message.contains(expected)))
            .unwrap_or(false)
}

/// The message of a panic payload (`""` for a payload of another type).
pub fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("")
}

/// Runs `f`, catching its panic; a panic of this thread whose message contains `expected`
/// is not printed meanwhile (any other still is). For the runtime's refusals, which a test
/// provokes but whose message it does not write.
pub fn expect_panic_quietly<R>(
    expected: &'static str,
    f: impl FnOnce() -> R,
) -> std::thread::Result<R> {
    quiet_deliberate_panics();
    let outer = EXPECTED.with(|e| e.replace(Some(expected)));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    EXPECTED.with(|e| e.set(outer));
    result
}

/// A registered test of a payload's type (`quiet_payloads`).
struct PayloadTest(AtomicPtr<()>);

impl PayloadTest {
    fn matches(&self, payload: &(dyn Any + Send)) -> bool {
        // Acquire: pairs with the Release CAS in `quiet_payloads`.
        let f = self.0.load(Ordering::Acquire);
        // SAFETY: non-null values are `fn(&(dyn Any + Send)) -> bool` (`quiet_payloads`).
        !f.is_null()
            && unsafe { std::mem::transmute::<*mut (), fn(&(dyn Any + Send)) -> bool>(f) }(payload)
    }
}

#[allow(clippy::declare_interior_mutable_const)] // the array's initialiser, copied once each
const NO_TEST: PayloadTest = PayloadTest(AtomicPtr::new(std::ptr::null_mut()));
static PAYLOADS: [PayloadTest; 4] = [NO_TEST; 4];

/// Also treats as deliberate a panic whose payload passes `is_deliberate` (a test's own
/// payload type, raised with `panic_any`), and installs the hook.
///
/// # Panics
/// When four tests are registered already.
pub fn quiet_payloads(is_deliberate: fn(&(dyn Any + Send)) -> bool) {
    quiet_deliberate_panics();
    let new = is_deliberate as *mut ();
    let registered = PAYLOADS.iter().any(|slot| {
        // Release: publishes the slot to the hook's Acquire load.
        match slot.0.compare_exchange(
            std::ptr::null_mut(),
            new,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => true,
            Err(current) => current == new,
        }
    });
    assert!(registered, "more than four payload tests");
}

/// A node of a lock-free, leaked, push-only list: the report sink runs in forked children
/// and in exiting threads, where a lock another thread held could never be taken.
struct Node {
    text: String,
    next: *mut Node,
}

/// Substrings of the reports kept off stderr.
static QUIET: AtomicPtr<Node> = AtomicPtr::new(std::ptr::null_mut());
/// Every report made since the sink was installed.
static REPORTS: AtomicPtr<Node> = AtomicPtr::new(std::ptr::null_mut());

fn push(list: &AtomicPtr<Node>, text: String) {
    let node = Box::into_raw(Box::new(Node { text, next: std::ptr::null_mut() }));
    // Relaxed: the CAS below publishes the node.
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: `node` is ours until the CAS succeeds.
        unsafe { (*node).next = head };
        // Release: publishes the node's contents; pairs with the Acquire load in `any`.
        match list.compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(current) => head = current,
        }
    }
}

fn any(list: &AtomicPtr<Node>, mut f: impl FnMut(&str) -> bool) -> bool {
    // Acquire: pairs with the Release CAS in `push`.
    let mut node = list.load(Ordering::Acquire);
    while !node.is_null() {
        // SAFETY: nodes are published complete and never freed.
        let n = unsafe { &*node };
        if f(&n.text) {
            return true;
        }
        node = n.next;
    }
    false
}

/// The runtime's report sink while tests run: records every report, and writes to fd 2 the
/// ones no test said it provokes.
fn sink(line: &str) {
    push(&REPORTS, line.to_owned());
    if !any(&QUIET, |quiet| line.contains(quiet)) {
        crate::fork::raw_eprint(&format!("{line}\n"));
    }
}

/// Keeps the runtime's reports that contain `provoked` off stderr (they are still recorded,
/// see [`wait_for_reports`]); installs the sink once per process.
pub fn quiet_reports(provoked: &str) {
    static INSTALL: Once = Once::new();
    if !any(&QUIET, |quiet| quiet == provoked) {
        push(&QUIET, provoked.to_owned());
    }
    INSTALL.call_once(|| {
        rcu_core::set_report_sink(Some(sink));
    });
}

/// Waits (at most `timeout`) until `at_least` reports containing `needle` were made since
/// the sink was installed; whether they were. A report follows the count it reports (a
/// statistic is bumped first), so a test waits for it rather than checks it once.
pub fn wait_for_reports(needle: &str, at_least: usize, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        if reports_containing(needle) >= at_least {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many reports since the sink was installed contain `needle`.
pub fn reports_containing(needle: &str) -> usize {
    let mut n = 0;
    any(&REPORTS, |line| {
        n += usize::from(line.contains(needle));
        false
    });
    n
}

/// The reports since the sink was installed that contain `needle`, oldest first.
pub fn reports(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    any(&REPORTS, |line| {
        if line.contains(needle) {
            out.push(line.to_owned());
        }
        false
    });
    out.reverse();
    out
}

/// The callbacks of domain `domain` that the runtime reported as panicked since the sink was
/// installed (the sum of its "N RCU callback(s) of domain 'D' panicked" reports).
pub fn reported_callback_panics(domain: &str) -> u64 {
    let needle = format!(" RCU callback(s) of domain '{domain}' panicked");
    reports(&needle)
        .iter()
        .filter_map(|line| line.strip_prefix("rcu-core: ")?.split(' ').next()?.parse::<u64>().ok())
        .sum()
}
