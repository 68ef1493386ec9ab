//! Red team 25c, suspicion 6: a thread exits holding a kept registration (commit 1ee279d)
//! with a domain whose handle it dropped, while another thread drops the domain's last cell
//! at the same moment (both released by one barrier): the exit hook's upgrade of the entry's
//! `Weak` races with the state's last references going (the cell's, then the worker's).
//! Rounds alternate classic and sleepable domains; the exiting thread staged work on its
//! slot (`set`) and filled `FoundCache` with the slot (an `Atomic` update) just before.
//!
//! Checked: every value dropped once, every domain's runtime threads gone within 60 s (no
//! state kept alive, none dropped twice). The interleaving inside the race is the
//! scheduler's; what is asserted holds for every one. Also run under valgrind.
//!
//! Verdict: holds at the time of writing (also clean under valgrind).
#![cfg(not(loom))]

use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::threads_named;

const ROUNDS: usize = 24;
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn thread_exit_racing_the_last_cell_drop_frees_everything_once() {
    let log = DropLog::new(ROUNDS * 8);
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(2));
        let (tx, rx) = mpsc::channel::<RcuCell<Tracked>>();
        let b = Arc::clone(&barrier);
        let t = std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let name = format!("c6r{round}");
            let cell = if round % 2 == 0 {
                let d = Domain::new(DomainConfig::new().name(name));
                d.register_current_thread(&ctx);
                RcuCell::new_in(&d, log.track())
            } else {
                let s: SrcuStruct = SrcuStruct::new(DomainConfig::new().name(name));
                s.register_current_thread(&ctx);
                RcuCell::new_in(&s, log.track())
            }; // the handle is dropped here; the registration is kept
            cell.set(&ctx, log.track());
            let mut spare = Some(Rcu::boxed(log.track()));
            {
                let mut spin = ctx.atomic();
                cell.update(&mut spin, |_| spare.take().expect("one try"));
            }
            drop(ctx);
            tx.send(cell).expect("main waits");
            b.wait();
            // Returns: the exit hook ends the kept registration.
        });
        let cell = rx.recv().expect("the cell");
        barrier.wait();
        drop(cell);
        t.join().expect("the exiting thread");
    }
    let start = Instant::now();
    while threads_named("rcu-gp-c6r") != 0 {
        assert!(start.elapsed() < PATIENCE, "hung: dropped domains' workers never exited");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(log.wait_freed(log.allocated(), PATIENCE), "values never dropped");
    log.assert_all_freed_once();
}
