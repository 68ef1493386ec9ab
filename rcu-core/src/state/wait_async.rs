//! The waker registry of a domain: where the async futures (`gp_future`) leave their
//! `Waker`s, and where the domain's worker finds and wakes them once what they wait for has
//! happened. No thread is blocked per future and nothing polls: a future registers once per
//! waker and is woken by the runtime.
//!
//! # Shape
//! A registration is a [`Waiter`] node (a target and a `Waker`) in an `Arc` shared by the
//! future and the registry. Futures push nodes at the head of one lock-free list (one CAS;
//! a poll never takes a lock) and set `fresh`. Only the domain's worker unlinks nodes: each
//! of its passes walks the list, wakes the nodes whose target is reached and unlinks them
//! (and cancelled ones), leaving the others linked. So the worker never waits for a future
//! and a future never waits for the worker; and since a node leaves the list only by one
//! unlink, a fork at any point of a pass keeps every waiting node for the child.
//!
//! # In a fork child
//! Every node stays linked, but a node registered before the fork (its `epoch` is older
//! than the process's, `fork_epoch::epoch`) is never woken, nor dropped, on the worker: its waker
//! belongs to an executor whose other threads do not exist in the child, and may take a
//! lock one of them held at the fork, which would wedge the worker for good. Once its
//! target is reached the pass marks it `handed` and gives a second reference to a relay
//! thread of its own ([`PreForkWork`]: each item on its own thread, so a waker that blocks
//! for ever blocks only its own), which wakes it and sets `done`. The node stays linked
//! until then, so a fork while the wake is on its way still finds it (the child's handler
//! un-hands what is not `done`, and the grandchild's worker hands it again: woken twice at
//! worst, a spurious wake). A later pass unlinks a `done` node, and a cancelled pre-fork
//! one, and the relays drop those list references too. So a future polled before the fork
//! (by the forking thread or any other, then moved) is still woken in the child. The epoch
//! is read at each node and again after each wake, so a fork from a waker in the middle of
//! a pass (the worker forking) is handled alike: in the child, the node whose waker forked
//! counts as woken and handed, and the rest of the pass treats older nodes as above.
//!
//! Wakers run on the worker thread, outside any atomic scope and while it leads no grace
//! period: an executor's `wake` may take its own locks or allocate, and must not wait for a
//! grace period (the `Waker` contract asks wakes to be quick anyway). A waker's `wake` and
//! drop are user code: each is contained (`rcu_sys::contain`) and counted by the caller.
//!
//! # Why no wake-up is lost
//! A future pushes its node (P, AcqRel) and sets `fresh` (SeqCst), then asks the worker for
//! its target (a grace period request or a collection request, both ending in
//! `Worker::wake_if_sleeping`), then checks the target once more. The request is "queued
//! work" in the sense of `Worker::wake_if_sleeping`: either the worker's idle re-check sees
//! it ([`AsyncWaiters::has_work`] sees `fresh`, and the request keeps it awake until the
//! target is reached) or the worker is woken. Either way it runs its loop, whose call to
//! [`AsyncWaiters::wake_ready`] clears `fresh` and then walks the list from its head: if
//! that clear read the push's `fresh` store, the walk sees the node (the store follows P);
//! if not, `fresh` stays set and the next loop walks again. From then on every pass that
//! finds the node's target reached wakes it, and a pass happens whenever a node's target is
//! reached (`has_work` checks the smallest targets the last pass kept): a grace period the
//! worker was asked for is waited for at the top of each loop
//! (`wait_until_completed(requested)`), and a generation is finished by the worker itself
//! (`run_batch`, then `finish_given_back` for async barriers), both before `wake_ready` in
//! the same loop. The target is monotonic (a completed grace period or generation stays
//! completed), so once reached, the next pass wakes the node. The future's check after P
//! only saves a round trip when the target was reached meanwhile.
//!
//! A node the worker woke is marked `woken` (Release) after the wake; a later poll that sees
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
    /// Set by the worker once it has woken `waker`.
    woken: AtomicBool,
    /// Set by the future when it no longer wants the wake (dropped, or registered anew).
    cancelled: AtomicBool,
    /// In a fork child: the node was given to a relay thread to wake (module docs).
    handed: AtomicBool,
    /// Set by the relay thread once it has woken the node.
    done: AtomicBool,
    /// The process's fork epoch when the node was made (`fork_epoch::epoch`): in a fork child, an
    /// older one marks a node registered before the fork (module docs).
    epoch: u64,
    /// The next node on the registry's list (written by the pusher before the node is
    /// linked, then only by the worker's unlinks).
    next: AtomicPtr<Waiter>,
}

