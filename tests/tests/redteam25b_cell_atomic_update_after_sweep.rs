//! Red team 25b, suspicion 2 (second program): an `RcuCell` that outlives its `Domain`
//! handle, updated with an `Atomic` token after the thread registered with another domain.
//!
//! The thread registers with the cell's domain beforehand, as `RcuCell::update`'s docs ask
//! ("Panics: with an Atomic token on a thread that never registered with the cell's
//! domain"), for instance before installing a signal handler that updates the cell. The
//! domain's handle is then dropped (the cell keeps its state), and the thread registers with
//! another domain: that registration's sweep ended the thread's registration with the
//! dropped domain (no section of it is open). `update` with an `Atomic` token then found
//! no slot and panicked with "RcuCell::update with an Atomic token on a thread not registered
//! with the cell's domain ... Fix: register the thread beforehand with
//! domain.register_current_thread(&ctx)": the thread did, and the fix it names cannot be
//! applied (the handle is gone). In a signal handler the panic cannot unwind out (abort).
//! `replace` with the same token works (it falls back to the embedded head), and so does
//! `update` before the sweep.
//!
//! Deterministic; failed with a wrong panic until registering elsewhere kept the entries of
//! domains whose state lives (issue 25).
#![cfg(not(loom))]

use std::panic::AssertUnwindSafe;

use rcu_core::prelude::*;
use rcu_core::DomainConfig;

#[test]
fn an_atomic_update_of_a_cell_of_a_dropped_domain_works_on_a_registered_thread() {
    let mut ctx = Sleepable::enter();
    let d = Domain::new(DomainConfig::new().name("rt25b-dropped-atomic"));
    d.register_current_thread(&ctx); // as the docs ask, before any Atomic update
    let cell = RcuCell::new_in(&d, 0u64);
    let mut spare = vec![Rcu::boxed(0u64), Rcu::boxed(0u64), Rcu::boxed(0u64)];
    {
        let mut spin = ctx.atomic();
        cell.update(&mut spin, |v| {
            let mut b = spare.pop().unwrap();
            **b = *v + 1;
            b
        });
    }
    drop(d); // the cell keeps the domain's state
    let elsewhere = Domain::new(DomainConfig::new().name("rt25b-elsewhere-atomic"));
    elsewhere.register_current_thread(&ctx); // sweeps the dropped domain's registration
    let updated = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut spin = ctx.atomic();
        cell.update(&mut spin, |v| {
            let mut b = spare.pop().unwrap();
            **b = *v + 1;
            b
        });
    }));
    assert!(
        updated.is_ok(),
        "RcuCell::update with an Atomic token panicked on a thread that had registered with \
         the cell's domain: registering with another domain ended that registration once the \
         domain's handle was dropped"
    );
}
