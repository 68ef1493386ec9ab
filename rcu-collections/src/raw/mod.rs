//! The raw layer: bucket words, chains and the resize protocol's steps on plain pointers,
//! knowing nothing of grace periods, tokens or keys. The safe collections
//! ([`RcuHashMap`](crate::RcuHashMap)) are built on it; `tests/loom.rs` models it on loom's
//! atomics (through the crate's `sync` shim). Not needed to use the collections.

mod bucket;
mod link;
mod table;

pub use bucket::{Bucket, BucketLock, Head};
pub use link::{Hashed, Link, Linked};
#[cfg(loom)]
pub use table::move_tail_unlink_first;
pub use table::{move_tail, RawTable};
