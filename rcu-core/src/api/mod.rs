//! The public types: `Domain`, `RcuCell`, `ReadGuard` and the read fast path, the async
//! futures (`domain`, `cell`, `reader`, `gp_future`), the sleepable (SRCU) domain and its
//! guards (`srcu`, `srcu_guard`), and the QSBR domain and its thread handles (`qsbr`).
//!
//! May call everything below; only lib.rs imports it. Publishes: `RcuCell::load`'s Acquire
//! pairs with the AcqRel swap or CAS of `replace` and `update`; `Domain`'s drop stores `live`
//! with Release, for `DomainState::is_live`'s Acquire; read sections publish through the
//! reader word (`raw::protocol`).

pub(crate) mod cell;
pub(crate) mod domain;
pub(crate) mod gp_future;
pub(crate) mod guard;
pub(crate) mod qsbr;
pub(crate) mod qsbr_thread;
#[cfg(feature = "tokio")]
pub(crate) mod qsbr_tokio;
pub(crate) mod reader;
pub(crate) mod srcu;
pub(crate) mod srcu_flavor;
pub(crate) mod srcu_guard;
