//! `RcuCell` (DESIGN §5): readers never see a value that has been dropped, every value is
//! dropped exactly once (the old ones by the domain's worker, after a grace period), and a
//! cell is read only under its own domain's guards.
//!
//! Values carry an id into a [`Tracker`] that outlives them and a `magic` word that their
//! `Drop` overwrites with poison, so a reader can check, while still inside its section,
//! that what it loaded has not been dropped (as rcutorture's poison-on-free does).

mod common;

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{assert_holds_for, wait_until, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, Rcu};

const LIVE: u64 = 0x11fe_11fe_11fe_11fe;
const POISON: u64 = 0xdead_dead_dead_dead;

const UNUSED: u8 = 0;
const ALIVE: u8 = 1;
const DROPPED: u8 = 2;

/// The fate of every value of one test, indexed by id; outlives the values.
#[derive(Debug)]
struct Tracker {
    states: Vec<AtomicU8>,
    next_id: AtomicUsize,
    double_drop: AtomicBool,
}

impl Tracker {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Tracker {
            states: (0..capacity).map(|_| AtomicU8::new(UNUSED)).collect(),
            next_id: AtomicUsize::new(0),
            double_drop: AtomicBool::new(false),
        })
    }

    fn state(&self, id: usize) -> u8 {
        // Acquire: pairs with the Release stores in `Value::new`/`drop`.
        self.states[id].load(Ordering::Acquire)
    }

    /// Every value created was dropped exactly once.
    #[track_caller]
    fn assert_all_dropped_once(&self) {
        // Relaxed: read after the threads that wrote were joined.
        assert!(!self.double_drop.load(Ordering::Relaxed), "a value was dropped twice");
        let created = self.next_id.load(Ordering::Relaxed);
        for id in 0..created {
            assert_eq!(self.state(id), DROPPED, "value {id} was not dropped");
        }
    }
}

#[derive(Debug)]
struct Value {
    id: usize,
    /// LIVE until dropped; POISON after.
    magic: AtomicU64,
    /// A payload: a counter for update tests.
    n: u64,
    tracker: Arc<Tracker>,
}

impl Value {
    fn new(tracker: &Arc<Tracker>, n: u64) -> Value {
        // Relaxed: ids only need to be unique.
        let id = tracker.next_id.fetch_add(1, Ordering::Relaxed);
        assert!(id < tracker.states.len(), "the test made more values than it planned");
        // Release: the state is published with the value (the cell's own Release too).
        tracker.states[id].store(ALIVE, Ordering::Release);
        Value { id, magic: AtomicU64::new(LIVE), n, tracker: tracker.clone() }
    }

    /// Checks, from inside a read section, that this value has not been dropped.
    #[track_caller]
    fn check_alive(&self, tracker: &Tracker) {
        // Relaxed: the value's own word; if it were being dropped concurrently the grace
        // period would be broken and this is where it shows.
        let magic = self.magic.load(Ordering::Relaxed);
        assert_eq!(magic, LIVE, "a reader saw a poisoned (dropped) value");
        let id = self.id;
        assert!(id < tracker.states.len(), "a reader saw a garbled value (id {id})");
        assert_eq!(tracker.state(id), ALIVE, "a reader saw value {id}, already dropped");
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        // Relaxed: read by readers that would be racing a broken grace period.
        self.magic.store(POISON, Ordering::Relaxed);
        // AcqRel: publishes the drop (pairs with the Acquire in `Tracker::state`).
        let was = self.tracker.states[self.id].swap(DROPPED, Ordering::AcqRel);
        if was != ALIVE {
            // Relaxed: checked after joining.
            self.tracker.double_drop.store(true, Ordering::Relaxed);
        }
    }
}

