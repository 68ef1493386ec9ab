//! The raw layer: the reader/grace-period protocol and the OS primitives under it. The safe
//! API in the crate root is built on these; loom models `protocol` directly.

pub mod barrier;
pub mod protocol;
