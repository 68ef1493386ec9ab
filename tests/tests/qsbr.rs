//! QSBR (issue 26) at run time: a grace period waits for an online thread until its next
//! quiescent state, never for an offline one; a value loaded before a quiescent state stays
//! until that state; a second root taken while online is refused with the rule; cells work
//! on the domain with every token; a thread that stays online is reported as one. Interleavings are forced with channels; time only bounds
//! waits for what must happen (`PATIENCE`) or is a window in which what must not happen is
//! checked (`HOLD`).
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use common::{assert_holds_for, wait_until, Canary, Pending, HOLD};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain, RcuDomain, StallCause, StallReport};
use rcu_tests::quiet::{expect_panic_quietly, message};

fn domain(name: &'static str) -> Arc<QsbrDomain> {
    Arc::new(QsbrDomain::new(DomainConfig::new().name(name)))
}

/// A thread online with a value loaded, told by `go` when to pass a quiescent state; it
/// reports the value it still sees just before, then goes offline and ends.
fn online_reader(
    domain: &Arc<QsbrDomain>,
    cell: &Arc<RcuCell<Canary>>,
) -> (mpsc::Receiver<u64>, mpsc::Sender<()>, Pending<u64>) {
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (d, c) = (domain.clone(), cell.clone());
    let reader = Pending::spawn("qsbr-online", move || {
        let mut ctx = Sleepable::enter();
        let mut online = d.online(&mut ctx);
        let value = c.load(&online);
        loaded_tx.send(value.value()).expect("the test waits");
        go_rx.recv().expect("the test says when");
        let seen = value.value(); // still the value loaded before: not freed
        online.quiescent_state();
        let _offline = online.offline();
        seen
    });
    (loaded_rx, go_tx, reader)
}

#[test]
fn a_grace_period_waits_for_an_online_thread_until_its_quiescent_state() {
    let d = domain("qsbr-waits");
    let (canary, first_dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&d, canary));
    let (loaded, go, reader) = online_reader(&d, &cell);
    assert_eq!(loaded.recv().expect("the reader loads"), 1);
    cell.set(&Sleepable::enter(), Canary::new(2).0);
    let (d2, c2) = (d.clone(), cell.clone());
    let mut writer = Pending::spawn("qsbr-writer", move || {
        let ctx = Sleepable::enter();
        d2.synchronize_rcu(&ctx);
        d2.rcu_barrier(&ctx);
        drop(c2);
    });
    assert_holds_for(HOLD, "a grace period ended while the reader was online", || {
        !writer.is_done() && !first_dropped.load(Ordering::SeqCst)
    });
    go.send(()).expect("the reader waits");
    assert_eq!(reader.join("the online reader"), 1, "the value loaded was freed under it");
    writer.join("synchronize_rcu after the reader's quiescent state");
    assert!(first_dropped.load(Ordering::SeqCst), "the replaced value was never freed");
}

#[test]
fn a_grace_period_never_waits_for_an_offline_thread() {
    let d = domain("qsbr-offline");
    let (parked_tx, parked) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let d2 = d.clone();
    let sleeper = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let online = d2.online(&mut ctx);
        let offline = online.offline();
        parked_tx.send(()).expect("the test waits");
        release_rx.recv().expect("the test releases it"); // blocks, offline
        drop(offline.online(&mut ctx));
    });
    parked.recv().expect("the sleeper went offline");
    let ctx = Sleepable::enter();
    d.synchronize_rcu(&ctx); // returns: the sleeper is offline
    let again = Pending::spawn("qsbr-again", {
        let d = d.clone();
        move || d.synchronize_rcu(&Sleepable::enter())
    });
    again.join("a second grace period with the sleeper offline");
    release.send(()).expect("the sleeper waits");
    sleeper.join().expect("the sleeper");
}

#[test]
fn quiescent_states_let_grace_periods_pass_while_the_thread_stays_online() {
    let d = domain("qsbr-loop");
    let cell = Arc::new(RcuCell::new_in(&d, 0u64));
    let (step_tx, step_rx) = mpsc::channel::<bool>();
    let (seen_tx, seen_rx) = mpsc::channel();
    let (d2, c2) = (d.clone(), cell.clone());
    let reader = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let mut online = d2.online(&mut ctx);
        while step_rx.recv().expect("the test steps") {
            seen_tx.send(*c2.load(&online)).expect("the test reads");
            online.quiescent_state();
        }
    });
    let ctx = Sleepable::enter();
    for i in 1..=20u64 {
        cell.set(&ctx, i);
        step_tx.send(true).expect("the reader steps");
        assert_eq!(seen_rx.recv().expect("the reader reports"), i);
        // The reader stays online; the grace period ends at its first quiescent state after
        // the grace period began, which the test cannot see start: it steps the reader
        // (one load and one quiescent state each) until the grace period is over.
        let mut gp = Pending::spawn("qsbr-gp", {
            let d = d.clone();
            move || d.synchronize_rcu(&Sleepable::enter())
        });
        let start = std::time::Instant::now();
        while !gp.wait_timeout(std::time::Duration::from_millis(1)) {
            assert!(start.elapsed() < common::PATIENCE, "step {i}: the grace period never ended");
            step_tx.send(true).expect("the reader steps");
            assert_eq!(seen_rx.recv().expect("the reader reports"), i);
        }
        gp.join("the grace period");
    }
    step_tx.send(false).expect("the reader stops");
    reader.join().expect("the reader");
    d.rcu_barrier(&ctx);
}

