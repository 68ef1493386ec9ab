//! The three context tokens, the roots they come from, and how they come to exist.
//!
//! Tokens are zero-sized, neither `Send` nor `Sync` (a context belongs to one thread) and
//! neither `Clone` nor `Copy` (a scope derived from a token borrows it exclusively, so the
//! parent is unusable inside the scope). `NoReclaim` and `Atomic` are scopes themselves: they
//! update the thread's state when created and restore it when dropped, unwinding included.

use core::marker::PhantomData;

use crate::depths;
use crate::kind::ContextKind;
use crate::validate;

/// The marker that makes tokens neither `Send` nor `Sync`. A trait object without a `Send`
/// or `Sync` bound is neither, and the compiler names the innermost type that lacks the
/// trait, so moving a token to another thread fails with "`(dyn
/// rcu_ctx::token::ContextTokenIsThreadBound + 'static)` cannot be sent between threads
/// safely" (or "shared"), within the token's type, rather than with a bare `*mut ()`. Never
/// implemented; it costs nothing (`PhantomData`).
pub(crate) trait ContextTokenIsThreadBound {}

/// "Not `Send`, not `Sync`", with a name that says why (see [`ContextTokenIsThreadBound`]).
pub(crate) type NotSendSync = PhantomData<dyn ContextTokenIsThreadBound>;

/// The context of a thread that may block, allocate and reclaim.
///
/// A thread acquires its root token explicitly with [`Sleepable::enter`], where it knows it
/// may sleep (the top of a worker loop, `main`, a request handler): the context is stated by
/// the caller, never guessed.
///
/// ```
/// use rcu_ctx::{MaySleep, Sleepable};
///
/// fn main_loop(ctx: &mut Sleepable) {
///     let _nr = ctx.no_reclaim(); // derive narrower contexts from it as needed
/// }
/// let mut ctx = Sleepable::enter(); // at the top of the thread
/// main_loop(&mut ctx);
/// ```
#[derive(Debug)]
pub struct Sleepable {
    _not_send_sync: NotSendSync,
}

impl Sleepable {
    /// Acquires this thread's root `Sleepable` token.
    ///
    /// # Panics
    /// Inside a read section, an atomic scope or a no-reclaim scope: a sleepable context
    /// cannot be conjured up from a restricted one. Acquire the root where the thread is
    /// known to be sleepable and pass it down. This check runs in every build.
    ///
    /// ```
    /// use rcu_ctx::{Context, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// let spin = ctx.atomic();
    /// // Sleepable::enter() here would panic: a sleepable root cannot be conjured up inside an
    /// // atomic scope.
    /// drop(spin);
    /// let _again = Sleepable::enter(); // fine once no scope is open
    /// ```
    #[inline]
    #[track_caller]
    pub fn enter() -> Sleepable {
        if !depths::snapshot().may_reclaim() {
            enter_refused();
        }
        depths::enter_root();
        Sleepable { _not_send_sync: PhantomData }
    }
}

/// The panic of [`Sleepable::enter`] inside a scope, out of line.
#[cold]
#[inline(never)]
#[track_caller]
fn enter_refused() -> ! {
    let scope = depths::innermost_restriction().unwrap_or("a restricted context");
    panic!(
        "rcu-ctx: Sleepable::enter() called inside {scope}: the root Sleepable token may only \
         be acquired where the thread may block, allocate and reclaim (rule: context is \
         explicit, never assumed). Fix: acquire it once at the top of the thread, before \
         entering the scope, and pass the token down; inside the scope use the scope's own \
         token (a read guard's ctx(), the NoReclaim or Atomic token)."
    );
}

impl Drop for Sleepable {
    /// Uncounts the root (see [`thread_state::live_roots`](crate::thread_state::live_roots)):
    /// once a thread's roots are all dropped, nothing borrowed from them (read guards,
    /// references loaded under them) is alive.
    fn drop(&mut self) {
        depths::exit_root();
    }
}

/// The context of a reclaim path: may block and allocate, must not reclaim.
///
/// Created by `MaySleep::no_reclaim` on a `Sleepable` or another `NoReclaim` token, which
/// stays borrowed until this token is dropped.
///
/// ```
/// use rcu_ctx::{Context, MaySleep, NoReclaim, Sleepable};
///
/// fn evict(ctx: &NoReclaim<'_>, spare: &mut Vec<Box<[u8; 64]>>) {
///     ctx.validate();
///     spare.push(Box::new([0; 64])); // may allocate, may block, must not reclaim
/// }
/// let mut ctx = Sleepable::enter();
/// let nr = ctx.no_reclaim();
/// let mut spare = Vec::new();
/// evict(&nr, &mut spare);
/// assert_eq!(spare.len(), 1);
/// ```
#[derive(Debug)]
#[must_use = "the no-reclaim scope ends when this token is dropped"]
pub struct NoReclaim<'parent> {
    _parent: PhantomData<&'parent mut ()>,
    _not_send_sync: NotSendSync,
}

