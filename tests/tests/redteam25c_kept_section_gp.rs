//! Red team 25c, suspicion 3: a thread keeps its registration with a domain whose handle was
//! dropped (commit 1ee279d) and sits inside a read section of it: `RcuCell::update`'s own
//! section, whose closure blocks (a test stand-in for a long section) after loading the
//! current value. Meanwhile another thread replaces the cell's value many times (`set` and
//! `update`), retiring the value the closure holds.
//!
//! Checked: during `HOLD` the value loaded in the section is not dropped (a grace period of
//! the dead-handled domain still waits for the kept slot); once the closure returns, the
//! update retries on the newer value (a lost race) and completes, every value is dropped
//! once, and the domain's runtime threads exit once the cell is dropped (no grace period
//! waits for ever on the kept slot, no worker stays). Classic and sleepable domains.
//! Deterministic (channels).
//!
//! Verdict: holds at the time of writing.
#![cfg(not(loom))]

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::threads_named;

const HOLD: Duration = Duration::from_millis(200);
const PATIENCE: Duration = Duration::from_secs(60);
const WRITES: usize = 50;

fn scenario(log: &'static DropLog, cell: Arc<RcuCell<Tracked>>, tag: &str) {
    let (in_tx, in_rx) = mpsc::channel::<usize>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader_cell = Arc::clone(&cell);
    let reader = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let mut tries = 0;
        reader_cell.update(&mut ctx, |v| {
            tries += 1;
            if tries == 1 {
                in_tx.send(v.id()).expect("main waits");
                go_rx.recv().expect("main says go");
            }
            Rcu::boxed(log.track())
        });
        tries
    });
    let held = in_rx.recv().expect("the reader is in its section");
    let writer_cell = Arc::clone(&cell);
    let writer = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        for i in 0..WRITES {
            if i % 2 == 0 {
                writer_cell.set(&ctx, log.track());
            } else {
                writer_cell.update(&mut ctx, |_| Rcu::boxed(log.track()));
            }
        }
    });
    let start = Instant::now();
    while start.elapsed() < HOLD {
        assert!(!log.is_freed(held), "the value loaded inside the kept slot's section was freed");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Every write is published before the reader goes on, so its update loses its race
    // whatever the schedule (the writes wait for no grace period).
    writer.join().expect("writer");
    assert!(!log.is_freed(held), "the value loaded inside the kept slot's section was freed");
    go_tx.send(()).expect("the reader waits");
    let tries = reader.join().expect("reader");
    assert!(tries >= 2, "the reader's update should have lost its race once");
    drop(cell);
    let start = Instant::now();
    while threads_named(&format!("rcu-gp-{tag}")) != 0 {
        assert!(start.elapsed() < PATIENCE, "hung: the dead domain's worker never exited");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(log.wait_freed(log.allocated(), PATIENCE), "values never dropped");
    log.assert_all_freed_once();
}

#[test]
fn a_section_on_a_kept_slot_holds_grace_periods_of_its_dead_handled_domain() {
    let log = DropLog::new(4 * WRITES + 16);
    let d = Domain::new(DomainConfig::new().name("c3c"));
    let cell = Arc::new(RcuCell::new_in(&d, log.track()));
    drop(d); // only the cell holds the state (and the worker)
    scenario(log, cell, "c3c");
}

#[test]
fn a_section_on_a_kept_slot_holds_grace_periods_of_its_dead_handled_srcu_domain() {
    let log = DropLog::new(4 * WRITES + 16);
    let s: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("c3s"));
    let cell = Arc::new(RcuCell::new_in(&s, log.track()));
    drop(s);
    scenario(log, cell, "c3s");
}
