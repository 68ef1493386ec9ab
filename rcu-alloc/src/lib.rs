//! Allocation policy for deferred reclamation, decided from the context token's type.
//!
//! [`Policy::of`] maps a token type to the policy its calls run under, as a `const`: the
//! compiler picks the code path, nothing inspects the thread at run time.

mod policy;

pub use policy::Policy;
