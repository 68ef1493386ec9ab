//! Red team, round 7 (the park backend, `--cfg rcu_force_park`): waits made while a thread
//! exits.
//!
//! The park backend finds the waiting thread through a cached `std::thread::Thread`
//! (`rcu-sys/src/futex/park/handle.rs`): taken from `thread::current()` on the thread's first
//! wait and destroyed with the thread's Rust thread-locals; after that the waiter polls.
//! Suspicions: a wait in a `thread_local!` destructor on a thread that never waited before
//! (the cache is created during thread-local destruction), one in a destructor that runs after
//! the cache's (polls), and a wait in a pthread key destructor, which glibc runs after std
//! destroyed the thread's own handle (`thread::current()` panics there).
//!
//! Each destructor runs `synchronize_rcu` in a private domain whose grace period needs a
//! reader to leave first, so the destructor really sleeps: the test holds a read section on
//! another thread until the destructor has started waiting, then lets it go. The destructor
//! records how it ended; the test joins the thread and checks.
#![cfg(not(loom))]

mod common;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use common::PATIENCE;
use rcu_core::prelude::*;
use rcu_core::DomainConfig;

/// One test at a time: they share the statics below.
static SERIAL: Mutex<()> = Mutex::new(());

const NOT_RUN: u8 = 0;
const STARTED: u8 = 1;
const RETURNED: u8 = 2;
const PANICKED: u8 = 3;

/// How the destructor's wait ended.
static OUTCOME: AtomicU8 = AtomicU8::new(NOT_RUN);
/// The domain the destructor waits in.
static DOMAIN: Mutex<Option<&'static Domain>> = Mutex::new(None);

/// What every destructor does: a grace period of `DOMAIN`, contained (nothing may unwind out
/// of a pthread key destructor).
fn wait_in_destructor() {
    OUTCOME.store(STARTED, Ordering::SeqCst);
    let domain = DOMAIN.lock().unwrap().expect("domain set");
    let r = catch_unwind(AssertUnwindSafe(|| {
        let ctx = Sleepable::enter();
        domain.synchronize_rcu(&ctx);
    }));
    OUTCOME.store(if r.is_ok() { RETURNED } else { PANICKED }, Ordering::SeqCst);
}

struct WaitOnDrop;
impl Drop for WaitOnDrop {
    fn drop(&mut self) {
        wait_in_destructor();
    }
}

thread_local! {
    static WAITER: RefCell<Option<WaitOnDrop>> = const { RefCell::new(None) };
}

extern "C" fn key_destructor(_: *mut libc::c_void) {
    wait_in_destructor();
}

/// A wait that times out (a word nobody changes): the thread's handle cache is created.
fn first_wait() {
    let word = AtomicU32::new(0);
    rcu_sys::futex::wait(&word, 0, Some(Duration::from_millis(1)));
}

#[derive(Clone, Copy, PartialEq)]
enum Where {
    /// A `thread_local!` destructor, the thread's first wait.
    TlsFirstWait,
    /// A `thread_local!` destructor that runs after the handle cache's (registered before
    /// the thread's first wait, so destroyed after it).
    TlsAfterCache,
    /// A pthread key destructor, the thread's first wait.
    KeyFirstWait,
    /// A pthread key destructor on a thread that waited before.
    KeyAfterWait,
}

/// Runs one exiting thread whose destructor waits for a grace period held up by a reader,
/// and returns how the wait ended.
fn run(place: Where) -> u8 {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let domain: &'static Domain =
        Box::leak(Box::new(Domain::new(DomainConfig::new().name("red7-exit"))));
    *DOMAIN.lock().unwrap() = Some(domain);
    OUTCOME.store(NOT_RUN, Ordering::SeqCst);
    // A reader that holds the grace period until told.
    let (in_tx, in_rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let guard = domain.read_lock(&mut ctx);
        in_tx.send(()).unwrap();
        out_rx.recv().unwrap();
        drop(guard);
    });
    in_rx.recv().unwrap();
    let exiting = std::thread::spawn(move || match place {
        Where::TlsFirstWait => WAITER.with(|w| *w.borrow_mut() = Some(WaitOnDrop)),
        Where::TlsAfterCache => {
            WAITER.with(|w| *w.borrow_mut() = Some(WaitOnDrop));
            // The thread's first wait: the handle cache is created now, after WAITER, so
            // it is destroyed before WAITER's destructor runs.
            first_wait();
        }
        Where::KeyFirstWait | Where::KeyAfterWait => {
            if place == Where::KeyAfterWait {
                // The handle cache exists from now on.
                first_wait();
            }
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: `key` is writable; the destructor is a plain `extern "C" fn`.
            assert_eq!(unsafe { libc::pthread_key_create(&mut key, Some(key_destructor)) }, 0);
            // SAFETY: a key just created; the value is never dereferenced.
            unsafe {
                libc::pthread_setspecific(key, std::ptr::NonNull::<u8>::dangling().as_ptr().cast())
            };
        }
    });
    // Let the destructor start waiting, then release the reader.
    assert!(
        common::wait_until(PATIENCE, || OUTCOME.load(Ordering::SeqCst) != NOT_RUN),
        "the destructor never ran"
    );
    std::thread::sleep(Duration::from_millis(50));
    out_tx.send(()).unwrap();
    reader.join().unwrap();
    assert!(
        common::wait_until(PATIENCE, || OUTCOME.load(Ordering::SeqCst) > STARTED),
        "hung: the destructor's synchronize never returned after the reader left"
    );
    exiting.join().unwrap();
    OUTCOME.load(Ordering::SeqCst)
}

#[test]
fn a_thread_local_destructor_waits_on_a_thread_that_never_waited() {
    assert_eq!(run(Where::TlsFirstWait), RETURNED, "the destructor's wait panicked");
}

#[test]
fn a_thread_local_destructor_waits_after_the_handle_cache_is_gone() {
    assert_eq!(run(Where::TlsAfterCache), RETURNED, "the destructor's wait panicked");
}

/// Did not hold (Rust 1.95, glibc): `handle.rs` says `thread::current()` panics in a pthread
/// key destructor on a thread that never waited, but std still answers the thread's own
/// handle there, and the wait sleeps and is woken.
#[test]
fn a_pthread_key_destructor_waits_on_a_thread_that_never_waited() {
    assert_eq!(run(Where::KeyFirstWait), RETURNED, "the destructor's wait panicked");
}

#[test]
fn a_pthread_key_destructor_waits_on_a_thread_that_waited_before() {
    assert_eq!(run(Where::KeyAfterWait), RETURNED, "the destructor's wait panicked");
}
