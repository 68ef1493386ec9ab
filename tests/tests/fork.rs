//! RCU works in the child after `fork()` (DESIGN §5), including when the parent forks while
//! another of its threads is inside a read section and yet another is leading a grace period
//! that waits for it: neither thread exists in the child, so the child must not wait for them.
//!
//! This file holds a single test so that no other test's threads are running (and possibly
//! holding locks) when it forks. The child reports failures through its exit status and a
//! line written straight to fd 2; it never returns into the test harness.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{wait_until, Pending, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, Rcu};
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};

/// Fails the child with a message.
macro_rules! child_check {
    ($cond:expr, $msg:expr) => {
        if !$cond {
            return Err($msg);
        }
    };
}

/// What the child does: read sections, grace periods (normal, expedited, polled), RcuCell
/// writes, in the global domain, the parent's custom domain and a new domain.
fn child_body(
    domain: &Domain,
    cell: &RcuCell<String>,
    global_cell: &RcuCell<String>,
) -> Result<(), &'static str> {
    // Only the forking thread exists here; it was registered in both domains in the parent
    // (as were the other parent threads and the domains' workers, now gone). The child
    // handler restarted each domain's worker, which registers again as it starts.
    child_check!(Domain::global().stats().readers <= 2, "global: other threads' slots survived");
    child_check!(domain.stats().readers <= 2, "custom domain: other threads' slots survived");
    let g = Domain::global().stats();
    child_check!(g.gp_seq > g.gp_completed, "global: no grace period was in flight at fork");
    let d = domain.stats();
    child_check!(d.gp_seq > d.gp_completed, "custom: no grace period was in flight at fork");
    // The parent's waiting writers are not here, so nobody waits for a grace period.
    child_check!(g.gp_waiters == 0, "global: the parent's waiting writers are still counted");
    child_check!(d.gp_waiters == 0, "custom: the parent's waiting writer is still counted");

    let mut ctx = Sleepable::enter();

    // The global domain.
    {
        let guard = read_lock(&mut ctx);
        child_check!(global_cell.load(&guard) == "parent", "global cell: wrong value");
    }
    synchronize_rcu(&ctx);
    synchronize_rcu_expedited(&ctx);
    let cookie = get_state();
    cond_synchronize(&ctx, cookie);
    child_check!(poll(cookie), "global: cond_synchronize did not complete its cookie");
    global_cell.set(&ctx, String::from("child"));
    {
        let guard = read_lock(&mut ctx);
        child_check!(global_cell.load(&guard) == "child", "global cell: replace lost");
    }
    // Polled and deferred work: the parent's worker does not exist here; it is started
    // again on demand.
    let cookie = start_poll(&ctx);
    child_check!(wait_until(PATIENCE, || poll(cookie)), "global: start_poll never completed");
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    // SeqCst: checked after rcu_barrier, which orders the callback before its return anyway.
    call_rcu_fn(&ctx, move |_| flag.store(true, Ordering::SeqCst));
    rcu_barrier(&ctx);
    child_check!(
        ran.load(Ordering::SeqCst),
        "global: rcu_barrier returned before the callback ran"
    );

    // The parent's custom domain.
    {
        let guard = domain.read_lock(&mut ctx);
        child_check!(cell.load(&guard) == "parent", "custom cell: wrong value");
    }
    domain.synchronize_rcu(&ctx);
    domain.synchronize_rcu_expedited(&ctx);
    cell.set(&ctx, String::from("child"));
    cell.update(&mut ctx, |s| Rcu::boxed(format!("{s}!")));
    {
        let guard = domain.read_lock(&mut ctx);
        child_check!(cell.load(&guard) == "child!", "custom cell: replace/update lost");
    }
    let cookie = domain.start_poll(&ctx);
    child_check!(
        wait_until(PATIENCE, || domain.poll(cookie)),
        "custom: start_poll never completed"
    );
    // The old values retired by set/update are freed by the restarted worker.
    domain.rcu_barrier(&ctx);
    child_check!(domain.stats().callbacks_pending == 0, "custom: retired values never freed");

    // A domain made in the child, with a reader thread of the child's own.
    let fresh = Arc::new(Domain::new(DomainConfig::new().name("fork-fresh")));
    let reader = std::thread::spawn({
        let fresh = fresh.clone();
        move || {
            let mut ctx = Sleepable::enter();
            drop(fresh.read_lock(&mut ctx));
        }
    });
    child_check!(reader.join().is_ok(), "fresh domain: reader thread failed");
    fresh.synchronize_rcu(&ctx);
    // Only the fresh domain's worker is left registered.
    child_check!(
        wait_until(PATIENCE, || fresh.stats().readers == 1),
        "fresh domain: the exited reader's slot was not released"
    );
    drop(Arc::try_unwrap(fresh).map_err(|_| "fresh domain: still shared")?);
    child_check!(
        Domain::global().stats().gp_waiters == 0 && domain.stats().gp_waiters == 0,
        "the child's own waits were not uncounted"
    );
    Ok(())
}

