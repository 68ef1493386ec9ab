//! The writer: publishes a new element, retires the old one, and ages retired elements by
//! one each time a grace period completes, freeing (poisoning) them at `PIPE_LEN`. Grace
//! periods come from every method in turn: `synchronize_rcu`, expedited, `cond_synchronize`,
//! `start_poll` + `poll`, and `call_rcu` chains whose callbacks age the element and requeue
//! themselves with their `Atomic` token until it is old enough. Under the sleepable flavors
//! these are `synchronize_srcu`, `synchronize_srcu_expedited`, `cond_synchronize_srcu`,
//! `start_poll_synchronize_srcu` + `poll_state_synchronize_srcu` and `call_srcu`, whose
//! chains may also start from inside one of the domain's own sections, with its token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rcu_core::prelude::*;

use super::arena::{Arena, PIPE_LEN};
use super::config::TokenKind;
use super::readers::Published;
use super::report::Counters;
use super::rng::Rng;
use super::Shared;

/// An element aged by callbacks: the callback requeues it until it is old enough.
struct AgeTicket {
    shared: Arc<Shared>,
    index: usize,
}

fn age_callback(ticket: Box<Rcu<AgeTicket>>, ctx: &Atomic<'_>) {
    let shared = ticket.shared.clone();
    let e = shared.arena.get(ticket.index);
    // Relaxed: only this chain ages this element.
    let age = e.age.fetch_add(1, Ordering::Relaxed) + 1;
    if age >= PIPE_LEN {
        shared.arena.free(ticket.index);
        // Relaxed: a count read after barriers.
        shared.counters.chains.fetch_sub(1, Ordering::Relaxed);
        drop(ticket);
    } else {
        shared.flavor.call_rcu(ctx, ticket, age_callback);
    }
}

/// Runs the writer until `stop`.
pub fn run(shared: &Arc<Shared>, stop: &AtomicBool) {
    let Shared { config, flavor, arena, published, counters, .. } = &**shared;
    let mut ctx = Sleepable::enter();
    let mut rng = Rng::new(config.seed, 1);
    let mut retired: Vec<usize> = Vec::new();
    let mut method = 0u32;
    // Relaxed: a stop flag.
    while !stop.load(Ordering::Relaxed) {
        let Some(new) = arena.alloc() else {
            // All elements are aging: a grace period frees some.
            flavor.synchronize(&ctx, method);
            age_retired(arena, &mut retired);
            method = method.wrapping_add(1);
            continue;
        };
        // AcqRel: Release publishes the element's initialisation to readers (Acquire in
        // the reader); Acquire takes ownership of the old one.
        let old = published.current.swap(new, Ordering::AcqRel);
        Counters::bump(&published.count);
        Counters::bump(&counters.updates);
        method = method.wrapping_add(1);
        if method % 5 == 4 {
            // Age `old` by a callback chain, queued with the configured tokens.
            let ticket = Rcu::boxed(AgeTicket { shared: shared.clone(), index: old });
            Counters::bump(&counters.chains);
            let token = config.tokens[(rng.next_u64() % config.tokens.len() as u64) as usize];
            queue_ticket(shared, &mut ctx, token, ticket);
        } else {
            retired.push(old);
            flavor.synchronize(&ctx, method);
            age_retired(arena, &mut retired);
        }
    }
    // Drain: age everything out so the arena is consistent at the end.
    while !retired.is_empty() {
        flavor.synchronize(&ctx, 0);
        age_retired(arena, &mut retired);
    }
}

fn queue_ticket(
    shared: &Shared,
    ctx: &mut Sleepable,
    token: TokenKind,
    ticket: Box<Rcu<AgeTicket>>,
) {
    match token {
        TokenKind::Sleepable => shared.flavor.call_rcu(ctx, ticket, age_callback),
        TokenKind::NoReclaim => shared.flavor.call_rcu(&ctx.no_reclaim(), ticket, age_callback),
        TokenKind::Atomic => shared.flavor.call_rcu(&ctx.atomic(), ticket, age_callback),
        TokenKind::Section => {
            shared
                .flavor
                .in_section(ctx, |section| shared.flavor.call_rcu(section, ticket, age_callback));
        }
    }
}

/// One grace period has elapsed since every element in `retired` was retired: age them,
/// freeing those that reach `PIPE_LEN`.
fn age_retired(arena: &Arena, retired: &mut Vec<usize>) {
    retired.retain(|&index| {
        let e = arena.get(index);
        // Relaxed: readers read it racily by design (that is the check).
        let age = e.age.fetch_add(1, Ordering::Relaxed) + 1;
        if age >= PIPE_LEN {
            arena.free(index);
            false
        } else {
            true
        }
    });
}

/// Where the writer publishes.
pub fn published(initial: usize) -> Published {
    Published {
        current: std::sync::atomic::AtomicUsize::new(initial),
        count: std::sync::atomic::AtomicU64::new(0),
    }
}
