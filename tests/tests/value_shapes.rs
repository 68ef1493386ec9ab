//! Issue 21 (family 1), DESIGN §5.1: "Every value is dropped exactly once and deallocated
//! exactly once, whatever its layout (zero-sized, alignment 1 to 4096, unsized), whichever
//! path retired it", and "`rcu_barrier` covers everything queued before it, on every path".
//!
//! # What is driven
//! *Batches*: a batch retires `n` values of one **shape** through one **path**, with one
//! **token**, on one **domain**, from one **thread kind**:
//!
//! - paths: `call_rcu` (a callback that checks in, then drops the box), `call_rcu_fn` (a
//!   closure owning the value), `kvfree_rcu`, `kvfree_rcu_mightsleep` (the value's own layout,
//!   headless), the `RcuCell` writers (`replace`, `set`, `update`), the `RcuHashMap` writers
//!   (`insert_node`, `insert`, `update`, `compute`, `remove`, `clear`) and the `RcuList`
//!   writers (`retain`, `replace_first`, `pop_front`);
//! - tokens: `Sleepable`, `NoReclaim`, `Atomic` (each path with every token its signature
//!   accepts: `call_rcu_fn` and `kvfree_rcu_mightsleep` do not compile with `Atomic`), one
//!   scope per batch, values made before it opens;
//! - domains: the global domain, a private one with the default configuration, and a
//!   "cramped" private one (4-entry blocks, no thread cache, a 256 KiB budget, block requests
//!   failing with probability 0.3 under every policy), so that the fallback paths (embedded
//!   heads, synchronize-then-free inline, backpressure) run too;
//! - thread kinds: the test's own thread, which stays, and a thread spawned for the batch
//!   that exits before the barrier (its staged work is adopted);
//! - shapes: zero-sized with alignment 1, 2 and 8, and a zero-sized one whose drop panics;
//!   alignment 1 (sizes 4, 1001, 64 KiB), 2, 8 (8, 4104), 64 (64, 64 KiB) and 4096 (4 KiB,
//!   64 KiB); `Box<dyn Trait>` (of a zero-sized, an alignment-1, an alignment-4096 and a
//!   panicking zero-sized value); `Box<[u8]>` (0 to 64 KiB); `Box<[Piece]>` (0 to 4
//!   elements with drops). Values of the sized non-zero shapes (and a slice's first element)
//!   panic in their drop when the batch says so (every k-th value);
//! - sizes: a few values (1 to 12), or a flood (256 to 320) that fills blocks of the default
//!   size (253 entries), so that full blocks are sealed, run and split.
//!
//! The unsized shapes reach `kvfree_rcu_mightsleep` as themselves (`Box<dyn Trait>`,
//! `Box<[u8]>`, `Box<[Piece]>`), and the headed paths as `Rcu<Box<..>>`.
//!
//! A *case* runs its exiting threads' batches concurrently with the test thread's, joins
//! them, calls `rcu_barrier` on every domain, then checks. The property test (proptest)
//! draws cases of 1 to 6 random batches; a deterministic sweep then runs every path with
//! every token it accepts, on every domain, from both thread kinds, with every shape (one
//! case per path and shape, one flood per case). Failures of both are reported together; a
//! failing sweep case is run again batch by batch to name the batches that fail alone.
//!
//! # What is asserted
//! - every value is dropped exactly once (a drop counter per value), and every
//!   `call_rcu`/`call_rcu_fn` callback ran exactly once;
//! - every allocation of a value is freed exactly once (a counting global allocator);
//! - no value is dropped, no callback runs and no allocation is freed before a grace period
//!   that began after the value was retired: the test takes a cookie (`Domain::get_state`)
//!   just *before* each retiring call, and the drop, the callback and the deallocation each
//!   check `Domain::poll(cookie)`. A cookie taken before the call names a grace period that
//!   begins no later than the one the runtime must wait for, so a correct runtime always
//!   passes (a cookie taken after the call would not be sound: a grace period starting in
//!   between would make it ask for one more than the runtime owes);
//! - all of it has happened when `rcu_barrier` returns (the counts are read right after);
//! - every panic a drop raised on purpose was contained by the runtime (counted in
//!   `DomainStats::callback_panics`) or surfaced to the thread that dropped the value inline
//!   (a `kvfree_rcu_mightsleep` that found no block, or the test dropping a cell): raised =
//!   contained + surfaced, exactly.
//!
//! Checks on other threads (drops, callbacks, the allocator) never panic: they record a
//! failure in a lock-free log that the test thread reads after the barriers.
//!
//! # Why the counts are exact
//! - This binary has one `#[test]`, so no other test's threads allocate or retire meanwhile.
//! - Values are identified by a record id written into their own bytes (a 4-byte tag with a
//!   check byte), so a drop knows which value it is. Zero-sized values have no bytes: their
//!   drops are counted per class (shape) and compared with the number of such values made,
//!   and each such drop checks the grace-period rule in aggregate (the k-th drop of a class
//!   needs k values of that class whose cookie has completed or which the test dropped
//!   itself; the records are published before their values are retired, and the drops
//!   synchronize through the class counter, so a correct runtime always passes).
//! - An allocation is a value's if the test's thread made it inside `tagged(..)`, a window
//!   around exactly one `Box::new`-like call; the window asserts that it made exactly the
//!   expected number of allocator calls. Its address goes into an address table. A free is a
//!   value's if its address is in the table and not yet freed: the system allocator cannot
//!   hand that block to anyone else before the first free is passed on, so the first free of
//!   a tracked address is the value's, and a second one before the block is handed out again
//!   (which detaches the table's entries in it) is a double free (counted, not passed on).
//! - Allocations of values whose alignment is below 8 are placed at addresses that are *not*
//!   8-aligned (alignment 1 at 1 or 5 mod 8, 2 at 2 mod 8): any allocator may do so, and
//!   §5.1 says the runtime reads no meaning into the bits of a user's pointer unless that
//!   holds for every layout. The system allocator never hands out such an address, so a free
//!   of one that is no live value's is a bogus free (counted, not passed on: no heap
//!   corruption). `VALUE_SHAPES_NATURAL_ADDRESSES=1` turns this off, to tell a layout bug
//!   from an address bug.
//!
//! # Running
//! `cargo test -p rcu-tests --test value_shapes`: 48 random cases and the sweep (about
//! 10 s in a debug build). `VALUE_SHAPES_CASES=1000` runs more random cases (manual runs).
// The allocator interposition fights the sanitizers' own allocators (as in alloc_count.rs).
#![cfg(not(any(loom, rcu_sanitizer = "address", rcu_sanitizer = "thread")))]
// The runtime takes boxes; values are prepared as boxes on purpose.
#![allow(clippy::vec_box)]

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rcu_collections::{Computed, ListNode, Node, RcuHashMap, RcuList};
use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, FaultConfig, GpCookie, Policy};

// ---------------------------------------------------------------------------------------
// Domains
// ---------------------------------------------------------------------------------------

/// The domains a batch may use (records store the index in one byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dom {
    Global = 0,
    Private = 1,
    Cramped = 2,
}

const DOMS: [Dom; 3] = [Dom::Global, Dom::Private, Dom::Cramped];

static PRIVATE: OnceLock<Arc<Domain>> = OnceLock::new();
static CRAMPED: OnceLock<Arc<Domain>> = OnceLock::new();

fn make_domains() {
    PRIVATE.get_or_init(|| Arc::new(Domain::new(DomainConfig::new().name("shapes"))));
    CRAMPED.get_or_init(|| {
        let alloc = AllocConfig::new().small_blocks().budget_bytes(256 << 10);
        let domain = Domain::new(DomainConfig::new().name("shapes-cramped").alloc(alloc));
        for (policy, seed) in [(Policy::Reclaim, 1), (Policy::NoReclaim, 2), (Policy::NoWait, 3)] {
            domain.inject_faults(policy, FaultConfig::probability(0.3, 0x5eed + seed));
        }
        Arc::new(domain)
    });
}

/// The shared handle of a private domain (`None`: the global one), for the collections.
fn domain_arc(d: Dom) -> Option<Arc<Domain>> {
    match d {
        Dom::Global => None,
        Dom::Private => PRIVATE.get().cloned(),
        Dom::Cramped => CRAMPED.get().cloned(),
    }
}

fn domain(d: Dom) -> &'static Domain {
    match d {
        Dom::Global => Domain::global(),
        Dom::Private => PRIVATE.get().expect("domains made first"),
        Dom::Cramped => CRAMPED.get().expect("domains made first"),
    }
}

fn dom_of(index: u8) -> Dom {
    DOMS[usize::from(index) % DOMS.len()]
}

// ---------------------------------------------------------------------------------------
// The ledger: one record per value, the failure log, the per-class counts
// ---------------------------------------------------------------------------------------

mod ledger {
    use super::*;

    /// No record.
    pub(crate) const NONE: u32 = u32::MAX;

    /// Record states: made, handed to the runtime (a cookie is set), or dropped by the test
    /// itself (no grace period needed: the value was never shared, or its container is
    /// dropped with `&mut` access).
    pub(crate) const CREATED: u8 = 0;
    pub(crate) const RETIRED: u8 = 1;
    pub(crate) const OWNED: u8 = 2;

    /// Record flags.
    pub(crate) const HAS_DROP: u8 = 1;
    /// Zero-sized: the value cannot say which record it is; drops are counted per class.
    pub(crate) const ANON: u8 = 2;
    pub(crate) const PANICS: u8 = 4;
    /// A `call_rcu`/`call_rcu_fn` callback must check in exactly once.
    pub(crate) const CALLBACK: u8 = 8;

    /// Classes of zero-sized values.
    pub(crate) const CLASS_Z1: u8 = 0;
    pub(crate) const CLASS_Z2: u8 = 1;
    pub(crate) const CLASS_Z8: u8 = 2;
    pub(crate) const CLASS_ZPANIC: u8 = 3;
    pub(crate) const CLASSES: usize = 4;
    pub(crate) const CLASS_NAMES: [&str; CLASSES] =
        ["Z1 (size 0, align 1)", "Z2 (size 0, align 2)", "Z8 (size 0, align 8)", "ZPanic"];
    /// Not zero-sized.
    pub(crate) const NO_CLASS: u8 = u8::MAX;

