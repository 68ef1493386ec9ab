//! Red team, issue 25 (SRCU), suspicion 1: owned guards made on thread A, moved to four
//! threads B, and ended there concurrently (behind a barrier) while A exits (its slot is
//! released; released slots with open owned guards must not be reused) and a grace period
//! runs throughout; then thread C registers (it may now reuse A's slot) and its sections
//! must be waited for as before. Repeated `ROUNDS` times per flavour.
//!
//! Checked each round: the grace period started after the values were retired does not
//! complete while any of A's guards is open (checked before the last one ends); no value is
//! freed while a guard that loaded it lives; after the ends, the grace period completes; C's
//! section on a possibly reused slot holds a later grace period; no double free.
//!
//! The barrier releases A's exit and the B threads' ends together; which comes first is up
//! to the scheduler (both orders occur over the rounds). Held at the time of writing.
#![cfg(not(loom))]

mod common;

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use common::{assert_holds_for, Pending, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuFlavor, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};

const ROUNDS: usize = 40;
const GUARDS: usize = 64;
const ENDERS: usize = 4;

fn rounds<F: SrcuFlavor>() {
    let srcu: Arc<SrcuStruct<F>> =
        Arc::new(SrcuStruct::new(DomainConfig::new().name(format!("rt25-owned-{}", F::NAME))));
    srcu.set_stall_timeout(Duration::from_secs(3600));
    let log = DropLog::new(ROUNDS * 4 + 8);
    let cell: Arc<RcuCell<Tracked>> = Arc::new(RcuCell::new_in(&srcu, log.track()));
    let ctx = Sleepable::enter();
    for round in 0..ROUNDS {
        let go = Arc::new(Barrier::new(1 + ENDERS));
        let (to_enders, from_a): (Vec<_>, Vec<_>) = (0..ENDERS).map(|_| mpsc::channel()).unzip();
        std::thread::scope(|s| {
            // A: makes the guards, hands them out, then exits at the barrier.
            let a = {
                let (srcu, cell, go) = (&srcu, &cell, go.clone());
                s.spawn(move || {
                    let ctx = Sleepable::enter();
                    for i in 0..GUARDS {
                        let g = srcu.down_read(&ctx);
                        let id = cell.load(&g).id();
                        to_enders[i % ENDERS].send((g, id)).unwrap();
                    }
                    drop(to_enders);
                    go.wait();
                })
            };
            let (ready_tx, ready_rx) = mpsc::channel();
            let (end_tx, end_rx) = mpsc::channel::<()>();
            let end_rx = Arc::new(std::sync::Mutex::new(end_rx));
            let enders: Vec<_> = from_a
                .into_iter()
                .map(|rx| {
                    let (go, ready_tx, end_rx) = (go.clone(), ready_tx.clone(), end_rx.clone());
                    s.spawn(move || {
                        let held: Vec<(rcu_core::SrcuOwnedGuard<'_, F, _>, usize)> =
                            rx.iter().collect();
                        ready_tx.send(()).unwrap();
                        // Wait for the test to retire the values and start a grace period.
                        let _ = end_rx.lock().unwrap().recv();
                        go.wait();
                        let mut freed_under = 0;
                        for (g, id) in held {
                            if log.is_freed(id) {
                                freed_under += 1;
                            }
                            drop(g);
                        }
                        freed_under
                    })
                })
                .collect();
            for _ in 0..ENDERS {
                ready_rx.recv_timeout(PATIENCE).expect("an ender got its guards");
            }
            // Retire the value every guard loaded, and wait for a grace period elsewhere.
            cell.set(&ctx, log.track());
            let srcu2 = srcu.clone();
            let mut gp = Pending::spawn("rt25-gp", move || {
                srcu2.synchronize_srcu(&Sleepable::enter());
                srcu2.srcu_barrier(&Sleepable::enter());
            });
            assert_holds_for(
                Duration::from_millis(20),
                "a grace period ignored open owned guards",
                || !gp.is_done(),
            );
            for _ in 0..ENDERS {
                end_tx.send(()).unwrap();
            }
            let freed: usize = enders.into_iter().map(|e| e.join().unwrap()).sum();
            a.join().unwrap();
            assert_eq!(freed, 0, "round {round}: values freed under open owned guards");
            gp.join("the grace period once the owned guards ended");
        });
        // C: registers after A's exit (its slot may be A's now); its section holds.
        let (in_tx, in_rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::channel::<()>();
        let (srcu2, cell2) = (srcu.clone(), cell.clone());
        let c = std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let g = srcu2.read_lock(&mut ctx);
            let id = cell2.load(&g).id();
            in_tx.send(()).unwrap();
            let _ = out_rx.recv();
            let ok = !log.is_freed(id);
            drop(g);
            ok
        });
        in_rx.recv().unwrap();
        cell.set(&ctx, log.track());
        let srcu2 = srcu.clone();
        let mut gp =
            Pending::spawn("rt25-gp-c", move || srcu2.synchronize_srcu(&Sleepable::enter()));
        assert_holds_for(Duration::from_millis(10), "a grace period ignored C's section", || {
            !gp.is_done()
        });
        out_tx.send(()).unwrap();
        assert!(c.join().unwrap(), "round {round}: C's value was freed under its section");
        gp.join("the grace period once C left");
    }
    srcu.srcu_barrier(&ctx);
    log.assert_no_double_free();
    assert_eq!(log.freed(), log.allocated() - 1);
}

#[test]
fn fast_owned_guards_ended_elsewhere_while_their_maker_exits() {
    rounds::<rcu_core::Fast>();
}

#[test]
fn plain_owned_guards_ended_elsewhere_while_their_maker_exits() {
    rounds::<rcu_core::Plain>();
}
