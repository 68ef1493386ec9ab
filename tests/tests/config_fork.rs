//! A rejected configuration leaves nothing registered: the fork handler, which walks every
//! live domain in the child, never meets a half-built one. (`Domain::new` used to register
//! the domain's state for the fork handler, then panic spawning a thread named after a name
//! with a NUL byte, freeing the state while it was still registered; the handler of a later
//! fork then walked freed memory.)
//!
//! A single test, so that no other test's threads are running when it forks (see `fork.rs`).

use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{run_in_child, ChildEnd};

/// What the child does after its fork handler ran: use the parent's domain and a new one.
fn child_body(live: &Domain) {
    let mut ctx = Sleepable::enter();
    drop(live.read_lock(&mut ctx));
    live.synchronize_rcu(&ctx);
    let fresh = Domain::new(DomainConfig::new().name("fork-fresh"));
    fresh.kvfree_rcu(&ctx, Rcu::boxed(1u64));
    fresh.rcu_barrier(&ctx);
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn fork_after_rejected_configurations_meets_only_live_domains() {
    let live = Domain::new(DomainConfig::new().name("fork-live"));
    {
        let mut ctx = Sleepable::enter();
        drop(live.read_lock(&mut ctx));
    }

    // Rejected by `try_new`, and by `Domain::new` (a panic, caught and kept quiet).
    let bad = || DomainConfig::new().name("bad\0name");
    for _ in 0..8 {
        assert!(Domain::try_new(bad()).is_err(), "try_new accepted a NUL in the name");
    }
    let refused = "DomainConfig.name";
    let panicked = (0..8)
        .filter(|_| rcu_tests::quiet::expect_panic_quietly(refused, || Domain::new(bad())).is_err())
        .count();
    assert_eq!(panicked, 8, "Domain::new accepted a NUL in the name");
    // Reuse freed memory with a pattern that is no valid pointer, so that a handler walking
    // a freed state would crash rather than read stale but plausible values.
    let scribble: Vec<Vec<u8>> = (1..=512).map(|i| vec![0xA5; 64 * (i % 128 + 1)]).collect();

    // SAFETY: (1) the child only runs `child_body`: rcu-core calls and allocation; (2) it
    // uses no reference loaded by another thread.
    let end = unsafe {
        run_in_child(Duration::from_secs(20), || {
            child_body(&live);
            0
        })
    };
    drop(scribble);
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "the forked child failed, hung or died: did its fork handler walk a freed domain?"
    );
    exercise_after(&live);
}

/// The parent carries on too.
fn exercise_after(live: &Domain) {
    let ctx = Sleepable::enter();
    live.synchronize_rcu(&ctx);
    live.rcu_barrier(&ctx);
}
