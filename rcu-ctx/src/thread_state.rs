//! Per-thread context state: how deep the thread is in read sections, atomic scopes and
//! no-reclaim scopes.
//!
//! Maintained in every build (it is what makes [`Sleepable::enter`](crate::Sleepable::enter)
//! safe to offer), at the cost of one non-atomic thread-local increment per scope, checked
//! in every build: a depth never wraps (a scope that would take one past `u32::MAX`, only
//! possible by forgetting scopes in a loop, panics and is not counted). The thread-local
//! has a `const` initializer and no destructor, so access is a plain thread-pointer-relative
//! load with no lazy-initialisation check, and it stays usable while the thread's other
//! thread-locals are being destroyed.
//!
//! The state only moves in strict LIFO order (scopes are values dropped in reverse order of
//! creation, unwinding included), so a signal handler that opens and closes a scope leaves
//! the interrupted code's view unchanged.
//!
//! ```
//! use rcu_ctx::thread_state::{snapshot, Snapshot};
//! use rcu_ctx::{Context, MaySleep, Sleepable};
//!
//! let mut ctx = Sleepable::enter();
//! let mut nr = ctx.no_reclaim();
//! let spin = nr.atomic();
//! assert_eq!(snapshot(), Snapshot { read_depth: 0, atomic_depth: 1, no_reclaim_depth: 1 });
//! drop(spin);
//! drop(nr);
//! assert_eq!(snapshot(), Snapshot::default());
//! ```

pub use crate::depths::{live_roots, no_reclaim_roots, restore, snapshot, Snapshot};
pub use crate::read_section::ReadSection;
