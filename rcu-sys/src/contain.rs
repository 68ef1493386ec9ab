//! Containing panics of user code that a runtime runs for others (callbacks and the drops of
//! retired values, wakers, stall handlers, shrinkers) and of the payloads those panics carry,
//! whose own `Drop` is user code too. A panic contained here is counted and reported by the
//! caller; the thread it ran on goes on serving.
//!
//! ```
//! use rcu_sys::contain::contain;
//! assert_eq!(contain(|| 1 + 1), Some(2));
//! assert_eq!(contain(|| -> u8 { panic!("a user callback failed") }), None);
//! ```

use core::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; `None` if it panicked. The panic's payload is dropped here, contained too.
///
/// ```
/// use rcu_sys::contain::contain;
/// struct Bomb;
/// impl Drop for Bomb {
///     fn drop(&mut self) {
///         panic!("a payload whose drop panics");
///     }
/// }
/// assert!(contain(|| std::panic::panic_any(Bomb)).is_none()); // nothing unwinds out
/// ```
///
/// `AssertUnwindSafe`: what `f` touches of the runtime's state is consistent at every point a
/// user call can unwind from (the callers say why); the user's own state is the user's.
pub fn contain<R>(f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            drop_payload(payload);
            None
        }
    }
}

/// Drops a panic's payload. Its `Drop` may panic in turn (`std::panic::panic_any` takes any
/// value): that second panic is caught and its payload leaked, so no chain of payloads can
/// unwind out of here.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("once")).unwrap_err();
/// rcu_sys::contain::drop_payload(payload);
/// ```
pub fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        core::mem::forget(again);
    }
}

#[cfg(test)]
mod tests {
    use super::contain;

    /// A payload whose drop panics, with a payload whose drop panics too.
    struct Bomb(u32);

    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0 > 0 {
                std::panic::panic_any(Bomb(self.0 - 1));
            }
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_is_contained() {
        assert_eq!(contain(|| 7), Some(7));
        assert_eq!(contain(|| std::panic::panic_any(Bomb(3))), None::<()>);
    }
}
