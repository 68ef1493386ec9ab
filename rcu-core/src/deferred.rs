//! Turning typed work into type-erased entries, and running them.
//!
//! Every queued item is an `(obj, run)` pair: `obj` an owning pointer with its type erased,
//! `run` a trampoline monomorphised for that type which rebuilds the `Box` and drops it, or
//! the user's `call_rcu` callback itself. Running an entry is the only place the type comes
//! back.
//!
//! A deferred free has two parts: dropping the value, which runs the value's own `Drop`
//! code (code the caller may not own: a reclaim action), and deallocating its memory, a
//! plain call to the global allocator. Its entry runs whole or one part at a time
//! ([`split`]), so that the worker drops and the thread that queued it, when its policy may
//! call the allocator, deallocates: the memory goes back to the allocator's cache of the
//! thread that will allocate again, instead of crossing CPUs twice.

use core::panic::AssertUnwindSafe;
use std::alloc::Layout;

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

/// Low bits of a deferred free's `obj` (every `Rcu<T>` is aligned to at least 8 bytes:
/// its head holds pointers): `SPLITTABLE` marks an entry whose trampoline can run one part;
/// `DROP_ONLY` and `DEALLOC_ONLY` ask for that part.
const SPLITTABLE: usize = 0b001;
const DROP_ONLY: usize = 0b010;
const DEALLOC_ONLY: usize = 0b100;
const PART_BITS: usize = 0b111;
const _: () = assert!(core::mem::align_of::<Rcu<()>>() > PART_BITS);

/// Frees a `Box<Rcu<T>>`, whole or one part (the bits of `obj`, see `SPLITTABLE`).
///
/// # Safety
/// 1. `obj`, without its low bits, came from `Box::<Rcu<T>>::into_raw` and is owned by the
///    caller.
/// 2. Parts run at most once each, the drop part before the deallocation part.
unsafe fn free_rcu_box<T>(obj: *mut (), _ctx: &Atomic<'_>) {
    let part = obj as usize & PART_BITS;
    let ptr = obj.wrapping_byte_sub(part).cast::<Rcu<T>>();
    // Deallocates when dropped, so also when the value's drop panics (as `Box` does).
    // (Made only when wanted: a `Dealloc` made and discarded would deallocate.)
    let dealloc = (part & DROP_ONLY == 0).then(|| Dealloc(ptr.cast(), Layout::new::<Rcu<T>>()));
    if part & DEALLOC_ONLY == 0 {
        // SAFETY: (1) a live, owned value; (2) dropped once.
        unsafe { core::ptr::drop_in_place(ptr) };
    }
    drop(dealloc);
}

/// The deallocation part of a deferred free, run on drop.
struct Dealloc(*mut u8, Layout);

impl Drop for Dealloc {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: made by `free_rcu_box` only, with (1) an allocation of `Box` (the global
        // allocator) with this layout, (2) whose value was dropped (or is unwinding from its
        // drop) and whose only release this is.
        unsafe { std::alloc::dealloc(self.0, self.1) };
    }
}

/// Drops a `Box<T>` (headless).
///
/// # Safety
/// 1. `obj` came from `Box::<T>::into_raw` and is owned by the caller.
unsafe fn drop_box<T>(obj: *mut (), _ctx: &Atomic<'_>) {
    // SAFETY: (1).
    drop(unsafe { Box::from_raw(obj.cast::<T>()) });
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
    /// A deferred free, whose parts can run on different threads (see `split`).
    splittable: bool,
}

impl Headed {
    pub(crate) fn entry(&self) -> Entry {
        let obj = if self.splittable {
            self.obj.cast::<()>().wrapping_byte_add(SPLITTABLE)
        } else {
            self.obj.cast()
        };
        Entry { obj, run: self.run }
    }
}

/// `kvfree_rcu` of a headed box.
pub(crate) fn free_entry<T: Send + 'static>(obj: Box<Rcu<T>>) -> Headed {
    Headed {
        obj: Box::into_raw(obj).cast(),
        run: free_rcu_box::<T>,
        bytes: core::mem::size_of::<Rcu<T>>(),
        splittable: true,
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
    Headed {
        obj: Box::into_raw(obj).cast(),
        run,
        bytes: core::mem::size_of::<Rcu<T>>(),
        splittable: false,
    }
}

/// `call_rcu_fn` of a closure, boxed with a head (the caller may allocate).
pub(crate) fn closure_entry<F: FnOnce(&Atomic<'_>) + Send + 'static>(f: F) -> Headed {
    Headed {
        obj: Box::into_raw(Rcu::boxed(f)).cast(),
        run: call_closure::<F>,
        bytes: core::mem::size_of::<Rcu<F>>(),
        splittable: false,
    }
}

/// `kvfree_rcu_mightsleep` of any box: an entry with no head, so it needs a block.
pub(crate) fn headless_entry<T: Send + 'static>(obj: Box<T>) -> (Entry, usize) {
    let bytes = core::mem::size_of::<T>();
    (Entry { obj: Box::into_raw(obj).cast(), run: drop_box::<T> }, bytes)
}

/// True for the deallocation part of a split deferred free (see `split`): running it only
/// gives memory back; the item was counted as run when its drop part ran.
pub(crate) fn is_dealloc_part(entry: &Entry) -> bool {
    entry.obj as usize & PART_BITS == SPLITTABLE | DEALLOC_ONLY
}

/// For a whole deferred free (made by `free_entry`, not yet split): its drop part and its
/// deallocation part, to run in that order, each exactly once. `None` for other entries.
pub(crate) fn split(entry: Entry) -> Option<(Entry, Entry)> {
    if entry.obj as usize & PART_BITS != SPLITTABLE {
        return None;
    }
    let part = |bits| Entry { obj: entry.obj.wrapping_byte_add(bits), run: entry.run };
    Some((part(DROP_ONLY), part(DEALLOC_ONLY)))
}

/// Runs one entry, containing a panic to that entry. Returns false if it panicked.
///
/// # Safety
/// 1. `entry` was made by one of the constructors above and is run exactly once.
pub(crate) unsafe fn run(entry: Entry, ctx: &Atomic<'_>) -> bool {
    // SAFETY: (1) the trampoline matches the object's type and we own the object.
    std::panic::catch_unwind(AssertUnwindSafe(|| unsafe { (entry.run)(entry.obj, ctx) })).is_ok()
}
