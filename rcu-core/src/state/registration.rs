//! A thread's registrations with domains, and how they end when the thread exits.
//!
//! A thread registers with a domain the first time it reads there, or queues work there with
//! a token that may allocate: it claims a slot in the domain's registry. The global domain's
//! slot sits in a `const` thread-local cell (the read fast path); other domains' in a list on
//! the heap, reached through a `const` thread-local pointer. Neither thread-local has a
//! destructor, so both stay usable from any other thread-local's destructor, in any order.
//!
//! Registrations end in the destructor of a pthread key, which glibc runs after every
//! `thread_local!` destructor of the thread (`__call_tls_dtors` runs before
//! `__nptl_deallocate_tsd` in `start_thread`): by then every guard kept in a thread-local has
//! been dropped, unless it never will be. Another key's destructor that uses RCU registers
//! again and re-arms the key; glibc then runs the destructors once more (up to
//! `PTHREAD_DESTRUCTOR_ITERATIONS` rounds).
//!
//! # A section left open at thread exit (DESIGN §5.1)
//! A read section ends when its guard is dropped, or when nothing can reach through it any
//! more. At exit, a slot whose word still shows an open section had its guard forgotten or
//! leaked. Every guard borrows a root `Sleepable` of its thread (directly, or through the
//! scopes and guards derived from it), and every reference loaded through a guard borrows the
//! guard. So:
//! - if every root the thread acquired has been dropped (`live_roots() == 0`), no borrow of
//!   one is alive, hence no guard and no reference loaded through one: the guard was
//!   `mem::forget`-ed (which moves it, so nothing borrowed it any more). The section is ended,
//!   reported, and the slot reused;
//! - otherwise a root was leaked (`Box::leak`), and the guard and its references may be
//!   `'static`, held by other threads. The section stays open for ever: the slot is abandoned
//!   (never reused, still scanned), its domain is kept alive, every later grace period of the
//!   domain waits for it, and stall reports name it as a leaked guard.
//!
//! A registration with another domain ends when the domain's state is gone (its `Domain` and
//! every cell of it dropped): the state's drop has run what its slots held, and the next
//! registration elsewhere removes the dead entry. A domain whose handle alone was dropped
//! keeps its registrations: its cells live on, and an `Atomic` update of one (which may not
//! allocate, so may not register) needs the thread's slot, as may a section of it still open
//! (`RcuCell::update` reads in one, and its closure may register this thread elsewhere).

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use rcu_ctx::thread_state;

use crate::read::registry::Slot;
use crate::state::{DomainRef, DomainState, GLOBAL_STATE};
use crate::stats::Counters;

/// A thread's registration with a non-global domain. It does not keep the domain's state
/// alive (a thread that used a domain once must not keep its worker running for the rest of
/// its life): the state outlives every registration's use of it because every use borrows a
/// `Domain` or a cell, which hold the state. The `Weak` keeps the state's allocation, so its
/// address cannot be reused by another domain while this entry exists. When the last strong
/// reference goes, the state runs what its slots still hold and frees them
/// (`DomainState::drop`); the entry is then dead and skipped.
struct Registration {
    domain: Weak<DomainState>,
    slot: *const Slot,
}

type DomainList = RefCell<Vec<Registration>>;

thread_local! {
    /// This thread's slot in the global domain, or null before registration.
    static GLOBAL_SLOT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
    /// This thread's registrations with other domains (a leaked `Box<DomainList>`), or null.
    static DOMAIN_LIST: Cell<*const DomainList> = const { Cell::new(ptr::null()) };
}

/// The calling thread's global slot, or null: the read fast path.
#[inline(always)]
pub(crate) fn global_slot() -> *const Slot {
    GLOBAL_SLOT.with(Cell::get)
}

/// Registers the calling thread with the global domain (allocates the first time a slot is
/// added to the registry).
#[cold]
pub(crate) fn register_global() -> *const Slot {
    // The reader words' barrier mode must be decided before a slot is set up (the rest of
    // `process::init` has run: callers register through `reader`, or are runtime threads).
    crate::raw::barrier::init();
    let slot: *const Slot = GLOBAL_STATE.readers.claim();
    GLOBAL_SLOT.with(|s| s.set(slot));
    arm_exit_hook();
    slot
}

