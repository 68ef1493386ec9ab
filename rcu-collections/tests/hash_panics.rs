//! Hostile programs of issue 22 (defects 7 and 8): keys whose `Hash` or `Eq`, and write
//! closures, panic at a chosen call. Every call of a scripted workload (writes of every
//! kind, a growing and a shrinking resize, `clear`) is made to panic in turn, and after each
//! step the map must agree with a `std` model: a panicking write changes nothing, every
//! later write finishes (a watchdog turns a hang into a failure), no key is duplicated, and
//! every value is dropped exactly once.
#![cfg(not(loom))]

mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{message, steps_within, within, PROVOKED};
use rcu_collections::{Computed, Node, RcuHashMap};
use rcu_core::prelude::*;

/// When the calling thread's user code (`Hash`, `Eq`, `Clone` of keys, write closures)
/// panics: at its `panic_at`-th call since it was armed (counting only `Hash` calls if
/// `hash_only`).
#[derive(Clone, Copy, Debug)]
struct Plan {
    armed: bool,
    hash_only: bool,
    calls: u64,
    panic_at: u64,
}

const UNARMED: Plan = Plan { armed: false, hash_only: false, calls: 0, panic_at: 0 };

thread_local! {
    static PLAN: Cell<Plan> = const { Cell::new(UNARMED) };
}

/// Counts a call of user code and panics if it is the planned one.
fn user_code(what: &str) {
    let mut plan = PLAN.get();
    if !plan.armed || (plan.hash_only && what != "Hash") {
        return;
    }
    plan.calls += 1;
    PLAN.set(plan);
    if plan.calls == plan.panic_at {
        panic!("{PROVOKED} {what} panics at user-code call {}", plan.calls);
    }
}

/// Counts calls from now on, panicking at the `panic_at`-th (0: never).
fn arm(panic_at: u64) {
    PLAN.set(Plan { armed: true, calls: 0, panic_at, hash_only: false });
}

/// Counts `Hash` calls only from now on, panicking at the `panic_at`-th.
fn arm_hash(panic_at: u64) {
    PLAN.set(Plan { armed: true, calls: 0, panic_at, hash_only: true });
}

/// Stops counting (the count is kept for `resume`); returns how many calls were counted.
fn pause() -> u64 {
    let plan = PLAN.get();
    PLAN.set(Plan { armed: false, ..plan });
    plan.calls
}

/// Counts again, from where `pause` stopped.
fn resume() {
    PLAN.set(Plan { armed: true, ..PLAN.get() });
}

/// A key whose hash is `id >> SHIFT` (through [`Identity`]): `2^SHIFT` consecutive ids
/// collide, in every table size.
#[derive(Debug)]
struct Key<const SHIFT: u32>(u64);

impl<const SHIFT: u32> Hash for Key<SHIFT> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        user_code("Hash");
        state.write_u64(self.0 >> SHIFT);
    }
}

impl<const SHIFT: u32> PartialEq for Key<SHIFT> {
    fn eq(&self, other: &Self) -> bool {
        user_code("Eq");
        self.0 == other.0
    }
}

impl<const SHIFT: u32> Eq for Key<SHIFT> {}

impl<const SHIFT: u32> Clone for Key<SHIFT> {
    fn clone(&self) -> Self {
        user_code("Clone");
        Key(self.0)
    }
}

/// A hasher that returns the one `u64` it was given: bucket placement is the test's choice.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("keys hash one u64")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Ids = BuildHasherDefault<Identity>;

/// Values made and dropped in one scenario, and drops of values found damaged.
#[derive(Debug, Default)]
struct Drops {
    made: AtomicU64,
    dropped: AtomicU64,
    damaged: AtomicU64,
}

/// A value that knows its key and carries a canary; poisoned and counted when dropped.
#[derive(Debug)]
struct Val {
    key: u64,
    n: u64,
    canary: u64,
    drops: Arc<Drops>,
}

