//! The QSBR flavors' readers: threads that stay online across many reads.
//!
//! Each reader goes online in the tortured `QsbrDomain` once and reads in batches. A batch
//! loads the current element ([`readers::look`]) a random number of times: most batches up
//! to `SHORT_BATCH` reads, one in `LONG_BATCH_EVERY` up to `LONG_BATCH`; between loads a read
//! now and then spins briefly or, one in `Config::long_delay_every`, sleeps
//! `Config::long_delay` while online (holding up every grace period, as a slow QSBR thread
//! does). To grace periods a batch is one read section, from the quiescent state before it
//! to the one after it, so every element loaded anywhere in it is checked
//! ([`readers::check`]) only at its end, just before `online.quiescent_state()`: what the
//! first load saw must still be intact after the last. The first batch, and then one in
//! `OFFLINE_EVERY`, is followed by going offline (`online.offline()`), a sleep of up to
//! `OFFLINE_MAX_SLEEP` with the thread's token (free again for blocking calls), and back
//! online (`offline.online(&mut ctx)`): every run, however short, has offline periods.
//!
//! `qsbr-busted`: the readers are online in a domain nobody waits for
//! (`Flavor::QsbrBusted`), and each batch is one read held until the writer has moved on past
//! the pipeline ([`readers::hold_until_writer_moves_on`]): under a real QSBR domain the
//! writer could not get that far before the reader's quiescent state; here it ages and frees
//! the element, so the age check fails on nearly every read. As for `srcu-busted`,
//! `torture::run` starts the writer only once the readers are online.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::QsbrOnline;

use super::flavor::Flavor;
use super::readers::{self, Seen, Who};
use super::report::Counters;
use super::rng::Rng;
use super::Shared;

/// Most batches hold at most this many reads.
const SHORT_BATCH: u64 = 64;
/// One batch in this many is a long one...
const LONG_BATCH_EVERY: u32 = 32;
/// ...of at most this many reads.
const LONG_BATCH: u64 = 8192;
/// One batch in this many is followed by an offline period.
const OFFLINE_EVERY: u32 = 64;
/// The longest an offline period sleeps.
const OFFLINE_MAX_SLEEP: Duration = Duration::from_millis(2);

/// Runs QSBR reader `id` (a thread named `torture-reader-N`) until `stop`. Sends to `ready`
/// once online.
pub fn run(id: u64, shared: &Shared, stop: &AtomicBool, ready: Sender<()>) {
    let Shared { config, flavor, arena, published, counters, .. } = shared;
    let domain = flavor.reader_qsbr().expect("qsbr_readers: a QSBR flavor");
    let busted = matches!(flavor, Flavor::QsbrBusted { .. });
    let mut ctx = Sleepable::enter();
    let mut rng = Rng::new(config.seed, 100 + id);
    let mut batch: Vec<Seen> = Vec::with_capacity(LONG_BATCH as usize);
    let mut online = domain.online(&mut ctx);
    let _ = ready.send(());
    let mut first = true;
    // Relaxed: a stop flag; nothing is published through it.
    while !stop.load(Ordering::Relaxed) {
        let len = if busted {
            1
        } else if rng.one_in(LONG_BATCH_EVERY) {
            1 + rng.next_u64() % LONG_BATCH
        } else {
            1 + rng.next_u64() % SHORT_BATCH
        };
        for _ in 0..len {
            batch.push(look(&online, shared));
            if busted {
                // Online: the nap may not go through a token (`online` borrows the
                // thread's), and it holds up nobody but the readers' own domain.
                readers::hold_until_writer_moves_on(published, std::thread::sleep);
            } else if rng.one_in(config.long_delay_every) {
                std::thread::sleep(config.long_delay);
            } else if rng.one_in(config.short_delay_every) {
                for _ in 0..(rng.next_u64() % 2000) {
                    core::hint::spin_loop();
                }
            }
        }
        for seen in batch.drain(..) {
            readers::check(Who { id, from: None }, &seen, config, flavor, arena, counters);
            Counters::bump(&counters.reads);
        }
        online.quiescent_state();
        Counters::bump(&counters.quiescent_states);
        if !busted && (std::mem::take(&mut first) || rng.one_in(OFFLINE_EVERY)) {
            let offline = online.offline();
            Counters::bump(&counters.offline_periods);
            let max = OFFLINE_MAX_SLEEP.as_micros() as u64;
            // Offline: the thread's token is its own again, and may sleep.
            ctx.validate();
            rcu_core::might_sleep();
            std::thread::sleep(Duration::from_micros(rng.next_u64() % (max + 1)));
            online = offline.online(&mut ctx);
        }
    }
}

/// A read of the pipeline by a thread online in the readers' domain (`online` is the
/// witness: the element stays intact until its next quiescent state).
fn look(_online: &QsbrOnline<'_, '_>, shared: &Shared) -> Seen {
    readers::look(&shared.flavor, &shared.arena, &shared.published)
}
