//! The read side: per-thread registration and the read guard.
//!
//! Each thread registers lazily, once per domain, the first time it reads: it claims a slot
//! in the domain's registry and remembers it in a thread-local. The global domain's slot sits
//! in a `const`-initialised thread-local cell, so the fast path is a thread-pointer-relative
//! load, a null check and the reader word update of `raw::protocol`. Other domains' slots are
//! found in a short per-thread list. At thread exit the slots are released; a section left
//! open by a leaked guard is reported and force-ended so grace periods do not wait forever.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::ptr;
use std::sync::Arc;

use rcu_ctx::{Atomic, ReadSection};

use crate::domain::{DomainRef, DomainState, GLOBAL_STATE};
use crate::raw::protocol::ReaderWord;
use crate::registry::Slot;
use crate::stats::Counters;
use crate::worker::Worker;

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
    pub fn nest(&self) -> ReadGuard<'_> {
        let section = ReadSection::enter_nested(self.ctx());
        self.word.enter(self.domain.gp.seq.started_counter());
        ReadGuard { word: self.word, domain: self.domain, section }
    }

    /// True if this guard is a read section of `domain`: what a data structure of that
    /// domain checks before trusting the guard to keep its data alive (as
    /// [`RcuCell::load`](crate::RcuCell::load) does).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{Domain, DomainConfig};
    /// let other = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let guard = read_lock(&mut ctx);
    /// assert!(guard.is_of(Domain::global()));
    /// assert!(!guard.is_of(&other));
    /// ```
    #[inline]
    pub fn is_of(&self, domain: &crate::Domain) -> bool {
        ptr::eq(self.domain, domain.state())
    }

    /// Is this guard a read section of `domain`'s? Used to check that data of one domain is
    /// not read under another domain's guard.
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

thread_local! {
    /// This thread's slot in the global domain, or null before registration.
    static GLOBAL_SLOT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
    /// Releases the global slot at thread exit.
    static GLOBAL_EXIT: GlobalExit = const { GlobalExit };
    /// This thread's slots in other domains.
    static DOMAIN_SLOTS: RefCell<Vec<Registration>> = const { RefCell::new(Vec::new()) };
    /// True once this thread has touched `DOMAIN_SLOTS`. The first access to a thread-local
    /// with a destructor registers the destructor, which allocates (glibc `calloc`) and takes
    /// a loader lock: `find_slot`, which `Atomic` paths call, must not be that access. No
    /// destructor, so reading this one is a plain thread-local load.
    static HAS_DOMAIN_SLOTS: Cell<bool> = const { Cell::new(false) };
}

struct GlobalExit;

impl Drop for GlobalExit {
    fn drop(&mut self) {
        let slot = GLOBAL_SLOT.with(|s| s.replace(ptr::null()));
        // SAFETY: the global registry lives forever; the slot was claimed by this thread.
        if let Some(slot) = unsafe { slot.as_ref() } {
            release(&GLOBAL_STATE, slot);
        }
    }
}

/// A thread's registration with a non-global domain; keeps the domain's state alive.
struct Registration {
    domain: Arc<DomainState>,
    slot: *const Slot,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: slots live as long as their registry, which `self.domain` keeps alive.
        release(&self.domain, unsafe { &*self.slot });
    }
}

fn release(domain: &DomainState, slot: &Slot) {
    domain.adopt(slot);
    let leaked = domain.readers.release(slot);
    if leaked != 0 {
        Counters::bump(&domain.counters.leaked_read_sections);
        // Best effort: at thread exit stderr may be gone; nothing else to do then.
        let _ = writeln!(
            std::io::stderr(),
            "rcu-core: thread '{}' (tid {}) exited inside {} read section(s) of domain '{}': \
             a ReadGuard was leaked (mem::forget, or kept in a thread-local or static). The \
             section was ended so grace periods can proceed (rule: a read section ends, by \
             dropping its guard, on the thread that entered it). Fix: drop every guard; never \
             forget or store one.",
            slot.name().as_deref().unwrap_or("<unnamed>"),
            slot.tid(),
            leaked,
            domain.name()
        );
    }
}

/// Enters a read section of the global domain: the fast path.
#[inline]
pub(crate) fn read_lock_global<'a>(section: ReadSection<'a>) -> ReadGuard<'a> {
    let mut slot = GLOBAL_SLOT.with(Cell::get);
    if slot.is_null() {
        slot = register_global();
    }
    // SAFETY: a registered slot stays valid until this thread's exit, and the global
    // registry is never freed.
    let word: &'a ReaderWord = unsafe { &(*slot).word };
    word.enter(GLOBAL_STATE.gp.seq.started_counter());
    ReadGuard { word, domain: &GLOBAL_STATE, section }
}

