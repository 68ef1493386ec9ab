//! QSBR for threads the program does not drive itself: executor workers, which run tasks
//! that cannot hold a `QsbrOnline` (it borrows the thread's token and is `!Send`).
//!
//! Tasks read through [`QsbrDomain::read`]: the closure gets a [`QsbrRead`] whose references
//! cannot leave it (higher-ranked lifetime). Each `read` is a section of its own: the thread
//! holds nothing between reads, so a worker blocked between two reads (on a lock, another
//! domain's grace period, `block_in_place`) never holds a grace period. What the executor
//! hooks buy is the section's cost: a worker the executor started
//! (`executor_thread_start`) and has parked (`executor_thread_park`) goes *online* at its
//! first read after a park: it sets the online flag in its slot, then fences once, and from
//! then on enters its sections without a fence (`ReaderWord::enter_for_heavy_barrier`, two
//! plain stores per read). A grace period of the domain fences, then looks at the flags, and
//! issues the heavy barrier (membarrier) only if some thread is online (store buffering with
//! the flag's store and fence: a thread whose flag the grace period missed fenced after the
//! grace period's fence, so its sections see the removal). The worker goes offline when it
//! parks, stops, waits for one of the domain's grace periods, takes an explicit online
//! handle, or ends: grace periods stop paying for it. Other threads (a blocking pool's, the
//! caller of `block_on`) have no parks to end an online period, so their sections fence.
//!
//! A `read` closure that runs marks the thread as inside a read section (a root taken inside
//! is refused; its token is `Atomic`), keeps the thread online through a park inside it (a
//! nested runtime), and counts in the slot, so that a quiescent state of an explicit handle
//! cannot be announced inside it (`ReaderWord::refresh` refuses depth above 1).

use core::marker::PhantomData;
use core::sync::atomic::{fence, Ordering};

use rcu_ctx::{Atomic, ReadSection};

use crate::api::qsbr::QsbrDomain;
use crate::api::reader::current_slot;
use crate::raw::barrier::uses_membarrier;
use crate::read::registry::Slot;
use crate::state::DomainState;

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

/// Ends what `read` began when its closure returns or unwinds.
struct ReadEnd<'a> {
    slot: &'a Slot,
}

impl Drop for ReadEnd<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slot.word.exit();
        self.slot.executor.end_read();
    }
}

impl QsbrDomain {
    /// Runs `f` in a read section of the domain: what `f` loads through its [`QsbrRead`]
    /// cannot leave it, and the thread holds nothing once `f` returns. On an executor worker
    /// online in the domain (see [`QsbrDomain::executor_thread_start`]) the section is two
    /// plain stores, the domain's grace periods issuing membarrier meanwhile; elsewhere its
    /// entry fences.
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
    /// A reference cannot leave the closure ("lifetime may not live long enough", an error
    /// without a code, so this spec cannot name one; the example above is its compiling twin):
    ///
    /// ```compile_fail
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, QsbrDomain};
    /// let domain = QsbrDomain::new(DomainConfig::new());
    /// let cell = RcuCell::new_in(&domain, 1u32);
    /// domain.register_current_thread(&Sleepable::enter());
    /// let leaked: &u32 = domain.read(|r| cell.load(r)); // error: the reference would escape
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
        if !executor.is_online() && executor.parks() && executor.reads() == 0 {
            // A worker's first read since it parked: online until it parks again.
            executor.set_online(true);
            // SeqCst: pairs with the fence a QSBR grace period issues before it looks at the
            // online flags (`GracePeriods::start_or_resume`): either it sees this flag and
            // issues the heavy barrier, or our sections after this fence see its removal.
            fence(Ordering::SeqCst);
        }
        if executor.is_online() && uses_membarrier() {
            slot.word.enter_for_heavy_barrier(state.gp.seq.started_counter());
        } else {
            slot.word.enter(state.gp.seq.started_counter());
        }
        executor.begin_read();
        let _end = ReadEnd { slot };
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
    /// registers the thread with the domain and records it as the executor's. Once it has
    /// parked ([`executor_thread_park`](QsbrDomain::executor_thread_park)), its
    /// [`read`](QsbrDomain::read)s go online and enter without a fence; a thread that never
    /// parks (a blocking pool's) fences at each read.
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

    /// Executor hook, when a worker parks (tokio: `on_thread_park`): the thread goes offline
    /// until its next read, so grace periods stop issuing membarrier for it. Inside a `read`
    /// closure (a nested runtime parking) the thread stays online. Does nothing on threads
    /// `executor_thread_start` did not see.
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

    /// True while the calling thread is online in this domain for its executor (from a read
    /// to its next park); for tests and diagnostics.
    pub fn is_executor_online(&self) -> bool {
        current_slot(self.domain().state()).is_some_and(|slot| slot.executor.is_online())
    }
}
