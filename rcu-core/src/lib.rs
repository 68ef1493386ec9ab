//! Userspace RCU with explicit, typed context tokens.

pub use rcu_alloc::Policy;
pub use rcu_ctx::{
    might_alloc, might_sleep, thread_state, validate, Atomic, Context, ContextKind, MayAlloc,
    MayReclaim, MaySleep, NoReclaim, Sleepable,
};

/// Everything a caller needs in scope: tokens, capability traits and the RCU API.
pub mod prelude {
    pub use rcu_ctx::prelude::*;
}