/// Writers replace and update while readers check every value they load, twice, across a
/// short spin inside their section.
fn readers_never_see_dropped_values<D>(domain: D, new_cell: fn(&D, Value) -> RcuCell<Value>)
where
    D: Deref<Target = Domain> + Clone + Send + Sync + 'static,
{
    const WRITERS: usize = 3;
    const READERS: usize = 2;
    const OPS: usize = 50;
    // `update` may call its closure again when another writer got in first: room for that.
    let tracker = Tracker::new(10 * WRITERS * OPS + 1);
    let cell = new_cell(&domain, Value::new(&tracker, 0));
    let stop = AtomicBool::new(false);
    let loads = AtomicU64::new(0);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (domain, cell, tracker, stop, loads) =
                    (&domain, &cell, &tracker, &stop, &loads);
                s.spawn(move || {
                    let mut ctx = Sleepable::enter();
                    // Relaxed: a stop flag.
                    while !stop.load(Ordering::Relaxed) {
                        let guard = domain.read_lock(&mut ctx);
                        let v = cell.load(&guard);
                        v.check_alive(tracker);
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(20) {
                            std::hint::spin_loop();
                        }
                        v.check_alive(tracker);
                        drop(guard);
                        // Relaxed: a statistic.
                        loads.fetch_add(1, Ordering::Relaxed);
                        // Leave the writers some CPU on a small machine.
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (cell, tracker, loads) = (&cell, &tracker, &loads);
                s.spawn(move || {
                    let mut ctx = Sleepable::enter();
                    for i in 0..OPS {
                        // Let the readers load the current value a few times first, so that
                        // every retirement races with readers.
                        // Relaxed: a statistic, used only to pace.
                        let target = loads.load(Ordering::Relaxed) + READERS as u64;
                        assert!(
                            wait_until(PATIENCE, || loads.load(Ordering::Relaxed) >= target),
                            "the readers stopped making progress"
                        );
                        match (w + i) % 3 {
                            0 => cell.replace(&ctx, Rcu::boxed(Value::new(tracker, 0))),
                            1 => cell.set(&ctx, Value::new(tracker, 0)),
                            _ => cell
                                .update(&mut ctx, |old| Rcu::boxed(Value::new(tracker, old.n + 1))),
                        }
                    }
                })
            })
            .collect();
        let writers_ok = writers.into_iter().all(|w| w.join().is_ok());
        // Relaxed: a stop flag.
        stop.store(true, Ordering::Relaxed);
        let readers_ok = readers.into_iter().all(|r| r.join().is_ok());
        assert!(writers_ok && readers_ok, "a writer or reader failed (see its panic above)");
    });
    // Relaxed: the readers were joined. (The pacing guarantees this many.)
    assert!(loads.load(Ordering::Relaxed) >= (READERS * OPS) as u64, "the readers hardly read");
    // Every retired value is dropped by the worker after its grace period: wait for them.
    domain.rcu_barrier(&Sleepable::enter());
    let mut cell = cell;
    let current = cell.get_mut().id;
    assert_eq!(tracker.state(current), ALIVE);
    // Relaxed: the writers were joined.
    let created = tracker.next_id.load(Ordering::Relaxed);
    for id in (0..created).filter(|&id| id != current) {
        assert_eq!(tracker.state(id), DROPPED, "retired value {id} not dropped by rcu_barrier");
    }
    drop(cell);
    assert_eq!(tracker.state(current), DROPPED);
    tracker.assert_all_dropped_once();
}

#[test]
fn readers_never_see_dropped_values_global() {
    readers_never_see_dropped_values(Domain::global(), |_, v| RcuCell::new(v));
}

#[test]
fn readers_never_see_dropped_values_private() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("cell-conc")));
    readers_never_see_dropped_values(domain, RcuCell::new_in);
}

/// Directed: a reader holds the old value; `replace` publishes the new one at once (new
/// readers see it) and retires the old one, which the worker drops only after the reader
/// has left.
#[test]
fn replaced_value_is_dropped_only_after_its_readers_leave() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("cell-directed")));
    let tracker = Tracker::new(2);
    let cell = Arc::new(RcuCell::new_in(&domain, Value::new(&tracker, 1)));
    let (loaded_tx, loaded_rx) = mpsc::channel::<usize>();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn({
        let (domain, cell, tracker) = (domain.clone(), cell.clone(), tracker.clone());
        move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            let old = cell.load(&guard);
            loaded_tx.send(old.id).unwrap();
            leave_rx.recv().unwrap();
            // Still inside: the old value must still be alive.
            old.check_alive(&tracker);
            assert_eq!(old.n, 1);
        }
    });
    let old_id = loaded_rx.recv_timeout(PATIENCE).unwrap();
    let mut ctx = Sleepable::enter();
    cell.set(&ctx, Value::new(&tracker, 2));
    {
        let guard = domain.read_lock(&mut ctx);
        assert_eq!(cell.load(&guard).n, 2, "the new value is not published");
    }
    // The worker collects the old value within its batch delay and waits for a grace period
    // that the reader holds up.
    assert_holds_for(HOLD, "the old value was dropped while a reader held it", || {
        tracker.state(old_id) == ALIVE
    });
    leave_tx.send(()).unwrap();
    reader.join().expect("the reader found its value alive");
    assert!(
        wait_until(PATIENCE, || tracker.state(old_id) == DROPPED),
        "the retired value was never dropped after its reader left"
    );
    drop(Arc::try_unwrap(cell).expect("the only reference left"));
    tracker.assert_all_dropped_once();
}

