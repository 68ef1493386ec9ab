//! Refusals in the middle of a retire (issue 22, defect 1): every retire call checks the
//! thread's real context in every build and panics when the token claims more. The value was
//! already handed over by then, and the caller may have unpublished it: a refusal must leak
//! it, never drop it while a reader on another thread may still hold it.
//!
//! Each program uses a second root `Sleepable` (allowed, and checked) inside an atomic
//! scope or a read section, where the check refuses it, while a reader on another thread
//! holds the value being retired.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcu_core::prelude::*;
use rcu_core::DomainConfig;

/// A value whose drop is counted (dropping it while a reader holds it would be the bug).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn refused(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("the retire must be refused");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

/// Every retire entry point, with a `Sleepable` smuggled into an atomic scope: refused, and
/// the value leaked (not dropped) although no grace period has passed.
#[test]
fn a_refused_retire_leaks_the_value_instead_of_dropping_it() {
    let domains = [Domain::global(), &Domain::new(DomainConfig::new().name("refusals"))];
    for domain in domains {
        let drops = Arc::new(AtomicUsize::new(0));
        let spare = Sleepable::enter();
        let mut ctx = Sleepable::enter();
        domain.register_current_thread(&ctx);
        {
            let _spin = ctx.atomic();
            let msg = refused(|| domain.kvfree_rcu(&spare, Rcu::boxed(Counted(drops.clone()))));
            assert!(msg.contains("kvfree_rcu called inside an atomic scope"), "{msg}");
            let msg =
                refused(|| domain.kvfree_rcu_mightsleep(&spare, Box::new(Counted(drops.clone()))));
            assert!(msg.contains("kvfree_rcu_mightsleep called inside"), "{msg}");
            #[allow(clippy::boxed_local)] // a call_rcu callback's signature
            fn never(_obj: Box<Rcu<Counted>>, _ctx: &Atomic<'_>) {
                unreachable!("a refused call_rcu's callback never runs");
            }
            let msg =
                refused(|| domain.call_rcu(&spare, Rcu::boxed(Counted(drops.clone())), never));
            assert!(msg.contains("call_rcu called inside"), "{msg}");
            let captured = Counted(drops.clone());
            let msg = refused(|| {
                domain.call_rcu_fn(&spare, move |_| {
                    drop(captured);
                    unreachable!("a refused call_rcu_fn's closure never runs");
                })
            });
            assert!(msg.contains("call_rcu_fn called inside"), "{msg}");
        }
        domain.rcu_barrier(&ctx);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "a refused retire dropped its value");
    }
}

/// The use-after-free the leak prevents: a reader on another thread holds the value when
/// the writer unlinks it and its retire is refused; the value must still be intact when the
/// reader reads it again, after the writer's thread has waited a grace period's worth.
#[test]
fn a_reader_keeps_reading_a_value_whose_retire_was_refused() {
    use std::sync::mpsc;
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = Arc::new(RcuCell::new(7u64));
    let value = Box::into_raw(Rcu::boxed(Counted(drops.clone())));
    let shared = Arc::new(std::sync::atomic::AtomicPtr::new(value));
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader = {
        let shared = shared.clone();
        let cell = cell.clone();
        std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = read_lock(&mut ctx);
            let _ = cell.load(&guard);
            let p = shared.load(Ordering::Acquire);
            loaded_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // SAFETY: loaded under `guard`, which is still alive; the writer unlinked it and
            // retires it only through RCU (or leaks it), so it is not freed under us.
            let drops_seen = unsafe { Arc::strong_count(&(&*p).0) };
            drop(guard);
            drops_seen
        })
    };
    loaded_rx.recv().unwrap();
    let spare = Sleepable::enter();
    let mut ctx = Sleepable::enter();
    let old = shared.swap(std::ptr::null_mut(), Ordering::AcqRel);
    {
        let _spin = ctx.atomic();
        // SAFETY: unpublished just now and handed to kvfree_rcu once.
        let boxed = unsafe { Box::from_raw(old) };
        let msg = refused(|| Domain::global().kvfree_rcu(&spare, boxed));
        assert!(msg.contains("kvfree_rcu called inside an atomic scope"), "{msg}");
    }
    go_tx.send(()).unwrap();
    let strong = reader.join().expect("the reader read a live value");
    assert_eq!(strong, 2, "the reader saw the value's Arc intact (this test and the value)");
    rcu_barrier(&ctx);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "the refused value was dropped");
}
