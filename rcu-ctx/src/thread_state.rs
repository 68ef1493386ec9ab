//! Per-thread context state: how deep the thread is in read sections, atomic scopes and
//! no-reclaim scopes.
//!
//! Maintained in every build (it is what makes [`Sleepable::enter`](crate::Sleepable::enter)
//! safe to offer), at the cost of one non-atomic thread-local increment per scope. The
//! thread-local has a `const` initializer and no destructor, so access is a plain
//! thread-pointer-relative load with no lazy-initialisation check, and it stays usable while
//! the thread's other thread-locals are being destroyed.
//!
//! The state only moves in strict LIFO order (scopes are values dropped in reverse order of
//! creation, unwinding included), so a signal handler that opens and closes a scope leaves
//! the interrupted code's view unchanged.

use core::cell::Cell;

use crate::token::Atomic;

struct Depths {
    read: Cell<u32>,
    atomic: Cell<u32>,
    no_reclaim: Cell<u32>,
}

thread_local! {
    static DEPTHS: Depths = const {
        Depths { read: Cell::new(0), atomic: Cell::new(0), no_reclaim: Cell::new(0) }
    };
}

/// A copy of the calling thread's context state, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Nesting depth of RCU read sections.
    pub read_depth: u32,
    /// Nesting depth of atomic scopes (`Context::atomic`, `Atomic::assume`).
    pub atomic_depth: u32,
    /// Nesting depth of no-reclaim scopes.
    pub no_reclaim_depth: u32,
}

impl Snapshot {
    /// True when the thread may block and allocate: no read section, no atomic scope.
    pub fn may_sleep(&self) -> bool {
        self.read_depth == 0 && self.atomic_depth == 0
    }

    /// True when the thread may also reclaim: additionally no no-reclaim scope.
    pub fn may_reclaim(&self) -> bool {
        self.may_sleep() && self.no_reclaim_depth == 0
    }
}

/// The calling thread's context state.
pub fn snapshot() -> Snapshot {
    DEPTHS.with(|d| Snapshot {
        read_depth: d.read.get(),
        atomic_depth: d.atomic.get(),
        no_reclaim_depth: d.no_reclaim.get(),
    })
}

/// Names the innermost kind of restriction the thread is in, if any. Read sections and atomic
/// scopes outrank no-reclaim scopes because they forbid more.
pub(crate) fn innermost_restriction() -> Option<&'static str> {
    DEPTHS.with(|d| {
        if d.read.get() != 0 {
            Some("an RCU read section")
        } else if d.atomic.get() != 0 {
            Some("an atomic scope")
        } else if d.no_reclaim.get() != 0 {
            Some("a no-reclaim scope")
        } else {
            None
        }
    })
}

fn increment(cell: &Cell<u32>) {
    cell.set(cell.get().checked_add(1).expect("rcu-ctx: scope nesting depth overflowed u32"));
}

/// Decrements, reporting (not wrapping) on an unbalanced exit so the state stays sane.
fn decrement(cell: &Cell<u32>, what: &str) {
    match cell.get().checked_sub(1) {
        Some(depth) => cell.set(depth),
        None => crate::validate::report_unbalanced(what),
    }
}

pub(crate) fn enter_atomic() {
    DEPTHS.with(|d| increment(&d.atomic));
}

pub(crate) fn exit_atomic() {
    DEPTHS.with(|d| decrement(&d.atomic, "atomic scope"));
}

pub(crate) fn enter_no_reclaim() {
    DEPTHS.with(|d| increment(&d.no_reclaim));
}

pub(crate) fn exit_no_reclaim() {
    DEPTHS.with(|d| decrement(&d.no_reclaim, "no-reclaim scope"));
}

/// The context half of an RCU read section, for the RCU runtime's read guard.
///
/// While it lives the thread counts as inside a read section, the token it was entered from
/// stays exclusively borrowed, and [`ReadSection::token`] hands out the `Atomic` token that
/// code inside the section uses. The grace-period half (announcing the reader to writers)
/// belongs to the runtime; this type knows nothing about it.
#[derive(Debug)]
#[must_use = "the read section ends when this value is dropped"]
pub struct ReadSection<'parent> {
    // Not dropped: a read section is accounted as `read_depth`, not as an atomic scope.
    token: core::mem::ManuallyDrop<Atomic<'parent>>,
}

impl<'parent> ReadSection<'parent> {
    /// Enters a read section from any context; `parent` is unusable until this is dropped.
    #[inline]
    pub fn enter<C: crate::Context>(parent: &'parent mut C) -> Self {
        parent.validate();
        DEPTHS.with(|d| increment(&d.read));
        ReadSection { token: core::mem::ManuallyDrop::new(Atomic::marker()) }
    }

    /// The `Atomic` token for code inside the section; it cannot outlive the section.
    #[inline]
    pub fn token(&self) -> &Atomic<'parent> {
        &self.token
    }
}

impl Drop for ReadSection<'_> {
    #[inline]
    fn drop(&mut self) {
        DEPTHS.with(|d| decrement(&d.read, "read section"));
    }
}
