//! Red team, issue 25 (SRCU): a callback run by a sleepable domain's worker forgets a
//! borrowed `SrcuGuard` of that domain.
//!
//! DESIGN §5.1 says user code never wedges a runtime thread; `worker_thread::UserCode`
//! implements it for classic guards (`callbacks_forget.rs`: a callback that forgets
//! `read_lock_nested(atomic)` is undone, its section ended and counted). A callback is lent
//! an `&Atomic`; `atomic.nested()` is a token it owns, so it can enter a *borrowed* sleepable
//! section of the worker's domain (the worker is registered with it) and `mem::forget` the
//! guard. Nothing can reach through that section once the call returns (the guard borrowed
//! a token that died with the call), exactly the classic case.
//!
//! Defect: `UserCode::end` only undoes anything when the thread's context *depths* changed
//! (`snapshot() != self.depths`), and a sleepable section touches no depth
//! (`SleepableSection::enter`: "Touches no thread state"). The forgotten section's
//! `lock[i] - unlock[i] == 1` stays on the worker's slot for ever: the worker's next grace
//! period waits for its own slot (`wait_for_srcu_reader`, unbounded), so the worker is
//! wedged, and every later `synchronize_srcu` / `srcu_barrier` of the domain hangs (only
//! stall reports say so). `end_forgotten_sections` would end it (it counts
//! `open_sections()`, SRCU included), but it is never reached.
//!
//! Expected: the barrier and the grace period after the callback complete (as for the
//! classic guard); the test fails with "still blocked".
//!
//! Deterministic (no race): fails every run, on both flavours.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Pending;
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuFlavor, SrcuStruct};

/// Bounded wait: far longer than any grace period of an idle domain.
const WATCHDOG: Duration = Duration::from_secs(20);

fn forgotten_borrowed_guard_in_a_callback<F: SrcuFlavor>(forget: bool) {
    let name = format!("srcu-forgetful-{}", F::NAME);
    rcu_tests::quiet::quiet_reports("forgot scopes or read guards");
    let srcu: Arc<SrcuStruct<F>> = Arc::new(SrcuStruct::new(DomainConfig::new().name(name)));
    srcu.set_stall_timeout(Duration::from_secs(3600)); // keep the output clean
    let ctx = Sleepable::enter();
    let s = srcu.clone();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    srcu.call_srcu_fn(&ctx, move |atomic| {
        let mut scope = atomic.nested();
        let guard = s.read_lock(&mut scope);
        if forget {
            core::mem::forget(guard);
        } else {
            drop(guard);
        }
        drop(scope);
        r.store(true, Ordering::SeqCst);
    });
    let s = srcu.clone();
    let mut after = Pending::spawn("srcu-after-forget", move || {
        let ctx = Sleepable::enter();
        s.srcu_barrier(&ctx); // runs the callback
        s.synchronize_srcu(&ctx); // would wait for the worker's forgotten section
        let later = Arc::new(AtomicBool::new(false));
        let flag = later.clone();
        s.call_srcu_fn(&ctx, move |_| flag.store(true, Ordering::SeqCst));
        s.srcu_barrier(&ctx);
        later.load(Ordering::SeqCst)
    });
    let done = after.wait_timeout(WATCHDOG);
    assert!(ran.load(Ordering::SeqCst), "the forgetful callback never ran");
    assert!(
        done,
        "domain '{}': a grace period / srcu_barrier after a worker callback forgot a borrowed \
         SrcuGuard is still blocked after {WATCHDOG:?}: the worker waits for its own \
         forgotten section (UserCode only undoes depth changes); stats {:?}",
        srcu.name(),
        srcu.stats()
    );
    // Joined, not leaked: a thread never joined is a leak ThreadSanitizer reports.
    assert!(
        after.join("the thread that waited after the callback"),
        "a callback queued after the forgetful one never ran before srcu_barrier returned"
    );
}

#[test]
fn fast_a_callback_that_forgets_a_borrowed_srcu_guard_does_not_wedge_the_worker() {
    forgotten_borrowed_guard_in_a_callback::<rcu_core::Fast>(true);
}

#[test]
fn plain_a_callback_that_forgets_a_borrowed_srcu_guard_does_not_wedge_the_worker() {
    forgotten_borrowed_guard_in_a_callback::<rcu_core::Plain>(true);
}

/// Control (passes): the same callback dropping its guard; the domain serves on.
#[test]
fn control_a_callback_that_drops_its_borrowed_srcu_guard() {
    forgotten_borrowed_guard_in_a_callback::<rcu_core::Fast>(false);
}
