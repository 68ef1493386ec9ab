//! The counting global allocator: it serves the torture's tracked values (`frees.rs`) from a
//! slab of its own and keeps, per slot, how many times its occupants were dropped and
//! deallocated, so a check can tell that a value queued with `kvfree_rcu` was not only
//! dropped but its memory given back to the allocator.
//!
//! Every process that runs the torture installs it as its global allocator (the rcutorture
//! binary and `tests/tests/torture*.rs` do); `torture::run` refuses to start without it
//! ([`installed`]). Every other allocation goes to `System` unchanged.
//!
//! # Recognising a tracked value
//! By address, not by layout: no layout can be promised to be unused by the rest of the
//! process. The owner of a lane *arms* its thread with a free slot just before it boxes a
//! tracked value; the next allocation of exactly the armed layout on that thread returns
//! that slot. Nothing else is ever placed in the slab, so a deallocation is a tracked one iff
//! its address lies in the slab. The cost for every other allocation is one thread-local
//! read; for every other deallocation, one load and a compare.
//!
//! # Lanes and slots
//! A lane (one updater queueing on one domain) owns `RING` consecutive slots and numbers its
//! values from 0 for the life of the process: value `seq` lives in slot `seq % RING`, as that
//! slot's `seq / RING`-th occupant. A slot is armed again only once its previous occupant was
//! deallocated, so the slot's counts of drops and deallocations say which of its occupants
//! are done, however late a check looks: occupant `g` was dropped iff `drops > g`, and
//! deallocated iff `deallocs > g`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Lanes the process can have claimed at once (updaters times domains, over every run).
pub const LANES: usize = 32;
/// Slots per lane: how many of a lane's values may be queued and not yet deallocated
/// before its owner waits for the oldest one.
pub const RING: usize = 1 << 15;
/// Bytes per slot: the largest tracked layout that fits.
pub const SLOT: usize = 96;
/// Alignment of every slot: the largest tracked alignment that fits.
pub const SLOT_ALIGN: usize = 32;
const SLOTS: usize = LANES * RING;
const _: () = assert!(SLOT % SLOT_ALIGN == 0 && SLOT_ALIGN.is_power_of_two());

/// The global allocator of every process that runs the torture: `System`, except for the
/// tracked values, which it serves from the slab and counts.
///
/// ```text
/// #[global_allocator]
/// static ALLOC: rcu_tests::torture::alloc::CountingAlloc = rcu_tests::torture::alloc::CountingAlloc;
/// ```
#[derive(Debug)]
pub struct CountingAlloc;

thread_local! {
    /// The slot armed on this thread, its address and the layout it serves; 0 when none.
    /// `const` and without a destructor: usable from inside the allocator, at any time.
    static ARMED: Cell<(usize, Layout)> = const { Cell::new((0, Layout::new::<u8>())) };
}

/// Counts of one slot (see the module docs).
#[derive(Debug)]
struct SlotBooks {
    drops: AtomicU32,
    deallocs: AtomicU32,
    /// The layout the current occupant was armed with (`layout_code`).
    layout: AtomicU64,
}

/// The slab: `SLOTS` slots, allocated from `System` once, never given back.
#[derive(Debug)]
struct Slab {
    base: NonNull<u8>,
    books: Box<[SlotBooks]>,
}

// SAFETY: `base` is only an address: the bytes behind it are used by whoever holds the
// allocation a slot backs (one holder at a time, see `CountingAlloc`), and `books` are
// atomics.
unsafe impl Send for Slab {}
// SAFETY: as above.
unsafe impl Sync for Slab {}

static SLAB: AtomicPtr<Slab> = AtomicPtr::new(ptr::null_mut());

fn slab_layout() -> Layout {
    Layout::from_size_align(SLOTS * SLOT, 4096).expect("the slab's layout is valid")
}

