//! An `RcuList` whose predicate panics at each of its calls in turn (issue 22, the list's
//! share of "a panicking user callback in every write"): the elements unlinked before the
//! panic are retired, the others stay, and the list's length and tail match; a reader that
//! holds every element across the call finds them intact; every element is dropped once.
#![cfg(not(loom))]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{message, within, PROVOKED};
use rcu_collections::{ListNode, RcuList};
use rcu_core::prelude::*;

/// An element with a canary; poisoned and counted when dropped.
#[derive(Debug)]
struct Elem {
    id: u64,
    canary: u64,
    drops: Arc<AtomicUsize>,
}

fn canary_of(id: u64) -> u64 {
    !id.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

impl Elem {
    fn new(id: u64, drops: &Arc<AtomicUsize>) -> Self {
        Elem { id, canary: canary_of(id), drops: Arc::clone(drops) }
    }
}

impl Drop for Elem {
    fn drop(&mut self) {
        self.canary = 0;
        // SeqCst: read after an rcu_barrier.
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy)]
enum Path {
    /// Removes the odd elements.
    Retain,
    /// Removes element 5.
    RemoveFirst,
    /// Replaces element 5 by element 100.
    ReplaceFirst,
}

const LEN: u64 = 8;

/// Runs `path` with a predicate that panics at its `panic_at`-th call, while a reader holds
/// every element; checks the list against what the calls before the panic did.
fn scenario(path: Path, panic_at: usize) {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut list = RcuList::new();
    for id in 0..LEN {
        list.push_back(ListNode::boxed(Elem::new(id, &drops)));
    }
    let reader = list.reader();
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let held = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let guard = read_lock(&mut ctx);
        let all: Vec<&Elem> = reader.iter(&guard).collect();
        loaded_tx.send(all.len()).unwrap();
        go_rx.recv().unwrap();
        all.iter().all(|e| e.canary == canary_of(e.id))
    });
    assert_eq!(loaded_rx.recv().unwrap(), LEN as usize);
    let ctx = Sleepable::enter();
    let mut calls = 0;
    let mut predicate = |e: &Elem, hit: bool| {
        calls += 1;
        if calls == panic_at {
            panic!("{PROVOKED} the predicate panics at call {calls}");
        }
        hit && e.canary == canary_of(e.id)
    };
    let replacement_drops = Arc::new(AtomicUsize::new(0));
    let run = catch_unwind(AssertUnwindSafe(|| match path {
        Path::Retain => {
            list.retain(&ctx, |e| !predicate(e, e.id % 2 == 1));
        }
        Path::RemoveFirst => {
            list.remove_first(&ctx, |e| predicate(e, e.id == 5));
        }
        Path::ReplaceFirst => {
            let new = ListNode::boxed(Elem::new(100, &replacement_drops));
            let _ = list.replace_first(&ctx, |e| predicate(e, e.id == 5), new);
        }
    }));
    // The predicate is called once per element until it stops (Retain: all of them;
    // the others: up to element 5), so call `panic_at` is on element `panic_at - 1`.
    let called = match path {
        Path::Retain => LEN as usize,
        _ => 6,
    };
    let panicked = panic_at <= called;
    match &run {
        Err(panic) => assert!(panicked && message(&**panic).contains(PROVOKED)),
        Ok(()) => assert!(!panicked, "{path:?}: call {panic_at} did not panic"),
    }
    // Elements whose predicate ran and returned before the panic were handled.
    let done = if panicked { panic_at - 1 } else { called };
    let mut expect: Vec<u64> = (0..LEN).collect();
    match path {
        Path::Retain => expect.retain(|&id| id % 2 == 0 || id >= done as u64),
        Path::RemoveFirst if done == 6 => expect.retain(|&id| id != 5),
        Path::ReplaceFirst if done == 6 => expect[5] = 100,
        _ => {}
    }
    let ids: Vec<u64> = list.values().map(|e| e.id).collect();
    assert_eq!(ids, expect, "{path:?}, panic at {panic_at}");
    assert_eq!(list.len(), expect.len(), "{path:?}, panic at {panic_at}: length");
    go.send(()).unwrap();
    assert!(held.join().unwrap(), "{path:?}, panic at {panic_at}: a held element was dropped");
    // The tail is right: an element pushed at the back is last.
    list.push_back(ListNode::boxed(Elem::new(200, &drops)));
    assert_eq!(list.values().last().map(|e| e.id), Some(200));
    rcu_barrier(&ctx);
    let removed = LEN as usize - expect.iter().filter(|&&id| id < LEN).count();
    assert_eq!(drops.load(Ordering::SeqCst), removed, "{path:?}, panic at {panic_at}: drops");
    let replaced = usize::from(!expect.contains(&100) && matches!(path, Path::ReplaceFirst));
    assert_eq!(replacement_drops.load(Ordering::SeqCst), replaced, "unpublished: dropped");
    drop(list);
    assert_eq!(drops.load(Ordering::SeqCst), LEN as usize + 1, "each dropped once");
}

#[test]
fn a_panicking_predicate_leaves_the_list_consistent() {
    within("panicking list predicates", || {
        for path in [Path::Retain, Path::RemoveFirst, Path::ReplaceFirst] {
            for panic_at in 1..=LEN as usize + 1 {
                scenario(path, panic_at);
            }
        }
    });
}
