//! Keys whose `Eq` or `Hash` use the map they are in (issue 22's suspicion). A key's `Eq`
//! runs while a write holds one of the map's bucket locks: a write to the same map from it
//! would wait for that lock for ever, so it is refused with a panic naming the rule (the
//! outer write then unwinds, releasing its lock). Reading the map from `Eq` is fine, and so
//! is writing to it from `Hash`, which runs before any lock is taken.
#![cfg(not(loom))]

mod common;

use std::cell::{Cell, RefCell};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use common::{panic_message, within};
use rcu_collections::{Node, RcuHashMap};
use rcu_core::prelude::*;

type Map = RcuHashMap<Key, u64>;

/// What a key's `Eq` (or `Hash`) does with the map, once, when armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reentry {
    InsertNode,
    Remove,
    Clear,
    /// `insert`: needs a token that may allocate (a spare root's).
    Insert,
    Maintain,
    /// `get` under a nested read section: allowed.
    Read,
}

struct Plan {
    map: Arc<Map>,
    what: Reentry,
    /// Taken before the write: roots may not be taken inside a read section.
    root: &'static mut Sleepable,
    in_hash: bool,
    /// Calls to let pass first.
    skip: u32,
}

thread_local! {
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
    /// What the re-entrant read found.
    static READ: Cell<Option<u64>> = const { Cell::new(None) };
}

fn arm(map: &Arc<Map>, what: Reentry, in_hash: bool) {
    arm_after(map, what, in_hash, 0);
}

/// Arms the plan for the call after the next `skip` ones.
fn arm_after(map: &Arc<Map>, what: Reentry, in_hash: bool, skip: u32) {
    let root = Box::leak(Box::new(Sleepable::enter()));
    let plan = Plan { map: Arc::clone(map), what, root, in_hash, skip };
    PLAN.with(|p| *p.borrow_mut() = Some(plan));
}

fn still_armed() -> bool {
    PLAN.with(|p| p.borrow().is_some())
}

/// Runs the armed plan (once) if it is for `from_hash`.
fn reenter(from_hash: bool) {
    let Some(plan) = PLAN.with(|p| {
        let mut p = p.borrow_mut();
        match p.as_mut() {
            Some(plan) if plan.in_hash == from_hash && plan.skip > 0 => {
                plan.skip -= 1;
                None
            }
            Some(plan) if plan.in_hash == from_hash => p.take(),
            _ => None,
        }
    }) else {
        return;
    };
    let Plan { map, what, root, .. } = plan;
    match what {
        Reentry::InsertNode => {
            map.insert_node(&mut root.atomic(), Node::boxed(Key(100), 100));
        }
        Reentry::Remove => {
            map.remove(&mut root.atomic(), &Key(1));
        }
        Reentry::Clear => map.clear(&mut root.atomic()),
        Reentry::Insert => {
            map.insert(root, Key(101), 101);
        }
        Reentry::Maintain => {
            map.maintain(root);
        }
        Reentry::Read => {
            let mut spin = root.atomic();
            let guard = read_lock(&mut spin);
            READ.set(map.get(&Key(1), &guard).copied());
        }
    }
}

/// A key whose hash is always 0: every key shares one bucket, so a re-entrant write to any
/// key would wait for the lock its caller holds.
#[derive(Debug, Clone, Copy)]
struct Key(u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        reenter(true);
        state.write_u64(0);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        reenter(false);
        self.0 == other.0
    }
}

impl Eq for Key {}

fn map_of_three() -> (Arc<Map>, Sleepable) {
    let map = Arc::new(Map::new());
    let mut ctx = Sleepable::enter();
    drop(read_lock(&mut ctx)); // registers the thread: Atomic writes enter read sections
    for k in 0..3 {
        map.insert(&mut ctx, Key(k), k);
    }
    (map, ctx)
}

fn keys(map: &Map, ctx: &mut Sleepable) -> Vec<u64> {
    let guard = read_lock(ctx);
    let mut keys: Vec<u64> = map.iter(&guard).map(|(k, _)| k.0).collect();
    keys.sort_unstable();
    keys
}