/// The slab, made on first use (by a lane's claim, never inside the allocator).
fn slab() -> &'static Slab {
    // Acquire: pairs with the AcqRel exchange below: the slab's fields are visible.
    if let Some(slab) = NonNull::new(SLAB.load(Ordering::Acquire)) {
        // SAFETY: published below once and never freed.
        return unsafe { slab.as_ref() };
    }
    let layout = slab_layout();
    // SAFETY: the layout's size is not zero. `System` directly: the slab is not a value of
    // the process's.
    let base = NonNull::new(unsafe { System.alloc(layout) })
        .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
    // Zeroed, not built: the pages of a million books are touched only when used.
    let books_layout = Layout::array::<SlotBooks>(SLOTS).expect("the books' layout is valid");
    // SAFETY: the layout's size is not zero.
    let raw = unsafe { std::alloc::alloc_zeroed(books_layout) }.cast::<SlotBooks>();
    if raw.is_null() {
        std::alloc::handle_alloc_error(books_layout);
    }
    // SAFETY: (1) allocated by the global allocator with the layout of `[SlotBooks; SLOTS]`;
    // (2) all-zero bytes are a valid `SlotBooks` (three atomics holding 0).
    let books = unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(raw, SLOTS)) };
    let new = Box::into_raw(Box::new(Slab { base, books }));
    // AcqRel: Release publishes the slab; Acquire (on failure) sees the winner's.
    match SLAB.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: just published; never freed.
        Ok(_) => unsafe { &*new },
        Err(winner) => {
            // SAFETY: ours, never published; `base` was allocated above with `layout`.
            unsafe {
                drop(Box::from_raw(new));
                System.dealloc(base.as_ptr(), layout);
            }
            // SAFETY: published by the winner; never freed.
            unsafe { &*winner }
        }
    }
}

/// The slot index of `ptr` if it lies in the slab.
fn slot_of(ptr: *mut u8) -> Option<(&'static Slab, usize)> {
    // Acquire: pairs with the exchange in `slab`. (A thread deallocating a slab address got
    // it from an allocation made after the slab was published, so it sees the slab.)
    let slab = NonNull::new(SLAB.load(Ordering::Acquire))?;
    // SAFETY: published once and never freed.
    let slab = unsafe { slab.as_ref() };
    let offset = (ptr as usize).wrapping_sub(slab.base.as_ptr() as usize);
    (offset < SLOTS * SLOT).then_some((slab, offset / SLOT))
}

fn layout_code(layout: Layout) -> u64 {
    ((layout.size() as u64) << 16) | layout.align() as u64
}

