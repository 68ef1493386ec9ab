//! How a grace period runs and whom it waits for: leadership shared among callers, normal
//! and expedited waits (`Urgency`), stall detection and reports (`grace_period`, `stall`),
//! and the sleepable (SRCU) flavour's scans and flip (`srcu`), which `grace_period` runs for
//! the domains whose readers follow it.
//!
//! Reaches a domain only through `GpHost`; may call `raw`, `read` and `stats`. Publishes:
//! the four steps of a grace period (`grace_period`'s module docs: AcqRel advance, heavy
//! barrier, Acquire loads of the reader words, Release completion); leadership passes by an
//! Acquire CAS (`try_lead`) and a SeqCst unlock (`stop_leading`) that the waiters' SeqCst
//! load in `wait_for_event` orders against the completion event.

pub(crate) mod grace_period;
pub(crate) mod srcu;
pub(crate) mod stall;
