//! Hostile programs of issue 22 (refusals in the middle of an unlink-then-retire path):
//! every write that unlinks an element and retires it checks the thread's real context in
//! every build, and a token that claims more than the thread may do is refused.
//!
//! Two kinds of program, for every such path of `RcuList` and `RcuHashMap`:
//! - **refused up front**: a second root `Sleepable` (allowed) used inside an atomic or a
//!   no-reclaim scope. The write must panic before it changes anything: the collection is
//!   as it was, and nothing was allocated or retired.
//! - **refused after the unlink**: the token fits when the write starts, but the user code
//!   the write runs (`Eq` of the keys, the list's predicate) opens an atomic scope that
//!   outlives it, so the retire call (`kvfree_rcu`) refuses after the element was unlinked.
//!   The element must be leaked, never dropped, and the collection's bookkeeping (length,
//!   tail) must match what was unlinked.
//!
//! In both, a reader on another thread loads each element the write unlinks (or would
//! unlink) under a read guard before the call, and reads it again after: it must be intact
//! (its canary unchanged, its drop counter at zero).
#![cfg(not(loom))]

mod common;

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use common::{panic_message, within};
use rcu_collections::{Computed, ListNode, ListReader, Node, RcuHashMap, RcuList};
use rcu_core::prelude::*;
use rcu_core::ReadGuard;

/// A value with a canary and its own drop counter; poisoned when dropped.
#[derive(Debug)]
struct Canary {
    id: u64,
    canary: u64,
    drops: Arc<AtomicUsize>,
}

fn canary_of(id: u64) -> u64 {
    id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed_5eed_5eed_5eed
}

impl Canary {
    fn new(id: u64) -> Self {
        Canary { id, canary: canary_of(id), drops: Arc::new(AtomicUsize::new(0)) }
    }

    fn intact(&self) -> bool {
        // SeqCst: a plain check, ordered after the reader's receipt of "go".
        self.canary == canary_of(self.id) && self.drops.load(Ordering::SeqCst) == 0
    }

    fn drops(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.drops)
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.canary = 0;
        // SeqCst: read by the tests after an rcu_barrier.
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A reader thread that holds elements, loaded under its read guard, until released.
struct Held {
    go: Sender<()>,
    done: JoinHandle<Vec<u64>>,
}

/// Starts a reader that loads elements through `handle` under a read guard (`load`), and
/// returns once they are loaded, with their ids.
fn hold<H, F>(handle: H, load: F) -> (Held, Vec<u64>)
where
    H: Send + 'static,
    F: for<'g> FnOnce(&'g H, &'g ReadGuard<'_>) -> Vec<&'g Canary> + Send + 'static,
{
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let done = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let guard = read_lock(&mut ctx);
        let held = load(&handle, &guard);
        let ids: Vec<u64> = held.iter().map(|c| c.id).collect();
        assert!(held.iter().all(|c| c.intact()), "damaged before the write");
        loaded_tx.send(ids.clone()).unwrap();
        go_rx.recv().unwrap();
        for c in &held {
            assert!(c.intact(), "element {} was dropped while a reader held it", c.id);
        }
        ids
    });
    let ids = loaded_rx.recv().expect("the reader loaded its elements");
    (Held { go, done }, ids)
}

impl Held {
    /// Lets the reader read its elements again; panics if they were not intact.
    fn release(self) -> Vec<u64> {
        self.go.send(()).unwrap();
        self.done.join().expect("the reader found its elements intact")
    }
}

/// The scope a spare root is smuggled into.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Atomic,
    NoReclaim,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Atomic => "an atomic scope",
            Scope::NoReclaim => "a no-reclaim scope",
        }
    }

    /// Runs `f` with a scope of this kind open on `ctx`.
    fn run<R>(self, ctx: &mut Sleepable, f: impl FnOnce() -> R) -> R {
        match self {
            Scope::Atomic => {
                let _scope = ctx.atomic();
                f()
            }
            Scope::NoReclaim => {
                let _scope = ctx.no_reclaim();
                f()
            }
        }
    }
}

/// Asserts that `text` is a refusal of a token inside `scope`.
#[track_caller]
fn assert_refusal(text: &str, scope: Scope) {
    let inside = format!("called inside {}", scope.name());
    assert!(text.contains(&inside) && text.contains("with a token that claims more"), "{text}");
}

