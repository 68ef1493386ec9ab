//! The list of live non-global domain states, which a forked child's handler walks to
//! repair them (`fork`). Append-only with lock-free push, so the fork handler never meets a
//! lock held by a thread that does not exist in the child. Entries hold type-erased pointers:
//! this list knows nothing of what it tracks.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// One entry of the list of live non-global domains; entries are reused, never freed.
struct Tracked {
    state: AtomicPtr<()>,
    next: *const Tracked,
}

/// Head of the list. Append-only with lock-free push, so the fork handler never meets a
/// lock held by a thread that does not exist in the child.
static TRACKED: AtomicPtr<Tracked> = AtomicPtr::new(ptr::null_mut());
fn entries() -> impl Iterator<Item = &'static Tracked> {
    // Acquire: pairs with the Release CAS in `track` that published the entry.
    let mut cur: *const Tracked = TRACKED.load(Ordering::Acquire);
    core::iter::from_fn(move || {
        // SAFETY: entries are leaked on creation and never freed.
        let t = unsafe { cur.as_ref()? };
        cur = t.next;
        Some(t)
    })
}

/// Adds a live domain state (erased) to the list the fork handler walks.
pub(crate) fn track(state: *const ()) {
    let raw = state.cast_mut();
    for t in entries() {
        // AcqRel: claims a free entry; the fork handler reads it single-threaded.
        if t.state
            .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
    // Relaxed: published by the Release CAS below.
    let mut head = TRACKED.load(Ordering::Relaxed);
    let entry = Box::leak(Box::new(Tracked { state: AtomicPtr::new(raw), next: head }));
    // Release: publishes the entry to `tracked`.
    while let Err(actual) =
        TRACKED.compare_exchange_weak(head, entry, Ordering::Release, Ordering::Relaxed)
    {
        head = actual;
        entry.next = head;
    }
}

/// Removes a domain state (being dropped) from the list; a no-op for untracked states.
pub(crate) fn untrack(state: *const ()) {
    let raw = state.cast_mut();
    for t in entries() {
        // Release: the entry may be reused once free.
        if t.state
            .compare_exchange(raw, ptr::null_mut(), Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Every tracked state, in a forked child (single-threaded).
pub(crate) fn tracked() -> impl Iterator<Item = *const ()> {
    // Relaxed: the child has a single thread.
    entries().map(|t| t.state.load(Ordering::Relaxed).cast_const()).filter(|p| !p.is_null())
}
