//! What runs on its own: process set-up (`process::init`: barrier mode, shrinker, fork
//! handlers, payer), the fork handlers and the child's repair (`fork`), the domain worker's
//! loop (`worker_thread`) and its side of the async futures (`async_wake`).
//!
//! May call `reclaim`, `state` and everything below; never `api`. Publishes: the end of
//! `process::init` by `ready::set_ready` (Release; Acquire in `ready::is_ready`); the
//! worker's last re-check before sleeping is SeqCst (`Worker::announce_sleep`), against the
//! callers' SeqCst fence in `Worker::wake_if`; `async_wake::reached` loads with Acquire
//! what made a target reached. The fork child's handler runs single-threaded (`fork`).

pub(crate) mod async_wake;
pub(crate) mod fork;
pub(crate) mod process;
pub(crate) mod worker_thread;