/// The last registration `find_slot` found in the list: a thread that reads one private
/// domain in a loop (a sleepable domain's readers, a collection's) finds its slot without
/// borrowing and walking the list.
///
/// Signal-safe without a lock: `set` raises `filling`, clears the domain, writes the slot,
/// writes the domain and lowers `filling`; `get` misses while `filling` is up, else reads the
/// domain, the slot, the domain again, and trusts the slot only if both reads of the domain
/// name the caller's. A handler that fills the cache between a reader's loads changes the
/// domain it reads second (or writes the same domain's slot, its only one). A handler that
/// interrupts a fill neither trusts nor fills the cache: its own fill, between the fill's
/// slot and domain stores, left the cache naming one domain with another's slot (red team of
/// issue 25: a section of one domain counted on another's slot, and freed under).
///
/// Sound because the entry is cleared before its registration ends (its slot may then be
/// released and claimed by another thread), and while the registration exists its `Weak`
/// keeps the state's allocation, so no other domain can have the cached address: a caller's
/// live `&DomainState` equal to it is that domain, whose slots are alive.
struct FoundCache {
    /// Up while `set` writes the other two.
    filling: AtomicBool,
    domain: AtomicPtr<DomainState>,
    slot: AtomicPtr<Slot>,
}

impl FoundCache {
    #[inline]
    fn get(&self, domain: &DomainState) -> Option<*const Slot> {
        let wanted: *const DomainState = domain;
        // Relaxed (all four): this thread's own cells; a signal handler on this thread is
        // ordered against us by the compiler fences (the signal fences of the protocol).
        if self.filling.load(Ordering::Relaxed) {
            return None;
        }
        compiler_fence(Ordering::SeqCst);
        let first = self.domain.load(Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        let slot = self.slot.load(Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        let again = self.domain.load(Ordering::Relaxed);
        (ptr::eq(first, wanted) && ptr::eq(again, wanted)).then_some(slot.cast_const())
    }

    fn set(&self, domain: &DomainState, slot: *const Slot) {
        // Relaxed (all): as in `get`. A handler that interrupted a fill leaves it alone.
        if self.filling.load(Ordering::Relaxed) {
            return;
        }
        self.filling.store(true, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        self.domain.store(ptr::null_mut(), Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        self.slot.store(slot.cast_mut(), Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        self.domain.store(ptr::from_ref(domain).cast_mut(), Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        self.filling.store(false, Ordering::Relaxed);
    }

    /// Before any registration of this thread ends.
    fn clear(&self) {
        // Relaxed: as in `get`.
        self.domain.store(ptr::null_mut(), Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }
}

thread_local! {
    static FOUND: FoundCache = const {
        FoundCache {
            filling: AtomicBool::new(false),
            domain: AtomicPtr::new(ptr::null_mut()),
            slot: AtomicPtr::new(ptr::null_mut()),
        }
    };
}

/// This thread's slot in a non-global domain. `None` also while the list is being changed by
/// the code a signal handler interrupted (the handler then counts as unregistered).
#[inline]
pub(crate) fn find_slot(domain: &DomainState) -> Option<*const Slot> {
    if let Some(slot) = FOUND.with(|found| found.get(domain)) {
        return Some(slot);
    }
    find_slot_in_list(domain)
}

/// `find_slot`'s walk of the list, which fills the cache with what it finds.
fn find_slot_in_list(domain: &DomainState) -> Option<*const Slot> {
    let list = DOMAIN_LIST.with(Cell::get);
    // SAFETY: a non-null pointer is this thread's live list: only the exit hook frees it, on
    // this thread, after nulling the pointer.
    let list = unsafe { list.as_ref()? };
    let list = list.try_borrow().ok()?;
    let slot = list.iter().find(|r| ptr::eq(r.domain.as_ptr(), domain)).map(|r| r.slot)?;
    FOUND.with(|found| found.set(domain, slot));
    Some(slot)
}

/// Registers the calling thread with a non-global domain (allocates).
#[cold]
pub(crate) fn register_in(domain: &Arc<DomainState>) -> *const Slot {
    // The reader words' barrier mode must be decided before a slot is set up (the rest of
    // `process::init` has run: callers register through `reader`, or are runtime threads).
    crate::raw::barrier::init();
    let mut list = DOMAIN_LIST.with(Cell::get);
    if list.is_null() {
        list = Box::into_raw(Box::new(DomainList::new(Vec::new())));
        DOMAIN_LIST.with(|l| l.set(list));
    }
    arm_exit_hook();
    // SAFETY: as in `find_slot`.
    let list = unsafe { &*list };
    let mut list = list.try_borrow_mut().expect(
        "rcu-core: a signal handler entered a read section of a domain while the thread it \
         interrupted was registering with a domain (rule: registering allocates, so a handler \
         must find its thread already registered). Fix: register threads (one read_lock, or \
         Domain::register_current_thread) before their handlers use RCU",
    );
    // Entries of states that are gone are removed (their slots went with them); a domain
    // whose handle alone was dropped keeps its entry (see the module docs).
    // The cache is cleared first: removing an entry frees its state's allocation, whose
    // address another domain may then take.
    if list.iter().any(|r| r.domain.strong_count() == 0) {
        FOUND.with(FoundCache::clear);
        list.retain(|r| r.domain.strong_count() != 0);
    }
    let slot: *const Slot = domain.readers.claim();
    list.push(Registration { domain: Arc::downgrade(domain), slot });
    slot
}

/// Registers the calling thread with `domain` unless it is (allocates the first time).
pub(crate) fn register(domain: &DomainRef) -> &Slot {
    let slot = match domain {
        DomainRef::Global(_) => match global_slot() {
            s if s.is_null() => register_global(),
            s => s,
        },
        DomainRef::Owned(state) => find_slot(state).unwrap_or_else(|| register_in(state)),
    };
    // SAFETY: a slot lives as long as its domain's state (the global one for ever), which
    // the caller's borrow of `domain` keeps alive.
    unsafe { &*slot }
}

/// Ends the calling thread's registration with `domain`, if any (a worker that stops).
/// The thread must not be inside a read section of `domain`.
pub(crate) fn unregister(domain: &DomainState) {
    if ptr::eq(domain, &GLOBAL_STATE) {
        let slot = GLOBAL_SLOT.with(|s| s.replace(ptr::null()));
        if !slot.is_null() {
            end(domain, slot, Ending::Unregistered);
        }
        return;
    }
    let list = DOMAIN_LIST.with(Cell::get);
    // SAFETY: as in `find_slot`.
    let Some(list) = (unsafe { list.as_ref() }) else { return };
    let Ok(mut list) = list.try_borrow_mut() else { return };
    let Some(i) = list.iter().position(|r| ptr::eq(r.domain.as_ptr(), domain)) else { return };
    FOUND.with(FoundCache::clear);
    let r = list.swap_remove(i);
    drop(list);
    end(domain, r.slot, Ending::Unregistered);
}

/// Ends every read section the calling thread has open, in every domain it is registered
/// with, counting each in its domain's `leaked_read_sections`; returns how many. Caller: a
/// runtime thread whose sections were all entered and forgotten by user code it ran, so
/// that nothing can reach through them (see `worker_thread::UserCode`).
pub(crate) fn end_forgotten_sections() -> u64 {
    let mut ended = 0;
    let mut end = |domain: &DomainState, slot: *const Slot| {
        // SAFETY: a registration of this thread keeps its slot alive while its domain lives;
        // the caller (a worker) holds its domain, and the others are upgraded below.
        let slot = unsafe { &*slot };
        if slot.open_sections() != 0 {
            slot.force_end_sections();
            Counters::bump(&domain.counters.leaked_read_sections);
            ended += 1;
        }
    };
    let global = global_slot();
    if !global.is_null() {
        end(&GLOBAL_STATE, global);
    }
    let list = DOMAIN_LIST.with(Cell::get);
    // SAFETY: as in `find_slot`.
    if let Some(Ok(list)) = unsafe { list.as_ref() }.map(RefCell::try_borrow) {
        for r in list.iter() {
            if let Some(state) = r.domain.upgrade() {
                end(&state, r.slot);
            }
        }
    }
    ended
}

/// True if the calling thread has a sleepable section open, through a borrowed guard, in
/// any domain it is registered with (a worker, after user code: see `UserCode`). Such a
/// section changes no depth of the thread's context state.
pub(crate) fn any_open_sleepable_section() -> bool {
    let open = |slot: *const Slot| {
        // SAFETY: a registration of this thread keeps its slot alive while its domain lives:
        // the global one for ever, the others upgraded below for the look.
        unsafe { &*slot }.srcu.open_borrowed() != 0
    };
    let global = global_slot();
    if !global.is_null() && open(global) {
        return true;
    }
    let list = DOMAIN_LIST.with(Cell::get);
    // SAFETY: as in `find_slot`.
    let Some(Ok(list)) = (unsafe { list.as_ref() }).map(RefCell::try_borrow) else {
        return false;
    };
    list.iter().any(|r| r.domain.upgrade().is_some_and(|_state| open(r.slot)))
}

/// Why a registration ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The thread is exiting.
    ThreadExit,
    /// The thread asked (outside any section of the domain).
    Unregistered,
}

/// Ends one registration: hands the slot's staged work to the domain's worker, then releases
/// the slot, or abandons it with its section open (see the module docs). Returns true if the
/// slot was abandoned: the caller must then keep the domain's state alive for ever.
fn end(domain: &DomainState, slot: *const Slot, why: Ending) -> bool {
    // SAFETY: the registration being ended kept the slot (and its registry) alive.
    let slot = unsafe { &*slot };
    domain.adopt(slot);
    // A thread that ends online for its QSBR executor (without the stop hook): grace periods
    // stop issuing membarrier for it.
    slot.end_executor_online();
    let depth = slot.open_sections();
    // What was leaked, for the report: a sleepable section shows in no word.
    let guard = if slot.word.depth() == 0 { "an SrcuGuard" } else { "a ReadGuard" };
    if depth == 0 {
        domain.readers.release(slot);
        return false;
    }
    Counters::bump(&domain.counters.leaked_read_sections);
    // Only an exiting thread with every root dropped may end a section: nothing can reach
    // through it any more (see the module docs). Otherwise it may still be reached (a leaked
    // root; or, for an unregistering thread, which never reaches here with a section open,
    // whatever holds it): it stays open, its slot abandoned.
    if why != Ending::ThreadExit || thread_state::live_roots() != 0 {
        domain.readers.abandon(slot);
        report(domain, slot, depth, guard, true);
        return true;
    }
    // No guard can reach the section: forgotten guards.
    slot.force_end_sections();
    domain.readers.release(slot);
    report(domain, slot, depth, guard, false);
    false
}

fn report(domain: &DomainState, slot: &Slot, depth: u64, guard: &str, kept: bool) {
    let what = if kept {
        "Its root Sleepable was leaked too, so the guard and references loaded through it may \
         live for ever: the section stays open, and every later grace period of the domain \
         waits for it (stall reports name this thread)"
    } else {
        "Every root Sleepable of the thread had been dropped, so nothing could reach through \
         the guard (it was mem::forget-ed): the section was ended"
    };
    rcu_sys::stderr::report_line(&format!(
        "rcu-core: thread '{}' (tid {}) exited inside {} read section(s) of domain '{}': {} \
         was leaked. {what}. Rule: a read section ends when its guard is dropped. Fix: drop \
         every guard on the thread that made it; never forget, leak or store one.",
        slot.name().as_deref().unwrap_or("<unnamed>"),
        slot.tid(),
        depth,
        domain.name(),
        guard
    ));
}

/// The pthread key whose destructor ends the thread's registrations. Made by the first
/// registration; a race makes two and keeps one. (An atomic rather than a `OnceLock`, whose
/// synchronisation inside uninstrumented std ThreadSanitizer cannot see.)
fn exit_key() -> libc::pthread_key_t {
    const UNSET: u64 = u64::MAX;
    static KEY: AtomicU64 = AtomicU64::new(UNSET);
    // Acquire: pairs with the Release CAS below that published the key.
    let key = KEY.load(Ordering::Acquire);
    if key != UNSET {
        return key as libc::pthread_key_t;
    }
    let mut new: libc::pthread_key_t = 0;
    // SAFETY: `new` is writable; the destructor is an `extern "C" fn` that lives forever.
    let rc = unsafe { libc::pthread_key_create(&mut new, Some(on_thread_exit)) };
    assert!(
        rc == 0,
        "rcu-core: pthread_key_create failed ({rc}): the process is out of thread keys \
         (PTHREAD_KEYS_MAX) or memory; the runtime needs one to end registrations at thread \
         exit"
    );
    // Release: publishes the key; Acquire on failure: pairs with the winner's Release.
    match KEY.compare_exchange(UNSET, u64::from(new), Ordering::Release, Ordering::Acquire) {
        Ok(_) => new,
        Err(winner) => {
            // SAFETY: `new` was created above and never armed on any thread.
            unsafe { libc::pthread_key_delete(new) };
            winner as libc::pthread_key_t
        }
    }
}

/// Makes sure `on_thread_exit` runs when this thread exits (idempotent).
fn arm_exit_hook() {
    // Any non-null value arms the destructor; it carries no data.
    let armed = ptr::NonNull::<u8>::dangling().as_ptr().cast::<libc::c_void>();
    // SAFETY: a key from `pthread_key_create`; the value is never dereferenced.
    unsafe { libc::pthread_setspecific(exit_key(), armed) };
}

extern "C" fn on_thread_exit(_armed: *mut libc::c_void) {
    // Nothing may unwind out of a C destructor, a panic payload's drop included; nothing
    // below is expected to panic (a dropped state's final run contains its callbacks').
    let _ = rcu_sys::contain::contain(end_thread_registrations);
}

fn end_thread_registrations() {
    FOUND.with(FoundCache::clear);
    let slot = GLOBAL_SLOT.with(|s| s.replace(ptr::null()));
    if !slot.is_null() {
        end(&GLOBAL_STATE, slot, Ending::ThreadExit);
    }
    let list = DOMAIN_LIST.with(|l| l.replace(ptr::null()));
    if list.is_null() {
        return;
    }
    // SAFETY: created by Box::into_raw in `register_in`; the pointer was taken out of the
    // thread-local above, so this is its only owner.
    let list = unsafe { Box::from_raw(list.cast_mut()) };
    for r in list.into_inner() {
        // A state already gone ran and freed its slots itself.
        let Some(state) = r.domain.upgrade() else { continue };
        if end(&state, r.slot, Ending::ThreadExit) {
            // The abandoned section may be reached for ever: so may the domain's state.
            core::mem::forget(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::state::DomainRef;
    use crate::{Domain, DomainConfig, Sleepable};

    /// How many domains other than the global one the calling thread's list holds.
    fn entries() -> usize {
        let list = super::DOMAIN_LIST.with(std::cell::Cell::get);
        if list.is_null() {
            return 0;
        }
        // SAFETY: as in `find_slot`; no registration runs meanwhile on this thread.
        unsafe { &*list }.borrow().len()
    }

    /// Issue 22, defect 3: a cell that outlives its `Domain` reads in a section of the dead
    /// domain during `RcuCell::update` (a section on the slot's word, no guard); the closure
    /// may register this thread with another domain, whose sweep of dead domains' entries
    /// force-ended that open section and released the slot, so the value the closure reads
    /// could be freed under it. The sweep now keeps every entry whose state lives (issue 25,
    /// red team 25b defect 3: an `Atomic` update of such a cell needs the slot too), and
    /// removes it once the state is gone.
    #[test]
    fn registering_elsewhere_ends_only_registrations_whose_state_is_gone() {
        let ctx = Sleepable::enter();
        let dead = Domain::new(DomainConfig::new().name("dropped"));
        dead.register_current_thread(&ctx);
        let state = dead.state_ref(); // what a cell keeps
        let slot: *const crate::read::registry::Slot =
            super::find_slot(&state).expect("registered with the domain");
        // SAFETY: the registration (and `state`) keep the slot alive for this test.
        let word = unsafe { &(*slot).word };
        word.enter(state.gp.seq.started_counter()); // as `RcuCell::update` does
        drop(dead);
        let other = Domain::new(DomainConfig::new().name("elsewhere"));
        other.register_current_thread(&ctx); // sweeps dropped domains' registrations
        assert_eq!(word.depth(), 1, "the open section of the dropped domain was ended");
        assert_eq!(
            super::find_slot(&state),
            Some(slot),
            "the registration of the dropped domain was ended inside its section"
        );
        word.exit();
        let third = Domain::new(DomainConfig::new().name("third"));
        third.register_current_thread(&ctx);
        assert_eq!(
            super::find_slot(&state),
            Some(slot),
            "the registration of a domain whose cells live on was ended"
        );
        let held = entries();
        let DomainRef::Owned(arc) = &state else { unreachable!("an owned domain") };
        let weak = std::sync::Arc::downgrade(arc);
        drop(state); // the last cell: the worker lets the state go
        let start = Instant::now();
        while weak.strong_count() != 0 {
            assert!(start.elapsed() < Duration::from_secs(60), "hung: the state lived on");
            std::thread::sleep(Duration::from_millis(1));
        }
        let fourth = Domain::new(DomainConfig::new().name("fourth"));
        fourth.register_current_thread(&ctx);
        assert_eq!(entries(), held, "the gone state's entry was not removed (one added)");
    }
}
