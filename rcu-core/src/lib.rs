//! Userspace RCU (read-copy-update) with explicit, typed context tokens.
//!
//! # Reading
//! Readers enter a read section with [`read_lock`] and get a [`ReadGuard`]. Entering and
//! leaving cost a thread-local load and a store: no lock, no atomic read-modify-write, no
//! hardware fence (writers pay instead, with `membarrier`). Data loaded under the guard (for
//! example with [`RcuCell::load`]) cannot outlive it; sections nest.
//!
//! # Writing and waiting
//! Writers publish a new version and wait for a *grace period* before freeing the old one:
//! [`synchronize_rcu`] returns once every read section that began before the call has ended.
//! [`synchronize_rcu_expedited`] does the same with lower latency; the polled API
//! ([`get_state`], [`start_poll`], [`poll`], [`cond_synchronize`]) lets a writer carry on and
//! check later. Concurrent callers share grace periods.
//!
//! # Context tokens
//! Every call that may block, allocate or reclaim takes a context token ([`Sleepable`],
//! [`NoReclaim`], [`Atomic`]), and its signature says which capability it needs. A thread
//! acquires its root `Sleepable` explicitly; read sections borrow it and hand out an
//! `Atomic` token, so waiting for a grace period inside a read section does not compile:
//!
//! ```compile_fail,E0502
//! use rcu_core::prelude::*;
//! let mut ctx = Sleepable::enter();
//! let guard = rcu_core::read_lock(&mut ctx);
//! rcu_core::synchronize_rcu(&ctx); // `ctx` is borrowed by the read section
//! drop(guard);
//! ```
//!
#![doc = include_str!("../docs/which-token.md")]
//!
//! # Async code
//! [`synchronize_rcu_async`], [`rcu_barrier_async`] and [`cond_synchronize_async`] (and the
//! same on [`Domain`]) are plain futures, woken by the domain's worker: any executor, no
//! token, no thread blocked. A read guard or token cannot be held across `.await` in a
//! `Send` future (it does not compile): take a token per call in a block that ends before
//! the `.await`. The `async_server` example runs the pattern under tokio.
//!
//! # A first program: read a shared configuration, replace it, synchronize
//! ```
//! use std::sync::Arc;
//! use rcu_core::prelude::*;
//! use rcu_core::{read_lock, Rcu, RcuCell};
//!
//! #[derive(Debug)]
//! struct Config {
//!     name: String,
//!     max_connections: u32,
//! }
//!
//! let config = Arc::new(RcuCell::new(Config { name: "v1".into(), max_connections: 10 }));
//!
//! // Readers on other threads: each acquires its own root token.
//! let readers: Vec<_> = (0..2)
//!     .map(|_| {
//!         let config = Arc::clone(&config);
//!         std::thread::spawn(move || {
//!             let mut ctx = Sleepable::enter();
//!             for _ in 0..1000 {
//!                 let guard = read_lock(&mut ctx);
//!                 let cfg = config.load(&guard);
//!                 assert!(cfg.max_connections >= 10, "{cfg:?}");
//!             }
//!         })
//!     })
//!     .collect();
//!
//! // The writer replaces the whole value; the old one is dropped after a grace period,
//! // when no reader can still be looking at it.
//! let mut ctx = Sleepable::enter();
//! config.set(&ctx, Config { name: "v2".into(), max_connections: 20 });
//! config.update(&mut ctx, |old| Rcu::boxed(Config { name: "v3".into(), ..*old }));
//!
//! for r in readers {
//!     r.join().unwrap();
//! }
//! let guard = read_lock(&mut ctx);
//! assert_eq!(config.load(&guard).name, "v3");
//! ```
//!
//! # Domains
//! The free functions use [`Domain::global`]. [`Domain::new`] makes an isolated domain with
//! its own readers, grace periods and worker; its methods mirror the free functions.
//!
//! # Reports
//! What the runtime cannot hand back to a caller it reports as one line on stderr, written
//! with `write(2)` (a forked child may not take std's stderr lock): a stall without a
//! handler, a callback, async waker, stall handler or shrinker that panicked, a read guard
//! leaked by an exiting thread. [`set_report_sink`] sends those lines elsewhere, to a logger
//! or to a test that provokes them on purpose.
//!
//! # Where to go next
//! - [`guide`] (`docs/guide.md`): a read-mostly configuration, an RCU linked list, callbacks
//!   with `call_rcu`, choosing and passing tokens, behaviour under memory pressure, the polled
//!   API, domains, statistics and stall reports, async grace periods, the server pattern, and
//!   what each error message asks you to change.
//! - [`migration`] (`docs/migration.md`): liburcu, crossbeam-epoch and Linux kernel calls
//!   mapped to this API, with the differences that matter.
//! - The examples in `rcu-core/examples/`, each runnable with
//!   `cargo run --release -p rcu-core --example NAME`: `config_reload`, `rcu_map`,
//!   `signal_free`, `reclaim_path`, `tokens_tour` and `async_server`.
//! - `rcu_ctx`'s documentation (`docs/contexts.md`) for the tokens themselves, and
//!   `docs/design.md` for how the engine works and why it is correct.

