//! The asymmetric barrier pair of the read side and the grace-period side.
//!
//! # Semantics
//! Readers must not pay for a hardware fence, yet each reader's announcement (the store to
//! its reader word) must be ordered before the loads of its read section. The grace-period
//! side pays instead: [`heavy_barrier`] runs `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`,
//! which makes every running thread of this process execute a full memory barrier at some
//! point during the call (threads not running get one from the context switch). For each
//! reader, its accesses then split into those before that point, which the grace-period
//! thread sees after `heavy_barrier` returns, and those after it, which see everything the
//! grace-period thread did before calling `heavy_barrier`. [`reader_barrier`] is then only a
//! compiler barrier: it stops the compiler from moving the section's loads above the
//! announcement, and the CPU's reordering is what the membarrier handles.
//!
//! Where the kernel lacks the private expedited command, on every OS but Linux and Android
//! (membarrier is Linux's), under `cfg(rcu_force_fence)` (ThreadSanitizer, `ci/portable.sh`)
//! and under loom, both sides issue `fence(SeqCst)`: the classic store-buffering pair. The
//! choice is made once per process by [`init`], from what the kernel offers (a property of
//! the OS, never of the caller), before any reader is registered.
//!
//! ```
//! use rcu_core::raw::barrier;
//! barrier::init();
//! // Reader side: after announcing itself, before reading.
//! barrier::reader_barrier();
//! // Grace-period side: after advancing the sequence, before scanning reader words.
//! barrier::heavy_barrier();
//! ```

use crate::raw::sync::{compiler_fence, fence, Ordering};

#[cfg(not(loom))]
mod mode {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Once;

    const FENCE: u8 = 0;
    const MEMBARRIER: u8 = 1;

    /// Written once by `init` (inside a `Once`, which orders it before every later `init`
    /// return); readers load it Relaxed because every reader registered after `init`.
    static MODE: AtomicU8 = AtomicU8::new(FENCE);
    static INIT: Once = Once::new();

    pub(super) fn init() {
        INIT.call_once(|| {
            if !cfg!(rcu_force_fence) && register() {
                // Relaxed: published by the Once; every reader and writer calls `init` first.
                MODE.store(MEMBARRIER, Ordering::Relaxed);
            }
        });
    }

    /// Registers this process for the private expedited command; false if unavailable.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn register() -> bool {
        let query = membarrier(libc::MEMBARRIER_CMD_QUERY);
        if query < 0 || query & (libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED as libc::c_long) == 0 {
            return false;
        }
        membarrier(libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    }

    #[inline(always)]
    pub(super) fn uses_membarrier() -> bool {
        // Relaxed: see MODE.
        MODE.load(Ordering::Relaxed) == MEMBARRIER
    }

    /// No membarrier outside Linux: readers use the fence mode, which `rcu_force_fence`
    /// exercises on Linux.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn register() -> bool {
        false
    }

    /// `membarrier(cmd, 0, 0)`'s return value.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no user memory.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint, 0 as libc::c_int) }
    }

    /// One expedited barrier over the process's running threads; true if it was issued.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn expedited() -> bool {
        membarrier(libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0
    }

    /// Never called: `register` refused, so the mode is never MEMBARRIER.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn expedited() -> bool {
        false
    }
}

#[cfg(loom)]
mod mode {
    pub(super) fn init() {}
    #[inline(always)]
    pub(super) fn uses_membarrier() -> bool {
        false
    }
}

/// Decides, once per process, whether membarrier is available. Idempotent and cheap after
/// the first call; called before any reader registers and before any grace period.
///
/// ```
/// rcu_core::raw::barrier::init();
/// rcu_core::raw::barrier::init(); // idempotent
/// ```
pub fn init() {
    mode::init();
}

/// True when readers use only a compiler barrier and grace periods use membarrier.
///
/// ```
/// use rcu_core::raw::barrier;
/// barrier::init();
/// println!("readers use {}", if barrier::uses_membarrier() { "a compiler barrier" } else { "a fence" });
/// ```
#[inline(always)]
pub fn uses_membarrier() -> bool {
    mode::uses_membarrier()
}

/// After a fork the child re-registers with membarrier (registration is per process; doing
/// it again is harmless where the kernel already carried it over).
#[cfg(not(loom))]
pub(crate) fn reregister_after_fork() {
    if mode::uses_membarrier() && !mode::register() {
        // The parent could use membarrier, so the child's kernel can too; a refusal here
        // would leave readers unprotected, which must not pass silently.
        const MSG: &[u8] = b"rcu-core: membarrier re-registration failed after fork\n";
        // SAFETY: writes a static buffer to stderr; async-signal-safe as fork handlers need.
        unsafe { libc::write(2, MSG.as_ptr().cast(), MSG.len()) };
        // SAFETY: abort is always safe to call.
        unsafe { libc::abort() };
    }
}

/// The reader's half: orders the reader word's store before the read section's loads.
///
/// ```
/// use rcu_core::raw::barrier;
/// barrier::init();
/// barrier::reader_barrier(); // between the reader word's store and the section's loads
/// ```
#[inline(always)]
pub fn reader_barrier() {
    if uses_membarrier() {
        // Compiler-only: the CPU side is covered by heavy_barrier's membarrier.
        compiler_fence(Ordering::SeqCst);
    } else {
        // SeqCst fence: pairs with the SeqCst fence in heavy_barrier (store-buffering).
        fence(Ordering::SeqCst);
    }
}

/// The grace-period side's half: after it returns, every reader either has its announcement
/// visible to us, or will see everything we (and whatever happens-before us) did before.
///
/// ```
/// use rcu_core::raw::barrier;
/// barrier::init();
/// barrier::heavy_barrier(); // every running thread of the process passes a full barrier
/// ```
pub fn heavy_barrier() {
    #[cfg(not(loom))]
    if uses_membarrier() {
        assert!(
            mode::expedited(),
            "rcu-core: membarrier(PRIVATE_EXPEDITED) failed after the process registered for it: \
             readers would be unprotected, so this is fatal (a seccomp filter added after \
             start-up?)"
        );
        return;
    }
    // SeqCst fence: pairs with the SeqCst fence in reader_barrier (fence mode).
    fence(Ordering::SeqCst);
}

/// One `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` call, timed by benchmarks as the
/// physical floor of a grace period. Returns false if membarrier is not in use.
///
/// ```
/// let used = rcu_core::raw::barrier::membarrier_once();
/// assert_eq!(used, rcu_core::raw::barrier::uses_membarrier());
/// ```
#[cfg(not(loom))]
pub fn membarrier_once() -> bool {
    init();
    uses_membarrier() && mode::expedited()
}
