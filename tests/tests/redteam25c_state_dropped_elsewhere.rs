//! Red team 25c, suspicion 2: thread A registers with private domain `D` (classic, then in a
//! second test sleepable), stages work on its slot and fills `FoundCache` with it (an
//! `Atomic` update of D's cell, last thing), and drops D's handle: A's registration is kept
//! (commit 1ee279d). The cell then goes to thread B, which drops it: the last strong
//! reference outside D's worker, which then lets the state go, running what A's slot held
//! and freeing the slots, while A's list entry and cache still name them. A waits until D's
//! runtime threads have exited (the state is gone), then:
//! 1. makes domain `E` (which cannot take D's address: A's entry keeps the allocation) and
//!    reads it: a cache miss, a walk, a registration that removes D's dead entry;
//! 2. drops E, makes `F` (which may now take D's or E's address) and checks, inside a
//!    section of F, that a grace period of F started there does not complete and that the
//!    value loaded there (then retired) is not dropped during `HOLD`; both happen after;
//! 3. exits (its exit hook walks what is left of the list).
//!
//! Every value must be dropped once. Also meant for valgrind
//! (`valgrind --error-exitcode=1 target/debug/deps/redteam25c_state_dropped_elsewhere-*`):
//! a use of the freed slot memory would show there. Deterministic (channels, and waiting
//! for the threads to exit).
//!
//! Verdict: holds at the time of writing (also clean under valgrind).
#![cfg(not(loom))]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, RcuDomain, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::threads_named;

const HOLD: Duration = Duration::from_millis(50);
const PATIENCE: Duration = Duration::from_secs(60);

fn wait_gone(prefix: &str) {
    let start = Instant::now();
    while threads_named(prefix) != 0 {
        assert!(start.elapsed() < PATIENCE, "hung: runtime threads '{prefix}' never exited");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A section of a fresh domain `F` after the dead state's entry was removed.
fn check_fresh(log: &'static DropLog, ctx: &mut Sleepable, name: &str) {
    let f = Domain::new(DomainConfig::new().name(name.to_string()));
    let cell = RcuCell::new_in(&f, log.track());
    drop(f.read_lock(ctx)); // registers, fills the cache
    let (id, cookie);
    {
        let g = f.read_lock(ctx); // the cache
        id = cell.load(&g).id();
        cell.replace(g.ctx(), Rcu::boxed(log.track()));
        cookie = f.start_poll(g.ctx());
        let start = Instant::now();
        while start.elapsed() < HOLD {
            assert!(!f.poll(cookie), "a grace period of F ended inside F's section");
            assert!(!log.is_freed(id), "the value loaded in F's section was dropped inside it");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    f.rcu_barrier(&*ctx);
    assert!(f.poll(cookie), "the grace period never completed after the section");
    assert!(log.is_freed(id), "the retired value was never dropped");
}

fn scenario<D: RcuDomain + Register + Send + 'static>(make: fn(String) -> D, tag: &'static str) {
    let log = DropLog::new(64);
    let (to_b, from_a) = mpsc::channel::<RcuCell<Tracked>>();
    let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
    let b = std::thread::spawn(move || {
        let cell = from_a.recv().expect("the cell");
        drop(cell); // the last reference but the worker's
        dropped_tx.send(()).expect("A waits");
    });
    let a = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let d = make(format!("{tag}D"));
        d.as_domain_register(&ctx);
        let cell = RcuCell::new_in(&d, log.track());
        cell.set(&ctx, log.track()); // staged on A's slot
        let mut spare = Some(Rcu::boxed(log.track()));
        {
            let mut spin = ctx.atomic();
            cell.update(&mut spin, |_| spare.take().expect("one try"));
        }
        let d_key = format!("{:?}", d.domain_key());
        drop(d);
        to_b.send(cell).expect("B waits");
        dropped_rx.recv().expect("B dropped the cell");
        wait_gone(&format!("rcu-gp-{tag}D"));
        // The state is gone; A's entry and cache still name it.
        let e = Domain::new(DomainConfig::new().name(format!("{tag}E")));
        assert_ne!(format!("{:?}", e.domain_key()), d_key, "E took the address of D's state");
        let ecell = RcuCell::new_in(&e, log.track());
        {
            let g = e.read_lock(&mut ctx);
            let _ = ecell.load(&g).id();
        }
        drop(ecell);
        drop(e);
        check_fresh(log, &mut ctx, &format!("{tag}F"));
        check_fresh(log, &mut ctx, &format!("{tag}G"));
    });
    a.join().expect("thread A");
    b.join().expect("thread B");
    let mut ctx = Sleepable::enter();
    rcu_barrier(&ctx);
    let _ = &mut ctx;
    assert!(log.wait_freed(log.allocated(), PATIENCE), "values never dropped");
    log.assert_all_freed_once();
}

/// Registration through the public API of either kind of domain.
trait Register {
    fn as_domain_register(&self, ctx: &Sleepable);
}

impl Register for Domain {
    fn as_domain_register(&self, ctx: &Sleepable) {
        self.register_current_thread(ctx);
    }
}

impl Register for SrcuStruct {
    fn as_domain_register(&self, ctx: &Sleepable) {
        self.register_current_thread(ctx);
    }
}

#[test]
fn a_classic_state_dropped_by_another_thread_leaves_no_dangling_use() {
    scenario(|n| Domain::new(DomainConfig::new().name(n)), "c2c");
}

#[test]
fn a_sleepable_state_dropped_by_another_thread_leaves_no_dangling_use() {
    scenario(|n| -> SrcuStruct { SrcuStruct::new(DomainConfig::new().name(n)) }, "c2s");
}
