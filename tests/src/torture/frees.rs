//! Tracked deferred frees, and what `rcu_barrier` promises for them: every value queued
//! before the barrier, on any thread, was dropped *and* its memory deallocated when it
//! returned. The runtime may split a free (the worker drops, the queueing thread deallocates
//! later, the barrier finishes what is left), so counting drops alone would miss a barrier
//! that returns with deallocations still waiting.
//!
//! Updaters queue [`Tracked`] values with `kvfree_rcu` (headed) and `kvfree_rcu_mightsleep`
//! (headless), with every token of the run, on the tortured domain and, when that is a
//! private one, on the global domain too. Under the sleepable flavors the tortured domain's
//! are `kvfree_srcu` and `kvfree_srcu_mightsleep`, and the tokens include a section's own
//! (`TokenKind::Section`, headed only: a headless free may wait for the domain). Each
//! (updater, domain) pair has a lane (`alloc.rs`): values are numbered, served from the
//! counting allocator's slab, and their drops and deallocations counted per value. A lane's values cycle through every mode
//! (token and kind), starting with one of each.
//!
//! A barrier round snapshots, per lane, how many values had been queued (their queueing
//! calls returned: Release/Acquire on `queued`), calls `rcu_barrier`, and judges the values
//! not judged before: each must be dropped and deallocated. After the run, the final
//! `rcu_barrier` must have finished every value of the run.
//!
//! The `busted-barrier` flavor's headed free lives here too (`busted_kvfree`): it splits
//! the free as the runtime does but leaves the deallocations to the queueing thread's next
//! block boundary and never to the barrier, so that the check is seen to fail.

use std::alloc::Layout;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::{Domain, MayWaitFor, Policy, SectionState, Unbranded};

use super::alloc::{self, Fate, Lane};
use super::config::{Config, FlavorKind, TokenKind};
use super::flavor::Flavor;
use super::report::{Check, Counters};
use super::Shared;

/// How a value is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `kvfree_rcu` of a `Box<Rcu<Tracked>>`.
    Headed,
    /// `kvfree_rcu_mightsleep` of a `Box<Tracked>` (needs a token that may sleep).
    Headless,
}

/// A token and a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// The token the free is queued with.
    pub token: TokenKind,
    /// Headed or headless.
    pub kind: Kind,
}

impl Mode {
    /// `api/token`, e.g. `kvfree_rcu/noreclaim`, or on a sleepable domain (`srcu`)
    /// `kvfree_srcu/section`.
    pub fn label(self, srcu: bool) -> String {
        let api = match (self.kind, srcu) {
            (Kind::Headed, false) => "kvfree_rcu",
            (Kind::Headless, false) => "kvfree_rcu_mightsleep",
            (Kind::Headed, true) => "kvfree_srcu",
            (Kind::Headless, true) => "kvfree_srcu_mightsleep",
        };
        format!("{api}/{}", self.token.name())
    }
}

/// Which domain a lane queues on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The flavor's domain.
    Own,
    /// The global domain, besides a private flavor domain.
    Global,
}

/// A value queued for a deferred free: its drop is counted in its slot's books.
#[derive(Debug)]
pub struct Tracked {
    lane: &'static Lane,
    seq: u64,
    /// About the size of a small real object.
    _payload: [u64; 5],
}

const _: () = assert!(
    size_of::<Rcu<Tracked>>() <= alloc::SLOT && align_of::<Rcu<Tracked>>() <= alloc::SLOT_ALIGN
);

impl Drop for Tracked {
    fn drop(&mut self) {
        alloc::note_drop(self.lane, self.seq);
    }
}

/// One lane as a run uses it.
#[derive(Debug)]
pub struct LaneUse {
    lane: &'static Lane,
    /// The domain it queues on.
    pub target: Target,
    /// The updater that queues on it.
    pub updater: u64,
    /// The number of its first value in this run.
    first: u64,
    /// One past the last value whose queueing call has returned.
    queued: AtomicU64,
    /// Every value below is known dropped and deallocated.
    complete: AtomicU64,
    /// Every value below was judged by a barrier round.
    judged: AtomicU64,
    /// Headed frees queued by the `busted-barrier` fake (its block boundaries).
    busted_calls: AtomicU64,
}

