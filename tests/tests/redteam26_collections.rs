//! Red team, issue 26: cells' and collections' own sections on a QSBR domain. Their classic
//! sections nest inside an online period (depth above 1), so
//! - a value an `RcuHashMap` hands to an explicit online handle survives a remove made by
//!   the same thread while online (with its `Atomic` token) until the handle's quiescent
//!   state, and a barrier on another thread waits for that quiescent state;
//! - an executor park inside an `RcuCell::update` closure (no `read` closure is running, so
//!   it does take the worker offline: one level of the word) leaves the closure's value
//!   protected by the level the update itself entered.
//!
//! Deterministic: channels order every step. Held at the time of writing.
#![cfg(not(loom))]

mod common;

use std::collections::hash_map::RandomState;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use common::{assert_holds_for, Canary, Pending, HOLD};
use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

#[test]
fn a_map_value_read_online_outlives_its_removal_until_the_quiescent_state() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-map")));
    let map: Arc<RcuHashMap<u32, Canary>> =
        Arc::new(RcuHashMap::with_capacity_and_hasher_in(4, RandomState::new(), d.clone()));
    let (canary, dropped) = Canary::new(7);
    map.insert(&mut Sleepable::enter(), 1, canary);
    let (removed_tx, removed_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader = {
        let (d, map) = (d.clone(), map.clone());
        Pending::spawn("red26-map-reader", move || {
            let mut ctx = Sleepable::enter();
            let mut online = d.online(&mut ctx);
            let value = map.get(&1, &online).expect("inserted");
            assert!(map.remove(&mut online.ctx().nested(), &1));
            removed_tx.send(value.value()).expect("the test waits");
            go_rx.recv().expect("the test says when");
            let seen = value.value();
            online.quiescent_state();
            assert!(map.get(&1, &online).is_none());
            drop(online);
            seen
        })
    };
    assert_eq!(removed_rx.recv().expect("the reader removes"), 7);
    let mut barrier = {
        let d = d.clone();
        Pending::spawn("red26-map-barrier", move || d.rcu_barrier(&Sleepable::enter()))
    };
    assert_holds_for(HOLD, "a removed map value was freed while its reader was online", || {
        !barrier.is_done() && !dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).expect("the reader waits");
    assert_eq!(reader.join("the reader"), 7, "the value was freed under the online reader");
    barrier.join("the barrier after the reader's quiescent state");
    assert!(dropped.load(Ordering::SeqCst), "the removed value was never freed");
    assert_eq!(d.stats().membarriers, 0);
}

#[test]
fn a_park_inside_an_update_closure_leaves_its_value_protected() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-update-park")));
    let (canary, first_dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, canary));
    let (inside_tx, inside_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = {
        let (d, cell) = (d.clone(), cell.clone());
        Pending::spawn("red26-update-park", move || {
            let mut ctx = Sleepable::enter();
            d.executor_thread_start();
            d.executor_thread_park();
            assert_eq!(d.read(|r| cell.load(r).value()), 1);
            assert!(d.is_executor_online());
            let mut first = true;
            let mut seen = Vec::new();
            cell.update(&mut ctx, |old| {
                if first {
                    first = false;
                    d.executor_thread_park(); // outside any read closure: goes offline
                    inside_tx.send(d.is_executor_online()).expect("the test waits");
                    go_rx.recv().expect("the test says when");
                }
                seen.push(old.value());
                Rcu::boxed(Canary::new(old.value() + 100).0)
            });
            d.executor_thread_stop();
            seen
        })
    };
    assert!(!inside_rx.recv().expect("the worker parks inside the update"));
    let mut writer = {
        let (d, cell) = (d.clone(), cell.clone());
        Pending::spawn("red26-update-writer", move || {
            let ctx = Sleepable::enter();
            cell.set(&ctx, Canary::new(2).0);
            d.synchronize_rcu(&ctx);
        })
    };
    assert_holds_for(HOLD, "a park inside an update closure let its value be freed", || {
        !writer.is_done() && !first_dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).expect("the worker waits");
    // The first try saw 1 (alive), lost the race to the writer, and retried on 2.
    assert_eq!(worker.join("the worker"), vec![1, 2], "a value was freed under the closure");
    writer.join("the grace period after the update");
    d.rcu_barrier(&Sleepable::enter());
    assert!(first_dropped.load(Ordering::SeqCst));
    assert_eq!(d.stats().leaked_read_sections, 0);
}