impl NoReclaim<'_> {
    /// Opens the scope: runs `pay` (what the opening token pays of the thread's debts, module
    /// `owed`, which must happen in the opener's context), then counts the scope. `pay`
    /// returns whether it ran the payer.
    #[inline]
    #[track_caller]
    pub(crate) fn enter_scope_after(pay: impl FnOnce() -> bool) -> Self {
        depths::enter_no_reclaim_after(pay);
        NoReclaim { _parent: PhantomData, _not_send_sync: PhantomData }
    }
}

impl Drop for NoReclaim<'_> {
    #[inline]
    fn drop(&mut self) {
        if !depths::exit_no_reclaim() {
            validate::report_unbalanced("no-reclaim scope");
        }
    }
}

/// A thread's root that may block and allocate but never reclaims: for an async executor's
/// threads, which must not wait for memory or run other code's drops inside a task.
///
/// Like [`Sleepable::enter`], acquired explicitly where the caller knows what the thread may
/// do; unlike it, its scopes never pay reclaim work (`owed`): a scope opened from a
/// `Sleepable` token runs the thread's ready deferred frees and may wait (briefly) for a grace
/// period when its parking slots are full, while one opened from this root, or the root
/// itself, pays only allocator work, and while the root lives an RCU runtime leaves the
/// thread no reclaim work: its frees go to the runtime's own threads
/// ([`no_reclaim_roots`](crate::thread_state::no_reclaim_roots)). The thread is in a
/// no-reclaim scope while the root lives (`Sleepable::enter` panics inside it), and the root
/// counts among its live roots ([`live_roots`](crate::thread_state::live_roots)).
///
/// Its [`Context::KIND`](crate::Context::KIND) is `NoReclaim`, so every API taking `&impl
/// Context`, `MayAlloc` or `MaySleep` takes it, with `NoReclaim`'s policy; an API that wants
/// a `&NoReclaim<'_>` gets one from [`MaySleep::no_reclaim`](crate::MaySleep::no_reclaim).
///
/// ```
/// use rcu_ctx::{thread_state, MaySleep, NoReclaimRoot};
///
/// // In a task, in a block that ends before the next `.await` (where no scope is open):
/// {
///     let mut root = NoReclaimRoot::enter();
///     assert!(!thread_state::snapshot().may_reclaim());
///     let _nr = root.no_reclaim(); // a `NoReclaim<'_>` for APIs that name it
/// }
/// assert!(thread_state::snapshot().may_reclaim());
/// ```
#[derive(Debug)]
#[must_use = "the root's no-reclaim scope ends when this token is dropped"]
pub struct NoReclaimRoot {
    _not_send_sync: NotSendSync,
}

impl NoReclaimRoot {
    /// Acquires a root `NoReclaim` context for this thread: pays what a `NoReclaim` token
    /// may of the thread's debts (deallocations only), then opens a no-reclaim scope.
    ///
    /// # Panics
    /// Inside a read section, an atomic scope or a no-reclaim scope (another
    /// `NoReclaimRoot`'s included), as [`Sleepable::enter`]: a root is acquired where no scope
    /// is open, and passed down. In a read section or an atomic scope it would widen the
    /// context; in a no-reclaim scope it would not, but a root taken there could outlive the
    /// scope's owner's view of the thread (an RCU runtime runs user code on its own threads
    /// inside a no-reclaim scope precisely so that such code cannot take a root and lend a
    /// `'static` guard from it). This check runs in every build.
    ///
    /// ```
    /// use rcu_ctx::{Context, NoReclaimRoot, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// let spin = ctx.atomic();
    /// // NoReclaimRoot::enter() here would panic: it may block, the atomic scope may not.
    /// drop(spin);
    /// let _root = NoReclaimRoot::enter(); // fine: the thread may sleep here
    /// ```
    #[inline]
    #[track_caller]
    pub fn enter() -> NoReclaimRoot {
        if !depths::snapshot().may_reclaim() {
            no_reclaim_root_refused();
        }
        depths::enter_no_reclaim_after(|| crate::owed::pay(ContextKind::NoReclaim));
        depths::enter_no_reclaim_root();
        NoReclaimRoot { _not_send_sync: PhantomData }
    }
}