thread_local! {
    /// A root taken before the write (roots may not be taken inside a read section), from
    /// which user code opens an atomic scope that outlives the write.
    static SPARE_ROOT: RefCell<Option<&'static mut Sleepable>> = const { RefCell::new(None) };
    /// That scope, until the test ends it.
    static LEFT_OPEN: RefCell<Option<Atomic<'static>>> = const { RefCell::new(None) };
}

/// Prepares `leave_atomic_scope_open` (outside any read section).
fn prepare_scope_left_open() {
    let root: &'static mut Sleepable = Box::leak(Box::new(Sleepable::enter()));
    SPARE_ROOT.with(|r| *r.borrow_mut() = Some(root));
}

/// Called from user code inside a write: opens an atomic scope that outlives the write, so
/// that the write's retire call is refused after its unlink.
fn leave_atomic_scope_open() {
    if let Some(root) = SPARE_ROOT.with(|r| r.borrow_mut().take()) {
        let scope = root.atomic();
        LEFT_OPEN.with(|s| *s.borrow_mut() = Some(scope));
    }
}

/// Ends the scope user code left open; true if there was one.
fn close_scope_left_open() -> bool {
    LEFT_OPEN.with(|s| s.borrow_mut().take()).is_some()
}

// ---------------------------------------------------------------------------------------
// RcuList

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListPath {
    Retain,
    RemoveFirst,
    PopFront,
    ReplaceFirst,
}

const LIST_PATHS: [ListPath; 4] =
    [ListPath::Retain, ListPath::RemoveFirst, ListPath::PopFront, ListPath::ReplaceFirst];

/// A list of elements 0..4 and a reader handle.
fn list_of_four() -> (RcuList<Canary>, ListReader<Canary>) {
    let mut list = RcuList::new();
    for id in 0..4 {
        list.push_back(ListNode::boxed(Canary::new(id)));
    }
    let reader = list.reader();
    (list, reader)
}

fn ids(list: &RcuList<Canary>) -> Vec<u64> {
    list.values().map(|c| c.id).collect()
}

/// The element `path` removes: the front for `pop_front`, element 2 otherwise.
fn list_victim(path: ListPath) -> u64 {
    if path == ListPath::PopFront {
        0
    } else {
        2
    }
}

/// Runs `path` on `list` with `ctx`, removing (or replacing by element 9) the victim; the
/// victim's predicate calls `on_victim` first.
fn run_list_path<C: Context>(path: ListPath, list: &mut RcuList<Canary>, ctx: &C, on_victim: fn()) {
    let victim = list_victim(path);
    let is_victim = move |c: &Canary| {
        if c.id == victim {
            on_victim();
        }
        c.id == victim
    };
    match path {
        ListPath::Retain => {
            list.retain(ctx, |c| !is_victim(c));
        }
        ListPath::RemoveFirst => {
            list.remove_first(ctx, is_victim);
        }
        ListPath::PopFront => {
            list.pop_front(ctx);
        }
        ListPath::ReplaceFirst => {
            let _ = list.replace_first(ctx, is_victim, ListNode::boxed(Canary::new(9)));
        }
    }
}

/// A second root inside a scope: every list path is refused before it unlinks anything.
#[test]
fn list_writes_with_a_smuggled_token_are_refused_before_unlinking() {
    within("list refusals", || {
        for path in LIST_PATHS {
            for scope in [Scope::Atomic, Scope::NoReclaim] {
                let (mut list, reader) = list_of_four();
                let victim = list_victim(path);
                let drops = list.values().find(|c| c.id == victim).unwrap().drops();
                let (held, loaded) =
                    hold(reader, move |r, g| r.iter(g).filter(|c| c.id == victim).collect());
                assert_eq!(loaded, [victim]);
                let spare = Sleepable::enter();
                let mut ctx = Sleepable::enter();
                let text = scope.run(&mut ctx, || {
                    panic_message(|| run_list_path(path, &mut list, &spare, || {}))
                });
                assert_refusal(&text, scope);
                assert_eq!(held.release(), [victim], "{path:?} in {scope:?}");
                // Nothing changed, and the list works.
                assert_eq!((ids(&list), list.len()), (vec![0, 1, 2, 3], 4), "{path:?}");
                list.push_back(ListNode::boxed(Canary::new(4)));
                run_list_path(path, &mut list, &ctx, || {});
                let mut expect = vec![0, 1, 2, 3, 4];
                match path {
                    ListPath::ReplaceFirst => expect[2] = 9,
                    _ => expect.retain(|&id| id != victim),
                }
                assert_eq!(ids(&list), expect, "{path:?} after the refusal");
                assert_eq!(list.len(), expect.len());
                rcu_barrier(&ctx);
                assert_eq!(drops.load(Ordering::SeqCst), 1, "{path:?}: the victim, removed later");
            }
        }
    });
}

