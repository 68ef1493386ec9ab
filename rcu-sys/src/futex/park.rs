//! The park backend: sleeping on a word without a futex, for Unixes that have none (and for
//! Linux under `--cfg rcu_force_park`, so CI runs it).
//!
//! # Design
//! A global, fixed table of [`SLOTS`] wait slots. A slot's `word` is `FREE`, claimed (odd:
//! owned by the waiter it names, which is not, or no longer, findable) or the address a
//! waiter sleeps on; `busy` counts the notifiers reading its `thread`, the owner's
//! `std::thread::Thread` handle.
//!
//! - Waiter on `addr` (`wait`): claims a free slot (CAS `FREE -> claimed_by(mark)`), records
//!   itself as `owner`, writes its handle, stores `word = addr` (W1), re-reads the futex word
//!   (W2) and parks while it equals `expected` and the timeout has not passed. To leave:
//!   stores `word = claimed_by(mark)` (L1), waits until `busy == 0` (L2), takes its handle
//!   back, stores `word = FREE`.
//! - Notifier (`wake_all(addr)`), after changing the futex word (N0): reads the high-water
//!   mark of claimed slots, then for each slot below it whose `word == addr` (N1): `busy += 1`
//!   (N2), re-checks `word == addr` (N3), unparks the handle, `busy -= 1`.
//!
//! Why not a mutex and condition variable: the wake runs in signal handlers (an `Atomic`
//! context), and a handler that interrupts the thread holding the mutex would deadlock.
//! Here the wake takes no lock and allocates nothing: a few atomics per slot and
//! `Thread::unpark`, which is lock-free on every tier-1 Unix target (std's parker is an atomic
//! state over the futex on Linux, `__ulock`/`os_sync` wake-by-address on macOS, `_umtx_op`
//! on FreeBSD, `_lwp_unpark` on NetBSD): that is why the wake stays usable from a signal
//! handler there, as the futex's is.
//!
//! # Why no wake-up is lost
//! W1, W2, N0 and N1 are SeqCst, so they lie in one total order. If W2 does not read N0's
//! change, W2 precedes N0, so W1 precedes N1 (and the waiter's update of the high-water mark,
//! SeqCst before W1, precedes the notifier's SeqCst read of it): N1 reads `addr`, unless the
//! waiter has already left, and the notifier unparks it. An unpark before the park makes the
//! park return at once (std's token), and it synchronizes with the park's return, so the
//! waiter's next W2 reads the change. If W2 reads the change, the waiter does not sleep.
//!
//! # Why a notifier never reads a handle being taken or replaced
//! L1, L2, N2 and N3 are SeqCst (the store-buffering pair). A notifier reads the handle only
//! if N3 reads an address; then N3 precedes that owner's L1 (a later SeqCst store would
//! have been read), so N2 precedes L2, which reads N2's increment or a later value: the owner
//! waits until the notifier's Release decrement, which orders the read before the owner
//! takes the handle. The handle N3's address belongs to was written before that address was
//! stored (Release in the SeqCst store, Acquire in N3): a slot reused by a new owner between
//! N1 and N3 is safe to read as well.
//!
//! # Limits
//! - All slots taken (more than [`SLOTS`] threads waiting at once): the waiter polls instead,
//!   re-reading the word at least every millisecond ([`POLL`]) and trying for a slot again.
//!   Correct, with up to a millisecond of wake-up latency.
//! - A notifier is slower than a futex wake by a scan of the claimed part of the table, and
//!   a leaving waiter may spin (then yield) while a notifier is between N2 and its decrement:
//!   a few instructions and one unpark, unless the notifier is descheduled there.
//! - The handle comes from a thread-local cache (`handle.rs`): on a thread whose Rust
//!   thread-locals were already destroyed (code in a pthread key destructor), the waiter
//!   polls as above.
//! - Fork: the child inherits slots claimed by threads that do not exist there (and possibly
//!   `busy > 0` from a notifier that was mid-scan). They only cost capacity (a notifier that
//!   unparks a dead thread's handle touches memory the child owns, and nothing more), but
//!   `reset_after_fork` forgets them, leaking their handles rather than dropping them. It
//!   keeps the forking thread's own slot (a signal handler that interrupted its wait may have
//!   forked), and slots with `busy > 0` (left taken for ever: the decrement may still come
//!   from a notifier on the forking thread's stack, and a slot less is only capacity). One
//!   case it cannot repair: the forking handler nested inside a handler that was notifying
//!   the forking thread's own slot, itself interrupting that thread's wait.

use std::cell::UnsafeCell;
use std::hint;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

mod handle;
#[cfg(test)]
mod tests;

// Unused in unit-test builds of the futex backend, which compile this module for its tests.
#[cfg_attr(test, allow(dead_code))]
pub(super) const NAME: &str = "park";

