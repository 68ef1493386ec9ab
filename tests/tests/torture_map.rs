//! rcutorture's `map` test alone (`rcu_collections::RcuHashMap` under torture), short, under
//! the global domain, a custom domain with rare allocation paths forced, a sleepable
//! domain (readers that sleep holding values, owned guards, the section's token) and a QSBR
//! domain (readers online across rounds, quiescent states between them).

use std::time::Duration;

use rcu_tests::torture::{self, Config, FlavorKind, Tests, TokenKind};

/// The torture's tracked frees are served and counted by it (`torture::alloc`).
#[global_allocator]
static ALLOC: torture::alloc::CountingAlloc = torture::alloc::CountingAlloc;

fn map_only(flavor: FlavorKind, small_blocks: bool) {
    let tests = Tests {
        age: false,
        polled: false,
        callbacks: false,
        barrier: false,
        forward_progress: false,
        stall: false,
        map: true,
    };
    let config = Config {
        flavor,
        tests,
        small_blocks,
        duration: Duration::from_secs(2),
        report_every: Duration::ZERO,
        tokens: TokenKind::defaults(flavor),
        ..Config::default()
    };
    let s = torture::run(config, &mut |_| {});
    println!("{}", s.text());
    assert!(s.success(), "{}", s.text());
    assert!(s.last.reads > 0 && s.last.updates > 0, "the map test did nothing: {}", s.text());
}

#[test]
fn map_passes_under_the_global_domain() {
    map_only(FlavorKind::Global, false);
}

#[test]
fn map_passes_with_rare_paths_forced() {
    map_only(FlavorKind::Custom, true);
}

#[test]
fn map_passes_on_a_sleepable_domain() {
    map_only(FlavorKind::SrcuPlain, false);
}

#[test]
fn map_passes_on_a_qsbr_domain() {
    map_only(FlavorKind::Qsbr, false);
}