/// The run's tracked frees.
#[derive(Debug)]
pub struct Frees {
    modes: Vec<Mode>,
    targets: Vec<Target>,
    lanes: Vec<LaneUse>,
    /// Values queued per (target, mode), `targets` major.
    queued_by: Vec<AtomicU64>,
    /// Times an updater waited for a lane's oldest value to be deallocated.
    ring_waits: AtomicU64,
    /// Values judged by barrier rounds.
    judged_in_rounds: AtomicU64,
}

/// What a run's tracked frees amounted to, for the summary.
#[derive(Clone, Debug, Default)]
pub struct FreesReport {
    /// Values queued.
    pub queued: u64,
    /// Values judged by the first barrier round after them.
    pub judged_in_rounds: u64,
    /// Values queued per domain (its name) and mode (its label).
    pub by: Vec<(&'static str, String, u64)>,
    /// Times an updater waited for a lane's oldest value.
    pub ring_waits: u64,
}

/// Values judged by one barrier: how many, which were not finished, the first of those.
#[derive(Debug, Default)]
struct Verdict {
    judged: u64,
    not_deallocated: u64,
    not_dropped: u64,
    first: Option<u64>,
}

impl Frees {
    /// Claims the lanes of `config`'s updaters: one per domain they queue on.
    ///
    /// # Panics
    /// If the counting allocator is not the global allocator, or too few lanes are free.
    pub fn new(config: &Config) -> Frees {
        let mut modes = Vec::new();
        for kind in [Kind::Headed, Kind::Headless] {
            for &token in &config.tokens {
                // kvfree_rcu_mightsleep may wait: not with a token that may not sleep, nor
                // inside a section of the domain it may wait for.
                if kind == Kind::Headed || !matches!(token, TokenKind::Atomic | TokenKind::Section)
                {
                    modes.push(Mode { token, kind });
                }
            }
        }
        let mut targets = vec![Target::Own];
        if matches!(config.flavor, FlavorKind::Custom | FlavorKind::BustedBarrier)
            || config.flavor.is_sleepable()
            || config.flavor.is_qsbr()
        {
            targets.push(Target::Global);
        }
        let updaters = if config.tests.callbacks { config.updaters as u64 } else { 0 };
        if updaters > 0 {
            assert!(
                alloc::installed(),
                "rcutorture: rcu_tests::torture::alloc::CountingAlloc must be this process's \
                 #[global_allocator]: the barrier check counts deallocations with it"
            );
        }
        let mut lanes = Vec::new();
        for updater in 0..updaters {
            for &target in &targets {
                let lane = Lane::claim().unwrap_or_else(|| {
                    panic!(
                        "rcutorture: all {} lanes of tracked frees are taken (one per updater \
                         and domain, over every run in this process): run fewer updaters",
                        alloc::LANES
                    )
                });
                let first = lane.next();
                lanes.push(LaneUse {
                    lane,
                    target,
                    updater,
                    first,
                    queued: AtomicU64::new(first),
                    complete: AtomicU64::new(first),
                    judged: AtomicU64::new(first),
                    busted_calls: AtomicU64::new(0),
                });
            }
        }
        let queued_by = (0..targets.len() * modes.len()).map(|_| AtomicU64::new(0)).collect();
        Frees {
            modes,
            targets,
            lanes,
            queued_by,
            ring_waits: AtomicU64::new(0),
            judged_in_rounds: AtomicU64::new(0),
        }
    }

    /// The domains barrier rounds cover: the flavor's, then the global one if it is not.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The modes values cycle through.
    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }

    /// Updater `id`'s lanes.
    pub fn lanes_of(&self, id: u64) -> impl Iterator<Item = &LaneUse> {
        self.lanes.iter().filter(move |l| l.updater == id)
    }