    /// Where a value came from, for the failure messages (and its domain, for `poll`).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Meta {
        pub(crate) shape: u8,
        pub(crate) path: u8,
        pub(crate) token: u8,
        pub(crate) domain: u8,
        pub(crate) thread: u8,
        pub(crate) class: u8,
        pub(crate) flags: u8,
    }

    impl Meta {
        fn pack(self) -> u64 {
            u64::from_le_bytes([
                self.shape,
                self.path,
                self.token,
                self.domain,
                self.thread,
                self.class,
                self.flags,
                0,
            ])
        }

        fn unpack(v: u64) -> Meta {
            let b = v.to_le_bytes();
            Meta {
                shape: b[0],
                path: b[1],
                token: b[2],
                domain: b[3],
                thread: b[4],
                class: b[5],
                flags: b[6],
            }
        }

        pub(crate) fn describe(self) -> String {
            format!(
                "shape {:?} via {:?} with {:?} on the {:?} domain from a thread that {}",
                super::SHAPES[usize::from(self.shape) % super::SHAPES.len()],
                super::PATHS[usize::from(self.path) % super::PATHS.len()],
                super::TOKS[usize::from(self.token) % super::TOKS.len()],
                super::dom_of(self.domain),
                if self.thread == 1 { "exits" } else { "stays" },
            )
        }
    }

    #[derive(Debug)]
    pub(crate) struct Record {
        meta: AtomicU64,
        state: AtomicU8,
        cookie: OnceLock<GpCookie>,
        drops: AtomicU32,
        callbacks: AtomicU32,
    }

    impl Record {
        fn new() -> Self {
            Record {
                meta: AtomicU64::new(0),
                state: AtomicU8::new(CREATED),
                cookie: OnceLock::new(),
                drops: AtomicU32::new(0),
                callbacks: AtomicU32::new(0),
            }
        }

        pub(crate) fn meta(&self) -> Meta {
            // Relaxed: written by the value's maker before the value left its thread; the
            // hand-off (the runtime's queues, or a join) orders it before any reader.
            Meta::unpack(self.meta.load(Ordering::Relaxed))
        }
    }

    /// Records live in chunks made on demand and never freed (a late drop of a broken
    /// runtime still finds its record).
    const CHUNK: usize = 4096;
    /// Record ids fit the tag's 24 bits.
    const MAX_RECORDS: usize = 1 << 24;
    static CHUNKS: [AtomicPtr<Record>; MAX_RECORDS / CHUNK] =
        [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_RECORDS / CHUNK];
    static NEXT_RECORD: AtomicU32 = AtomicU32::new(0);
    /// The first record of the running case.
    static CASE_FIRST: AtomicU32 = AtomicU32::new(0);
    /// Drops of zero-sized values per class, this case.
    static CLASS_DROPS: [AtomicU32; CLASSES] = [const { AtomicU32::new(0) }; CLASSES];
    /// Panics raised on purpose by drops, and those that surfaced in the test's own calls.
    pub(crate) static PANICS_RAISED: AtomicU64 = AtomicU64::new(0);
    pub(crate) static PANICS_SURFACED: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn record(id: u32) -> Option<&'static Record> {
        let id = id as usize;
        // Acquire: pairs with the AcqRel publication in `reserve`.
        let chunk = CHUNKS.get(id / CHUNK)?.load(Ordering::Acquire);
        // SAFETY: a non-null chunk is a leaked array of `CHUNK` records, never freed.
        (!chunk.is_null()).then(|| unsafe { &*chunk.add(id % CHUNK) })
    }

    /// Reserves `n` consecutive records (described with `set_meta`). Allocates a chunk now
    /// and then: call it where the thread may allocate (makers run before scopes open).
    #[track_caller]
    pub(crate) fn reserve(n: u32) -> u32 {
        // Relaxed: unique ids are all that is needed.
        let first = NEXT_RECORD.fetch_add(n, Ordering::Relaxed);
        let end = first as usize + n as usize;
        assert!(end <= MAX_RECORDS, "value_shapes: more than {MAX_RECORDS} records");
        for slot in &CHUNKS[first as usize / CHUNK..end.div_ceil(CHUNK)] {
            // Acquire: as in `record`.
            if !slot.load(Ordering::Acquire).is_null() {
                continue;
            }
            let chunk: Box<[Record]> = (0..CHUNK).map(|_| Record::new()).collect();
            let chunk = Box::into_raw(chunk).cast::<Record>();
            // AcqRel: Release publishes the chunk's records (pairs with the Acquire in
            // `record`); Acquire, on failure, sees the winner's.
            let won = slot.compare_exchange(
                core::ptr::null_mut(),
                chunk,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if won.is_err() {
                let lost = core::ptr::slice_from_raw_parts_mut(chunk, CHUNK);
                // SAFETY: made by `Box::into_raw` just above and never shared.
                drop(unsafe { Box::from_raw(lost) });
            }
        }
        first
    }

    pub(crate) fn set_meta(id: u32, meta: Meta) {
        // Relaxed: see `Record::meta`.
        record(id).expect("reserved").meta.store(meta.pack(), Ordering::Relaxed);
    }

    /// Just before the call that hands the values of records `ids` to the runtime: their
    /// grace period can be no earlier than the one this cookie names.
    pub(crate) fn retiring(ids: core::ops::Range<u32>, d: Dom) {
        let cookie = super::domain(d).get_state();
        for id in ids {
            let r = record(id).expect("reserved");
            if r.cookie.set(cookie).is_err() {
                problem(format!("test bug: record {id} retired twice"));
            }
            // Release: pairs with the Acquire loads in `check_grace` and the class scan,
            // for readers that synchronized with this thread other than through the runtime.
            r.state.store(RETIRED, Ordering::Release);
        }
    }

    /// Just before the test drops these values itself.
    pub(crate) fn owned(ids: core::ops::Range<u32>) {
        for id in ids {
            // Release: as in `retiring`.
            record(id).expect("reserved").state.store(OWNED, Ordering::Release);
        }
    }

    pub(crate) fn expect_callback(id: u32) {
        let r = record(id).expect("reserved");
        let mut meta = r.meta();
        meta.flags |= CALLBACK;
        set_meta(id, meta);
    }

    // --- failures -----------------------------------------------------------------------

    pub(crate) const DOUBLE_DROP: u8 = 1;
    pub(crate) const EARLY_DROP: u8 = 2;
    pub(crate) const UNRETIRED_DROP: u8 = 3;
    pub(crate) const BOGUS_DROP: u8 = 4;
    pub(crate) const CORRUPT_DROP: u8 = 5;
    pub(crate) const EARLY_ANON_DROP: u8 = 6;
    pub(crate) const DOUBLE_CALLBACK: u8 = 7;
    pub(crate) const EARLY_CALLBACK: u8 = 8;
    pub(crate) const UNKNOWN_CALLBACK: u8 = 9;
    pub(crate) const DOUBLE_FREE: u8 = 10;
    pub(crate) const EARLY_FREE: u8 = 11;
    pub(crate) const FREE_BEFORE_DROP: u8 = 12;
    pub(crate) const UNRETIRED_FREE: u8 = 13;
    pub(crate) const BOGUS_FREE: u8 = 14;
    pub(crate) const LIVE_ADDRESS_REUSED: u8 = 15;
    pub(crate) const TRACKED_REALLOC: u8 = 16;
    pub(crate) const LAYOUT_MISMATCH: u8 = 17;
    pub(crate) const ALLOCS_FULL: u8 = 18;

    fn kind_name(kind: u8) -> &'static str {
        match kind {
            DOUBLE_DROP => "dropped more than once",
            EARLY_DROP => "dropped before a grace period that began after it was retired",
            UNRETIRED_DROP => "dropped although it was never retired",
            BOGUS_DROP => "a drop ran on memory that holds no value (bad tag)",
            CORRUPT_DROP => "dropped with its bytes changed",
            EARLY_ANON_DROP => {
                "more drops of this zero-sized class than values of it whose grace period had \
                 ended: one was dropped before its grace period, or more than once"
            }
            DOUBLE_CALLBACK => "its callback ran more than once",
            EARLY_CALLBACK => {
                "its callback ran before a grace period that began after it was queued"
            }
            UNKNOWN_CALLBACK => "a callback ran with a box that is no value's",
            DOUBLE_FREE => "its allocation was freed more than once",
            EARLY_FREE => {
                "its allocation was freed before a grace period that began after it was retired"
            }
            FREE_BEFORE_DROP => "its allocation was freed before the value was dropped",
            UNRETIRED_FREE => "its allocation was freed although the value was never retired",
            BOGUS_FREE => {
                "an address that is no live allocation was freed (an offset into a value's \
                 allocation?)"
            }
            LIVE_ADDRESS_REUSED => "the system allocator handed out a value's live address",
            TRACKED_REALLOC => "a value's allocation was reallocated",
            LAYOUT_MISMATCH => "its allocation was freed with another layout",
            ALLOCS_FULL => "test bug: more value allocations than the allocator's table holds",
            _ => "unknown failure",
        }
    }

    const LOG: usize = 512;
    static FAILS: [AtomicU64; LOG] = [const { AtomicU64::new(0) }; LOG];
    static FAIL_COUNT: AtomicUsize = AtomicUsize::new(0);
    static PROBLEMS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// Records a failure; lock-free and allocation-free (called from drops on runtime threads
    /// and from inside the global allocator).
    pub(crate) fn fail(kind: u8, rec: u32, extra: u32) {
        // Relaxed: a slot index; the entry itself is published by the Release store.
        let i = FAIL_COUNT.fetch_add(1, Ordering::Relaxed);
        if i < LOG {
            let v = u64::from(kind) << 56 | u64::from(rec) << 24 | u64::from(extra & 0xff_ffff);
            // Release: pairs with the Acquire load in `take_failures`.
            FAILS[i].store(v, Ordering::Release);
        }
    }

    /// Forgets the failures logged so far (after a failing case, once quiet: they are that
    /// case's late ones).
    pub(crate) fn discard_log() {
        take_failures(&mut Vec::new());
    }

    /// A failure found by the test's own thread (may allocate).
    pub(crate) fn problem(message: String) {
        PROBLEMS.lock().unwrap_or_else(|e| e.into_inner()).push(message);
    }

    /// Logged failures of one kind and origin: how many, and the first one's details.
    #[derive(Debug)]
    struct Seen {
        kind: u8,
        origin: String,
        count: usize,
        rec: u32,
        extra: u32,
    }

    /// Moves the logged failures to `out`, one line per kind of failure and origin of value.
    fn take_failures(out: &mut Vec<String>) {
        let mut groups: Vec<Seen> = Vec::new();
        // Relaxed: read after the barrier and the joins, which order every `fail` before.
        let n = FAIL_COUNT.swap(0, Ordering::Relaxed);
        for slot in FAILS.iter().take(n.min(LOG)) {
            // Acquire: pairs with the Release store in `fail`.
            let v = slot.swap(0, Ordering::Acquire);
            let kind = (v >> 56) as u8;
            let rec = ((v >> 24) & 0xffff_ffff) as u32;
            let extra = (v & 0xff_ffff) as u32;
            let origin = match record(rec) {
                Some(r) if rec != NONE => r.meta().describe(),
                _ if kind == EARLY_ANON_DROP => CLASS_NAMES[extra as usize % CLASSES].to_string(),
                _ => String::new(),
            };
            match groups.iter_mut().find(|g| g.kind == kind && g.origin == origin) {
                Some(g) => g.count += 1,
                None => groups.push(Seen { kind, origin, count: 1, rec, extra }),
            }
        }
        for Seen { kind, origin, count, rec, extra } in groups {
            let what = kind_name(kind);
            out.push(if rec != NONE {
                format!("{count} x {what}: {origin} (first: value #{rec})")
            } else if kind == EARLY_ANON_DROP {
                format!("{count} x {origin}: {what}")
            } else {
                format!("{count} x {what} (first at an address ending {:#x})", extra & 0xfff)
            });
        }
        if n > LOG {
            out.push(format!("... and {} more failures not logged", n - LOG));
        }
        out.append(&mut PROBLEMS.lock().unwrap_or_else(|e| e.into_inner()));
    }

    // --- checks run by drops, callbacks and frees ------------------------------------------

    /// The grace-period rule for record `rec`, reporting `early` if broken.
    pub(crate) fn check_grace(rec: u32, early: u8, unretired: u8) {
        let Some(r) = record(rec) else { return };
        // Acquire: pairs with the Release store in `retiring`/`owned`.
        match r.state.load(Ordering::Acquire) {
            OWNED => {}
            RETIRED => {
                let d = super::dom_of(r.meta().domain);
                match r.cookie.get() {
                    Some(&cookie) if super::domain(d).poll(cookie) => {}
                    _ => fail(early, rec, 0),
                }
            }
            _ => fail(unretired, rec, 0),
        }
    }

    /// A drop of the identified value with tag `tag` at `addr`. Returns true if the value's
    /// drop must now panic (on purpose).
    pub(crate) fn identified_drop(tag: [u8; 4], addr: usize) -> bool {
        let Some(rec) = untag(tag) else {
            fail(BOGUS_DROP, NONE, addr as u32);
            return false;
        };
        let Some(r) = record(rec) else {
            fail(BOGUS_DROP, NONE, addr as u32);
            return false;
        };
        // AcqRel: the first drop's increment is what the allocator's FREE_BEFORE_DROP check
        // reads (Acquire there); a second drop sees the first.
        if r.drops.fetch_add(1, Ordering::AcqRel) != 0 {
            fail(DOUBLE_DROP, rec, 0);
        }
        check_grace(rec, EARLY_DROP, UNRETIRED_DROP);
        r.meta().flags & PANICS != 0 && !std::thread::panicking()
    }

    /// A drop of a zero-sized value of class `class`: the k-th drop of a class needs k values
    /// of it that may be dropped by now (retired with a completed cookie, or owned).
    pub(crate) fn anon_drop(class: u8) {
        let c = usize::from(class);
        // AcqRel: the drops of this class form one read-modify-write chain, so this drop
        // synchronizes with every earlier one, and sees their records' states (published
        // before those values were retired, which happens before they were dropped).
        let k = CLASS_DROPS[c].fetch_add(1, Ordering::AcqRel) + 1;
        // Relaxed: both bounds are ordered before this drop by the value's hand-off.
        let first = CASE_FIRST.load(Ordering::Relaxed);
        let end = NEXT_RECORD.load(Ordering::Relaxed);
        let mut eligible = 0;
        for r in (first..end).filter_map(record) {
            let meta = r.meta();
            if meta.flags & ANON == 0 || meta.class != class {
                continue;
            }
            // Acquire: pairs with the Release store in `retiring`/`owned`.
            let ok = match r.state.load(Ordering::Acquire) {
                OWNED => true,
                RETIRED => r
                    .cookie
                    .get()
                    .is_some_and(|&cookie| super::domain(super::dom_of(meta.domain)).poll(cookie)),
                _ => false,
            };
            eligible += u32::from(ok);
            if eligible >= k {
                return;
            }
        }
        fail(EARLY_ANON_DROP, NONE, u32::from(class));
    }

    /// A callback checking in for the value whose record is `rec`.
    pub(crate) fn callback(rec: u32) {
        let Some(r) = record(rec) else {
            fail(UNKNOWN_CALLBACK, NONE, 0);
            return;
        };
        // Relaxed: a count read after the barrier; a second run sees the first through the
        // read-modify-write chain.
        if r.callbacks.fetch_add(1, Ordering::Relaxed) != 0 {
            fail(DOUBLE_CALLBACK, rec, 0);
        }
        check_grace(rec, EARLY_CALLBACK, EARLY_CALLBACK);
    }

    /// Drops of an identified record so far (the allocator's FREE_BEFORE_DROP check).
    pub(crate) fn drops(rec: u32) -> u32 {
        // Acquire: pairs with the AcqRel increment in `identified_drop`.
        record(rec).map_or(0, |r| r.drops.load(Ordering::Acquire))
    }

    /// Raises the panic of a value whose drop panics on purpose.
    pub(crate) fn panic_on_purpose() -> ! {
        // Relaxed: a count read after the barrier.
        PANICS_RAISED.fetch_add(1, Ordering::Relaxed);
        panic!("value_shapes: this value's drop panics (on purpose)");
    }

    // --- tags --------------------------------------------------------------------------------

    fn check_byte(b: [u8; 3]) -> u8 {
        b[0] ^ b[1].rotate_left(3) ^ b[2].rotate_left(5) ^ 0xa5
    }

    pub(crate) fn tag(rec: u32) -> [u8; 4] {
        let b = rec.to_le_bytes();
        [b[0], b[1], b[2], check_byte([b[0], b[1], b[2]])]
    }

    pub(crate) fn untag(tag: [u8; 4]) -> Option<u32> {
        (check_byte([tag[0], tag[1], tag[2]]) == tag[3])
            .then(|| u32::from_le_bytes([tag[0], tag[1], tag[2], 0]))
    }

    // --- cases -------------------------------------------------------------------------------

    /// Failures counted by kind and origin: one line per group, naming its first value.
    #[derive(Debug, Default)]
    pub(crate) struct Tally(Vec<(String, usize, usize)>);

    impl Tally {
        pub(crate) fn add(&mut self, what: String, id: usize) {
            match self.0.iter_mut().find(|(w, _, _)| *w == what) {
                Some((_, count, _)) => *count += 1,
                None => self.0.push((what, 1, id)),
            }
        }

        fn report(self, out: &mut Vec<String>) {
            for (what, count, first) in self.0 {
                out.push(format!("{count} value(s) {what} (first: value #{first})"));
            }
        }
    }

    /// What a case starts from.
    #[derive(Debug)]
    pub(crate) struct CaseStart {
        records: u32,
        allocs: u32,
        raised: u64,
        surfaced: u64,
        contained: u64,
        reports: usize,
    }

    impl CaseStart {
        pub(crate) fn allocs(&self) -> u32 {
            self.allocs
        }
    }

    pub(crate) fn contained_panics() -> u64 {
        super::DOMS.iter().map(|&d| super::domain(d).stats().callback_panics).sum()
    }

    /// Starts a case. Caller: no value of an earlier case is still queued (after a barrier).
    pub(crate) fn begin_case() -> CaseStart {
        // Relaxed here and below: the test thread is the only one running the ledger's
        // bookkeeping between cases (after the barrier and the joins).
        let records = NEXT_RECORD.load(Ordering::Relaxed);
        CASE_FIRST.store(records, Ordering::Relaxed);
        for c in &CLASS_DROPS {
            c.store(0, Ordering::Relaxed);
        }
        // Failures logged since the last case's checks (late ones) are reported with this one.
        CaseStart {
            records,
            allocs: super::counting::next_alloc(),
            raised: PANICS_RAISED.load(Ordering::Relaxed),
            surfaced: PANICS_SURFACED.load(Ordering::Relaxed),
            contained: contained_panics(),
            reports: rcu_tests::quiet::reports_containing(super::CALLBACK_REPORT),
        }
    }

    /// Checks a case after its barriers: returns every failure found.
    pub(crate) fn end_case(start: &CaseStart) -> Vec<String> {
        let mut out = Vec::new();
        let mut tally = Tally::default();
        // Relaxed: see `begin_case`.
        let end = NEXT_RECORD.load(Ordering::Relaxed);
        let mut anon_made = [0u32; CLASSES];
        for id in start.records..end {
            let Some(r) = record(id) else { continue };
            let id = id as usize;
            let meta = r.meta();
            // Relaxed: read after the barrier and the joins (which order every update).
            let state = r.state.load(Ordering::Relaxed);
            let drops = r.drops.load(Ordering::Relaxed);
            let callbacks = r.callbacks.load(Ordering::Relaxed);
            if state == CREATED {
                tally.add(format!("test bug: never handed over: {}", meta.describe()), id);
            }
            if meta.flags & ANON != 0 {
                anon_made[usize::from(meta.class) % CLASSES] += 1;
            } else if meta.flags & HAS_DROP != 0 && drops != 1 {
                let what = format!("dropped {drops} times (expected once): {}", meta.describe());
                tally.add(what, id);
            }
            if meta.flags & CALLBACK != 0 && callbacks != 1 {
                let what = format!("callback ran {callbacks} times: {}", meta.describe());
                tally.add(what, id);
            }
        }
        tally.report(&mut out);
        for c in 0..CLASSES {
            // Relaxed: as above.
            let dropped = CLASS_DROPS[c].load(Ordering::Relaxed);
            if dropped != anon_made[c] {
                out.push(format!(
                    "zero-sized shape {}: {} values made, {dropped} drops after rcu_barrier \
                     (expected one each)",
                    CLASS_NAMES[c], anon_made[c]
                ));
            }
        }
        let mut tally = Tally::default();
        super::counting::check_frees(start.allocs, &mut tally);
        tally.report(&mut out);
        // What drops, callbacks and frees logged while it happened, after the counts.
        take_failures(&mut out);
        let raised = PANICS_RAISED.load(Ordering::Relaxed) - start.raised;
        let surfaced = PANICS_SURFACED.load(Ordering::Relaxed) - start.surfaced;
        let contained = contained_panics() - start.contained;
        if raised != surfaced + contained {
            out.push(format!(
                "drops panicked {raised} times on purpose, but the runtime counted {contained} \
                 contained panics (DomainStats::callback_panics) and {surfaced} surfaced in the \
                 test's own calls"
            ));
        }
        // Each contained panic is in a report; the report follows the count, so wait for it.
        let patience = std::time::Duration::from_secs(5);
        let report = super::CALLBACK_REPORT;
        if contained != 0
            && !rcu_tests::quiet::wait_for_reports(report, start.reports + 1, patience)
        {
            out.push(format!(
                "the runtime contained {contained} panics but reported none on its sink"
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The counting allocator
// ---------------------------------------------------------------------------------------

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::ledger::{self, NONE};
    use super::*;

    /// A value's allocation.
    #[derive(Debug)]
    pub(crate) struct AllocRec {
        size: AtomicUsize,
        align: AtomicUsize,
        rec: AtomicU32,
        frees: AtomicU32,
    }

    /// An address-table slot: `key` is an address handed out for a value (0: vacant),
    /// `alloc` the index + 1 of its `AllocRec` (0: detached, the address was reused).
    #[derive(Debug)]
    struct Slot {
        key: AtomicUsize,
        alloc: AtomicU32,
    }

    /// Value allocations are recorded in chunks of `CHUNK`, made on demand; the address
    /// table has `SLOTS` slots and is never more than half full. Both come zeroed from the
    /// system allocator (never through this one: they are made inside it), and all-zero is a
    /// valid value of both types (atomic integers have the bit validity of integers).
    const CHUNK: usize = 4096;
    const SLOTS: usize = 1 << 22;
    const MAX_ALLOCS: usize = SLOTS / 2;
    static CHUNKS: [AtomicPtr<AllocRec>; MAX_ALLOCS / CHUNK] =
        [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_ALLOCS / CHUNK];
    static TABLE: AtomicPtr<Slot> = AtomicPtr::new(core::ptr::null_mut());
    static NEXT_ALLOC: AtomicU32 = AtomicU32::new(0);

    thread_local! {
        /// The record the next allocation of this thread is for (`NONE`: not a value's).
        static TAG: Cell<u32> = const { Cell::new(NONE) };
        /// Allocations made in the current `tagged` window, and other allocator calls.
        static TAGGED: Cell<usize> = const { Cell::new(0) };
        static STRAY: Cell<usize> = const { Cell::new(0) };
    }

    /// A zeroed array of `n` `T`s from the system allocator, never freed.
    ///
    /// # Safety
    /// 1. All-zero bytes are a valid `T`.
    unsafe fn zeroed_array<T>(n: usize) -> *mut T {
        let layout = Layout::array::<T>(n).expect("a small array");
        // SAFETY: a non-zero size (callers ask for thousands).
        let p = unsafe { System.alloc_zeroed(layout) }.cast::<T>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        p
    }

    /// Makes the address table: before the first value allocation.
    pub(crate) fn init() {
        // Relaxed: read below by this thread; other threads are started after this (and see
        // it through the spawn), or see null and skip the bookkeeping.
        if TABLE.load(Ordering::Relaxed).is_null() {
            // SAFETY: (1) a `Slot` is two atomic integers.
            let table = unsafe { zeroed_array::<Slot>(SLOTS) };
            // Release: pairs with the Acquire load in `table`.
            TABLE.store(table, Ordering::Release);
        }
    }

    fn table() -> Option<&'static [Slot]> {
        // Acquire: pairs with the Release store in `init`.
        let table = TABLE.load(Ordering::Acquire);
        // SAFETY: a non-null table is a zeroed array of `SLOTS` slots, never freed.
        (!table.is_null()).then(|| unsafe { core::slice::from_raw_parts(table, SLOTS) })
    }

    fn alloc_rec(a: u32) -> Option<&'static AllocRec> {
        let a = a as usize;
        // Acquire: pairs with the AcqRel publication in `new_alloc_rec`.
        let chunk = CHUNKS.get(a / CHUNK)?.load(Ordering::Acquire);
        // SAFETY: a non-null chunk is a zeroed array of `CHUNK` records, never freed.
        (!chunk.is_null()).then(|| unsafe { &*chunk.add(a % CHUNK) })
    }

    /// A fresh allocation record (`None`: the table is full).
    fn new_alloc_rec() -> Option<(u32, &'static AllocRec)> {
        // Relaxed: a unique index.
        let a = NEXT_ALLOC.fetch_add(1, Ordering::Relaxed);
        let c = a as usize / CHUNK;
        let slot = CHUNKS.get(c)?;
        // Acquire: as in `alloc_rec`.
        if slot.load(Ordering::Acquire).is_null() {
            // SAFETY: (1) an `AllocRec` is atomic integers.
            let chunk = unsafe { zeroed_array::<AllocRec>(CHUNK) };
            // AcqRel: Release publishes the zeroed chunk; Acquire (failure) sees the winner's.
            let won = slot.compare_exchange(
                core::ptr::null_mut(),
                chunk,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if won.is_err() {
                let layout = Layout::array::<AllocRec>(CHUNK).expect("as allocated");
                // SAFETY: allocated just above with this layout, never shared.
                unsafe { System.dealloc(chunk.cast(), layout) };
            }
        }
        Some((a, alloc_rec(a)?))
    }

    pub(crate) fn next_alloc() -> u32 {
        // Relaxed: read by the test thread between cases.
        NEXT_ALLOC.load(Ordering::Relaxed)
    }

    /// Runs `f`, whose allocations (exactly `expected` of them) are the value of record
    /// `rec`'s.
    #[track_caller]
    pub(crate) fn tagged<R>(rec: u32, expected: usize, f: impl FnOnce() -> R) -> R {
        TAG.with(|t| t.set(rec));
        TAGGED.with(|t| t.set(0));
        STRAY.with(|t| t.set(0));
        let r = f();
        TAG.with(|t| t.set(NONE));
        let (made, stray) = (TAGGED.with(Cell::get), STRAY.with(Cell::get));
        assert_eq!(
            (made, stray),
            (expected, 0),
            "test bug: a tagged window made {made} allocations ({expected} expected) and \
             {stray} other allocator calls"
        );
        r
    }

    fn current_tag() -> u32 {
        // `try_with`: the allocator may be called while the thread's TLS is torn down.
        TAG.try_with(Cell::get).unwrap_or(NONE)
    }

    fn bump(counter: &'static std::thread::LocalKey<Cell<usize>>) {
        let _ = counter.try_with(|c| c.set(c.get() + 1));
    }

    /// `VALUE_SHAPES_NATURAL_ADDRESSES=1`: values get the system allocator's addresses
    /// (8-aligned or more), to tell layout bugs from address bugs.
    pub(crate) static NATURAL_ADDRESSES: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    /// Where a value's allocation of `layout` starts past the system allocator's (8-aligned)
    /// block: alignments below 8 get an address that is not 8-aligned (see the module docs).
    fn offset(layout: Layout) -> usize {
        // Relaxed: set once before the first value allocation.
        if NATURAL_ADDRESSES.load(Ordering::Relaxed) {
            return 0;
        }
        match layout.align() {
            1 if layout.size() % 2 == 1 => 5,
            1 => 1,
            2 => 2,
            4 => 4,
            _ => 0,
        }
    }

    /// The system block behind a value's allocation of `layout`: the offset, and 8 bytes of
    /// slack so that a runtime misreading an offset pointer reads within the block.
    fn system_layout(layout: Layout) -> Option<Layout> {
        Layout::from_size_align(layout.size() + offset(layout) + 8, layout.align().max(8)).ok()
    }

    fn hash(addr: usize) -> usize {
        (addr as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(20) as usize
    }

    fn find(addr: usize) -> Option<&'static Slot> {
        let table = table()?;
        let mask = table.len() - 1;
        let mut i = hash(addr) & mask;
        loop {
            // Acquire: pairs with the AcqRel claim in `insert`.
            match table[i].key.load(Ordering::Acquire) {
                0 => return None,
                k if k == addr => return Some(&table[i]),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn insert(addr: usize, alloc: u32) {
        let Some(table) = table() else { return };
        let mask = table.len() - 1;
        let mut i = hash(addr) & mask;
        loop {
            // AcqRel: claims the slot (pairs with the Acquire load in `find`).
            match table[i].key.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(k) if k == addr => break,
                Err(_) => i = (i + 1) & mask,
            }
        }
        // Release: publishes the `AllocRec` fields; pairs with the Acquire in `tracked`.
        table[i].alloc.store(alloc + 1, Ordering::Release);
    }

    /// The live-or-freed value allocation at `addr`, if any.
    fn tracked(addr: usize) -> Option<(&'static Slot, u32, &'static AllocRec)> {
        let slot = find(addr)?;
        // Acquire: pairs with the Release store in `insert`.
        let a = slot.alloc.load(Ordering::Acquire).checked_sub(1)?;
        Some((slot, a, alloc_rec(a)?))
    }

    /// Offsets a value's allocation may have past its system block (see `offset`).
    const OFFSETS: [usize; 5] = [0, 1, 2, 4, 5];

    /// The system allocator handed out the block at `base`: if freed value allocations had
    /// addresses in that block (at any offset), detach them, so that a free of those
    /// addresses from now on is not counted as the values' (it is the new owner's, or a
    /// bogus one). No live value allocation can be there: its block would still be taken.
    fn forget_reused(base: *mut u8) {
        if base.is_null() {
            return;
        }
        for off in OFFSETS {
            let Some((slot, _, a)) = tracked(base as usize + off) else { continue };
            // Acquire: pairs with the AcqRel increment in `dealloc`, which comes before the
            // block went back to the system allocator.
            if a.frees.load(Ordering::Acquire) == 0 {
                // Relaxed: a plain read of a field published with the slot.
                ledger::fail(ledger::LIVE_ADDRESS_REUSED, a.rec.load(Ordering::Relaxed), 0);
            }
            // Release: the slot no longer names the value (pairs with `tracked`'s Acquire).
            slot.alloc.store(0, Ordering::Release);
        }
    }

    /// A value's allocation for record `rec`.
    ///
    /// # Safety
    /// 1. As `GlobalAlloc::alloc` for `layout` (non-zero size).
    unsafe fn alloc_value(layout: Layout, zeroed: bool, rec: u32) -> *mut u8 {
        bump(&TAGGED);
        let (Some(system), Some((a, record))) = (system_layout(layout), new_alloc_rec()) else {
            // The table is full: an untracked allocation (reported with the case).
            ledger::fail(ledger::ALLOCS_FULL, rec, 0);
            // SAFETY: (1) forwarded.
            let p = unsafe {
                if zeroed {
                    System.alloc_zeroed(layout)
                } else {
                    System.alloc(layout)
                }
            };
            forget_reused(p);
            return p;
        };
        // SAFETY: (1) `system` has a non-zero size.
        let base = unsafe {
            if zeroed {
                System.alloc_zeroed(system)
            } else {
                System.alloc(system)
            }
        };
        if base.is_null() {
            return base;
        }
        forget_reused(base);
        let p = base.wrapping_add(offset(layout));
        // Relaxed: published by the Release store in `insert`.
        record.size.store(layout.size(), Ordering::Relaxed);
        record.align.store(layout.align(), Ordering::Relaxed);
        record.rec.store(rec, Ordering::Relaxed);
        insert(p as usize, a);
        p
    }

    struct ShapesAlloc;

    // SAFETY: allocations that are not a value's are forwarded to `System` unchanged. A
    // value's allocation is a larger `System` block (`system_layout`: the offset, 8 bytes of
    // slack, alignment at least 8) of which the caller gets `base + offset`, which is aligned
    // to the requested alignment (the offset is a multiple of it: 1, 5 for alignment 1; 2
    // for 2; 4 for 4; 0 above) and has `size` bytes before the block ends. Its free gives
    // back that block with that layout (recorded at allocation; `offset` and `system_layout`
    // depend on the layout only). The bookkeeping touches only atomics and `const`
    // thread-locals without destructors: it never allocates, locks or unwinds (the ledger's
    // `fail` is lock-free; `poll` in `check_grace` never blocks and, like a drop, may
    // allocate, which re-enters this allocator without any state held).
    unsafe impl GlobalAlloc for ShapesAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let rec = current_tag();
            if rec != NONE {
                // SAFETY: (1) forwarded.
                return unsafe { alloc_value(layout, false, rec) };
            }
            // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
            let p = unsafe { System.alloc(layout) };
            forget_reused(p);
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let rec = current_tag();
            if rec != NONE {
                // SAFETY: (1) forwarded.
                return unsafe { alloc_value(layout, true, rec) };
            }
            // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
            let p = unsafe { System.alloc_zeroed(layout) };
            forget_reused(p);
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if current_tag() != NONE {
                bump(&STRAY);
            }
            let Some((_, _, a)) = tracked(ptr as usize) else {
                if ptr as usize % 8 != 0 {
                    // The system allocator never hands out such an address; only a value's
                    // allocation has one, and this is not a live one: not passed on.
                    ledger::fail(ledger::BOGUS_FREE, NONE, ptr as u32);
                    return;
                }
                // SAFETY: forwarded contract of `GlobalAlloc::dealloc`: not a value's.
                unsafe { System.dealloc(ptr, layout) };
                return;
            };
            // Relaxed: fields published with the slot (Acquire in `tracked`).
            let rec = a.rec.load(Ordering::Relaxed);
            let size = a.size.load(Ordering::Relaxed);
            let align = a.align.load(Ordering::Relaxed);
            // AcqRel: the first free wins; a later one (and `forget_reused`) sees it.
            if a.frees.fetch_add(1, Ordering::AcqRel) != 0 {
                // The block went back already and the address was not handed out since
                // (`forget_reused` would have detached it): a double free, not passed on.
                ledger::fail(ledger::DOUBLE_FREE, rec, ptr as u32);
                return;
            }
            if (size, align) != (layout.size(), layout.align()) {
                ledger::fail(ledger::LAYOUT_MISMATCH, rec, layout.size() as u32);
            }
            ledger::check_grace(rec, ledger::EARLY_FREE, ledger::UNRETIRED_FREE);
            if let Some(r) = ledger::record(rec) {
                let meta = r.meta();
                if meta.flags & ledger::HAS_DROP != 0
                    && meta.flags & ledger::ANON == 0
                    && ledger::drops(rec) == 0
                {
                    ledger::fail(ledger::FREE_BEFORE_DROP, rec, 0);
                }
            }
            // SAFETY: `size` and `align` came from a valid `Layout` in `alloc_value`.
            let recorded = unsafe { Layout::from_size_align_unchecked(size, align) };
            let system = system_layout(recorded).expect("valid when allocated");
            let base = ptr.wrapping_sub(offset(recorded));
            // SAFETY: `base` is the block `alloc_value` got from `System` with `system` (the
            // same function of the same layout), freed once (the `frees` count above).
            unsafe { System.dealloc(base, system) };
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if current_tag() != NONE {
                bump(&STRAY);
            }
            if let Some((_, _, a)) = tracked(ptr as usize) {
                // Acquire: as in `forget_reused`.
                if a.frees.load(Ordering::Acquire) == 0 {
                    // Relaxed: as in `dealloc`.
                    ledger::fail(ledger::TRACKED_REALLOC, a.rec.load(Ordering::Relaxed), 0);
                    // SAFETY: `new_size` with `layout`'s alignment is valid (the contract
                    // of `realloc`).
                    let new =
                        unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                    // SAFETY: (above) a valid, non-zero layout.
                    let p = unsafe { self.alloc(new) };
                    if !p.is_null() {
                        // SAFETY: both blocks hold at least the smaller size, and differ.
                        unsafe {
                            core::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size))
                        };
                        // SAFETY: `ptr` is live with `layout` (the contract of `realloc`).
                        unsafe { self.dealloc(ptr, layout) };
                    }
                    return p;
                }
            }
            // SAFETY: forwarded contract of `GlobalAlloc::realloc`: not a value's.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            forget_reused(p);
            p
        }
    }

    #[global_allocator]
    static GLOBAL: ShapesAlloc = ShapesAlloc;

    /// The record of the value whose allocation starts at `addr` (a `call_rcu` callback's
    /// box).
    pub(crate) fn record_at(addr: usize) -> u32 {
        // Relaxed: published with the slot.
        tracked(addr).map_or(NONE, |(_, _, a)| a.rec.load(Ordering::Relaxed))
    }

    /// The value allocations made since `first` that were never freed.
    pub(crate) fn unfreed(first: u32) -> Vec<u32> {
        (first..next_alloc())
            // Relaxed: read by the test thread after the barrier.
            .filter(|&a| alloc_rec(a).is_some_and(|r| r.frees.load(Ordering::Relaxed) == 0))
            .collect()
    }

    /// Every value allocation made since `first` must have been freed exactly once.
    pub(crate) fn check_frees(first: u32, tally: &mut ledger::Tally) {
        for a in (first..next_alloc()).filter_map(alloc_rec) {
            // Relaxed: read after the barrier and the joins.
            let frees = a.frees.load(Ordering::Relaxed);
            if frees != 1 {
                let rec = a.rec.load(Ordering::Relaxed);
                let what = ledger::record(rec).map_or(String::new(), |r| r.meta().describe());
                let what = format!(
                    "had their allocation ({} bytes, align {}) freed {frees} times (expected \
                     once): {what}",
                    a.size.load(Ordering::Relaxed),
                    a.align.load(Ordering::Relaxed),
                );
                tally.add(what, rec as usize);
            }
        }
    }
}

