//! The async grace periods under tokio: thousands of tasks await grace periods, barriers and
//! polled cookies on a two-thread runtime while reader threads run; every future completes
//! and its guarantee held; no poll ever waits for a grace period (a single-threaded runtime
//! whose only thread must release the reader proves it: a blocking poll would hang it); a
//! poll inside a read section of the same domain panics instead of never completing.
//!
//! Nothing here sleeps to synchronize: readers acknowledge through atomics and channels, and
//! the only time bound is a watchdog on a test that would otherwise hang.
//!
//! Under ThreadSanitizer the two tokio tests are compiled out: tokio's internal locks are
//! std `Mutex`es, which the uninstrumented std hides from TSan, so it reports races inside
//! tokio's blocking pool that are not there. `many_threads_await_with_a_parking_executor`
//! runs the same futures on plain threads (a park/unpark executor) for TSan to check.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use common::Pending;
use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::wakers::block_on;

/// A test that has not finished after this long is hung (the watchdog fails it).
const WATCHDOG: Duration = Duration::from_secs(120);

/// Polls the inner future inside an atomic scope: a runtime call that may block (any
/// `synchronize_rcu`, `rcu_barrier`, `Sleepable::enter`, ...) made by the poll would panic
/// in every build (`rcu_ctx::enforce`) and fail the task.
struct NoBlock<F>(F);

impl<F: Future + Unpin> Future for NoBlock<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: (1) `_atomic` is dropped before `poll` returns and is not leaked; (2) the
        // inner poll opens no scope that outlives it.
        let _atomic = unsafe { Atomic::assume() };
        Pin::new(&mut self.0).poll(cx)
    }
}

/// One reader thread's progress: the number of the section it is in (`entered`, stored
/// just after the section began) and of the last section it finished (`ended`, stored just
/// before the section ends, so a grace period that waited for the section also sees it).
#[derive(Default)]
struct ReaderProgress {
    entered: AtomicU64,
    ended: AtomicU64,
}

/// Object retired before a barrier: its drop marks its flag.
struct Tracked {
    index: usize,
    dropped: Arc<Vec<AtomicBool>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped[self.index].store(true, Ordering::SeqCst);
    }
}

#[cfg(not(rcu_sanitizer = "thread"))]
#[test]
fn thousands_of_tasks_await_grace_periods_barriers_and_cookies_while_readers_run() {
    const TASKS: usize = 3000;
    const READERS: usize = 2;
    let domain = Arc::new(Domain::new(DomainConfig::new().name("async-tasks")));
    let progress: Arc<Vec<ReaderProgress>> =
        Arc::new((0..READERS).map(|_| ReaderProgress::default()).collect());
    let stop = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (domain, progress, stop) = (domain.clone(), progress.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut ctx = Sleepable::enter();
                let me = &progress[r];
                let mut section = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    section += 1;
                    let guard = domain.read_lock(&mut ctx);
                    me.entered.store(section, Ordering::SeqCst);
                    for _ in 0..(section % 97) * 20 {
                        std::hint::spin_loop(); // sections of varying length
                    }
                    me.ended.store(section, Ordering::SeqCst);
                    drop(guard);
                }
            })
        })
        .collect();

    let dropped: Arc<Vec<AtomicBool>> =
        Arc::new((0..TASKS).map(|_| AtomicBool::new(false)).collect());
    let completed = Arc::new(AtomicUsize::new(0));
    let run = {
        let (domain, progress, dropped, completed) =
            (domain.clone(), progress.clone(), dropped.clone(), completed.clone());
        Pending::spawn("tokio-driver", move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| {
                        let (domain, progress, dropped, completed) =
                            (domain.clone(), progress.clone(), dropped.clone(), completed.clone());
                        tokio::spawn(async move {
                            task(i, &domain, &progress, &dropped).await;
                            completed.fetch_add(1, Ordering::SeqCst);
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("a task failed (see its panic above)");
                }
            });
        })
    };
    let finished = {
        let mut run = run;
        let done = run.wait_timeout(WATCHDOG);
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(
            done,
            "the tokio tasks did not finish within {WATCHDOG:?}: a future was never woken"
        );
        run.join("tokio driver");
        completed.load(Ordering::SeqCst)
    };
    assert_eq!(finished, TASKS, "every future completed");
    let stats = domain.stats();
    assert!(stats.gp_completed > 1, "grace periods ran: {stats:?}");
}

