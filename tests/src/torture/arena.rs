//! The torture elements: a fixed arena, so that a reader holding an element that was freed
//! too early reads poisoned memory that still exists (a detectable failure), never memory
//! returned to the allocator (undefined behaviour that might go unnoticed).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Written into every live element; a freed element holds `POISON` instead.
pub const MAGIC: u64 = 0x5eed_cafe_f00d_0001;
/// What "free" writes over `MAGIC`, as the kernel's rcutorture poisons on free.
pub const POISON: u64 = 0xdead_dead_dead_dead;

/// Grace periods an element ages after retirement before it is freed (as the kernel's
/// `RCU_TORTURE_PIPE_LEN`).
pub const PIPE_LEN: u32 = 10;

/// One element. All fields are atomics: readers and the writer race on them by design.
#[derive(Debug)]
pub struct Element {
    /// `MAGIC` while allocated, `POISON` once freed.
    pub magic: AtomicU64,
    /// Grace periods completed since retirement (0 while current).
    pub age: AtomicU32,
    /// Changes every time the element is allocated: a reader that sees it change inside
    /// one read section saw the element freed and reused under it.
    pub generation: AtomicU64,
    /// 1 if allocated (or retired and not yet freed), 0 if free.
    in_use: AtomicU32,
}

/// The arena of elements.
#[derive(Debug)]
pub struct Arena {
    elements: Box<[Element]>,
    cursor: AtomicUsize,
    frees: AtomicU64,
}

impl Arena {
    /// An arena of `len` elements, all free (poisoned).
    pub fn new(len: usize) -> Self {
        let elements = (0..len)
            .map(|_| Element {
                magic: AtomicU64::new(POISON),
                age: AtomicU32::new(0),
                generation: AtomicU64::new(0),
                in_use: AtomicU32::new(0),
            })
            .collect();
        Arena { elements, cursor: AtomicUsize::new(0), frees: AtomicU64::new(0) }
    }

    /// The element at `index`.
    pub fn get(&self, index: usize) -> &Element {
        &self.elements[index]
    }

    /// Allocates a free element (age 0, `MAGIC`, a new generation); `None` if all are in
    /// use (the caller waits for grace periods to free some).
    pub fn alloc(&self) -> Option<usize> {
        let len = self.elements.len();
        // Relaxed: a starting point for the scan only.
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..len {
            let index = (start + i) % len;
            let e = &self.elements[index];
            // Acquire: pairs with the Release in `free`: the previous life is over.
            if e.in_use.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                // Relaxed: published to readers by the Release store of the pointer.
                e.age.store(0, Ordering::Relaxed);
                e.generation.fetch_add(1, Ordering::Relaxed);
                e.magic.store(MAGIC, Ordering::Relaxed);
                return Some(index);
            }
        }
        None
    }

    /// Frees (poisons) an element.
    pub fn free(&self, index: usize) {
        let e = &self.elements[index];
        // Relaxed: ordered before the Release below.
        e.magic.store(POISON, Ordering::Relaxed);
        // Relaxed: a statistic.
        self.frees.fetch_add(1, Ordering::Relaxed);
        // Release: pairs with the Acquire in `alloc`.
        e.in_use.store(0, Ordering::Release);
    }

    /// Elements freed so far.
    pub fn frees(&self) -> u64 {
        // Relaxed: a statistic.
        self.frees.load(Ordering::Relaxed)
    }
}
