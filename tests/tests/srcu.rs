//! Sleepable read sections (SRCU, DESIGN §5.0 and §5.1) at run time: a section may block and
//! its owned guard may move between threads and tasks, yet nothing retired after it began is
//! freed before it ends; its domain's grace periods wait for it and no other domain's do; a
//! wait for its own domain with a token the types cannot see through (a second root) is
//! refused with the rule; its deferred calls run exactly once on every path; a held section
//! is reported as a stall naming the thread that began it; sections nest.
//!
//! Every test runs for both reader flavours (`fast::` and `plain::`). Interleavings are forced
//! with channels; time only bounds waits for what must happen (`PATIENCE`) or is a window in
//! which what must not happen is checked (`HOLD`). Values carry canaries whose drop is
//! recorded, so "not freed under a reader" is checked directly. Thread exit is in
//! `srcu_exit.rs`.
#![cfg(not(loom))]

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::srcu::{find_stall, record_stalls, BlockedReader, Published};
use common::{assert_holds_for, gettid, wait_until, Canary, Pending, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{
    AllocConfig, DomainConfig, FaultConfig, Policy, SectionState, SrcuFlavor, SrcuStruct,
    StallCause, Unbranded,
};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::quiet::{expect_panic_quietly, message};

/// Instantiates each generic test body for both flavours: `fast::NAME` and `plain::NAME`.
macro_rules! for_both_flavours {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod fast {
            $( $(#[$attr])* #[test] fn $name() { super::$name::<rcu_core::Fast>(); } )*
        }
        mod plain {
            $( $(#[$attr])* #[test] fn $name() { super::$name::<rcu_core::Plain>(); } )*
        }
    };
}

for_both_flavours!(
    a_borrowed_reader_blocked_in_its_section_holds_synchronize_and_its_value,
    an_owned_guard_moved_to_another_thread_holds_until_dropped_there,
    a_blocked_reader_holds_only_its_own_domain,
    a_cookie_taken_inside_a_section_completes_only_after_it,
    a_cookie_of_one_domain_panics_in_another,
    a_second_root_inside_a_section_may_not_wait_for_the_domain,
    the_first_section_from_an_atomic_scope_needs_a_registered_thread,
    deferred_calls_run_once_after_the_readers_under_every_token,
    deferred_calls_run_once_under_every_token_with_every_block_request_failing,
    a_held_owned_guard_is_reported_as_a_stall_of_the_thread_that_made_it,
    sections_nest_inside_a_sleepable_section,
    #[cfg(not(rcu_sanitizer = "thread"))]
    tasks_holding_owned_guards_across_await_never_see_a_freed_value,
);

/// A sleepable domain of flavour `F` named `what-FLAVOUR`.
fn srcu_named<F: SrcuFlavor>(what: &str) -> Arc<SrcuStruct<F>> {
    Arc::new(SrcuStruct::new(DomainConfig::new().name(format!("{what}-{}", F::NAME))))
}

/// A `synchronize_srcu` of `srcu` on a thread of its own, for the test to watch.
fn synchronize_elsewhere<F: SrcuFlavor>(srcu: &Arc<SrcuStruct<F>>) -> Pending<()> {
    let srcu = srcu.clone();
    Pending::spawn("srcu-writer", move || srcu.synchronize_srcu(&Sleepable::enter()))
}

/// A reader blocked (on a channel) inside a borrowed section holds `synchronize_srcu` on
/// another thread, and the value retired after it loaded it stays alive; once it leaves,
/// the grace period completes and `srcu_barrier` frees the value.
fn a_borrowed_reader_blocked_in_its_section_holds_synchronize_and_its_value<F: SrcuFlavor>() {
    let srcu = srcu_named::<F>("blocked");
    let (canary, dropped) = Canary::new(42);
    let published = Arc::new(Published::new(canary));
    let (reader, loaded) =
        BlockedReader::spawn("srcu-blocked", srcu.clone(), published.clone(), |_| {});
    assert_eq!(loaded, 42);

    let ctx = Sleepable::enter();
    // SAFETY: (1) retired with kvfree_srcu of the readers' domain.
    let old = unsafe { published.swap(Canary::new(7).0) };
    srcu.kvfree_srcu(&ctx, old);
    let mut writer = synchronize_elsewhere(&srcu);
    assert_holds_for(
        HOLD,
        "synchronize_srcu returned or the value was freed under a reader",
        || !writer.is_done() && !dropped.load(Ordering::SeqCst),
    );

    assert_eq!(reader.release(), 42, "the reader saw its value poisoned inside its section");
    writer.join("synchronize_srcu after the blocked reader left");
    srcu.srcu_barrier(&ctx);
    assert!(dropped.load(Ordering::SeqCst), "the retired value was not freed by srcu_barrier");
}

/// An owned guard made on the test thread and moved to another one holds grace periods
/// until that thread drops it; the value loaded through it stays alive meanwhile.
fn an_owned_guard_moved_to_another_thread_holds_until_dropped_there<F: SrcuFlavor>() {
    let srcu = srcu_named::<F>("owned-moved");
    let (canary, dropped) = Canary::new(42);
    let published = Published::new(canary);
    let ctx = Sleepable::enter();
    let guard = srcu.down_read(&ctx);
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let published = &published;
    std::thread::scope(|s| {
        let holder = s.spawn(move || {
            // The guard moved here: the section began on the test thread, ends on this one.
            let value = published.load(&guard);
            loaded_tx.send(value.value()).unwrap();
            let _ = released.recv();
            let seen = value.value();
            drop(guard);
            seen
        });
        assert_eq!(loaded_rx.recv_timeout(PATIENCE).expect("the holder loaded"), 42);
        // SAFETY: (1) retired with kvfree_srcu of the readers' domain.
        let old = unsafe { published.swap(Canary::new(7).0) };
        srcu.kvfree_srcu(&ctx, old);
        let mut writer = synchronize_elsewhere(&srcu);
        assert_holds_for(HOLD, "a grace period ignored an owned guard on another thread", || {
            !writer.is_done() && !dropped.load(Ordering::SeqCst)
        });
        drop(release);
        assert_eq!(holder.join().unwrap(), 42, "the holder saw its value poisoned");
        writer.join("synchronize_srcu after the owned guard was dropped on another thread");
    });
    srcu.srcu_barrier(&ctx);
    assert!(dropped.load(Ordering::SeqCst), "the retired value was not freed by srcu_barrier");
}

rcu_core::section_brand!(HeldDomain);

/// A reader blocked inside domain A holds A's grace periods only: another sleepable domain's
/// (normal, expedited, polled, barrier), the global domain's and a classic private domain's
/// all complete while it is inside, from other threads and from inside A's section itself
/// (A is branded, so its section's token may wait for the unbranded B).
fn a_blocked_reader_holds_only_its_own_domain<F: SrcuFlavor>() {
    let a: Arc<SrcuStruct<F, HeldDomain>> =
        Arc::new(SrcuStruct::new(DomainConfig::new().name(format!("held-{}", F::NAME))));
    let b = srcu_named::<F>("free");
    let classic = Arc::new(Domain::new(DomainConfig::new().name("classic-beside-srcu")));
    let published = Arc::new(Published::new(Canary::new(1).0));
    let (reader, _) = BlockedReader::spawn("srcu-held", a.clone(), published, {
        let (b, classic) = (b.clone(), classic.clone());
        move |inside| {
            b.synchronize_srcu(inside);
            b.synchronize_srcu_expedited(inside);
            synchronize_rcu(inside);
            classic.synchronize_rcu(inside);
        }
    });
    let a_cookie = a.get_state_synchronize_srcu();
    let mut a_writer = Pending::spawn("held-writer", {
        let a = a.clone();
        move || a.synchronize_srcu(&Sleepable::enter())
    });

    let others = Pending::spawn("free-writer", {
        let (b, classic) = (b.clone(), classic.clone());
        move || {
            let ctx = Sleepable::enter();
            b.synchronize_srcu(&ctx);
            b.synchronize_srcu_expedited(&ctx);
            let cookie = b.start_poll_synchronize_srcu(&ctx);
            b.cond_synchronize_srcu(&ctx, cookie);
            assert!(b.poll_state_synchronize_srcu(cookie));
            b.kvfree_srcu(&ctx, Rcu::boxed(Canary::new(2).0));
            b.srcu_barrier(&ctx);
            synchronize_rcu(&ctx);
            synchronize_rcu_expedited(&ctx);
            classic.synchronize_rcu(&ctx);
            classic.synchronize_rcu_expedited(&ctx);
            classic.kvfree_rcu(&ctx, Rcu::boxed(Canary::new(3).0));
            classic.rcu_barrier(&ctx);
        }
    });
    others.join("other domains' grace periods while a reader of A is inside");
    let ctx = Sleepable::enter();
    let b_cookie = b.start_poll_synchronize_srcu(&ctx);
    assert!(
        wait_until(PATIENCE, || b.poll_state_synchronize_srcu(b_cookie)),
        "B's polled grace period did not complete while A was held"
    );
    assert!(!a_writer.is_done(), "A's grace period ended while its reader was inside");
    assert!(!a.poll_state_synchronize_srcu(a_cookie), "A's cookie completed under its reader");

    reader.release();
    a_writer.join("A's grace period after its reader left");
    assert!(a.poll_state_synchronize_srcu(a_cookie));
}

/// A cookie taken inside a section (the section's token may start a poll) stays incomplete
/// while the section lives, and completes after it ends without anyone waiting for it.
/// An owned guard held meanwhile holds it the same way.
fn a_cookie_taken_inside_a_section_completes_only_after_it<F: SrcuFlavor>() {
    let srcu = srcu_named::<F>("polled");
    let mut ctx = Sleepable::enter();
    let guard = srcu.read_lock(&mut ctx);
    let cookie = srcu.start_poll_synchronize_srcu(guard.ctx());
    assert!(!srcu.poll_state_synchronize_srcu(cookie), "completed inside its own section");
    assert_holds_for(HOLD, "a cookie completed while the section that took it was open", || {
        !srcu.poll_state_synchronize_srcu(cookie)
    });
    drop(guard);
    assert!(
        wait_until(PATIENCE, || srcu.poll_state_synchronize_srcu(cookie)),
        "a started poll never completed after its section ended"
    );

    let owned = srcu.down_read(&ctx);
    let cookie = srcu.start_poll_synchronize_srcu(&ctx);
    let later = srcu.get_state_synchronize_srcu();
    assert_holds_for(HOLD, "a cookie completed while an owned guard was held", || {
        !srcu.poll_state_synchronize_srcu(cookie) && !srcu.poll_state_synchronize_srcu(later)
    });
    owned.up_read();
    assert!(wait_until(PATIENCE, || srcu.poll_state_synchronize_srcu(cookie)));
    srcu.cond_synchronize_srcu(&ctx, later);
    assert!(srcu.poll_state_synchronize_srcu(later));
}

/// Catches the panic of `f`, which must say `expected`; returns its message.
#[track_caller]
fn refused(expected: &'static str, f: impl FnOnce()) -> String {
    match expect_panic_quietly(expected, f) {
        Ok(()) => panic!("not refused (expected a panic saying {expected:?})"),
        Err(payload) => {
            let msg = message(&*payload).to_owned();
            assert!(msg.contains(expected), "the refusal does not say {expected:?}: {msg}");
            msg
        }
    }
}

/// A cookie names a grace period of the domain that issued it: any other domain, sleepable
/// or classic, refuses it with the rule.
fn a_cookie_of_one_domain_panics_in_another<F: SrcuFlavor>() {
    const RULE: &str = "one cookie, one domain";
    let a = srcu_named::<F>("cookie-a");
    let b = srcu_named::<F>("cookie-b");
    let classic = Domain::new(DomainConfig::new().name("cookie-classic"));
    let ctx = Sleepable::enter();
    let cookie = a.start_poll_synchronize_srcu(&ctx);
    refused(RULE, || {
        b.poll_state_synchronize_srcu(cookie);
    });
    refused(RULE, || b.cond_synchronize_srcu(&ctx, cookie));
    refused(RULE, || drop(b.cond_synchronize_srcu_async(cookie)));
    refused(RULE, || {
        classic.poll(cookie);
    });
    let classic_cookie = classic.get_state();
    refused(RULE, || {
        a.poll_state_synchronize_srcu(classic_cookie);
    });
    // Its own domain takes it.
    a.cond_synchronize_srcu(&ctx, cookie);
    assert!(a.poll_state_synchronize_srcu(cookie));
}

/// Records a callback's run: `run_job`'s object.
struct Job {
    tracked: Tracked,
    runs: &'static [AtomicU32],
}

fn run_job(job: Box<Rcu<Job>>, _ctx: &Atomic<'_>) {
    // SeqCst: read by the test after srcu_barrier.
    job.runs[job.tracked.id()].fetch_add(1, Ordering::SeqCst);
    drop(job); // its `Tracked` records the drop
}

/// Inside a borrowed section of a domain, a second root `Sleepable` may be taken (a
/// sleepable section changes no thread state), but every call with it that could wait for
/// the domain's grace periods panics naming the rule, and the value it was given is leaked,
/// never dropped; the section's own token frees without waiting (as `NoReclaim`), after the
/// section.
fn a_second_root_inside_a_section_may_not_wait_for_the_domain<F: SrcuFlavor>() {
    const RULE: &str = "inside one of its read sections";
    let srcu: Arc<SrcuStruct<F>> = Arc::new(SrcuStruct::new(
        DomainConfig::new()
            .name(format!("second-root-{}", F::NAME))
            .alloc(AllocConfig::new().small_blocks()),
    ));
    // No block can be had: every free falls back, counted under the policy it ran with.
    srcu.inject_faults(Policy::Reclaim, FaultConfig::every_nth(1));
    srcu.inject_faults(Policy::NoReclaim, FaultConfig::every_nth(1));
    let mut ctx = Sleepable::enter();
    srcu.register_current_thread(&ctx);
    let log = DropLog::new(16);
    let runs: &'static [AtomicU32] = Box::leak((0..16).map(|_| AtomicU32::new(0)).collect());
    let before = srcu.alloc_stats();

    let guard = srcu.read_lock(&mut ctx);
    let second = Sleepable::enter();
    let cookie = srcu.get_state_synchronize_srcu();
    let mut refused_ids = Vec::new();
    let msg = refused(RULE, || srcu.synchronize_srcu(&second));
    assert!(msg.contains("rule:") && msg.contains("synchronize_srcu"), "{msg}");
    refused(RULE, || srcu.synchronize_srcu_expedited(&second));
    refused(RULE, || srcu.srcu_barrier(&second));
    refused(RULE, || srcu.cond_synchronize_srcu(&second, cookie));
    let obj = log.track();
    refused_ids.push(obj.id());
    refused(RULE, || srcu.kvfree_srcu(&second, Rcu::boxed(obj)));
    let job = Job { tracked: log.track(), runs };
    refused_ids.push(job.tracked.id());
    refused(RULE, || srcu.call_srcu(&second, Rcu::boxed(job), run_job));
    let obj = log.track();
    refused_ids.push(obj.id());
    refused(RULE, || srcu.call_srcu_fn(&second, move |_: &Atomic<'_>| drop(obj)));
    let obj = log.track();
    refused_ids.push(obj.id());
    refused(RULE, || srcu.kvfree_srcu_mightsleep(&second, Box::new(obj)));
    refused("polled inside a read section", || {
        rcu_tests::wakers::block_on(srcu.synchronize_srcu_async());
    });

    // The section's token frees without waiting for the section: demoted to NoReclaim.
    let freed_inside = log.track();
    let freed_id = freed_inside.id();
    srcu.kvfree_srcu(guard.ctx(), Rcu::boxed(freed_inside));
    let after = srcu.alloc_stats();
    assert_eq!(
        after.fallbacks_total(Policy::NoReclaim) - before.fallbacks_total(Policy::NoReclaim),
        1,
        "the section's token did not free as NoReclaim: {after:?}"
    );
    assert_eq!(
        after.fallbacks_total(Policy::Reclaim),
        before.fallbacks_total(Policy::Reclaim),
        "a refused call or the section's token queued as Reclaim: {after:?}"
    );
    assert_holds_for(HOLD, "freed under the section that retired it", || !log.is_freed(freed_id));
    // A barrier future cannot be ready before that value is freed: polled here, it panics.
    refused("polled inside a read section", || {
        rcu_tests::wakers::block_on(srcu.srcu_barrier_async());
    });
    drop(second);
    drop(guard);

    // Outside the section the root may wait again.
    srcu.synchronize_srcu(&ctx);
    srcu.srcu_barrier(&ctx);
    assert!(log.is_freed(freed_id), "the value freed with the section's token was never freed");
    for id in refused_ids {
        assert!(!log.is_freed(id), "object {id} of a refused call was dropped, not leaked");
    }
    assert!(runs.iter().all(|r| r.load(Ordering::SeqCst) == 0), "a refused callback ran");
    log.assert_no_double_free();
}

/// The first section a thread begins in a domain registers it, which allocates: from an
/// `Atomic` scope it panics naming the rule (both guards). Registered beforehand, the thread
/// may begin sections from an `Atomic` scope.
fn the_first_section_from_an_atomic_scope_needs_a_registered_thread<F: SrcuFlavor>() {
    const RULE: &str = "registering allocates";
    let srcu = srcu_named::<F>("atomic-first");
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut ctx = Sleepable::enter();
            {
                let mut spin = ctx.atomic();
                let msg = refused(RULE, || drop(srcu.read_lock(&mut spin)));
                assert!(msg.contains("read_lock") && msg.contains("rule:"), "{msg}");
                let msg = refused(RULE, || drop(srcu.down_read(&spin)));
                assert!(msg.contains("down_read"), "{msg}");
            }
            srcu.register_current_thread(&ctx);
            {
                let mut spin = ctx.atomic();
                let guard = srcu.read_lock(&mut spin);
                let owned = srcu.down_read(guard.ctx());
                srcu.kvfree_srcu(guard.ctx(), Rcu::boxed(Canary::new(1).0));
                drop(owned);
                drop(guard);
            }
            srcu.synchronize_srcu(&ctx);
            srcu.srcu_barrier(&ctx);
        })
        .join()
        .unwrap();
    });
}

/// Queues deferred calls of every kind, with every token and section token there is.
struct Retirer<'a, F: SrcuFlavor> {
    srcu: &'a SrcuStruct<F>,
    log: &'static DropLog,
    /// Runs of each object's callback, by id.
    runs: &'static [AtomicU32],
    /// Ids of the objects whose callback must run (the others are only freed).
    callbacks: RefCell<Vec<usize>>,
}

impl<F: SrcuFlavor> Retirer<'_, F> {
    /// `kvfree_srcu` and `call_srcu`: any token.
    fn headed<C: SectionState<Unbranded>>(&self, ctx: &C) {
        self.srcu.kvfree_srcu(ctx, Rcu::boxed(self.log.track()));
        let job = Job { tracked: self.log.track(), runs: self.runs };
        self.callbacks.borrow_mut().push(job.tracked.id());
        self.srcu.call_srcu(ctx, Rcu::boxed(job), run_job);
    }

    /// `call_srcu_fn`: tokens that may allocate.
    fn closure<C: MayAlloc + SectionState<Unbranded>>(&self, ctx: &C) {
        let tracked = self.log.track();
        let runs = self.runs;
        self.callbacks.borrow_mut().push(tracked.id());
        self.srcu.call_srcu_fn(ctx, move |_: &Atomic<'_>| {
            // SeqCst: read by the test after srcu_barrier.
            runs[tracked.id()].fetch_add(1, Ordering::SeqCst);
            drop(tracked);
        });
    }

    /// One of each call with each token: the root, its `NoReclaim` and `Atomic` scopes, and
    /// the tokens of sections entered from each of them.
    fn every_token(&self, ctx: &mut Sleepable) {
        self.headed(ctx);
        self.closure(ctx);
        {
            let nr = ctx.no_reclaim();
            self.headed(&nr);
            self.closure(&nr);
        }
        {
            let spin = ctx.atomic();
            self.headed(&spin);
        }
        {
            let guard = self.srcu.read_lock(ctx);
            self.headed(guard.ctx());
            self.closure(guard.ctx());
        }
        {
            let mut nr = ctx.no_reclaim();
            let guard = self.srcu.read_lock(&mut nr);
            self.headed(guard.ctx());
            self.closure(guard.ctx());
        }
        {
            let mut spin = ctx.atomic();
            let guard = self.srcu.read_lock(&mut spin);
            self.headed(guard.ctx());
        }
    }

    /// Nothing queued so far has run or been freed.
    fn none_ran(&self) -> bool {
        self.log.freed() == 0 && self.runs.iter().all(|r| r.load(Ordering::SeqCst) == 0)
    }

    /// Every object was freed exactly once, and every callback ran exactly once.
    fn check_all_ran_once(&self) {
        self.log.assert_all_freed_once();
        let callbacks = self.callbacks.borrow();
        for id in 0..self.log.allocated() {
            let expected = u32::from(callbacks.contains(&id));
            let ran = self.runs[id].load(Ordering::SeqCst);
            assert_eq!(ran, expected, "object {id}: its callback ran {ran} times");
        }
    }
}