/// One task: a grace period, a barrier or a polled cookie, each with its guarantee checked.
async fn task(
    i: usize,
    domain: &Domain,
    progress: &[ReaderProgress],
    dropped: &Arc<Vec<AtomicBool>>,
) {
    match i % 3 {
        0 => {
            // A section in progress now began before the call: it must have ended first.
            let before: Vec<u64> =
                progress.iter().map(|p| p.entered.load(Ordering::SeqCst)).collect();
            NoBlock(domain.synchronize_rcu_async()).await;
            for (p, k) in progress.iter().zip(before) {
                let ended = p.ended.load(Ordering::SeqCst);
                assert!(ended >= k, "task {i}: section {k} began before synchronize_rcu_async but had not ended when it completed (last ended {ended})");
            }
        }
        1 => {
            {
                // The async row of the decision table: a token per call, never held across
                // `.await`; NoReclaim never waits for reclaim on the executor's thread.
                let mut root = Sleepable::enter();
                let ctx = root.no_reclaim();
                let obj = Rcu::boxed(Tracked { index: i, dropped: Arc::clone(dropped) });
                domain.kvfree_rcu(&ctx, obj);
            }
            NoBlock(domain.rcu_barrier_async()).await;
            assert!(
                dropped[i].load(Ordering::SeqCst),
                "task {i}: retired before rcu_barrier_async, not freed when it completed"
            );
        }
        _ => {
            let before: Vec<u64> =
                progress.iter().map(|p| p.entered.load(Ordering::SeqCst)).collect();
            let cookie = domain.get_state(); // does not start a grace period by itself
            if i % 2 == 0 {
                tokio::task::yield_now().await; // other tasks run meanwhile
            }
            NoBlock(domain.cond_synchronize_async(cookie)).await;
            assert!(domain.poll(cookie), "task {i}: cookie not complete after its future");
            for (p, k) in progress.iter().zip(before) {
                assert!(
                    p.ended.load(Ordering::SeqCst) >= k,
                    "task {i}: section {k} outlived the cookie's grace period"
                );
            }
        }
    }
}

#[cfg(not(rcu_sanitizer = "thread"))]
#[test]
fn a_poll_never_waits_single_threaded_runtime_releases_the_reader_itself() {
    const TASKS: usize = 1500;
    let domain = Arc::new(Domain::new(DomainConfig::new().name("async-single")));
    // A reader holds a section that began before every future below; only the runtime's one
    // thread releases it. A poll that waited for the grace period would never let it.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reader = {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            drop(guard);
        })
    };
    entered_rx.recv().unwrap();

    let dropped: Arc<Vec<AtomicBool>> =
        Arc::new((0..TASKS).map(|_| AtomicBool::new(false)).collect());
    let (started, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let run = {
        let (domain, dropped, started, done) =
            (domain.clone(), dropped.clone(), started.clone(), done.clone());
        Pending::spawn("tokio-single", move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async move {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| {
                        let (domain, dropped, started, done) =
                            (domain.clone(), dropped.clone(), started.clone(), done.clone());
                        tokio::spawn(async move {
                            match i % 3 {
                                0 => {
                                    let fut = domain.synchronize_rcu_async();
                                    started.fetch_add(1, Ordering::SeqCst);
                                    NoBlock(fut).await;
                                }
                                1 => {
                                    {
                                        let mut root = Sleepable::enter();
                                        let ctx = root.no_reclaim();
                                        let obj = Rcu::boxed(Tracked {
                                            index: i,
                                            dropped: dropped.clone(),
                                        });
                                        domain.kvfree_rcu(&ctx, obj);
                                    }
                                    let fut = domain.rcu_barrier_async();
                                    started.fetch_add(1, Ordering::SeqCst);
                                    NoBlock(fut).await;
                                    assert!(dropped[i].load(Ordering::SeqCst));
                                }
                                _ => {
                                    let fut = domain.cond_synchronize_async(domain.get_state());
                                    started.fetch_add(1, Ordering::SeqCst);
                                    NoBlock(fut).await;
                                }
                            }
                            done.fetch_add(1, Ordering::SeqCst);
                        })
                    })
                    .collect();
                // Let every task reach its first poll (it returns Pending: the reader holds
                // the grace period), then check that none completed.
                while started.load(Ordering::SeqCst) < TASKS {
                    tokio::task::yield_now().await;
                }
                tokio::task::yield_now().await;
                assert_eq!(
                    done.load(Ordering::SeqCst),
                    0,
                    "a future completed while a reader that began before it was still inside"
                );
                release_tx.send(()).unwrap();
                for t in tasks {
                    t.await.expect("a task failed (see its panic above)");
                }
            });
        })
    };
    let mut run = run;
    assert!(
        run.wait_timeout(WATCHDOG),
        "the single-threaded runtime hung: a poll blocked its only thread"
    );
    run.join("tokio single-threaded driver");
    reader.join().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), TASKS);
    assert!(dropped.iter().enumerate().all(|(i, d)| i % 3 != 1 || d.load(Ordering::SeqCst)));
}

