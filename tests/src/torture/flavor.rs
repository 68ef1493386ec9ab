//! What is being tortured: the real runtime (a classic domain, or a sleepable one), or a
//! deliberately broken fake that proves the torture can fail.
//!
//! - `global`, `custom`: the global domain, an isolated classic domain.
//! - `srcu`, `srcu-plain`: an isolated sleepable domain (`SrcuStruct`) with fast or plain
//!   readers. Its readers (`srcu_readers.rs`) sleep in their sections and hand owned guards
//!   to other threads; everything the writer and the updaters do goes through its
//!   `*_srcu` calls.
//! - `busted`: read sections that protect nothing and grace periods that end at once (as the
//!   kernel rcutorture's `rcu_busted` type); the age check must report FAILURE.
//! - `busted-barrier`: a real isolated domain, except that the updaters' headed frees on it
//!   are split so that `rcu_barrier` returns before their memory is deallocated
//!   (`frees::busted_kvfree`); the barrier check must report FAILURE.
//! - `srcu-busted`: two real sleepable domains, wired wrongly: readers enter their sections
//!   on one, the writer and the updaters retire and wait on the other, whose grace periods
//!   therefore never wait for the readers. The readers hold every value until the writer has
//!   moved on by more than the pipeline's length, so values they hold are aged and freed
//!   under them: the age check must report FAILURE.
//! - `qsbr`: an isolated QSBR domain (`QsbrDomain`). Its readers (`qsbr_readers.rs`) stay
//!   online across batches of reads, announce quiescent states between them and now and then
//!   go offline to sleep; the writer and the updaters use the domain's calls with every
//!   token. Its grace periods must issue no membarrier (the membarrier check).
//! - `qsbr-busted`: two real QSBR domains, wired as `srcu-busted`'s: readers are online on
//!   one, the writer and the updaters retire and wait on the other, and each reader holds its
//!   element until the writer has moved on by more than the pipeline's length: the age check
//!   must report FAILURE.

use std::sync::atomic::{AtomicU64, Ordering};

use rcu_core::prelude::*;
use rcu_core::{
    AllocStats, Callback, Domain, DomainStats, Fast, GpCookie, MayWaitFor, Plain, QsbrDomain,
    SectionState, SleepableSection, SrcuStruct, Unbranded,
};

/// The RCU implementation under test.
#[derive(Debug)]
pub enum Flavor {
    /// The global domain.
    Global,
    /// An isolated domain.
    Custom(Domain),
    /// The broken fake.
    Busted(AtomicU64),
    /// An isolated domain whose tracked headed frees skip the barrier's deallocation step.
    BustedBarrier(Domain),
    /// An isolated sleepable domain with fast readers.
    Srcu(SrcuStruct<Fast>),
    /// An isolated sleepable domain with plain readers.
    SrcuPlain(SrcuStruct<Plain>),
    /// The sleepable fake: readers lock one domain, updates retire on the other.
    SrcuBusted {
        /// The domain the readers' sections are on; nothing ever waits for it.
        readers: SrcuStruct<Fast>,
        /// The domain the writer and the updaters retire on and wait for.
        writers: SrcuStruct<Fast>,
    },
    /// An isolated QSBR domain.
    Qsbr(QsbrDomain),
    /// The QSBR fake: readers are online on one domain, updates retire on the other.
    QsbrBusted {
        /// The domain the readers are online in; nothing ever waits for it.
        readers: QsbrDomain,
        /// The domain the writer and the updaters retire on and wait for.
        writers: QsbrDomain,
    },
}

