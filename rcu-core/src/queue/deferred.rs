//! Turning typed work into type-erased entries, and running them.
//!
//! Every queued item is an `(obj, run)` pair: `obj` an owning pointer with its type erased,
//! `run` a trampoline monomorphised for that type which rebuilds the `Box` and drops it, or
//! the user's `call_rcu` callback itself. Running an entry is the only place the type comes
//! back.
//!
//! A deferred free has two parts: dropping the value, which runs the value's own `Drop`
//! code (code the caller may not own: a reclaim action), and deallocating its memory, a
//! plain call to the global allocator. Its entry runs whole, or, on the worker, with its
//! deallocation kept as an entry of its own ([`run_keeping_dealloc`]), so that the worker
//! drops and the thread that queued it, when its policy may call the allocator,
//! deallocates: the memory goes back to the allocator's cache of the thread that will
//! allocate again, instead of crossing CPUs twice.

use core::cell::Cell;
use core::ptr;
use std::alloc::Layout;

use rcu_alloc::Entry;
use rcu_ctx::Atomic;

use crate::queue::head::{Rcu, RunFn};

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
///     drop(conn); // the callback owns the object
/// }
/// let f: Callback<Conn> = close_conn;
/// let ctx = Sleepable::enter();
/// call_rcu(&ctx, Rcu::boxed(Conn { fd: 3 }), f);
/// rcu_barrier(&ctx);
/// ```
pub type Callback<T> = fn(Box<Rcu<T>>, &Atomic<'_>);

thread_local! {
    /// The object whose deferred free [`run_keeping_dealloc`] asks to keep its deallocation
    /// (null: none). Only that entry's own trampoline (`free_rcu_box`, called with this very
    /// pointer) answers; every other entry runs whole, so no user pointer's bits are ever
    /// read for meaning, whatever its layout (DESIGN §5.1).
    static KEEP_DEALLOC_OF: Cell<*mut ()> = const { Cell::new(ptr::null_mut()) };
    /// Where that trampoline leaves the deallocation it kept.
    static KEPT_DEALLOC: Cell<Option<Entry>> = const { Cell::new(None) };
}

/// Frees a `Box<Rcu<T>>`: drops the value and deallocates, or, if [`run_keeping_dealloc`]
/// asked for it, drops the value and leaves its deallocation as an entry in `KEPT_DEALLOC`.
///
/// # Safety
/// 1. `obj` came from `Box::<Rcu<T>>::into_raw` and is owned by the caller.
unsafe fn free_rcu_box<T>(obj: *mut (), _ctx: &Atomic<'_>) {
    let ptr = obj.cast::<Rcu<T>>();
    let keep = KEEP_DEALLOC_OF.with(|k| k.get() == obj);
    if !keep {
        // SAFETY: (1). Drops and deallocates (also when the value's drop unwinds).
        drop(unsafe { Box::from_raw(ptr) });
        return;
    }
    KEEP_DEALLOC_OF.with(|k| k.set(ptr::null_mut()));
    // Recorded before the drop runs: if it unwinds, the memory is still deallocated once,
    // later, as a `Box` would free it while unwinding.
    KEPT_DEALLOC.with(|k| k.set(Some(Entry { obj, run: dealloc_rcu_box::<T> })));
    // SAFETY: (1) a live, owned value, dropped once; its memory is released by the entry
    // just recorded.
    unsafe { ptr::drop_in_place(ptr) };
}

/// The deallocation part of a deferred free whose value was dropped (`free_rcu_box`).
///
/// # Safety
/// 1. `obj` came from `Box::<Rcu<T>>::into_raw`; its value was dropped (or unwound from its
///    drop) and this is the allocation's only release.
unsafe fn dealloc_rcu_box<T>(obj: *mut (), _ctx: &Atomic<'_>) {
    // SAFETY: (1) an allocation of `Box` (the global allocator) with this layout; `Rcu<T>`
    // is never zero-sized (its head holds two words).
    unsafe { std::alloc::dealloc(obj.cast(), Layout::new::<Rcu<T>>()) };
}

/// Drops a `Box<T>` (headless) whose pointer is thin (`T: Sized`, or a thin unsized type).
///
/// # Safety
/// 1. `obj` is the pointer `Box::<T>::into_raw` gave, with its metadata (of size zero)
///    dropped, and is owned by the caller.
unsafe fn drop_box<T: ?Sized>(obj: *mut (), _ctx: &Atomic<'_>) {
    assert!(is_thin::<T>(), "rcu-core internal error: drop_box of a fat pointer");
    // SAFETY: `*mut T` is a thin pointer (checked above), so it has the layout of `*mut ()`
    // and `obj` is its value; (1).
    let raw = unsafe { ptr::read((&obj as *const *mut ()).cast::<*mut T>()) };
    // SAFETY: (1).
    drop(unsafe { Box::from_raw(raw) });
}

/// True if a `*mut T` is one word (no metadata).
const fn is_thin<T: ?Sized>() -> bool {
    core::mem::size_of::<*mut T>() == core::mem::size_of::<*mut ()>()
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

/// A headed item ready to queue: its head pointer, what runs it and its byte count.
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
        run: free_rcu_box::<T>,
        bytes: core::mem::size_of::<Rcu<T>>(),
    }
}

