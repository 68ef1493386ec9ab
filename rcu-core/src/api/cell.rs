//! `RcuCell<T>`: a value that readers load without locks and writers replace, the old value
//! being dropped only after every reader that could see it has finished.

use core::marker::PhantomData;
use core::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use rcu_ctx::{Atomic, Context, ContextKind, MayAlloc, ReadSection};

use rcu_alloc::Policy;

use crate::api::domain::Domain;
use crate::api::guard::{DomainKey, RcuDomain, RcuGuard};
use crate::queue::deferred;
use crate::queue::head::Rcu;
use crate::raw::protocol::ReaderWord;
use crate::read::registry::Slot;
use crate::state::DomainRef;

/// An RCU-protected value of one domain.
///
/// Readers [`load`](RcuCell::load) it under a read guard: a plain pointer load, no lock, no
/// reference count. Writers [`replace`](RcuCell::replace) it, or [`update`](RcuCell::update)
/// it from the current value, with any token; the old value is dropped after a grace period
/// under the policy of that token (as `kvfree_rcu`). Values live in [`Rcu<T>`] boxes, whose
/// embedded head lets even an `Atomic` writer retire the old one without allocating;
/// [`set`](RcuCell::set) boxes a plain value for writers that may allocate.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{read_lock, Rcu, RcuCell};
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
/// cell.update(&mut ctx, |old| Rcu::boxed(Config { verbose: true, ..*old }));
/// let guard = read_lock(&mut ctx);
/// assert!(cell.load(&guard).verbose);
/// ```
#[derive(Debug)]
pub struct RcuCell<T> {
    /// Never null: always a `Box<Rcu<T>>` turned into a raw pointer.
    ptr: AtomicPtr<Rcu<T>>,
    domain: DomainRef,
    /// `&*domain`, cached: `load` checks the guard's domain with one comparison.
    key: DomainKey,
    _owns: PhantomData<Box<Rcu<T>>>,
}

// SAFETY: the cell owns a `T` (moving the cell moves the `T`).
unsafe impl<T: Send> Send for RcuCell<T> {}
// SAFETY: readers on several threads get `&T` at once (needs `T: Sync`), and a writer on any
// thread retires values created on another, dropped on the worker (needs `T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuCell<T> {}

impl<T> RcuCell<T> {
    /// A cell of the global domain.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let cell = RcuCell::new(String::from("hello"));
    /// let mut ctx = Sleepable::enter();
    /// let guard = read_lock(&mut ctx); // a guard of the global domain
    /// assert_eq!(cell.load(&guard), "hello");
    /// ```
    pub fn new(value: T) -> Self {
        Self::new_in(Domain::global(), value)
    }

