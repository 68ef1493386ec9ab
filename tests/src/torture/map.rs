//! The `map` test: `rcu_collections::RcuHashMap` under torture.
//!
//! Readers look keys up and iterate, checking every value they see: its checksum (a torn or
//! freed value fails it: values are poisoned when dropped), that it belongs to the key it was
//! found under, and that the *stable* keys (inserted first, only ever updated, never removed)
//! are always found, so no resize or concurrent unlink can hide an entry. Two writers, on
//! disjoint halves of the *volatile* keys, insert (with `insert` and, under `Atomic`, with
//! preallocated nodes), update, compute and remove with every token of the run, in waves
//! that grow the map to thousands of entries and shrink it back, so the table resizes both
//! ways while readers run; each writer checks the map's answers against its own model of its
//! keys. At the end every value must have been dropped exactly once.
//!
//! Under the sleepable flavors the map lives on a sleepable domain of the run's reader
//! flavour: readers take borrowed or owned guards and some sleep in their section while
//! holding a value they read (which must stay intact), and the writers' tokens include the
//! token of one of the map domain's own sections.
//!
//! Under the QSBR flavors the map lives on a QSBR domain: its readers stay online across
//! rounds of lookups (the online handle is their guard), announce a quiescent state after
//! each round and go offline now and then; a value read at the start of a round is checked
//! again at its end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcu_collections::{Computed, Node, RcuHashMap};
use rcu_core::prelude::*;
use rcu_core::{
    AllocConfig, DomainConfig, Fast, Plain, QsbrDomain, RcuGuard, SleepableSection, SrcuStruct,
    Unbranded,
};

use super::config::TokenKind;
use super::flavor::Srcu;
use super::report::Check;
use super::rng::Rng;
use super::{Counters, Shared};

/// Keys `0..STABLE` are never removed.
const STABLE: u64 = 64;
/// Each writer's volatile keys: `STABLE + w * VOLATILE ..`.
const VOLATILE: u64 = 4096;
const WRITERS: u64 = 2;

/// Values made and dropped (the books checked at the end).
#[derive(Debug, Default)]
struct Books {
    made: AtomicU64,
    dropped: AtomicU64,
}

/// A value: knows its key, carries a checksum, poisoned on drop.
#[derive(Debug)]
struct Val {
    key: u64,
    gen: u64,
    check: u64,
    books: Arc<Books>,
}