/// Every deferred call, with every token, queued while a reader is blocked inside: none
/// runs before the reader leaves; after `srcu_barrier` each has run exactly once.
fn deferred_calls<F: SrcuFlavor>(
    srcu: &SrcuStruct<F>,
    start_reader: impl FnOnce() -> BlockedReader,
) {
    const ROUNDS: usize = 8;
    const CAPACITY: usize = 16 * ROUNDS;
    let retirer = Retirer {
        srcu,
        log: DropLog::new(CAPACITY),
        runs: Box::leak((0..CAPACITY).map(|_| AtomicU32::new(0)).collect()),
        callbacks: RefCell::new(Vec::new()),
    };
    let reader = start_reader();
    let mut ctx = Sleepable::enter();
    for _ in 0..ROUNDS {
        retirer.every_token(&mut ctx);
    }
    assert!(retirer.log.allocated() > 0);
    assert_holds_for(HOLD, "a deferred call ran while an older reader was inside", || {
        retirer.none_ran()
    });
    reader.release();
    srcu.srcu_barrier(&ctx);
    retirer.check_all_ran_once();
    let stats = srcu.stats();
    assert_eq!(stats.callbacks_pending, 0, "{stats:?}");
    assert_eq!(stats.callback_panics, 0, "{stats:?}");
}

