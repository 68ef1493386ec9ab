//! Red team, issue 25 (SRCU), suspicion 4: cells and collections on a sleepable domain
//! read under every kind of guard, and written from inside sections with every token.
//!
//! - Under a sleepable guard of another domain, or a classic guard of the global domain:
//!   refused (panics) for `RcuCell`, `RcuHashMap` and `RcuList`;
//! - under a classic `ReadGuard` of the sleepable domain's own engine (obtained safely
//!   through the public `RcuHashMap::domain()`): accepted, and it holds the domain's grace
//!   periods (they wait for classic words too);
//! - an owned guard sent to another thread keeps what was read through it (list nodes, map
//!   values, the cell's value) alive while a writer removes them and leads grace periods;
//! - writes inside a borrowed section with `guard.ctx()`, `guard.ctx_mut().no_reclaim()` and
//!   `guard.ctx_mut().atomic()` (preallocated nodes) complete, and `RcuCell::update` with a
//!   closure that blocks completes too (it only delays the domain's grace periods).
//!
//! Deterministic (channels); held at the time of writing.
#![cfg(not(loom))]

mod common;

use std::collections::hash_map::RandomState;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{assert_holds_for, Pending};
use rcu_collections::{ListNode, Node, RcuHashMap, RcuList};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::quiet::expect_panic_quietly;

fn srcu(name: &str) -> Arc<SrcuStruct> {
    let s = Arc::new(SrcuStruct::new(DomainConfig::new().name(name.to_owned())));
    s.set_stall_timeout(Duration::from_secs(3600));
    s
}

#[test]
fn reads_under_the_wrong_guard_are_refused_and_under_the_engines_classic_guard_hold() {
    let a = srcu("rt25-coll-a");
    let b = srcu("rt25-coll-b");
    let cell = RcuCell::new_in(&a, 1u32);
    let map: RcuHashMap<u32, u32> =
        RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), a.clone());
    let mut list = RcuList::new_in(a.clone());
    list.push_back(ListNode::boxed(5u32));
    let mut ctx = Sleepable::enter();
    map.insert(&mut ctx, 1, 1);
    {
        let gb = b.read_lock(&mut ctx);
        assert!(expect_panic_quietly("another domain", || *cell.load(&gb)).is_err());
        assert!(expect_panic_quietly("another domain", || map.get(&1, &gb).copied()).is_err());
        assert!(expect_panic_quietly("another domain", || list.iter(&gb).count()).is_err());
    }
    {
        let gg = read_lock(&mut ctx);
        assert!(expect_panic_quietly("another domain", || *cell.load(&gg)).is_err());
        assert!(expect_panic_quietly("another domain", || map.get(&1, &gg).copied()).is_err());
    }
    // A classic guard of the engine: accepted, and it holds grace periods.
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let map = Arc::new(map);
    let m = map.clone();
    let reader = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let g = m.domain().read_lock(&mut ctx);
        let v = *m.get(&1, &g).unwrap();
        loaded_tx.send(v).unwrap();
        let _ = go_rx.recv(); // a classic reader must not block: this one is brief
        drop(g);
    });
    assert_eq!(loaded_rx.recv().unwrap(), 1);
    let a2 = a.clone();
    let mut gp = Pending::spawn("rt25-coll-gp", move || a2.synchronize_srcu(&Sleepable::enter()));
    assert_holds_for(Duration::from_millis(30), "a grace period ignored a classic reader", || {
        !gp.is_done()
    });
    go_tx.send(()).unwrap();
    reader.join().unwrap();
    gp.join("the grace period after the classic reader");
}

#[test]
fn owned_guards_on_other_threads_keep_collection_data_alive() {
    let a = srcu("rt25-coll-owned");
    let log = DropLog::new(64);
    let map: Arc<RcuHashMap<u32, Tracked>> =
        Arc::new(RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), a.clone()));
    let list = Arc::new(Mutex::new(RcuList::new_in(a.clone())));
    let reader_list = list.lock().unwrap().reader();
    let cell = Arc::new(RcuCell::new_in(&a, log.track()));
    let mut ctx = Sleepable::enter();
    for k in 0..8 {
        map.insert(&mut ctx, k, log.track());
        list.lock().unwrap().push_back(ListNode::boxed(log.track()));
    }
    let guard = a.down_read(&ctx);
    let mut ids: Vec<usize> = (0..8).map(|k| map.get(&k, &guard).unwrap().id()).collect();
    ids.extend(reader_list.iter(&guard).map(Tracked::id));
    ids.push(cell.load(&guard).id());
    // Everything read is removed and retired, and grace periods are led meanwhile.
    for k in 0..8 {
        map.remove(&mut ctx, &k);
    }
    list.lock().unwrap().retain(&ctx, |_| false);
    cell.set(&ctx, log.track());
    let a2 = a.clone();
    let mut gp = Pending::spawn("rt25-coll-gp2", move || {
        let ctx = Sleepable::enter();
        a2.synchronize_srcu(&ctx);
        a2.srcu_barrier(&ctx);
    });
    assert_holds_for(Duration::from_millis(20), "a grace period ignored an owned guard", || {
        !gp.is_done()
    });
    let freed_under = std::thread::scope(|s| {
        s.spawn(move || {
            // The guard moved here.
            std::thread::sleep(Duration::from_millis(30));
            let freed = ids.iter().filter(|&&id| log.is_freed(id)).count();
            drop(guard);
            freed
        })
        .join()
        .unwrap()
    });
    assert_eq!(freed_under, 0, "values freed under an owned guard held on another thread");
    gp.join("the grace period after the owned guard ended");
    assert_eq!(log.freed(), 8 + 8 + 1);
    log.assert_no_double_free();
}

#[test]
fn writes_inside_a_section_with_every_token_complete() {
    let a = srcu("rt25-coll-writes");
    let map: RcuHashMap<u32, String> =
        RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), a.clone());
    let cell = RcuCell::new_in(&a, String::from("0"));
    let mut list = RcuList::new_in(a.clone());
    let mut ctx = Sleepable::enter();
    let register = a.clone();
    register.register_current_thread(&ctx);
    let mut g = a.read_lock(&mut ctx);
    for i in 0..300u32 {
        map.insert(g.ctx_mut(), i, i.to_string());
        cell.set(g.ctx(), i.to_string());
        list.push_back(ListNode::boxed(i.to_string()));
        {
            let mut nr = g.ctx_mut().no_reclaim();
            map.insert(&mut nr, i, format!("nr{i}"));
            cell.set(&nr, format!("nr{i}"));
            list.pop_front(&nr);
        }
        {
            let node = Node::boxed(i, format!("at{i}"));
            let fresh = Rcu::boxed(format!("at{i}"));
            let mut spin = g.ctx_mut().atomic();
            map.insert_node(&mut spin, node);
            cell.replace(&spin, fresh);
            map.remove(&mut spin, &i);
        }
        // An update whose closure blocks (a sleepable section may; the closure runs in a
        // classic section of the engine, which only delays grace periods).
        cell.update(g.ctx_mut(), |old| {
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            Rcu::boxed(format!("{old}+"))
        });
    }
    assert!(cell.load(&g).ends_with('+'));
    drop(g);
    a.synchronize_srcu(&ctx);
    a.srcu_barrier(&ctx);
}