/// Wait slots. The unit tests use few, so that they fill the table and reach the polling
/// fallback with a handful of threads.
pub(crate) const SLOTS: usize = if cfg!(test) { 8 } else { 128 };

/// How long a waiter without a slot sleeps before it re-reads the word.
pub(crate) const POLL: Duration = Duration::from_millis(1);

/// A slot's `word` when nobody owns it.
const FREE: usize = 0;

/// A slot's `word` while the thread with `handle::mark` `mark` owns it but is not findable
/// by notifiers (claiming or leaving): odd, so never a waited-on address (an `AtomicU32` is
/// 4-aligned), and naming the owner, so that a forked child tells the forking thread's slot
/// from the rest at every step of its claim (`reset_after_fork`).
fn claimed_by(mark: usize) -> usize {
    (mark << 1) | 1
}

struct Slot {
    word: AtomicUsize,
    busy: AtomicU32,
    thread: UnsafeCell<Option<Thread>>,
    /// The owner's `handle::mark`, read only by `reset_after_fork`.
    owner: AtomicUsize,
}

// SAFETY: `thread` is written only by the slot's owner, while `word` is claimed (no notifier
// reads it then: they read it only after seeing an address, and the owner takes it back only
// once `busy` says no notifier is reading), and read by notifiers only through `&Thread`
// (`unpark` takes `&self`; `Thread` is Sync). See the module docs.
unsafe impl Sync for Slot {}

impl Slot {
    const fn new() -> Self {
        Slot {
            word: AtomicUsize::new(FREE),
            busy: AtomicU32::new(0),
            thread: UnsafeCell::new(None),
            owner: AtomicUsize::new(0),
        }
    }
}

struct Table {
    slots: [Slot; SLOTS],
    /// One past the highest slot ever claimed (since start or the last fork): notifiers scan
    /// only below it.
    high: AtomicUsize,
}

static TABLE: Table = Table { slots: [const { Slot::new() }; SLOTS], high: AtomicUsize::new(0) };

pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    // A timeout too large for an `Instant` is no timeout.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let addr = word.as_ptr() as usize;
    loop {
        // SeqCst: W2 of the module's argument (a first check, before claiming).
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        if let Some(slot) = handle::current().and_then(claim) {
            sleep(slot, word, addr, expected, deadline);
            leave(slot);
            return;
        }
        // No slot (or no handle): poll.
        let nap = match deadline {
            None => POLL,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(POLL),
                _ => return,
            },
        };
        // A sleep, not a park: it neither takes nor leaves an unpark token meant for other
        // code parking this thread.
        thread::sleep(nap);
    }
}

/// Claims a free slot for `me`, or `None` if every slot is taken.
fn claim(me: Thread) -> Option<&'static Slot> {
    let mut me = Some(me);
    for i in 0..SLOTS {
        // Relaxed: a hint that skips taken slots; the CAS decides.
        if TABLE.slots[i].word.load(Ordering::Relaxed) != FREE {
            continue;
        }
        if let Some(slot) = claim_slot(i, &mut me, || {}) {
            return Some(slot);
        }
    }
    None
}

/// Claims slot `i` for the handle in `me` (taken from it on success). `between` runs
/// between the steps: nothing, but a test's fork, as from a signal handler.
fn claim_slot(
    i: usize,
    me: &mut Option<Thread>,
    mut between: impl FnMut(),
) -> Option<&'static Slot> {
    let slot = &TABLE.slots[i];
    let mark = handle::mark();
    // Acquire: pairs with the Release store of FREE in `leave`: the previous owner took its
    // handle before we write ours.
    if slot
        .word
        .compare_exchange(FREE, claimed_by(mark), Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return None;
    }
    between();
    // Relaxed: read only in a forked child, by the thread that stored it; before W1, so that
    // a sleeping slot's `owner` names its owner (`reset_after_fork`).
    slot.owner.store(mark, Ordering::Relaxed);
    between();
    // SAFETY: we own the slot and its word is ours, not an address, so no notifier reads
    // `thread` (see `Slot`'s Sync); the previous owner left it None.
    unsafe { *slot.thread.get() = me.take() };
    between();
    // SeqCst: ordered before W1; pairs with the notifier's SeqCst load of `high`.
    TABLE.high.fetch_max(i + 1, Ordering::SeqCst);
    Some(slot)
}

/// Parks the slot's owner while `*word == expected`, until `deadline`.
fn sleep(slot: &Slot, word: &AtomicU32, addr: usize, expected: u32, deadline: Option<Instant>) {
    // SeqCst: W1 of the module's argument; also publishes the handle written in `claim` to
    // the notifier's N3 (Release part).
    slot.word.store(addr, Ordering::SeqCst);
    // SeqCst: W2 of the module's argument.
    while word.load(Ordering::SeqCst) == expected {
        match deadline {
            None => thread::park(),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => thread::park_timeout(left),
                _ => return,
            },
        }
    }
}

