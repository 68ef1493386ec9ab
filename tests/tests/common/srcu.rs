//! Helpers of the sleepable-domain (SRCU) tests (`srcu.rs`, `srcu_exit.rs`): a published
//! pointer read under sleepable sections, a reader thread that blocks inside its section,
//! and a stall-report recorder.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::{
    SectionBrand, SleepableSection, SrcuFlavor, SrcuGuard, SrcuOwnedGuard, SrcuStruct, StallReport,
};
use rcu_tests::SpinLock;

use super::{Canary, PATIENCE};

/// The guards of a sleepable section: what [`Published::load`] accepts.
pub(crate) trait SrcuSection {}

impl<F: SrcuFlavor, B: SectionBrand, C: Context> SrcuSection for SrcuGuard<'_, F, B, C> {}
impl<F: SrcuFlavor, B: SectionBrand> SrcuSection for SrcuOwnedGuard<'_, F, B> {}

/// A value published through a pointer: the raw form of an RCU-protected pointer for a
/// sleepable domain (which has no `RcuCell` yet). Readers load it under a section of the
/// domain; a writer swaps a new value in and retires the old one through the domain
/// (`kvfree_srcu`), which frees it only once every section that could have loaded it ended.
pub(crate) struct Published<T> {
    ptr: AtomicPtr<Rcu<T>>,
    /// Owns the current value: `Send`/`Sync` follow `T`'s.
    _owns: PhantomData<Box<Rcu<T>>>,
}

impl<T> Published<T> {
    pub(crate) fn new(value: T) -> Self {
        Published { ptr: AtomicPtr::new(Box::into_raw(Rcu::boxed(value))), _owns: PhantomData }
    }

    /// The current value, valid while `section` lives. The section must be one of the
    /// sleepable domain through which replaced values are retired (the contract of
    /// [`Published::swap`]).
    pub(crate) fn load<'g>(&'g self, _section: &'g impl SrcuSection) -> &'g T {
        // Acquire: pairs with the AcqRel swap that published the value.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a replaced value is freed only after a grace period of the readers' domain
        // that began after it was unpublished (the contract of `swap`); the caller's section
        // began before this load, so that grace period waits for it, and the value lives as
        // long as the borrow of the section.
        unsafe { &*p }
    }

    /// Publishes `value` and hands back the old one, which readers may still hold.
    ///
    /// # Safety
    /// 1. The returned box is dropped only through the deferred API of the sleepable domain
    ///    whose sections the readers load under (`kvfree_srcu`, or a `call_srcu` whose
    ///    callback drops it), or leaked.
    pub(crate) unsafe fn swap(&self, value: T) -> Box<Rcu<T>> {
        let new = Box::into_raw(Rcu::boxed(value));
        // AcqRel: Release publishes `new`; Acquire takes ownership of the old value.
        let old = self.ptr.swap(new, Ordering::AcqRel);
        // SAFETY: every pointer stored here came from `Box::into_raw`, and the swap took this
        // one out, so it is owned here once; readers are kept safe by the caller (1).
        unsafe { Box::from_raw(old) }
    }
}

impl<T> Drop for Published<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader can hold the value (loads borrow `self`); it came
        // from `Box::into_raw` and is owned here.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
    }
}

/// A thread inside a borrowed section of a sleepable domain, blocked on a channel (a
/// sleepable reader may block) until released. It loads a published canary as its section
/// begins and reads it again just before the section ends.
pub(crate) struct BlockedReader {
    release: Option<Sender<()>>,
    thread: Option<JoinHandle<u64>>,
}

impl BlockedReader {
    /// Starts a thread named `name` that enters a borrowed section of `srcu`, loads
    /// `published`, runs `inside` with the section's token, then blocks until released.
    /// Returns once all of that has happened (so the section has begun), with the value it
    /// loaded.
    pub(crate) fn spawn<F: SrcuFlavor, B: SectionBrand>(
        name: &str,
        srcu: Arc<SrcuStruct<F, B>>,
        published: Arc<Published<Canary>>,
        inside: impl FnOnce(&SleepableSection<'_, B, Sleepable>) + Send + 'static,
    ) -> (Self, u64) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut ctx = Sleepable::enter();
                let guard = srcu.read_lock(&mut ctx);
                let value = published.load(&guard);
                inside(guard.ctx());
                entered_tx.send(value.value()).expect("the test waits for the reader");
                // Blocks inside the section until released (or the test is gone).
                let _ = released.recv();
                let seen = value.value();
                drop(guard);
                seen
            })
            .expect("spawn a reader thread");
        let loaded = match entered_rx.recv_timeout(PATIENCE) {
            Ok(v) => v,
            Err(_) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(_) => panic!("the reader thread never entered its section"),
            },
        };
        (BlockedReader { release: Some(release), thread: Some(thread) }, loaded)
    }

    /// Lets the reader leave its section; returns, once it has, what it read just before.
    pub(crate) fn release(mut self) -> u64 {
        self.release.take();
        let thread = self.thread.take().expect("running");
        match thread.join() {
            Ok(seen) => seen,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for BlockedReader {
    fn drop(&mut self) {
        self.release.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the blocked reader thread panicked");
            }
        }
    }
}

/// What a stall handler was given, in order.
pub(crate) type Stalls = Arc<SpinLock<Vec<StallReport>>>;

/// Installs a handler on `srcu` that records its stall reports, and sets its stall timeout.
pub(crate) fn record_stalls<F: SrcuFlavor, B: SectionBrand>(
    srcu: &SrcuStruct<F, B>,
    timeout: Duration,
) -> Stalls {
    let reports: Stalls = Arc::default();
    let sink = reports.clone();
    srcu.set_stall_timeout(timeout);
    srcu.set_stall_handler(Some(Arc::new(move |r: &StallReport| sink.with(|v| v.push(r.clone())))));
    reports
}

/// The first recorded report that `matches`, if any.
pub(crate) fn find_stall(
    reports: &Stalls,
    matches: impl Fn(&StallReport) -> bool,
) -> Option<StallReport> {
    reports.with(|v| v.iter().find(|r| matches(r)).cloned())
}