/// Every write from a key's `Eq` to the same map is refused (no hang), the outer write has
/// no effect, and the bucket it locked is free again.
#[test]
fn a_write_from_eq_to_the_same_map_is_refused() {
    within("writes from Eq", || {
        for what in [Reentry::InsertNode, Reentry::Remove, Reentry::Clear] {
            let (map, mut ctx) = map_of_three();
            arm(&map, what, false);
            let text = panic_message(|| {
                map.remove(&mut ctx, &Key(2));
            });
            assert!(
                text.contains("called from the keys' Eq") && text.contains("(rule:"),
                "{what:?}: {text}"
            );
            assert_eq!(keys(&map, &mut ctx), [0, 1, 2], "{what:?}: nothing changed");
            assert!(map.remove(&mut ctx, &Key(2)), "{what:?}: the bucket is unlocked");
            assert!(map.insert(&mut ctx, Key(3), 3));
            assert_eq!(keys(&map, &mut ctx), [0, 1, 3]);
        }
    });
}

/// A write needing a token that may allocate has none to use inside `Eq` (it runs inside
/// the write's read section): a spare root is refused by the context check.
#[test]
fn an_allocating_write_from_eq_is_refused_too() {
    within("allocating writes from Eq", || {
        for what in [Reentry::Insert, Reentry::Maintain] {
            let (map, mut ctx) = map_of_three();
            arm(&map, what, false);
            let text = panic_message(|| {
                map.insert(&mut ctx, Key(2), 20);
            });
            assert!(text.contains("(rule:"), "{what:?}: {text}");
            assert_eq!(keys(&map, &mut ctx), [0, 1, 2], "{what:?}");
            let guard = read_lock(&mut ctx);
            assert_eq!(map.get(&Key(2), &guard), Some(&2), "{what:?}: not replaced");
        }
    });
}

/// `Eq` may read the map it is compared in.
#[test]
fn eq_may_read_the_same_map() {
    within("reads from Eq", || {
        let (map, mut ctx) = map_of_three();
        arm(&map, Reentry::Read, false);
        assert!(map.remove(&mut ctx, &Key(2)));
        assert_eq!(READ.get(), Some(1), "the read from Eq found key 1");
        assert_eq!(keys(&map, &mut ctx), [0, 1]);
    });
}

/// `Hash` runs before a write takes any lock (and never during a resize): it may write to
/// the same map.
#[test]
fn hash_may_write_to_the_same_map() {
    within("writes from Hash", || {
        for what in [Reentry::InsertNode, Reentry::Remove, Reentry::Clear] {
            let (map, mut ctx) = map_of_three();
            arm(&map, what, true);
            assert!(map.insert(&mut ctx, Key(7), 7), "{what:?}");
            let expect: Vec<u64> = match what {
                Reentry::InsertNode => vec![0, 1, 2, 7, 100],
                Reentry::Remove => vec![0, 2, 7],
                _ => vec![7],
            };
            assert_eq!(keys(&map, &mut ctx), expect, "{what:?}");
            assert_eq!(map.len(), expect.len());
        }
    });
}

/// Nor does a resize run `Hash` (nodes keep theirs): a `Hash` that writes to the map cannot
/// meet the lock of the bucket being migrated (before, it waited for it for ever).
#[test]
fn hash_runs_no_write_of_its_own_inside_a_resize() {
    within("Hash and a resize", || {
        let map = Arc::new(Map::new());
        let mut ctx = Sleepable::enter();
        drop(read_lock(&mut ctx));
        for k in 0..16 {
            map.insert(&mut ctx, Key(k), k);
        }
        assert_eq!(map.buckets(), 16);
        // The 17th insert's own Hash passes; the next one inserts key 100.
        arm_after(&map, Reentry::InsertNode, true, 1);
        assert!(map.insert(&mut ctx, Key(16), 16));
        assert!(map.buckets() > 16, "the insert grew the table");
        assert!(still_armed(), "Hash ran again inside the insert (during its resize)");
        PLAN.with(|p| p.borrow_mut().take());
        assert_eq!(keys(&map, &mut ctx), (0..17).collect::<Vec<_>>());
    });
}
