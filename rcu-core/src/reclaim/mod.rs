//! Deferred work, operations on a `DomainState`: queueing with the token's policy and
//! backpressure (`enqueue`), collecting and running batches and `rcu_barrier`
//! (`collection`), and paying what a thread owes on the global domain (`owed`, whose payer
//! `process::init` installs). Shared by every reader flavour.
//!
//! May call `state` and everything below it. Publishes: a collection request is an AcqRel
//! RMW of `collections` that the worker's collection reads from, then a SeqCst store of
//! `wanted_generation` (`request_collection`); a run batch's Release of
//! `completed_generation` (`finish_generation`) pairs with the Acquire in `barrier`; the
//! given-back deallocations' Release of `given_back_finished` (`finish_given_back`) with
//! the Acquire in `given_back_finished`; grace-period requests go through
//! `Worker::request` (SeqCst).

pub(crate) mod collection;
pub(crate) mod enqueue;
pub(crate) mod owed;
