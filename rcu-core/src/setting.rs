//! Durations kept as settings in atomics.

use std::time::Duration;

/// `d` in nanoseconds for an `AtomicU64` setting, saturating at `u64::MAX` (584 years, which
/// every use treats as never) instead of wrapping to an arbitrary short time.
pub(crate) const fn saturating_nanos(d: Duration) -> u64 {
    let nanos = d.as_nanos();
    if nanos > u64::MAX as u128 {
        u64::MAX
    } else {
        nanos as u64
    }
}
