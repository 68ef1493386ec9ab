//! The per-thread counters behind [`thread_state`](crate::thread_state): read-section,
//! atomic-scope and no-reclaim-scope depths, and live roots. At the bottom of the crate: the
//! scopes (tokens, read sections) move the counters, validation and enforcement read them,
//! and the counters know of none of them.

use core::cell::Cell;

struct Depths {
    read: Cell<u32>,
    atomic: Cell<u32>,
    no_reclaim: Cell<u32>,
    /// Root `Sleepable` tokens acquired on this thread and not dropped (leaked ones stay
    /// counted for ever). See [`live_roots`].
    roots: Cell<u32>,
}

thread_local! {
    static DEPTHS: Depths = const {
        Depths {
            read: Cell::new(0),
            atomic: Cell::new(0),
            no_reclaim: Cell::new(0),
            roots: Cell::new(0),
        }
    };
}

/// How many root [`Sleepable`](crate::Sleepable) tokens of this thread are alive: acquired
/// with `Sleepable::enter` and not dropped. A leaked root (`Box::leak`, `mem::forget`) stays
/// counted for ever.
///
/// This is what lets an RCU runtime decide, at thread exit, whether a read section left open
/// can still be reached: every guard and every reference loaded through it borrows a root
/// (directly or through scopes derived from it). Once every root of the thread is dropped,
/// no such borrow can be alive; a leaked root, on the other hand, may have lent out guards and
/// references that are `'static`.
///
/// ```
/// use rcu_ctx::{thread_state::live_roots, Sleepable};
/// std::thread::spawn(|| {
///     assert_eq!(live_roots(), 0);
///     let ctx = Sleepable::enter();
///     assert_eq!(live_roots(), 1);
///     drop(ctx);
///     assert_eq!(live_roots(), 0);
///     let _leaked: &'static mut Sleepable = Box::leak(Box::new(Sleepable::enter()));
///     assert_eq!(live_roots(), 1); // never dropped: counted for ever
/// })
/// .join()
/// .unwrap();
/// ```
#[inline]
pub fn live_roots() -> u32 {
    DEPTHS.with(|d| d.roots.get())
}

/// Counts a new root. Saturates: a thread that leaked 2^32 roots keeps counting as leaked.
#[inline]
pub(crate) fn enter_root() {
    DEPTHS.with(|d| d.roots.set(d.roots.get().saturating_add(1)));
}

/// Uncounts a dropped root (a saturated count stays: some root was leaked).
#[inline]
pub(crate) fn exit_root() {
    DEPTHS.with(|d| {
        let n = d.roots.get();
        if n != u32::MAX {
            d.roots.set(n.saturating_sub(1));
        }
    });
}

/// A copy of the calling thread's context state, for tests and diagnostics.
///
/// ```
/// use rcu_ctx::thread_state::{snapshot, Snapshot};
/// use rcu_ctx::{MaySleep, Sleepable};
/// let mut ctx = Sleepable::enter();
/// let _nr = ctx.no_reclaim();
/// assert_eq!(snapshot(), Snapshot { read_depth: 0, atomic_depth: 0, no_reclaim_depth: 1 });
/// ```
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
    ///
    /// ```
    /// use rcu_ctx::{thread_state::snapshot, Context, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// assert!(snapshot().may_sleep());
    /// let _spin = ctx.atomic();
    /// assert!(!snapshot().may_sleep());
    /// ```
    pub fn may_sleep(&self) -> bool {
        self.read_depth == 0 && self.atomic_depth == 0
    }

    /// True when the thread may also reclaim: additionally no no-reclaim scope.
    ///
    /// ```
    /// use rcu_ctx::{thread_state::snapshot, MaySleep, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// assert!(snapshot().may_reclaim());
    /// let _nr = ctx.no_reclaim();
    /// assert!(snapshot().may_sleep() && !snapshot().may_reclaim());
    /// ```
    pub fn may_reclaim(&self) -> bool {
        self.may_sleep() && self.no_reclaim_depth == 0
    }
}

/// The calling thread's context state.
///
/// ```
/// use rcu_ctx::{thread_state, ReadSection, Sleepable};
/// let mut ctx = Sleepable::enter();
/// let section = ReadSection::enter(&mut ctx);
/// assert_eq!(thread_state::snapshot().read_depth, 1);
/// drop(section);
/// ```
#[inline]
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

/// Increments a depth. 2^32 nested scopes cannot exist (each is a live value on the
/// stack), so release builds skip the overflow check on this hot path; debug builds keep it.
#[inline]
fn increment(cell: &Cell<u32>) {
    cell.set(cell.get() + 1);
}

/// Decrements and returns true; on an unbalanced exit (the depth is already 0) leaves the
/// depth at 0 rather than wrapping, so the state stays sane, and returns false.
#[inline]
fn decrement(cell: &Cell<u32>) -> bool {
    match cell.get().checked_sub(1) {
        Some(depth) => {
            cell.set(depth);
            true
        }
        None => false,
    }
}

#[inline]
pub(crate) fn enter_atomic() {
    DEPTHS.with(|d| increment(&d.atomic));
}

/// Ends an atomic scope. False if none was open (only possible after a broken
/// `Atomic::assume` contract): the caller reports it.
#[inline]
#[must_use = "an unbalanced exit is a bug to report"]
pub(crate) fn exit_atomic() -> bool {
    DEPTHS.with(|d| decrement(&d.atomic))
}

#[inline]
pub(crate) fn enter_no_reclaim() {
    DEPTHS.with(|d| increment(&d.no_reclaim));
}

