//! Red team, issue 25 (SRCU), suspicion 5: waits for a sleepable domain's grace periods
//! made inside a borrowed section of that domain by paths the brand check cannot see. Each
//! must panic (with the rule) rather than hang; the calls that never wait must complete.
//! Each case runs on its own thread under a watchdog, so a hang fails the case instead of
//! the run.
//!
//! Paths: the async futures polled inside the section; `cond_synchronize_srcu` with a
//! cookie taken inside; `kvfree_srcu_mightsleep` under fault injection; the public
//! `RcuHashMap::domain()` (the sleepable domain's classic engine, whose waits take no
//! brand: `synchronize_rcu`, `rcu_barrier`, `kvfree_rcu_mightsleep` whose fallback waits);
//! a map write that resizes under the section's token; cells written over budget with the
//! section's token (must not wait) and with a second root (refused); a second domain of
//! another brand waited for inside the first one's section (allowed; completes).
//!
//! Deterministic; held at the time of writing (every refusal panics, every allowed call
//! completes).
#![cfg(not(loom))]

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, FaultConfig, Policy, SrcuStruct};
use rcu_tests::quiet::{expect_panic_quietly, message};

const WATCHDOG: Duration = Duration::from_secs(20);

/// What a case did.
#[derive(Debug, PartialEq)]
enum Outcome {
    Completed,
    Panicked(String),
}

/// Runs `case` on a thread of its own; `None` if it is still running after `WATCHDOG` (it
/// is then left hanging).
fn watched(name: &str, expected: &'static str, case: impl FnOnce() + Send + 'static) -> Outcome {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let outcome = match expect_panic_quietly(expected, case) {
                Ok(()) => Outcome::Completed,
                Err(p) => Outcome::Panicked(message(&*p).to_owned()),
            };
            let _ = tx.send(outcome);
        })
        .unwrap();
    match rx.recv_timeout(WATCHDOG) {
        Ok(o) => o,
        Err(_) => panic!("case '{name}' HUNG for {WATCHDOG:?} (a self-wait neither refused at compile time nor at run time)"),
    }
}

#[track_caller]
fn assert_refused(name: &str, expected: &'static str, case: impl FnOnce() + Send + 'static) {
    match watched(name, expected, case) {
        Outcome::Panicked(msg) => {
            eprintln!("case '{name}' refused: {msg}");
            assert!(msg.contains(expected), "case '{name}': unexpected panic message: {msg}")
        }
        Outcome::Completed => panic!("case '{name}' completed: expected a refusal"),
    }
}

#[track_caller]
fn assert_completes(name: &str, case: impl FnOnce() + Send + 'static) {
    match watched(name, "(none)", case) {
        Outcome::Completed => {}
        Outcome::Panicked(msg) => panic!("case '{name}' panicked: {msg}"),
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut fut = Box::pin(fut);
    loop {
        if let Poll::Ready(v) = Pin::new(&mut fut).poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

fn srcu(name: &str) -> Arc<SrcuStruct> {
    let s = Arc::new(SrcuStruct::new(DomainConfig::new().name(name.to_owned())));
    s.set_stall_timeout(Duration::from_secs(3600));
    s
}

const POLLED_INSIDE: &str = "polled inside a read section of the same domain";
const INSIDE_OWN: &str = "inside one of its read sections";

#[test]
fn async_grace_period_future_polled_inside_its_section_is_refused() {
    let s = srcu("rt25-async-gp");
    assert_refused("gp-future", POLLED_INSIDE, move || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        block_on(s.synchronize_srcu_async());
        drop(g);
    });
}

#[test]
fn async_barrier_future_polled_inside_its_section_is_refused() {
    let s = srcu("rt25-async-barrier");
    assert_refused("barrier-future", "rcu_barrier_async polled inside", move || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        s.kvfree_srcu(g.ctx(), Rcu::boxed(1u64));
        block_on(s.srcu_barrier_async());
        drop(g);
    });
}

#[test]
fn a_non_send_future_holding_a_borrowed_guard_across_the_await_is_refused() {
    let s = srcu("rt25-async-held");
    assert_refused("held-across-await", POLLED_INSIDE, move || {
        block_on(async {
            let mut ctx = Sleepable::enter();
            let g = s.read_lock(&mut ctx);
            s.synchronize_srcu_async().await;
            drop(g);
        });
    });
}

#[test]
fn cond_synchronize_with_a_cookie_taken_inside_and_a_second_root_is_refused() {
    let s = srcu("rt25-cond");
    assert_refused("cond", INSIDE_OWN, move || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        let cookie = s.get_state_synchronize_srcu();
        let root2 = Sleepable::enter();
        s.cond_synchronize_srcu(&root2, cookie);
        drop(g);
    });
    let s = srcu("rt25-cond-async");
    assert_refused("cond-async", POLLED_INSIDE, move || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        let cookie = s.start_poll_synchronize_srcu(g.ctx());
        block_on(s.cond_synchronize_srcu_async(cookie));
        drop(g);
    });
}

