//! Helpers shared by the hostile-program tests (`mod common;` in each file): a watchdog that
//! turns a hang into a failure, and a panic hook that keeps provoked panics quiet.
//!
//! Nothing here orders events by time: a test that needs an interleaving forces it with
//! channels. Time appears only as a generous bound on things that must finish.

// Each test file uses a different subset.
#![allow(dead_code)]

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bound on anything that must finish (a write, a clear, a whole scenario): generous,
/// so that a loaded machine does not fail correct code. Waiting this long means a hang.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Text every deliberately provoked panic of these tests carries, so that the hook can keep
/// them out of the output (they run by the hundred).
pub(crate) const PROVOKED: &str = "[provoked]";

/// Runs `f` on its own thread and returns its result, or fails the test if it has not
/// finished after [`PATIENCE`] (the thread is left spinning: the process ends with the
/// test run). A panic of `f` is resumed on the caller.
#[track_caller]
pub(crate) fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    quiet_provoked_panics();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn a watched thread");
    match rx.recv_timeout(PATIENCE) {
        Ok(result) => {
            thread.join().expect("the watched thread caught its own panic");
            result.unwrap_or_else(|panic| resume_unwind(panic))
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("{what}: not finished after {PATIENCE:?}: it hangs")
        }
        Err(RecvTimeoutError::Disconnected) => unreachable!("the thread always sends"),
    }
}

/// Runs a loop of `steps` on its own thread, each step reporting through `progress`; fails
/// the test if any step takes longer than [`PATIENCE`], naming the step that hung.
#[track_caller]
pub(crate) fn steps_within<F>(what: &str, steps: F)
where
    F: FnOnce(&dyn Fn(String)) + Send + 'static,
{
    quiet_provoked_panics();
    let (tx, rx) = mpsc::channel::<Result<String, ()>>();
    let thread = {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(what.to_owned())
            .spawn(move || {
                let report = |step: String| {
                    let _ = tx.send(Ok(step));
                };
                let result = catch_unwind(AssertUnwindSafe(|| steps(&report)));
                let _ = tx.send(Err(()));
                result
            })
            .expect("spawn a watched thread")
    };
    drop(tx);
    let mut last = String::from("(the first step)");
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(Ok(step)) => last = step,
            Ok(Err(())) => break,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{what}: no progress for {PATIENCE:?} after {last}: it hangs")
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Err(panic) = thread.join().expect("the watched thread caught its own panic") {
        resume_unwind(panic);
    }
}

/// The message of a caught panic.
pub(crate) fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Runs `f`, which must panic, and returns the panic's message.
#[track_caller]
pub(crate) fn panic_message(f: impl FnOnce()) -> String {
    quiet_provoked_panics();
    let panic = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    message(&*panic)
}

/// Installs (once) a panic hook that prints every panic except the provoked ones: those of
/// the tests' hostile `Hash`/`Eq`/closures (marked [`PROVOKED`]) and the refusals the tests
/// expect (the collections' and the runtime's rule messages).
pub(crate) fn quiet_provoked_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            let provoked = text.contains(PROVOKED)
                || text.contains("with a token that claims more")
                || text.contains("from the keys' Eq");
            if !provoked {
                default(info);
            }
        }));
    });
}
