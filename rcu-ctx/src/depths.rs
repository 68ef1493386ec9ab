//! The per-thread counters behind [`thread_state`](crate::thread_state): read-section,
//! atomic-scope and no-reclaim-scope depths, and live roots. At the bottom of the crate: the
//! scopes (tokens, read sections) move the counters, validation and enforcement read them,
//! and the counters know of none of them.
//!
//! Safe code can push every one of them as far as it likes (`mem::forget` a scope in a
//! loop), so none of them may wrap, in any build: a depth at `u32::MAX` refuses the next
//! scope with a panic and stays as it was (`increment`, `too_deep`); the root counts are 64
//! bits wide (`Depths::roots`).

use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};

struct Depths {
    read: Cell<u32>,
    atomic: Cell<u32>,
    no_reclaim: Cell<u32>,
    /// Root tokens (`Sleepable`, `NoReclaimRoot`) acquired on this thread and not dropped
    /// (leaked ones stay counted for ever). See [`live_roots`].
    ///
    /// Changed only by `count_in`/`count_out`, one instruction each that a signal handler on
    /// this thread cannot split: a handler may take a root and keep it (in a
    /// `thread_local!`, leaked), and a plain read then write around it would lose it from
    /// the count, which could then read 0 while a root lives (red6_signal_root_counts.rs: a
    /// section ended at thread exit under a live guard). 64 bits, so that it never wraps:
    /// leaking a root per nanosecond would take 584 years. Reads are Relaxed: only this
    /// thread (and its handlers) touch them. The depths above are plain cells: a handler can
    /// keep a scope only from a root of its own, taken where no scope was open, so the one
    /// case they miss is a handler that lands inside another scope's opening and keeps both
    /// a root and a scope from it: a depth then reads one less. That skews context checks
    /// only (read sections are counted for grace periods in the runtime's reader word), and
    /// a one-instruction update would not fit the refusal at `u32::MAX`: left open.
    roots: AtomicU64,
    /// Of those, the `NoReclaimRoot`s. See [`no_reclaim_roots`].
    no_reclaim_roots: AtomicU64,
}

thread_local! {
    static DEPTHS: Depths = const {
        Depths {
            read: Cell::new(0),
            atomic: Cell::new(0),
            no_reclaim: Cell::new(0),
            roots: AtomicU64::new(0),
            no_reclaim_roots: AtomicU64::new(0),
        }
    };
}

/// How many root tokens of this thread are alive: acquired with
/// [`Sleepable::enter`](crate::Sleepable::enter) or
/// [`NoReclaimRoot::enter`](crate::NoReclaimRoot::enter) and not dropped. A leaked root
/// (`Box::leak`, `mem::forget`) stays counted for ever. Reports `u32::MAX` for that many
/// roots or more (the count itself is 64 bits wide and never wraps).
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
    // Relaxed: see `Depths::roots`.
    saturated(DEPTHS.with(|d| d.roots.load(Ordering::Relaxed)))
}

/// Counts a new root. Never refuses (unlike the depths): leaking roots is allowed, and the
/// count only has to answer "could a root of this thread still be alive?". It never wraps
/// (`Depths::roots`), so it never reads 0 while a root lives.
#[inline]
pub(crate) fn enter_root() {
    DEPTHS.with(|d| count_in(&d.roots));
}

/// Uncounts a dropped root.
#[inline]
pub(crate) fn exit_root() {
    DEPTHS.with(|d| count_out(&d.roots));
}

