//! The waker registry of a domain: where the async futures (`gp_future`) leave their
//! `Waker`s, and where the domain's worker finds and wakes them once what they wait for has
//! happened. No thread is blocked per future and nothing polls: a future registers once per
//! waker and is woken by the runtime.
//!
//! # Shape
//! A registration is a [`Waiter`] node (a target and a `Waker`) in an `Arc` shared by the
//! future and the registry. Futures push nodes onto `incoming`, a lock-free stack (one CAS;
//! a poll never takes a lock). Only the domain's worker takes nodes off: it swaps `incoming`
//! out, wakes the nodes whose target is reached and keeps the others on `pending`, a list
//! only the worker touches. So the worker never waits for a future and a future never waits
//! for the worker.
//!
//! Wakers run on the worker thread, outside any atomic scope and while it leads no grace
//! period: an executor's `wake` may take its own locks or allocate, and must not wait for a
//! grace period (the `Waker` contract asks wakes to be quick anyway).
//!
//! # Why no wake-up is lost
//! A future pushes its node (P, AcqRel), then asks the worker for its target (a grace
//! period request or a collection request, both ending in `Worker::wake_if_sleeping`), then
//! checks the target once more. The request is "queued work" in the sense of
//! `Worker::wake_if_sleeping`: either the worker's idle re-check sees it ([`AsyncWaiters::
//! has_work`] sees `incoming` non-empty, and the request keeps it awake until the target is
//! reached) or the worker is woken. Either way it runs its loop, whose call to
//! [`AsyncWaiters::wake_ready`] swaps `incoming` after P and so takes the node. From then on
//! the node is on `pending`, and every later loop of the worker wakes it if its target is
//! reached: a grace period the worker was asked for is waited for at the top of each loop
//! (`wait_until_completed(requested)`), and a generation is finished by the worker itself
//! (`run_batch`), both before `wake_ready` in the same loop. The target is monotonic (a
//! completed grace period or generation stays completed), so once reached, the next
//! `wake_ready` wakes the node. The future's check after P only saves a round trip when the
//! target was reached meanwhile.
//!
//! A node the worker woke is marked `woken` (Release) before the wake; a later poll that sees
//! the mark (Acquire) knows the target was reached before it, so its own check succeeds, and a
//! poll that finds neither the target reached nor a live node with its waker registers anew:
//! an executor that polls without having been woken, or with a new waker, is served too.

use core::ptr;
use core::task::Waker;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

/// What a waiter waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Grace period `seq` of the domain has completed.
    GracePeriod(u64),
    /// Collection generation `g` has been run (an `rcu_barrier`).
    Generation(u64),
}

/// One registration: a target, the waker to wake when it is reached, and its state.
#[derive(Debug)]
pub(crate) struct Waiter {
    target: Target,
    waker: Waker,
    /// Set by the worker before it wakes `waker`.
    woken: AtomicBool,
    /// Set by the future when it no longer wants the wake (dropped, or registered anew).
    cancelled: AtomicBool,
    /// The next node on `incoming` or `pending` (owned by the list that holds this node).
    next: AtomicPtr<Waiter>,
}

impl Waiter {
    /// A node for `target` that wakes `waker`. Allocates (the `Arc`); call from a poll.
    pub(crate) fn new(target: Target, waker: Waker) -> Arc<Waiter> {
        Arc::new(Waiter {
            target,
            waker,
            woken: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            next: AtomicPtr::new(ptr::null_mut()),
        })
    }

    /// True once the worker has woken this node (its target was reached before).
    pub(crate) fn is_woken(&self) -> bool {
        // Acquire: pairs with the Release store in `wake_ready`: whatever the worker saw
        // (the target reached) is visible to the caller's check that follows.
        self.woken.load(Ordering::Acquire)
    }

    /// True if a wake through this node would reach the task that polls with `waker`.
    pub(crate) fn wakes(&self, waker: &Waker) -> bool {
        self.waker.will_wake(waker)
    }

