//! Async grace periods: futures for a grace period, a polled cookie and a barrier, woken by
//! the domain's worker (see `wait_async` for the registry and the no-lost-wake-up argument,
//! `runtime::async_wake` for the worker's side).
//!
//! They are executor-agnostic (plain `Future`s: no runtime is named or needed), take no
//! context token and never block a thread:
//! - *creating* one ([`Domain::synchronize_rcu_async`], [`Domain::cond_synchronize_async`],
//!   [`Domain::rcu_barrier_async`]) takes a cookie or a collection generation and asks the
//!   worker for it: lock-free, allocation-free, legal in any context, like `start_poll`
//!   with an `Atomic` token;
//! - *polling* one checks the target (an Acquire load), and if it is not reached registers
//!   the task's waker once (one allocation) and returns `Pending`. It never takes a lock,
//!   sleeps or waits for another thread; the part after the allocation runs in an atomic
//!   scope, so a blocking call of the runtime there would panic (`rcu_ctx::enforce`, every
//!   build).
//!
//! Why no token: a task moves between threads at any `.await`, and a token states what one
//! thread may do, so tokens (and read guards, which hold one) are neither `Send` nor held
//! across `.await` in a `Send` future (that does not compile; see the compile-fail spec).
//! Waiting without blocking needs no capability: the future is suspended, not the thread.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context as TaskContext, Poll};
use std::sync::Arc;

use rcu_ctx::Atomic;

use crate::api::domain::Domain;
use crate::state::wait_async::{Target, Waiter};
use crate::state::{DomainRef, DomainState, GpCookie};

impl DomainState {
    /// Asks the worker to reach `target` and to look at the waiter just pushed. Lock-free,
    /// allocation-free (see `Worker::wake_if_sleeping`).
    fn ask(&self, target: Target) {
        match target {
            Target::GracePeriod(seq) => self.worker.request(seq),
            // The collection was requested when the future was made; the worker has only to
            // take the waiter.
            Target::Generation(_) => self.wake_worker(),
        }
    }
}

/// The shared poll of the futures: `Ready` once `target` is reached, else registers the
/// task's waker (unless `waiter` already holds a live registration with it).
#[track_caller]
fn poll_target(
    domain: &DomainRef,
    target: Target,
    waiter: &mut Option<Arc<Waiter>>,
    cx: &mut TaskContext<'_>,
    call: &'static str,
) -> Poll<()> {
    let state: &DomainState = domain;
    // First the mark, then the target: a node the worker woke had its target reached before
    // the mark (`Waiter::is_woken`), so the check below sees it.
    let spent = waiter.as_ref().map_or(true, |w| w.is_woken());
    if state.reached(target) {
        return finish(waiter);
    }
    if !spent && waiter.as_ref().is_some_and(|w| w.wakes(cx.waker())) {
        return Poll::Pending; // registered, with this waker: the worker will wake it
    }
    // An executor's QSBR worker waits offline: grace periods stop paying membarrier for it.
    state.offline_for_executor();
    assert!(
        !crate::api::reader::in_read_section(state),
        "rcu-core: {call} polled inside a read section of the same domain: the grace period \
         cannot complete while the polling thread's section is open, so the future would \
         never be ready (rule: no grace-period wait inside a read section). A Send future \
         cannot hold a ReadGuard across .await (it does not compile); this is a non-Send \
         future, or an executor driven from inside a section. Fix: drop the guard before the \
         .await"
    );
    // The allocations: the registration, and the worker's thread the first time.
    let node = Waiter::new(target, cx.waker().clone());
    if !state.worker.is_started() {
        crate::runtime::worker_thread::start(domain.clone());
    }
    // From here on nothing blocks or allocates; the atomic scope makes every blocking call
    // of the runtime panic (every build) rather than block the executor's thread.
    // SAFETY: (1) `_no_block` is dropped at the end of this block, before `poll` returns,
    // and is not leaked; (2) no scope is opened in the block.
    let _no_block = unsafe { Atomic::assume() };
    state.async_waiters.push(Arc::clone(&node));
    if let Some(old) = waiter.replace(node) {
        old.cancel();
    }
    // After the push: see the module docs of `wait_async`.
    state.ask(target);
    if state.reached(target) {
        return finish(waiter);
    }
    Poll::Pending
}