/// Ends a no-reclaim scope. False if none was open: the caller reports it.
#[inline]
#[must_use = "an unbalanced exit is a bug to report"]
pub(crate) fn exit_no_reclaim() -> bool {
    DEPTHS.with(|d| decrement(&d.no_reclaim))
}

#[inline]
pub(crate) fn enter_read() {
    DEPTHS.with(|d| increment(&d.read));
}

/// Ends a read section. False if none was open: the caller reports it.
#[inline]
#[must_use = "an unbalanced exit is a bug to report"]
pub(crate) fn exit_read() -> bool {
    DEPTHS.with(|d| decrement(&d.read))
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::{snapshot, Snapshot};
    use crate::{Atomic, Context, MaySleep, ReadSection, Sleepable};

    fn depths(read_depth: u32, atomic_depth: u32, no_reclaim_depth: u32) -> Snapshot {
        Snapshot { read_depth, atomic_depth, no_reclaim_depth }
    }

    #[test]
    fn each_scope_counts_while_it_lives_and_restores_on_drop() {
        let mut ctx = Sleepable::enter();
        assert_eq!(snapshot(), Snapshot::default());

        let nr = ctx.no_reclaim();
        assert_eq!(snapshot(), depths(0, 0, 1));
        drop(nr);
        assert_eq!(snapshot(), Snapshot::default());

        let a = ctx.atomic();
        assert_eq!(snapshot(), depths(0, 1, 0));
        drop(a);
        assert_eq!(snapshot(), Snapshot::default());

        let rs = ReadSection::enter(&mut ctx);
        assert_eq!(snapshot(), depths(1, 0, 0));
        drop(rs);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn read_section_token_does_not_count_as_an_atomic_scope() {
        let mut ctx = Sleepable::enter();
        let rs = ReadSection::enter(&mut ctx);
        let _token: &Atomic<'_> = rs.token();
        assert_eq!(snapshot(), depths(1, 0, 0));
        drop(rs);
        // The section's token is not dropped as an atomic scope: the depth must not go below 0.
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn scopes_nest_and_unwind_in_order() {
        let mut root = Sleepable::enter();
        {
            let mut nr1 = root.no_reclaim();
            assert_eq!(snapshot(), depths(0, 0, 1));
            {
                let mut nr2 = nr1.no_reclaim();
                assert_eq!(snapshot(), depths(0, 0, 2));
                {
                    let mut a1 = nr2.atomic();
                    assert_eq!(snapshot(), depths(0, 1, 2));
                    {
                        let mut rs_parent = a1.atomic();
                        assert_eq!(snapshot(), depths(0, 2, 2));
                        {
                            let rs = ReadSection::enter(&mut rs_parent);
                            assert_eq!(snapshot(), depths(1, 2, 2));
                            drop(rs);
                        }
                        assert_eq!(snapshot(), depths(0, 2, 2));
                    }
                    assert_eq!(snapshot(), depths(0, 1, 2));
                }
                assert_eq!(snapshot(), depths(0, 0, 2));
            }
            assert_eq!(snapshot(), depths(0, 0, 1));
        }
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn read_sections_nest_from_any_context() {
        let mut root = Sleepable::enter();
        let mut nr = root.no_reclaim();
        let outer = ReadSection::enter(&mut nr);
        // SAFETY: (1) `inner_parent` is dropped before this test returns; (2) the read section
        // opened from it is dropped first.
        let mut inner_parent = unsafe { Atomic::assume() };
        let inner = ReadSection::enter(&mut inner_parent);
        assert_eq!(snapshot(), depths(2, 1, 1));
        drop(inner);
        drop(inner_parent);
        assert_eq!(snapshot(), depths(1, 0, 1));
        drop(outer);
        drop(nr);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn panic_unwinding_out_of_scopes_restores_the_state() {
        let mut ctx = Sleepable::enter();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut nr = ctx.no_reclaim();
            let mut a = nr.atomic();
            let _rs = ReadSection::enter(&mut a);
            assert_eq!(snapshot(), depths(1, 1, 1));
            panic!("unwind out of three scopes");
        }));
        assert!(result.is_err());
        assert_eq!(snapshot(), Snapshot::default());
        // The root is usable again and scopes still balance.
        let a = ctx.atomic();
        assert_eq!(snapshot(), depths(0, 1, 0));
        drop(a);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn panic_unwinding_restores_only_the_scopes_it_leaves() {
        let mut ctx = Sleepable::enter();
        let mut nr = ctx.no_reclaim();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _a = nr.atomic();
            panic!("unwind out of one scope");
        }));
        assert!(result.is_err());
        assert_eq!(snapshot(), depths(0, 0, 1));
        drop(nr);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn state_is_per_thread() {
        let mut ctx = Sleepable::enter();
        let a = ctx.atomic();
        let other = std::thread::spawn(snapshot).join().unwrap();
        assert_eq!(other, Snapshot::default());
        assert_eq!(snapshot(), depths(0, 1, 0));
        drop(a);
    }

    #[test]
    fn snapshot_predicates_follow_the_capability_table() {
        let mut ctx = Sleepable::enter();
        let s = snapshot();
        assert!(s.may_sleep() && s.may_reclaim());

        let mut nr = ctx.no_reclaim();
        let s = snapshot();
        assert!(s.may_sleep() && !s.may_reclaim());

        let a = nr.atomic();
        let s = snapshot();
        assert!(!s.may_sleep() && !s.may_reclaim());
        drop(a);

        let rs = ReadSection::enter(&mut nr);
        let s = snapshot();
        assert!(!s.may_sleep() && !s.may_reclaim());
        drop(rs);
    }
}
