//! The raw layer: the reader/grace-period protocol and the OS primitives under it. The safe
//! API in the crate root is built on these; loom models `protocol` directly.
//!
//! Most programs never touch this layer. It is public for the loom models, the benchmarks
//! and readers of `docs/design.md`, whose ordering argument is about exactly this code:
//!
//! ```
//! use rcu_core::raw::{barrier, protocol::GpSequence};
//! barrier::init(); // choose membarrier or fences, once per process
//! let seq = GpSequence::new();
//! let gp = seq.start(); // what a grace-period leader does first
//! seq.complete(gp); // ... and last, once no reader word blocks `gp`
//! assert!(seq.is_completed(gp));
//! ```

pub mod barrier;
pub mod protocol;
