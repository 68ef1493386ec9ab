//! Which maps' bucket locks the calling thread holds while it runs the keys' `Eq`.
//!
//! A write compares keys (user code) while it holds its key's bucket lock. An `Eq` that
//! writes to the same map would wait for a bucket lock: if it is the one its own thread
//! holds, for ever (a spinlock is not reentrant). Each write records its map here for as
//! long as it holds the lock, and every write first looks its map up: found, it panics,
//! naming the rule, instead of hanging. The record is a list threaded through the stack
//! frames of the writes in progress on this thread (nested ones too: an `Eq` of one map
//! may write to another), so recording costs two thread-local stores and no allocation.
//!
//! `Hash` is not concerned: it runs before a write takes any lock, and never during a
//! resize or a clear (nodes keep their hash). Reading the map from `Eq` takes no lock.

use core::cell::Cell;
use core::ptr;

/// One write in progress on this thread: the map whose bucket it holds, and the next
/// entry out.
struct Held {
    map: *const (),
    outer: *const Held,
}

std::thread_local! {
    /// The innermost entry (null: none). A `const` initializer and no destructor: a plain
    /// thread-relative load, usable from a signal handler and while the thread exits.
    static INNERMOST: Cell<*const Held> = const { Cell::new(ptr::null()) };
}

/// Puts the outer entry back when the write's locked section ends, unwinding included.
struct Restore(*const Held);

impl Drop for Restore {
    fn drop(&mut self) {
        INNERMOST.set(self.0);
    }
}

/// Runs `f` (which holds a bucket lock of `map` and runs the keys' `Eq`) with `map`
/// recorded as locked by this thread.
#[inline]
pub(crate) fn while_locked<R>(map: *const (), f: impl FnOnce() -> R) -> R {
    let outer = INNERMOST.get();
    let held = Held { map, outer };
    INNERMOST.set(&held);
    let _restore = Restore(outer);
    f()
}

/// Panics if this thread holds a bucket lock of `map` (the caller is a key's `Eq` running
/// inside a write to it).
#[track_caller]
#[inline]
pub(crate) fn refuse(map: *const (), call: &'static str) {
    let mut entry = INNERMOST.get();
    // SAFETY: every entry in the list is a `Held` on the stack frame of a `while_locked`
    // call of this thread that has not returned: each call takes its entry out (`Restore`,
    // also when unwinding) before its frame ends, and calls nest (a signal handler's too).
    while let Some(held) = unsafe { entry.as_ref() } {
        if held.map == map {
            reentered(call);
        }
        entry = held.outer;
    }
}

#[track_caller]
#[cold]
#[inline(never)]
fn reentered(call: &'static str) -> ! {
    panic!(
        "rcu-collections: {call} called from the keys' Eq while a write to the same map holds \
         one of its bucket locks on this thread: it would wait for that lock for ever (rule: \
         a key's Eq runs under its map's bucket lock and must not write to that map; it may \
         read it). Fix: compare keys without using the map, or make the write after the \
         outer one returns"
    );
}