    /// A cell of `domain`: load it under that domain's read guards.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// let domain = Domain::new(DomainConfig::new().name("tables"));
    /// let cell = RcuCell::new_in(&domain, vec![1, 2, 3]);
    /// let mut ctx = Sleepable::enter();
    /// let guard = domain.read_lock(&mut ctx); // a guard of the cell's domain
    /// assert_eq!(cell.load(&guard).len(), 3);
    /// ```
    ///
    /// A cell of a sleepable domain ([`SrcuStruct`](crate::SrcuStruct)) is loaded under its
    /// guards, borrowed or owned, and the value may be held across blocking calls and
    /// `.await` for as long as the guard:
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let routes: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("routes"));
    /// let table = RcuCell::new_in(&routes, vec!["/a"]);
    /// let ctx = Sleepable::enter();
    /// let guard = routes.down_read(&ctx);
    /// let current = table.load(&guard);
    /// table.set(&ctx, vec!["/a", "/b"]); // the old table stays until `guard` drops
    /// assert_eq!(current.len(), 1);
    /// drop(guard);
    /// routes.srcu_barrier(&ctx);
    /// ```
    pub fn new_in(domain: &impl RcuDomain, value: T) -> Self {
        let domain = domain.as_domain().state_ref();
        RcuCell {
            ptr: AtomicPtr::new(Box::into_raw(Rcu::boxed(value))),
            key: DomainKey::of(&domain),
            domain,
            _owns: PhantomData,
        }
    }

    /// The current value, valid while `guard` lives.
    ///
    /// # Panics
    /// If `guard` is a read section of another domain than the cell's: it would not keep
    /// the value alive.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let cell = RcuCell::new(5u32);
    /// let mut ctx = Sleepable::enter();
    /// let value = {
    ///     let guard = read_lock(&mut ctx);
    ///     *cell.load(&guard) // copy out what must outlive the section
    /// };
    /// assert_eq!(value, 5);
    /// ```
    #[inline]
    pub fn load<'g>(&'g self, guard: &'g impl RcuGuard) -> &'g T {
        assert!(
            guard.domain_key() == self.key,
            "rcu-core: RcuCell loaded under a read guard of another domain: a read section \
             protects only its own domain's data (rule: load a cell under a guard of the \
             domain it was created in). Fix: RcuCell::new cells use read_lock(); \
             RcuCell::new_in(&d, ..) cells use d.read_lock() (or d.read_lock_nested(guard.ctx()) \
             from inside another domain's section)"
        );
        // Acquire: pairs with the Release half of the swap/CAS that published the value:
        // its initialisation is visible before we dereference it.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `p` is a live box: values are only freed after a grace period that began
        // after they were unpublished, and `guard` is a read section of this cell's domain
        // that began before that, so it holds the grace period off while `'g` lives.
        unsafe { &*p }
    }

    /// The value, through exclusive access (no reader can hold it).
    ///
    /// ```
    /// let mut cell = rcu_core::RcuCell::new(vec![1]);
    /// cell.get_mut().push(2); // no reader can exist while we hold `&mut`
    /// assert_eq!(cell.into_inner(), [1, 2]);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        // Relaxed: exclusive access (`&mut self`).
        // SAFETY: `&mut self` excludes readers (they borrow the cell) and writers.
        unsafe { &mut *self.ptr.load(Ordering::Relaxed) }
    }

    /// The value, consuming the cell.
    ///
    /// ```
    /// let cell = rcu_core::RcuCell::new(String::from("last"));
    /// assert_eq!(cell.into_inner(), "last");
    /// ```
    pub fn into_inner(self) -> T {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: we own the cell; `domain` is read out so that its drop runs.
        drop(unsafe { ptr::read(&this.domain) });
        // Relaxed: exclusive ownership.
        // SAFETY: the pointer came from Box::into_raw and no one else can reach it.
        unsafe { Box::from_raw(this.ptr.load(Ordering::Relaxed)) }.into_inner()
    }
}

