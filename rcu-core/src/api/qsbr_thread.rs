//! QSBR for threads the program does not drive itself: executor workers, which run tasks
//! that cannot hold a `QsbrOnline` (it borrows the thread's token and is `!Send`).
//!
//! Reads go through [`QsbrDomain::read`]: the closure gets a [`QsbrRead`] whose references
//! cannot leave it (higher-ranked lifetime), so outside every `read` closure the thread holds
//! no reference to the domain's data: every point outside one is a quiescent state. The
//! executor's hooks say which threads are workers (`executor_thread_start`) and when they park
//! (`executor_thread_park`). A worker goes online at its first `read` after a park (one fenced
//! entry), stays online across reads, passes a quiescent state at the entry of every outermost
//! `read` (one store, `ReaderWord::refresh`), and goes offline when it parks, stops, or waits
//! for one of the domain's grace periods. A worker that reads nothing never holds a grace
//! period; one that read and then keeps running other tasks holds them until its next read or
//! park (its stall report says so).
//!
//! Other threads (a blocking pool's, the caller of `block_on`) have no parks to end an online
//! period, so each of their reads is a section of its own: a fenced entry and an exit.
//!
//! Soundness rests on three checks, each here: a quiescent state only when the thread's
//! reader word holds nothing but this online period (`depth() == 1`) and no `read` closure
//! is running; going offline never inside a `read` closure (a park inside one, from a nested
//! `block_on`, is ignored: the thread stays online); going online only on a word with no
//! section open (an explicit `QsbrOnline` refuses a thread already online, `depth() != 1`).

use core::cell::Cell;
use core::marker::PhantomData;
use std::cell::RefCell;
use std::rc::Rc;

use rcu_ctx::{Atomic, ReadSection};

use crate::api::qsbr::QsbrDomain;
use crate::api::reader::current_slot;
use crate::read::flavor::ReaderFlavor;
use crate::read::registry::Slot;
use crate::state::{DomainRef, DomainState};

/// What the calling thread's executor told us about it, for one QSBR domain.
#[derive(Debug)]
struct WorkerState {
    /// Keeps the domain's state (and so this thread's slot) alive while the entry exists.
    domain: DomainRef,
    /// True while the thread is online for the executor (its word holds one section).
    online: Cell<bool>,
    /// `read` closures of this domain running on the thread (nested ones counted).
    reads: Cell<u32>,
    /// True once the executor parked this thread: it is a worker whose parks end online
    /// periods, so it may stay online between reads.
    parks: Cell<bool>,
}

impl WorkerState {
    fn is_of(&self, domain: &DomainState) -> bool {
        core::ptr::eq(&*self.domain, domain)
    }

    /// The thread's slot in the domain: registered by `executor_thread_start`, and kept while
    /// the entry holds the domain's state.
    fn slot(&self) -> &Slot {
        current_slot(&self.domain).expect(
            "rcu-core internal error: a QSBR worker entry outlived its thread's registration",
        )
    }

    /// Ends the online period, unless a `read` closure runs (it keeps the thread online).
    fn go_offline(&self) {
        if self.online.get() && self.reads.get() == 0 {
            self.slot().word.exit();
            self.online.set(false);
        }
    }
}

thread_local! {
    /// The QSBR domains whose executor hooks ran on this thread.
    static WORKER: RefCell<Vec<Rc<WorkerState>>> = const { RefCell::new(Vec::new()) };
}

/// This thread's entry for `domain`, if its executor hooks ran here.
fn worker_state(domain: &DomainState) -> Option<Rc<WorkerState>> {
    // `try_with`: during thread exit the list may be gone; the thread is then no worker.
    WORKER.try_with(|list| list.borrow().iter().find(|w| w.is_of(domain)).cloned()).ok().flatten()
}

/// Before a wait for a grace period of `domain` (`DomainState::wait_for`, `rcu_barrier`) and
/// before an explicit `QsbrDomain::online`: a worker online for its executor goes offline
/// (outside every `read` closure it holds nothing), or the wait would wait for itself and
/// the explicit handle would be refused. Inside a `read` closure it stays online, and the
/// caller's check refuses the wait (or the second online period).
pub(crate) fn offline_for_executor(domain: &DomainState) {
    if domain.readers.flavor() == ReaderFlavor::Qsbr {
        if let Some(worker) = worker_state(domain) {
            worker.go_offline();
        }
    }
}

/// A read of a [`QsbrDomain`] through [`QsbrDomain::read`]: data loaded through it
/// (`cell.load(read)`) lives until the closure returns. `!Send`, `!Sync`.
#[derive(Debug)]
pub struct QsbrRead<'r> {
    /// Marks the thread as inside a read section for the token rules (a root taken inside
    /// the closure is refused) and provides the closure's `Atomic` token.
    section: ReadSection<'r>,
    domain: &'r DomainState,
    _not_send: PhantomData<*const ()>,
}

impl<'r> QsbrRead<'r> {
    /// The `Atomic` token for code inside the closure: it may queue frees and poll, not
    /// block.
    #[inline]
    pub fn ctx(&self) -> &Atomic<'r> {
        self.section.token()
    }

    pub(crate) fn domain_state(&self) -> &DomainState {
        self.domain
    }
}

/// Undoes what `read` did when its closure returns or unwinds.
struct ReadEnd<'a> {
    worker: Option<&'a WorkerState>,
    /// The section `read` entered itself (the thread was not online), ended here.
    own_section: Option<&'a Slot>,
}

impl Drop for ReadEnd<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.own_section {
            slot.word.exit();
        }
        if let Some(worker) = self.worker {
            worker.reads.set(worker.reads.get() - 1);
        }
    }
}

