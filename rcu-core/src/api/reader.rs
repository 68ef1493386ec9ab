//! The read side: per-thread registration and the read guard.
//!
//! Each thread registers lazily, once per domain, the first time it reads: it claims a slot
//! in the domain's registry and remembers it in a thread-local. The global domain's slot sits
//! in a `const`-initialised thread-local cell, so the fast path is a thread-pointer-relative
//! load, a null check and the reader word update of `raw::protocol`. Other domains' slots are
//! found in a short per-thread list (`registration`, which also says how registrations end
//! at thread exit, and what happens to a section left open by a leaked guard).

use std::ptr;
use std::sync::Arc;

use rcu_ctx::{Atomic, ReadSection};

use crate::raw::protocol::ReaderWord;
use crate::read::registry::Slot;
use crate::state::registration;
use crate::state::{DomainRef, DomainState, GLOBAL_STATE};

/// A read section. While it lives, nothing removed from the domain's data after the section
/// began is freed; references loaded through it cannot outlive it.
///
/// Obtained from [`read_lock`](crate::read_lock) or [`Domain::read_lock`](crate::Domain::read_lock).
/// It is neither `Send` nor `Sync`: a section belongs to the thread that entered it.
///
/// ```
/// use rcu_core::prelude::*;
/// let cell = RcuCell::new(10);
/// let mut ctx = Sleepable::enter();
/// let guard: ReadGuard<'_> = read_lock(&mut ctx);
/// let value = cell.load(&guard);
/// assert_eq!(*value, 10);
/// drop(guard); // ends the section; `value` can no longer be used
/// ```
#[must_use = "the read section ends when the guard is dropped"]
#[derive(Debug)]
pub struct ReadGuard<'a> {
    word: &'a ReaderWord,
    domain: &'a DomainState,
    section: ReadSection<'a>,
}

impl<'a> ReadGuard<'a> {
    /// The `Atomic` token for code inside the section: it may call non-blocking,
    /// non-allocating operations such as `poll`.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let mut ctx = Sleepable::enter();
    /// let guard = read_lock(&mut ctx);
    /// let atomic = guard.ctx();
    /// kvfree_rcu(atomic, Rcu::boxed(1u8)); // queueing is fine inside a section
    /// let _cookie = start_poll(atomic);
    /// drop(guard);
    /// rcu_barrier(&ctx);
    /// ```
    #[inline]
    pub fn ctx(&self) -> &Atomic<'a> {
        self.section.token()
    }

    /// Enters a read section nested in this one (same domain). Nesting is cheap: it only
    /// counts; the outermost section is what grace periods wait for.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let mut ctx = Sleepable::enter();
    /// let outer = read_lock(&mut ctx);
    /// let inner = outer.nest();
    /// assert_eq!(rcu_core::thread_state::snapshot().read_depth, 2);
    /// drop(inner);
    /// drop(outer);
    /// ```
    #[inline]
    #[track_caller]
    pub fn nest(&self) -> ReadGuard<'_> {
        let section = ReadSection::enter_nested(self.ctx());
        self.word.enter(self.domain.gp.seq.started_counter());
        ReadGuard { word: self.word, domain: self.domain, section }
    }

    /// A quiescent state inside this section (`ReaderWord::refresh`): the QSBR online
    /// handle's, which holds the section for the whole online period.
    #[inline]
    pub(crate) fn refresh(&mut self) {
        self.word.refresh(self.domain.gp.seq.started_counter());
    }

    /// Nesting depth of the thread's sections of this domain, this one included.
    #[inline]
    pub(crate) fn depth(&self) -> u64 {
        self.word.depth()
    }

    /// The state of the domain this guard is a section of: what `is_of` and `RcuCell::load`
    /// compare, so that data of one domain is not read under another domain's guard.
    #[inline]
    pub(crate) fn domain_state(&self) -> &DomainState {
        self.domain
    }
}

impl Drop for ReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.word.exit();
    }
}

/// Enters a read section of the global domain: the fast path.
#[inline]
#[track_caller]
pub(crate) fn read_lock_global<'a>(section: ReadSection<'a>) -> ReadGuard<'a> {
    let mut slot = registration::global_slot();
    if slot.is_null() {
        slot = register_reader(&DomainRef::Global(&GLOBAL_STATE));
    }
    // SAFETY: a registered slot stays valid until this thread's exit, and the global
    // registry is never freed.
    let word: &'a ReaderWord = unsafe { &(*slot).word };
    word.enter(GLOBAL_STATE.gp.seq.started_counter());
    ReadGuard { word, domain: &GLOBAL_STATE, section }
}