fn finish(waiter: &mut Option<Arc<Waiter>>) -> Poll<()> {
    if let Some(w) = waiter.take() {
        w.cancel();
    }
    Poll::Ready(())
}

/// A future that completes when a grace period of its domain has completed: made by
/// [`synchronize_rcu_async`](crate::synchronize_rcu_async) (the grace period after the call),
/// [`cond_synchronize_async`](crate::cond_synchronize_async) (a polled cookie's) and their
/// [`Domain`] methods.
///
/// `Send`, `Sync`, `Unpin` and `'static`: spawn it, select on it, drop it (a dropped future
/// only cancels its registration; the grace period still runs). Woken by the domain's
/// worker; polling never blocks. See the [`guide`](crate::guide) §8.
///
/// ```
/// fn is_send_static<F: std::future::Future<Output = ()> + Send + Sync + Unpin + 'static>(_: &F) {}
/// let fut = rcu_core::synchronize_rcu_async();
/// is_send_static(&fut);
/// assert!(fut.cookie() <= rcu_core::get_state()); // the grace period after the call
/// ```
#[must_use = "futures do nothing unless awaited (the grace period was requested, though)"]
pub struct GracePeriodFuture {
    domain: DomainRef,
    cookie: GpCookie,
    waiter: Option<Arc<Waiter>>,
}

impl GracePeriodFuture {
    /// The cookie this future waits for: `poll(cookie)` is true once it is ready.
    ///
    /// ```
    /// let fut = rcu_core::synchronize_rcu_async();
    /// let cookie = fut.cookie();
    /// drop(fut); // cancels the wake-up, not the grace period, which the worker still runs
    /// let ctx = rcu_core::Sleepable::enter();
    /// rcu_core::cond_synchronize(&ctx, cookie);
    /// assert!(rcu_core::poll(cookie));
    /// ```
    pub fn cookie(&self) -> GpCookie {
        self.cookie
    }
}

impl Future for GracePeriodFuture {
    type Output = ();

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        let target = Target::GracePeriod(this.cookie.seq());
        poll_target(&this.domain, target, &mut this.waiter, cx, "a grace-period future")
    }
}

impl Drop for GracePeriodFuture {
    fn drop(&mut self) {
        let _ = finish(&mut self.waiter);
    }
}

impl fmt::Debug for GracePeriodFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GracePeriodFuture")
            .field("domain", &self.domain.name())
            .field("cookie", &self.cookie)
            .field("registered", &self.waiter.is_some())
            .finish()
    }
}

/// A future that completes once every callback and deferred free queued on its domain
/// before it was made, by any thread, has run: the async [`rcu_barrier`](crate::rcu_barrier),
/// made by [`rcu_barrier_async`](crate::rcu_barrier_async) and
/// [`Domain::rcu_barrier_async`].
///
/// `Send`, `Sync`, `Unpin` and `'static`; woken by the domain's worker; polling never
/// blocks.
///
/// ```
/// fn is_send_static<F: std::future::Future<Output = ()> + Send + Sync + Unpin + 'static>(_: &F) {}
/// let fut = rcu_core::rcu_barrier_async();
/// is_send_static(&fut);
/// drop(fut);
/// ```
#[must_use = "futures do nothing unless awaited (the collection was requested, though)"]
pub struct BarrierFuture {
    domain: DomainRef,
    generation: u64,
    waiter: Option<Arc<Waiter>>,
}

impl Future for BarrierFuture {
    type Output = ();

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        let target = Target::Generation(this.generation);
        // Reached once the deallocations given back to the threads that queued them are
        // done too (`DomainState::reached`), by the worker: polling never waits for them.
        poll_target(&this.domain, target, &mut this.waiter, cx, "rcu_barrier_async")
    }
}

