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

use core::marker::PhantomData;

use rcu_ctx::{Atomic, ReadSection};

use crate::api::qsbr::QsbrDomain;
use crate::api::reader::current_slot;
use crate::read::flavor::ReaderFlavor;
use crate::read::registry::Slot;
use crate::state::DomainState;

/// Before a wait for a grace period of `domain` (`DomainState::wait_for`, `rcu_barrier`,
/// a grace-period future's poll) and before an explicit `QsbrDomain::online`: a worker
/// online for its executor goes offline (outside every `read` closure it holds nothing), or
/// the wait would wait for itself and the explicit handle would be refused. Inside a `read`
/// closure it stays online, and the caller's check refuses the wait (or the second online
/// period).
pub(crate) fn offline_for_executor(domain: &DomainState) {
    if domain.readers.flavor() == ReaderFlavor::Qsbr {
        if let Some(slot) = current_slot(domain) {
            slot.end_executor_online();
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
    slot: &'a Slot,
    /// `read` entered a section of its own (the thread was not online): ended here.
    own_section: bool,
}

impl Drop for ReadEnd<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.own_section {
            self.slot.word.exit();
        }
        self.slot.executor.end_read();
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
        let executor = &slot.executor;
        let depth = slot.word.depth();
        let mut own_section = false;
        if executor.is_online() && depth != 0 {
            // Outside every read closure the thread holds nothing of the domain's: a
            // quiescent state, if the online period is all its word holds.
            if executor.reads() == 0 && depth == 1 {
                slot.word.refresh(state.gp.seq.started_counter());
            }
        } else if executor.parks() && executor.reads() == 0 && depth == 0 {
            // A worker's first read since it parked: online until it parks again.
            slot.word.enter(state.gp.seq.started_counter());
            executor.set_online(true);
        } else {
            slot.word.enter(state.gp.seq.started_counter());
            own_section = true;
        }
        executor.begin_read();
        let _end = ReadEnd { slot, own_section };
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
        // A root, so that the token rules check the hook's context (registering allocates).
        self.register_current_thread(&rcu_ctx::Sleepable::enter());
        if let Some(slot) = current_slot(self.domain().state()) {
            slot.executor.mark_executor();
        }
    }

    /// Executor hook, when a worker parks (tokio: `on_thread_park`): a quiescent state that
    /// lasts, the thread offline until its next read. Inside a `read` closure (a nested
    /// runtime parking) it does nothing: the closure's references keep the thread online.
    /// Does nothing on threads `executor_thread_start` did not see.
    pub fn executor_thread_park(&self) {
        if let Some(slot) = current_slot(self.domain().state()) {
            slot.executor.mark_parked();
            slot.end_executor_online();
        }
    }

    /// Executor hook, when a thread the executor started ends (tokio: `on_thread_stop`): the
    /// thread goes offline and is no longer the executor's.
    pub fn executor_thread_stop(&self) {
        if let Some(slot) = current_slot(self.domain().state()) {
            slot.end_executor_online();
            if slot.executor.reads() == 0 {
                slot.executor.reset();
            }
        }
    }

    /// True while the calling thread is online in this domain for its executor (between a
    /// read and its next park); for tests and diagnostics.
    pub fn is_executor_online(&self) -> bool {
        current_slot(self.domain().state()).is_some_and(|slot| slot.executor.is_online())
    }
}