fn deferred_calls_run_once_after_the_readers_under_every_token<F: SrcuFlavor>() {
    let srcu = srcu_named::<F>("deferred");
    let published = Arc::new(Published::new(Canary::new(1).0));
    deferred_calls(&*srcu, || {
        BlockedReader::spawn("srcu-deferred", srcu.clone(), published, |_| {}).0
    });
}

/// As above, with every block request of every policy failing (fault injection, small
/// blocks): every item takes the fallback path of the policy it was queued under.
fn deferred_calls_run_once_under_every_token_with_every_block_request_failing<F: SrcuFlavor>() {
    let srcu: Arc<SrcuStruct<F>> = Arc::new(SrcuStruct::new(
        DomainConfig::new()
            .name(format!("deferred-faults-{}", F::NAME))
            .alloc(AllocConfig::new().small_blocks()),
    ));
    for policy in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait] {
        srcu.inject_faults(policy, FaultConfig::every_nth(1));
    }
    srcu.register_current_thread(&Sleepable::enter());
    let before = srcu.alloc_stats();
    let published = Arc::new(Published::new(Canary::new(1).0));
    deferred_calls(&*srcu, || {
        BlockedReader::spawn("srcu-faults", srcu.clone(), published, |_| {}).0
    });
    let after = srcu.alloc_stats();
    for policy in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait] {
        assert!(
            after.fallbacks_total(policy) > before.fallbacks_total(policy),
            "no {policy:?} fallback with every block request failing: {after:?}"
        );
    }
    assert!(after.alloc_failures_injected > before.alloc_failures_injected, "{after:?}");
}