/// A root count as the `u32` the API reports: `u32::MAX` stands for that many or more.
fn saturated(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Adds one to a root count in one instruction (see `Depths::roots`).
#[inline]
fn count_in(count: &AtomicU64) {
    add_in_one_instruction(count, 1);
}

/// Subtracts one from a root count in one instruction. Only a counted root is uncounted, so
/// it never goes below 0.
#[inline]
fn count_out(count: &AtomicU64) {
    add_in_one_instruction(count, 1u64.wrapping_neg());
}

/// `*count += delta` (wrapping) in one instruction, which a signal handler on this thread
/// sees done or not done: the kernel's `this_cpu_add`, for a thread's own counter. On
/// x86-64 a plain `add` to memory (a locked one costs about 3 ns more per root taken and
/// dropped, and an async task takes one per call); elsewhere an atomic add, one
/// read-modify-write as well.
#[inline(always)]
fn add_in_one_instruction(count: &AtomicU64, delta: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `count` is a live, aligned u64 of this thread's, which no other thread accesses
    // (only this thread and the signal handlers that interrupt it, between instructions).
    // The asm reads and writes only it; it may write flags (no `preserves_flags`) and does
    // not touch the stack.
    unsafe {
        core::arch::asm!(
            "add qword ptr [{count}], {delta}",
            count = in(reg) count.as_ptr(),
            delta = in(reg) delta,
            options(nostack),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // Relaxed: see `Depths::roots`.
    count.fetch_add(delta, Ordering::Relaxed);
}

/// How many [`NoReclaimRoot`](crate::NoReclaimRoot)s of this thread are alive (leaked ones
/// stay counted for ever, as in [`live_roots`]).
///
/// Non-zero means the thread's scopes pay no reclaim work (`owed`) until they are dropped:
/// the thread is an async executor's, say, and an RCU runtime hands the reclaim work its
/// frees leave to its own threads instead of leaving it owed here.
///
/// ```
/// use rcu_ctx::{thread_state::no_reclaim_roots, NoReclaimRoot};
/// assert_eq!(no_reclaim_roots(), 0);
/// let root = NoReclaimRoot::enter();
/// assert_eq!(no_reclaim_roots(), 1);
/// drop(root);
/// assert_eq!(no_reclaim_roots(), 0);
/// ```
#[inline]
pub fn no_reclaim_roots() -> u32 {
    // Relaxed: see `Depths::roots`.
    saturated(DEPTHS.with(|d| d.no_reclaim_roots.load(Ordering::Relaxed)))
}

/// Counts a new `NoReclaimRoot` (and a root), as [`enter_root`] does.
#[inline]
pub(crate) fn enter_no_reclaim_root() {
    DEPTHS.with(|d| {
        count_in(&d.roots);
        count_in(&d.no_reclaim_roots);
    });
}

/// Uncounts a dropped `NoReclaimRoot` (and a root), as [`exit_root`] does.
#[inline]
pub(crate) fn exit_no_reclaim_root() {
    DEPTHS.with(|d| {
        count_out(&d.roots);
        count_out(&d.no_reclaim_roots);
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

/// Sets the calling thread's depths back to `before`, a snapshot taken on this thread: for a
/// runtime that ran code it does not own (RCU callbacks, handed a `&Atomic` for the call) and
/// finds scopes left open when it returned. Those scopes were forgotten (`mem::forget`), and
/// borrowed the token the call lent, so nothing can reach through them any more.
///
/// ```
/// use rcu_ctx::thread_state::{restore, snapshot};
/// use rcu_ctx::{Context, Sleepable};
///
/// let mut ctx = Sleepable::enter();
/// let spin = ctx.atomic();
/// let before = snapshot();
/// let callback = |token: &rcu_ctx::Atomic<'_>| std::mem::forget(token.nested());
/// callback(&spin);
/// assert_eq!(snapshot().atomic_depth, before.atomic_depth + 1);
/// // SAFETY: (1) `before` was taken on this thread; (2) the scope opened since borrowed the
/// // token lent to `callback`, whose borrow ended when it returned.
/// unsafe { restore(before) };
/// drop(spin);
/// assert_eq!(snapshot(), Default::default());
/// ```
///
/// # Safety
/// 1. `before` is a snapshot of this thread taken earlier, and every scope opened on this
///    thread since then and still counted is unreachable: it was forgotten and every borrow
///    it held has ended. (Scopes counted in `before` are untouched.)
pub unsafe fn restore(before: Snapshot) {
    DEPTHS.with(|d| {
        d.read.set(before.read_depth);
        d.atomic.set(before.atomic_depth);
        d.no_reclaim.set(before.no_reclaim_depth);
    });
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

/// The kinds of scope a depth counts, for the message of a refused one.
#[derive(Clone, Copy)]
enum Scope {
    Read,
    Atomic,
    NoReclaim,
}

impl Scope {
    fn plural(self) -> &'static str {
        match self {
            Scope::Read => "read sections",
            Scope::Atomic => "atomic scopes",
            Scope::NoReclaim => "no-reclaim scopes",
        }
    }

    fn depth(self) -> &'static str {
        match self {
            Scope::Read => "read depth",
            Scope::Atomic => "atomic depth",
            Scope::NoReclaim => "no-reclaim depth",
        }
    }
}

/// A scope refused because its depth is at `u32::MAX` (see [`enter`]).
///
/// It panics rather than aborts because nothing has changed yet: the depth was not
/// incremented, the scope's value does not exist and its opener paid nothing (unless its
/// payer, against its contract, forgot scopes itself), so the thread's state is what it was
/// before the call, every scope that can still end (the forgotten ones too) counted once.
/// Unwinding drops what the caller holds, the parent the refused scope would have borrowed
/// included, and each of those uncounts only itself, as in any panic inside a scope; every
/// check that reads the state keeps refusing what it refused before.
#[cold]
#[inline(never)]
#[track_caller]
fn too_deep(scope: Scope) -> ! {
    let (what, depth) = (scope.plural(), scope.depth());
    panic!(
        "rcu-ctx: {what} nested {max} deep on one thread: one more would wrap the thread's \
         {depth} to 0, and the thread would pass for outside every one of them while they are \
         open (rule: every scope ends, and no counter that safe code drives may overflow). \
         This one was refused and not counted. They are being opened in a loop and forgotten \
         (mem::forget, Box::leak) instead of dropped. Fix: drop each scope (read guard, Atomic \
         or NoReclaim token) before opening the next",
        max = u32::MAX
    );
}

impl Depths {
    fn of(&self, scope: Scope) -> &Cell<u32> {
        match scope {
            Scope::Read => &self.read,
            Scope::Atomic => &self.atomic,
            Scope::NoReclaim => &self.no_reclaim,
        }
    }
}

/// Counts a new scope of kind `scope`, after running `pay` (the work its opener pays, module
/// `owed`, done in the opener's context, before the scope counts; it returns whether it
/// ran the payer).
///
/// Checked in every build: a depth at `u32::MAX` refuses the scope ([`too_deep`]) and stays.
/// 2^32 nested scopes cannot all be alive, but safe code can forget them (`mem::forget` of a
/// scope token or read section in a loop, which the optimizer reduces to little more than
/// an addition), and a depth that wrapped to 0 would make the thread pass for outside every
/// scope of that kind while one is live: `Sleepable::enter()` and the every-build checks of
/// `enforce` would then allow blocking inside a read section. The cost is a compare and a
/// branch never taken, to a panic out of line.
///
/// The depth is read before `pay`, so that a scope that will be refused is refused before
/// its opener pays anything, and read again only if the payer ran (it may open and close
/// scopes of its own, or, against its contract, forget some). On the usual path nothing
/// runs between the read and the store, and a loop of openings keeps the depth in a
/// register.
#[inline]
#[track_caller]
fn enter(scope: Scope, pay: impl FnOnce() -> bool) {
    let counted = DEPTHS.with(|d| {
        let cell = d.of(scope);
        let before = cell.get();
        if before == u32::MAX {
            return false;
        }
        let depth = if pay() { cell.get() } else { before };
        match depth.checked_add(1) {
            Some(depth) => {
                cell.set(depth);
                true
            }
            None => false,
        }
    });
    if !counted {
        too_deep(scope);
    }
}

/// Counts a new read section.
///
/// # Panics
/// If the thread is already `u32::MAX` read sections deep (forgotten in a loop): the
/// section is refused and not counted (see [`too_deep`]).
#[inline]
#[track_caller]
pub(crate) fn enter_read() {
    enter(Scope::Read, || false);
}

/// Counts a new atomic scope after `pay` (see [`enter`]).
///
/// # Panics
/// As [`enter_read`], at `u32::MAX` atomic scopes.
#[inline]
#[track_caller]
pub(crate) fn enter_atomic_after(pay: impl FnOnce() -> bool) {
    enter(Scope::Atomic, pay);
}

/// Counts a new no-reclaim scope after `pay` (see [`enter`]).
///
/// # Panics
/// As [`enter_read`], at `u32::MAX` no-reclaim scopes.
#[inline]
#[track_caller]
pub(crate) fn enter_no_reclaim_after(pay: impl FnOnce() -> bool) {
    enter(Scope::NoReclaim, pay);
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

/// Ends an atomic scope. False if none was open (only possible after a broken
/// `Atomic::assume` contract): the caller reports it.
#[inline]
#[must_use = "an unbalanced exit is a bug to report"]
pub(crate) fn exit_atomic() -> bool {
    DEPTHS.with(|d| decrement(&d.atomic))
}

/// Ends a no-reclaim scope. False if none was open: the caller reports it.
#[inline]
#[must_use = "an unbalanced exit is a bug to report"]
pub(crate) fn exit_no_reclaim() -> bool {
    DEPTHS.with(|d| decrement(&d.no_reclaim))
}

/// Ends a read section. False if none was open: the caller reports it.
#[inline]
#[must_use = "an unbalanced exit is a bug to report"]
pub(crate) fn exit_read() -> bool {
    DEPTHS.with(|d| decrement(&d.read))
}

/// Sets the calling thread's depths, standing for that many scopes forgotten: for the unit
/// tests below of what happens at `u32::MAX`, which an unoptimized forget loop takes minutes
/// to reach. The real forget loops, to the limit and without this, are
/// `tests/tests/counters.rs` (optimized, by `ci/counters.sh`).
#[cfg(test)]
pub(crate) fn set_depths_for_test(s: Snapshot) {
    DEPTHS.with(|d| {
        d.read.set(s.read_depth);
        d.atomic.set(s.atomic_depth);
        d.no_reclaim.set(s.no_reclaim_depth);
    });
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::Ordering;

    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::{set_depths_for_test, snapshot, Snapshot};
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

    /// Runs `f`, which must panic, and returns the panic message.
    fn panic_message(f: impl FnOnce()) -> String {
        let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
        err.downcast_ref::<String>().cloned().expect("a formatted message")
    }

    #[test]
    fn a_depth_at_the_limit_refuses_the_next_scope_and_counts_nothing() {
        const MAX: u32 = u32::MAX;
        let mut ctx = Sleepable::enter();
        let mut spare = Sleepable::enter();
        let mut nr = spare.no_reclaim();
        // As if 2^32 - 2 sections were forgotten inside the one opened here.
        let section = ReadSection::enter(&mut ctx);
        set_depths_for_test(depths(MAX, 0, 1));
        let msg = panic_message(|| drop(ReadSection::enter_nested(section.token())));
        assert!(msg.starts_with("rcu-ctx: read sections nested 4294967295 deep on one thread"));
        assert!(msg.contains("wrap the thread's read depth to 0"), "{msg}");
        assert!(msg.contains("rule: every scope ends"), "{msg}");
        assert!(msg.contains("refused and not counted"), "{msg}");
        assert_eq!(snapshot(), depths(MAX, 0, 1));
        let msg = panic_message(|| drop(ReadSection::enter(&mut nr)));
        assert!(msg.contains("read sections nested 4294967295 deep"), "{msg}");
        assert_eq!(snapshot(), depths(MAX, 0, 1));
        // The other depths still count, and the thread is still inside a read section.
        let spin = section.token().nested();
        assert_eq!(snapshot(), depths(MAX, 1, 1));
        let msg = panic_message(|| drop(Sleepable::enter()));
        assert!(msg.contains("Sleepable::enter() called inside an RCU read section"), "{msg}");
        drop(spin);
        drop(section);
        assert_eq!(snapshot(), depths(MAX - 1, 0, 1));

        set_depths_for_test(depths(0, MAX, 1));
        let msg = panic_message(|| drop(nr.atomic()));
        assert!(msg.starts_with("rcu-ctx: atomic scopes nested 4294967295 deep on one thread"));
        assert!(msg.contains("atomic depth"), "{msg}");
        // SAFETY: never reached: refused before the token exists.
        let msg = panic_message(|| drop(unsafe { Atomic::assume() }));
        assert!(msg.contains("atomic scopes nested 4294967295 deep"), "{msg}");
        assert_eq!(snapshot(), depths(0, MAX, 1));
        let msg = panic_message(|| drop(Sleepable::enter()));
        assert!(msg.contains("Sleepable::enter() called inside an atomic scope"), "{msg}");

        set_depths_for_test(depths(0, 0, MAX));
        let msg = panic_message(|| drop(nr.no_reclaim()));
        assert!(msg.starts_with("rcu-ctx: no-reclaim scopes nested 4294967295 deep"), "{msg}");
        assert!(msg.contains("no-reclaim depth"), "{msg}");
        assert_eq!(snapshot(), depths(0, 0, MAX));
        let msg = panic_message(|| drop(Sleepable::enter()));
        assert!(msg.contains("Sleepable::enter() called inside a no-reclaim scope"), "{msg}");

        set_depths_for_test(depths(0, 0, 1));
        drop(nr);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn a_refused_scope_unwinds_through_its_parents_and_each_uncounts_only_itself() {
        let mut ctx = Sleepable::enter();
        set_depths_for_test(depths(0, u32::MAX - 2, 0));
        let msg = panic_message(|| {
            let mut nr = ctx.no_reclaim();
            let mut a = nr.atomic();
            let b = a.atomic();
            assert_eq!(snapshot(), depths(0, u32::MAX, 1));
            let _refused = b.nested(); // `b` stays borrowed while this unwinds
            unreachable!("a scope past u32::MAX was counted");
        });
        assert!(msg.contains("atomic scopes nested 4294967295 deep"), "{msg}");
        // `b`, `a` and `nr` were dropped by the unwinding, each once; nothing else moved.
        assert_eq!(snapshot(), depths(0, u32::MAX - 2, 0));
        set_depths_for_test(Snapshot::default());
        let a = ctx.atomic();
        assert_eq!(snapshot(), depths(0, 1, 0));
        drop(a);
        assert_eq!(snapshot(), Snapshot::default());
    }

    #[test]
    fn the_root_count_goes_past_u32_max_and_reads_as_u32_max_there() {
        std::thread::spawn(|| {
            super::DEPTHS.with(|d| d.roots.store(u64::from(u32::MAX - 1), Ordering::Relaxed));
            let last = Sleepable::enter();
            assert_eq!(super::live_roots(), u32::MAX);
            let more = Sleepable::enter();
            assert_eq!(super::live_roots(), u32::MAX, "2^32 reads as u32::MAX");
            assert_eq!(super::DEPTHS.with(|d| d.roots.load(Ordering::Relaxed)), 1 << 32);
            drop(more);
            drop(last);
            assert_eq!(super::live_roots(), u32::MAX - 1, "exact below u32::MAX");
            super::DEPTHS.with(|d| d.roots.store(0, Ordering::Relaxed));
        })
        .join()
        .unwrap();
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