fn canary(key: u64, n: u64) -> u64 {
    (key ^ n.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

impl Val {
    fn new(drops: &Arc<Drops>, key: u64, n: u64) -> Self {
        // Relaxed: counters read after an rcu_barrier, which orders the drops before.
        drops.made.fetch_add(1, Ordering::Relaxed);
        Val { key, n, canary: canary(key, n), drops: Arc::clone(drops) }
    }

    fn intact(&self, key: u64) -> bool {
        self.key == key && self.canary == canary(self.key, self.n)
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        if self.canary != canary(self.key, self.n) {
            // Relaxed: as above.
            self.drops.damaged.fetch_add(1, Ordering::Relaxed);
        }
        self.canary = 0;
        // Relaxed: as above.
        self.drops.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Insert(u64, u64),
    /// A node boxed beforehand, inserted under `Atomic`.
    InsertNode(u64, u64),
    Remove(u64),
    RemoveAtomic(u64),
    /// Adds to the value.
    Update(u64, u64),
    /// `Some`: set (or insert); `None`: remove.
    Compute(u64, Option<u64>),
    Clear,
    Maintain,
}

/// Ids the checks look up: every id the script touches, and some it never does.
const IDS: u64 = 48;

/// Grows the table (past 16 entries in 16 buckets), replaces and removes with every write,
/// shrinks it (below a quarter full), clears it, and writes again.
fn script() -> Vec<Op> {
    use Op::*;
    let mut ops: Vec<Op> = (0..18).map(|i| Insert(i, i)).collect();
    ops.extend((18..22).map(|i| InsertNode(i, i)));
    ops.extend([Update(3, 100), Update(50, 1), Compute(5, Some(7)), Compute(40, Some(1))]);
    ops.extend([Compute(6, None), Compute(41, None), Insert(2, 9), InsertNode(7, 9)]);
    ops.extend((0..17).map(|i| if i % 2 == 0 { Remove(i) } else { RemoveAtomic(i) }));
    ops.extend([Remove(99), Maintain, Update(17, 1), Compute(18, Some(3)), Insert(0, 1)]);
    ops.extend([Clear, Insert(1, 1), Insert(33, 1), Update(1, 1), Compute(33, None)]);
    ops.extend([Remove(1), Insert(2, 2), Maintain]);
    ops
}

type Map<const SHIFT: u32> = RcuHashMap<Key<SHIFT>, Val, Ids>;

/// Runs `op` (user code armed as planned) and, unless it panicked, applies it to the model.
/// Returns whether it panicked; a panic other than the planned one fails the test.
fn apply<const SHIFT: u32>(
    map: &Map<SHIFT>,
    ctx: &mut Sleepable,
    model: &mut HashMap<u64, u64>,
    drops: &Arc<Drops>,
    op: Op,
) -> bool {
    let run = catch_unwind(AssertUnwindSafe(|| match op {
        Op::Insert(k, n) => {
            let fresh = map.insert(ctx, Key(k), Val::new(drops, k, n));
            assert_eq!(fresh, !model.contains_key(&k), "{op:?}");
        }
        Op::InsertNode(k, n) => {
            let node = Node::boxed(Key(k), Val::new(drops, k, n));
            let fresh = map.insert_node(&mut ctx.atomic(), node);
            assert_eq!(fresh, !model.contains_key(&k), "{op:?}");
        }
        Op::Remove(k) => assert_eq!(map.remove(ctx, &Key(k)), model.contains_key(&k), "{op:?}"),
        Op::RemoveAtomic(k) => {
            let removed = map.remove(&mut ctx.atomic(), &Key(k));
            assert_eq!(removed, model.contains_key(&k), "{op:?}");
        }
        Op::Update(k, d) => {
            let updated = map.update(ctx, &Key(k), |v| {
                user_code("update's closure");
                assert!(v.intact(k), "{op:?} was handed a damaged value");
                Val::new(drops, k, v.n + d)
            });
            assert_eq!(updated, model.contains_key(&k), "{op:?}");
        }
        Op::Compute(k, n) => {
            let outcome = map.compute(ctx, Key(k), |v| {
                user_code("compute's closure");
                assert!(v.map_or(true, |v| v.intact(k)), "{op:?} was handed a damaged value");
                n.map(|n| Val::new(drops, k, n))
            });
            let expect = match (model.contains_key(&k), n) {
                (false, None) => Computed::Unchanged,
                (true, None) => Computed::Removed,
                (false, Some(_)) => Computed::Inserted,
                (true, Some(_)) => Computed::Updated,
            };
            assert_eq!(outcome, expect, "{op:?}");
        }
        Op::Clear => map.clear(ctx),
        Op::Maintain => {
            map.maintain(ctx);
        }
    }));
    match run {
        Ok(()) => {
            match op {
                Op::Insert(k, n) | Op::InsertNode(k, n) => {
                    model.insert(k, n);
                }
                Op::Remove(k) | Op::RemoveAtomic(k) | Op::Compute(k, None) => {
                    model.remove(&k);
                }
                Op::Update(k, d) => {
                    if let Some(n) = model.get_mut(&k) {
                        *n += d;
                    }
                }
                Op::Compute(k, Some(n)) => {
                    model.insert(k, n);
                }
                Op::Clear => model.clear(),
                Op::Maintain => {}
            }
            false
        }
        Err(panic) => {
            let text = message(&*panic);
            assert!(text.contains(PROVOKED), "{op:?} failed: {text}");
            true
        }
    }
}

/// The map agrees with the model: length, every lookup, and an iteration that yields each
/// entry once. User code is not armed here.
fn check<const SHIFT: u32>(
    map: &Map<SHIFT>,
    ctx: &mut Sleepable,
    model: &HashMap<u64, u64>,
    when: &str,
) {
    assert_eq!(map.len(), model.len(), "len {when}");
    let guard = read_lock(ctx);
    for id in 0..IDS {
        let got = map.get(&Key(id), &guard).map(|v| {
            assert!(v.intact(id), "get({id}) {when}: a damaged value");
            v.n
        });
        assert_eq!(got, model.get(&id).copied(), "get({id}) {when}");
    }
    let mut seen: Vec<(u64, u64)> = map.iter(&guard).map(|(k, v)| (k.0, v.n)).collect();
    seen.sort_unstable();
    let mut expect: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    expect.sort_unstable();
    assert_eq!(seen, expect, "iteration {when} (a key yielded twice is a duplicate)");
}

/// Runs the script with user code panicking at call `panic_at` (0: never), checking the map
/// after every step, then empties it key by key. Returns how many user-code calls the
/// script made and the table sizes it went through.
fn scenario<const SHIFT: u32>(
    panic_at: u64,
    drops: &Arc<Drops>,
    report: &dyn Fn(String),
) -> (u64, Vec<usize>) {
    let map: Map<SHIFT> = RcuHashMap::with_hasher(Ids::default());
    let mut ctx = Sleepable::enter();
    drop(read_lock(&mut ctx)); // registers the thread: Atomic writes enter read sections
    let mut model = HashMap::new();
    let mut sizes = vec![map.buckets()];
    let mut panics = 0;
    let mut calls = 0;
    arm(panic_at);
    pause();
    for (step, op) in script().into_iter().enumerate() {
        report(format!("shift {SHIFT}, panic at call {panic_at}, step {step}: {op:?}"));
        resume();
        panics += usize::from(apply(&map, &mut ctx, &mut model, drops, op));
        calls = pause();
        let when = format!("after step {step} ({op:?}), user code panicking at call {panic_at}");
        check(&map, &mut ctx, &model, &when);
        if sizes.last() != Some(&map.buckets()) {
            sizes.push(map.buckets());
        }
    }
    let planned = usize::from(panic_at != 0 && panic_at <= calls);
    assert_eq!(panics, planned, "user code panicking at call {panic_at} of {calls}");
    // Every key left is still reachable by every write.
    report(format!("shift {SHIFT}, panic at call {panic_at}: emptying"));
    let keys: Vec<u64> = model.keys().copied().collect();
    for k in keys {
        assert!(map.update(&mut ctx, &Key(k), |v| Val::new(drops, k, v.n + 1)), "update({k})");
        let outcome = map.compute(&mut ctx, Key(k), |v| v.map(|v| Val::new(drops, k, v.n)));
        assert_eq!(outcome, Computed::Updated, "compute({k})");
        assert!(!map.insert(&mut ctx, Key(k), Val::new(drops, k, 0)), "insert({k}) replaces");
        assert!(map.remove(&mut ctx, &Key(k)), "remove({k})");
        model.remove(&k);
        check(&map, &mut ctx, &model, &format!("after removing {k}"));
    }
    map.insert(&mut ctx, Key(3), Val::new(drops, 3, 3));
    map.clear(&mut ctx);
    check(&map, &mut ctx, &model, "after the last clear");
    (calls, sizes)
}

/// Every call of the script's user code panics in turn, one scenario each.
fn every_call_panics_in_turn<const SHIFT: u32>() {
    steps_within(&format!("hash panics, shift {SHIFT}"), |report| {
        let drops = Arc::new(Drops::default());
        let (calls, sizes) = scenario::<SHIFT>(0, &drops, report);
        // The script does what it is for: the table grew and shrank back.
        let grown = sizes.iter().copied().max().unwrap_or(0);
        assert!(grown > sizes[0], "the script never grew the table: {sizes:?}");
        assert!(sizes.last() < Some(&grown), "the script never shrank the table: {sizes:?}");
        assert!(calls > 100, "only {calls} user-code calls");
        for panic_at in 1..=calls {
            scenario::<SHIFT>(panic_at, &drops, report);
        }
        let ctx = Sleepable::enter();
        rcu_barrier(&ctx); // retired values have been dropped by now
                           // Relaxed: ordered by the barrier (the worker's drops happen before it returns).
        let (made, dropped) =
            (drops.made.load(Ordering::Relaxed), drops.dropped.load(Ordering::Relaxed));
        assert_eq!(dropped, made, "every value dropped exactly once (none leaked, none twice)");
        assert_eq!(drops.damaged.load(Ordering::Relaxed), 0, "a value was dropped damaged");
    });
}

/// All keys of a bucket collide (one chain of up to 32, in every table).
#[test]
fn every_user_code_call_panics_in_turn_colliding_keys() {
    every_call_panics_in_turn::<5>();
}

/// Four keys per hash: chains of a few, spread over the table.
#[test]
fn every_user_code_call_panics_in_turn_groups_of_four() {
    every_call_panics_in_turn::<2>();
}

/// Every key its own hash.
#[test]
fn every_user_code_call_panics_in_turn_distinct_hashes() {
    every_call_panics_in_turn::<0>();
}

/// The map of the report: 17 colliding keys, the 17th insert growing the table,
/// `Hash` panicking at its third call from that insert on (the insert's own is the first:
/// before the fix, the resize's second panicked, with one node moved).
fn seventeen_colliding_keys_then_a_panic() -> (Map<5>, HashMap<u64, u64>, Arc<Drops>) {
    let drops = Arc::new(Drops::default());
    let map: Map<5> = RcuHashMap::with_hasher(Ids::default());
    let mut ctx = Sleepable::enter();
    let mut model = HashMap::new();
    for k in 0..16 {
        map.insert(&mut ctx, Key(k), Val::new(&drops, k, k));
        model.insert(k, k);
    }
    assert_eq!(map.buckets(), 16);
    arm_hash(3);
    let inserted =
        catch_unwind(AssertUnwindSafe(|| map.insert(&mut ctx, Key(16), Val::new(&drops, 16, 16))));
    pause();
    if let Err(panic) = &inserted {
        // Before the fix: the resize's third Hash call panicked with the bucket half moved.
        assert!(message(&**panic).contains(PROVOKED), "{}", message(&**panic));
    }
    // The key was published before the resize ran, whether or not the resize panicked.
    model.insert(16, 16);
    (map, model, drops)
}

/// Defect 7: every write still finds its key after a panic in the middle of a resize.
#[test]
fn a_panic_during_a_resize_leaves_every_key_writable() {
    within("writes after a panic during a resize", || {
        let (map, mut model, drops) = seventeen_colliding_keys_then_a_panic();
        let mut ctx = Sleepable::enter();
        check(&map, &mut ctx, &model, "after the panic");
        assert!(map.remove(&mut ctx, &Key(16)), "remove(16) found its key");
        model.remove(&16);
        check(&map, &mut ctx, &model, "after remove(16)");
        assert!(map.update(&mut ctx, &Key(15), |v| Val::new(&drops, 15, v.n + 1)));
        *model.get_mut(&15).unwrap() += 1;
        let computed = map.compute(&mut ctx, Key(14), |_| Some(Val::new(&drops, 14, 0)));
        assert_eq!(computed, Computed::Updated);
        model.insert(14, 0);
        assert!(!map.insert(&mut ctx, Key(13), Val::new(&drops, 13, 5)), "13 is replaced");
        model.insert(13, 5);
        assert!(map.insert(&mut ctx, Key(16), Val::new(&drops, 16, 6)), "16 was removed");
        model.insert(16, 6);
        check(&map, &mut ctx, &model, "after the writes");
        map.clear(&mut ctx);
        model.clear();
        check(&map, &mut ctx, &model, "after clear");
        drop(map);
        rcu_barrier(&ctx);
        // Relaxed: ordered by the barrier.
        assert_eq!(drops.dropped.load(Ordering::Relaxed), drops.made.load(Ordering::Relaxed));
    });
}

/// Defect 8: `clear` ends after a panic in the middle of a resize.
#[test]
fn clear_ends_after_a_panic_during_a_resize() {
    within("clear after a panic during a resize", || {
        let (map, mut model, _drops) = seventeen_colliding_keys_then_a_panic();
        let mut ctx = Sleepable::enter();
        map.clear(&mut ctx);
        model.clear();
        check(&map, &mut ctx, &model, "after clear");
        map.insert(&mut ctx, Key(1), Val::new(&_drops, 1, 1));
        model.insert(1, 1);
        check(&map, &mut ctx, &model, "after an insert");
    });
}

/// What makes the two tests above pass: a resize and a clear run no user code at all (a
/// node keeps the hash its key had when it was inserted), so nothing can stop them midway.
#[test]
fn resizes_and_clears_call_no_hash_or_eq() {
    within("no user code in resizes", || {
        let drops = Arc::new(Drops::default());
        let map: Map<0> = RcuHashMap::with_hasher(Ids::default());
        let mut ctx = Sleepable::enter();
        drop(read_lock(&mut ctx));
        let nodes: Vec<_> = (0..100).map(|k| Node::boxed(Key(k), Val::new(&drops, k, k))).collect();
        for node in nodes {
            map.insert_node(&mut ctx.atomic(), node); // may not grow the table
        }
        assert!(map.resize_due());
        arm(1); // the next call of user code panics
        assert!(map.maintain(&mut ctx), "grown");
        map.clear(&mut ctx);
        assert!(map.maintain(&mut ctx), "shrunk");
        assert_eq!(pause(), 0, "a resize or a clear called Hash or Eq");
        assert!(map.is_empty());
    });
}
