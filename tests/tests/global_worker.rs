//! The global domain's worker starts with the first reader (`Domain::start_poll` documents
//! this): a thread that only reads and makes polled requests or deferred frees with its read
//! guard's `Atomic` token sees them completed, although nothing ever started the worker with
//! a sleepable call.
//!
//! A file of its own: the test needs a process in which no sleepable call has touched the
//! global domain yet.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{thread_names, wait_until, PATIENCE};
use rcu_core::prelude::*;

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        // SeqCst: read by the test thread.
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn atomic_requests_of_a_reader_are_served_without_any_sleepable_call() {
    assert!(
        !thread_names().iter().any(|n| n == "rcu-gp-global"),
        "the global worker already runs: this test needs a fresh process"
    );
    let freed = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let freed = freed.clone();
        move || {
            let mut ctx = Sleepable::enter();
            let guard = read_lock(&mut ctx);
            // Only Atomic-token calls from here on: requests, never sleepable calls.
            let cookie = start_poll(guard.ctx());
            kvfree_rcu(guard.ctx(), Rcu::boxed(SetOnDrop(freed)));
            drop(guard);
            wait_until(PATIENCE, || poll(cookie))
        }
    });
    assert!(
        reader.join().unwrap(),
        "a start_poll made with a read guard's token never completed: the global worker was \
         never started"
    );
    assert!(
        wait_until(PATIENCE, || freed.load(Ordering::SeqCst)),
        "an object queued with kvfree_rcu under Atomic was never freed"
    );
}