impl QsbrDomain {
    /// Runs `f` with the calling thread reading the domain: what `f` loads through its
    /// [`QsbrRead`] cannot leave it. On an executor worker attached to the domain (see
    /// [`QsbrDomain::executor_thread_start`]) this is a plain load of the data: the thread
    /// stays online between reads, and each outermost `read` begins with its quiescent state
    /// (one store). Elsewhere `f` runs in a section of its own (a fenced entry and an exit).
    ///
    /// Inside `f` the thread is in a read section: `f`'s token is [`QsbrRead::ctx`], an
    /// `Atomic` one, and a root taken inside is refused as in every read section.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, QsbrDomain};
    ///
    /// let domain = Arc::new(QsbrDomain::new(DomainConfig::new().name("routes")));
    /// let routes = RcuCell::new_in(&*domain, vec!["/", "/health"]);
    /// domain.register_current_thread(&Sleepable::enter());
    /// let n = domain.read(|r| routes.load(r).len()); // the reference stays inside
    /// assert_eq!(n, 2);
    /// ```
    ///
    /// A reference cannot leave the closure:
    ///
    /// ```compile_fail
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, QsbrDomain};
    /// let domain = QsbrDomain::new(DomainConfig::new());
    /// let cell = RcuCell::new_in(&domain, 1u32);
    /// domain.register_current_thread(&Sleepable::enter());
    /// let leaked: &u32 = domain.read(|r| cell.load(r)); // error: borrowed data escapes
    /// ```
    ///
    /// # Panics
    /// On a thread not registered with the domain (registering allocates, and `read` takes no
    /// token that says it may): register it with [`QsbrDomain::register_current_thread`] or
    /// through the executor's start hook.
    #[track_caller]
    pub fn read<R>(&self, f: impl FnOnce(&QsbrRead<'_>) -> R) -> R {
        let state = self.domain().state();
        let Some(slot) = current_slot(state) else {
            panic!(
                "rcu-core: QsbrDomain::read on a thread not registered with domain '{}': \
                 registering allocates, and read takes no token that says it may (rule: only \
                 a Sleepable or NoReclaim token allocates). Fix: \
                 domain.register_current_thread(&ctx) first, or attach the domain to the \
                 runtime (its start hook registers every thread it starts)",
                self.name()
            );
        };
        let worker = worker_state(state);
        let mut own_section = None;
        match worker.as_deref() {
            Some(w) if w.online.get() => {
                // Outside every read closure the thread holds nothing of the domain's: a
                // quiescent state, if the online period is all its word holds.
                if w.reads.get() == 0 && slot.word.depth() == 1 {
                    slot.word.refresh(state.gp.seq.started_counter());
                }
            }
            Some(w) if w.parks.get() && w.reads.get() == 0 && slot.word.depth() == 0 => {
                // A worker's first read since it parked: online until it parks again.
                slot.word.enter(state.gp.seq.started_counter());
                w.online.set(true);
            }
            _ => {
                slot.word.enter(state.gp.seq.started_counter());
                own_section = Some(slot);
            }
        }
        if let Some(w) = worker.as_deref() {
            w.reads.set(w.reads.get() + 1);
        }
        let _end = ReadEnd { worker: worker.as_deref(), own_section };
        // SAFETY: `atomic` stands for the read section just entered: it lives in this frame
        // and is dropped before `read` returns (unwinding too), and the only scope opened
        // from it, `section` (inside `QsbrRead`), is dropped before it.
        let atomic = unsafe { Atomic::assume() };
        let guard = QsbrRead {
            section: ReadSection::enter_nested(&atomic),
            domain: state,
            _not_send: PhantomData,
        };
        f(&guard)
    }

    /// Executor hook, on every thread the executor starts (tokio: `on_thread_start`):
    /// registers the thread with the domain and records it as the executor's. Such a thread
    /// stays online between [`read`](QsbrDomain::read)s once it has parked
    /// ([`executor_thread_park`](QsbrDomain::executor_thread_park)); a thread that never parks
    /// (a blocking pool's) reads in sections of their own.
    ///
    /// # Panics
    /// From an atomic context (registering allocates).
    #[track_caller]
    pub fn executor_thread_start(&self) {
        let state = self.domain().state();
        // A root, so that the token rules check the hook's context (registering allocates).
        self.register_current_thread(&rcu_ctx::Sleepable::enter());
        if worker_state(state).is_none() {
            let entry = WorkerState {
                domain: self.domain().state_ref(),
                online: Cell::new(false),
                reads: Cell::new(0),
                parks: Cell::new(false),
            };
            WORKER.with(|list| list.borrow_mut().push(Rc::new(entry)));
        }
    }

    /// Executor hook, when a worker parks (tokio: `on_thread_park`): a quiescent state that
    /// lasts, the thread offline until its next read. Inside a `read` closure (a nested
    /// runtime parking) it does nothing: the closure's references keep the thread online.
    /// Does nothing on threads `executor_thread_start` did not see.
    pub fn executor_thread_park(&self) {
        if let Some(worker) = worker_state(self.domain().state()) {
            worker.parks.set(true);
            worker.go_offline();
        }
    }

    /// Executor hook, when a thread the executor started ends (tokio: `on_thread_stop`): the
    /// thread goes offline and the domain forgets it.
    pub fn executor_thread_stop(&self) {
        let state = self.domain().state();
        if let Some(worker) = worker_state(state) {
            worker.go_offline();
            if worker.reads.get() == 0 {
                WORKER.with(|list| list.borrow_mut().retain(|w| !w.is_of(state)));
            }
        }
    }

    /// True while the calling thread is online in this domain for its executor (between a
    /// read and its next park); for tests and diagnostics.
    pub fn is_executor_online(&self) -> bool {
        worker_state(self.domain().state()).is_some_and(|w| w.online.get())
    }
}
