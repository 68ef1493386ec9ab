//! Reader threads: the core check. Inside each read section a reader loads the current
//! element, optionally waits, and checks it: not poisoned, not reused (same generation at
//! start and end), and its age (grace periods completed since its retirement) at most 1.
//! An older age means a grace period ended while this reader, which began before it, still
//! held the element: a too-short grace period.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rcu_core::Sleepable;

use super::arena::{Arena, MAGIC, PIPE_LEN};
use super::config::Config;
use super::flavor::Flavor;
use super::report::{Check, Counters};
use super::rng::Rng;

/// What readers share with the writer.
#[derive(Debug)]
pub struct Published {
    /// Index of the current element in the arena.
    pub current: AtomicUsize,
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
            let cookie = flavor.get_state();
            // Acquire: pairs with the writer's Release store: the element's initialisation
            // (MAGIC, age 0, generation) is visible.
            let index = published.current.load(Ordering::Acquire);
            let e = arena.get(index);
            // Relaxed (element fields): a racing writer is exactly what is being checked;
            // ordering comes from the read section itself.
            let generation = e.generation.load(Ordering::Relaxed);
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
            let age = e.age.load(Ordering::Relaxed);
            let magic = e.magic.load(Ordering::Relaxed);
            let generation_end = e.generation.load(Ordering::Relaxed);
            if config.tests.age {
                Counters::bump(&counters.ages[age.min(PIPE_LEN) as usize]);
                if age > 1 {
                    counters.fail_check(
                        Check::Age,
                        format!(
                        "reader {id}: element {index} aged {age} grace periods inside one read \
                         section (too-short grace period)"
                    ),
                    );
                }
                if magic != MAGIC {
                    counters.fail_check(
                        Check::Age,
                        format!(
                        "reader {id}: element {index} was freed (poisoned) while a reader held it"
                    ),
                    );
                } else if generation_end != generation {
                    counters.fail_check(
                        Check::Age,
                        format!(
                        "reader {id}: element {index} was freed and reused while a reader held it"
                    ),
                    );
                }
            }
            if config.tests.polled && flavor.poll(cookie) {
                counters.fail_check(
                    Check::Polled,
                    format!(
                        "reader {id}: a grace-period cookie taken inside a read section completed \
                     before the section ended"
                    ),
                );
            }
        });
        Counters::bump(&counters.reads);
    }
}