use counting::tagged;
use ledger::Meta;

// ---------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------

/// What a value's maker knows: the batch it belongs to, its index, whether it panics.
#[derive(Clone, Copy, Debug)]
struct Maker {
    meta: Meta,
    index: usize,
    panics: bool,
}

impl Maker {
    /// Reserves `n` records for one value; `flags(i)`/`class` describe record `i`.
    fn records(&self, n: u32, class: u8, flags: impl Fn(u32) -> u8) -> u32 {
        let first = ledger::reserve(n);
        for i in 0..n {
            ledger::set_meta(first + i, Meta { class, flags: flags(i), ..self.meta });
        }
        first
    }

    fn panic_flag(&self) -> u8 {
        if self.panics {
            ledger::PANICS
        } else {
            0
        }
    }
}

/// The records of one value (several for a slice of droppable elements).
#[derive(Clone, Copy, Debug)]
struct Group {
    first: u32,
    len: u32,
}

impl Group {
    fn one(first: u32) -> Self {
        Group { first, len: 1 }
    }

    fn ids(self) -> core::ops::Range<u32> {
        self.first..self.first + self.len
    }
}

/// A value shape.
trait Payload: Send + Sync + Sized + 'static {
    /// Makes one value: reserves its records and makes its inner allocations (tagged).
    fn make(mk: &Maker) -> (Self, Group);

    /// Hands the value to `kvfree_rcu_mightsleep` as `Box<Self>`.
    fn retire_headless<C: MaySleep>(self, d: &Domain, ctx: &C, rec: u32) {
        let boxed = tagged(rec, usize::from(core::mem::size_of::<Self>() != 0), || Box::new(self));
        d.kvfree_rcu_mightsleep(ctx, boxed);
    }
}