/// An owned guard kept past the stall timeout is reported as a sleepable-section stall of
/// the thread that made it (where its section is counted), wherever the guard is now; once
/// dropped, the grace period completes.
fn a_held_owned_guard_is_reported_as_a_stall_of_the_thread_that_made_it<F: SrcuFlavor>() {
    const TIMEOUT: Duration = Duration::from_millis(50);
    let srcu = srcu_named::<F>("owned-stall");
    let reports = record_stalls(&*srcu, TIMEOUT);
    let (guard_tx, guard_rx) = mpsc::channel();
    let (done, finish) = mpsc::channel::<()>();
    let srcu_ref = &*srcu;
    std::thread::scope(|s| {
        let maker = std::thread::Builder::new()
            .name("srcu-maker".into())
            .spawn_scoped(s, move || {
                let ctx = Sleepable::enter();
                guard_tx.send((srcu_ref.down_read(&ctx), gettid())).unwrap();
                // Stays alive (and so keeps its slot and name) until the test is done.
                let _ = finish.recv();
            })
            .unwrap();
        let (guard, maker_tid) = guard_rx.recv_timeout(PATIENCE).expect("the maker's guard");
        let mut writer = synchronize_elsewhere(&srcu);
        let ours = |r: &rcu_core::StallReport| r.tid == maker_tid;
        assert!(
            wait_until(PATIENCE, || find_stall(&reports, ours).is_some()),
            "no stall report named the thread that made the held guard: {:?}",
            reports.with(|r| r.clone())
        );
        let report = find_stall(&reports, ours).unwrap();
        assert_eq!(report.cause, StallCause::SleepableSection, "{report:?}");
        assert_eq!(report.thread_name.as_deref(), Some("srcu-maker"), "{report:?}");
        assert_eq!(report.domain, srcu.name(), "{report:?}");
        assert!(report.blocked_for >= TIMEOUT, "{report:?}");
        assert!(!report.leaked_guard, "{report:?}");
        let line = report.to_string();
        assert!(line.contains("srcu-maker") && line.contains(srcu.name()), "{line}");
        assert!(!writer.is_done(), "the grace period ended while the owned guard was held");
        assert!(srcu.stats().stalls >= 1);

        drop(guard);
        writer.join("synchronize_srcu after the stalled owned guard was dropped");
        drop(done);
        maker.join().unwrap();
    });
}