/// Runs `child_body` in a forked child; returns its exit status (0 = success).
fn fork_and_run(domain: &Domain, cell: &RcuCell<String>, global_cell: &RcuCell<String>) -> i32 {
    // SAFETY: (1) the child only runs `child_body`: rcu-core calls, allocation, a thread of
    // its own (no parent thread creates threads meanwhile) and `raw_eprint`; (2) it reads
    // only the cells, through its own read guards.
    let end = unsafe {
        // Above the child's own waits (`PATIENCE`), so that a child that fails says why.
        run_in_child(2 * PATIENCE, || {
            match catch_unwind(AssertUnwindSafe(|| child_body(domain, cell, global_cell))) {
                Ok(Ok(())) => 0,
                Ok(Err(msg)) => {
                    raw_eprint(&format!("fork child: {msg}\n"));
                    1
                }
                Err(_) => {
                    raw_eprint("fork child: panicked\n");
                    2
                }
            }
        })
    };
    match end {
        ChildEnd::Exited(code) => code,
        ChildEnd::Died(status) => panic!("the child did not exit normally: status {status:#x}"),
        ChildEnd::Hung => {
            panic!("the forked child hung (waiting for a reader or leader of the parent?)")
        }
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn child_after_fork_uses_rcu_while_parent_threads_are_in_read_sections() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("fork-dom")));
    let cell = RcuCell::new_in(&domain, String::from("parent"));
    let global_cell = RcuCell::new(String::from("parent"));

    // The forking thread registers with both domains, as a real program's would have.
    let mut ctx = Sleepable::enter();
    drop(read_lock(&mut ctx));
    drop(domain.read_lock(&mut ctx));

    // A parent thread inside a global read section with a custom-domain section nested in
    // it, held until after the child is done.
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::Builder::new()
        .name("fork-reader".into())
        .spawn({
            let domain = domain.clone();
            move || {
                let mut ctx = Sleepable::enter();
                // Registering allocates: not inside the global section (an atomic context).
                domain.register_current_thread(&ctx);
                let guard = read_lock(&mut ctx);
                let inner = domain.read_lock_nested(guard.ctx());
                entered_tx.send(()).unwrap();
                let _ = release_rx.recv();
                drop(inner);
                drop(guard);
            }
        })
        .unwrap();
    entered_rx.recv_timeout(PATIENCE).expect("the reader entered");

    // Parent threads leading grace periods that wait for that reader.
    let g_before = Domain::global().stats().gp_seq;
    let d_before = domain.stats().gp_seq;
    let global_writer = Pending::spawn("fork-gwriter", || synchronize_rcu(&Sleepable::enter()));
    let domain_writer = Pending::spawn("fork-dwriter", {
        let domain = domain.clone();
        move || domain.synchronize_rcu(&Sleepable::enter())
    });
    assert!(wait_until(PATIENCE, || Domain::global().stats().gp_seq > g_before));
    assert!(wait_until(PATIENCE, || domain.stats().gp_seq > d_before));
    assert!(wait_until(PATIENCE, || Domain::global().stats().gp_waiters == 1));
    assert!(wait_until(PATIENCE, || domain.stats().gp_waiters == 1));

    let status = fork_and_run(&domain, &cell, &global_cell);

    // The parent is unaffected: its grace periods still wait for its reader, and finish
    // once it leaves.
    {
        let guard = domain.read_lock(&mut ctx);
        assert_eq!(cell.load(&guard), "parent", "the child's writes leaked into the parent");
    }
    release_tx.send(()).unwrap();
    reader.join().unwrap();
    global_writer.join("the parent's global grace period after its reader left");
    domain_writer.join("the parent's custom-domain grace period after its reader left");
    assert_eq!(status, 0, "the forked child failed (exit status {status}; see its message above)");
}