    /// Before a barrier on `target`: how far each of its lanes had queued.
    pub fn snapshot(&self, target: Target) -> Vec<(usize, u64)> {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| l.target == target)
            // Acquire: pairs with the Release store in `queue_next`: those queueing calls
            // returned before the barrier the caller is about to start.
            .map(|(i, l)| (i, l.queued.load(Ordering::Acquire)))
            .collect()
    }

    /// After the barrier of a round on `target`: every value of `snapshot` not judged before
    /// must be dropped and deallocated. One failure per lane that has any that are not.
    pub fn judge_round(
        &self,
        target: Target,
        snapshot: &[(usize, u64)],
        flavor: &Flavor,
        counters: &Counters,
    ) {
        for &(i, upto) in snapshot {
            let lane = &self.lanes[i];
            // Relaxed (`judged`, `complete`): only the barrier thread uses them during the
            // run; `finish` after joining it.
            let from = lane.judged.load(Ordering::Relaxed);
            let v = lane.judge(from, upto);
            lane.judged.store(upto, Ordering::Relaxed);
            counters_add(&self.judged_in_rounds, v.judged);
            if let Some(first) = v.first {
                counters.fail_check(
                    Check::Barrier,
                    format!(
                        "rcu_barrier on the {} domain returned before {} of the {} deferred \
                         frees updater {} queued before it had finished: {} dropped but not \
                         deallocated, {} not dropped; first: value {} ({})",
                        target_name(target, flavor),
                        v.not_deallocated + v.not_dropped,
                        v.judged,
                        lane.updater,
                        v.not_deallocated,
                        v.not_dropped,
                        first - lane.first,
                        self.mode_of(lane, first).label(is_srcu(target, flavor)),
                    ),
                );
            }
        }
    }

    /// After the run's final barriers: every value of the run must be dropped and
    /// deallocated. Failures go to `check`.
    pub fn judge_final(&self, flavor: &Flavor, counters: &Counters, check: Check) {
        for lane in &self.lanes {
            // Relaxed: the updaters were joined.
            let upto = lane.queued.load(Ordering::Relaxed);
            let from = lane.complete.load(Ordering::Relaxed);
            let v = lane.judge(from, upto);
            if let Some(first) = v.first {
                counters.fail_check(
                    check,
                    format!(
                        "the final rcu_barrier on the {} domain returned before {} of updater \
                         {}'s {} deferred frees had finished: {} dropped but not deallocated, \
                         {} not dropped; first: value {} ({})",
                        target_name(lane.target, flavor),
                        v.not_deallocated + v.not_dropped,
                        lane.updater,
                        upto - lane.first,
                        v.not_deallocated,
                        v.not_dropped,
                        first - lane.first,
                        self.mode_of(lane, first).label(is_srcu(lane.target, flavor)),
                    ),
                );
            }
        }
    }

    /// Failures the allocator counted: values freed twice, before their drop, or with the
    /// wrong layout. Reported under `check`.
    pub fn judge_anomalies(&self, counters: &Counters, check: Check) {
        for lane in &self.lanes {
            let a = lane.lane.anomalies();
            if a != alloc::Anomalies::default() {
                counters.fail_check(
                    check,
                    format!(
                        "deferred frees of updater {} on lane {}: {} deallocated with another \
                         layout or address, {} deallocated before being dropped, {} dropped or \
                         deallocated more than once",
                        lane.updater,
                        lane.lane.index(),
                        a.bad_deallocs,
                        a.undropped_deallocs,
                        a.extra_frees
                    ),
                );
            }
        }
    }

    /// Gives back the lanes whose every value finished (the others stay claimed: a late
    /// free must not be counted against a later run).
    pub fn release(&self) {
        for lane in &self.lanes {
            // Relaxed: the updaters and the barrier thread were joined.
            let queued = lane.queued.load(Ordering::Relaxed);
            if lane.complete.load(Ordering::Relaxed) == queued
                && lane.lane.next() == queued
                && lane.lane.anomalies() == alloc::Anomalies::default()
            {
                lane.lane.release();
            }
        }
    }

    /// The summary's figures.
    pub fn report(&self, flavor: &Flavor) -> FreesReport {
        let mut by = Vec::new();
        for (t, &target) in self.targets.iter().enumerate() {
            for (m, mode) in self.modes.iter().enumerate() {
                let n = Counters::get(&self.queued_by[t * self.modes.len() + m]);
                by.push((target_name(target, flavor), mode.label(is_srcu(target, flavor)), n));
            }
        }
        FreesReport {
            queued: by.iter().map(|(_, _, n)| n).sum(),
            judged_in_rounds: Counters::get(&self.judged_in_rounds),
            by,
            ring_waits: Counters::get(&self.ring_waits),
        }
    }

    fn mode_of(&self, lane: &LaneUse, seq: u64) -> Mode {
        self.modes[((seq - lane.first) % self.modes.len() as u64) as usize]
    }
}

fn counters_add(c: &AtomicU64, n: u64) {
    // Relaxed: a statistic.
    c.fetch_add(n, Ordering::Relaxed);
}

