//! Blocks: fixed-size arrays of deferred-work entries, the unit that batches frees and
//! callbacks (like the kernel's page of pointers for `kvfree_rcu`).
//!
//! A block is one allocation of `block_bytes` (default 4 KiB): a header followed by as many
//! [`Entry`]s as fit (253 at 4 KiB). The header records the allocation's size, so a block is
//! freed with the layout it was allocated with whichever allocator it ends up in. Blocks move
//! between a thread's staging, the domain's queues, the global pool and thread caches as raw
//! pointers; whoever holds the pointer owns the block. The functions that take a block back
//! for reuse or freeing (`BlockAllocator::put`, `put_to_pool`, `ThreadCache::push`) are
//! `unsafe`: only the caller knows that the pointer is one of this crate's blocks and theirs
//! to give.

use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use std::alloc::{self, Layout};

/// One deferred action: run `run(obj, ctx)` after a grace period. `run` either drops `obj`
/// (a deferred free) or calls the user's callback with it.
///
/// ```
/// use rcu_alloc::Entry;
/// use rcu_ctx::{Atomic, Context, Sleepable};
///
/// /// Rebuilds the box and drops it: a deferred free of a `u64`.
/// ///
/// /// # Safety
/// /// 1. `obj` came from `Box::<u64>::into_raw` and is owned by the caller.
/// unsafe fn free_u64(obj: *mut (), _ctx: &Atomic<'_>) {
///     // SAFETY: (1).
///     drop(unsafe { Box::from_raw(obj.cast::<u64>()) });
/// }
/// let entry = Entry { obj: Box::into_raw(Box::new(7u64)).cast(), run: free_u64 };
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// // SAFETY: (1) the entry was made from a `Box<u64>` and is run exactly once.
/// unsafe { (entry.run)(entry.obj, &atomic) };
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The object (type-erased owning pointer).
    pub obj: *mut (),
    /// Monomorphised trampoline that knows `obj`'s type.
    pub run: unsafe fn(*mut (), &rcu_ctx::Atomic<'_>),
}

#[repr(C)]
struct Header {
    /// Link for the lists blocks travel on; owned by whoever owns the block.
    next: *mut Block,
    len: usize,
    capacity: usize,
    /// Bytes of memory the entries keep alive (objects plus this block), for the budget.
    pending_bytes: usize,
    /// For the block's current holder (the runtime stores who sealed the block, to give
    /// it back to).
    tag: u64,
    /// The size the block was allocated with: `free` needs the allocation's layout.
    block_bytes: usize,
}

/// A block. Only ever handled through `NonNull<Block>`; its entries follow the header.
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
/// // SAFETY: `get` handed the block over; we are its only user until `put`.
/// let b = unsafe { &mut *block.as_ptr() };
/// assert!(b.is_empty() && !b.is_full());
/// assert_eq!(b.len(), 0);
/// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
/// unsafe { alloc.put(block) };
/// ```
#[repr(C)]
pub struct Block {
    header: Header,
    // Entries follow; `Entry` has the same alignment as the header's fields.
}

impl core::fmt::Debug for Block {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Block")
            .field("len", &self.header.len)
            .field("capacity", &self.header.capacity)
            .finish()
    }
}

const HEADER: usize = size_of::<Header>();

/// The largest block: 1 MiB, 65,533 entries. Larger blocks batch no better (one grace period
/// already serves the whole batch), while every cached, pooled and parked block would hold
/// that much memory (a full pool of `POOL_CAPACITY` blocks alone 128 MiB).
///
/// ```
/// use rcu_alloc::{capacity_for, AllocConfig, MAX_BLOCK_BYTES};
/// assert_eq!(capacity_for(MAX_BLOCK_BYTES), 65_533);
/// assert!(AllocConfig::new().block_bytes(MAX_BLOCK_BYTES).validate().is_ok());
/// assert!(AllocConfig::new().block_bytes(MAX_BLOCK_BYTES + 1).validate().is_err());
/// ```
pub const MAX_BLOCK_BYTES: usize = 1 << 20;

const _: () = assert!(HEADER % align_of::<Entry>() == 0);

/// The smallest block that still batches: its header and room for two entries.
///
/// ```
/// use rcu_alloc::{capacity_for, MIN_BLOCK_BYTES};
/// assert_eq!(capacity_for(MIN_BLOCK_BYTES), 2);
/// assert_eq!(MIN_BLOCK_BYTES, 80); // a 48-byte header and two 16-byte entries
/// ```
pub const MIN_BLOCK_BYTES: usize = HEADER + 2 * size_of::<Entry>();

/// How many entries a block of `block_bytes` holds (0 if not even the header fits).
///
/// ```
/// assert_eq!(rcu_alloc::capacity_for(4096), 253);
/// assert_eq!(rcu_alloc::capacity_for(16), 0);
/// ```
pub const fn capacity_for(block_bytes: usize) -> usize {
    block_bytes.saturating_sub(HEADER) / size_of::<Entry>()
}

