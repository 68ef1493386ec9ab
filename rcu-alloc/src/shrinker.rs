//! Shrinkers: caches that can give memory back when the runtime is short of it.
//!
//! A shrinker reports how much it could free (`count`) and frees up to a requested amount
//! (`scan`). Shrinkers run only under the `Reclaim` policy, that is only for calls made
//! with a `Sleepable` token: a `NoReclaim` or `Atomic` caller never runs code it does not
//! own. The runtime's own block pools are shrinkers too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcu_sys::contain::contain;
use rcu_sys::ForkLock;

/// A cache that can release memory on request.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use rcu_alloc::{register_shrinker, Shrinker};
///
/// struct Cache(AtomicUsize);
/// impl Shrinker for Cache {
///     fn count(&self) -> usize {
///         self.0.load(Ordering::Relaxed)
///     }
///     fn scan(&self, nr_to_scan: usize) -> usize {
///         let freed = nr_to_scan.min(self.count());
///         self.0.fetch_sub(freed, Ordering::Relaxed);
///         freed
///     }
/// }
///
/// let cache = Arc::new(Cache(AtomicUsize::new(10)));
/// let handle = register_shrinker(cache.clone());
/// drop(handle); // unregisters
/// ```
pub trait Shrinker: Send + Sync {
    /// How many objects could be freed now.
    ///
    /// ```
    /// use rcu_alloc::Shrinker;
    /// struct Empty;
    /// impl Shrinker for Empty {
    ///     fn count(&self) -> usize {
    ///         0 // nothing to give back: `scan` will not be called
    ///     }
    ///     fn scan(&self, _nr_to_scan: usize) -> usize {
    ///         0
    ///     }
    /// }
    /// assert_eq!(Empty.count(), 0);
    /// ```
    fn count(&self) -> usize;
    /// Frees up to `nr_to_scan` objects; returns how many were freed.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use rcu_alloc::Shrinker;
    /// struct FreeList(Mutex<Vec<Box<[u8; 256]>>>);
    /// impl Shrinker for FreeList {
    ///     fn count(&self) -> usize {
    ///         self.0.lock().unwrap().len()
    ///     }
    ///     fn scan(&self, nr_to_scan: usize) -> usize {
    ///         let mut list = self.0.lock().unwrap();
    ///         let n = nr_to_scan.min(list.len());
    ///         let keep = list.len() - n;
    ///         list.truncate(keep);
    ///         n
    ///     }
    /// }
    /// let cache = FreeList(Mutex::new(vec![Box::new([0; 256]); 10]));
    /// assert_eq!(cache.scan(4), 4);
    /// assert_eq!(cache.count(), 6);
    /// ```
    fn scan(&self, nr_to_scan: usize) -> usize;
}

type Registered = (u64, Arc<dyn Shrinker>);

/// Fork-safe (see `rcu_sys::ForkLock`): the runtime's atfork handlers hold it across `fork()`.
static SHRINKERS: ForkLock<Vec<Registered>> = ForkLock::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Keeps a shrinker registered; dropping it unregisters.
///
/// ```
/// use std::sync::Arc;
/// use rcu_alloc::{register_shrinker, Shrinker};
/// struct Nothing;
/// impl Shrinker for Nothing {
///     fn count(&self) -> usize { 0 }
///     fn scan(&self, _: usize) -> usize { 0 }
/// }
/// let handle = register_shrinker(Arc::new(Nothing));
/// drop(handle); // unregistered from here on
/// ```
#[derive(Debug)]
#[must_use = "the shrinker is unregistered when the handle is dropped"]
pub struct ShrinkerHandle {
    id: u64,
}

