//! Red team, round 2 (rcu-collections map/write.rs, the ABA fix of 310e224; fixed: the spare
//! is declared before the read section again, and the closure borrows it): `update` and
//! `compute` handed their unpublished node (`Spare`) back out of the locked closure by
//! value (`return (false, Some(spare))`, `return Err(spare)`), so the closure passed to
//! `with_home_in` captured the `Spare` by move. When the keys' `Eq` panics under the bucket
//! lock (`chain.find`), the unwinding drops the closure's captures first, inside the closure
//! frame: the spare node (its key and its new value, user code) is dropped while this thread
//! still holds the bucket lock (and the map's re-entry record, and the read section). Before
//! the change the closure borrowed the spare (`spare.publish()`, `spare.node()`), which lived
//! in the write's own frame and was freed after the lock was released, as spare.rs promises
//! ("a write unwinding before it publishes the node (a panicking `Eq` under the bucket lock)
//! frees it after the lock is released").
//!
//! The programs: a key whose `Eq` panics once, armed by the update's own closure (so the
//! lock-free find passes and the locked one panics), and a value whose drop looks at the
//! bucket from another thread (an insert of a colliding key must not wait for the lock), or
//! takes a mutex that another thread holds while it inserts into that bucket (lock order
//! mutex -> bucket, legitimate: values are normally dropped by the worker after a grace
//! period, never under a bucket lock): a deadlock.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;

/// Every key hashes alike: one chain, one bucket lock.
#[derive(Default)]
struct Collide;

impl Hasher for Collide {
    fn finish(&self) -> u64 {
        7
    }
    fn write(&mut self, _: &[u8]) {}
}

type Map = RcuHashMap<Key, Val, BuildHasherDefault<Collide>>;

thread_local! {
    /// Armed by an update's closure: this thread's next key comparison panics (the locked
    /// one).
    static ARMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[derive(Clone, Debug)]
struct Key(u32);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        if ARMED.with(|a| a.replace(false)) {
            panic!("a key's Eq panics (under the bucket lock)");
        }
        self.0 == other.0
    }
}
impl Eq for Key {}

/// What a value's drop does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OnDrop {
    Nothing,
    /// Inserts a colliding key from another thread and reports whether it had to wait.
    ProbeBucket,
    /// Takes `REGISTRY` (values deregister themselves from a registry on drop).
    Deregister,
}

struct Val(OnDrop);

static MAP: OnceLock<Map> = OnceLock::new();
static NEXT_KEY: AtomicU32 = AtomicU32::new(100);
static BLOCKED: AtomicBool = AtomicBool::new(false);
static REGISTRY: Mutex<()> = Mutex::new(());

fn map() -> &'static Map {
    MAP.get_or_init(|| RcuHashMap::with_hasher(BuildHasherDefault::default()))
}

impl Drop for Val {
    fn drop(&mut self) {
        match self.0 {
            OnDrop::Nothing => {}
            OnDrop::ProbeBucket => {
                let (tx, rx) = channel();
                let key = NEXT_KEY.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut ctx = Sleepable::enter();
                    map().insert(&mut ctx, Key(key), Val(OnDrop::Nothing));
                    let _ = tx.send(());
                });
                // Generous: a loaded machine may take long to run the insert; only a lock held
                // by this thread makes it wait this long (the write it drops from would hold
                // it until this drop returns).
                match rx.recv_timeout(Duration::from_secs(30)) {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Timeout) => BLOCKED.store(true, Ordering::SeqCst),
                    Err(e) => panic!("{e}"),
                }
            }
            OnDrop::Deregister => {
                before_deregister();
                drop(REGISTRY.lock());
            }
        }
    }
}

fn watchdog(secs: u64, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("watchdog: {what} hung for {secs} s");
        std::process::exit(101);
    });
}

fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("a key's Eq panics") {
            default(info);
        }
    }));
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "the tests share their map through std's OnceLock, whose synchronisation \
              ThreadSanitizer cannot see (std is not instrumented); what they check, drops \
              outside the bucket lock, is no question of ordering"
)]
fn update_drops_its_unpublished_value_outside_the_bucket_lock() {
    watchdog(60, "update_drops_its_unpublished_value_outside_the_bucket_lock");
    quiet_panics();
    let mut ctx = Sleepable::enter();
    let m = map();
    m.insert(&mut ctx, Key(1), Val(OnDrop::Nothing));
    BLOCKED.store(false, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.update(&mut ctx, &Key(1), |_| {
            ARMED.with(|a| a.set(true));
            Val(OnDrop::ProbeBucket)
        })
    }));
    assert!(r.is_err(), "the armed Eq panicked under the lock");
    assert!(
        !BLOCKED.load(Ordering::SeqCst),
        "update: the unpublished node's value was dropped while its thread held the bucket \
         lock (an insert of a colliding key from another thread waited 10 s for it)"
    );
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "the tests share their map through std's OnceLock, whose synchronisation \
              ThreadSanitizer cannot see (std is not instrumented); what they check, drops \
              outside the bucket lock, is no question of ordering"
)]
fn compute_drops_its_unpublished_value_outside_the_bucket_lock() {
    watchdog(60, "compute_drops_its_unpublished_value_outside_the_bucket_lock");
    quiet_panics();
    let mut ctx = Sleepable::enter();
    let m = map();
    m.insert(&mut ctx, Key(2), Val(OnDrop::Nothing));
    BLOCKED.store(false, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.compute(&mut ctx, Key(2), |_| {
            ARMED.with(|a| a.set(true));
            Some(Val(OnDrop::ProbeBucket))
        })
    }));
    assert!(r.is_err(), "the armed Eq panicked under the lock");
    assert!(
        !BLOCKED.load(Ordering::SeqCst),
        "compute: the unpublished node's value was dropped while its thread held the bucket \
         lock (an insert of a colliding key from another thread waited 10 s for it)"
    );
}

/// The harm: a value that deregisters itself on drop, and a thread that inserts while it
/// holds the registry (registry -> bucket), deadlock with the update's unwinding (bucket ->
/// registry). The second thread is started from the drop itself only to make the
/// interleaving certain; any thread that inserts under `REGISTRY` at that moment hangs alike.
#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "the tests share their map through std's OnceLock, whose synchronisation \
              ThreadSanitizer cannot see (std is not instrumented); what they check, drops \
              outside the bucket lock, is no question of ordering"
)]
fn a_panicking_eq_in_update_deadlocks_with_a_registry() {
    watchdog(20, "a_panicking_eq_in_update_deadlocks_with_a_registry (deadlock)");
    quiet_panics();
    let mut ctx = Sleepable::enter();
    let m = map();
    m.insert(&mut ctx, Key(3), Val(OnDrop::Nothing));
    // A thread that registers something and inserts it into the map, holding the registry.
    let (start_tx, start_rx) = channel::<()>();
    let (holding_tx, holding_rx) = channel::<()>();
    let registrar = std::thread::spawn(move || {
        start_rx.recv().unwrap();
        let _registry = REGISTRY.lock().unwrap();
        holding_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut ctx = Sleepable::enter();
        let key = NEXT_KEY.fetch_add(1, Ordering::SeqCst);
        map().insert(&mut ctx, Key(key), Val(OnDrop::Nothing));
    });
    struct Go(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);
    let go = Mutex::new(Some(Go(start_tx, holding_rx)));
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.update(&mut ctx, &Key(3), |_| {
            ARMED.with(|a| a.set(true));
            // The value's drop: start the registrar, wait until it holds the registry, then
            // deregister.
            if let Some(Go(tx, rx)) = go.lock().unwrap().take() {
                HOOK.with(|h| h.set(Some((tx, rx))));
            }
            Val(OnDrop::Deregister)
        })
    }));
    assert!(r.is_err());
    registrar.join().unwrap();
}

thread_local! {
    static HOOK: std::cell::Cell<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>> =
        const { std::cell::Cell::new(None) };
}

/// Runs before `Val(Deregister)`'s drop takes the registry (see `Drop for Val`).
fn before_deregister() {
    if let Some((tx, rx)) = HOOK.with(std::cell::Cell::take) {
        tx.send(()).unwrap();
        rx.recv().unwrap();
    }
}
