#![doc = include_str!("../docs/collections.md")]

#[cfg(not(loom))]
mod domain;
#[cfg(not(loom))]
mod enforce;
#[cfg(not(loom))]
mod list;
#[cfg(not(loom))]
mod map;
pub mod raw;
mod sync;

#[cfg(not(loom))]
pub use list::{ListIter, ListNode, ListReader, RcuList};
#[cfg(not(loom))]
pub use map::{Computed, Iter, Node, RcuHashMap};

/// The README's example is compiled and run as a doctest, so it follows the API.
#[cfg(all(doctest, not(loom)))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