/// Registers `shrinker` for every domain's `Reclaim`-policy calls.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use rcu_alloc::{register_shrinker, Shrinker};
///
/// struct Pool(AtomicUsize);
/// impl Shrinker for Pool {
///     fn count(&self) -> usize {
///         self.0.load(Ordering::Relaxed)
///     }
///     fn scan(&self, n: usize) -> usize {
///         let freed = n.min(self.count());
///         self.0.fetch_sub(freed, Ordering::Relaxed);
///         freed
///     }
/// }
/// // Keep the handle as long as the cache lives (e.g. in the same struct).
/// let _handle = register_shrinker(Arc::new(Pool(AtomicUsize::new(32))));
/// ```
pub fn register_shrinker(shrinker: Arc<dyn Shrinker>) -> ShrinkerHandle {
    // Relaxed: a unique id is all that is needed.
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    SHRINKERS.with(|list| list.push((id, shrinker)));
    ShrinkerHandle { id }
}

/// The runtime's `pthread_atfork` prepare handler: holds the shrinker registry across the
/// fork, so that the child never finds it held by a thread that does not exist there.
///
/// ```
/// rcu_alloc::hold_registry_for_fork();
/// // SAFETY: (1) held just above by this thread.
/// unsafe { rcu_alloc::release_registry_after_fork() };
/// ```
pub fn hold_registry_for_fork() {
    SHRINKERS.hold_for_fork();
}

/// The parent and child handlers: releases what `hold_registry_for_fork` took.
///
/// # Safety
/// 1. `hold_registry_for_fork` was called by this thread (or, in a child, by the thread it
///    was forked from) and not released since.
pub unsafe fn release_registry_after_fork() {
    // SAFETY: (1) is the caller's promise.
    unsafe { SHRINKERS.release_after_fork() };
}

impl Drop for ShrinkerHandle {
    fn drop(&mut self) {
        // The shrinker is dropped after the lock is released: its drop is the owner's code.
        let removed = SHRINKERS.with(|list| {
            let i = list.iter().position(|(id, _)| *id == self.id)?;
            Some(list.swap_remove(i))
        });
        drop(removed);
    }
}

thread_local! {
    /// True while this thread runs the shrinkers (`shrink_all`).
    static SHRINKING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// A real allocation failure: memory is short, so every registered shrinker is asked to free
/// everything it counts (the runtime's own pools included). Returns the objects freed, the
/// shrinkers called and the shrinker calls that panicked. Only the `Reclaim` policy calls
/// this.
///
/// A shrinker is user code run on behalf of whoever needed a block: a panic in its `count`,
/// its `scan` or its drop (our clone may be its last reference) is contained and reported,
/// and the others are still asked (DESIGN §5.1).
pub(crate) fn shrink_all() -> (usize, u64, u64) {
    // Freeing paths never recurse into reclaim (DESIGN §1): a shrinker that frees through an
    // RCU runtime (a root it takes, `kvfree_rcu`) may need a block, whose request, failing,
    // would ask the shrinkers again, until the stack overflows (red team of issue 22). While
    // this thread runs shrinkers, its block requests skip them.
    if SHRINKING.with(|s| s.replace(true)) {
        return (0, 0, 0);
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            SHRINKING.with(|s| s.set(false));
        }
    }
    let _done = Done;
    // Clone the list out: a shrinker may take its own locks, or (un)register others.
    let shrinkers: Vec<Arc<dyn Shrinker>> =
        SHRINKERS.with(|list| list.iter().map(|(_, s)| s.clone()).collect());
    let mut freed = 0;
    let mut calls = 0;
    let mut panics = 0;
    for s in shrinkers {
        let asked = contain(|| {
            let count = s.count();
            (count > 0).then(|| s.scan(count))
        });
        match asked {
            Some(Some(n)) => {
                calls += 1;
                freed += n;
            }
            Some(None) => {}
            None => {
                calls += 1;
                panics += 1;
            }
        }
        panics += u64::from(contain(move || drop(s)).is_none());
    }
    if panics != 0 {
        rcu_sys::stderr::report_line(&format!(
            "rcu-alloc: {panics} shrinker call(s) panicked (see the message above); the other \
             shrinkers were still asked. Rule: a shrinker's count, scan and drop must not panic \
             (they run on whichever thread needed memory). Fix: handle failures inside it"
        ));
    }
    (freed, calls, panics)
}
