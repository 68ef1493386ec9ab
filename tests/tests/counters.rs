//! No counter that safe code drives can overflow (issue 22, defect 2 and family 2).
//!
//! Each test forgets its way to a counter's limit, the way a hostile program would
//! (`mem::forget` in a loop), checks that the next increment is refused with a panic that
//! names the rule (or that the counter saturates, where saturating is the safe answer), and
//! then that the checks the counter feeds still refuse what they must.
//!
//! The per-thread counters of `rcu-ctx` are `u32`: reaching their limit takes 2^32 - 1
//! forgotten scopes, seconds in an optimized build (the read and atomic loops fold to almost
//! nothing; a no-reclaim opening also checks the thread's debts, and a root its context) but
//! minutes in a debug build. Those tests are ignored in debug builds and run optimized, one
//! by one and timed, by `ci/counters.sh`; release is also the build the defect showed in
//! (with `debug_assertions` the old unchecked `+ 1` trapped already). The reader word's
//! nesting (65535) is reached in every build.

use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::thread_state::{self, live_roots, ReadSection, Snapshot};
use rcu_core::DomainConfig;

/// Runs `f`, which must panic, and returns the panic message.
#[track_caller]
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match err.downcast::<String>() {
        Ok(message) => *message,
        Err(err) => err.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// Runs `test` on a thread of its own, whose forgotten scopes end with it.
fn on_own_thread(test: impl FnOnce() + Send + 'static) {
    std::thread::spawn(test).join().unwrap();
}

/// Forgets `n` read sections nested in the one `tok` belongs to.
#[inline(never)]
fn forget_read_sections(tok: &Atomic<'_>, n: u32) {
    for _ in 0..n {
        mem::forget(ReadSection::enter_nested(tok));
    }
}

/// Forgets `n` atomic scopes nested in `tok`'s.
#[inline(never)]
fn forget_atomic_scopes(tok: &Atomic<'_>, n: u32) {
    for _ in 0..n {
        mem::forget(tok.nested());
    }
}

/// Forgets `n` no-reclaim scopes opened from `tok`.
#[inline(never)]
fn forget_no_reclaim_scopes(tok: &mut NoReclaim<'_>, n: u32) {
    for _ in 0..n {
        mem::forget(tok.no_reclaim());
    }
}

/// Forgets `n` root tokens.
#[inline(never)]
fn forget_roots(n: u32) {
    for _ in 0..n {
        mem::forget(Sleepable::enter());
    }
}

/// The checks that must still refuse blocking and reclaiming on this thread: acquiring a
/// root, and the runtime's every-build checks reached with a root taken beforehand
/// (`spare`), on a domain other than the one whose section may be open.
#[track_caller]
fn assert_still_refused(spare: &Sleepable, other: &Domain, inside: &str) {
    let msg = panic_message(|| drop(Sleepable::enter()));
    assert!(msg.contains(&format!("Sleepable::enter() called inside {inside}")), "{msg}");
    let msg = panic_message(|| other.synchronize_rcu(spare));
    assert!(msg.contains(&format!("synchronize_rcu called inside {inside}")), "{msg}");
    let msg = panic_message(|| other.rcu_barrier(spare));
    assert!(msg.contains(&format!("rcu_barrier called inside {inside}")), "{msg}");
}

/// The thread's read depth: after 2^32 - 1 sections (one live guard, the rest forgotten),
/// entering one more is refused and not counted, and the thread still counts as inside a
/// read section. Before the fix the depth wrapped to 0 in release builds, and
/// `Sleepable::enter()` succeeded inside the live section.
#[test]
#[cfg_attr(debug_assertions, ignore = "forgets 2^32 - 1 scopes: run by ci/counters.sh")]
fn read_depth_refuses_the_section_that_would_wrap_it() {
    on_own_thread(|| {
        let domain = Domain::new(DomainConfig::new().name("counters-read"));
        let other = Domain::new(DomainConfig::new().name("counters-read-other"));
        let spare = Sleepable::enter();
        let mut ctx = Sleepable::enter();
        other.register_current_thread(&ctx);
        let guard = domain.read_lock(&mut ctx);
        forget_read_sections(guard.ctx(), u32::MAX - 1);
        assert_eq!(thread_state::snapshot().read_depth, u32::MAX);

        let msg = panic_message(|| mem::forget(ReadSection::enter_nested(guard.ctx())));
        assert!(msg.contains("read sections nested 4294967295 deep on one thread"), "{msg}");
        assert!(msg.contains("rule: every scope ends"), "{msg}");
        assert_eq!(thread_state::snapshot().read_depth, u32::MAX, "the refused section counted");
        // The runtime's guards are refused the same way, before their reader word moves.
        let msg = panic_message(|| mem::forget(guard.nest()));
        assert!(msg.contains("read sections nested 4294967295 deep"), "{msg}");
        let msg = panic_message(|| mem::forget(other.read_lock_nested(guard.ctx())));
        assert!(msg.contains("read sections nested 4294967295 deep"), "{msg}");
        assert_eq!(thread_state::snapshot().read_depth, u32::MAX);

        assert_still_refused(&spare, &other, "an RCU read section");
        // The live section still holds its domain's grace periods.
        let cookie = domain.start_poll(guard.ctx());
        assert!(!domain.poll(cookie));
        drop(guard);
        // The refused entries left the domain's reader word alone: with the guard dropped,
        // nothing holds its grace periods (the forgotten sections are rcu-ctx's only).
        // A watchdog meaning hung.
        let start = Instant::now();
        while !domain.poll(cookie) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "a refused section still holds grace periods ({:?})",
                start.elapsed()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // The forgotten sections are still open: the thread is inside one.
        assert_eq!(thread_state::snapshot().read_depth, u32::MAX - 1);
        assert_still_refused(&spare, &other, "an RCU read section");
    });
}

/// The thread's atomic depth, driven by `Atomic::nested` from a shared token.
#[test]
#[cfg_attr(debug_assertions, ignore = "forgets 2^32 - 1 scopes: run by ci/counters.sh")]
fn atomic_depth_refuses_the_scope_that_would_wrap_it() {
    on_own_thread(|| {
        let other = Domain::new(DomainConfig::new().name("counters-atomic"));
        let spare = Sleepable::enter();
        let mut ctx = Sleepable::enter();
        let spin = ctx.atomic();
        forget_atomic_scopes(&spin, u32::MAX - 1);
        assert_eq!(thread_state::snapshot().atomic_depth, u32::MAX);

        let msg = panic_message(|| mem::forget(spin.nested()));
        assert!(msg.contains("atomic scopes nested 4294967295 deep on one thread"), "{msg}");
        assert!(msg.contains("rule: every scope ends"), "{msg}");
        // A read section opened from it is a different counter: allowed, and it ends.
        drop(ReadSection::enter_nested(&spin));
        assert_eq!(
            thread_state::snapshot(),
            Snapshot { read_depth: 0, atomic_depth: u32::MAX, no_reclaim_depth: 0 },
            "the refused scope counted"
        );

        assert_still_refused(&spare, &other, "an atomic scope");
        drop(spin);
        assert_eq!(thread_state::snapshot().atomic_depth, u32::MAX - 1);
        assert_still_refused(&spare, &other, "an atomic scope");
    });
}

/// The thread's no-reclaim depth, driven by `MaySleep::no_reclaim`.
#[test]
#[cfg_attr(debug_assertions, ignore = "forgets 2^32 - 1 scopes: run by ci/counters.sh")]
fn no_reclaim_depth_refuses_the_scope_that_would_wrap_it() {
    on_own_thread(|| {
        let other = Domain::new(DomainConfig::new().name("counters-no-reclaim"));
        let spare = Sleepable::enter();
        let mut ctx = Sleepable::enter();
        let mut nr = ctx.no_reclaim();
        forget_no_reclaim_scopes(&mut nr, u32::MAX - 1);
        assert_eq!(thread_state::snapshot().no_reclaim_depth, u32::MAX);

        let msg = panic_message(|| mem::forget(nr.no_reclaim()));
        assert!(msg.contains("no-reclaim scopes nested 4294967295 deep on one thread"), "{msg}");
        assert!(msg.contains("rule: every scope ends"), "{msg}");
        assert_eq!(
            thread_state::snapshot().no_reclaim_depth,
            u32::MAX,
            "the refused scope counted"
        );

        // A no-reclaim scope may block but not reclaim, and no root may be acquired in it.
        let msg = panic_message(|| drop(Sleepable::enter()));
        assert!(msg.contains("Sleepable::enter() called inside a no-reclaim scope"), "{msg}");
        let msg = panic_message(|| other.rcu_barrier(&spare));
        assert!(msg.contains("rcu_barrier called inside a no-reclaim scope"), "{msg}");
        drop(nr);
        assert_eq!(thread_state::snapshot().no_reclaim_depth, u32::MAX - 1);
        let msg = panic_message(|| other.rcu_barrier(&spare));
        assert!(msg.contains("rcu_barrier called inside a no-reclaim scope"), "{msg}");
    });
}

/// The count of live roots never refuses and never wraps: it counts in 64 bits, and
/// `live_roots()` reports `u32::MAX` for that many or more, so leaking roots, which is
/// allowed, stays allowed and a leaked root stays counted (a section left open on the thread
/// is never taken for unreachable).
#[test]
#[cfg_attr(debug_assertions, ignore = "forgets 2^32 - 1 scopes: run by ci/counters.sh")]
fn live_roots_count_past_u32_max_without_wrapping() {
    on_own_thread(|| {
        forget_roots(u32::MAX);
        assert_eq!(live_roots(), u32::MAX);
        let root = Sleepable::enter();
        assert_eq!(live_roots(), u32::MAX, "2^32 roots read as u32::MAX");
        let second = Sleepable::enter();
        drop(second);
        drop(root);
        assert_eq!(live_roots(), u32::MAX, "the 2^32 - 1 leaked roots are still counted");
    });
}

/// The reader word of `rcu-core` counts nesting in 16 bits: the 65536th nested section of
/// one domain on one thread is refused in every build, and neither the word nor the thread's
/// read depth counts it.
#[test]
fn reader_word_refuses_the_section_that_would_wrap_it() {
    // Its thread exits with the forgotten sections, which the runtime reports.
    rcu_tests::quiet::quiet_reports(
        "read section(s) of domain 'counters-word': a ReadGuard was leaked",
    );
    on_own_thread(|| {
        let domain = Domain::new(DomainConfig::new().name("counters-word"));
        let other = Domain::new(DomainConfig::new().name("counters-word-other"));
        let spare = Sleepable::enter();
        let mut ctx = Sleepable::enter();
        other.register_current_thread(&ctx);
        let guard = domain.read_lock(&mut ctx);
        for _ in 1..u16::MAX {
            mem::forget(guard.nest());
        }
        assert_eq!(thread_state::snapshot().read_depth, u32::from(u16::MAX));

        let msg = panic_message(|| mem::forget(guard.nest()));
        assert!(msg.contains("read sections nested 65535 deep on one thread"), "{msg}");
        let msg = panic_message(|| mem::forget(domain.read_lock_nested(guard.ctx())));
        assert!(msg.contains("read sections nested 65535 deep on one thread"), "{msg}");
        assert_eq!(
            thread_state::snapshot().read_depth,
            u32::from(u16::MAX),
            "a refused section was counted"
        );

        // The sections still hold the domain's grace periods, and the checks still refuse.
        let cookie = domain.start_poll(guard.ctx());
        assert!(!domain.poll(cookie));
        let msg = panic_message(|| domain.synchronize_rcu(&spare));
        assert!(msg.contains("synchronize_rcu called inside an RCU read section"), "{msg}");
        assert_still_refused(&spare, &other, "an RCU read section");
        // Other domains' words are separate: a section of `other` still nests here.
        drop(other.read_lock_nested(guard.ctx()));
        drop(guard);
        assert!(!domain.poll(cookie), "the forgotten sections stopped holding grace periods");
        assert_eq!(thread_state::snapshot().read_depth, u32::from(u16::MAX) - 1);
    });
}