    /// The future no longer wants this node's wake; the worker drops it unwoken.
    pub(crate) fn cancel(&self) {
        // Relaxed: a hint; a wake of a cancelled node is a spurious wake-up, which every
        // executor tolerates.
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// A domain's registry of async waiters (part of its state).
#[derive(Debug)]
pub(crate) struct AsyncWaiters {
    /// Nodes pushed by futures, not yet seen by the worker (a Treiber stack of `Arc`s).
    incoming: AtomicPtr<Waiter>,
    /// Nodes the worker holds until their target is reached. Worker only.
    pending: AtomicPtr<Waiter>,
    /// The smallest grace period / generation a `pending` node waits for (`u64::MAX`: none).
    /// Worker only.
    pending_gp: AtomicU64,
    pending_generation: AtomicU64,
}

impl AsyncWaiters {
    pub(crate) const fn new() -> Self {
        AsyncWaiters {
            incoming: AtomicPtr::new(ptr::null_mut()),
            pending: AtomicPtr::new(ptr::null_mut()),
            pending_gp: AtomicU64::new(u64::MAX),
            pending_generation: AtomicU64::new(u64::MAX),
        }
    }

    /// Hands `waiter` to the worker. Lock-free, never blocks: one CAS loop.
    pub(crate) fn push(&self, waiter: Arc<Waiter>) {
        let node = Arc::into_raw(waiter).cast_mut();
        // Relaxed: the CAS below publishes.
        let mut head = self.incoming.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            // SAFETY: `node` came from `Arc::into_raw` above; it is ours until the CAS
            // below succeeds, and the reference keeps it alive.
            unsafe { &*node }.next.store(head, Ordering::Relaxed);
            // AcqRel: Release publishes the node (and its `next`) to the worker's Acquire
            // swap in `wake_ready`; Acquire makes this push read from the worker's last swap
            // (it heads a release sequence that pushes continue), so whatever the worker did
            // before that swap happens-before the caller's check after this push (see the
            // module docs).
            match self.incoming.compare_exchange_weak(
                head,
                node,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Worker, in its idle re-check (after its SeqCst fence): true if a node waits to be
    /// taken, or a pending node's target is reached (`reached` says whether it is).
    pub(crate) fn has_work(&self, reached: impl Fn(Target) -> bool) -> bool {
        // Relaxed (all): ordered by the worker's SeqCst fence in `idle`, the store-buffering
        // pair of the fence in `Worker::wake_if_sleeping` that the pushing future runs after
        // its push; `pending_*` are the worker's own.
        !self.incoming.load(Ordering::Relaxed).is_null()
            || reached(Target::GracePeriod(self.pending_gp.load(Ordering::Relaxed)))
            || reached(Target::Generation(self.pending_generation.load(Ordering::Relaxed)))
    }

    /// Worker, outside any atomic scope and leading no grace period: takes the new nodes,
    /// wakes every node whose target is reached, drops cancelled ones and keeps the rest.
    /// `reached` must be an Acquire check of the target (as `GpSequence::is_completed`).
    pub(crate) fn wake_ready(&self, reached: impl Fn(Target) -> bool) {
        // AcqRel: Acquire pairs with the Release CAS in `push` (the nodes and their fields
        // are visible); Release heads the release sequence later pushes read from (see `push`).
        let incoming = self.incoming.swap(ptr::null_mut(), Ordering::AcqRel);
        // Relaxed: `pending` is the worker's own.
        let pending = self.pending.swap(ptr::null_mut(), Ordering::Relaxed);
        if incoming.is_null() && pending.is_null() {
            return;
        }
        let mut keep: *mut Waiter = ptr::null_mut();
        let (mut min_gp, mut min_generation) = (u64::MAX, u64::MAX);
        for mut node in [incoming, pending] {
            while !node.is_null() {
                // SAFETY: every node on the lists came from `Arc::into_raw` in `push` (or was
                // kept here) and the lists own that reference; the swaps above took the
                // lists, so this thread owns it now.
                let waiter = unsafe { Arc::from_raw(node) };
                // Relaxed: set before the node was published (or by this thread).
                node = waiter.next.load(Ordering::Relaxed);
                // Relaxed: see `Waiter::cancel`.
                if waiter.cancelled.load(Ordering::Relaxed) {
                    continue;
                }
                if reached(waiter.target) {
                    // Release: pairs with the Acquire in `Waiter::is_woken`.
                    waiter.woken.store(true, Ordering::Release);
                    waiter.waker.wake_by_ref();
                    continue;
                }
                match waiter.target {
                    Target::GracePeriod(seq) => min_gp = min_gp.min(seq),
                    Target::Generation(g) => min_generation = min_generation.min(g),
                }
                let kept = Arc::into_raw(waiter).cast_mut();
                // Relaxed: worker-only list.
                // SAFETY: `kept` is the reference this thread just took; nobody else holds
                // this list.
                unsafe { &*kept }.next.store(keep, Ordering::Relaxed);
                keep = kept;
            }
        }
        // Relaxed (all three): worker-only state.
        self.pending.store(keep, Ordering::Relaxed);
        self.pending_gp.store(min_gp, Ordering::Relaxed);
        self.pending_generation.store(min_generation, Ordering::Relaxed);
    }

    /// In a forked child: the parent's futures and their executors' threads do not exist
    /// here, and waking a parent's waker could take a lock that one of them held at the
    /// fork. Forgets (leaks) every node without waking or dropping it. Single-threaded.
    pub(crate) fn forget_after_fork(&self) {
        // Relaxed (all): the child has a single thread.
        self.incoming.store(ptr::null_mut(), Ordering::Relaxed);
        self.pending.store(ptr::null_mut(), Ordering::Relaxed);
        self.pending_gp.store(u64::MAX, Ordering::Relaxed);
        self.pending_generation.store(u64::MAX, Ordering::Relaxed);
    }
}

impl Drop for AsyncWaiters {
    /// The domain's state is going: no future holds it (each holds a reference), so every
    /// node left is cancelled or was woken; drop them.
    fn drop(&mut self) {
        for list in [self.incoming.get_mut(), self.pending.get_mut()] {
            let mut node = core::mem::replace(list, ptr::null_mut());
            while !node.is_null() {
                // SAFETY: as in `wake_ready`: the list owned this reference, and `&mut self`
                // means nobody else can reach it.
                let waiter = unsafe { Arc::from_raw(node) };
                // Relaxed: `&mut self`, nothing concurrent.
                node = waiter.next.load(Ordering::Relaxed);
            }
        }
    }
}