/// A sleepable domain of either reader flavour.
#[derive(Clone, Copy, Debug)]
pub enum Srcu<'a> {
    /// Fast readers.
    Fast(&'a SrcuStruct<Fast>),
    /// Plain readers.
    Plain(&'a SrcuStruct<Plain>),
}

/// Evaluates `$body` with `$s` bound to the `&SrcuStruct<_>` inside `$srcu` (a [`Srcu`]),
/// whichever its reader flavour: the body is compiled once per flavour.
macro_rules! on_srcu {
    ($srcu:expr, $s:ident => $body:expr) => {
        match $srcu {
            $crate::torture::flavor::Srcu::Fast($s) => $body,
            $crate::torture::flavor::Srcu::Plain($s) => $body,
        }
    };
}
pub(crate) use on_srcu;

/// Where updates go: what the writer and the updaters retire on and wait for.
enum Updates<'a> {
    Classic(&'a Domain),
    Sleepable(Srcu<'a>),
    Qsbr(&'a QsbrDomain),
    Fake,
}

/// A polled-API cookie of either kind.
#[derive(Clone, Copy, Debug)]
pub enum Cookie {
    /// A real cookie.
    Real(GpCookie),
    /// The fake's cookie: always "completed".
    Busted,
}

/// Waits for a grace period of `$d` (a `Domain` or a `QsbrDomain`: the same calls) by method
/// `$method` (0..=3: normal, expedited, cond_synchronize, start_poll + poll).
macro_rules! wait_by_method {
    ($d:expr, $ctx:expr, $method:expr) => {
        match $method % 4 {
            0 => $d.synchronize_rcu($ctx),
            1 => $d.synchronize_rcu_expedited($ctx),
            2 => {
                let cookie = $d.get_state();
                $d.cond_synchronize($ctx, cookie);
            }
            _ => {
                let cookie = $d.start_poll($ctx);
                while !$d.poll(cookie) {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
        }
    };
}

impl Flavor {
    fn updates(&self) -> Updates<'_> {
        match self {
            Flavor::Global => Updates::Classic(Domain::global()),
            Flavor::Custom(d) | Flavor::BustedBarrier(d) => Updates::Classic(d),
            Flavor::Busted(_) => Updates::Fake,
            Flavor::Srcu(s) | Flavor::SrcuBusted { writers: s, .. } => {
                Updates::Sleepable(Srcu::Fast(s))
            }
            Flavor::SrcuPlain(s) => Updates::Sleepable(Srcu::Plain(s)),
            Flavor::Qsbr(d) | Flavor::QsbrBusted { writers: d, .. } => Updates::Qsbr(d),
        }
    }

    /// True for the sleepable flavors (`srcu`, `srcu-plain`, `srcu-busted`).
    pub fn is_sleepable(&self) -> bool {
        matches!(self.updates(), Updates::Sleepable(_))
    }

    /// True for the fakes that protect nothing (`busted`).
    pub fn is_fake(&self) -> bool {
        matches!(self.updates(), Updates::Fake)
    }

    /// The sleepable domain the readers' sections are on (sleepable flavors only). For
    /// `srcu-busted` it is not the one updates wait for.
    pub fn reader_srcu(&self) -> Option<Srcu<'_>> {
        match self {
            Flavor::Srcu(s) | Flavor::SrcuBusted { readers: s, .. } => Some(Srcu::Fast(s)),
            Flavor::SrcuPlain(s) => Some(Srcu::Plain(s)),
            _ => None,
        }
    }

    /// True for the QSBR flavors (`qsbr`, `qsbr-busted`).
    pub fn is_qsbr(&self) -> bool {
        self.reader_qsbr().is_some()
    }

    /// The QSBR domain the readers are online in (QSBR flavors only). For `qsbr-busted` it
    /// is not the one updates wait for.
    pub fn reader_qsbr(&self) -> Option<&QsbrDomain> {
        match self {
            Flavor::Qsbr(d) | Flavor::QsbrBusted { readers: d, .. } => Some(d),
            _ => None,
        }
    }

    /// QSBR flavors: the membarriers the run's QSBR domains' grace periods issued (both
    /// domains of `qsbr-busted`).
    pub fn qsbr_membarriers(&self) -> Option<u64> {
        match self {
            Flavor::Qsbr(d) => Some(d.stats().membarriers),
            Flavor::QsbrBusted { readers, writers } => {
                Some(readers.stats().membarriers + writers.stats().membarriers)
            }
            _ => None,
        }
    }

    /// Name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Flavor::Global => "global",
            Flavor::Custom(_) => "custom",
            Flavor::Busted(_) => "busted",
            Flavor::BustedBarrier(_) => "busted-barrier",
            Flavor::Srcu(_) => "srcu",
            Flavor::SrcuPlain(_) => "srcu-plain",
            Flavor::SrcuBusted { .. } => "srcu-busted",
            Flavor::Qsbr(_) => "qsbr",
            Flavor::QsbrBusted { .. } => "qsbr-busted",
        }
    }

    /// Runs `f` inside a classic read section (or, busted, outside any). The sleepable
    /// flavors' readers are `srcu_readers.rs`, the QSBR flavors' `qsbr_readers.rs`.
    pub fn read<R>(&self, ctx: &mut Sleepable, f: impl FnOnce(&Atomic<'_>) -> R) -> R {
        match self.updates() {
            Updates::Classic(d) => {
                let guard = d.read_lock(ctx);
                f(guard.ctx())
            }
            Updates::Fake => f(&ctx.atomic()),
            Updates::Sleepable(_) => unreachable!("sleepable flavors read in srcu_readers.rs"),
            Updates::Qsbr(_) => unreachable!("QSBR flavors read in qsbr_readers.rs"),
        }
    }

    /// Runs `f` inside a classic section nested in the current one.
    pub fn read_nested<R>(&self, ctx: &Atomic<'_>, f: impl FnOnce() -> R) -> R {
        match self.updates() {
            Updates::Classic(d) => {
                let _guard = d.read_lock_nested(ctx);
                f()
            }
            Updates::Fake => f(),
            Updates::Sleepable(_) => unreachable!("sleepable flavors read in srcu_readers.rs"),
            Updates::Qsbr(_) => unreachable!("QSBR flavors read in qsbr_readers.rs"),
        }
    }

    /// Runs `f` with the token of a read section of the domain updates go to, entered from
    /// `ctx` for the call: the section's own token, with which frees and callbacks on that
    /// domain are queued without waiting for it (`TokenKind::Section`).
    ///
    /// # Panics
    /// Under a classic flavor: only sleepable sections have a token of their own.
    pub fn in_section<R>(
        &self,
        ctx: &mut Sleepable,
        f: impl FnOnce(&SleepableSection<'_, Unbranded, Sleepable>) -> R,
    ) -> R {
        match self.updates() {
            Updates::Sleepable(srcu) => on_srcu!(srcu, s => {
                let guard = s.read_lock(ctx);
                f(guard.ctx())
            }),
            _ => panic!(
                "rcutorture: the section token belongs to the sleepable flavors (srcu, \
                 srcu-plain, srcu-busted), not to {}",
                self.name()
            ),
        }
    }

    /// Waits for a grace period by method `method` (0..=3: normal, expedited,
    /// cond_synchronize, start_poll + poll).
    pub fn synchronize(&self, ctx: &Sleepable, method: u32) {
        match self.updates() {
            Updates::Classic(d) => wait_by_method!(d, ctx, method),
            Updates::Sleepable(srcu) => on_srcu!(srcu, s => match method % 4 {
                0 => s.synchronize_srcu(ctx),
                1 => s.synchronize_srcu_expedited(ctx),
                2 => {
                    let cookie = s.get_state_synchronize_srcu();
                    s.cond_synchronize_srcu(ctx, cookie);
                }
                _ => {
                    let cookie = s.start_poll_synchronize_srcu(ctx);
                    while !s.poll_state_synchronize_srcu(cookie) {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                }
            }),
            Updates::Qsbr(d) => wait_by_method!(d, ctx, method),
            Updates::Fake => self.bump(),
        }
    }

    fn bump(&self) {
        if let Flavor::Busted(gps) = self {
            // Relaxed: a statistic.
            gps.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A polled-API cookie.
    pub fn get_state(&self) -> Cookie {
        match self.updates() {
            Updates::Classic(d) => Cookie::Real(d.get_state()),
            Updates::Sleepable(srcu) => {
                Cookie::Real(on_srcu!(srcu, s => s.get_state_synchronize_srcu()))
            }
            Updates::Qsbr(d) => Cookie::Real(d.get_state()),
            Updates::Fake => Cookie::Busted,
        }
    }

    /// Has the cookie's grace period completed?
    pub fn poll(&self, cookie: Cookie) -> bool {
        match (self.updates(), cookie) {
            (Updates::Classic(d), Cookie::Real(c)) => d.poll(c),
            (Updates::Sleepable(srcu), Cookie::Real(c)) => {
                on_srcu!(srcu, s => s.poll_state_synchronize_srcu(c))
            }
            (Updates::Qsbr(d), Cookie::Real(c)) => d.poll(c),
            _ => true,
        }
    }

    /// `call_rcu` (`call_srcu`) with any token; busted runs the callback at once.
    pub fn call_rcu<C: SectionState<Unbranded>, T: Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<Rcu<T>>,
        f: Callback<T>,
    ) {
        match self.updates() {
            Updates::Classic(d) => d.call_rcu(ctx, obj, f),
            Updates::Sleepable(srcu) => on_srcu!(srcu, s => s.call_srcu(ctx, obj, f)),
            Updates::Qsbr(d) => d.call_rcu(ctx, obj, f),
            Updates::Fake => {
                // SAFETY: (1) dropped before returning; (2) no scope opened meanwhile.
                let atomic = unsafe { Atomic::assume() };
                f(obj, &atomic);
            }
        }
    }

    /// `call_rcu_fn` (`call_srcu_fn`) with a token that may allocate; busted runs `f` at once.
    pub fn call_rcu_fn<C, F>(&self, ctx: &C, f: F)
    where
        C: MayAlloc + SectionState<Unbranded>,
        F: FnOnce(&Atomic<'_>) + Send + 'static,
    {
        match self.updates() {
            Updates::Classic(d) => d.call_rcu_fn(ctx, f),
            Updates::Sleepable(srcu) => on_srcu!(srcu, s => s.call_srcu_fn(ctx, f)),
            Updates::Qsbr(d) => d.call_rcu_fn(ctx, f),
            Updates::Fake => {
                // SAFETY: (1) dropped before returning; (2) no scope opened meanwhile.
                let atomic = unsafe { Atomic::assume() };
                f(&atomic);
            }
        }
    }

    /// `kvfree_rcu` (`kvfree_srcu`) with any token; busted frees at once. (`busted-barrier`'s
    /// broken one is `frees::busted_kvfree`, for the tracked values only.)
    pub fn kvfree_rcu<C: SectionState<Unbranded>, T: Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<Rcu<T>>,
    ) {
        match self.updates() {
            Updates::Classic(d) => d.kvfree_rcu(ctx, obj),
            Updates::Sleepable(srcu) => on_srcu!(srcu, s => s.kvfree_srcu(ctx, obj)),
            Updates::Qsbr(d) => d.kvfree_rcu(ctx, obj),
            Updates::Fake => drop(obj),
        }
    }

    /// `kvfree_rcu_mightsleep` (`kvfree_srcu_mightsleep`) with a token that may sleep (and,
    /// on a sleepable domain, wait for it); busted frees at once.
    pub fn kvfree_rcu_mightsleep<C: MayWaitFor<Unbranded>, T: Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<T>,
    ) {
        match self.updates() {
            Updates::Classic(d) => d.kvfree_rcu_mightsleep(ctx, obj),
            Updates::Sleepable(srcu) => on_srcu!(srcu, s => s.kvfree_srcu_mightsleep(ctx, obj)),
            Updates::Qsbr(d) => d.kvfree_rcu_mightsleep(ctx, obj),
            Updates::Fake => drop(obj),
        }
    }

    /// `rcu_barrier` (`srcu_barrier`).
    pub fn barrier(&self, ctx: &Sleepable) {
        match self.updates() {
            Updates::Classic(d) => d.rcu_barrier(ctx),
            Updates::Sleepable(srcu) => on_srcu!(srcu, s => s.srcu_barrier(ctx)),
            Updates::Qsbr(d) => d.rcu_barrier(ctx),
            Updates::Fake => {}
        }
    }

    /// Statistics of the domain updates go to (`None`: the fake has none).
    pub fn stats(&self) -> Option<DomainStats> {
        match self.updates() {
            Updates::Classic(d) => Some(d.stats()),
            Updates::Sleepable(srcu) => Some(on_srcu!(srcu, s => s.stats())),
            Updates::Qsbr(d) => Some(d.stats()),
            Updates::Fake => None,
        }
    }

    /// Allocator statistics of the domain updates go to.
    pub fn alloc_stats(&self) -> Option<AllocStats> {
        match self.updates() {
            Updates::Classic(d) => Some(d.alloc_stats()),
            Updates::Sleepable(srcu) => Some(on_srcu!(srcu, s => s.alloc_stats())),
            Updates::Qsbr(d) => Some(d.alloc_stats()),
            Updates::Fake => None,
        }
    }

    /// True if updates go to a domain of the run's own (not the global one, not the fake).
    pub fn is_private(&self) -> bool {
        match self.updates() {
            Updates::Classic(d) => !d.is_global(),
            Updates::Sleepable(_) | Updates::Qsbr(_) => true,
            Updates::Fake => false,
        }
    }

    /// Grace periods completed.
    pub fn gp_completed(&self) -> u64 {
        match self {
            // Relaxed: a statistic.
            Flavor::Busted(gps) => gps.load(Ordering::Relaxed),
            _ => self.stats().map_or(0, |s| s.gp_completed),
        }
    }
}
