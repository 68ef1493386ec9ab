//! The sleepable flavors' readers: sections that sleep, nest and move between threads.
//!
//! Each reader, in a loop, enters a section of the tortured sleepable domain, loads the
//! current element ([`readers::look`]) and holds it: half the sections sleep a random time up
//! to `Config::srcu_max_sleep` (with the section's token where it has one), some nest a
//! classic section of the global domain or a second section of the same domain. Half the
//! sections are borrowed (`read_lock`): the reader checks the element ([`readers::check`])
//! before the guard drops. The other half are owned (`down_read`): the reader sends the guard,
//! with what it loaded, to the next reader of a ring (to itself when it is alone), which checks
//! the element when it takes the hand-over at the top of its loop and drops the guard there:
//! the section began on one thread and ends on another, and what was loaded in it must stay
//! intact until then. At the end each reader closes its channel and finishes what is still
//! handed to it.
//!
//! `srcu-busted`: the sections are on a domain nobody waits for (`Flavor::SrcuBusted`), and
//! instead of sleeping a random time each reader holds its element until the writer has
//! moved on past the pipeline ([`readers::hold_until_writer_moves_on`], also past the end of
//! the run, while the writer's drain frees what it retired): under a real SRCU the writer
//! could not get that far while the element was held, here it ages and frees it, so the age
//! check fails on nearly every read. `torture::run` starts the writer only once the readers
//! are reading, so even a run starved of CPU has them hold the first elements it retires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SendError, Sender};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::{SrcuFlavor, SrcuOwnedGuard, SrcuStruct, Unbranded};

use super::flavor::{on_srcu, Flavor};
use super::readers::{self, Published, Seen, Who};
use super::report::Counters;
use super::rng::Rng;
use super::Shared;

/// An owned section on its way to the reader that will end it.
struct HandOver<'d, F: SrcuFlavor> {
    guard: SrcuOwnedGuard<'d, F, Unbranded>,
    seen: Seen,
    /// The reader that began the section.
    from: u64,
}

/// Runs the sleepable flavor's readers (`Config::readers` threads, named
/// `torture-reader-N`) until `stop`, and finishes every section handed between them. Each
/// sends to `ready` as it begins reading.
pub fn run(shared: &Shared, stop: &AtomicBool, ready: Sender<()>) {
    let srcu = shared.flavor.reader_srcu().expect("srcu_readers: a sleepable flavor");
    on_srcu!(srcu, s => ring(s, shared, stop, ready));
}

fn ring<F: SrcuFlavor>(
    srcu: &SrcuStruct<F>,
    shared: &Shared,
    stop: &AtomicBool,
    ready: Sender<()>,
) {
    let n = shared.config.readers;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel()).unzip();
    std::thread::scope(|s| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(i, handed)| {
                // Reader i hands its owned sections to reader i + 1.
                let partner: Sender<HandOver<'_, F>> = senders[(i + 1) % n].clone();
                let ready = ready.clone();
                std::thread::Builder::new()
                    .name(format!("torture-reader-{i}"))
                    .spawn_scoped(s, move || {
                        let _ = ready.send(());
                        reader(i as u64, srcu, shared, stop, partner, handed)
                    })
                    .expect("spawn torture reader")
            })
            .collect();
        // Only the readers may hold senders: each channel closes when its sender finishes.
        drop((senders, ready));
        // Joined explicitly (`pthread_join`), as `map.rs` does, for ThreadSanitizer.
        for h in handles {
            if h.join().is_err() {
                shared.counters.fail("a torture reader panicked");
            }
        }
    });
}