macro_rules! zero_sized {
    ($name:ident, $align:literal, $class:expr, $panics:expr) => {
        #[repr(align($align))]
        #[derive(Debug)]
        struct $name;

        impl Drop for $name {
            fn drop(&mut self) {
                ledger::anon_drop($class);
                if $panics && !std::thread::panicking() {
                    ledger::panic_on_purpose();
                }
            }
        }

        impl Payload for $name {
            fn make(mk: &Maker) -> (Self, Group) {
                let flags =
                    ledger::HAS_DROP | ledger::ANON | if $panics { ledger::PANICS } else { 0 };
                (Self, Group::one(mk.records(1, $class, |_| flags)))
            }
        }

        const _: () = assert!(core::mem::size_of::<$name>() == 0);
        const _: () = assert!(core::mem::align_of::<$name>() == $align);
    };
}

zero_sized!(Z1, 1, ledger::CLASS_Z1, false);
zero_sized!(Z2, 2, ledger::CLASS_Z2, false);
zero_sized!(Z8, 8, ledger::CLASS_Z8, false);
zero_sized!(ZPanic, 1, ledger::CLASS_ZPANIC, true);

macro_rules! blob {
    ($name:ident, $align:literal) => {
        /// A value of alignment $align: a tag naming its record, then `N` bytes.
        #[repr(C, align($align))]
        #[derive(Debug)]
        struct $name<const N: usize> {
            tag: [u8; 4],
            fill: [u8; N],
        }

        impl<const N: usize> Drop for $name<N> {
            fn drop(&mut self) {
                let addr = self as *const Self as usize;
                let panics = ledger::identified_drop(self.tag, addr);
                if N > 0 && self.fill[N - 1] != self.tag[3] {
                    if let Some(rec) = ledger::untag(self.tag) {
                        ledger::fail(ledger::CORRUPT_DROP, rec, addr as u32);
                    }
                }
                if panics {
                    ledger::panic_on_purpose();
                }
            }
        }

        impl<const N: usize> Payload for $name<N> {
            fn make(mk: &Maker) -> (Self, Group) {
                let flags = ledger::HAS_DROP | mk.panic_flag();
                let rec = mk.records(1, ledger::NO_CLASS, |_| flags);
                let tag = ledger::tag(rec);
                let mut fill = [0x5au8; N];
                if N > 0 {
                    fill[N - 1] = tag[3];
                }
                ($name { tag, fill }, Group::one(rec))
            }
        }
    };
}