impl<T: Send + 'static> RcuCell<T> {
    /// Publishes `new` and retires the old value: it is dropped after a grace period under
    /// the policy of `ctx` (any token; under `Atomic` this never allocates or blocks).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let cell = RcuCell::new(1u64);
    /// let mut ctx = Sleepable::enter();
    /// let next = Rcu::boxed(2); // allocated beforehand...
    /// {
    ///     let spin = ctx.atomic();
    ///     cell.replace(&spin, next); // ...published without allocating or blocking
    /// }
    /// rcu_barrier(&ctx); // the old value has been dropped
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(*cell.load(&guard), 2);
    /// ```
    #[track_caller]
    pub fn replace<C: Context>(&self, ctx: &C, new: Box<Rcu<T>>) {
        let slot = self.domain.prepare(ctx, "RcuCell::replace");
        let policy = self.domain.policy_for::<C>(slot);
        // AcqRel: Release publishes `new` to readers (Acquire in `load`); Acquire makes the
        // old value's contents ours to retire.
        let old = self.ptr.swap(Box::into_raw(new), Ordering::AcqRel);
        self.retire(policy, slot, old);
    }

    /// Boxes `value` and publishes it, as `replace` (boxing allocates: `MayAlloc`).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let cell = RcuCell::new("v1");
    /// let mut ctx = Sleepable::enter();
    /// cell.set(&ctx, "v2");
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(*cell.load(&guard), "v2");
    /// ```
    #[track_caller]
    pub fn set<C: MayAlloc>(&self, ctx: &C, value: T) {
        self.replace(ctx, Rcu::boxed(value));
    }

    /// Publishes `f(current)` and retires the old value, as `replace`. Concurrent updates
    /// are not lost: `f` runs again on the newer value if another writer got in first.
    ///
    /// `f` runs inside a read section of the cell's domain, so it must not block; it gets
    /// the current value and returns the new one boxed (with `Rcu::boxed`, which allocates,
    /// or from the caller's own pool under `Atomic`). `ctx` is borrowed mutably for the call,
    /// so `f` cannot capture it and block or reclaim with it inside the section. Holding only
    /// a shared `&Atomic` (in a callback, under a guard), pass `&mut atomic.nested()`.
    ///
    /// # Panics
    /// With an `Atomic` token on a thread that never registered with the cell's domain (see
    /// [`Domain::register_current_thread`]): registration allocates, which `Atomic` may not.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rcu_core::prelude::*;
    ///
    /// let counter = Arc::new(RcuCell::new(0u64));
    /// std::thread::scope(|s| {
    ///     for _ in 0..4 {
    ///         s.spawn(|| {
    ///             let mut ctx = Sleepable::enter();
    ///             for _ in 0..100 {
    ///                 counter.update(&mut ctx, |n| Rcu::boxed(n + 1)); // no increment is lost
    ///             }
    ///         });
    ///     }
    /// });
    /// let mut ctx = Sleepable::enter();
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(*counter.load(&guard), 400);
    /// drop(guard);
    /// rcu_barrier(&ctx);
    /// ```
    #[track_caller]
    pub fn update<C: Context>(&self, ctx: &mut C, mut f: impl FnMut(&T) -> Box<Rcu<T>>) {
        loop {
            // Looked up at every try (one cached compare): a value dropped after a lost race
            // (below, outside the section) runs user code, and a slot it let go could be
            // claimed by another thread (red team of issue 25: when registering elsewhere
            // still ended registrations with dropped domains, a retry's section entered on a
            // released slot was force-ended by its next owner, and the value the closure
            // held was freed).
            let slot = self.domain.prepare(&*ctx, "RcuCell::update");
            let slot = slot.unwrap_or_else(|| {
                panic!(
                    "rcu-core: RcuCell::update with an Atomic token on a thread not registered \
                     with the cell's domain: registering allocates, which Atomic may not \
                     (rule: Atomic never allocates). Fix: register the thread beforehand with \
                     domain.register_current_thread(&ctx) (or one read_lock of that domain) \
                     using a Sleepable or NoReclaim token; or update with that token"
                )
            });
            let policy = self.domain.policy_for::<C>(Some(slot));
            let (cur, new, swapped) = {
                // `f` runs inside a read section, and the thread's context state says so, so
                // the token rules hold inside `f` too (a `Sleepable::enter` there panics, a
                // captured `Sleepable` is reported by debug validation).
                // SAFETY: (1) dropped at the end of this block, before `update` returns,
                // unwinding included; (2) the only scope opened meanwhile, `_context`, is
                // dropped before it.
                let atomic = unsafe { Atomic::assume() };
                let _context = ReadSection::enter_nested(&atomic);
                // A read section without a guard: it keeps `cur` alive while `f` looks at
                // it. `section` ends it when dropped, also if `f` panics (a section left
                // open would hold up every later grace period of the domain). A classic one
                // in every flavour: sleepable domains wait for those too.
                slot.word.enter(self.domain.gp.seq.started_counter());
                let section = ExitOnDrop(&slot.word);
                // Acquire: as in `load`.
                let cur = self.ptr.load(Ordering::Acquire);
                // SAFETY: protected by the read section just entered (see `load`).
                let new = Box::into_raw(f(unsafe { &**cur }));
                // AcqRel: as in `replace`. Acquire on failure: we retry from the newer value.
                let swapped = self
                    .ptr
                    .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                drop(section);
                (cur, new, swapped)
            };
            if swapped {
                self.retire(policy, Some(slot), cur);
                return;
            }
            // Never published, so no reader saw it; but dropping it frees memory, which an
            // `Atomic` writer may not do inline: defer it like a retired value.
            if matches!(C::KIND, ContextKind::Atomic) {
                self.retire(policy, Some(slot), new);
            } else {
                // SAFETY: from Box::into_raw above, never published.
                drop(unsafe { Box::from_raw(new) });
            }
        }
    }

    fn retire(&self, policy: Policy, slot: Option<&Slot>, old: *mut Rcu<T>) {
        // SAFETY: `old` was unpublished (or never published) and came from Box::into_raw;
        // the deferred free runs it after a grace period that begins after this call.
        let old = unsafe { Box::from_raw(old) };
        self.domain.defer_headed_as(policy, slot, deferred::free_entry(old));
    }
}

/// Ends a read section entered on a reader word when dropped (unwinding included).
struct ExitOnDrop<'a>(&'a ReaderWord);

impl Drop for ExitOnDrop<'_> {
    fn drop(&mut self) {
        self.0.exit();
    }
}

impl<T> Drop for RcuCell<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` excludes readers and writers; the pointer came from a Box.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
    }
}