/// Whether `target` is a sleepable domain.
fn is_srcu(target: Target, flavor: &Flavor) -> bool {
    target == Target::Own && flavor.is_sleepable()
}

fn target_name(target: Target, flavor: &Flavor) -> &'static str {
    match target {
        Target::Own => flavor.name(),
        Target::Global => "global",
    }
}

impl LaneUse {
    /// Judges values `from..upto`, moving `complete` past those finished in a row from it.
    fn judge(&self, from: u64, upto: u64) -> Verdict {
        // Relaxed: see `judge_round`.
        let mut complete = self.complete.load(Ordering::Relaxed);
        while complete < from && self.lane.fate(complete) == Fate::Done {
            complete += 1;
        }
        let mut v = Verdict { judged: upto.saturating_sub(from), ..Verdict::default() };
        for seq in from..upto {
            match self.lane.fate(seq) {
                Fate::Done => {
                    if complete == seq {
                        complete += 1;
                    }
                    continue;
                }
                Fate::Dropped => v.not_deallocated += 1,
                Fate::Pending => v.not_dropped += 1,
            }
            v.first.get_or_insert(seq);
        }
        // Relaxed: as above.
        self.complete.store(complete, Ordering::Relaxed);
        v
    }
}

/// Queues the next value of `lane`. Returns false, queueing nothing, if `stop` came while
/// the lane's oldest value was still not deallocated.
pub fn queue_next(shared: &Shared, lane: &LaneUse, ctx: &mut Sleepable, stop: &AtomicBool) -> bool {
    let frees = &shared.frees;
    let seq = lane.lane.next();
    let m = ((seq - lane.first) % frees.modes.len() as u64) as usize;
    let mode = frees.modes[m];
    let layout = match mode.kind {
        Kind::Headed => Layout::new::<Rcu<Tracked>>(),
        Kind::Headless => Layout::new::<Tracked>(),
    };
    let armed = loop {
        if let Some(armed) = lane.lane.arm(layout) {
            break armed;
        }
        Counters::bump(&frees.ring_waits);
        // Relaxed: a stop flag.
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    let value = Tracked { lane: lane.lane, seq, _payload: [seq; 5] };
    match mode.kind {
        Kind::Headed => {
            let obj = Rcu::boxed(value);
            if !armed.served(&*obj as *const Rcu<Tracked> as *const u8) {
                std::mem::forget(obj);
                panic!("rcutorture: a tracked value was not served from the counting slab");
            }
            kvfree_headed(shared, lane, ctx, mode.token, obj);
        }
        Kind::Headless => {
            let obj = Box::new(value);
            if !armed.served(&*obj as *const Tracked as *const u8) {
                std::mem::forget(obj);
                panic!("rcutorture: a tracked value was not served from the counting slab");
            }
            kvfree_headless(shared, lane, ctx, mode.token, obj);
        }
    }
    // Release: pairs with the Acquire load in `Frees::snapshot`.
    lane.queued.store(seq + 1, Ordering::Release);
    let t = frees.targets.iter().position(|&t| t == lane.target).expect("a lane's target");
    Counters::bump(&frees.queued_by[t * frees.modes.len() + m]);
    true
}

fn kvfree_headed(
    shared: &Shared,
    lane: &LaneUse,
    ctx: &mut Sleepable,
    token: TokenKind,
    obj: Box<Rcu<Tracked>>,
) {
    match token {
        TokenKind::Sleepable => kvfree_headed_with(shared, lane, &*ctx, obj),
        TokenKind::NoReclaim => kvfree_headed_with(shared, lane, &ctx.no_reclaim(), obj),
        TokenKind::Atomic => kvfree_headed_with(shared, lane, &ctx.atomic(), obj),
        // A section of the tortured sleepable domain: on that domain, its own section's token
        // (which never waits for it); on the global domain, the token of another domain's
        // sleepable section.
        TokenKind::Section => {
            shared.flavor.in_section(ctx, |section| kvfree_headed_with(shared, lane, section, obj))
        }
    }
}

fn kvfree_headed_with<C: SectionState<Unbranded>>(
    shared: &Shared,
    lane: &LaneUse,
    ctx: &C,
    obj: Box<Rcu<Tracked>>,
) {
    match (lane.target, &shared.flavor) {
        (Target::Global, _) => Domain::global().kvfree_rcu(ctx, obj),
        (Target::Own, Flavor::BustedBarrier(domain)) => busted_kvfree(lane, domain, ctx, obj),
        (Target::Own, flavor) => flavor.kvfree_rcu(ctx, obj),
    }
}

fn kvfree_headless(
    shared: &Shared,
    lane: &LaneUse,
    ctx: &mut Sleepable,
    token: TokenKind,
    obj: Box<Tracked>,
) {
    match token {
        TokenKind::Sleepable => kvfree_headless_with(shared, lane, &*ctx, obj),
        TokenKind::NoReclaim => kvfree_headless_with(shared, lane, &ctx.no_reclaim(), obj),
        TokenKind::Atomic | TokenKind::Section => {
            unreachable!("modes pair kvfree_rcu_mightsleep with tokens that may wait")
        }
    }
}

fn kvfree_headless_with<C: MayWaitFor<Unbranded>>(
    shared: &Shared,
    lane: &LaneUse,
    ctx: &C,
    obj: Box<Tracked>,
) {
    match lane.target {
        Target::Global => Domain::global().kvfree_rcu_mightsleep(ctx, obj),
        Target::Own => shared.flavor.kvfree_rcu_mightsleep(ctx, obj),
    }
}

/// The `busted-barrier` fake's given-back values, per lane: dropped, not yet deallocated.
/// Linked through their first word (their memory is unused once their value is dropped).
static GIVEN_BACK: [AtomicPtr<u8>; alloc::LANES] =
    [const { AtomicPtr::new(ptr::null_mut()) }; alloc::LANES];

/// How often (in headed frees) the fake's queueing thread deallocates what was given back.
const BUSTED_BLOCK: u64 = 64;

/// The `busted-barrier` flavor's `kvfree_rcu`: a real `call_rcu` whose callback drops the
/// value and gives its memory back to the queueing thread, which deallocates it at its next
/// "block boundary" (every `BUSTED_BLOCK` frees, under a token that may allocate) and never
/// anywhere else: the real `rcu_barrier` waits for the drop and knows nothing of the rest,
/// as a barrier that skips `finish_given_back` would.
///
/// The final check fails whatever the timing: the queueing thread's last boundary comes
/// before its last free is queued (the boundary runs first), that value is dropped after
/// its grace period, later, and nothing deallocates it after that.
fn busted_kvfree<C: Context>(lane: &LaneUse, domain: &Domain, ctx: &C, obj: Box<Rcu<Tracked>>) {
    // Relaxed: only the lane's updater counts.
    let call = lane.busted_calls.fetch_add(1, Ordering::Relaxed);
    if Policy::of::<C>().may_alloc() && call % BUSTED_BLOCK == 0 {
        busted_finish_given_back(lane.lane);
    }
    domain.call_rcu(ctx, obj, busted_drop);
}

fn busted_drop(obj: Box<Rcu<Tracked>>, _ctx: &Atomic<'_>) {
    let lane = obj.lane;
    let raw = Box::into_raw(obj);
    // SAFETY: `raw` is the box's own allocation, dropped here once; its memory stays
    // allocated until `busted_finish_given_back` deallocates it.
    unsafe { ptr::drop_in_place(raw) };
    let list = &GIVEN_BACK[lane.index()];
    // Relaxed: the CAS below validates it.
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the allocation is ours (its value is dropped and nothing else refers to
        // it), at least a pointer in size and aligned for one (`Rcu` starts with its head).
        unsafe { raw.cast::<*mut u8>().write(head) };
        // Release: publishes the link; pairs with the Acquire swap in
        // `busted_finish_given_back`.
        match list.compare_exchange_weak(head, raw.cast(), Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => head = now,
        }
    }
}

fn busted_finish_given_back(lane: &'static Lane) {
    // Acquire: pairs with the Release CAS in `busted_drop`: the links are visible.
    let mut p = GIVEN_BACK[lane.index()].swap(ptr::null_mut(), Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: pushed by `busted_drop`: a live allocation whose first word is the link.
        let next = unsafe { p.cast::<*mut u8>().read() };
        // SAFETY: a `Box<Rcu<Tracked>>`'s allocation (the global allocator, this layout),
        // whose value was dropped; taken off the list once, so deallocated once.
        unsafe { std::alloc::dealloc(p, Layout::new::<Rcu<Tracked>>()) };
        p = next;
    }
}