blob!(A1, 1);
blob!(A2, 2);
blob!(A8, 8);
blob!(A64, 64);
blob!(A4096, 4096);

const _: () = {
    assert!(core::mem::size_of::<A1<0>>() == 4 && core::mem::align_of::<A1<0>>() == 1);
    assert!(core::mem::size_of::<A1<997>>() == 1001);
    assert!(core::mem::size_of::<A1<65532>>() == 65536);
    assert!(core::mem::size_of::<A2<2>>() == 6 && core::mem::align_of::<A2<2>>() == 2);
    assert!(core::mem::size_of::<A8<4>>() == 8 && core::mem::align_of::<A8<4>>() == 8);
    assert!(core::mem::size_of::<A8<4100>>() == 4104);
    assert!(core::mem::size_of::<A64<60>>() == 64 && core::mem::align_of::<A64<60>>() == 64);
    assert!(core::mem::size_of::<A64<65532>>() == 65536);
    assert!(core::mem::size_of::<A4096<4092>>() == 4096);
    assert!(core::mem::align_of::<A4096<0>>() == 4096);
    assert!(core::mem::size_of::<A4096<65532>>() == 65536);
};

/// The trait behind `Box<dyn Trait>` values.
trait Shaped: Send + Sync {
    fn size(&self) -> usize;
}

