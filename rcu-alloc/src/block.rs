//! Blocks: fixed-size arrays of deferred-work entries, the unit that batches frees and
//! callbacks (like the kernel's page of pointers for `kvfree_rcu`).
//!
//! A block is one allocation of `block_bytes` (default 4 KiB): a header followed by as many
//! [`Entry`]s as fit (253 at 4 KiB). Blocks move between a thread's staging, the domain's
//! queues, the global pool and thread caches as raw pointers; whoever holds the pointer owns
//! the block.

use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use std::alloc::{self, Layout};

/// One deferred action: run `run(obj, ctx)` after a grace period. `run` either drops `obj`
/// (a deferred free) or calls the user's callback with it.
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
    /// For the block's current holder: the runtime stores the grace-period cookie that
    /// must complete before the entries may run.
    tag: u64,
}

/// A block. Only ever handled through `NonNull<Block>`; its entries follow the header.
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
const _: () = assert!(HEADER % align_of::<Entry>() == 0);

/// The smallest block that still batches: room for two entries.
pub const MIN_BLOCK_BYTES: usize = HEADER + 2 * size_of::<Entry>();

/// How many entries a block of `block_bytes` holds.
pub const fn capacity_for(block_bytes: usize) -> usize {
    (block_bytes - HEADER) / size_of::<Entry>()
}

fn layout(block_bytes: usize) -> Layout {
    Layout::from_size_align(block_bytes, 64).expect("rcu-alloc: invalid block size")
}

impl Block {
    /// Allocates an empty block from the global allocator; `None` if it fails.
    pub(crate) fn allocate(block_bytes: usize) -> Option<NonNull<Block>> {
        assert!(block_bytes >= MIN_BLOCK_BYTES, "rcu-alloc: block smaller than MIN_BLOCK_BYTES");
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
                },
            )
        };
        Some(block)
    }

    /// Returns an empty block to the global allocator.
    ///
    /// # Safety
    /// 1. `block` came from `Block::allocate(block_bytes)` with this `block_bytes`.
    /// 2. The caller owns it and it is not used afterwards.
    pub(crate) unsafe fn free(block: NonNull<Block>, block_bytes: usize) {
        // SAFETY: (1) same layout as the allocation; (2) no further use.
        unsafe { alloc::dealloc(block.as_ptr().cast(), layout(block_bytes)) };
    }

    fn entries_ptr(&mut self) -> *mut Entry {
        // SAFETY: entries start right after the header inside the same allocation.
        unsafe { (self as *mut Block).cast::<u8>().add(HEADER).cast::<Entry>() }
    }

    /// Entries queued.
    pub fn len(&self) -> usize {
        self.header.len
    }

    /// True if no entry is queued.
    pub fn is_empty(&self) -> bool {
        self.header.len == 0
    }

    /// True if no more entries fit.
    pub fn is_full(&self) -> bool {
        self.header.len == self.header.capacity
    }

    /// Bytes the queued entries keep alive, plus the block itself once it holds any.
    pub fn pending_bytes(&self) -> usize {
        self.header.pending_bytes
    }

    /// Appends an entry that keeps `bytes` of memory alive. The caller checked `!is_full()`.
    #[inline]
    pub fn push(&mut self, entry: Entry, bytes: usize) {
        let len = self.header.len;
        assert!(len < self.header.capacity, "rcu-alloc: push into a full block");
        // SAFETY: `len < capacity`, so the slot is inside the allocation.
        unsafe { self.entries_ptr().add(len).write(entry) };
        self.header.len = len + 1;
        self.header.pending_bytes += bytes;
    }

    /// Takes the entries out, leaving the block empty; returns them with their byte count.
    pub fn drain(&mut self) -> (Drain<'_>, usize) {
        let len = core::mem::take(&mut self.header.len);
        let bytes = core::mem::take(&mut self.header.pending_bytes);
        let entries = self.entries_ptr();
        (Drain { entries, next: 0, len, _block: core::marker::PhantomData }, bytes)
    }

    /// The holder's tag (see `set_tag`).
    pub fn tag(&self) -> u64 {
        self.header.tag
    }

    /// Stores a value for the block's current holder (the runtime: a grace-period cookie).
    pub fn set_tag(&mut self, tag: u64) {
        self.header.tag = tag;
    }

    /// The list link.
    pub fn next(&self) -> *mut Block {
        self.header.next
    }

    /// Sets the list link.
    pub fn set_next(&mut self, next: *mut Block) {
        self.header.next = next;
    }
}

/// The entries taken out of a block, in the order they were pushed.
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
