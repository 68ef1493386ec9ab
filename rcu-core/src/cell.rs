//! `RcuCell<T>`: a value that readers load without locks and writers replace, the old value
//! being dropped only after every reader that could see it has finished.

use core::marker::PhantomData;
use core::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use rcu_ctx::MaySleep;

use crate::domain::{Domain, DomainRef};
use crate::reader::ReadGuard;

/// An RCU-protected value of one domain.
///
/// Readers [`load`](RcuCell::load) it under a read guard: a plain pointer load, no lock, no
/// reference count. Writers [`replace`](RcuCell::replace) or [`update`](RcuCell::update) it;
/// writers are serialised among themselves, and the old value is dropped after a grace
/// period.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{read_lock, RcuCell};
///
/// struct Config { verbose: bool, limit: u32 }
///
/// let cell = RcuCell::new(Config { verbose: false, limit: 10 });
/// let mut ctx = Sleepable::enter();
/// {
///     let guard = read_lock(&mut ctx);
///     let cfg = cell.load(&guard);
///     assert_eq!(cfg.limit, 10);
/// }
/// cell.update(&ctx, |old| Config { verbose: true, ..*old });
/// let guard = read_lock(&mut ctx);
/// assert!(cell.load(&guard).verbose);
/// ```
#[derive(Debug)]
pub struct RcuCell<T> {
    /// Never null: always a `Box<T>` turned into a raw pointer.
    ptr: AtomicPtr<T>,
    domain: DomainRef,
    /// Serialises writers, so that `update` reads a current value no one else retires.
    writer: Mutex<()>,
    _owns: PhantomData<Box<T>>,
}

// SAFETY: the cell owns a `T` (moving the cell moves the `T`).
unsafe impl<T: Send> Send for RcuCell<T> {}
// SAFETY: readers on several threads get `&T` at once (needs `T: Sync`), and a writer on any
// thread drops values created on another (needs `T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuCell<T> {}

impl<T> RcuCell<T> {
    /// A cell of the global domain.
    pub fn new(value: T) -> Self {
        Self::new_in(Domain::global(), value)
    }

    /// A cell of `domain`: load it under that domain's read guards.
    pub fn new_in(domain: &Domain, value: T) -> Self {
        RcuCell {
            ptr: AtomicPtr::new(Box::into_raw(Box::new(value))),
            domain: domain.state_ref(),
            writer: Mutex::new(()),
            _owns: PhantomData,
        }
    }

    /// The current value, valid while `guard` lives.
    ///
    /// # Panics
    /// If `guard` is a read section of another domain than the cell's: it would not keep
    /// the value alive.
    #[inline]
    pub fn load<'g>(&'g self, guard: &'g ReadGuard<'_>) -> &'g T {
        assert!(
            ptr::eq(guard.domain_state(), &*self.domain),
            "rcu-core: RcuCell loaded under a read guard of another domain: use a guard of the \
             cell's own domain"
        );
        // Acquire: pairs with the Release publication in `replace`/`update`: the value's
        // initialisation is visible before we dereference it.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `p` is a live Box: values are only freed after a grace period that began
        // after they were unpublished, and `guard` is a read section of this cell's domain
        // that began before that, so it holds the grace period off while `'g` lives.
        unsafe { &*p }
    }

    /// Publishes `value` and drops the old one after a grace period (waiting for it).
    pub fn replace<C: MaySleep>(&self, ctx: &C, value: T) {
        ctx.validate();
        let new = Box::into_raw(Box::new(value));
        let old = {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            // AcqRel: Release publishes `new` to readers (Acquire in `load`); Acquire makes
            // the old value's contents ours to drop.
            self.ptr.swap(new, Ordering::AcqRel)
        };
        self.retire(old);
    }

    /// Publishes `f(current)` and drops the old value after a grace period (waiting for it).
    /// Writers are serialised, so no update is lost.
    pub fn update<C: MaySleep>(&self, ctx: &C, f: impl FnOnce(&T) -> T) {
        ctx.validate();
        let old = {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            // Relaxed: under the writer lock the pointer only changes by our own hand, and
            // the lock's Acquire ordered the previous writer's store before this load.
            let cur = self.ptr.load(Ordering::Relaxed);
            // SAFETY: only writers retire the current value, and they hold the lock we hold.
            let new = Box::into_raw(Box::new(f(unsafe { &*cur })));
            // Release: publishes `new` to readers (Acquire in `load`).
            self.ptr.store(new, Ordering::Release);
            cur
        };
        self.retire(old);
    }

    fn retire(&self, old: *mut T) {
        self.domain.synchronize();
        // SAFETY: `old` was unpublished before the grace period began and came from
        // Box::into_raw; the grace period has ended, so no reader holds it.
        drop(unsafe { Box::from_raw(old) });
    }

    /// The value, through exclusive access (no reader can hold it).
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` excludes readers (they borrow the cell) and writers.
        unsafe { &mut *self.ptr.load(Ordering::Relaxed) }
    }

    /// The value, consuming the cell.
    pub fn into_inner(self) -> T {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: we own the cell; reading `domain` and `writer` out so their drops run.
        let (domain, writer) = unsafe { (ptr::read(&this.domain), ptr::read(&this.writer)) };
        drop((domain, writer));
        // Relaxed: exclusive ownership.
        // SAFETY: the pointer came from Box::into_raw and no one else can reach it.
        *unsafe { Box::from_raw(this.ptr.load(Ordering::Relaxed)) }
    }
}

impl<T> Drop for RcuCell<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` excludes readers and writers; the pointer came from a Box.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
    }
}
