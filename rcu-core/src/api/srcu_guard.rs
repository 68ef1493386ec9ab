//! The read guards of a sleepable (SRCU) domain: the borrowed guard, which stays on the
//! thread that made it and hands out a token that keeps the parent's powers, and the owned
//! guard, which may end on any thread (across `.await` in a `Send` future).
//!
//! Both count their section on the slot of the thread that began it, on the index it began
//! on (`raw::srcu`): the borrowed guard's end is an owner add, the owned guard's an atomic
//! add on the slot's shared line, whichever thread runs it.

use core::fmt;
use core::marker::PhantomData;

use rcu_ctx::{Context, SectionBrand, SleepableSection};

use crate::api::srcu_flavor::SrcuFlavor;
use crate::raw::srcu::SrcuCounters;
use crate::state::DomainState;

/// A sleepable read section entered with [`SrcuStruct::read_lock`](crate::SrcuStruct::read_lock).
/// While it lives, nothing removed from the domain's data after the section began is freed;
/// references loaded through it cannot outlive it.
///
/// The section may block, sleep, allocate and reclaim: its token, [`SrcuGuard::ctx`], has the
/// kind and powers of the token it was entered from. One thing stays forbidden, at compile
/// time: waiting for a grace period of this domain (of any domain of the same brand), which
/// would wait for the section itself.
///
/// It borrows its parent token and is neither `Send` nor `Sync`; for a section that moves
/// between threads or crosses `.await`, use [`SrcuStruct::down_read`](crate::SrcuStruct::down_read).
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("routes"));
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// std::thread::sleep(std::time::Duration::from_millis(1)); // a sleepable section may block
/// synchronize_rcu(guard.ctx()); // and wait for another domain's grace period
/// drop(guard);
/// srcu.synchronize_srcu(&ctx);
/// ```
#[must_use = "the read section ends when the guard is dropped"]
pub struct SrcuGuard<'a, F: SrcuFlavor, B: SectionBrand, C: Context> {
    counters: &'a SrcuCounters,
    index: usize,
    domain: &'a DomainState,
    section: SleepableSection<'a, B, C>,
    _flavor: PhantomData<fn() -> F>,
}

impl<'a, F: SrcuFlavor, B: SectionBrand, C: Context> SrcuGuard<'a, F, B, C> {
    /// Caller: counted a section on `counters` (its thread's slot), index `index`.
    pub(crate) fn new(
        counters: &'a SrcuCounters,
        index: usize,
        domain: &'a DomainState,
        section: SleepableSection<'a, B, C>,
    ) -> Self {
        SrcuGuard { counters, index, domain, section, _flavor: PhantomData }
    }

    /// The token for code inside the section: the parent's kind and powers, and the
    /// section's brand, so that a wait for a grace period of this domain with it does not
    /// compile.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, Rcu, SrcuStruct};
    ///
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let guard = srcu.read_lock(&mut ctx);
    /// // Frees never wait for this domain's grace periods from inside its section.
    /// srcu.kvfree_srcu(guard.ctx(), Rcu::boxed(String::from("old route")));
    /// drop(guard);
    /// srcu.srcu_barrier(&ctx);
    /// ```
    #[inline]
    pub fn ctx(&self) -> &SleepableSection<'a, B, C> {
        &self.section
    }

    /// As [`SrcuGuard::ctx`], mutably: to open scopes (`atomic()`, `no_reclaim()`) and
    /// sections of other domains from inside this one.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    ///
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let cell = RcuCell::new(7);
    /// let mut ctx = Sleepable::enter();
    /// let mut guard = srcu.read_lock(&mut ctx);
    /// let classic = read_lock(guard.ctx_mut()); // a classic section inside: may not block
    /// assert_eq!(*cell.load(&classic), 7);
    /// ```
    #[inline]
    pub fn ctx_mut(&mut self) -> &mut SleepableSection<'a, B, C> {
        &mut self.section
    }

    /// The index (0 or 1) the section counted on: what the kernel's `srcu_read_lock`
    /// returns. For diagnostics and measurements.
    pub fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn domain_state(&self) -> &'a DomainState {
        self.domain
    }
}

impl<F: SrcuFlavor, B: SectionBrand, C: Context> Drop for SrcuGuard<'_, F, B, C> {
    #[inline]
    fn drop(&mut self) {
        self.counters.unlock(self.index);
    }
}

impl<F: SrcuFlavor, B: SectionBrand, C: Context> fmt::Debug for SrcuGuard<'_, F, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrcuGuard")
            .field("domain", &self.domain.name())
            .field("flavor", &F::NAME)
            .field("index", &self.index)
            .finish()
    }
}

/// A sleepable read section that is not tied to a thread: made with
/// [`SrcuStruct::down_read`](crate::SrcuStruct::down_read) (the kernel's `srcu_down_read`),
/// it may be sent to another thread, dropped there (or in a signal handler, or an `Atomic`
/// scope), and held across `.await` in a `Send` future. It borrows the domain; references
/// loaded through it borrow the guard.
///
/// Dropping it is [`SrcuOwnedGuard::up_read`]. One atomic add, on the counters of the thread
/// that made it, whichever thread drops it.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// std::thread::scope(|s| {
///     s.spawn(move || guard.up_read()); // ends on another thread
/// });
/// srcu.synchronize_srcu(&ctx);
/// ```
#[must_use = "the read section ends when the guard is dropped"]
pub struct SrcuOwnedGuard<'d, F: SrcuFlavor, B: SectionBrand> {
    counters: &'d SrcuCounters,
    index: usize,
    domain: &'d DomainState,
    _marker: PhantomData<fn() -> (F, B)>,
}

impl<'d, F: SrcuFlavor, B: SectionBrand> SrcuOwnedGuard<'d, F, B> {
    /// Caller: counted an owned section on `counters`, index `index`.
    pub(crate) fn new(counters: &'d SrcuCounters, index: usize, domain: &'d DomainState) -> Self {
        SrcuOwnedGuard { counters, index, domain, _marker: PhantomData }
    }

    /// Ends the section (the kernel's `srcu_up_read`): the same as dropping the guard. Any
    /// thread, any context: one atomic add, no lock, no allocation.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// let guard = srcu.down_read(&ctx);
    /// guard.up_read();
    /// srcu.synchronize_srcu(&ctx); // nothing holds it
    /// ```
    #[inline]
    pub fn up_read(self) {
        drop(self);
    }

    /// The index (0 or 1) the section counted on: what the kernel's `srcu_down_read`
    /// returns. For diagnostics and measurements (which grace periods wait for this guard:
    /// the one in progress drains this index last if it was current when it started).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let guard = srcu.down_read(&Sleepable::enter());
    /// assert!(guard.index() < 2);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn domain_state(&self) -> &'d DomainState {
        self.domain
    }
}

impl<F: SrcuFlavor, B: SectionBrand> Drop for SrcuOwnedGuard<'_, F, B> {
    #[inline]
    fn drop(&mut self) {
        self.counters.unlock_owned(self.index);
    }
}

impl<F: SrcuFlavor, B: SectionBrand> fmt::Debug for SrcuOwnedGuard<'_, F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrcuOwnedGuard")
            .field("domain", &self.domain.name())
            .field("flavor", &F::NAME)
            .field("index", &self.index)
            .finish()
    }
}