#[test]
fn a_second_root_while_online_is_refused_naming_the_rule() {
    let d = domain("qsbr-second-root");
    let p = expect_panic_quietly("inside a read section", || {
        let mut ctx = Sleepable::enter();
        let _online = d.online(&mut ctx);
        let second = Sleepable::enter(); // could block while online
        d.synchronize_rcu(&second);
    })
    .expect_err("a root taken while online must be refused");
    assert!(message(&*p).contains("read section"), "{}", message(&*p));
}

#[test]
fn cells_on_a_qsbr_domain_take_every_token() {
    let d = domain("qsbr-cells");
    let cell = RcuCell::new_in(&d, String::from("a"));
    let mut ctx = Sleepable::enter();
    d.register_current_thread(&ctx);
    {
        let mut online = d.online(&mut ctx);
        assert_eq!(cell.load(&online), "a");
        d.kvfree_rcu(online.ctx(), Rcu::boxed(String::from("queued while online")));
        online.quiescent_state();
    }
    cell.set(&ctx, String::from("b"));
    {
        let nr = ctx.no_reclaim();
        cell.replace(&nr, Rcu::boxed(String::from("c")));
    }
    {
        let atomic = ctx.atomic();
        cell.replace(&atomic, Rcu::boxed(String::from("d")));
    }
    let online = d.online(&mut ctx);
    assert_eq!(cell.load(&online), "d");
    drop(online);
    d.rcu_barrier(&ctx);
    assert_eq!(d.stats().leaked_read_sections, 0);
}

#[test]
fn a_thread_online_without_quiescent_states_is_reported_as_such() {
    let d = domain("qsbr-stall");
    let reports = rcu_tests::collect_stalls(d.as_domain());
    let (online_tx, online_rx) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let d2 = d.clone();
    let reader = std::thread::Builder::new()
        .name("qsbr-stuck".into())
        .spawn(move || {
            let mut ctx = Sleepable::enter();
            let online = d2.online(&mut ctx);
            online_tx.send(()).expect("the test waits");
            go_rx.recv().expect("the test releases it"); // online, no quiescent state
            drop(online);
        })
        .expect("spawn the reader");
    online_rx.recv().expect("the reader is online");
    let gp = Pending::spawn("qsbr-stalled-gp", {
        let d = d.clone();
        move || d.synchronize_rcu(&Sleepable::enter())
    });
    let is_ours = |r: &StallReport| r.cause == StallCause::QsbrOnline;
    assert!(
        wait_until(common::PATIENCE, || reports.with(|v| v.iter().any(is_ours))),
        "no QSBR stall report while a thread stayed online: {:?}",
        reports.with(|v| v.clone())
    );
    let text = reports.with(|v| v.iter().find(|r| is_ours(r)).map(ToString::to_string));
    let text = text.expect("found above");
    assert!(
        text.contains("qsbr-stuck") && text.contains("quiescent_state()"),
        "the report names neither the thread nor the fix: {text}"
    );
    go.send(()).expect("the reader waits");
    reader.join().expect("the reader");
    gp.join("the grace period once the reader went offline");
    d.set_stall_handler(None);
}

/// Hostile: a second online handle from a token nested in the first's `ctx()`. Were it
/// allowed, its quiescent state would end the first handle's period while `value` (loaded
/// through the first) is alive, and a grace period could free it.
#[test]
fn a_second_online_handle_on_the_same_thread_is_refused() {
    let d = domain("qsbr-second-online");
    let (canary, dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&d, canary));
    let mut ctx = Sleepable::enter();
    let online = d.online(&mut ctx);
    let value = cell.load(&online);
    let p = expect_panic_quietly("already online", || {
        let mut nested = online.ctx().nested();
        let mut second = d.online(&mut nested);
        second.quiescent_state();
    })
    .expect_err("a second online handle must be refused");
    assert!(message(&*p).contains("one online handle per thread"), "{}", message(&*p));
    // The refusal left the first handle's period as it was: a grace period still waits.
    let (d2, c2) = (d.clone(), cell.clone());
    let mut writer = Pending::spawn("qsbr-second-online-writer", move || {
        let ctx = Sleepable::enter();
        c2.set(&ctx, Canary::new(2).0);
        d2.synchronize_rcu(&ctx);
        d2.rcu_barrier(&ctx);
    });
    assert_holds_for(HOLD, "the first handle's value was freed after the refusal", || {
        !writer.is_done() && !dropped.load(Ordering::SeqCst)
    });
    assert_eq!(value.value(), 1);
    drop(online);
    writer.join("the grace period after the thread went offline");
    assert!(dropped.load(Ordering::SeqCst), "the replaced value was never freed");
}