fn check_of(key: u64, gen: u64) -> u64 {
    (key.rotate_left(23) ^ gen).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

impl Val {
    fn new(key: u64, gen: u64, books: &Arc<Books>) -> Self {
        // Relaxed: a count, read after the joins and a barrier.
        books.made.fetch_add(1, Ordering::Relaxed);
        Val { key, gen, check: check_of(key, gen), books: Arc::clone(books) }
    }

    /// Why this value, found under `key`, is bad (None: it is fine).
    fn fault(&self, key: u64) -> Option<String> {
        if self.check == POISON {
            Some(format!("key {key}: a dropped (poisoned) value was read"))
        } else if self.key != key {
            Some(format!("key {key}: found a value of key {}", self.key))
        } else if self.check != check_of(self.key, self.gen) {
            Some(format!("key {key}: torn value (generation {})", self.gen))
        } else {
            None
        }
    }
}

const POISON: u64 = 0xdead_dead_dead_dead;

impl Drop for Val {
    fn drop(&mut self) {
        self.check = POISON;
        // Relaxed: a count (see `new`).
        self.books.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The map's domain.
enum MapDomain {
    /// The global domain.
    Global,
    /// A classic domain of its own.
    Classic(Arc<Domain>),
    /// A sleepable domain of its own, fast readers.
    Fast(Arc<SrcuStruct<Fast>>),
    /// A sleepable domain of its own, plain readers.
    Plain(Arc<SrcuStruct<Plain>>),
    /// A QSBR domain of its own.
    Qsbr(Arc<QsbrDomain>),
}

/// The map under test and its domain.
struct Target {
    map: RcuHashMap<u64, Val>,
    domain: MapDomain,
}

/// Evaluates `$body` inside a read section of `$target`'s map, `$guard` bound to its guard:
/// an owned one (`down_read`) if `$owned` and the domain is sleepable, else a borrowed one
/// entered from `$ctx` (a `&mut Sleepable`); on a QSBR domain, an online handle taken for
/// the body. The body is compiled once per guard type.
macro_rules! with_guard {
    ($target:expr, $ctx:expr, $owned:expr, $guard:ident => $body:expr) => {
        match &$target.domain {
            MapDomain::Global => {
                let $guard = read_lock($ctx);
                $body
            }
            MapDomain::Classic(d) => {
                let $guard = d.read_lock($ctx);
                $body
            }
            MapDomain::Fast(s) if $owned => {
                let $guard = s.down_read(&*$ctx);
                $body
            }
            MapDomain::Fast(s) => {
                let $guard = s.read_lock($ctx);
                $body
            }
            MapDomain::Plain(s) if $owned => {
                let $guard = s.down_read(&*$ctx);
                $body
            }
            MapDomain::Plain(s) => {
                let $guard = s.read_lock($ctx);
                $body
            }
            MapDomain::Qsbr(d) => {
                let $guard = d.online($ctx);
                $body
            }
        }
    };
}

impl Target {
    fn domain(&self) -> &Domain {
        self.map.domain()
    }

    fn is_sleepable(&self) -> bool {
        matches!(self.domain, MapDomain::Fast(_) | MapDomain::Plain(_))
    }

    /// Runs `f` with the token of a section of the map's own (sleepable) domain.
    fn in_section<R>(
        &self,
        ctx: &mut Sleepable,
        f: impl FnOnce(&mut SleepableSection<'_, Unbranded, Sleepable>) -> R,
    ) -> R {
        match &self.domain {
            MapDomain::Fast(s) => {
                let mut guard = s.read_lock(ctx);
                f(guard.ctx_mut())
            }
            MapDomain::Plain(s) => {
                let mut guard = s.read_lock(ctx);
                f(guard.ctx_mut())
            }
            _ => unreachable!("the section token is in the sleepable flavors' mix only"),
        }
    }
}

impl MapDomain {
    /// `rcu_barrier` (`srcu_barrier`).
    fn barrier(&self, ctx: &Sleepable) {
        match self {
            MapDomain::Global => rcu_barrier(ctx),
            MapDomain::Classic(d) => d.rcu_barrier(ctx),
            MapDomain::Fast(s) => s.srcu_barrier(ctx),
            MapDomain::Plain(s) => s.srcu_barrier(ctx),
            MapDomain::Qsbr(d) => d.rcu_barrier(ctx),
        }
    }
}

/// Runs the map test until `stop`, then checks the books. Called on its own thread by
/// `torture::run` when the `map` test is on (it is not run under the busted flavor, which
/// protects nothing and would make every check fail).
pub fn run(shared: &Shared, stop: &AtomicBool) {
    let config = &shared.config;
    let mut alloc = AllocConfig::new().budget_bytes(config.budget);
    if config.small_blocks {
        alloc = alloc.small_blocks();
    }
    let domain_config = DomainConfig::new().name("torture-map").alloc(alloc);
    let domain = match (config.flavor, shared.flavor.reader_srcu()) {
        (super::FlavorKind::Global, _) => MapDomain::Global,
        (flavor, _) if flavor.is_qsbr() => {
            MapDomain::Qsbr(Arc::new(QsbrDomain::new(domain_config)))
        }
        (_, None) => MapDomain::Classic(Arc::new(Domain::new(domain_config))),
        (_, Some(Srcu::Fast(_))) => MapDomain::Fast(Arc::new(SrcuStruct::new(domain_config))),
        (_, Some(Srcu::Plain(_))) => MapDomain::Plain(Arc::new(SrcuStruct::new(domain_config))),
    };
    let map = match &domain {
        MapDomain::Global => RcuHashMap::new(),
        MapDomain::Classic(d) => {
            RcuHashMap::with_capacity_and_hasher_in(0, Default::default(), Arc::clone(d))
        }
        MapDomain::Fast(s) => {
            RcuHashMap::with_capacity_and_hasher_in(0, Default::default(), Arc::clone(s))
        }
        MapDomain::Plain(s) => {
            RcuHashMap::with_capacity_and_hasher_in(0, Default::default(), Arc::clone(s))
        }
        MapDomain::Qsbr(d) => {
            RcuHashMap::with_capacity_and_hasher_in(0, Default::default(), Arc::clone(d))
        }
    };
    let target = Arc::new(Target { map, domain });
    let books = Arc::new(Books::default());
    let counters = &shared.counters;
    {
        let mut ctx = Sleepable::enter();
        for key in 0..STABLE {
            target.map.insert(&mut ctx, key, Val::new(key, 0, &books));
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..config.readers.max(1) as u64)
            .map(|id| {
                let (target, done) = (&target, &done);
                s.spawn(move || reader(id, target, counters, done, config.seed))
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (target, books) = (&target, &books);
                let tokens = config.tokens.clone();
                s.spawn(move || writer(w, target, books, counters, stop, &tokens, config.seed))
            })
            .collect();
        for w in writers {
            if w.join().is_err() {
                counters.fail_check(Check::Map, "map: a writer panicked");
            }
        }
        // Relaxed: a stop flag; the joins below order the rest.
        done.store(true, Ordering::Relaxed);
        // Joined explicitly (`pthread_join`), not by the end of the scope (std's own atomics
        // and futex): ThreadSanitizer sees the former, so it sees the readers' last reads
        // ordered before the map's drop below.
        for r in readers {
            if r.join().is_err() {
                counters.fail_check(Check::Map, "map: a reader panicked");
            }
        }
    });
    let ctx = Sleepable::enter();
    let target = Arc::try_unwrap(target).unwrap_or_else(|_| panic!("map: threads joined"));
    let Target { map, domain } = target;
    drop(map);
    domain.barrier(&ctx);
    // Relaxed: counts; every writer and reader joined, and the barrier ran the frees.
    let (made, dropped) =
        (books.made.load(Ordering::Relaxed), books.dropped.load(Ordering::Relaxed));
    if made != dropped {
        counters.fail_check(Check::Map, format!("map: {made} values made but {dropped} dropped"));
    }
    if made == 0 {
        counters.fail_check(Check::Map, "map: the writers made no values");
    }
}

fn reader(id: u64, target: &Target, counters: &Counters, done: &AtomicBool, seed: u64) {
    let mut rng = Rng::new(seed, 0x3a9 + id);
    let mut ctx = Sleepable::enter();
    if let MapDomain::Qsbr(d) = &target.domain {
        return reader_online(target, d, &mut ctx, &mut rng, counters, done);
    }
    let sleepable = target.is_sleepable();
    loop {
        // Sleepable: half the rounds under an owned guard, a quarter sleep up to 2 ms.
        let owned = sleepable && rng.one_in(2);
        let nap = (sleepable && rng.one_in(4))
            .then(|| Duration::from_micros(rng.next_u64() % 2001))
            .filter(|d| !d.is_zero());
        with_guard!(target, &mut ctx, owned, guard => {
            read_round(target, &guard, &mut rng, counters, nap)
        });
        // Relaxed: a stop flag.
        if done.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// A reader of a map on a QSBR domain: online across rounds, a quiescent state after each,
/// and one round in 16 followed by a short offline sleep.
fn reader_online(
    target: &Target,
    domain: &QsbrDomain,
    ctx: &mut Sleepable,
    rng: &mut Rng,
    counters: &Counters,
    done: &AtomicBool,
) {
    let mut online = domain.online(ctx);
    loop {
        read_round(target, &online, rng, counters, None);
        online.quiescent_state();
        // Relaxed: a stop flag.
        if done.load(Ordering::Relaxed) {
            return;
        }
        if rng.one_in(16) {
            let offline = online.offline();
            rcu_core::might_sleep(); // offline: it may
            std::thread::sleep(Duration::from_micros(rng.next_u64() % 501));
            online = offline.online(ctx);
        }
    }
}

/// One round of lookups (and now and then an iteration) under `guard`; a stable key's value
/// read first is checked again at the end, after the nap if there is one (sleepable only).
fn read_round(
    target: &Target,
    guard: &impl RcuGuard,
    rng: &mut Rng,
    counters: &Counters,
    nap: Option<Duration>,
) {
    let held_key = rng.next_u64() % STABLE;
    let held = target.map.get(&held_key, guard);
    if held.is_none() {
        counters.fail_check(Check::Map, format!("map reader: stable key {held_key} not found"));
    }
    for _ in 0..256 {
        let key = rng.next_u64() % (STABLE + WRITERS * VOLATILE);
        match target.map.get(&key, guard) {
            Some(v) => {
                if let Some(fault) = v.fault(key) {
                    counters.fail_check(Check::Map, format!("map reader: {fault}"));
                }
            }
            None if key < STABLE => {
                counters.fail_check(Check::Map, format!("map reader: stable key {key} not found"))
            }
            None => {}
        }
        Counters::bump(&counters.reads);
    }
    if rng.one_in(64) {
        let mut stable = 0;
        for (k, v) in target.map.iter(guard) {
            if let Some(fault) = v.fault(*k) {
                counters.fail_check(Check::Map, format!("map iterator: {fault}"));
            }
            stable += u64::from(*k < STABLE);
        }
        // Each stable key at least once (twice is allowed during a resize).
        if stable < STABLE {
            counters
                .fail_check(Check::Map, format!("map iterator: {stable} of {STABLE} stable keys"));
        }
    }
    if let Some(d) = nap {
        // Inside a sleepable section (`reader` naps only there): it may block.
        rcu_core::might_sleep();
        std::thread::sleep(d);
    }
    if let Some(fault) = held.and_then(|v| v.fault(held_key)) {
        counters.fail_check(
            Check::Map,
            format!("map reader, a value held to the section's end: {fault}"),
        );
    }
}

/// One writer's operations, with the token `kind`.
fn writer(
    w: u64,
    target: &Target,
    books: &Arc<Books>,
    counters: &Counters,
    stop: &AtomicBool,
    tokens: &[TokenKind],
    seed: u64,
) {
    let mut rng = Rng::new(seed, 0x77 + w);
    let mut ctx = Sleepable::enter();
    target.domain().register_current_thread(&ctx);
    let base = STABLE + w * VOLATILE;
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut gen = 0u64;
    let mut growing = true;
    let mut round = 0usize;
    // Relaxed: a stop flag.
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        // Waves: grow to nearly all keys, then shrink to a few, so the table resizes both ways.
        if growing && model.len() as u64 >= VOLATILE * 9 / 10 {
            growing = false;
        } else if !growing && model.len() < 16 {
            growing = true;
        }
        let key = base + rng.next_u64() % VOLATILE;
        gen += 1;
        let kind = tokens[round % tokens.len()];
        let roll = rng.next_u64() % 100;
        let insert = if growing { roll < 70 } else { roll < 25 };
        let fail = |what: &str| {
            counters.fail_check(Check::Map, format!("map writer {w}: {what} of key {key}"))
        };
        if insert {
            let fresh = match kind {
                TokenKind::Sleepable => target.map.insert(&mut ctx, key, Val::new(key, gen, books)),
                TokenKind::NoReclaim => {
                    target.map.insert(&mut ctx.no_reclaim(), key, Val::new(key, gen, books))
                }
                TokenKind::Atomic => {
                    let node = Node::boxed(key, Val::new(key, gen, books));
                    target.map.insert_node(&mut ctx.atomic(), node)
                }
                TokenKind::Section => target.in_section(&mut ctx, |section| {
                    target.map.insert(section, key, Val::new(key, gen, books))
                }),
            };
            if fresh != model.insert(key, gen).is_none() {
                fail("insert disagreed with the model");
            }
        } else if roll < 85 {
            let removed = match kind {
                TokenKind::Sleepable => target.map.remove(&mut ctx, &key),
                TokenKind::NoReclaim => target.map.remove(&mut ctx.no_reclaim(), &key),
                TokenKind::Atomic => target.map.remove(&mut ctx.atomic(), &key),
                TokenKind::Section => {
                    target.in_section(&mut ctx, |section| target.map.remove(section, &key))
                }
            };
            if removed != model.remove(&key).is_some() {
                fail("remove disagreed with the model");
            }
        } else if roll < 93 {
            let updated = target.map.update(&mut ctx, &key, |v| Val::new(key, v.gen + 1, books));
            match model.get_mut(&key) {
                Some(g) if updated => *g += 1,
                None if !updated => {}
                _ => fail("update disagreed with the model"),
            }
        } else {
            let got = target.map.compute(&mut ctx.no_reclaim(), key, |v| {
                v.is_none().then(|| Val::new(key, gen, books))
            });
            let expect = match model.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    e.remove();
                    Computed::Removed
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(gen);
                    Computed::Inserted
                }
            };
            if got != expect {
                fail("compute disagreed with the model");
            }
        }
        if round % 64 == 0 {
            // Atomic writes only record a due resize; run it.
            target.map.maintain(&mut ctx);
            // Check this writer's keys against its model.
            with_guard!(target, &mut ctx, false, guard => {
                for probe in 0..8 {
                    let key = base + (rng.next_u64() + probe) % VOLATILE;
                    let got = target.map.get(&key, &guard).map(|v| v.gen);
                    if got.is_some() != model.contains_key(&key) {
                        counters.fail_check(
                            Check::Map,
                            format!("map writer {w}: key {key} present {:?}", got),
                        );
                    }
                }
            });
        }
        Counters::bump(&counters.updates);
    }
}
