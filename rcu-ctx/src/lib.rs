#![doc = include_str!("../docs/contexts.md")]
#![warn(missing_docs)]

mod brand;
mod capability;
#[cfg(doctest)]
mod compile_fail;
mod depths;
pub mod enforce;
mod facts;
mod kind;
pub mod owed;
mod read_section;
mod sleepable_section;
pub mod thread_state;
mod token;
pub mod validate;

pub use brand::{brand_id, SectionBrand, Unbranded};
pub use capability::{Context, MayAlloc, MayReclaim, MaySleep};
pub use kind::ContextKind;
pub use read_section::ReadSection;
pub use sleepable_section::{check_may_wait_for, MayWaitFor, SectionState, SleepableSection};
pub use token::{Atomic, NoReclaim, NoReclaimRoot, Sleepable};
pub use validate::{might_alloc, might_sleep};

/// Everything a caller needs in scope to use tokens: the token types and the capability
/// traits (whose methods open scopes).
///
/// ```
/// use rcu_ctx::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let nr: NoReclaim<'_> = ctx.no_reclaim();
/// drop(nr);
/// let spin: Atomic<'_> = ctx.atomic();
/// drop(spin);
/// ```
pub mod prelude {
    pub use crate::{
        Atomic, Context, MayAlloc, MayReclaim, MaySleep, NoReclaim, NoReclaimRoot, Sleepable,
    };
}