#[cold]
fn register_global() -> *const Slot {
    crate::process::init();
    let slot: *const Slot = GLOBAL_STATE.readers.claim();
    GLOBAL_SLOT.with(|s| s.set(slot));
    // Arms the exit hook. During thread teardown it may already be gone: the slot then stays
    // claimed (but outside any section, so it holds up nothing) instead of being reused.
    let _ = GLOBAL_EXIT.try_with(|_| ());
    // The global domain's worker starts with its first reader (private domains start theirs
    // in `Domain::new`): a reader's `Atomic` requests (`start_poll`, `kvfree_rcu`) cannot
    // start it, and would otherwise wait for a sleepable call that may never come.
    // Registration allocates anyway; this is the same cold path.
    Worker::start(DomainRef::Global(&GLOBAL_STATE));
    slot
}

/// Enters a read section of a non-global domain.
#[inline]
pub(crate) fn read_lock_in<'a>(
    domain: &'a Arc<DomainState>,
    section: ReadSection<'a>,
) -> ReadGuard<'a> {
    let slot = find_slot(domain).unwrap_or_else(|| register_in(domain));
    // SAFETY: the slot lives as long as the domain state, which `domain` borrows for 'a.
    let word: &'a ReaderWord = unsafe { &(*slot).word };
    word.enter(domain.gp.seq.started_counter());
    ReadGuard { word, domain, section }
}

/// This thread's slot in a non-global domain. `None` also while the list is being changed
/// by the code a signal handler interrupted (the handler then counts as unregistered).
fn find_slot(domain: &DomainState) -> Option<*const Slot> {
    if !HAS_DOMAIN_SLOTS.with(Cell::get) {
        return None;
    }
    DOMAIN_SLOTS.with(|list| {
        let list = list.try_borrow().ok()?;
        list.iter().find(|r| ptr::eq(&*r.domain, domain)).map(|r| r.slot)
    })
}

#[cold]
fn register_in(domain: &Arc<DomainState>) -> *const Slot {
    crate::process::init();
    let slot: *const Slot = domain.readers.claim();
    DOMAIN_SLOTS.with(|list| {
        // Set inside: `DOMAIN_SLOTS` (and its destructor) is initialised by now, so a signal
        // handler that sees the flag never makes the first access.
        HAS_DOMAIN_SLOTS.with(|has| has.set(true));
        let mut list = list.try_borrow_mut().expect(
            "rcu-core: a signal handler entered a read section of a domain while the thread it \
             interrupted was registering with a domain (rule: registering allocates, so a \
             handler must find its thread already registered). Fix: register threads (one \
             read_lock, or Domain::register_current_thread) before their handlers use RCU",
        );
        // Registrations with dropped domains only keep their memory alive: let them go.
        list.retain(|r| r.domain.is_live());
        list.push(Registration { domain: domain.clone(), slot });
    });
    slot
}

/// The calling thread's slot in `domain`, if it has registered.
#[inline]
pub(crate) fn current_slot(domain: &DomainState) -> Option<&Slot> {
    let slot = if ptr::eq(domain, &GLOBAL_STATE) {
        Some(GLOBAL_SLOT.with(Cell::get)).filter(|s| !s.is_null())
    } else {
        find_slot(domain)
    };
    // SAFETY: a registered slot stays valid while the thread lives and the domain is
    // borrowed (the registration holds the domain alive).
    slot.map(|s| unsafe { &*s })
}

/// Registers the calling thread with `domain` unless it is (allocates the first time).
pub(crate) fn ensure_registered(domain: &DomainRef) {
    if current_slot(domain).is_none() {
        register(domain);
    }
}

/// Registers the calling thread with `domain` (allocates).
#[cold]
pub(crate) fn register(domain: &DomainRef) -> &Slot {
    let slot = match domain {
        DomainRef::Global(_) => register_global(),
        DomainRef::Owned(state) => register_in(state),
    };
    // SAFETY: as in `current_slot`.
    unsafe { &*slot }
}

/// Is the calling thread inside a read section of `domain`?
pub(crate) fn in_read_section(domain: &DomainState) -> bool {
    current_slot(domain).is_some_and(|s| s.word.depth() != 0)
}