impl<T: Payload> Shaped for T {
    fn size(&self) -> usize {
        core::mem::size_of_val(self)
    }
}

/// A `Box<dyn Shaped>` of one of four concrete shapes (by the value's index).
fn make_dyn(mk: &Maker) -> (Box<dyn Shaped>, Group) {
    fn boxed<T: Payload>(mk: &Maker) -> (Box<dyn Shaped>, Group) {
        let (v, g) = T::make(mk);
        let expected = usize::from(core::mem::size_of::<T>() != 0);
        let b: Box<dyn Shaped> = tagged(g.first, expected, || Box::new(v));
        (b, g)
    }
    match mk.index % 4 {
        0 => boxed::<Z1>(mk),
        1 => boxed::<A1<1>>(mk),
        2 => boxed::<A4096<0>>(mk),
        _ => boxed::<ZPanic>(mk),
    }
}

impl Payload for Box<dyn Shaped> {
    fn make(mk: &Maker) -> (Self, Group) {
        let (b, g) = make_dyn(mk);
        debug_assert!(b.size() <= 4096);
        (b, g)
    }

    // Unsized values reach `kvfree_rcu_mightsleep` as themselves (`Box<dyn Shaped>`,
    // `Box<[u8]>`, `Box<[Piece]>`; a dangling pointer for a zero-sized `dyn` value or an
    // empty slice), not boxed once more.
    fn retire_headless<C: MaySleep>(self, d: &Domain, ctx: &C, _rec: u32) {
        d.kvfree_rcu_mightsleep(ctx, self);
    }
}

impl Payload for Box<[u8]> {
    fn make(mk: &Maker) -> (Self, Group) {
        let len = [0, 1, 3, 4096, 65536][mk.index % 5];
        let rec = mk.records(1, ledger::NO_CLASS, |_| 0);
        let b = tagged(rec, usize::from(len != 0), || vec![0xa5u8; len].into_boxed_slice());
        (b, Group::one(rec))
    }

    // As themselves: see `Box<dyn Shaped>`.
    fn retire_headless<C: MaySleep>(self, d: &Domain, ctx: &C, _rec: u32) {
        d.kvfree_rcu_mightsleep(ctx, self);
    }
}

/// An element of a boxed slice: alignment 2, a tag.
#[repr(C, align(2))]
#[derive(Debug)]
struct Piece {
    tag: [u8; 4],
}

impl Drop for Piece {
    fn drop(&mut self) {
        if ledger::identified_drop(self.tag, self as *const Self as usize) {
            ledger::panic_on_purpose();
        }
    }
}

impl Payload for Box<[Piece]> {
    fn make(mk: &Maker) -> (Self, Group) {
        let len = (mk.index % 5) as u32;
        // Record 0: the slice's allocation (no drop of its own); then one per element (the
        // first panics if the value does).
        let panic = mk.panic_flag();
        let first = mk.records(1 + len, ledger::NO_CLASS, |i| match i {
            0 => 0,
            1 => ledger::HAS_DROP | panic,
            _ => ledger::HAS_DROP,
        });
        let b = tagged(first, usize::from(len != 0), || {
            (0..len).map(|i| Piece { tag: ledger::tag(first + 1 + i) }).collect::<Vec<_>>()
        })
        .into_boxed_slice();
        (b, Group { first, len: 1 + len })
    }

