//! Turning typed work into type-erased entries, and running them.
//!
//! Every queued item is an `(obj, run)` pair: `obj` an owning pointer with its type erased,
//! `run` a trampoline monomorphised for that type which rebuilds the `Box` and drops it or
//! hands it to the user's callback. Running an entry is the only place the type comes back.

use core::panic::AssertUnwindSafe;

use rcu_alloc::Entry;
use rcu_ctx::Atomic;

use crate::head::{Rcu, RunFn};

/// A user callback for `call_rcu`: receives the object back after its grace period, with
/// the `Atomic` token callbacks run under.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::Callback;
///
/// struct Conn {
///     fd: i32,
/// }
/// fn close_conn(conn: Box<Rcu<Conn>>, _ctx: &Atomic<'_>) {
///     assert!(conn.fd >= 0); // runs on the worker after the grace period; must not block
/// }
/// let f: Callback<Conn> = close_conn;
/// let ctx = Sleepable::enter();
/// call_rcu(&ctx, Rcu::boxed(Conn { fd: 3 }), f);
/// rcu_barrier(&ctx);
/// ```
pub type Callback<T> = fn(Box<Rcu<T>>, &Atomic<'_>);

/// Drops a `Box<Rcu<T>>`.
///
/// # Safety
/// 1. `obj` came from `Box::<Rcu<T>>::into_raw` and is owned by the caller.
unsafe fn drop_rcu_box<T>(obj: *mut (), _ctx: &Atomic<'_>) {
    // SAFETY: (1).
    drop(unsafe { Box::from_raw(obj.cast::<Rcu<T>>()) });
}

/// Drops a `Box<T>` (headless).
///
/// # Safety
/// 1. `obj` came from `Box::<T>::into_raw` and is owned by the caller.
unsafe fn drop_box<T>(obj: *mut (), _ctx: &Atomic<'_>) {
    // SAFETY: (1).
    drop(unsafe { Box::from_raw(obj.cast::<T>()) });
}

/// Calls the user's callback stored in the head.
///
/// # Safety
/// 1. `obj` came from `Box::<Rcu<T>>::into_raw` and is owned by the caller.
/// 2. Its head's `func` holds a `Callback<T>` (set by `callback_entry`).
unsafe fn call_user<T>(obj: *mut (), ctx: &Atomic<'_>) {
    // SAFETY: (1).
    let boxed = unsafe { Box::from_raw(obj.cast::<Rcu<T>>()) };
    // SAFETY: (2): the pointer was made from a `Callback<T>`, and we own the head.
    let f: Callback<T> =
        unsafe { core::mem::transmute::<*const (), Callback<T>>(*boxed.head.func.get()) };
    f(boxed, ctx);
}

/// Calls a boxed closure.
///
/// # Safety
/// 1. `obj` came from `Box::<Rcu<F>>::into_raw` and is owned by the caller.
unsafe fn call_closure<F: FnOnce(&Atomic<'_>)>(obj: *mut (), ctx: &Atomic<'_>) {
    // SAFETY: (1).
    let boxed = unsafe { Box::from_raw(obj.cast::<Rcu<F>>()) };
    // Moves the closure out and frees the box before calling it.
    let f = (*boxed).into_inner();
    f(ctx);
}

/// A headed item ready to queue: its head pointer, trampoline and byte count.
pub(crate) struct Headed {
    pub(crate) obj: *mut Rcu<()>,
    pub(crate) run: RunFn,
    pub(crate) bytes: usize,
}

impl Headed {
    pub(crate) fn entry(&self) -> Entry {
        Entry { obj: self.obj.cast(), run: self.run }
    }
}

/// `kvfree_rcu` of a headed box.
pub(crate) fn free_entry<T: Send + 'static>(obj: Box<Rcu<T>>) -> Headed {
    Headed {
        obj: Box::into_raw(obj).cast(),
        run: drop_rcu_box::<T>,
        bytes: core::mem::size_of::<Rcu<T>>(),
    }
}

/// `call_rcu` of a headed box with a user callback.
pub(crate) fn callback_entry<T: Send + 'static>(obj: Box<Rcu<T>>, f: Callback<T>) -> Headed {
    // SAFETY: we own the box; the head is ours to write until it is queued.
    unsafe { *obj.head.func.get() = f as *const () };
    Headed {
        obj: Box::into_raw(obj).cast(),
        run: call_user::<T>,
        bytes: core::mem::size_of::<Rcu<T>>(),
    }
}

/// `call_rcu_fn` of a closure, boxed with a head (the caller may allocate).
pub(crate) fn closure_entry<F: FnOnce(&Atomic<'_>) + Send + 'static>(f: F) -> Headed {
    Headed {
        obj: Box::into_raw(Rcu::boxed(f)).cast(),
        run: call_closure::<F>,
        bytes: core::mem::size_of::<Rcu<F>>(),
    }
}

/// `kvfree_rcu_mightsleep` of any box: an entry with no head, so it needs a block.
pub(crate) fn headless_entry<T: Send + 'static>(obj: Box<T>) -> (Entry, usize) {
    let bytes = core::mem::size_of::<T>();
    (Entry { obj: Box::into_raw(obj).cast(), run: drop_box::<T> }, bytes)
}

/// Runs one entry, containing a panic to that entry. Returns false if it panicked.
///
/// # Safety
/// 1. `entry` was made by one of the constructors above and is run exactly once.
pub(crate) unsafe fn run(entry: Entry, ctx: &Atomic<'_>) -> bool {
    // SAFETY: (1) the trampoline matches the object's type and we own the object.
    std::panic::catch_unwind(AssertUnwindSafe(|| unsafe { (entry.run)(entry.obj, ctx) })).is_ok()
}
