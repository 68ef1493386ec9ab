//! Red team, issue 25 (SRCU): refusals whose message names the wrong cause (low severity;
//! nothing hangs or is freed early, but the message sends the reader after a bug they do
//! not have).
//!
//! 1. `RcuHashMap::domain()` is public and, for a map on a sleepable domain, returns the
//!    domain's classic engine (`Domain`), whose `synchronize_rcu` / `rcu_barrier` /
//!    `kvfree_rcu_mightsleep` take `C: MaySleep` / `MayReclaim` with no brand check. Inside
//!    a borrowed section, `map.domain().synchronize_rcu(guard.ctx())` therefore *compiles*
//!    (the compile-time rule of `MayWaitFor` is bypassed by a public, documented accessor)
//!    and is refused at run time by `reader::assert_outside_section`, whose message says the
//!    token types rule this out "except through a token the section did not borrow: one
//!    captured by an RcuCell::update closure, a second root Sleepable, or a copy made with
//!    unsafe code". The token here is the section's own `guard.ctx()`: none of those; and
//!    "rule: no synchronize_rcu ... inside a read section" contradicts the sleepable
//!    section's documented power to wait for other domains. The same call through
//!    `kvfree_rcu_mightsleep`'s fallback says "A token that claims more than the thread may
//!    do reached a call that waits (a smuggled root Sleepable, or one whose checks were
//!    defeated)": also wrong (the section's token may sleep; nothing was smuggled).
//! 2. A borrowed guard `mem::forget`-ed, then `synchronize_srcu` with the same root: the
//!    message says the call "came with a token that does not show the section: a second
//!    root taken inside it, or a scope opened ... with no_reclaim()"; the cause is a
//!    forgotten guard, which it does not mention.
//!
//! Each test asserts that the message names what actually happened (it fails now; the text
//! it got is printed in the failure).
#![cfg(not(loom))]

use std::collections::hash_map::RandomState;
use std::sync::Arc;

use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};
use rcu_tests::quiet::{expect_panic_quietly, message};

fn refusal(expected: &'static str, f: impl FnOnce()) -> String {
    match expect_panic_quietly(expected, f) {
        Ok(()) => panic!("not refused"),
        Err(p) => message(&*p).to_owned(),
    }
}

#[test]
fn a_wait_through_the_maps_engine_with_the_sections_own_token_blames_the_right_cause() {
    let s: Arc<SrcuStruct> = Arc::new(SrcuStruct::new(DomainConfig::new().name("rt25-msg-map")));
    let map: RcuHashMap<u8, u8> =
        RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), s.clone());
    let msg = refusal("would wait for itself", || {
        let mut ctx = Sleepable::enter();
        let g = s.read_lock(&mut ctx);
        map.domain().synchronize_rcu(g.ctx()); // compiles: no brand on the engine
        drop(g);
    });
    assert!(
        !msg.contains("a token the section did not borrow") && !msg.contains("smuggled"),
        "the refusal blames a smuggled / unborrowed token, but the token is the sleepable \
         section's own guard.ctx(), which reached a brandless wait through the public \
         RcuHashMap::domain(): {msg}"
    );
}

#[test]
fn a_wait_after_a_forgotten_borrowed_guard_names_the_forgotten_guard() {
    let s: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("rt25-msg-2"));
    let msg = refusal("inside one of its read sections", || {
        let mut ctx = Sleepable::enter();
        core::mem::forget(s.read_lock(&mut ctx));
        s.synchronize_srcu(&ctx); // the first root, no longer borrowed
    });
    assert!(
        msg.contains("forget") || msg.contains("forgot") || msg.contains("leak"),
        "the refusal does not mention a forgotten/leaked guard, the only cause here: {msg}"
    );
}