/// Gives the slot back, once no notifier reads its handle.
fn leave(slot: &Slot) {
    // SeqCst: L1 of the module's argument: notifiers that have not reached N3 yet skip us.
    slot.word.store(claimed_by(handle::mark()), Ordering::SeqCst);
    let mut spins = 0u32;
    // SeqCst: L2 of the module's argument; pairs with N2 (store-buffering), and its Acquire
    // part with the notifiers' Release decrement: their reads of the handle are done.
    while slot.busy.load(Ordering::SeqCst) != 0 {
        if spins < 100 {
            hint::spin_loop();
            spins += 1;
        } else {
            thread::yield_now();
        }
    }
    // SAFETY: we own the slot, its word is ours and no notifier reads `thread` (above).
    drop(unsafe { (*slot.thread.get()).take() });
    // Release: pairs with the Acquire CAS in `claim`: the handle is taken before the slot is
    // claimed again.
    slot.word.store(FREE, Ordering::Release);
}

pub(super) fn wake_all(word: &AtomicU32) {
    let addr = word.as_ptr() as usize;
    // SeqCst: pairs with the waiter's SeqCst `fetch_max` in `claim` (see the argument).
    let high = TABLE.high.load(Ordering::SeqCst).min(SLOTS);
    for slot in &TABLE.slots[..high] {
        // SeqCst: N1 of the module's argument.
        if slot.word.load(Ordering::SeqCst) != addr {
            continue;
        }
        // SeqCst: N2 of the module's argument: announces a reader of the handle.
        slot.busy.fetch_add(1, Ordering::SeqCst);
        // SeqCst: N3 of the module's argument; its Acquire part pairs with W1's Release part,
        // so the handle written before W1 is visible.
        if slot.word.load(Ordering::SeqCst) == addr {
            // SAFETY: N3 read an address, so the owner that stored it wrote `thread` before
            // and takes it back only after our decrement below (module docs).
            if let Some(thread) = unsafe { &*slot.thread.get() } {
                thread.unpark();
            }
        }
        // Release: pairs with L2 in `leave`: our read of the handle is done.
        slot.busy.fetch_sub(1, Ordering::Release);
    }
}

/// # Safety
/// 1. As `futex::reset_after_fork`: the calling thread is the process's only one. (It may be
///    inside `wait`, if a signal handler that interrupted the wait forked: its slot is kept.)
pub(super) unsafe fn reset_after_fork() {
    let me = handle::mark();
    let mut high = 0;
    for (i, slot) in TABLE.slots.iter().enumerate() {
        // Relaxed (all three loads): single thread; a signal handler on it only reads the
        // table and pairs its own increments and decrements of `busy`.
        let word = slot.word.load(Ordering::Relaxed);
        // Ours if its word names us (claiming or leaving), or, while it holds an address
        // (sleeping), if its `owner` does: stored before the address.
        let ours = if word & 1 == 1 {
            word == claimed_by(me)
        } else {
            word != FREE && slot.owner.load(Ordering::Relaxed) == me
        };
        if ours {
            // This thread, back in its wait once the handler returns, leaves the slot as
            // usual; the parent's notifiers that were reading its handle do not exist here.
            // SeqCst: as the stores below.
            slot.busy.store(0, Ordering::SeqCst);
            high = i + 1;
            continue;
        }
        if slot.busy.load(Ordering::Relaxed) != 0 {
            // A notifier was reading the handle: the parent's (gone), or this thread's,
            // interrupted by the handler that forked, which will decrement `busy` when it
            // resumes. Which one cannot be told, so the slot is left as it is, for ever:
            // a slot less, never a wrong wake-up.
            continue;
        }
        // SeqCst: first, so that a signal handler scanning the table skips the slot before
        // its handle is forgotten.
        slot.word.store(FREE, Ordering::SeqCst);
        // SAFETY: (1) no waiter owns the slot in the child (not this thread: checked), its
        // word is FREE and no notifier is reading it (`busy` is 0), so nothing reads
        // `thread`. `ptr::write` leaks the old handle: its thread does not exist here, and a
        // fork child handler must not free memory (`free` is not async-signal-safe, and the
        // allocator's state is whatever the fork caught).
        unsafe { ptr::write(slot.thread.get(), None) };
    }
    // SeqCst: as the stores above.
    TABLE.high.store(high, Ordering::SeqCst);
}

/// Claimed slots that no notifier is reading (those that are, `reset_after_fork` keeps), and
/// the high-water mark, for the tests.
#[cfg(test)]
fn occupancy() -> (usize, usize) {
    // Relaxed (all): a snapshot, taken single-threaded in a forked child.
    let claimed = TABLE
        .slots
        .iter()
        .filter(|s| s.word.load(Ordering::Relaxed) != FREE && s.busy.load(Ordering::Relaxed) == 0)
        .count();
    (claimed, TABLE.high.load(Ordering::Relaxed))
}