#[test]
fn many_threads_await_with_a_parking_executor() {
    const THREADS: usize = 6;
    const ROUNDS: usize = 150;
    let domain = Domain::new(DomainConfig::new().name("async-park"));
    let progress = ReaderProgress::default();
    let stop = AtomicBool::new(false);
    let dropped: Arc<Vec<AtomicBool>> =
        Arc::new((0..THREADS * ROUNDS).map(|_| AtomicBool::new(false)).collect());
    std::thread::scope(|s| {
        let (domain, progress, stop) = (&domain, &progress, &stop);
        s.spawn(move || {
            let mut ctx = Sleepable::enter();
            let mut section = 0;
            while !stop.load(Ordering::Relaxed) {
                section += 1;
                let guard = domain.read_lock(&mut ctx);
                progress.entered.store(section, Ordering::SeqCst);
                progress.ended.store(section, Ordering::SeqCst);
                drop(guard);
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let dropped = dropped.clone();
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        let i = t * ROUNDS + round;
                        match round % 3 {
                            0 => {
                                let k = progress.entered.load(Ordering::SeqCst);
                                block_on(domain.synchronize_rcu_async());
                                assert!(progress.ended.load(Ordering::SeqCst) >= k);
                            }
                            1 => {
                                {
                                    let mut root = Sleepable::enter();
                                    let ctx = root.no_reclaim();
                                    let obj =
                                        Rcu::boxed(Tracked { index: i, dropped: dropped.clone() });
                                    domain.kvfree_rcu(&ctx, obj);
                                }
                                block_on(domain.rcu_barrier_async());
                                assert!(dropped[i].load(Ordering::SeqCst));
                            }
                            _ => {
                                let cookie = domain.get_state();
                                block_on(domain.cond_synchronize_async(cookie));
                                assert!(domain.poll(cookie));
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a waiting thread failed");
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// A waker that counts its wakes.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn polling_inside_a_read_section_of_the_domain_panics_instead_of_never_completing() {
    let domain = Domain::new(DomainConfig::new().name("async-in-section"));
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = TaskContext::from_waker(&waker);
    let mut ctx = Sleepable::enter();
    let guard = domain.read_lock(&mut ctx);
    // Made inside the section: its grace period cannot complete before the guard is dropped
    // (made before it, the worker could complete it first, and the poll would be ready).
    let mut fut = domain.synchronize_rcu_async();
    let err = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut fut).poll(&mut cx)))
        .expect_err("polling inside the section must panic");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("polled inside a read section of the same domain"), "{message}");
    drop(guard);
    // Outside the section the same future completes, woken by the worker.
    assert!(common::wait_until(common::PATIENCE, || Pin::new(&mut fut).poll(&mut cx).is_ready()));
}

#[test]
fn a_registered_future_is_woken_by_the_worker_and_a_dropped_one_is_not() {
    let domain = Domain::new(DomainConfig::new().name("async-wake"));
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let kept = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let gone = Arc::new(CountingWaker(AtomicUsize::new(0)));
    std::thread::scope(|s| {
        let domain = &domain;
        s.spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            drop(guard);
        });
        entered_rx.recv().unwrap();
        // Moved in: if an assertion below fails, unwinding drops it and frees the reader.
        let release_tx = release_tx;
        let (kept_waker, gone_waker) = (Waker::from(kept.clone()), Waker::from(gone.clone()));
        let mut fut = domain.synchronize_rcu_async();
        let mut dropped_fut = domain.synchronize_rcu_async();
        // The reader's section began before both: neither can be ready.
        assert!(Pin::new(&mut fut).poll(&mut TaskContext::from_waker(&kept_waker)).is_pending());
        assert!(Pin::new(&mut dropped_fut)
            .poll(&mut TaskContext::from_waker(&gone_waker))
            .is_pending());
        // Polled again with the same waker: still registered, still pending.
        assert!(Pin::new(&mut fut).poll(&mut TaskContext::from_waker(&kept_waker)).is_pending());
        drop(dropped_fut);
        release_tx.send(()).unwrap();
        // Nobody polls now: only the worker can make the count move.
        assert!(
            common::wait_until(common::PATIENCE, || kept.0.load(Ordering::SeqCst) >= 1),
            "the worker never woke the registered future"
        );
        assert!(Pin::new(&mut fut).poll(&mut TaskContext::from_waker(&kept_waker)).is_ready());
    });
    // Both registrations were pushed before the section ended, so the worker handled the
    // dropped one in the same pass that woke the kept one: cancelled, not woken.
    assert_eq!(kept.0.load(Ordering::SeqCst), 1, "one wake for one registration");
    assert_eq!(gone.0.load(Ordering::SeqCst), 0, "a dropped future's waker was woken");
}
