//! What is queued and where it waits for its grace period: type-erased items and the
//! embedded head (`deferred`, `head`), a thread's staging area and its bracket protocol
//! (`staging`), a domain's sealed and intrusive lists and collection generations (`queues`).
//!
//! Knows no domain state; may call `raw` and `setting` only. Publishes: a bracket's opening
//! and closing Release stores of `seq` (`Staging::open`, `Bracket`'s drop), which the worker
//! loads with Acquire after `heavy_barrier` (`Staging::collect`, `wait_quiescent`); the
//! worker's steals are AcqRel swaps (`take_current`, `take_parked`) racing the owner's; a
//! sealed block is pushed with a Release CAS (`push_block`), an intrusive item with a
//! Release CAS and a Release add of its bytes (`Queues::push_intrusive`), for the
//! collector's Acquire swaps. Under loom only `staging` is built; under loom and shuttle it
//! is public (hidden), for the models.

#[cfg(not(loom))]
pub(crate) mod deferred;
#[cfg(not(loom))]
pub(crate) mod head;
#[cfg(not(loom))]
pub(crate) mod queues;
#[cfg(not(any(loom, shuttle)))]
pub(crate) mod staging;
#[cfg(any(loom, shuttle))]
pub mod staging;
