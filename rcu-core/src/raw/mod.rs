// Contract (a comment: this module's docs are public). Owns the reader word and the
// grace-period sequence (`protocol`), the barrier pair (`barrier`) and `sync`, the one door
// through which these and the staging area take their atomics, so that loom and shuttle can
// take them over. Imports nothing else of the crate (under loom it is built alone, with
// `queue::staging`). Publishes: the reader word's Release stores (`ReaderWord::enter`, `exit`)
// pair with the grace period's Acquire load in `ReaderWord::blocks`; `GpSequence::start`'s
// AcqRel advance with the Acquire snapshot in `ReaderWord::enter`; `GpSequence::complete`'s
// Release with `is_completed`'s Acquire; `reader_barrier` and `heavy_barrier` are a
// store-buffering pair (membarrier, or two SeqCst fences). The sleepable protocol (`srcu`):
// the owner's Release increments of `unlock` and the owned guards' Release `fetch_add`s pair
// with the scan's Acquire loads in `SrcuCounters::unlocks`; a lock increment and
// `reader_barrier` pair with the grace period's barrier as the reader word's store does;
// `SrcuIndex::flip`'s SeqCst fences are for progress only.

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
pub mod srcu;
pub(crate) mod sync;