// One folder per concept; a folder imports only those before it in this order (checked by
// ci/import-cycles.sh; docs/design.md §0): raw, the leaves `setting` and `stats`, queue, read,
// gp, state, reclaim, runtime, api. Under loom only `raw` and `queue::staging` are built.
#[cfg(not(loom))]
mod api;
#[cfg(all(doctest, not(loom)))]
mod compile_fail;
#[cfg(all(doctest, not(loom)))]
mod compile_fail_reclaim;
#[cfg(all(doctest, not(loom)))]
mod compile_fail_srcu;
#[cfg(not(loom))]
mod gp;
mod queue;
pub mod raw;
#[cfg(not(loom))]
mod read;
#[cfg(not(loom))]
mod reclaim;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
mod setting;
#[cfg(not(loom))]
mod state;
#[cfg(not(loom))]
mod stats;

/// Under loom or shuttle only: the staging protocol, for the models of `tests/tests/loom.rs`
/// and `tests/tests/shuttle.rs` (not an API; the normal build keeps this module private).
#[cfg(any(loom, shuttle))]
#[doc(hidden)]
pub use queue::staging;

#[cfg(not(loom))]
pub use exports::*;

/// The safe API; under `cfg(loom)` only the raw protocol and the staging area are built, for
/// the loom models.
#[cfg(not(loom))]
mod exports {
    pub use crate::api::cell::RcuCell;
    pub use crate::api::domain::{Domain, DomainConfig};
    pub use crate::api::gp_future::{BarrierFuture, GracePeriodFuture};
    pub use crate::api::guard::{DomainKey, RcuDomain, RcuGuard};
    pub use crate::api::qsbr::{QsbrDomain, QsbrOffline, QsbrOnline};
    pub use crate::api::qsbr_thread::QsbrRead;
    pub use crate::api::reader::ReadGuard;
    pub use crate::api::srcu::SrcuStruct;
    pub use crate::api::srcu_flavor::{Fast, FlavorId, Plain, SrcuFlavor};
    pub use crate::api::srcu_guard::{SrcuGuard, SrcuOwnedGuard};
    pub use crate::gp::stall::{StallCause, StallHandler, StallReport};
    pub use crate::queue::deferred::Callback;
    pub use crate::queue::head::{Rcu, RcuHead};
    pub use crate::state::GpCookie;
    pub use crate::stats::DomainStats;
    pub use rcu_alloc::{
        register_shrinker, AllocConfig, AllocStats, ConfigError, FallbackReason, FaultConfig,
        Policy, Shrinker, ShrinkerHandle, MAX_BLOCK_BYTES, MAX_THREAD_CACHE, MIN_BLOCK_BYTES,
        POOL_CAPACITY,
    };
    pub use rcu_ctx::{
        enforce, might_alloc, might_sleep, section_brand, thread_state, validate, Atomic, Context,
        ContextKind, MayAlloc, MayReclaim, MaySleep, MayWaitFor, NoReclaim, NoReclaimRoot,
        SectionBrand, SectionState, Sleepable, SleepableSection, Unbranded,
    };
    pub use rcu_sys::stderr::set_report_sink;
}

/// Everything a caller needs in scope: tokens, capability traits and the RCU API.
///
/// ```
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let cell = RcuCell::new(1);
/// let guard = read_lock(&mut ctx);
/// assert_eq!(*cell.load(&guard), 1);
/// ```
#[cfg(not(loom))]
pub mod prelude {
    pub use crate::{
        call_rcu, call_rcu_fn, cond_synchronize, cond_synchronize_async, get_state, kvfree_rcu,
        kvfree_rcu_mightsleep, poll, rcu_barrier, rcu_barrier_async, read_lock, start_poll,
        synchronize_rcu, synchronize_rcu_async, synchronize_rcu_expedited, Domain, GpCookie, Rcu,
        RcuCell, RcuGuard, ReadGuard,
    };
    pub use rcu_ctx::prelude::*;
}

