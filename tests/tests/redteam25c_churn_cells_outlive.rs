//! Red team 25c, suspicion 1: one long-lived thread makes many private domains (classic and
//! sleepable, alternating), registers with each (a read), stages work on its slot (`set`),
//! drops the domain's handle at once, and keeps the domain's cell for three more rounds
//! (its state lives on, dead-handled, and registering with the next domains keeps the
//! thread's entry for it, per commit 1ee279d). In every round the kept cells are updated
//! with an `Atomic` token (which needs the kept slot), then the oldest is dropped on this
//! thread.
//!
//! Checked: every `Atomic` update finds its slot (no panic); every value is dropped exactly
//! once; every domain's runtime threads (`rcu-gp-<name>`, whose worker exits only when it
//! holds the state's last reference) exit within 60 s after the last cell goes, although
//! this thread never exits and registers elsewhere only once more: kept registrations
//! (weak) hold no state alive. The process's resident memory after the run is compared
//! with a warm-up run of the same size: a per-thread list or state allocations that grew
//! with the number of domains would show as a second-run growth.
//!
//! Verdict: holds at the time of writing.
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::threads_named;

const ROUNDS: usize = 60;
const KEEP: usize = 3;
const PATIENCE: Duration = Duration::from_secs(60);

/// Threads of this process whose name starts with `prefix`.
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn run(log: &'static DropLog, ctx: &mut Sleepable, tag: &str) {
    let mut kept: VecDeque<RcuCell<Tracked>> = VecDeque::new();
    let mut spare: Vec<Box<Rcu<Tracked>>> = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("{tag}{round}");
        let cell = if round % 2 == 0 {
            let d = Domain::new(DomainConfig::new().name(name));
            let cell = RcuCell::new_in(&d, log.track());
            {
                let g = d.read_lock(ctx); // registers: the next domains sweep
                let _ = cell.load(&g).id();
            }
            cell.set(&*ctx, log.track()); // staged on this thread's slot
            cell
        } else {
            let s: SrcuStruct = SrcuStruct::new(DomainConfig::new().name(name));
            let cell = RcuCell::new_in(&s, log.track());
            {
                let g = s.read_lock(ctx);
                let _ = cell.load(&g).id();
            }
            cell.set(&*ctx, log.track());
            cell
        };
        kept.push_back(cell);
        // Every kept cell's handle is gone: an Atomic update needs this thread's kept slot.
        spare.extend((0..kept.len()).map(|_| Rcu::boxed(log.track())));
        {
            let mut spin = ctx.atomic();
            for c in &kept {
                let mut next = spare.pop();
                c.update(&mut spin, |_| next.take().expect("one try: no other writer"));
            }
        }
        if round == ROUNDS - 1 {
            eprintln!("{tag}: {} runtime threads live", threads_named("rcu-gp-"));
        }
        if kept.len() > KEEP {
            drop(kept.pop_front());
        }
    }
    drop(kept);
}

#[test]
fn many_dead_handled_domains_on_one_thread_all_go_away() {
    let log = DropLog::new(ROUNDS * 16 + 64);
    let mut ctx = Sleepable::enter();
    let wait_gone = |tag: &str| {
        let start = Instant::now();
        loop {
            let left = threads_named(&format!("rcu-gp-{tag}"));
            if left == 0 {
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "hung: {left} runtime thread(s) of dropped domains '{tag}*' still running \
                 after {PATIENCE:?} (their states never went away)"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    run(log, &mut ctx, "c1a");
    wait_gone("c1a");
    assert!(log.wait_freed(log.allocated(), PATIENCE), "values of dropped domains never freed");
    let warm = rss_kib();
    run(log, &mut ctx, "c1b");
    wait_gone("c1b");
    // One more registration: sweeps the entries of the gone states.
    let last = Domain::new(DomainConfig::new().name("c1-last"));
    last.register_current_thread(&ctx);
    drop(last);
    assert!(log.wait_freed(log.allocated(), PATIENCE), "values of dropped domains never freed");
    log.assert_all_freed_once();
    let after = rss_kib();
    // A sanitizer's allocator keeps freed memory in quarantine (ASan) or shadow (TSan), so
    // resident memory grows with every free there: the bound means something only without.
    if cfg!(not(any(rcu_sanitizer = "address", rcu_sanitizer = "thread"))) {
        assert!(
            after < warm + 8 * 1024,
            "resident memory grew by {} KiB over a second run of {ROUNDS} domains (after the \
             warm-up run {warm} KiB, after the second {after} KiB)",
            after.saturating_sub(warm)
        );
    }
}
