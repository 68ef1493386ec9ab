//! The one door through which the engine's atomics and fences come, so that loom can model
//! them: under `cfg(loom)` these are loom's types, otherwise std's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
// A compiler fence is not a memory operation for loom to model; under loom readers take the
// `fence` path anyway (see raw::barrier).
#[cfg(loom)]
pub(crate) use std::sync::atomic::compiler_fence;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{compiler_fence, fence, AtomicU64, Ordering};