/// Sections nest inside a sleepable section: a nested section of the same domain (through
/// the guard's token), a classic section inside that; a classic grace period waited for
/// inside the sleepable section completes. The domain's grace period waits for the
/// outermost section.
fn sections_nest_inside_a_sleepable_section<F: SrcuFlavor>() {
    let srcu = srcu_named::<F>("nested");
    let (canary, dropped) = Canary::new(9);
    let cell = Arc::new(RcuCell::new(5u64));
    let (step_tx, step_rx) = mpsc::channel::<&'static str>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader = std::thread::Builder::new()
        .name("srcu-nesting".into())
        .spawn({
            let (srcu, cell) = (srcu.clone(), cell.clone());
            move || {
                let mut ctx = Sleepable::enter();
                let mut outer = srcu.read_lock(&mut ctx);
                // The global domain's grace periods do not wait for a sleepable section.
                synchronize_rcu(outer.ctx());
                synchronize_rcu_expedited(outer.ctx());
                {
                    let mut inner = srcu.read_lock(outer.ctx_mut());
                    {
                        let classic = read_lock(inner.ctx_mut());
                        assert_eq!(*cell.load(&classic), 5);
                        // Retired inside all three: freed once the outermost has ended.
                        srcu.kvfree_srcu(classic.ctx(), Rcu::boxed(canary));
                    }
                    step_tx.send("nested").unwrap();
                    go_rx.recv().unwrap();
                    drop(inner);
                }
                step_tx.send("inner dropped").unwrap();
                go_rx.recv().unwrap();
                drop(outer);
            }
        })
        .unwrap();
    assert_eq!(step_rx.recv_timeout(PATIENCE), Ok("nested"), "the nested sections");
    let mut writer = synchronize_elsewhere(&srcu);
    assert_holds_for(HOLD, "a grace period ended under nested sections", || {
        !writer.is_done() && !dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).unwrap();
    assert_eq!(step_rx.recv_timeout(PATIENCE), Ok("inner dropped"));
    assert_holds_for(HOLD, "a grace period ended once the inner section ended", || {
        !writer.is_done() && !dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).unwrap();
    reader.join().unwrap();
    writer.join("synchronize_srcu after the outermost section ended");
    srcu.srcu_barrier(&Sleepable::enter());
    assert!(dropped.load(Ordering::SeqCst));
}

/// Thousands of sections across `.await`: tasks on a two-worker runtime take an owned guard,
/// load the published value, await one to three times (yielding or sleeping, so they move
/// between workers), then check the value was not freed; a writer task meanwhile replaces
/// the value and retires the old one, and awaits grace periods now and then. The first
/// `PINNED` tasks hold their guard until the writer has retired the value they loaded, so
/// values are retired under live guards whatever the schedule. No task sees its value freed;
/// every retired value is freed once after `srcu_barrier_async`.
///
/// Compiled out under ThreadSanitizer, as `async_grace_periods.rs`'s tokio tests are
/// (tokio's std locks are invisible to it).
#[cfg_attr(rcu_sanitizer = "thread", allow(dead_code))]
fn tasks_holding_owned_guards_across_await_never_see_a_freed_value<F: SrcuFlavor>() {
    const TASKS: usize = 1000;
    const PINNED: usize = 8;
    const WRITES: usize = 300;
    let srcu = srcu_named::<F>("async");
    let log = DropLog::new(WRITES + 1);
    let published = Arc::new(Published::new(log.track()));
    let seen_freed = Arc::new(AtomicUsize::new(0));
    let held_across_retire = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let run = {
        let (srcu, published) = (srcu.clone(), published.clone());
        let (seen_freed, held_across_retire) = (seen_freed.clone(), held_across_retire.clone());
        Pending::spawn("srcu-tokio", move || {
            runtime.block_on(async move {
                // The pinned tasks' loads, and the writer's first retire.
                let loaded = Arc::new(tokio::sync::Semaphore::new(0));
                let (retired_tx, retired_rx) = tokio::sync::watch::channel(false);
                let writer = tokio::spawn({
                    let (srcu, published, loaded) =
                        (srcu.clone(), published.clone(), loaded.clone());
                    async move {
                        let permits = loaded.acquire_many(PINNED as u32).await.expect("open");
                        permits.forget();
                        for i in 0..WRITES {
                            {
                                // A token per call, never across `.await`; NoReclaim never
                                // waits on the executor's thread.
                                let mut root = Sleepable::enter();
                                let nr = root.no_reclaim();
                                // SAFETY: (1) retired with kvfree_srcu of the readers' domain.
                                let old = unsafe { published.swap(log.track()) };
                                srcu.kvfree_srcu(&nr, old);
                            }
                            if i == 0 {
                                retired_tx.send(true).expect("the pinned tasks wait for it");
                            }
                            if i % 50 == 49 {
                                srcu.synchronize_srcu_async().await;
                            } else {
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                });
                let readers: Vec<_> = (0..TASKS)
                    .map(|i| {
                        let (srcu, published, seen_freed, held_across_retire) = (
                            srcu.clone(),
                            published.clone(),
                            seen_freed.clone(),
                            held_across_retire.clone(),
                        );
                        let (loaded, mut retired) = (loaded.clone(), retired_rx.clone());
                        tokio::spawn(async move {
                            let guard = srcu.down_read(&Sleepable::enter());
                            let value = published.load(&guard);
                            let id = value.id();
                            if i < PINNED {
                                loaded.add_permits(1);
                                retired.wait_for(|r| *r).await.expect("the writer retires");
                            }
                            for _ in 0..1 + i % 3 {
                                if i % 2 == 0 {
                                    tokio::task::yield_now().await;
                                } else {
                                    tokio::time::sleep(Duration::from_millis(1)).await;
                                }
                            }
                            let now = published.load(&guard).id();
                            if now != id {
                                held_across_retire.fetch_add(1, Ordering::SeqCst);
                            }
                            if log.is_freed(id) {
                                seen_freed.fetch_add(1, Ordering::SeqCst);
                            } else {
                                assert_eq!(value.id(), id, "the value changed under its guard");
                            }
                            drop(guard);
                        })
                    })
                    .collect();
                for r in readers {
                    r.await.expect("a reader task failed (see its panic above)");
                }
                writer.await.expect("the writer task failed (see its panic above)");
                srcu.srcu_barrier_async().await;
                assert_eq!(log.freed(), WRITES, "srcu_barrier_async left retired values");
            });
        })
    };
    run.join("the tokio tasks (a future never woken, or a section never ended)");
    assert_eq!(seen_freed.load(Ordering::SeqCst), 0, "tasks saw their value freed");
    let held = held_across_retire.load(Ordering::SeqCst);
    assert!(held >= PINNED, "only {held} tasks held a value while it was retired");
    drop(published);
    log.assert_all_freed_once();
}