/// Enters a read section of a non-global domain.
#[inline]
#[track_caller]
pub(crate) fn read_lock_in<'a>(
    domain: &'a Arc<DomainState>,
    section: ReadSection<'a>,
) -> ReadGuard<'a> {
    let slot = match registration::find_slot(domain) {
        Some(slot) => slot,
        None => register_reader(&DomainRef::Owned(domain.clone())),
    };
    // SAFETY: the slot lives as long as the domain state, which `domain` borrows for 'a.
    let word: &'a ReaderWord = unsafe { &(*slot).word };
    word.enter(domain.gp.seq.started_counter());
    ReadGuard { word, domain, section }
}

/// Registers a thread entering its first read section of a domain (the section was just
/// entered in the context state). Registering allocates, so it must not happen in an atomic
/// context: a read section entered from an `Atomic` token (a signal handler, a spinlock, a
/// callback, another section) on an unregistered thread panics instead of allocating.
#[cold]
#[track_caller]
fn register_reader(domain: &DomainRef) -> *const Slot {
    let state = rcu_ctx::thread_state::snapshot();
    if state.read_depth > 1 || state.atomic_depth != 0 {
        panic!(
            "rcu-core: first read section of domain '{}' on this thread entered from an atomic \
             context (a signal handler, an atomic scope, a callback or another read section): \
             registering the thread allocates, which an Atomic context may not (rule: Atomic \
             never allocates, even on a thread the runtime has never seen). Fix: register the \
             thread beforehand, where it may allocate: domain.register_current_thread(&ctx), or \
             one read_lock of that domain from a Sleepable or NoReclaim token",
            domain.name()
        );
    }
    crate::runtime::process::init();
    let slot: *const Slot = registration::register(domain);
    if let DomainRef::Global(state) = domain {
        // The global domain's worker starts with its first reader (private domains start
        // theirs in `Domain::new`): a reader's `Atomic` requests (`start_poll`, `kvfree_rcu`)
        // cannot start it, and would otherwise wait for a sleepable call that may never come.
        // Registration allocates anyway; this is the same cold path.
        crate::runtime::worker_thread::start(DomainRef::Global(state));
    }
    slot
}

/// The calling thread's slot in `domain`, if it has registered.
#[inline]
pub(crate) fn current_slot(domain: &DomainState) -> Option<&Slot> {
    let slot = if ptr::eq(domain, &GLOBAL_STATE) {
        Some(registration::global_slot()).filter(|s| !s.is_null())
    } else {
        registration::find_slot(domain)
    };
    // SAFETY: a registered slot lives as long as its domain's state, which the caller's
    // borrow of `domain` keeps alive.
    slot.map(|s| unsafe { &*s })
}

/// Registers the calling thread with `domain` unless it is (allocates the first time).
pub(crate) fn register(domain: &DomainRef) -> &Slot {
    let fresh = current_slot(domain).is_none();
    crate::runtime::process::init();
    let slot = registration::register(domain);
    if fresh && matches!(domain, DomainRef::Global(_)) {
        crate::runtime::worker_thread::start(domain.clone());
    }
    slot
}

/// Panics if the calling thread is inside a read section of `domain`: waiting for its grace
/// period would wait for itself forever.
#[track_caller]
pub(crate) fn assert_outside_section(domain: &DomainState) {
    // An executor's QSBR worker waits offline: grace periods stop paying membarrier for it.
    domain.offline_for_executor();
    let sleepable = current_slot(domain).is_some_and(|s| s.srcu.open_borrowed() != 0);
    assert!(
        !sleepable,
        "rcu-core: a wait for a grace period of sleepable domain '{}' inside one of its read \
         sections would wait for itself forever (rule: nothing waits for a grace period of an \
         SRCU domain inside a read section of the same domain). The SrcuStruct's own waits \
         refuse this at compile time; this wait went around them (a collection's or cell's \
         domain() engine, a second root, or a guard forgotten on this thread). Fix: end the \
         section first, or free with the section's token (guard.ctx()), which never waits",
        domain.name()
    );
    assert!(
        !in_read_section(domain),
        "rcu-core: waiting for a grace period inside a read section of the same domain \
         would wait for itself forever (rule: no synchronize_rcu or cond_synchronize inside \
         a read section). The token types rule this out except through a token the section \
         did not borrow: one captured by an RcuCell::update closure (which runs inside a \
         read section), a second root Sleepable, or a copy made with unsafe code. Fix: end \
         the read section first (in update closures, only compute the new value), or use \
         start_poll/poll or call_rcu instead of waiting"
    );
}

/// Is the calling thread inside a read section of `domain`?
pub(crate) fn in_read_section(domain: &DomainState) -> bool {
    current_slot(domain).is_some_and(|s| s.open_sections() != 0)
}
