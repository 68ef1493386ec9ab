//! Reader threads: the core check. Inside each read section a reader loads the current
//! element, optionally waits, and checks it: not poisoned, not reused (same generation at
//! start and end), and its age (grace periods completed since its retirement) at most 1.
//! An older age means a grace period ended while this reader, which began before it, still
//! held the element: a too-short grace period.
//!
//! These are the classic flavors' readers; the sleepable flavors' (`srcu_readers.rs`) and the
//! QSBR flavors' (`qsbr_readers.rs`) load and check with [`look`] and [`check`] too, and
//! their busted fakes hold what they load with [`hold_until_writer_moves_on`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcu_core::Sleepable;

use super::arena::{Arena, MAGIC, PIPE_LEN};
use super::config::Config;
use super::flavor::{Cookie, Flavor};
use super::report::{Check, Counters};
use super::rng::Rng;

/// What readers share with the writer.
#[derive(Debug)]
pub struct Published {
    /// Index of the current element in the arena.
    pub current: AtomicUsize,
    /// Elements the writer has published so far (the `updates` counter also counts the map
    /// test's writes).
    pub count: AtomicU64,
}

/// What a reader saw at the start of its section: checked before the section ends.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// The element.
    pub index: usize,
    /// Its generation when loaded.
    pub generation: u64,
    /// A grace-period cookie taken inside the section, before the load.
    pub cookie: Cookie,
}

/// Who checks: a reader, and the reader whose section it finishes if it was handed over.
#[derive(Clone, Copy, Debug)]
pub struct Who {
    /// The reader that checks (and ends the section).
    pub id: u64,
    /// The reader that began the section, if another one.
    pub from: Option<u64>,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.from {
            Some(from) => write!(f, "reader {} (section begun by reader {from})", self.id),
            None => write!(f, "reader {}", self.id),
        }
    }
}

/// At the start of a section (the caller is inside it): takes a cookie, loads the current
/// element and notes its generation.
pub fn look(flavor: &Flavor, arena: &Arena, published: &Published) -> Seen {
    let cookie = flavor.get_state();
    // Acquire: pairs with the writer's Release store: the element's initialisation (MAGIC,
    // age 0, generation) is visible.
    let index = published.current.load(Ordering::Acquire);
    // Relaxed (element fields): a racing writer is exactly what is being checked; ordering
    // comes from the read section itself.
    let generation = arena.get(index).generation.load(Ordering::Relaxed);
    Seen { index, generation, cookie }
}

/// Before the section of `seen` ends (the caller is still inside it, on whichever thread):
/// the element's age, poison and generation, and the cookie.
pub fn check(
    who: Who,
    seen: &Seen,
    config: &Config,
    flavor: &Flavor,
    arena: &Arena,
    counters: &Counters,
) {
    let e = arena.get(seen.index);
    let index = seen.index;
    // Relaxed: as in `look`.
    let age = e.age.load(Ordering::Relaxed);
    let magic = e.magic.load(Ordering::Relaxed);
    let generation_end = e.generation.load(Ordering::Relaxed);
    if config.tests.age {
        Counters::bump(&counters.ages[age.min(PIPE_LEN) as usize]);
        if age > 1 {
            counters.fail_check(
                Check::Age,
                format!(
                    "{who}: element {index} aged {age} grace periods inside one read section \
                     (too-short grace period)"
                ),
            );
        }
        if magic != MAGIC {
            counters.fail_check(
                Check::Age,
                format!("{who}: element {index} was freed (poisoned) while a reader held it"),
            );
        } else if generation_end != seen.generation {
            counters.fail_check(
                Check::Age,
                format!("{who}: element {index} was freed and reused while a reader held it"),
            );
        }
    }
    if config.tests.polled && flavor.poll(seen.cookie) {
        counters.fail_check(
            Check::Polled,
            format!(
                "{who}: a grace-period cookie taken inside a read section completed before \
                 the section ended"
            ),
        );
    }
}

/// The busted fakes (`srcu-busted`, `qsbr-busted`): a reader holds its element until the
/// writer has published this many more. More than the pipeline: every element retired
/// meanwhile and aged by grace periods is aged past 1 and freed (four iterations in five age
/// by a grace period, `writer.rs`).
pub const BUSTED_HOLD: u64 = PIPE_LEN as u64 + 2;
/// The busted fakes: the longest a reader waits for the writer to get that far.
pub const BUSTED_HOLD_MAX: Duration = Duration::from_millis(250);

/// The busted fakes' hold: until the writer has published [`BUSTED_HOLD`] more elements or
/// [`BUSTED_HOLD_MAX`] has passed, in short naps (`nap` sleeps as the caller may). Not cut
/// short when the run stops: the writer then ages every element it retired to the end and
/// frees it (its drain), so a hold open across the stop sees its element freed too.
pub fn hold_until_writer_moves_on(published: &Published, nap: impl Fn(Duration)) {
    let since = Counters::get(&published.count);
    let start = Instant::now();
    while Counters::get(&published.count) < since + BUSTED_HOLD && start.elapsed() < BUSTED_HOLD_MAX
    {
        nap(Duration::from_micros(100));
    }
}

/// Runs one reader until `stop`.
pub fn run(
    id: u64,
    config: &Config,
    flavor: &Flavor,
    arena: &Arena,
    published: &Published,
    counters: &Counters,
    stop: &AtomicBool,
) {
    let mut ctx = Sleepable::enter();
    let mut rng = Rng::new(config.seed, 100 + id);
    // Relaxed: a stop flag; nothing is published through it.
    while !stop.load(Ordering::Relaxed) {
        let long = rng.one_in(config.long_delay_every);
        let short = rng.one_in(config.short_delay_every);
        let nest = rng.one_in(8);
        flavor.read(&mut ctx, |atomic| {
            let seen = look(flavor, arena, published);
            if long {
                std::thread::sleep(config.long_delay);
            } else if short {
                for _ in 0..(rng.next_u64() % 2000) {
                    core::hint::spin_loop();
                }
            }
            if nest {
                flavor.read_nested(atomic, || {
                    // Acquire: as the outer load; only the nesting is exercised here.
                    let _ = published.current.load(Ordering::Acquire);
                });
            }
            check(Who { id, from: None }, &seen, config, flavor, arena, counters);
        });
        Counters::bump(&counters.reads);
    }
}
