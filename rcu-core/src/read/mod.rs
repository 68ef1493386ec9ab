//! Who may be reading: the lock-free, append-only list of per-thread slots, each a reader
//! word, sleepable-section counters, a staging area and a QSBR executor state (`registry`,
//! `executor`), and which of the two a
//! domain's readers use (`flavor`).
//!
//! May call `raw` and `queue` (a slot embeds its `Staging`). Publishes: a new slot with a
//! Release CAS (`Registry::claim`) for the Acquire walk of `Registry::iter`; a released slot
//! with a Release store (`Registry::release`) for the Acquire CAS that reuses it (`claim`).

pub(crate) mod executor;
pub(crate) mod flavor;
pub(crate) mod registry;