// SAFETY: `System` serves everything but armed allocations. An armed allocation gets a slot
// of the slab: `Lane::arm` checked that the layout fits a slot (size at most `SLOT`,
// alignment at most `SLOT_ALIGN`, which every slot has) and that the slot's previous
// occupant was deallocated, only the lane's claimer arms its slots, and the arming is taken
// by exactly one allocation (`Cell::replace`): each slot backs one live allocation at a
// time. (`installed` arms a leaked spot of its own, handed out once and never deallocated.)
// Slab addresses are never passed to `System`.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match take_armed(layout) {
            Some(slot) => slot,
            // SAFETY: the caller's preconditions, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // The optimiser turns boxing an all-zero value into this call.
        match take_armed(layout) {
            Some(slot) => {
                // SAFETY: the slot is `layout.size()` bytes (it fits) and ours (see above).
                unsafe { ptr::write_bytes(slot, 0, layout.size()) };
                slot
            }
            // SAFETY: the caller's preconditions, passed on.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match slot_of(ptr) {
            Some((slab, slot)) => note_dealloc(slab, slot, ptr, layout),
            // SAFETY: not a slab address, so `System` allocated it: the caller's
            // preconditions, passed on.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if slot_of(ptr).is_none() {
            // SAFETY: not a slab address, so `System` allocated it: the caller's
            // preconditions, passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // A tracked value is never reallocated; moved out for completeness.
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_size` is not zero (the caller's precondition).
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live for the smaller size and distinct (`new` is not
            // in the slab); then the old block is released as the caller asked.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// The slot armed on this thread, taken, if `layout` is the armed one.
fn take_armed(layout: Layout) -> Option<*mut u8> {
    ARMED
        .try_with(|armed| {
            let (addr, want) = armed.get();
            (addr != 0 && want == layout).then(|| armed.replace((0, want)).0 as *mut u8)
        })
        .ok()
        .flatten()
}

/// A tracked allocation is returned: count it in its slot.
fn note_dealloc(slab: &Slab, slot: usize, ptr: *mut u8, layout: Layout) {
    let books = &slab.books[slot];
    let lane = &LANE_TABLE[slot / RING];
    // Relaxed: written by the owner before the allocation, which the runtime handed here.
    let armed_layout = books.layout.load(Ordering::Relaxed);
    if armed_layout != layout_code(layout)
        || (ptr as usize - slab.base.as_ptr() as usize) % SLOT != 0
    {
        // Relaxed (all counters of `Lane`): counts read after the run's threads are joined
        // and its final barrier.
        lane.bad_deallocs.fetch_add(1, Ordering::Relaxed);
    }
    // Acquire: pairs with the Release increment in `note_drop`; whoever dropped the value
    // handed it on to here, so the drop is visible if it happened.
    let drops = books.drops.load(Ordering::Acquire);
    // Release: pairs with the Acquire loads in `Lane::arm` (the slot is free again: this
    // occupant's last use of its bytes comes before the next one's first) and `Lane::fate`.
    let before = books.deallocs.fetch_add(1, Ordering::Release);
    if drops <= before {
        // Relaxed: see above.
        lane.undropped_deallocs.fetch_add(1, Ordering::Relaxed);
    }
}

/// Value `seq` of `lane` was dropped: count it in its slot.
pub fn note_drop(lane: &'static Lane, seq: u64) {
    let slab = slab();
    // Release: pairs with the Acquire loads in `note_dealloc` and `Lane::fate`.
    slab.books[lane.slot(seq)].drops.fetch_add(1, Ordering::Release);
}

/// True if [`CountingAlloc`] is this process's global allocator: an allocation armed with a
/// spot of our own comes back from that spot. Probed once per process: two probes at once
/// would both be served the one spot (a data race ThreadSanitizer reported between two
/// torture tests), and the answer cannot change.
pub fn installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(probe_installed)
}

fn probe_installed() -> bool {
    /// The spot: leaked, so that handing it out is sound whoever serves the probe. One for
    /// the process, kept in a static (a leak checker sees it reachable, not lost).
    #[repr(C, align(32))]
    struct Spot([u8; 32]);
    static SPOT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let spot = *SPOT.get_or_init(|| Box::leak(Box::new(Spot([0; 32]))) as *mut Spot as usize);
    let layout = Layout::new::<[u64; 3]>();
    let _ = ARMED.try_with(|armed| armed.set((spot, layout)));
    let probe = std::hint::black_box(Box::new([1u64, 2, 3]));
    let _ = ARMED.try_with(|armed| armed.set((0, layout)));
    // Through `black_box`: the optimiser may assume a fresh allocation's address equals no
    // other allocation's, and fold the comparison.
    let ours = std::hint::black_box(&*probe as *const [u64; 3] as usize) == spot;
    if ours {
        // The spot is `Spot`'s leaked memory, not `System`'s: never deallocate it.
        std::mem::forget(probe);
    }
    ours
}

/// One lane: a range of slots and the counts that are not per slot. Claimed by one run's
/// updater for one domain at a time.
#[derive(Debug)]
pub struct Lane {
    claimed: AtomicBool,
    /// The number of the next value armed (values are numbered for the process's life).
    next: AtomicU64,
    /// Deallocations with another layout than the value was allocated with, or of an
    /// address inside a slot.
    bad_deallocs: AtomicU64,
    /// Deallocations of a value not dropped before.
    undropped_deallocs: AtomicU64,
    /// Slots found, when armed again, with more drops or deallocations than occupants.
    extra_frees: AtomicU64,
}

static LANE_TABLE: [Lane; LANES] = [const {
    Lane {
        claimed: AtomicBool::new(false),
        next: AtomicU64::new(0),
        bad_deallocs: AtomicU64::new(0),
        undropped_deallocs: AtomicU64::new(0),
        extra_frees: AtomicU64::new(0),
    }
}; LANES];

/// What became of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped and deallocated.
    Done,
    /// Dropped; its memory not yet deallocated.
    Dropped,
    /// Not even dropped.
    Pending,
}

/// Failures `Lane` counted at the allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Deallocated with a layout other than its own, or through an interior address.
    pub bad_deallocs: u64,
    /// Deallocated before it was dropped (or without being dropped).
    pub undropped_deallocs: u64,
    /// Dropped or deallocated more than once.
    pub extra_frees: u64,
}

impl Lane {
    /// Claims a free lane; `None` if all `LANES` are claimed.
    pub fn claim() -> Option<&'static Lane> {
        slab();
        LANE_TABLE.iter().find(|lane| {
            // Acquire: pairs with the Release in `release`: the last claimer's uses are over.
            lane.claimed.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
        })
    }

    /// Gives the lane up. Call only when every value it armed was dropped and deallocated:
    /// the next claimer arms its slots on that assumption.
    pub fn release(&'static self) {
        // Release: pairs with the Acquire in `claim`.
        self.claimed.store(false, Ordering::Release);
    }

    /// Its index in the process's table.
    pub fn index(&'static self) -> usize {
        (self as *const Lane as usize - LANE_TABLE.as_ptr() as usize) / size_of::<Lane>()
    }

    fn slot(&'static self, seq: u64) -> usize {
        self.index() * RING + (seq % RING as u64) as usize
    }

    /// The number the next armed value gets.
    pub fn next(&self) -> u64 {
        // Relaxed: written only by the claimer, which reads it; others read it after
        // joining the claimer.
        self.next.load(Ordering::Relaxed)
    }

    /// Arms the calling thread to serve the next allocation of `layout` from the slot of
    /// value `next()`. `None` if that slot's previous occupant is not deallocated yet (the
    /// caller waits: at most `RING` values of a lane are in flight).
    ///
    /// # Panics
    /// If `layout` does not fit a slot.
    pub fn arm(&'static self, layout: Layout) -> Option<Armed> {
        assert!(layout.size() <= SLOT && layout.align() <= SLOT_ALIGN, "{layout:?} fits no slot");
        let seq = self.next();
        let generation = (seq / RING as u64) as u32;
        let slot = self.slot(seq);
        let slab = slab();
        let books = &slab.books[slot];
        // Acquire: pairs with the Release increment in `note_dealloc`: the previous
        // occupant's holder is done with the slot's bytes before we hand them out again.
        let deallocs = books.deallocs.load(Ordering::Acquire);
        if deallocs < generation {
            return None;
        }
        // Acquire: as above, for drops.
        if deallocs > generation || books.drops.load(Ordering::Acquire) > generation {
            // Relaxed: see `note_dealloc`.
            self.extra_frees.fetch_add(1, Ordering::Relaxed);
        }
        // Relaxed: read by `note_dealloc` after the allocation travelled there.
        books.layout.store(layout_code(layout), Ordering::Relaxed);
        let addr = slab.base.as_ptr() as usize + slot * SLOT;
        let _ = ARMED.try_with(|armed| armed.set((addr, layout)));
        Some(Armed { lane: self, seq, addr, _not_send: PhantomData })
    }

    /// What became of value `seq` (one this lane armed).
    pub fn fate(&'static self, seq: u64) -> Fate {
        let generation = (seq / RING as u64) as u32;
        let books = &slab().books[self.slot(seq)];
        // Acquire (both): pair with the Release increments of the drop and the
        // deallocation. (A check after `rcu_barrier` relies on the barrier ordering them
        // before its return; these loads then see them.)
        if books.deallocs.load(Ordering::Acquire) > generation {
            Fate::Done
        } else if books.drops.load(Ordering::Acquire) > generation {
            Fate::Dropped
        } else {
            Fate::Pending
        }
    }

    /// The failures counted at the allocator so far.
    pub fn anomalies(&self) -> Anomalies {
        // Relaxed (all): see `note_dealloc`.
        Anomalies {
            bad_deallocs: self.bad_deallocs.load(Ordering::Relaxed),
            undropped_deallocs: self.undropped_deallocs.load(Ordering::Relaxed),
            extra_frees: self.extra_frees.load(Ordering::Relaxed),
        }
    }
}

/// A slot armed on this thread ([`Lane::arm`]); disarmed when dropped.
#[derive(Debug)]
pub struct Armed {
    lane: &'static Lane,
    seq: u64,
    addr: usize,
    /// The arming is the thread's.
    _not_send: PhantomData<*const ()>,
}

impl Armed {
    /// The number of the value being allocated.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The allocation was made at `got`: returns whether it came from the armed slot. The
    /// lane moves on to its next value if the slot was taken, by this allocation or (a bug in
    /// the caller) by another one of the armed layout, so that it is not armed twice.
    pub fn served(self, got: *const u8) -> bool {
        let taken = ARMED.try_with(|armed| armed.get().0 != self.addr).unwrap_or(true);
        if taken {
            // Relaxed: see `Lane::next`.
            self.lane.next.store(self.seq + 1, Ordering::Relaxed);
        }
        // `black_box`: as in `installed`.
        std::hint::black_box(got as usize) == self.addr
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        let _ = ARMED.try_with(|armed| armed.set((0, Layout::new::<u8>())));
    }
}