impl Waiter {
    /// A node for `target` that wakes `waker`. Allocates (the `Arc`); call from a poll.
    pub(crate) fn new(target: Target, waker: Waker) -> Arc<Waiter> {
        Arc::new(Waiter {
            target,
            waker,
            epoch: crate::state::fork_epoch::epoch(),
            woken: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            handed: AtomicBool::new(false),
            done: AtomicBool::new(false),
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
    /// Every registered node: futures push at the head (a Treiber stack of `Arc`s); only the
    /// worker unlinks, one node at a time, in place.
    head: AtomicPtr<Waiter>,
    /// Set (SeqCst) by a push after its node is linked; the worker clears it when it starts a
    /// pass. Tells the worker's idle re-check that a node it has not seen waits.
    fresh: AtomicBool,
    /// The smallest grace period / generation a node waited for at the end of the worker's
    /// last pass (`u64::MAX`: none). Worker only.
    pending_gp: AtomicU64,
    pending_generation: AtomicU64,
}

impl AsyncWaiters {
    pub(crate) const fn new() -> Self {
        AsyncWaiters {
            head: AtomicPtr::new(ptr::null_mut()),
            fresh: AtomicBool::new(false),
            pending_gp: AtomicU64::new(u64::MAX),
            pending_generation: AtomicU64::new(u64::MAX),
        }
    }

    /// Hands `waiter` to the worker. Lock-free, never blocks: one CAS loop and a store.
    pub(crate) fn push(&self, waiter: Arc<Waiter>) {
        let node = Arc::into_raw(waiter).cast_mut();
        // Relaxed: the CAS below publishes.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            // SAFETY: `node` came from `Arc::into_raw` above; it is ours until the CAS
            // below succeeds, and the reference keeps it alive.
            unsafe { &*node }.next.store(head, Ordering::Relaxed);
            // AcqRel: Release publishes the node (and its `next`) to the worker's Acquire
            // load of `head` in `wake_ready`; Acquire makes this push read from the worker's
            // last change of `head` (an unlink of the head node), so whatever the worker did
            // before it happens-before the caller's check after this push (module docs).
            match self.head.compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        // SeqCst: after the link, for the worker's idle re-check (`has_work`), which the
        // caller's wake (its SeqCst fence, `Worker::wake_if`) pairs with; and a worker pass
        // whose swap of `fresh` reads this store sees the node (see `wake_ready`).
        self.fresh.store(true, Ordering::SeqCst);
    }

    /// Worker, in its idle re-check (after its SeqCst fence): true if a node waits that the
    /// worker has not seen, or a node's target is reached (`reached` says whether it is).
    pub(crate) fn has_work(&self, reached: impl Fn(Target) -> bool) -> bool {
        // SeqCst: see `push`. Relaxed (the others): the worker's own.
        self.fresh.load(Ordering::SeqCst)
            || reached(Target::GracePeriod(self.pending_gp.load(Ordering::Relaxed)))
            || reached(Target::Generation(self.pending_generation.load(Ordering::Relaxed)))
    }

    /// Worker, outside any atomic scope and leading no grace period: one pass over every
    /// node; wakes those whose target is reached and unlinks them with the cancelled ones,
    /// keeping the rest linked. `reached` must be an Acquire check of the target (as
    /// `GpSequence::is_completed`).
    ///
    /// Nodes never leave the list until unlinked, one store (or CAS) at a time: a fork at any
    /// point of a pass leaves the child every node that still waits on the list, at worst with
    /// a wake already delivered (it is woken again: a spurious wake, which executors
    /// tolerate) or an unlinked node's reference never dropped (leaked). A node is never
    /// lost, nor unlinked twice. Wakers and node drops are user code: each is contained
    /// (`contain`), counted, and the pass goes on. In a fork child, what is due for nodes
    /// registered before the fork is given to `hand_off` instead, never run here (module
    /// docs).
    pub(crate) fn wake_ready(
        &self,
        reached: impl Fn(Target) -> bool,
        mut panicked: impl FnMut(),
        hand_off: impl FnOnce(PreForkWork),
    ) {
        // AcqRel: Acquire pairs with the Release store in `push`: a pass that reads it sees
        // the node through `head` below (loaded after this swap).
        if !self.fresh.swap(false, Ordering::AcqRel)
            && !reached(Target::GracePeriod(self.pending_gp.load(Ordering::Relaxed)))
            && !reached(Target::Generation(self.pending_generation.load(Ordering::Relaxed)))
        {
            return;
        }
        let (mut min_gp, mut min_generation) = (u64::MAX, u64::MAX);
        // Only ever filled in a fork child (no allocation otherwise).
        let mut relayed = PreForkWork(Vec::new());
        let mut drops = Vec::new();
        // Read at each use: a waker in this pass may fork, and this may be the child.
        let before_fork = |w: &Waiter| w.epoch != crate::state::fork_epoch::epoch();
        // The last node kept, whose `next` is ours to change (null: the head is).
        let mut prev: *const Waiter = ptr::null();
        // Acquire: pairs with the Release CAS in `push` (the nodes and their fields).
        let mut node = self.head.load(Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: a linked node: the list holds a reference to it, which only this thread
            // (the worker) gives up, after unlinking it below.
            let waiter = unsafe { &*node };
            // Relaxed: a linked node's `next` is set before it was published (Release CAS,
            // which our Acquire load of `head` or of a kept node's link read) or changed only
            // by this thread's unlinks.
            let next = waiter.next.load(Ordering::Relaxed);
            // Relaxed: written by this thread (or the child's handler, single-threaded).
            if waiter.handed.load(Ordering::Relaxed) {
                // Acquire: pairs with the relay's Release store: its wake is over.
                if waiter.done.load(Ordering::Acquire) {
                    self.unlink(prev, node, next);
                    // SAFETY: the list's reference, given up once: unlinked just now.
                    drops.push(unsafe { Arc::from_raw(node) });
                } else {
                    prev = node;
                }
                node = next;
                continue;
            }
            // Relaxed: see `Waiter::cancel`.
            let cancelled = waiter.cancelled.load(Ordering::Relaxed);
            if !cancelled && !reached(waiter.target) {
                match waiter.target {
                    Target::GracePeriod(seq) => min_gp = min_gp.min(seq),
                    Target::Generation(g) => min_generation = min_generation.min(g),
                }
                prev = node;
                node = next;
                continue;
            }
            if before_fork(waiter) {
                if cancelled {
                    self.unlink(prev, node, next);
                    // SAFETY: the list's reference, given up once: unlinked just now.
                    drops.push(unsafe { Arc::from_raw(node) });
                } else {
                    // Relaxed: read by this thread, or the child's handler of a later fork.
                    waiter.handed.store(true, Ordering::Relaxed);
                    // SAFETY: `node` came from `Arc::into_raw` and the list's reference keeps
                    // it alive: one more reference, for the relay.
                    relayed.0.push(Relayed::Wake(unsafe {
                        Arc::increment_strong_count(node);
                        Arc::from_raw(node)
                    }));
                    prev = node;
                }
                node = next;
                continue;
            }
            if !cancelled {
                if rcu_sys::contain::contain(|| waiter.waker.wake_by_ref()).is_none() {
                    panicked();
                }
                if before_fork(waiter) {
                    // The waker forked and this is the child: its wake was delivered here;
                    // the node leaves as a handed one, its drop off the worker.
                    // Release / Relaxed: as in `Relayed::run`.
                    waiter.woken.store(true, Ordering::Release);
                    waiter.handed.store(true, Ordering::Relaxed);
                    waiter.done.store(true, Ordering::Release);
                    prev = node;
                    node = next;
                    continue;
                }
                // Release: pairs with the Acquire in `Waiter::is_woken`. After the wake: a
                // fork between the two leaves the node unmarked, so the child wakes it again.
                waiter.woken.store(true, Ordering::Release);
            }
            self.unlink(prev, node, next);
            // SAFETY: the list's reference, given up once: the node was unlinked just now.
            let list_ref = unsafe { Arc::from_raw(node) };
            // The last reference drops the waker: user code.
            if rcu_sys::contain::contain(move || drop(list_ref)).is_none() {
                panicked();
            }
            node = next;
        }
        // Relaxed (both): worker-only state.
        self.pending_gp.store(min_gp, Ordering::Relaxed);
        self.pending_generation.store(min_generation, Ordering::Relaxed);
        if !drops.is_empty() {
            relayed.0.push(Relayed::Drop(drops));
        }
        if !relayed.0.is_empty() {
            hand_off(relayed);
        }
    }

    /// Unlinks `node`, whose successor is `next`, after `prev` (null: `node` was the head
    /// when the pass loaded it). Worker only.
    fn unlink(&self, prev: *const Waiter, node: *mut Waiter, next: *mut Waiter) {
        let mut prev = prev;
        if prev.is_null() {
            // Relaxed (success): nothing is published by removing a node; Acquire (failure):
            // the pushes in front of `node`, walked below.
            match self.head.compare_exchange(node, next, Ordering::Relaxed, Ordering::Acquire) {
                Ok(_) => return,
                // Pushes came in front of `node`: it is now inside the list, behind them.
                Err(front) => {
                    prev = front;
                    // SAFETY: linked nodes (the pushes in front of `node`, which their links
                    // lead to), kept alive by the list's references.
                    // Relaxed: links of nodes published before the Acquire above.
                    while unsafe { &*prev }.next.load(Ordering::Relaxed) != node {
                        // SAFETY: as above.
                        prev = unsafe { &*prev }.next.load(Ordering::Relaxed);
                    }
                }
            }
        }
        // SAFETY: `prev` is a linked node (kept by the pass, or found above), kept alive by
        // the list's reference. Relaxed: interior links are written only by this thread once
        // their node is linked.
        unsafe { &*prev }.next.store(next, Ordering::Relaxed);
    }

    /// In a forked child (single-threaded): every node stays linked, and the child's first
    /// pass walks them all (those registered before the fork are handed to relay threads,
    /// module docs). A node handed to a relay of the parent whose wake is not done is
    /// un-handed: that relay does not exist here, so the node is handed again.
    pub(crate) fn after_fork(&self) {
        // Relaxed (all): the child has a single thread.
        let mut node = self.head.load(Ordering::Relaxed);
        while !node.is_null() {
            // SAFETY: a linked node, kept alive by the list's reference.
            let waiter = unsafe { &*node };
            if !waiter.done.load(Ordering::Relaxed) {
                waiter.handed.store(false, Ordering::Relaxed);
            }
            node = waiter.next.load(Ordering::Relaxed);
        }
        self.fresh.store(true, Ordering::Relaxed);
    }
}

/// What a pass in a fork child gives to relay threads: wakes of nodes registered before the
/// fork, and list references to drop (module docs). Each item runs on its own thread.
#[derive(Debug, Default)]
pub(crate) struct PreForkWork(Vec<Relayed>);

/// One item of [`PreForkWork`].
#[derive(Debug)]
pub(crate) enum Relayed {
    /// A second reference to a handed node, still linked: wake it, then mark it done.
    Wake(Arc<Waiter>),
    /// List references of unlinked nodes (done or cancelled): drop them.
    Drop(Vec<Arc<Waiter>>),
}

impl PreForkWork {
    /// The next item, leaving the rest.
    pub(crate) fn pop(&mut self) -> Option<Relayed> {
        self.0.pop()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Relayed {
    /// Runs the item; each wake and drop is contained, `panicked` counts those that
    /// panicked.
    pub(crate) fn run(self, panicked: &dyn Fn()) {
        let drop_contained = |node: Arc<Waiter>| {
            if rcu_sys::contain::contain(move || drop(node)).is_none() {
                panicked();
            }
        };
        match self {
            Relayed::Wake(node) => {
                // Relaxed: see `Waiter::cancel`.
                if !node.cancelled.load(Ordering::Relaxed) {
                    if rcu_sys::contain::contain(|| node.waker.wake_by_ref()).is_none() {
                        panicked();
                    }
                    // Release: as in `wake_ready`.
                    node.woken.store(true, Ordering::Release);
                }
                // Release: pairs with the Acquire in `wake_ready`, which unlinks it then.
                node.done.store(true, Ordering::Release);
                drop_contained(node);
            }
            Relayed::Drop(nodes) => nodes.into_iter().for_each(drop_contained),
        }
    }
}

impl Drop for AsyncWaiters {
    /// The domain's state is going: no future holds it (each holds a reference), so every
    /// node left is cancelled or was woken; drop the list's references. In a fork child, a
    /// node registered before the fork (one a relay woke, not yet unlinked by a pass) is
    /// leaked instead: its waker's drop must not run on this thread, the worker's as a rule
    /// (module docs).
    fn drop(&mut self) {
        let mut node = core::mem::replace(self.head.get_mut(), ptr::null_mut());
        while !node.is_null() {
            // SAFETY: as in `wake_ready`: the list owned this reference, and `&mut self`
            // means nobody else can reach it.
            let waiter = unsafe { Arc::from_raw(node) };
            // Relaxed: `&mut self`, nothing concurrent.
            node = waiter.next.load(Ordering::Relaxed);
            if waiter.epoch != crate::state::fork_epoch::epoch() {
                core::mem::forget(waiter);
                continue;
            }
            // A waker's drop is user code: contained here too.
            let _ = rcu_sys::contain::contain(move || drop(waiter));
        }
    }
}