#[test]
fn kvfree_mightsleep_with_every_block_failing_and_a_no_reclaim_scope_is_refused() {
    let s = srcu("rt25-mightsleep");
    for policy in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait] {
        s.inject_faults(policy, FaultConfig::every_nth(1));
    }
    assert_refused("mightsleep", INSIDE_OWN, move || {
        let mut ctx = Sleepable::enter();
        let mut g = s.read_lock(&mut ctx);
        let nr = g.ctx_mut().no_reclaim(); // drops the brand
        s.kvfree_srcu_mightsleep(&nr, Box::new([7u8; 3]));
        drop(nr);
        drop(g);
    });
}

/// `RcuHashMap::domain()` is public and returns the sleepable domain's engine, a classic
/// `Domain` whose waits carry no brand check: the run-time checks must still catch them.
#[test]
fn waits_through_the_maps_public_engine_inside_its_section_are_refused() {
    type Map = RcuHashMap<u64, u64>;
    let make = |name: &str| {
        let s = srcu(name);
        let map: Arc<Map> =
            Arc::new(RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), s.clone()));
        (s, map)
    };
    let (s, map) = make("rt25-engine-sync");
    assert_refused("engine-synchronize", "would wait for itself", move || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        map.domain().synchronize_rcu(g.ctx());
        drop(g);
    });
    let (s, map) = make("rt25-engine-barrier");
    assert_refused("engine-barrier", "inside a read section of the same domain", move || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        map.domain().rcu_barrier(g.ctx());
        drop(g);
    });
    let (s, map) = make("rt25-engine-mightsleep");
    for policy in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait] {
        s.inject_faults(policy, FaultConfig::every_nth(1));
    }
    assert_refused("engine-mightsleep", "would wait for itself", move || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        map.domain().kvfree_rcu_mightsleep(g.ctx(), Box::new(5u32));
        drop(g);
    });
}

/// Writes inside the section with its own token never wait, even when they resize the map
/// or go over budget; with a second root they are refused.
#[test]
fn writes_inside_the_section_with_its_token_complete_and_with_a_second_root_are_refused() {
    let s = srcu("rt25-writes");
    s.set_budget(0); // always over budget: a reclaiming call would wait
    let map: Arc<RcuHashMap<u64, u64>> =
        Arc::new(RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), s.clone()));
    let cell = Arc::new(RcuCell::new_in(&s, 0u64));
    let (s2, map2, cell2) = (s.clone(), map.clone(), cell.clone());
    assert_completes("section-token-writes", move || {
        let mut ctx = Sleepable::enter();
        let mut g = s2.read_lock(&mut ctx);
        for i in 0..2000u64 {
            map2.insert(g.ctx_mut(), i, i); // resizes several times
            map2.insert(g.ctx_mut(), i, i + 1); // retires the old node
            cell2.set(g.ctx(), i);
            let _ = map2.get(&i, &g);
        }
        assert!(map2.buckets() >= 1024, "the map did not resize: {}", map2.buckets());
        for i in 0..2000u64 {
            map2.remove(g.ctx_mut(), &i);
        }
        drop(g);
        s2.srcu_barrier(&ctx);
    });
    let (s2, cell2) = (s.clone(), cell.clone());
    assert_refused("second-root-cell", "a call that may reclaim", move || {
        let mut ctx = Sleepable::enter();
        let g = s2.read_lock(&mut ctx);
        let root2 = Sleepable::enter();
        cell2.set(&root2, 1);
        drop(g);
    });
    let (s2, map2) = (s.clone(), map.clone());
    assert_refused("second-root-map", "a call that may reclaim", move || {
        let mut ctx = Sleepable::enter();
        let g = s2.read_lock(&mut ctx);
        let mut root2 = Sleepable::enter();
        map2.insert(&mut root2, 1, 1);
        map2.insert(&mut root2, 1, 2);
        drop(g);
    });
}

rcu_core::section_brand!(BrandA);
rcu_core::section_brand!(BrandB);

/// Another brand's domain may be waited for inside the section (and its barrier run).
#[test]
fn another_brands_domain_is_waited_for_inside_the_section() {
    let a: Arc<SrcuStruct<rcu_core::Fast, BrandA>> =
        Arc::new(SrcuStruct::new(DomainConfig::new().name("rt25-brand-a")));
    let b: Arc<SrcuStruct<rcu_core::Fast, BrandB>> =
        Arc::new(SrcuStruct::new(DomainConfig::new().name("rt25-brand-b")));
    assert_completes("other-brand", move || {
        let mut ctx = Sleepable::enter();
        let mut ga = a.read_lock(&mut ctx);
        b.kvfree_srcu(ga.ctx(), Rcu::boxed(3u8));
        b.synchronize_srcu(ga.ctx());
        b.srcu_barrier(ga.ctx());
        {
            let gb = b.read_lock(ga.ctx_mut());
            a.kvfree_srcu(gb.ctx(), Rcu::boxed(4u8));
        }
        drop(ga);
        a.srcu_barrier(&ctx);
    });
}