/// The list's predicate leaves an atomic scope open: the retire after the unlink is
/// refused, and the unlinked element is leaked, with the list's length and tail right.
#[test]
fn list_retires_refused_after_the_unlink_leak_the_element() {
    within("list refusals after the unlink", || {
        // `pop_front` runs no user code: nothing can change the context in its middle.
        for path in LIST_PATHS.into_iter().filter(|p| *p != ListPath::PopFront) {
            let (mut list, reader) = list_of_four();
            let victim = list_victim(path);
            let drops = list.values().find(|c| c.id == victim).unwrap().drops();
            let (held, _) =
                hold(reader, move |r, g| r.iter(g).filter(|c| c.id == victim).collect());
            let ctx = Sleepable::enter();
            prepare_scope_left_open();
            let text = panic_message(|| {
                run_list_path(path, &mut list, &ctx, leave_atomic_scope_open);
            });
            assert!(close_scope_left_open(), "{path:?}: the predicate ran");
            assert!(text.contains("kvfree_rcu called inside an atomic scope"), "{path:?}: {text}");
            assert_eq!(held.release(), [victim], "{path:?}");
            let mut expect = vec![0, 1, 2, 3];
            match path {
                ListPath::ReplaceFirst => expect[2] = 9,
                _ => expect.retain(|&id| id != victim),
            }
            assert_eq!(ids(&list), expect, "{path:?}: the unlink happened");
            assert_eq!(list.len(), expect.len(), "{path:?}: the length counts it");
            list.push_back(ListNode::boxed(Canary::new(5)));
            expect.push(5);
            assert_eq!(ids(&list), expect, "{path:?}: the tail is right");
            assert_eq!(list.retain(&ctx, |c| c.id != 5), 1);
            expect.pop();
            assert_eq!(ids(&list), expect);
            rcu_barrier(&ctx);
            assert_eq!(drops.load(Ordering::SeqCst), 0, "{path:?}: the refused element leaked");
        }
    });
}

// ---------------------------------------------------------------------------------------
// RcuHashMap

/// A key whose `Eq` runs `on_eq` hooks (see `EQ_HOOK`).
#[derive(Debug, Clone, Copy)]
struct K(u64);