    // As themselves: see `Box<dyn Shaped>`.
    fn retire_headless<C: MaySleep>(self, d: &Domain, ctx: &C, _rec: u32) {
        d.kvfree_rcu_mightsleep(ctx, self);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Z1,
    Z2,
    Z8,
    ZPanic,
    Align1Size4,
    Align1Size1001,
    Align1Size64K,
    Align2Size6,
    Align8Size8,
    Align8Size4104,
    Align64Size64,
    Align64Size64K,
    Align4096Size4K,
    Align4096Size64K,
    BoxDyn,
    BoxBytes,
    BoxPieces,
}

const SHAPES: [Shape; 17] = [
    Shape::Z1,
    Shape::Z2,
    Shape::Z8,
    Shape::ZPanic,
    Shape::Align1Size4,
    Shape::Align1Size1001,
    Shape::Align1Size64K,
    Shape::Align2Size6,
    Shape::Align8Size8,
    Shape::Align8Size4104,
    Shape::Align64Size64,
    Shape::Align64Size64K,
    Shape::Align4096Size4K,
    Shape::Align4096Size64K,
    Shape::BoxDyn,
    Shape::BoxBytes,
    Shape::BoxPieces,
];

/// Runs `$e` with `$P` the payload type of `$shape`.
macro_rules! with_shape {
    ($shape:expr, $P:ident => $e:expr) => {
        match $shape {
            Shape::Z1 => {
                type $P = Z1;
                $e
            }
            Shape::Z2 => {
                type $P = Z2;
                $e
            }
            Shape::Z8 => {
                type $P = Z8;
                $e
            }
            Shape::ZPanic => {
                type $P = ZPanic;
                $e
            }
            Shape::Align1Size4 => {
                type $P = A1<0>;
                $e
            }
            Shape::Align1Size1001 => {
                type $P = A1<997>;
                $e
            }
            Shape::Align1Size64K => {
                type $P = A1<65532>;
                $e
            }
            Shape::Align2Size6 => {
                type $P = A2<2>;
                $e
            }
            Shape::Align8Size8 => {
                type $P = A8<4>;
                $e
            }
            Shape::Align8Size4104 => {
                type $P = A8<4100>;
                $e
            }
            Shape::Align64Size64 => {
                type $P = A64<60>;
                $e
            }
            Shape::Align64Size64K => {
                type $P = A64<65532>;
                $e
            }
            Shape::Align4096Size4K => {
                type $P = A4096<4092>;
                $e
            }
            Shape::Align4096Size64K => {
                type $P = A4096<65532>;
                $e
            }
            Shape::BoxDyn => {
                type $P = Box<dyn Shaped>;
                $e
            }
            Shape::BoxBytes => {
                type $P = Box<[u8]>;
                $e
            }
            Shape::BoxPieces => {
                type $P = Box<[Piece]>;
                $e
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetirePath {
    CallRcu,
    CallRcuFn,
    KvfreeRcu,
    KvfreeRcuMightsleep,
    RcuCell,
    RcuHashMap,
    RcuList,
}

const PATHS: [RetirePath; 7] = [
    RetirePath::CallRcu,
    RetirePath::CallRcuFn,
    RetirePath::KvfreeRcu,
    RetirePath::KvfreeRcuMightsleep,
    RetirePath::RcuCell,
    RetirePath::RcuHashMap,
    RetirePath::RcuList,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Sleepable,
    NoReclaim,
    Atomic,
}

const TOKS: [Tok; 3] = [Tok::Sleepable, Tok::NoReclaim, Tok::Atomic];

/// The tokens `path`'s calls accept (`call_rcu_fn` allocates, `kvfree_rcu_mightsleep` may
/// sleep: neither compiles with `Atomic`).
fn tokens(path: RetirePath) -> &'static [Tok] {
    match path {
        RetirePath::CallRcuFn | RetirePath::KvfreeRcuMightsleep => &TOKS[..2],
        _ => &TOKS,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ThreadKind {
    /// The test's own thread, which lives on.
    Stays,
    /// A thread spawned for the batch, which exits before the barrier.
    Exits,
}

/// `n` values of one shape, retired through one path with one token on one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Batch {
    path: RetirePath,
    token: Tok,
    domain: Dom,
    thread: ThreadKind,
    shape: Shape,
    n: usize,
    /// Every `panic_every`-th value (of the shapes that can) panics in its drop; 0: none.
    panic_every: usize,
}

impl Batch {
    fn maker(&self, index: usize, may_panic: bool) -> Maker {
        let pos = |x: usize| x as u8;
        Maker {
            meta: Meta {
                shape: pos(SHAPES.iter().position(|&s| s == self.shape).unwrap_or(0)),
                path: pos(PATHS.iter().position(|&p| p == self.path).unwrap_or(0)),
                token: pos(TOKS.iter().position(|&t| t == self.token).unwrap_or(0)),
                domain: self.domain as u8,
                thread: u8::from(self.thread == ThreadKind::Exits),
                class: ledger::NO_CLASS,
                flags: 0,
            },
            index,
            panics: may_panic && self.panic_every != 0 && index % self.panic_every == 0,
        }
    }

    fn make<P: Payload>(&self, index: usize, may_panic: bool) -> (P, Group) {
        P::make(&self.maker(index, may_panic))
    }
}

/// A token borrowed for one batch.
enum TokRef<'r, 's> {
    Sleepable(&'r mut Sleepable),
    NoReclaim(&'r mut NoReclaim<'s>),
    Atomic(&'r mut Atomic<'s>),
}

/// Runs `f` with `token` in scope: the root itself, or a scope opened from it.
fn with_token<R>(root: &mut Sleepable, token: Tok, f: impl FnOnce(&mut TokRef<'_, '_>) -> R) -> R {
    match token {
        Tok::Sleepable => f(&mut TokRef::Sleepable(root)),
        Tok::NoReclaim => {
            let mut scope = root.no_reclaim();
            f(&mut TokRef::NoReclaim(&mut scope))
        }
        Tok::Atomic => {
            let mut scope = root.atomic();
            f(&mut TokRef::Atomic(&mut scope))
        }
    }
}

/// `$e` with `$c: &mut C` for whichever token `$t` holds.
macro_rules! any_token {
    ($t:expr, |$c:ident| $e:expr) => {
        match $t {
            TokRef::Sleepable(c) => {
                let $c = &mut **c;
                $e
            }
            TokRef::NoReclaim(c) => {
                let $c = &mut **c;
                $e
            }
            TokRef::Atomic(c) => {
                let $c = &mut **c;
                $e
            }
        }
    };
}

/// `$e` with `$c` a token that may allocate and sleep; `$else` under `Atomic`.
macro_rules! alloc_token {
    ($t:expr, |$c:ident| $e:expr, else $else:expr) => {
        match $t {
            TokRef::Sleepable(c) => {
                let $c = &mut **c;
                $e
            }
            TokRef::NoReclaim(c) => {
                let $c = &mut **c;
                $e
            }
            TokRef::Atomic(_) => $else,
        }
    };
}

/// Runs a call that may drop a value inline (whose drop may panic on purpose): a panic is
/// counted as surfaced if it is one of those, reported otherwise.
fn contain<R>(f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            let message = panic_message(&*payload);
            if message.contains("(on purpose)") {
                // Relaxed: a count read after the barrier.
                ledger::PANICS_SURFACED.fetch_add(1, Ordering::Relaxed);
            } else {
                ledger::problem(format!("unexpected panic in the test's call: {message}"));
            }
            None
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// The callback of every `call_rcu` here: checks in (the box's address names the value),
/// then drops the box.
fn on_grace_period<P: Payload>(obj: Box<Rcu<P>>, _ctx: &Atomic<'_>) {
    let rec = counting::record_at(&*obj as *const Rcu<P> as usize);
    ledger::callback(rec);
    drop(obj);
}

fn run_batch(root: &mut Sleepable, b: &Batch) {
    with_shape!(b.shape, P => match b.path {
        RetirePath::CallRcu => call_rcu_batch::<P>(root, b),
        RetirePath::CallRcuFn => call_rcu_fn_batch::<P>(root, b),
        RetirePath::KvfreeRcu => kvfree_rcu_batch::<P>(root, b),
        RetirePath::KvfreeRcuMightsleep => mightsleep_batch::<P>(root, b),
        RetirePath::RcuCell => cell_batch::<P>(root, b),
        RetirePath::RcuHashMap => map_batch::<P>(root, b),
        RetirePath::RcuList => list_batch::<P>(root, b),
    })
}

/// Values boxed with a head, made before any scope opens (making them allocates).
fn headed<P: Payload>(b: &Batch) -> Vec<(Box<Rcu<P>>, Group)> {
    (0..b.n)
        .map(|i| {
            let (v, g) = b.make::<P>(i, true);
            (tagged(g.first, 1, || Rcu::boxed(v)), g)
        })
        .collect()
}

fn call_rcu_batch<P: Payload>(root: &mut Sleepable, b: &Batch) {
    let d = domain(b.domain);
    let values = headed::<P>(b);
    for (_, g) in &values {
        ledger::expect_callback(g.first);
    }
    with_token(root, b.token, |t| {
        for (obj, g) in values {
            ledger::retiring(g.ids(), b.domain);
            contain(|| any_token!(&mut *t, |c| d.call_rcu(&*c, obj, on_grace_period::<P>)));
        }
    });
}

fn call_rcu_fn_batch<P: Payload>(root: &mut Sleepable, b: &Batch) {
    let d = domain(b.domain);
    let values: Vec<(P, Group)> = (0..b.n).map(|i| b.make::<P>(i, true)).collect();
    for (_, g) in &values {
        ledger::expect_callback(g.first);
    }
    with_token(root, b.token, |t| {
        for (v, g) in values {
            ledger::retiring(g.ids(), b.domain);
            let closure = move |_: &Atomic<'_>| {
                ledger::callback(g.first);
                drop(v);
            };
            contain(|| alloc_token!(&mut *t, |c| d.call_rcu_fn(&*c, closure), else unreachable!()));
        }
    });
}

fn kvfree_rcu_batch<P: Payload>(root: &mut Sleepable, b: &Batch) {
    let d = domain(b.domain);
    let values = headed::<P>(b);
    with_token(root, b.token, |t| {
        for (obj, g) in values {
            ledger::retiring(g.ids(), b.domain);
            contain(|| any_token!(&mut *t, |c| d.kvfree_rcu(&*c, obj)));
        }
    });
}

fn mightsleep_batch<P: Payload>(root: &mut Sleepable, b: &Batch) {
    let d = domain(b.domain);
    let values: Vec<(P, Group)> = (0..b.n).map(|i| b.make::<P>(i, true)).collect();
    with_token(root, b.token, |t| {
        for (v, g) in values {
            ledger::retiring(g.ids(), b.domain);
            contain(
                || alloc_token!(&mut *t, |c| v.retire_headless(d, &*c, g.first), else unreachable!()),
            );
        }
    });
}

/// A new value for a cell, the way the writer will publish it.
enum CellWrite<P> {
    Replace(Box<Rcu<P>>),
    Set(P),
    Update(Box<Rcu<P>>),
}

fn cell_batch<P: Payload>(root: &mut Sleepable, b: &Batch) {
    let d = domain(b.domain);
    let n = b.n.max(1);
    // The last value stays in the cell, which the test drops: it does not panic (but a
    // zero-sized panicking shape does: its panic surfaces in the test's drop of the cell).
    let (first, mut current) = b.make::<P>(0, n > 1);
    let cell = RcuCell::new_in(d, first);
    let writes: Vec<(CellWrite<P>, Group)> = (1..n)
        .map(|i| {
            let (v, g) = b.make::<P>(i, i + 1 < n);
            let write = match i % 3 {
                0 => CellWrite::Replace(tagged(g.first, 1, || Rcu::boxed(v))),
                1 if b.token != Tok::Atomic => CellWrite::Set(v),
                _ => CellWrite::Update(tagged(g.first, 1, || Rcu::boxed(v))),
            };
            (write, g)
        })
        .collect();
    with_token(root, b.token, |t| {
        for (write, g) in writes {
            ledger::retiring(current.ids(), b.domain);
            match write {
                CellWrite::Replace(obj) => {
                    contain(|| any_token!(&mut *t, |c| cell.replace(&*c, obj)));
                }
                CellWrite::Set(v) => {
                    contain(|| alloc_token!(&mut *t, |c| cell.set(&*c, v), else unreachable!()));
                }
                CellWrite::Update(obj) => {
                    let mut next = Some(obj);
                    let mut f = |_: &P| next.take().expect("one writer: `f` runs once");
                    contain(|| any_token!(&mut *t, |c| cell.update(c, &mut f)));
                }
            }
            current = g;
        }
    });
    ledger::owned(current.ids());
    contain(|| drop(cell));
}

/// A map write, and the value it publishes.
enum MapWrite<P> {
    InsertNode(Box<Rcu<Node<u64, P>>>),
    Insert(P),
    Update(P),
    Compute(P),
}

fn map_batch<P: Payload>(root: &mut Sleepable, b: &Batch) {
    let map: RcuHashMap<u64, P> = match domain_arc(b.domain) {
        None => RcuHashMap::new(),
        Some(d) => RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), d),
    };
    let keys = (b.n as u64).div_ceil(2).max(1);
    let writes: Vec<(u64, MapWrite<P>, Group)> = (0..b.n)
        .map(|i| {
            let key = i as u64 % keys;
            let present = i as u64 >= keys;
            let (v, g) = b.make::<P>(i, true);
            let write = match i % 4 {
                1 if b.token != Tok::Atomic => MapWrite::Insert(v),
                2 if b.token != Tok::Atomic && present => MapWrite::Update(v),
                3 if b.token != Tok::Atomic => MapWrite::Compute(v),
                _ => MapWrite::InsertNode(tagged(g.first, 1, || Node::boxed(key, v))),
            };
            (key, write, g)
        })
        .collect();
    // Sized beforehand: no allocation inside an atomic scope.
    let mut model: HashMap<u64, Group> = HashMap::with_capacity(keys as usize);
    let mut remaining: Vec<Group> = Vec::with_capacity(keys as usize);
    with_token(root, b.token, |t| {
        for (key, write, g) in writes {
            let old = model.get(&key).copied();
            if let Some(old) = old {
                ledger::retiring(old.ids(), b.domain);
            }
            let outcome = match write {
                MapWrite::InsertNode(node) => {
                    contain(|| any_token!(&mut *t, |c| map.insert_node(c, node)))
                }
                MapWrite::Insert(v) => contain(
                    || alloc_token!(&mut *t, |c| map.insert(c, key, v), else unreachable!()),
                ),
                MapWrite::Update(v) => {
                    let mut next = Some(v);
                    let f = |_: &P| next.take().expect("one writer: `f` runs once");
                    contain(
                        || alloc_token!(&mut *t, |c| map.update(c, &key, f), else unreachable!()),
                    )
                    .map(|found| !found)
                }
                MapWrite::Compute(v) => {
                    let mut next = Some(v);
                    let f = |_: Option<&P>| next.take();
                    contain(
                        || alloc_token!(&mut *t, |c| map.compute(c, key, f), else unreachable!()),
                    )
                    .map(|c| c == Computed::Inserted)
                }
            };
            if outcome.is_some_and(|absent| absent != old.is_none()) {
                ledger::problem(format!(
                    "RcuHashMap write of key {key} disagrees with the model ({b:?})"
                ));
            }
            model.insert(key, g);
        }
        if let Some(g) = model.remove(&0) {
            ledger::retiring(g.ids(), b.domain);
            contain(|| any_token!(&mut *t, |c| map.remove(c, &0u64)));
        }
        remaining.extend(model.values().copied());
        for g in &remaining {
            ledger::retiring(g.ids(), b.domain);
        }
        contain(|| any_token!(&mut *t, |c| map.clear(c)));
    });
    if !map.is_empty() {
        ledger::problem(format!("RcuHashMap not empty after clear ({b:?})"));
    }
    drop(map);
}

fn list_batch<P: Payload>(root: &mut Sleepable, b: &Batch) {
    let mut list: RcuList<P> = match domain_arc(b.domain) {
        None => RcuList::new(),
        Some(d) => RcuList::new_in(d),
    };
    let n = b.n.max(1);
    let mut model: VecDeque<Group> = VecDeque::with_capacity(n);
    for i in 0..n {
        let (v, g) = b.make::<P>(i, true);
        let node = tagged(g.first, 1, || ListNode::boxed(v));
        if i % 2 == 0 {
            list.push_back(node);
            model.push_back(g);
        } else {
            list.push_front(node);
            model.push_front(g);
        }
    }
    let (v, replacement) = b.make::<P>(n, true);
    let new_front = tagged(replacement.first, 1, || ListNode::boxed(v));
    // What each step retires, worked out before any scope opens.
    let odd: Vec<Group> = model.iter().skip(1).step_by(2).copied().collect();
    let mut kept: VecDeque<Group> = model.iter().step_by(2).copied().collect();
    let old_front = kept.pop_front().expect("n >= 1: position 0 is kept");
    let rest: Vec<Group> = kept.into_iter().collect();
    with_token(root, b.token, |t| {
        // Every other element, by position.
        for g in &odd {
            ledger::retiring(g.ids(), b.domain);
        }
        let mut position = 0;
        let keep = |_: &P| {
            position += 1;
            position % 2 == 1
        };
        contain(|| any_token!(&mut *t, |c| list.retain(&*c, keep)));
        // The front, replaced; then the replacement, popped.
        ledger::retiring(old_front.ids(), b.domain);
        let mut first = true;
        let matches = |_: &P| core::mem::replace(&mut first, false);
        let replaced =
            contain(|| any_token!(&mut *t, |c| list.replace_first(&*c, matches, new_front)));
        if !matches!(replaced, Some(Ok(()))) {
            ledger::problem(format!("RcuList::replace_first found no element ({b:?})"));
        }
        ledger::retiring(replacement.ids(), b.domain);
        contain(|| any_token!(&mut *t, |c| list.pop_front(&*c)));
        // The rest.
        for g in &rest {
            ledger::retiring(g.ids(), b.domain);
        }
        contain(|| any_token!(&mut *t, |c| list.retain(&*c, |_| false)));
    });
    if !list.is_empty() {
        ledger::problem(format!("RcuList not empty after retain(false) ({b:?})"));
    }
    drop(list);
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

/// Batches per case, and values per batch: a few, or a flood that fills blocks of the
/// default size (253 entries), so that full blocks are sealed and run.
const MAX_BATCHES: usize = 6;
const MAX_VALUES: usize = 12;
const FLOOD: core::ops::RangeInclusive<usize> = 256..=320;
/// Values per batch of the sweep (one batch per case has `FLOOD_VALUES`).
const SWEEP_VALUES: usize = 3;
const FLOOD_VALUES: usize = 300;

/// How long a failing case waits for the runtime's late work before the next case.
const QUIET: std::time::Duration = std::time::Duration::from_millis(50);

/// Stack for the threads that make values: a 64 KiB value is copied a few times on its way
/// into a box in a debug build.
const STACK: usize = 16 << 20;

fn register_everywhere(root: &Sleepable) {
    for d in DOMS {
        domain(d).register_current_thread(root);
    }
}

/// Runs one case: the batches of exiting threads concurrently with the test thread's, then
/// the barriers, then the checks.
fn run_case(case: &[Batch]) -> Result<(), String> {
    let start = ledger::begin_case();
    let exiting: Vec<_> = case
        .iter()
        .filter(|b| b.thread == ThreadKind::Exits)
        .map(|&b| {
            std::thread::Builder::new()
                .name("shapes-exits".into())
                .stack_size(STACK)
                .spawn(move || {
                    let mut root = Sleepable::enter();
                    register_everywhere(&root);
                    run_batch(&mut root, &b);
                })
                .expect("spawn")
        })
        .collect();
    let mut root = Sleepable::enter();
    register_everywhere(&root);
    for b in case.iter().filter(|b| b.thread == ThreadKind::Stays) {
        run_batch(&mut root, b);
    }
    for thread in exiting {
        if let Err(payload) = thread.join() {
            ledger::problem(format!("an exiting thread panicked: {}", panic_message(&*payload)));
        }
    }
    rcu_barrier(&root);
    for d in [Dom::Private, Dom::Cramped] {
        domain(d).rcu_barrier(&root);
    }
    let unfreed = counting::unfreed(start.allocs());
    let mut failures = ledger::end_case(&start);
    if failures.is_empty() {
        return Ok(());
    }
    // What the runtime still does for this case after the barriers returned (late frees,
    // late second drops) must not be charged to the next case (nor mislead shrinking): wait,
    // then barriers again, then drop what was logged meanwhile. Not a check, but the
    // unfreed allocations tell whether they were late or leaked.
    std::thread::sleep(QUIET);
    if !unfreed.is_empty() {
        let never = counting::unfreed(start.allocs());
        failures.push(format!(
            "(of the {} value allocations not freed when the barriers returned, {} were freed \
             within the next {QUIET:?}, without another barrier)",
            unfreed.len(),
            unfreed.len() - never.len()
        ));
    }
    rcu_barrier(&root);
    for d in [Dom::Private, Dom::Cramped] {
        domain(d).rcu_barrier(&root);
    }
    ledger::discard_log();
    let shown = failures.len().min(12);
    Err(format!(
        "{} failure(s) after rcu_barrier:\n  {}{}",
        failures.len(),
        failures[..shown].join("\n  "),
        if failures.len() > shown { "\n  ..." } else { "" }
    ))
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        (0..PATHS.len(), 0..3usize, 0..DOMS.len(), any::<bool>()),
        (
            0..SHAPES.len(),
            prop_oneof![9 => 1..=MAX_VALUES, 1 => FLOOD],
            prop_oneof![Just(0usize), 1..=4usize],
        ),
    )
        .prop_map(|((p, t, d, exits), (s, n, panic_every))| {
            let path = PATHS[p];
            let allowed = tokens(path);
            Batch {
                path,
                token: allowed[t % allowed.len()],
                domain: DOMS[d],
                thread: if exits { ThreadKind::Exits } else { ThreadKind::Stays },
                shape: SHAPES[s],
                n,
                panic_every,
            }
        })
}

/// Every path with every token it accepts, on every domain, from both thread kinds, with
/// every shape: one case per path and shape, one batch per token, domain and thread kind.
fn sweep() -> Vec<Vec<Batch>> {
    let mut cases = Vec::new();
    for path in PATHS {
        for (s, shape) in SHAPES.into_iter().enumerate() {
            let mut case = Vec::new();
            for &token in tokens(path) {
                for domain in DOMS {
                    for thread in [ThreadKind::Stays, ThreadKind::Exits] {
                        let i = case.len();
                        let panic_every = if (s + i) % 2 == 0 { 2 } else { 0 };
                        // One flood per case, on a different combination for each shape.
                        let combos = tokens(path).len() * DOMS.len() * 2;
                        let n = if i == s % combos { FLOOD_VALUES } else { SWEEP_VALUES };
                        case.push(Batch { path, token, domain, thread, shape, n, panic_every });
                    }
                }
            }
            cases.push(case);
        }
    }
    cases
}

/// Keeps the panics raised on purpose, and the runtime's reports of those it contained, out
/// of the output; any other panic or report is printed.
fn quiet_provoked_panics() {
    rcu_tests::quiet::quiet_deliberate_panics();
    rcu_tests::quiet::quiet_reports(CALLBACK_REPORT);
}

/// What the runtime reports after a batch in which callbacks (here: drops) panicked.
const CALLBACK_REPORT: &str = "RCU callback(s) of domain '";

fn cases_from_env() -> u32 {
    std::env::var("VALUE_SHAPES_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

#[test]
fn every_value_shape_is_dropped_and_freed_exactly_once_after_its_grace_period() {
    // On a thread with a large stack (see `STACK`); the test thread is the one that stays.
    std::thread::Builder::new()
        .name("shapes-stays".into())
        .stack_size(STACK)
        .spawn(shapes)
        .expect("spawn")
        .join()
        .unwrap_or_else(|payload| std::panic::resume_unwind(payload));
}

fn shapes() {
    quiet_provoked_panics();
    let cases = cases_from_env();
    let sweep = sweep();
    counting::init();
    let natural = std::env::var_os("VALUE_SHAPES_NATURAL_ADDRESSES").is_some_and(|v| v == "1");
    // Relaxed: read by the allocator on this thread and on threads started after this.
    counting::NATURAL_ADDRESSES.store(natural, Ordering::Relaxed);
    {
        let root = Sleepable::enter();
        rcu_core::init(&root);
    }
    make_domains();

    let mut failures = Vec::new();
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 20_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(batch(), 1..=MAX_BATCHES), |case| {
        run_case(&case).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        failures.push(format!("property test ({cases} cases): {e}"));
    }
    for case in &sweep {
        if let Err(e) = run_case(case) {
            failures.push(format!(
                "sweep of {:?} over {:?}: {e}\n  batches failing alone: {}",
                case[0].path,
                case[0].shape,
                pinpoint(case)
            ));
        }
    }
    assert!(failures.is_empty(), "value shapes:\n\n{}", failures.join("\n\n"));
}

/// The batches of a failing case that fail when run alone (with more values, twice).
fn pinpoint(case: &[Batch]) -> String {
    const N: usize = MAX_VALUES;
    let mut culprits = Vec::new();
    for b in case {
        let alone = Batch { n: b.n.max(N), ..*b };
        if (0..2).any(|_| run_case(&[alone]).is_err()) {
            culprits.push(format!("{:?}/{:?}/{:?}", b.token, b.domain, b.thread));
        }
    }
    if culprits.is_empty() {
        format!("none (alone, with at least {N} values)")
    } else {
        culprits.join(", ")
    }
}