/// The panic of [`NoReclaimRoot::enter`] inside a scope, out of line.
#[cold]
#[inline(never)]
#[track_caller]
fn no_reclaim_root_refused() -> ! {
    let scope = depths::innermost_restriction().unwrap_or("a restricted context");
    panic!(
        "rcu-ctx: NoReclaimRoot::enter() called inside {scope}: a root may only be acquired \
         where no scope is open (rule: context is explicit, never assumed). Fix: acquire it \
         once, before entering the scope, and pass the token down; inside the scope use the \
         scope's own token (the NoReclaim or Atomic token, a read guard's ctx())."
    );
}

impl Drop for NoReclaimRoot {
    /// Ends the root's no-reclaim scope and uncounts the root.
    #[inline]
    fn drop(&mut self) {
        if !depths::exit_no_reclaim() {
            validate::report_unbalanced("no-reclaim root");
        }
        depths::exit_no_reclaim_root();
    }
}

/// The context of code that must not block, allocate or reclaim: inside a read section,
/// under a spinlock, in an RCU callback, in a signal handler.
///
/// Created by `Context::atomic` on any token (which stays borrowed until this one is
/// dropped), handed out by read sections and to callbacks, or assumed with
/// [`Atomic::assume`] where no token can be passed in.
///
/// ```
/// use rcu_ctx::{Atomic, Context, Sleepable};
///
/// fn under_spinlock(ctx: &Atomic<'_>, counter: &mut u64) {
///     ctx.validate(); // no blocking, no allocation, no reclaim in here
///     *counter += 1;
/// }
/// let mut ctx = Sleepable::enter();
/// let mut counter = 0;
/// under_spinlock(&ctx.atomic(), &mut counter);
/// assert_eq!(counter, 1);
/// ```
#[derive(Debug)]
#[must_use = "the atomic scope ends when this token is dropped"]
pub struct Atomic<'parent> {
    _parent: PhantomData<&'parent mut ()>,
    _not_send_sync: NotSendSync,
}

impl Atomic<'_> {
    #[inline]
    #[track_caller]
    pub(crate) fn enter_scope() -> Self {
        Self::enter_scope_after(|| false)
    }

    /// As [`NoReclaim::enter_scope_after`], for an atomic scope.
    #[inline]
    #[track_caller]
    pub(crate) fn enter_scope_after(pay: impl FnOnce() -> bool) -> Self {
        depths::enter_atomic_after(pay);
        Self::marker()
    }

    /// The token without any change to the thread state; the caller accounts for the scope.
    #[inline]
    pub(crate) fn marker() -> Self {
        Atomic { _parent: PhantomData, _not_send_sync: PhantomData }
    }

    /// Creates an `Atomic` token where none can be passed in: a signal handler, a callback
    /// from foreign code. The thread is in an atomic scope until the token is dropped.
    ///
    /// An `Atomic` token only permits operations that never block, allocate or reclaim, so
    /// it is the least powerful token; what makes this `unsafe` is that the thread's context
    /// bookkeeping relies on scopes ending in the order they began.
    ///
    /// # Safety
    /// 1. The token is dropped on this thread before the code that created it returns to its
    ///    caller (before the signal handler or foreign callback returns); it is not leaked
    ///    with `mem::forget` or stored.
    /// 2. Scopes created on this thread after this token are dropped before it (LIFO), which
    ///    holds automatically for scopes created from this token.
    ///
    /// # Panics
    /// If the thread already has `u32::MAX` atomic scopes open (possible only by forgetting
    /// them in a loop): a depth never wraps, and the refused scope is not counted.
    ///
    /// # Example
    /// ```
    /// use rcu_ctx::{Atomic, Context, ContextKind};
    ///
    /// extern "C" fn on_event() {
    ///     // SAFETY: (1) dropped before returning; (2) no other scope is opened in between.
    ///     let ctx = unsafe { Atomic::assume() };
    ///     assert_eq!(rcu_ctx::thread_state::snapshot().atomic_depth, 1);
    ///     drop(ctx);
    /// }
    /// on_event();
    /// assert_eq!(<Atomic<'_> as Context>::KIND, ContextKind::Atomic);
    /// ```
    #[inline]
    #[track_caller]
    pub unsafe fn assume<'a>() -> Atomic<'a> {
        Atomic::enter_scope()
    }

    /// Opens an atomic scope nested in this one from a shared borrow: for code that holds
    /// only `&Atomic` (a callback, a read guard's `ctx()`) and calls an API that borrows its
    /// token mutably. Sound because an `Atomic` token permits nothing the nested scope
    /// forbids.
    ///
    /// # Panics
    /// If the thread already has `u32::MAX` atomic scopes open (possible only by forgetting
    /// them in a loop): a depth never wraps, and the refused scope is not counted.
    ///
    /// ```
    /// use rcu_ctx::{thread_state, Atomic, Context, Sleepable};
    ///
    /// fn needs_mut<C: Context>(_ctx: &mut C) {}
    /// fn callback(ctx: &Atomic<'_>) {
    ///     needs_mut(&mut ctx.nested());
    ///     assert_eq!(thread_state::snapshot().atomic_depth, 1);
    /// }
    /// let mut ctx = Sleepable::enter();
    /// callback(&ctx.atomic());
    /// ```
    #[inline]
    #[track_caller]
    pub fn nested(&self) -> Atomic<'_> {
        // What `Context::validate` does for an `Atomic` token (the trait sits above this file).
        validate::token(ContextKind::Atomic);
        Atomic::enter_scope()
    }
}