/// Does the process's one-time set-up now instead of at first use, registers the calling
/// thread with the global domain and waits (at most a second) until the domain's worker
/// runs. Call it early in `main`, before other threads start.
///
/// Without it the first use pays: the first registration asks the kernel for `membarrier`
/// (`MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`, which waits for a kernel grace period), and
/// the first call with a token that may allocate starts the global domain's worker threads:
/// 8 to 27 ms in all on the 2-CPU machine of `docs/performance.md`, against about 5 us for a
/// `synchronize_rcu` right after. Idempotent; each later thread still registers on its
/// first read (or with [`Domain::register_current_thread`]).
///
/// ```
/// use rcu_core::prelude::*;
/// let ctx = Sleepable::enter();
/// rcu_core::init(&ctx); // before spawning readers
/// let cookie = start_poll(&ctx);
/// synchronize_rcu(&ctx);
/// assert!(poll(cookie));
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn init<C: MaySleep + MayAlloc>(ctx: &C) {
    ctx.validate();
    rcu_ctx::enforce::may_sleep("init");
    Domain::global().register_current_thread(ctx);
    runtime::worker_thread::wait_until_looping(&state::GLOBAL_STATE);
}

/// Enters a read section of the global domain. See [`Domain::read_lock`].
///
/// ```
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let outer = read_lock(&mut ctx);
/// assert_eq!(rcu_core::thread_state::snapshot().read_depth, 1);
/// drop(outer);
/// ```
#[cfg(not(loom))]
#[inline]
#[track_caller]
pub fn read_lock<C: Context>(ctx: &mut C) -> ReadGuard<'_> {
    api::reader::read_lock_global(rcu_ctx::ReadSection::enter(ctx))
}

/// Waits for a grace period of the global domain. See [`Domain::synchronize_rcu`].
///
/// ```
/// use rcu_core::prelude::*;
/// let ctx = Sleepable::enter();
/// let cookie = get_state();
/// synchronize_rcu(&ctx);
/// assert!(poll(cookie));
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn synchronize_rcu<C: MaySleep>(ctx: &C) {
    Domain::global().synchronize_rcu(ctx)
}

/// Waits for an expedited grace period of the global domain. See
/// [`Domain::synchronize_rcu_expedited`].
///
/// ```
/// let ctx = rcu_core::Sleepable::enter();
/// rcu_core::synchronize_rcu_expedited(&ctx);
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn synchronize_rcu_expedited<C: MaySleep>(ctx: &C) {
    Domain::global().synchronize_rcu_expedited(ctx)
}

/// A polled-API cookie of the global domain. See [`Domain::get_state`].
///
/// ```
/// let cookie = rcu_core::get_state();
/// assert!(!rcu_core::poll(cookie)); // no grace period has run since
/// ```
#[cfg(not(loom))]
pub fn get_state() -> GpCookie {
    Domain::global().get_state()
}

/// A cookie whose grace period the global domain's worker is asked to run. See
/// [`Domain::start_poll`].
///
/// ```
/// use rcu_core::prelude::*;
/// let ctx = Sleepable::enter();
/// let cookie = start_poll(&ctx);
/// while !poll(cookie) {
///     std::thread::yield_now(); // do other work meanwhile
/// }
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn start_poll<C: Context>(ctx: &C) -> GpCookie {
    Domain::global().start_poll(ctx)
}

/// True once the global domain's grace period `cookie` has completed. See [`Domain::poll`].
///
/// ```
/// let ctx = rcu_core::Sleepable::enter();
/// let cookie = rcu_core::get_state();
/// rcu_core::cond_synchronize(&ctx, cookie);
/// assert!(rcu_core::poll(cookie));
/// ```
#[cfg(not(loom))]
#[inline]
#[track_caller]
pub fn poll(cookie: GpCookie) -> bool {
    Domain::global().poll(cookie)
}

/// Waits for the global domain's grace period `cookie` unless it has completed. See
/// [`Domain::cond_synchronize`].
///
/// ```
/// use rcu_core::prelude::*;
/// let ctx = Sleepable::enter();
/// let cookie = get_state();
/// synchronize_rcu(&ctx);
/// cond_synchronize(&ctx, cookie); // returns at once: already elapsed
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn cond_synchronize<C: MaySleep>(ctx: &C, cookie: GpCookie) {
    Domain::global().cond_synchronize(ctx, cookie)
}

/// Queues `f(obj, ctx)` on the global domain. See [`Domain::call_rcu`].
///
/// ```
/// use rcu_core::prelude::*;
///
/// fn done(obj: Box<Rcu<u32>>, _ctx: &Atomic<'_>) {
///     assert_eq!(**obj, 42);
///     drop(obj); // the callback owns the object
/// }
/// let mut ctx = Sleepable::enter();
/// {
///     let guard = read_lock(&mut ctx);
///     call_rcu(guard.ctx(), Rcu::boxed(42), done); // fine inside a read section
/// }
/// rcu_barrier(&ctx);
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn call_rcu<C: Context, T: Send + 'static>(ctx: &C, obj: Box<Rcu<T>>, f: Callback<T>) {
    Domain::global().call_rcu(ctx, obj, f)
}