/// Concurrent `update`s lose nothing: one that lost the race runs again on the newer value.
#[test]
fn concurrent_updates_lose_no_increment() {
    const THREADS: u64 = 4;
    const UPDATES: u64 = 50;
    let domain = Domain::new(DomainConfig::new().name("cell-update"));
    let tracker = Tracker::new((10 * THREADS * UPDATES + 1) as usize);
    let mut cell = RcuCell::new_in(&domain, Value::new(&tracker, 0));
    rcu_tests::scope(|s| {
        for _ in 0..THREADS {
            let (cell, tracker) = (&cell, &tracker);
            s.spawn(move || {
                let mut ctx = Sleepable::enter();
                for _ in 0..UPDATES {
                    cell.update(&mut ctx, |old| Rcu::boxed(Value::new(tracker, old.n + 1)));
                }
            });
        }
    });
    assert_eq!(cell.get_mut().n, THREADS * UPDATES);
    domain.rcu_barrier(&Sleepable::enter());
    drop(cell);
    tracker.assert_all_dropped_once();
}

/// A value that counts its drops.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        // Relaxed: a counter read on the same thread.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn drops(counter: &AtomicUsize) -> usize {
    // Relaxed: see `Counted`.
    counter.load(Ordering::Relaxed)
}

#[test]
fn drop_replace_get_mut_and_into_inner_drop_each_value_once() {
    let counter = Arc::new(AtomicUsize::new(0));
    let mut ctx = Sleepable::enter();

    // Drop drops the current value, once, at once.
    let cell = RcuCell::new(Counted(counter.clone(), 1));
    drop(cell);
    assert_eq!(drops(&counter), 1);

    // replace, set and update retire the old value: dropped once, after a grace period, by
    // the time rcu_barrier returns.
    let domain = Domain::new(DomainConfig::new().name("cell-drops"));
    let mut cell = RcuCell::new_in(&domain, Counted(counter.clone(), 1));
    cell.replace(&ctx, Rcu::boxed(Counted(counter.clone(), 2)));
    domain.rcu_barrier(&ctx);
    assert_eq!(drops(&counter), 2);
    cell.set(&ctx, Counted(counter.clone(), 3));
    cell.update(&mut ctx, |old| Rcu::boxed(Counted(old.0.clone(), old.1 + 1)));
    domain.rcu_barrier(&ctx);
    assert_eq!(drops(&counter), 4);

    // get_mut changes the value in place.
    cell.get_mut().1 = 10;
    assert_eq!(drops(&counter), 4);
    {
        let mut rctx = Sleepable::enter();
        let guard = domain.read_lock(&mut rctx);
        assert_eq!(cell.load(&guard).1, 10);
    }

    // into_inner hands the value out without dropping it.
    let value = cell.into_inner();
    assert_eq!(value.1, 10);
    assert_eq!(drops(&counter), 4);
    drop(value);
    assert_eq!(drops(&counter), 5);

    // Nothing else is dropped later.
    domain.rcu_barrier(&ctx);
    assert_eq!(drops(&counter), 5);
}

#[test]
fn rcu_cell_is_send_and_sync_for_send_and_sync_values() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RcuCell<String>>();
    send_sync::<RcuCell<Vec<u8>>>();
}

const OTHER_DOMAIN: &str = "RcuCell loaded under a read guard of another domain";

#[test]
#[should_panic(expected = "RcuCell loaded under a read guard of another domain")]
fn load_of_a_global_cell_under_a_private_guard_panics() {
    let domain = Domain::new(DomainConfig::new().name("cell-wrong-1"));
    let cell = RcuCell::new(1_u32);
    let mut ctx = Sleepable::enter();
    let guard = domain.read_lock(&mut ctx);
    let _ = cell.load(&guard);
}

#[test]
#[should_panic(expected = "RcuCell loaded under a read guard of another domain")]
fn load_of_a_private_cell_under_a_global_guard_panics() {
    let domain = Domain::new(DomainConfig::new().name("cell-wrong-2"));
    let cell = RcuCell::new_in(&domain, 1_u32);
    let mut ctx = Sleepable::enter();
    let guard = read_lock(&mut ctx);
    let _ = cell.load(&guard);
}

#[test]
fn load_of_a_cell_under_another_private_guard_panics_and_names_the_rule() {
    let a = Domain::new(DomainConfig::new().name("cell-wrong-a"));
    let b = Domain::new(DomainConfig::new().name("cell-wrong-b"));
    let cell = RcuCell::new_in(&a, 1_u32);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut ctx = Sleepable::enter();
        let guard = b.read_lock(&mut ctx);
        let _ = cell.load(&guard);
    }));
    let payload = result.expect_err("loading under another domain's guard must panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains(OTHER_DOMAIN), "{message}");
    // The panic unwound out of the read section: the thread is outside it again and grace
    // periods of both domains complete.
    assert_eq!(rcu_core::thread_state::snapshot().read_depth, 0);
    let ctx = Sleepable::enter();
    a.synchronize_rcu(&ctx);
    b.synchronize_rcu(&ctx);
    let mut ctx = ctx;
    let guard = a.read_lock(&mut ctx);
    assert_eq!(*cell.load(&guard), 1);
}
