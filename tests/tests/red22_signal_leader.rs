//! Red team, issue 22: "every internal wait asserts where it stands". A signal handler that
//! interrupts a thread while it *leads a grace period* (inside `synchronize_rcu`, waiting
//! for a reader) and then calls `synchronize_rcu` itself, through a root kept in a
//! thread-local (the smuggled-root case the every-build checks are there for), can only
//! deadlock: its wait needs the leader role, which the interrupted frame holds until the
//! handler returns. The runtime refuses the analogous `rcu_barrier` from a handler that
//! interrupted a staging bracket (`assert_outside_own_bracket`); nothing refuses this one.
//! `enforce::may_sleep` sees no scope (leading is none), `assert_outside_section` and
//! `caller_in_section` see no read section; the handler waits for the leader for ever, so the
//! interrupted `synchronize_rcu` never returns, and neither does any other caller's: the
//! domain is wedged even after the reader leaves.
//!
//! Now the wait panics, naming the rule. Unsafe code only for the signal set-up (sigaction,
//! pthread_kill). Not under ThreadSanitizer: the handler's panic allocates, which it reports
//! as a signal-unsafe call (as `signals_bracket.rs`).
#![cfg(not(loom))]
#![cfg(not(rcu_sanitizer = "thread"))]

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::DomainConfig;

static DOMAIN: OnceLock<Arc<Domain>> = OnceLock::new();
/// 1: the handler ran and is about to wait; 2: its synchronize_rcu returned; 3: it panicked.
static HANDLER: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// A root leaked at the top of the thread: the token a handler can reach.
    static ROOT: Cell<Option<&'static Sleepable>> = const { Cell::new(None) };
}

extern "C" fn on_sigusr1(_signo: libc::c_int) {
    let Some(root) = ROOT.with(Cell::get) else { return };
    let Some(domain) = DOMAIN.get() else { return };
    HANDLER.store(1, Ordering::SeqCst);
    // A panic must not unwind out of the handler: catch it (a refusal is the right answer).
    let refused =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| domain.synchronize_rcu(root)))
            .is_err();
    HANDLER.store(if refused { 3 } else { 2 }, Ordering::SeqCst);
}

#[test]
fn synchronize_rcu_from_a_handler_that_interrupted_the_leader_deadlocks() {
    rcu_tests::install_signal_handler(libc::SIGUSR1, on_sigusr1);
    let domain = Arc::new(Domain::new(DomainConfig::new().name("sig-leader")));
    DOMAIN.set(domain.clone()).unwrap();

    // A reader holds the grace period until told to leave.
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (leave_tx, leave) = mpsc::channel::<()>();
    let reader = {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            leave.recv().unwrap();
            drop(guard);
        })
    };
    entered.recv().unwrap();

    // The leader: synchronize_rcu waits for the reader (it leads: nobody else waits).
    let (done_tx, done) = mpsc::channel::<()>();
    let leader = {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let root: &'static Sleepable = Box::leak(Box::new(Sleepable::enter()));
            ROOT.with(|r| r.set(Some(root)));
            domain.register_current_thread(root);
            domain.synchronize_rcu(root);
            done_tx.send(()).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(300)); // it is leading, waiting for the reader
    assert!(done.try_recv().is_err(), "the grace period ended with the reader inside");
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: a live thread of this process, a valid signal with a handler installed.
    assert_eq!(unsafe { libc::pthread_kill(leader.as_pthread_t(), libc::SIGUSR1) }, 0);
    while HANDLER.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    leave_tx.send(()).unwrap(); // the reader leaves: the grace period could end now
    reader.join().unwrap();

    // Another thread's synchronize_rcu on the domain.
    let (other_tx, other) = mpsc::channel::<()>();
    {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let ctx = Sleepable::enter();
            domain.synchronize_rcu(&ctx);
            other_tx.send(()).unwrap();
        });
    }
    let leader_done = done.recv_timeout(Duration::from_secs(60)).is_ok();
    let other_done = other.recv_timeout(Duration::from_secs(60)).is_ok();
    let handler = HANDLER.load(Ordering::SeqCst);
    eprintln!(
        "red22: handler state {handler} (1 waiting, 2 returned, 3 refused); interrupted \
         synchronize_rcu returned: {leader_done}; another thread's synchronize_rcu returned: \
         {other_done}"
    );
    assert!(
        leader_done && other_done,
        "deadlock: a handler's synchronize_rcu waits for the grace period its own interrupted \
         frame leads (handler state {handler}); the domain is wedged"
    );
}