/// Queues a closure on the global domain. See [`Domain::call_rcu_fn`].
///
/// ```
/// let ctx = rcu_core::Sleepable::enter();
/// rcu_core::call_rcu_fn(&ctx, |_atomic| println!("a grace period has elapsed"));
/// rcu_core::rcu_barrier(&ctx);
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn call_rcu_fn<C: MayAlloc, F>(ctx: &C, f: F)
where
    F: FnOnce(&Atomic<'_>) + Send + 'static,
{
    Domain::global().call_rcu_fn(ctx, f)
}

/// Drops `obj` after a grace period of the global domain. See [`Domain::kvfree_rcu`].
///
/// ```
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// kvfree_rcu(&atomic, Rcu::boxed(vec![0u8; 64])); // never allocates under Atomic
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn kvfree_rcu<C: Context, T: Send + 'static>(ctx: &C, obj: Box<Rcu<T>>) {
    Domain::global().kvfree_rcu(ctx, obj)
}

/// Drops any boxed `obj` (sized or not) after a grace period of the global domain, waiting
/// inline if no block can be had. See [`Domain::kvfree_rcu_mightsleep`].
///
/// ```
/// let ctx = rcu_core::Sleepable::enter();
/// rcu_core::kvfree_rcu_mightsleep(&ctx, Box::new([0u8; 100]));
/// let text: Box<str> = "retired".into(); // unsized values too
/// rcu_core::kvfree_rcu_mightsleep(&ctx, text);
/// let shown: Box<dyn std::fmt::Debug + Send> = Box::new(7u8);
/// rcu_core::kvfree_rcu_mightsleep(&ctx, shown);
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn kvfree_rcu_mightsleep<C: MaySleep, T: ?Sized + Send + 'static>(ctx: &C, obj: Box<T>) {
    Domain::global().kvfree_rcu_mightsleep(ctx, obj)
}

/// Waits until everything queued on the global domain before the call has run. See
/// [`Domain::rcu_barrier`].
///
/// ```
/// let ctx = rcu_core::Sleepable::enter();
/// rcu_core::kvfree_rcu_mightsleep(&ctx, Box::new(1u8));
/// rcu_core::rcu_barrier(&ctx);
/// assert_eq!(rcu_core::Domain::global().stats().callbacks_pending, 0);
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn rcu_barrier<C: MayReclaim>(ctx: &C) {
    Domain::global().rcu_barrier(ctx)
}

/// A future that completes after a grace period of the global domain that begins after this
/// call. See [`Domain::synchronize_rcu_async`]: no token, never blocks a thread.
///
/// ```
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
/// let cookie = rcu_core::get_state();
/// block_on(async {
///     rcu_core::synchronize_rcu_async().await; // any executor: tokio, async-std, a hand-rolled one
/// });
/// assert!(rcu_core::poll(cookie));
/// ```
#[cfg(not(loom))]
pub fn synchronize_rcu_async() -> GracePeriodFuture {
    Domain::global().synchronize_rcu_async()
}

/// A future that completes once the global domain's grace period `cookie` has completed,
/// requesting it if needed. See [`Domain::cond_synchronize_async`].
///
/// ```
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
/// let cookie = rcu_core::get_state();
/// block_on(rcu_core::cond_synchronize_async(cookie));
/// assert!(rcu_core::poll(cookie));
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn cond_synchronize_async(cookie: GpCookie) -> GracePeriodFuture {
    Domain::global().cond_synchronize_async(cookie)
}

/// A future that completes once everything queued on the global domain before this call
/// has run. See [`Domain::rcu_barrier_async`].
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
/// {
///     let ctx = Sleepable::enter();
///     kvfree_rcu_mightsleep(&ctx, Box::new(1u8));
/// }
/// block_on(rcu_barrier_async());
/// assert_eq!(Domain::global().stats().callbacks_pending, 0);
/// ```
#[cfg(not(loom))]
pub fn rcu_barrier_async() -> BarrierFuture {
    Domain::global().rcu_barrier_async()
}

#[cfg(not(loom))]
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

#[cfg(not(loom))]
#[doc = include_str!("../docs/migration.md")]
pub mod migration {}

/// The README's examples are compiled and run as doctests, so the quick start cannot rot.
#[cfg(all(doctest, not(loom)))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