/// `call_rcu` of a headed box with a user callback: the callback itself is what runs.
pub(crate) fn callback_entry<T: Send + 'static>(obj: Box<Rcu<T>>, f: Callback<T>) -> Headed {
    // SAFETY: `fn(Box<Rcu<T>>, &Atomic)` and `unsafe fn(*mut (), &Atomic)` are
    // ABI-compatible (the standard library's `fn` documentation, "ABI compatibility": same
    // ABI string; `Box<U>` of a sized `U` and `*mut ()` are both thin pointers, which are
    // ABI-compatible with each other). The entry is only ever called with the pointer
    // `Box::into_raw` gave below, so `f` receives exactly the box it was queued with.
    let run = unsafe { core::mem::transmute::<Callback<T>, RunFn>(f) };
    Headed { obj: Box::into_raw(obj).cast(), run, bytes: core::mem::size_of::<Rcu<T>>() }
}

/// `call_rcu_fn` of a closure, boxed with a head (the caller may allocate).
pub(crate) fn closure_entry<F: FnOnce(&Atomic<'_>) + Send + 'static>(f: F) -> Headed {
    Headed {
        obj: Box::into_raw(Rcu::boxed(f)).cast(),
        run: call_closure::<F>,
        bytes: core::mem::size_of::<Rcu<F>>(),
    }
}

/// `kvfree_rcu_mightsleep` of any box: an entry with no head, so it needs a block. A box
/// of an unsized value (a fat pointer, which an entry cannot hold) is boxed once more, which
/// allocates: the caller may (`MaySleep`).
pub(crate) fn headless_entry<T: ?Sized + Send + 'static>(obj: Box<T>) -> (Entry, usize) {
    let bytes = core::mem::size_of_val::<T>(&obj);
    if is_thin::<T>() {
        let obj = Box::into_raw(obj) as *mut ();
        (Entry { obj, run: drop_box::<T> }, bytes)
    } else {
        let outer = Box::into_raw(Box::new(obj)) as *mut ();
        (Entry { obj: outer, run: drop_box::<Box<T>> }, bytes + core::mem::size_of::<Box<T>>())
    }
}

/// The box a `headless_entry` was made from, back (a headless free that found no block is
/// dropped by its caller after a grace period).
///
/// # Safety
/// 1. `entry` was made by `headless_entry::<T>` and not run.
pub(crate) unsafe fn headless_into_box<T: ?Sized>(entry: Entry) -> Box<T> {
    if is_thin::<T>() {
        // SAFETY: `*mut T` is thin, with the layout of `*mut ()`; (1) it is `into_raw`'s.
        unsafe { Box::from_raw(ptr::read((&entry.obj as *const *mut ()).cast::<*mut T>())) }
    } else {
        // SAFETY: (1) a fat box boxed once more, by `headless_entry`.
        *unsafe { Box::from_raw(entry.obj.cast::<Box<T>>()) }
    }
}

/// Runs a deferred-free entry but keeps its deallocation for later: the value is dropped
/// here, and the deallocation is returned as an entry of its own, for the thread that
/// queued the free to run (so the memory goes back to that thread's allocator cache). Any
/// other entry (a callback, a headless free) runs whole and returns `None`. Also returns
/// whether the run panicked (`false`), as [`run`].
///
/// Asks through a thread-local naming `entry.obj`, which only that entry's trampoline
/// compares with the pointer it is given: nothing is read into the pointer itself. Nested
/// runs (a value's drop that runs other entries) save and restore the request.
///
/// # Safety
/// 1. As [`run`].
pub(crate) unsafe fn run_keeping_dealloc(entry: Entry, ctx: &Atomic<'_>) -> (bool, Option<Entry>) {
    let outer_request = KEEP_DEALLOC_OF.with(|k| k.replace(entry.obj));
    let outer_kept = KEPT_DEALLOC.with(Cell::take);
    // SAFETY: (1).
    let ok = unsafe { run(entry, ctx) };
    KEEP_DEALLOC_OF.with(|k| k.set(outer_request));
    (ok, KEPT_DEALLOC.with(|k| k.replace(outer_kept)))
}

/// Runs one entry, containing a panic to that entry (its payload included: see
/// `contain`). Returns false if it panicked.
///
/// # Safety
/// 1. `entry` was made by one of the constructors above and is run exactly once.
pub(crate) unsafe fn run(entry: Entry, ctx: &Atomic<'_>) -> bool {
    // SAFETY: (1) the trampoline matches the object's type and we own the object.
    rcu_sys::contain::contain(|| unsafe { (entry.run)(entry.obj, ctx) }).is_some()
}
