//! The futex backend (Linux and Android): `FUTEX_WAIT` and `FUTEX_WAKE` on the word itself,
//! process-private. The kernel keeps the sleepers, so there is no table to reset after fork.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

pub(super) const NAME: &str = "futex";

pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 for the whole call; `ts_ptr` is null or points to
    // `ts`, which outlives the call. FUTEX_WAIT only reads both.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

pub(super) fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access user memory beyond
    // using its address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Nothing to forget: the kernel's sleepers of the parent are not the child's.
///
/// # Safety
/// 1. As `futex::reset_after_fork` (nothing here depends on it).
pub(super) unsafe fn reset_after_fork() {}
