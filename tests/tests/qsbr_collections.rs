//! The collections on a QSBR domain (issue 26): an `RcuHashMap` and an `RcuList` made
//! `*_in` a `QsbrDomain` are read through an online handle or `QsbrDomain::read`, written
//! with every token, and what a writer removes stays alive while a thread that loaded it is
//! online without a quiescent state. Interleavings are forced with channels.
#![cfg(not(loom))]

mod common;

use std::collections::hash_map::RandomState;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use common::{assert_holds_for, Canary, Pending, HOLD};
use rcu_collections::{ListNode, RcuHashMap, RcuList};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

fn domain(name: &'static str) -> Arc<QsbrDomain> {
    Arc::new(QsbrDomain::new(DomainConfig::new().name(name)))
}

#[test]
fn a_map_on_a_qsbr_domain_keeps_a_removed_value_until_the_readers_quiescent_state() {
    let d = domain("qsbr-map");
    let map = Arc::new(RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), d.clone()));
    let (canary, dropped) = Canary::new(7);
    map.insert(&mut Sleepable::enter(), 1u64, canary);
    map.insert(&mut NoReclaimRoot::enter(), 2u64, Canary::new(8).0);
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (dr, mr) = (d.clone(), map.clone());
    let reader = Pending::spawn("qsbr-map-reader", move || {
        let mut ctx = Sleepable::enter();
        let mut online = dr.online(&mut ctx);
        let value = mr.get(&1, &online).expect("key 1 is there");
        loaded_tx.send(value.value()).expect("the test waits");
        go_rx.recv().expect("the test says when");
        let seen = value.value();
        online.quiescent_state();
        assert!(mr.get(&1, &online).is_none(), "the removal is visible after the state");
        assert_eq!(mr.iter(&online).count(), 1);
        seen
    });
    assert_eq!(loaded_rx.recv().expect("the reader loads"), 7);
    let (dw, mw) = (d.clone(), map.clone());
    let mut writer = Pending::spawn("qsbr-map-writer", move || {
        let mut ctx = Sleepable::enter();
        assert!(mw.remove(&mut ctx, &1));
        dw.synchronize_rcu(&ctx);
        dw.rcu_barrier(&ctx);
    });
    assert_holds_for(HOLD, "a removed map value was freed while its reader was online", || {
        !writer.is_done() && !dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).expect("the reader waits");
    assert_eq!(reader.join("the map reader"), 7, "the value was freed under the reader");
    writer.join("the writer after the reader went offline");
    assert!(dropped.load(Ordering::SeqCst), "the removed value was never freed");
    // Read through a closure, too.
    d.register_current_thread(&Sleepable::enter());
    assert_eq!(d.read(|r| map.get(&2, r).map(Canary::value)), Some(8));
}

#[test]
fn a_list_on_a_qsbr_domain_is_read_online_and_written_with_every_token() {
    let d = domain("qsbr-list");
    let mut list = RcuList::new_in(d.clone());
    for v in 0..4u64 {
        list.push_back(ListNode::boxed(v));
    }
    let ctx = Sleepable::enter();
    assert!(list.remove_first(&ctx, |v| *v == 0));
    assert!(list.remove_first(&NoReclaimRoot::enter(), |v| *v == 1));
    {
        let mut ctx = Sleepable::enter();
        let online = d.online(&mut ctx);
        assert!(list.pop_front(online.ctx())); // Atomic: deferred, never inline
        assert_eq!(list.iter(&online).copied().collect::<Vec<_>>(), vec![3]);
    }
    d.rcu_barrier(&ctx);
    assert_eq!(list.len(), 1);
}