fn reader<'d, F: SrcuFlavor>(
    id: u64,
    srcu: &'d SrcuStruct<F>,
    shared: &Shared,
    stop: &AtomicBool,
    partner: Sender<HandOver<'d, F>>,
    handed: Receiver<HandOver<'d, F>>,
) {
    let Shared { config, flavor, arena, published, counters, .. } = shared;
    let busted = matches!(flavor, Flavor::SrcuBusted { .. });
    let mut ctx = Sleepable::enter();
    let mut rng = Rng::new(config.seed, 100 + id);
    // Relaxed: a stop flag; nothing is published through it.
    while !stop.load(Ordering::Relaxed) {
        // The sections handed over since the last time end here, on this thread.
        while let Ok(h) = handed.try_recv() {
            finish(id, h, shared);
        }
        let max = config.srcu_max_sleep.as_micros() as u64;
        let hold = if busted {
            Hold::UntilWriterMovesOn
        } else if rng.one_in(2) {
            Hold::Sleep(Duration::from_micros(rng.next_u64() % (max + 1)))
        } else if rng.one_in(config.short_delay_every) {
            Hold::Spin(rng.next_u64() % 2000)
        } else {
            Hold::Spin(0)
        };
        let nest = rng.next_u64() % 8;
        if rng.one_in(2) {
            // Owned: begun here, checked and ended by the partner.
            let guard = srcu.down_read(&ctx);
            let seen = readers::look(flavor, arena, published);
            match nest {
                0 | 1 => nest_classic(&mut ctx, published),
                2 => {
                    let mut inner = srcu.read_lock(&mut ctx);
                    nest_classic(inner.ctx_mut(), published);
                }
                _ => {}
            }
            // The owned section has no token; the thread's may sleep.
            hold.run(|d| nap_with(&ctx, d), published);
            if let Err(SendError(h)) = partner.send(HandOver { guard, seen, from: id }) {
                // The partner is gone (it panicked): end the section here.
                finish(id, h, shared);
            }
        } else {
            let mut guard = srcu.read_lock(&mut ctx);
            let seen = readers::look(flavor, arena, published);
            match nest {
                0 | 1 => nest_classic(guard.ctx_mut(), published),
                2 => {
                    let mut inner = srcu.read_lock(guard.ctx_mut());
                    nest_classic(inner.ctx_mut(), published);
                }
                _ => {}
            }
            // Sleeps with the section's token: it keeps the thread's powers.
            let token = guard.ctx();
            hold.run(|d| nap_with(token, d), published);
            readers::check(Who { id, from: None }, &seen, config, flavor, arena, counters);
            drop(guard);
            Counters::bump(&counters.reads);
        }
    }
    // Close the channel to the partner, then finish what the other side still hands over
    // until it closes its own.
    drop(partner);
    for h in handed {
        finish(id, h, shared);
    }
}

/// A handed-over section: check what it loaded, then end it, on this thread (the thread
/// that began it, later, when a reader is alone in its ring).
fn finish<F: SrcuFlavor>(id: u64, h: HandOver<'_, F>, shared: &Shared) {
    let moved = h.from != id;
    let who = Who { id, from: moved.then_some(h.from) };
    readers::check(who, &h.seen, &shared.config, &shared.flavor, &shared.arena, &shared.counters);
    drop(h.guard);
    Counters::bump(&shared.counters.reads);
    if moved {
        Counters::bump(&shared.counters.handovers);
    }
}

/// Sleeps for `d`: `ctx` is the token of the code that sleeps, which must allow it.
fn nap_with<C: MaySleep>(ctx: &C, d: Duration) {
    ctx.validate();
    rcu_core::might_sleep();
    std::thread::sleep(d);
}

/// A classic section of the global domain inside the sleepable one: no sleeping in it.
fn nest_classic<C: Context>(ctx: &mut C, published: &Published) {
    let _classic = read_lock(ctx);
    // Acquire: as the section's first load; only the nesting is exercised here.
    let _ = published.current.load(Ordering::Acquire);
}

/// How a reader holds its element before checking it.
enum Hold {
    /// Sleeps (a section of a sleepable domain may).
    Sleep(Duration),
    /// Spins this many times.
    Spin(u64),
    /// `srcu-busted`: [`readers::hold_until_writer_moves_on`].
    UntilWriterMovesOn,
}

impl Hold {
    /// Holds; `nap` sleeps with the token of the code that holds.
    fn run(&self, nap: impl Fn(Duration), published: &Published) {
        match *self {
            Hold::Sleep(d) => nap(d),
            Hold::Spin(n) => {
                for _ in 0..n {
                    core::hint::spin_loop();
                }
            }
            Hold::UntilWriterMovesOn => readers::hold_until_writer_moves_on(published, nap),
        }
    }
}
