//! The polled API (DESIGN §5): `get_state`, `start_poll`, `poll`, `cond_synchronize`.

mod common;

use std::sync::Arc;

use common::{assert_holds_for, wait_until, ReaderThread, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::DomainConfig;

fn private(name: &'static str) -> Domain {
    Domain::new(DomainConfig::new().name(name))
}

/// The grace-period part of a domain's statistics (the rest, such as the worker's own
/// registration as a reader, moves on its own).
fn gp_state(domain: &Domain) -> (u64, u64, u64, u64) {
    let s = domain.stats();
    (s.gp_seq, s.gp_completed, s.gps_normal, s.gps_expedited)
}

/// `start_poll` asks the domain's worker for the grace period: `poll` turns true with nobody
/// calling `synchronize_rcu`.
#[test]
fn start_poll_completes_without_synchronize() {
    let domain = private("poll-start");
    let ctx = Sleepable::enter();
    let before = domain.stats();
    let cookie = domain.start_poll(&ctx);
    assert!(
        wait_until(PATIENCE, || domain.poll(cookie)),
        "start_poll's grace period did not complete on its own: {:?}",
        domain.stats()
    );
    let after = domain.stats();
    assert!(after.gps_normal > before.gps_normal, "{before:?} -> {after:?}");
}

/// The same on the global domain through the free functions.
#[test]
fn start_poll_completes_without_synchronize_global() {
    let ctx = Sleepable::enter();
    let cookie = start_poll(&ctx);
    assert!(wait_until(PATIENCE, || poll(cookie)), "global start_poll did not complete");
}

/// `start_poll` with an `Atomic` token (inside a read section of another domain) is only a
/// request, but the running worker serves it.
#[test]
fn start_poll_with_atomic_token_completes() {
    let domain = private("poll-atomic");
    let other = private("poll-other");
    let mut ctx = Sleepable::enter();
    let guard = other.read_lock(&mut ctx);
    let cookie = domain.start_poll(guard.ctx());
    drop(guard);
    let scope = ctx.atomic();
    let cookie2 = domain.start_poll(&scope);
    drop(scope);
    assert!(cookie2 >= cookie);
    assert!(
        wait_until(PATIENCE, || domain.poll(cookie2)),
        "an Atomic start_poll was not served: {:?}",
        domain.stats()
    );
    assert!(domain.poll(cookie));
}

/// `get_state` alone starts nothing: with no one else using the domain, its cookie stays
/// incomplete until someone runs a grace period.
#[test]
fn get_state_alone_does_not_start_a_grace_period() {
    let domain = private("poll-getstate");
    let before = gp_state(&domain);
    let cookie = domain.get_state();
    assert_holds_for(HOLD, "get_state's cookie completed on its own", || !domain.poll(cookie));
    assert_eq!(gp_state(&domain), before, "a grace period ran with nobody asking");
    domain.synchronize_rcu(&Sleepable::enter());
    assert!(domain.poll(cookie));
}

/// Cookies only grow, and `poll` never goes from true back to false.
#[test]
fn cookies_grow_and_poll_stays_true() {
    let domain = private("poll-mono");
    let ctx = Sleepable::enter();
    let mut cookies = Vec::new();
    for round in 0..20 {
        let c = if round % 2 == 0 { domain.get_state() } else { domain.start_poll(&ctx) };
        if let Some(&last) = cookies.last() {
            assert!(c >= last, "cookie went backwards: {last:?} then {c:?}");
        }
        cookies.push(c);
        if round % 3 == 0 {
            domain.synchronize_rcu(&ctx);
            for &old in &cookies {
                assert!(domain.poll(old), "{old:?} incomplete after a later synchronize");
            }
        }
    }
    domain.synchronize_rcu(&ctx);
    let all_done = cookies.iter().all(|&c| domain.poll(c));
    assert!(all_done);
    for _ in 0..100 {
        assert!(cookies.iter().all(|&c| domain.poll(c)), "poll went back to false");
    }
}

/// `cond_synchronize` with an elapsed cookie returns without running a grace period; with a
/// fresh one it runs exactly what is needed.
#[test]
fn cond_synchronize_runs_a_grace_period_only_when_needed() {
    let domain = private("poll-cond");
    let ctx = Sleepable::enter();
    let cookie = domain.get_state();
    domain.synchronize_rcu(&ctx);
    let before = gp_state(&domain);
    for _ in 0..10 {
        domain.cond_synchronize(&ctx, cookie);
    }
    assert_eq!(
        gp_state(&domain),
        before,
        "cond_synchronize ran a grace period for an elapsed cookie"
    );
    let fresh = domain.get_state();
    domain.cond_synchronize(&ctx, fresh);
    assert!(domain.poll(fresh));
    assert_eq!(gp_state(&domain).2, before.2 + 1);
}

/// Many polled requests made while a reader holds the grace period up are served by the
/// grace period in flight plus at most one more.
#[test]
fn polled_requests_share_grace_periods() {
    let domain = Arc::new(private("poll-share"));
    let mut reader = ReaderThread::spawn(domain.clone(), "poll-reader");
    reader.enter();
    let ctx = Sleepable::enter();
    let before = domain.stats();
    let first = domain.start_poll(&ctx);
    // The worker starts the first request's grace period, which waits for the reader.
    assert!(wait_until(PATIENCE, || domain.stats().gp_seq >= first.seq()));
    let cookies: Vec<_> = (0..100).map(|_| domain.start_poll(&ctx)).collect();
    assert!(cookies.iter().all(|c| c.seq() <= first.seq() + 1), "{first:?} {cookies:?}");
    assert!(cookies.iter().chain([&first]).all(|&c| !domain.poll(c)));
    reader.exit();
    assert!(wait_until(PATIENCE, || cookies.iter().all(|&c| domain.poll(c))));
    let gps = domain.stats().gps_normal - before.gps_normal;
    assert!((1..=2).contains(&gps), "101 polled requests took {gps} grace periods");
}

/// A cookie belongs to the domain that issued it.
#[test]
#[should_panic(expected = "a GpCookie of one domain used with another")]
fn poll_with_another_domains_cookie_panics() {
    let a = private("poll-a");
    let b = private("poll-b");
    let cookie = a.get_state();
    let _ = b.poll(cookie);
}

/// The same for `cond_synchronize`, and with the global domain.
#[test]
#[should_panic(expected = "a GpCookie of one domain used with another")]
fn cond_synchronize_with_another_domains_cookie_panics() {
    let a = private("poll-c");
    let cookie = get_state();
    a.cond_synchronize(&Sleepable::enter(), cookie);
}

/// `poll` drives a requested grace period itself when nobody runs it: here the domain's
/// worker is busy inside a long callback (it spins until released), so before issue 13 the
/// cookie could only complete once the callback returned; now the polling loop completes it.
#[test]
fn poll_completes_a_grace_period_while_the_worker_runs_a_long_callback() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let domain = private("poll-busy-worker");
    let ctx = Sleepable::enter();
    let running = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (r, l) = (running.clone(), release.clone());
    domain.call_rcu_fn(&ctx, move |_| {
        // SeqCst (both): plain flags between this callback and the test.
        r.store(true, Ordering::SeqCst);
        // Bounded, so that a failing test ends: the test releases it long before.
        let _ = wait_until(PATIENCE * 2, || l.load(Ordering::SeqCst));
    });
    domain.start_poll(&ctx);
    assert!(wait_until(PATIENCE, || running.load(Ordering::SeqCst)), "the callback never ran");
    let cookie = domain.start_poll(&ctx);
    let completed = wait_until(PATIENCE, || domain.poll(cookie));
    release.store(true, Ordering::SeqCst);
    assert!(completed, "poll did not complete a grace period while the worker was busy");
    domain.rcu_barrier(&ctx);
}

/// A grace period that a poll started (or found started) and could not finish because a
/// reader held it up is resumed by whoever leads next, not replaced by a new one: once the
/// reader leaves, the cookie completes with no further grace period started.
#[test]
fn a_grace_period_left_by_poll_is_resumed() {
    let domain = Arc::new(private("poll-resume"));
    let mut reader = ReaderThread::spawn(domain.clone(), "resume-reader");
    reader.enter();
    let ctx = Sleepable::enter();
    let cookie = domain.start_poll(&ctx);
    assert_holds_for(HOLD, "the cookie completed while a reader was inside", || {
        !domain.poll(cookie)
    });
    assert_eq!(domain.stats().gp_seq, cookie.seq(), "the grace period was not left in progress");
    reader.exit();
    assert!(wait_until(PATIENCE, || domain.poll(cookie)));
    let s = domain.stats();
    assert_eq!((s.gp_seq, s.gp_completed), (cookie.seq(), cookie.seq()), "{s:?}");
}