impl Hash for K {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

impl PartialEq for K {
    fn eq(&self, other: &Self) -> bool {
        if self.0 == other.0 && EQ_HOOK.with(|h| h.borrow().contains(&self.0)) {
            leave_atomic_scope_open();
        }
        self.0 == other.0
    }
}

impl Eq for K {}

thread_local! {
    /// Keys whose `Eq` leaves an atomic scope open when it matches.
    static EQ_HOOK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapPath {
    Remove,
    InsertReplacing,
    InsertNodeReplacing,
    Update,
    ComputeRemoving,
    ComputeReplacing,
    Clear,
}

const MAP_PATHS: [MapPath; 7] = [
    MapPath::Remove,
    MapPath::InsertReplacing,
    MapPath::InsertNodeReplacing,
    MapPath::Update,
    MapPath::ComputeRemoving,
    MapPath::ComputeReplacing,
    MapPath::Clear,
];

/// The key the map paths remove or replace (all keys, for `clear`).
const MAP_VICTIM: u64 = 2;

/// A map of keys 0..4, each value `Canary::new(key)`.
fn map_of_four() -> Arc<RcuHashMap<K, Canary>> {
    let map = Arc::new(RcuHashMap::new());
    let mut ctx = Sleepable::enter();
    for id in 0..4 {
        map.insert(&mut ctx, K(id), Canary::new(id));
    }
    map
}

/// The map's (key, value id) pairs, sorted.
fn entries(map: &RcuHashMap<K, Canary>, ctx: &mut Sleepable) -> Vec<(u64, u64)> {
    let guard = read_lock(ctx);
    let mut all: Vec<(u64, u64)> = map.iter(&guard).map(|(k, v)| (k.0, v.id)).collect();
    all.sort_unstable();
    all
}

/// Runs `path` on `map` with `ctx`: removes `MAP_VICTIM` or replaces its value by one of
/// id 9 (or clears the map).
fn run_map_path<C: MayAlloc>(path: MapPath, map: &RcuHashMap<K, Canary>, ctx: &mut C) {
    let k = K(MAP_VICTIM);
    match path {
        MapPath::Remove => assert!(map.remove(ctx, &k)),
        MapPath::InsertReplacing => assert!(!map.insert(ctx, k, Canary::new(9))),
        MapPath::InsertNodeReplacing => {
            assert!(!map.insert_node(ctx, Node::boxed(k, Canary::new(9))));
        }
        MapPath::Update => assert!(map.update(ctx, &k, |_| Canary::new(9))),
        MapPath::ComputeRemoving => assert_eq!(map.compute(ctx, k, |_| None), Computed::Removed),
        MapPath::ComputeReplacing => {
            assert_eq!(map.compute(ctx, k, |_| Some(Canary::new(9))), Computed::Updated);
        }
        MapPath::Clear => map.clear(ctx),
    }
}

/// The entries after `path` ran on the map of four.
fn map_after(path: MapPath) -> Vec<(u64, u64)> {
    let mut expect: Vec<(u64, u64)> = (0..4).map(|id| (id, id)).collect();
    match path {
        MapPath::Remove | MapPath::ComputeRemoving => expect.retain(|e| e.0 != MAP_VICTIM),
        MapPath::Clear => expect.clear(),
        _ => expect[MAP_VICTIM as usize].1 = 9,
    }
    expect
}

/// The values a reader holds for `path`: the victim's, or every value for `clear`.
fn map_victims(path: MapPath) -> Vec<u64> {
    if path == MapPath::Clear {
        (0..4).collect()
    } else {
        vec![MAP_VICTIM]
    }
}

fn hold_map_values(map: &Arc<RcuHashMap<K, Canary>>, keys: Vec<u64>) -> Held {
    let (held, loaded) = hold(Arc::clone(map), move |m, g| {
        keys.iter().map(|k| m.get(&K(*k), g).expect("present")).collect()
    });
    assert!(!loaded.is_empty());
    held
}

fn drops_of(
    map: &RcuHashMap<K, Canary>,
    ctx: &mut Sleepable,
    keys: &[u64],
) -> Vec<Arc<AtomicUsize>> {
    let guard = read_lock(ctx);
    keys.iter().map(|k| map.get(&K(*k), &guard).expect("present").drops()).collect()
}

/// A second root inside a scope: every map write that would retire is refused before it
/// changes anything (and before it allocates).
#[test]
fn map_writes_with_a_smuggled_token_are_refused_before_unlinking() {
    within("map refusals", || {
        for path in MAP_PATHS {
            for scope in [Scope::Atomic, Scope::NoReclaim] {
                let map = map_of_four();
                let mut ctx = Sleepable::enter();
                drop(read_lock(&mut ctx));
                let victims = map_victims(path);
                let drops = drops_of(&map, &mut ctx, &victims);
                let held = hold_map_values(&map, victims.clone());
                let mut spare = Sleepable::enter();
                let text =
                    scope.run(&mut ctx, || panic_message(|| run_map_path(path, &map, &mut spare)));
                assert_refusal(&text, scope);
                assert_eq!(held.release(), victims, "{path:?} in {scope:?}");
                // Nothing changed, and the map works.
                let unchanged: Vec<(u64, u64)> = (0..4).map(|id| (id, id)).collect();
                assert_eq!(entries(&map, &mut ctx), unchanged, "{path:?} in {scope:?}");
                assert_eq!(map.len(), 4);
                run_map_path(path, &map, &mut ctx);
                assert_eq!(entries(&map, &mut ctx), map_after(path), "{path:?} after the refusal");
                assert_eq!(map.len(), map_after(path).len());
                rcu_barrier(&ctx);
                for d in &drops {
                    assert_eq!(
                        d.load(Ordering::SeqCst),
                        1,
                        "{path:?}: removed later, dropped once"
                    );
                }
            }
        }
    });
}

/// The keys' `Eq` leaves an atomic scope open: the retire after the unlink is refused, the
/// unlinked value is leaked, and the map's length counts the unlink.
#[test]
fn map_retires_refused_after_the_unlink_leak_the_value() {
    within("map refusals after the unlink", || {
        // `clear` runs no user code: nothing can change the context in its middle.
        for path in MAP_PATHS.into_iter().filter(|p| *p != MapPath::Clear) {
            let map = map_of_four();
            let mut ctx = Sleepable::enter();
            drop(read_lock(&mut ctx));
            let drops = drops_of(&map, &mut ctx, &[MAP_VICTIM]);
            let held = hold_map_values(&map, vec![MAP_VICTIM]);
            prepare_scope_left_open();
            EQ_HOOK.with(|h| h.borrow_mut().push(MAP_VICTIM));
            let text = panic_message(|| run_map_path(path, &map, &mut ctx));
            EQ_HOOK.with(|h| h.borrow_mut().clear());
            assert!(close_scope_left_open(), "{path:?}: Eq ran");
            assert!(text.contains("kvfree_rcu called inside an atomic scope"), "{path:?}: {text}");
            assert_eq!(held.release(), [MAP_VICTIM], "{path:?}");
            assert_eq!(entries(&map, &mut ctx), map_after(path), "{path:?}: the unlink happened");
            assert_eq!(map.len(), map_after(path).len(), "{path:?}: the length counts it");
            // Every key still works.
            for id in 0..5 {
                map.insert(&mut ctx, K(id), Canary::new(id));
                assert!(map.update(&mut ctx, &K(id), |v| Canary::new(v.id)));
            }
            assert_eq!(map.len(), 5);
            map.clear(&mut ctx);
            assert!(map.is_empty() && entries(&map, &mut ctx).is_empty());
            rcu_barrier(&ctx);
            assert_eq!(drops[0].load(Ordering::SeqCst), 0, "{path:?}: the refused value leaked");
        }
    });
}

/// A resize with a smuggled token is refused before it starts: a reader iterating over the
/// table meanwhile (holding it across the refused call) sees every entry once.
#[test]
fn a_resize_with_a_smuggled_token_is_refused_and_keeps_its_table() {
    within("resize refusal", || {
        let map: Arc<RcuHashMap<K, Canary>> = Arc::new(RcuHashMap::new());
        let mut ctx = Sleepable::enter();
        drop(read_lock(&mut ctx));
        let nodes: Vec<_> = (0..64).map(|id| Node::boxed(K(id), Canary::new(id))).collect();
        for node in nodes {
            map.insert_node(&mut ctx.atomic(), node);
        }
        assert!(map.resize_due());
        let buckets = map.buckets();
        let (go, go_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        let reader = {
            let map = Arc::clone(&map);
            std::thread::spawn(move || {
                let mut ctx = Sleepable::enter();
                let guard = read_lock(&mut ctx);
                let mut iter = map.iter(&guard);
                let mut seen: Vec<u64> = iter
                    .by_ref()
                    .take(8)
                    .map(|(k, v)| {
                        assert!(v.intact() && v.id == k.0);
                        k.0
                    })
                    .collect();
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                seen.extend(iter.map(|(k, v)| {
                    assert!(v.intact() && v.id == k.0, "a damaged value for {k:?}");
                    k.0
                }));
                seen.sort_unstable();
                seen
            })
        };
        started_rx.recv().unwrap();
        let mut spare = Sleepable::enter();
        for scope in [Scope::Atomic, Scope::NoReclaim] {
            let text = scope.run(&mut ctx, || {
                panic_message(|| {
                    map.maintain(&mut spare);
                })
            });
            assert_refusal(&text, scope);
            assert_eq!(map.buckets(), buckets, "refused before it started");
            assert!(map.resize_due(), "still due");
        }
        go.send(()).unwrap();
        assert_eq!(reader.join().expect("the reader"), (0..64).collect::<Vec<_>>());
        assert!(map.maintain(&mut ctx));
        assert!(map.buckets() > buckets && !map.resize_due());
        assert_eq!(entries(&map, &mut ctx), (0..64).map(|id| (id, id)).collect::<Vec<_>>());
    });
}
