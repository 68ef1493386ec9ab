//! Red team, issue 22: the worker opens scopes from its root (`root.atomic()` around
//! callbacks, `root.no_reclaim()` around wakers), and a scope opened from a `Sleepable` token
//! pays the thread's debts through the process-wide payer of `rcu_ctx::owed` *before* the
//! scope counts, i.e. with no scope open on the worker and outside `UserCode`. `set_payer`
//! and `owe_reclaim` are public, safe API of rcu-ctx; the runtime notices a payer set before
//! its own (`process::init` reports it) and then owes nothing itself, but it still calls
//! that payer on its own worker whenever the worker's thread owes something, and any code
//! can record a debt (`owe_reclaim`) on the worker from a callback. The payer's contract lets
//! it "do what a Sleepable token may, waiting included": here it takes a root and waits for
//! the worker's own domain's barrier, on the worker, which then waits for itself.
//!
//! Safe code only. Alone in its file: the payer is process-wide.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_ctx::owed::{self, Payment};

static DOMAIN: OnceLock<Arc<Domain>> = OnceLock::new();

fn comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default().trim().to_owned()
}

fn payer(payment: Payment) {
    if payment != Payment::Reclaim || !comm().starts_with("rcu-gp-") {
        return;
    }
    eprintln!("red22: the payer runs on {} with state {:?}", comm(), rcu_core::thread_state::snapshot());
    // Allowed: no scope is open on the worker while it pays.
    let root = Sleepable::enter();
    if let Some(domain) = DOMAIN.get() {
        eprintln!("red22: payer on the worker took a root; waiting for its domain's barrier");
        domain.rcu_barrier(&root);
        eprintln!("red22: the barrier returned");
    }
}

#[test]
fn a_payer_run_by_the_workers_scope_opening_can_wait_for_the_worker() {
    owed::set_payer(payer).expect("first payer in this process");
    let domain = Arc::new(Domain::new(DomainConfig::new().name("payer")));
    DOMAIN.set(domain.clone()).unwrap();
    let ctx = Sleepable::enter();
    // A callback records a debt on the worker's thread (public, safe API).
    domain.call_rcu_fn(&ctx, |_atomic| owed::owe_reclaim());
    let (tx, rx) = mpsc::channel();
    {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let ctx = Sleepable::enter();
            domain.rcu_barrier(&ctx); // runs the callback; the worker then opens its scopes
            domain.rcu_barrier(&ctx);
            domain.synchronize_rcu(&ctx);
            let _ = tx.send(());
        });
    }
    let done = rx.recv_timeout(Duration::from_secs(10)).is_ok();
    eprintln!("red22: barriers after the debt returned: {done}");
    assert!(done, "the domain's worker is wedged: a payer it ran waits for its own barrier");
}