impl Drop for Atomic<'_> {
    #[inline]
    fn drop(&mut self) {
        if !depths::exit_atomic() {
            validate::report_unbalanced("atomic scope");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::{Atomic, NoReclaimRoot, Sleepable};
    use crate::thread_state::{live_roots, snapshot, Snapshot};
    use crate::{Context, ContextKind, MaySleep, ReadSection};

    /// Runs `f`, which must panic, and returns the panic message.
    fn panic_message(f: impl FnOnce()) -> String {
        let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
        match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(payload) => payload.downcast_ref::<&str>().expect("a string payload").to_string(),
        }
    }

    #[test]
    fn enter_at_the_root_succeeds_and_changes_nothing() {
        let first = Sleepable::enter();
        // A second root on the same thread is allowed while no scope is open.
        let second = Sleepable::enter();
        assert_eq!(snapshot(), Snapshot::default());
        assert_eq!(<Sleepable as Context>::KIND, ContextKind::Sleepable);
        let (_first, _second) = (first, second);
    }

    #[test]
    #[should_panic(expected = "Sleepable::enter() called inside an atomic scope")]
    fn enter_panics_inside_an_atomic_scope() {
        let mut ctx = Sleepable::enter();
        let _a = ctx.atomic();
        let _ = Sleepable::enter();
    }

    #[test]
    #[should_panic(expected = "Sleepable::enter() called inside a no-reclaim scope")]
    fn enter_panics_inside_a_no_reclaim_scope() {
        let mut ctx = Sleepable::enter();
        let _nr = ctx.no_reclaim();
        let _ = Sleepable::enter();
    }

    #[test]
    #[should_panic(expected = "Sleepable::enter() called inside an RCU read section")]
    fn enter_panics_inside_a_read_section() {
        let mut ctx = Sleepable::enter();
        let _rs = ReadSection::enter(&mut ctx);
        let _ = Sleepable::enter();
    }

    #[test]
    #[should_panic(expected = "Sleepable::enter() called inside an atomic scope")]
    fn enter_panics_inside_an_assumed_atomic_scope() {
        // SAFETY: (1) `_a` is dropped while this function unwinds; (2) no scope is opened
        // after it.
        let _a = unsafe { Atomic::assume() };
        let _ = Sleepable::enter();
    }

    #[test]
    fn enter_panic_names_the_rule_and_leaves_the_state_alone() {
        let mut ctx = Sleepable::enter();
        let mut nr = ctx.no_reclaim();
        let msg = panic_message(|| {
            let _ = Sleepable::enter();
        });
        assert!(msg.starts_with("rcu-ctx: Sleepable::enter() called inside a no-reclaim scope"));
        assert!(msg.contains("rule: context is explicit, never assumed"), "{msg}");
        assert!(msg.contains("pass the token down"), "{msg}");
        assert_eq!(snapshot().no_reclaim_depth, 1);

        // With several restrictions open, the message names the one that forbids most.
        let mut a = nr.atomic();
        let msg = panic_message(|| {
            let _ = Sleepable::enter();
        });
        assert!(msg.contains("inside an atomic scope"), "{msg}");
        let rs = ReadSection::enter(&mut a);
        let msg = panic_message(|| {
            let _ = Sleepable::enter();
        });
        assert!(msg.contains("inside an RCU read section"), "{msg}");
        assert_eq!(snapshot(), Snapshot { read_depth: 1, atomic_depth: 1, no_reclaim_depth: 1 });

        drop(rs);
        drop(a);
        drop(nr);
        // Everything closed: acquiring a root works again.
        let _root = Sleepable::enter();
    }

    #[test]
    fn assume_opens_an_atomic_scope_until_dropped() {
        // SAFETY: (1) `a` is dropped below, before this function returns; (2) the scope
        // opened from it is dropped before it.
        let mut a = unsafe { Atomic::assume() };
        assert_eq!(snapshot(), Snapshot { read_depth: 0, atomic_depth: 1, no_reclaim_depth: 0 });
        a.validate();
        let inner = a.atomic();
        assert_eq!(snapshot().atomic_depth, 2);
        drop(inner);
        assert_eq!(snapshot().atomic_depth, 1);
        drop(a);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn assume_nests_inside_existing_scopes() {
        let mut ctx = Sleepable::enter();
        let mut nr = ctx.no_reclaim();
        let rs = ReadSection::enter(&mut nr);
        // As from a signal handler that interrupted a read section.
        // SAFETY: (1) `a` is dropped below, before the section ends; (2) nothing is opened
        // after it.
        let a = unsafe { Atomic::assume() };
        assert_eq!(snapshot(), Snapshot { read_depth: 1, atomic_depth: 1, no_reclaim_depth: 1 });
        drop(a);
        assert_eq!(snapshot(), Snapshot { read_depth: 1, atomic_depth: 0, no_reclaim_depth: 1 });
        drop(rs);
        drop(nr);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn a_no_reclaim_root_is_a_no_reclaim_scope_and_a_live_root() {
        std::thread::spawn(|| {
            assert_eq!((snapshot(), live_roots()), (Snapshot::default(), 0));
            let mut root = NoReclaimRoot::enter();
            assert_eq!(<NoReclaimRoot as Context>::KIND, ContextKind::NoReclaim);
            assert_eq!((snapshot().no_reclaim_depth, live_roots()), (1, 1));
            root.validate();
            let nr = root.no_reclaim();
            assert_eq!(snapshot().no_reclaim_depth, 2);
            drop(nr);
            drop(root);
            assert_eq!((snapshot(), live_roots()), (Snapshot::default(), 0));
            // Beside a Sleepable root (no scope open), and dropped in either order.
            let sleepable = Sleepable::enter();
            let root = NoReclaimRoot::enter();
            assert_eq!((snapshot().no_reclaim_depth, live_roots()), (1, 2));
            drop(sleepable);
            assert_eq!((snapshot().no_reclaim_depth, live_roots()), (1, 1));
            drop(root);
            assert_eq!((snapshot(), live_roots()), (Snapshot::default(), 0));
            // A leaked root stays counted, and so does its scope.
            let _leaked: &'static mut NoReclaimRoot = Box::leak(Box::new(NoReclaimRoot::enter()));
            assert_eq!((snapshot().no_reclaim_depth, live_roots()), (1, 1));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_no_reclaim_root_is_refused_inside_no_reclaim_scopes_and_forbids_a_sleepable_root() {
        let mut ctx = Sleepable::enter();
        let nr = ctx.no_reclaim();
        let msg = panic_message(|| {
            let _ = NoReclaimRoot::enter();
        });
        assert!(msg.starts_with("rcu-ctx: NoReclaimRoot::enter() called inside a no-reclaim"));
        drop(nr);
        let root = NoReclaimRoot::enter();
        for refused in [
            panic_message(|| {
                let _ = Sleepable::enter();
            }),
            panic_message(|| {
                let _ = NoReclaimRoot::enter();
            }),
        ] {
            assert!(refused.contains("() called inside a no-reclaim scope"), "{refused}");
        }
        assert_eq!((snapshot().no_reclaim_depth, live_roots()), (1, 2));
        drop(root);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn a_no_reclaim_root_is_refused_inside_read_sections_and_atomic_scopes() {
        let mut ctx = Sleepable::enter();
        let mut a = ctx.atomic();
        let msg = panic_message(|| {
            let _ = NoReclaimRoot::enter();
        });
        assert!(msg.starts_with("rcu-ctx: NoReclaimRoot::enter() called inside an atomic scope"));
        assert!(msg.contains("rule: context is explicit, never assumed"), "{msg}");
        let rs = ReadSection::enter(&mut a);
        let msg = panic_message(|| {
            let _ = NoReclaimRoot::enter();
        });
        assert!(msg.contains("inside an RCU read section"), "{msg}");
        assert_eq!(snapshot(), Snapshot { read_depth: 1, atomic_depth: 1, no_reclaim_depth: 0 });
        drop(rs);
        drop(a);
        let _root = NoReclaimRoot::enter();
    }
}
