//! What is being tortured: the real runtime (a domain), or a deliberately broken fake that
//! proves the torture can fail. `busted`: read sections that protect nothing and grace
//! periods that end at once (as the kernel rcutorture's `rcu_busted` type); the age check
//! must report FAILURE. `busted-barrier`: a real isolated domain, except that the updaters'
//! headed frees on it are split so that `rcu_barrier` returns before their memory is
//! deallocated (`frees::busted_kvfree`); the barrier check must report FAILURE.

use std::sync::atomic::{AtomicU64, Ordering};

use rcu_core::prelude::*;
use rcu_core::{Callback, Domain, GpCookie};

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
}

/// A polled-API cookie of either kind.
#[derive(Clone, Copy, Debug)]
pub enum Cookie {
    /// A real cookie.
    Real(GpCookie),
    /// The fake's cookie: always "completed".
    Busted,
}

impl Flavor {
    /// The real domain, if any.
    pub fn domain(&self) -> Option<&Domain> {
        match self {
            Flavor::Global => Some(Domain::global()),
            Flavor::Custom(d) | Flavor::BustedBarrier(d) => Some(d),
            Flavor::Busted(_) => None,
        }
    }

    /// Name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Flavor::Global => "global",
            Flavor::Custom(_) => "custom",
            Flavor::Busted(_) => "busted",
            Flavor::BustedBarrier(_) => "busted-barrier",
        }
    }

    /// Runs `f` inside a read section (or, busted, outside any).
    pub fn read<R>(&self, ctx: &mut Sleepable, f: impl FnOnce(&Atomic<'_>) -> R) -> R {
        match self.domain() {
            Some(d) => {
                let guard = d.read_lock(ctx);
                f(guard.ctx())
            }
            None => f(&ctx.atomic()),
        }
    }

    /// Runs `f` inside a section nested in the current one.
    pub fn read_nested<R>(&self, ctx: &Atomic<'_>, f: impl FnOnce() -> R) -> R {
        match self.domain() {
            Some(d) => {
                let _guard = d.read_lock_nested(ctx);
                f()
            }
            None => f(),
        }
    }

    /// Waits for a grace period by method `method` (0..=3: normal, expedited,
    /// cond_synchronize, start_poll + poll).
    pub fn synchronize(&self, ctx: &Sleepable, method: u32) {
        let Some(d) = self.domain() else {
            self.bump();
            return;
        };
        match method % 4 {
            0 => d.synchronize_rcu(ctx),
            1 => d.synchronize_rcu_expedited(ctx),
            2 => {
                let cookie = d.get_state();
                d.cond_synchronize(ctx, cookie);
            }
            _ => {
                let cookie = d.start_poll(ctx);
                while !d.poll(cookie) {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
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
        match self.domain() {
            Some(d) => Cookie::Real(d.get_state()),
            None => Cookie::Busted,
        }
    }

    /// Has the cookie's grace period completed?
    pub fn poll(&self, cookie: Cookie) -> bool {
        match (self.domain(), cookie) {
            (Some(d), Cookie::Real(c)) => d.poll(c),
            _ => true,
        }
    }

    /// `call_rcu` with any token; busted runs the callback at once.
    pub fn call_rcu<C: Context, T: Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<Rcu<T>>,
        f: Callback<T>,
    ) {
        match self.domain() {
            Some(d) => d.call_rcu(ctx, obj, f),
            None => {
                // SAFETY: (1) dropped before returning; (2) no scope opened meanwhile.
                let atomic = unsafe { Atomic::assume() };
                f(obj, &atomic);
            }
        }
    }

    /// `kvfree_rcu` with any token; busted frees at once. (`busted-barrier`'s broken one is
    /// `frees::busted_kvfree`, for the tracked values only.)
    pub fn kvfree_rcu<C: Context, T: Send + 'static>(&self, ctx: &C, obj: Box<Rcu<T>>) {
        match self.domain() {
            Some(d) => d.kvfree_rcu(ctx, obj),
            None => drop(obj),
        }
    }

    /// `kvfree_rcu_mightsleep` with a token that may sleep; busted frees at once.
    pub fn kvfree_rcu_mightsleep<C: MaySleep, T: Send + 'static>(&self, ctx: &C, obj: Box<T>) {
        match self.domain() {
            Some(d) => d.kvfree_rcu_mightsleep(ctx, obj),
            None => drop(obj),
        }
    }

    /// `rcu_barrier`.
    pub fn barrier(&self, ctx: &Sleepable) {
        if let Some(d) = self.domain() {
            d.rcu_barrier(ctx);
        }
    }

    /// Grace periods completed.
    pub fn gp_completed(&self) -> u64 {
        match self {
            // Relaxed: a statistic.
            Flavor::Busted(gps) => gps.load(Ordering::Relaxed),
            _ => self.domain().map_or(0, |d| d.stats().gp_completed),
        }
    }
}