fn layout(block_bytes: usize) -> Layout {
    Layout::from_size_align(block_bytes, 64)
        .expect("rcu-alloc: block size too large for an allocation (over isize::MAX)")
}

impl Block {
    /// Allocates an empty block from the global allocator; `None` if it fails.
    pub(crate) fn allocate(block_bytes: usize) -> Option<NonNull<Block>> {
        assert!(
            (MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES).contains(&block_bytes),
            "rcu-alloc internal error: a block of {block_bytes} bytes is outside \
             MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES ({MIN_BLOCK_BYTES}..={MAX_BLOCK_BYTES}), which \
             BlockAllocator::new rules out"
        );
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc(layout(block_bytes)) }.cast::<Block>();
        let block = NonNull::new(raw)?;
        // SAFETY: freshly allocated, large enough and aligned for the header.
        unsafe {
            ptr::write(
                raw.cast::<Header>(),
                Header {
                    next: ptr::null_mut(),
                    len: 0,
                    capacity: capacity_for(block_bytes),
                    pending_bytes: 0,
                    tag: 0,
                    block_bytes,
                },
            )
        };
        Some(block)
    }

    /// Returns a block to the global allocator (its entries, if any, are forgotten).
    ///
    /// # Safety
    /// 1. `block` came from `Block::allocate`.
    /// 2. The caller owns it and it is not used afterwards.
    pub(crate) unsafe fn free(block: NonNull<Block>) {
        // SAFETY: (1) a live block, so its header is initialized; (2) nobody else uses it.
        let block_bytes = unsafe { block.as_ref() }.header.block_bytes;
        // SAFETY: (1) `Block::allocate` used `layout(block_bytes)`, the size its header
        // records; (2) no further use.
        unsafe { alloc::dealloc(block.as_ptr().cast(), layout(block_bytes)) };
    }

    fn entries_ptr(&mut self) -> *mut Entry {
        // SAFETY: entries start right after the header inside the same allocation.
        unsafe { (self as *mut Block).cast::<u8>().add(HEADER).cast::<Entry>() }
    }

    /// Entries queued.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// b.push(Entry { obj: std::ptr::null_mut(), run: forget }, 8);
    /// assert_eq!(b.len(), 1);
    /// let _ = b.drain();
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn len(&self) -> usize {
        self.header.len
    }

    /// True if no entry is queued.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// assert!(b.is_empty());
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn is_empty(&self) -> bool {
        self.header.len == 0
    }

    /// True if no more entries fit.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// while !b.is_full() {
    ///     b.push(Entry { obj: std::ptr::null_mut(), run: forget }, 0);
    /// }
    /// assert_eq!(b.len(), 253);
    /// let _ = b.drain();
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn is_full(&self) -> bool {
        self.header.len == self.header.capacity
    }

    /// Bytes the queued entries keep alive, plus the block itself once it holds any.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// b.push(Entry { obj: std::ptr::null_mut(), run: forget }, 100);
    /// b.push(Entry { obj: std::ptr::null_mut(), run: forget }, 28);
    /// assert_eq!(b.pending_bytes(), 128);
    /// let (_, bytes) = b.drain();
    /// assert_eq!(bytes, 128);
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn pending_bytes(&self) -> usize {
        self.header.pending_bytes
    }

    /// Appends an entry that keeps `bytes` of memory alive. The caller checked `!is_full()`.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// if !b.is_full() {
    ///     b.push(Entry { obj: std::ptr::null_mut(), run: forget }, 16);
    /// }
    /// let _ = b.drain();
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    #[inline]
    pub fn push(&mut self, entry: Entry, bytes: usize) {
        let len = self.header.len;
        assert!(
            len < self.header.capacity,
            "rcu-alloc: Block::push into a full block (capacity {}): check is_full() first and \
             seal the block",
            self.header.capacity
        );
        // SAFETY: `len < capacity`, so the slot is inside the allocation.
        unsafe { self.entries_ptr().add(len).write(entry) };
        self.header.len = len + 1;
        self.header.pending_bytes += bytes;
    }

    /// Takes the entries out, leaving the block empty; returns them with their byte count.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::{Atomic, Context, Sleepable};
    ///
    /// /// # Safety
    /// /// 1. `obj` came from `Box::<u32>::into_raw` and is owned by the caller.
    /// unsafe fn free_u32(obj: *mut (), _ctx: &Atomic<'_>) {
    ///     // SAFETY: (1).
    ///     drop(unsafe { Box::from_raw(obj.cast::<u32>()) });
    /// }
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// for i in 0..3u32 {
    ///     b.push(Entry { obj: Box::into_raw(Box::new(i)).cast(), run: free_u32 }, 4);
    /// }
    /// let mut ctx = Sleepable::enter();
    /// let atomic = ctx.atomic();
    /// let (entries, bytes) = b.drain();
    /// assert_eq!(bytes, 12);
    /// for e in entries {
    ///     // SAFETY: (1) each entry holds a `Box<u32>` and runs once.
    ///     unsafe { (e.run)(e.obj, &atomic) };
    /// }
    /// assert!(b.is_empty());
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn drain(&mut self) -> (Drain<'_>, usize) {
        let len = core::mem::take(&mut self.header.len);
        let bytes = core::mem::take(&mut self.header.pending_bytes);
        let entries = self.entries_ptr();
        (Drain { entries, next: 0, len, _block: core::marker::PhantomData }, bytes)
    }

    /// Passes each entry, in order, to `f` and keeps (at the front, in order) those it gives
    /// back; returns the bytes the entries carried, which the block no longer counts (kept
    /// entries carry none). `f` must not unwind: entries not yet passed to it would be lost.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// for i in 0..4usize {
    ///     b.push(Entry { obj: i as *mut (), run: forget }, 10);
    /// }
    /// let bytes = b.filter_entries(|e| (e.obj as usize % 2 == 1).then_some(e));
    /// assert_eq!((bytes, b.len(), b.pending_bytes()), (40, 2, 0));
    /// let _ = b.drain();
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn filter_entries(&mut self, mut f: impl FnMut(Entry) -> Option<Entry>) -> usize {
        let len = core::mem::take(&mut self.header.len);
        let bytes = core::mem::take(&mut self.header.pending_bytes);
        let entries = self.entries_ptr();
        let mut kept = 0;
        for i in 0..len {
            // SAFETY: `i < len <= capacity`: an initialized entry, read once.
            let entry = unsafe { entries.add(i).read() };
            if let Some(keep) = f(entry) {
                // SAFETY: `kept <= i`: inside the allocation, and entry `kept` was read.
                unsafe { entries.add(kept).write(keep) };
                kept += 1;
            }
        }
        self.header.len = kept;
        bytes
    }

    /// The holder's tag (see `set_tag`).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// b.set_tag(42); // e.g. the grace period the entries wait for
    /// assert_eq!(b.tag(), 42);
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn tag(&self) -> u64 {
        self.header.tag
    }

    /// Stores a value for the block's current holder (the runtime: a grace-period cookie).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// b.set_tag(7);
    /// assert_eq!(b.tag(), 7);
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn set_tag(&mut self, tag: u64) {
        self.header.tag = tag;
    }

    /// The list link (see `set_next`).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
    /// use rcu_ctx::Atomic;
    ///
    /// unsafe fn forget(_obj: *mut (), _ctx: &Atomic<'_>) {}
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: `get` handed the block over; we are its only user until `put`.
    /// let b = unsafe { &mut *block.as_ptr() };
    /// b.set_next(std::ptr::null_mut());
    /// assert!(b.next().is_null());
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn next(&self) -> *mut Block {
        self.header.next
    }

    /// Sets the list link, for the block's current holder to chain blocks it owns. This crate
    /// never follows the link (its pool and caches keep their own), so any value is safe to
    /// store; code that follows links trusts only lists it built itself.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let mut cache = ThreadCache::new();
    /// let first = alloc.get(Policy::Reclaim, &mut cache).unwrap();
    /// let second = alloc.get(Policy::Reclaim, &mut cache).unwrap();
    /// // SAFETY: both blocks were handed over by `get`; we are their only user until `put`.
    /// unsafe { (*first.as_ptr()).set_next(second.as_ptr()) }; // a two-block list
    /// // SAFETY: as above.
    /// assert_eq!(unsafe { (*first.as_ptr()).next() }, second.as_ptr());
    /// // SAFETY: (1) `first` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(first) };
    /// // SAFETY: (1) `second` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(second) };
    /// ```
    pub fn set_next(&mut self, next: *mut Block) {
        self.header.next = next;
    }
}

/// The entries taken out of a block, in the order they were pushed.
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, Entry, Policy, ThreadCache};
/// use rcu_ctx::Atomic;
///
/// unsafe fn nothing(_obj: *mut (), _ctx: &Atomic<'_>) {}
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
/// // SAFETY: `get` handed the block over; we are its only user until `put`.
/// let b = unsafe { &mut *block.as_ptr() };
/// for i in 0..3usize {
///     b.push(Entry { obj: i as *mut (), run: nothing }, 0);
/// }
/// let (drain, _) = b.drain();
/// let order: Vec<usize> = drain.map(|e| e.obj as usize).collect();
/// assert_eq!(order, [0, 1, 2]); // in push order
/// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
/// unsafe { alloc.put(block) };
/// ```
#[derive(Debug)]
pub struct Drain<'a> {
    entries: *mut Entry,
    next: usize,
    len: usize,
    _block: core::marker::PhantomData<&'a mut Block>,
}

impl Iterator for Drain<'_> {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        if self.next == self.len {
            return None;
        }
        // SAFETY: entries `0..len` were written by `push` and not yet read.
        let e = unsafe { self.entries.add(self.next).read() };
        self.next += 1;
        Some(e)
    }
}