impl Drop for BarrierFuture {
    fn drop(&mut self) {
        let _ = finish(&mut self.waiter);
    }
}

impl fmt::Debug for BarrierFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierFuture")
            .field("domain", &self.domain.name())
            .field("generation", &self.generation)
            .field("registered", &self.waiter.is_some())
            .finish()
    }
}

impl Domain {
    /// A future that completes once every read section of this domain that began before
    /// this call has ended: the async [`Domain::synchronize_rcu`]. Takes no token and never
    /// blocks a thread: the grace period is requested from the domain's worker now, and the
    /// worker wakes the task when it completes.
    ///
    /// Creating the future is lock-free and allocation-free (legal in any context); polling
    /// it may allocate its registration and the first poll may start the worker's thread.
    ///
    /// # Panics
    /// When polled, not ready, inside a read section of this domain (it could never be ready).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     // A minimal executor: park until woken (any executor works the same way).
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let domain = Domain::new(DomainConfig::new());
    /// let fut = domain.synchronize_rcu_async(); // the grace period is requested here
    /// let cookie = fut.cookie();
    /// block_on(fut);
    /// assert!(domain.poll(cookie));
    /// ```
    pub fn synchronize_rcu_async(&self) -> GracePeriodFuture {
        let state = self.state();
        let cookie = state.cookie();
        state.worker.request(cookie.seq());
        GracePeriodFuture { domain: self.state_ref(), cookie, waiter: None }
    }

    /// A future that completes once grace period `cookie` (from [`Domain::get_state`] or
    /// [`Domain::start_poll`]) has completed: the async [`Domain::cond_synchronize`]. Ready
    /// at the first poll if it already has; otherwise the grace period is requested from the
    /// worker (a `get_state` cookie alone does not start one).
    ///
    /// # Panics
    /// If `cookie` was issued by another domain; when polled, not ready, inside a read
    /// section of this domain.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let domain = Domain::global();
    /// let cookie = domain.get_state(); // e.g. taken when an object was unpublished
    /// // ... later, in async code ...
    /// block_on(domain.cond_synchronize_async(cookie));
    /// assert!(domain.poll(cookie));
    /// ```
    #[track_caller]
    pub fn cond_synchronize_async(&self, cookie: GpCookie) -> GracePeriodFuture {
        let state = self.state();
        state.check_cookie(cookie);
        if !state.gp.seq.is_completed(cookie.seq()) {
            state.worker.request(cookie.seq());
        }
        GracePeriodFuture { domain: self.state_ref(), cookie, waiter: None }
    }

    /// A future that completes once every callback and deferred free queued on this domain
    /// before this call, by any thread, has run: the async [`Domain::rcu_barrier`]. Takes no
    /// token: it waits on other threads' progress without blocking one. The collection is
    /// requested from the worker now.
    ///
    /// # Panics
    /// When polled, not ready, inside a read section of this domain.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// static RAN: AtomicU32 = AtomicU32::new(0);
    /// fn count(_obj: Box<Rcu<u8>>, _ctx: &Atomic<'_>) {
    ///     RAN.fetch_add(1, Ordering::Relaxed);
    /// }
    /// let domain = Domain::new(DomainConfig::new());
    /// {
    ///     let ctx = NoReclaimRoot::enter(); // the async row of the guide's table: never waits
    ///     domain.call_rcu(&ctx, Rcu::boxed(1), count);
    /// } // tokens end before any .await
    /// block_on(domain.rcu_barrier_async());
    /// assert_eq!(RAN.load(Ordering::Relaxed), 1);
    /// ```
    pub fn rcu_barrier_async(&self) -> BarrierFuture {
        let generation = self.state().request_async_barrier();
        BarrierFuture { domain: self.state_ref(), generation, waiter: None }
    }
}
