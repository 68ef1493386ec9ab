//! Red team 25b, suspicion 1: private domains dropped and new ones made in a loop on one
//! thread, while `FoundCache` names the old one and its registration is still in the
//! thread's list (nothing registers elsewhere in between: the next registration, with the
//! new domain, is the sweep). Classic (`Domain`) and sleepable (`SrcuStruct`) domains
//! alternate, so a new state may take the address of an old state of either kind once the
//! old one's allocation is freed. Some rounds keep a cell of the old domain alive (its state
//! lives on, dead, its registration swept or kept); others let it go entirely.
//!
//! Checked in every round, in a second section of the new domain (a cache hit, the first one
//! filled the cache): it is not counted on the thread's slot of a long-lived witness domain
//! (polling a fresh grace-period future of the witness would panic), the domain counts this
//! thread among its readers, and a grace period of the new domain started inside the
//! section does not complete, nor is the value the section loaded (then retired) dropped,
//! during `HOLD`. The addresses of the domains' states (`RcuDomain::domain_key`, printed
//! with `Debug`) are recorded to show that addresses were reused.
//!
//! Held at the time of writing: the registration's `Weak` keeps an old state's allocation
//! until the sweep, which clears the cache before it lets the entry go.
#![cfg(not(loom))]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, RcuDomain, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};

const ROUNDS: usize = 240;
/// How long, in each round, a grace period started inside the section is watched (it must
/// not complete).
const HOLD: Duration = Duration::from_millis(2);

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// True if polling a fresh grace-period future of `witness` here panics: the caller's
/// current section is then counted on its slot of `witness`.
fn counted_on(witness: &Domain, waker: &Waker) -> bool {
    let mut fut = witness.synchronize_rcu_async();
    let mut cx = TaskContext::from_waker(waker);
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = Pin::new(&mut fut).poll(&mut cx);
    }))
    .is_err()
}

fn address(domain: &impl RcuDomain) -> String {
    format!("{:?}", domain.domain_key())
}

#[test]
fn new_domains_after_dropped_ones_count_their_readers_on_their_own_slots() {
    let log = DropLog::new(4 * ROUNDS + 16);
    let witness = Domain::new(DomainConfig::new().name("rt25b-witness"));
    let waker = Waker::from(Arc::new(NoWake));
    let mut ctx = Sleepable::enter();
    witness.register_current_thread(&ctx);
    let mut seen = std::collections::HashSet::new();
    let mut reused = 0;
    // Cells of dropped domains kept for a round or two (their states live on, dead).
    let mut kept: Vec<RcuCell<Tracked>> = Vec::new();
    for round in 0..ROUNDS {
        let next = Rcu::boxed(log.track());
        if round % 2 == 0 {
            let d = Domain::new(DomainConfig::new().name(format!("rt25b-churn-{round}")));
            if !seen.insert(address(&d)) {
                reused += 1;
            }
            let cell = RcuCell::new_in(&d, log.track());
            drop(d.read_lock(&mut ctx)); // registers (sweeps dead entries), fills the cache
            let g = d.read_lock(&mut ctx); // the cache
            assert!(
                !counted_on(&witness, &waker),
                "round {round}: a section of a new domain was counted on the witness's slot"
            );
            assert!(d.stats().readers >= 1, "round {round}: the reader is not registered");
            let id = cell.load(&g).id();
            cell.replace(g.ctx(), next);
            let cookie = d.start_poll(g.ctx());
            let start = Instant::now();
            while start.elapsed() < HOLD {
                assert!(
                    !d.poll(cookie) && !log.is_freed(id),
                    "round {round}: a grace period of the new domain ended inside its section"
                );
                std::hint::spin_loop();
            }
            drop(g);
            if round % 4 == 0 {
                kept.push(cell);
            }
        } else {
            let s: SrcuStruct =
                SrcuStruct::new(DomainConfig::new().name(format!("rt25b-s-{round}")));
            if !seen.insert(address(&s)) {
                reused += 1;
            }
            let cell = RcuCell::new_in(&s, log.track());
            drop(s.read_lock(&mut ctx));
            let g = s.read_lock(&mut ctx);
            assert!(
                !counted_on(&witness, &waker),
                "round {round}: a sleepable section was counted on the witness's slot"
            );
            assert!(s.stats().readers >= 1, "round {round}: the reader is not registered");
            let id = cell.load(&g).id();
            cell.replace(g.ctx(), next);
            let cookie = s.start_poll_synchronize_srcu(g.ctx());
            let start = Instant::now();
            while start.elapsed() < HOLD {
                assert!(
                    !s.poll_state_synchronize_srcu(cookie) && !log.is_freed(id),
                    "round {round}: a grace period of the new sleepable domain ended inside \
                     its section"
                );
                std::hint::spin_loop();
            }
            drop(g);
            if round % 4 == 1 {
                kept.push(cell);
            }
        }
        if kept.len() > 2 {
            kept.remove(0);
        }
    }
    drop(kept);
    eprintln!("{ROUNDS} domains, {reused} of them at an address an earlier one had");
}