/// Grace periods of a QSBR domain pair with readers by fences: no membarrier, whoever is
/// online, while a classic domain's do use it where the kernel offers it.
#[test]
fn qsbr_grace_periods_issue_no_membarrier() {
    let d = domain("qsbr-no-membarrier");
    let ctx = Sleepable::enter();
    d.register_current_thread(&ctx);
    let before = d.stats();
    for _ in 0..10 {
        d.synchronize_rcu(&ctx);
        d.synchronize_rcu_expedited(&ctx);
    }
    let (online_tx, online_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let d2 = d.clone();
    let reader = Pending::spawn("qsbr-online-quiescing", move || {
        let mut ctx = Sleepable::enter();
        let mut online = d2.online(&mut ctx);
        online_tx.send(()).expect("the test waits");
        while stop_rx.try_recv().is_err() {
            online.quiescent_state();
            std::thread::yield_now();
        }
    });
    online_rx.recv().expect("the reader goes online");
    for _ in 0..10 {
        d.synchronize_rcu(&ctx);
    }
    stop_tx.send(()).expect("the reader waits");
    reader.join("the quiescing reader");
    let after = d.stats();
    assert!(after.gps_normal + after.gps_expedited >= before.gps_normal + 30);
    assert_eq!(after.membarriers, 0, "a QSBR grace period issued membarrier");
    let classic = Domain::new(DomainConfig::new().name("classic-membarrier"));
    drop(classic.read_lock(&mut Sleepable::enter()));
    classic.synchronize_rcu(&ctx);
    let expected = if rcu_core::raw::barrier::uses_membarrier() { 1 } else { 0 };
    assert!(classic.stats().membarriers >= expected, "{:?}", classic.stats());
}

fn count_call(obj: Box<Rcu<Arc<AtomicU64>>>, _ctx: &Atomic<'_>) {
    // Relaxed: read after rcu_barrier, which orders it.
    obj.fetch_add(1, Ordering::Relaxed);
    drop(obj); // the callback owns the object
}

/// `call_rcu` with every token (an online thread's `ctx()` among them) and
/// `kvfree_rcu_mightsleep` wait for an online thread's quiescent state like every deferred
/// item, and run by `rcu_barrier` once it came.
#[test]
fn callbacks_and_headless_frees_wait_for_an_online_thread() {
    let d = domain("qsbr-callbacks");
    let (canary, _) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&d, canary));
    let (loaded, go, reader) = online_reader(&d, &cell);
    assert_eq!(loaded.recv().expect("the reader loads"), 1);
    let ran = Arc::new(AtomicU64::new(0));
    let mut ctx = Sleepable::enter();
    {
        let online = d.online(&mut ctx);
        d.call_rcu(online.ctx(), Rcu::boxed(ran.clone()), count_call);
    }
    d.call_rcu(&ctx, Rcu::boxed(ran.clone()), count_call);
    d.call_rcu(&ctx.no_reclaim(), Rcu::boxed(ran.clone()), count_call);
    d.call_rcu(&ctx.atomic(), Rcu::boxed(ran.clone()), count_call);
    let (headless, dropped) = Canary::new(2);
    d.kvfree_rcu_mightsleep(&ctx, Box::new(headless));
    assert_holds_for(HOLD, "a deferred item ran while a reader was online", || {
        // Relaxed: a count (see `count_call`); a run seen early is the failure.
        ran.load(Ordering::Relaxed) == 0 && !dropped.load(Ordering::SeqCst)
    });
    go.send(()).expect("the reader waits");
    assert_eq!(reader.join("the online reader"), 1, "the value loaded was freed under it");
    d.rcu_barrier(&ctx);
    // Relaxed: rcu_barrier ordered the callbacks before its return.
    assert_eq!(ran.load(Ordering::Relaxed), 4, "a callback did not run by rcu_barrier");
    assert!(dropped.load(Ordering::SeqCst), "the headless free did not run by rcu_barrier");
}
