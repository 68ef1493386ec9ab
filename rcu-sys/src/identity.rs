//! The calling thread's identity as reports give it (stall reports, leaked-guard reports): an
//! id and a name, from whatever the OS offers.
//!
//! - Id: the kernel's thread id on Linux and Android (`gettid`, as `ps -L`, `top -H` and
//!   debuggers show it) and FreeBSD (`pthread_getthreadid_np`); elsewhere a number this
//!   process gives each thread on first use (1, 2, ...), stable for the thread's life.
//! - Name: `pthread_getname_np`/`pthread_setname_np` where the `libc` crate has them (Linux,
//!   Android (setting only), macOS and iOS (setting only the calling thread, which is all
//!   the runtime does), FreeBSD, DragonFly, illumos, Solaris); elsewhere threads stay
//!   unnamed and reports say so.
//!
//! ```
//! let id = rcu_sys::thread_id();
//! assert_eq!(id, rcu_sys::thread_id()); // stable on one thread
//! assert_ne!(id, std::thread::spawn(rcu_sys::thread_id).join().unwrap());
//! let mut name = [0u8; 16];
//! rcu_sys::thread_name(&mut name); // "main" here on Linux, zeroes where unsupported
//! ```

/// The calling thread's id for reports (see the module docs). Never 0.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The calling thread's id for reports (see the module docs). Never 0.
#[cfg(target_os = "freebsd")]
pub fn thread_id() -> i32 {
    // SAFETY: pthread_getthreadid_np has no preconditions.
    unsafe { libc::pthread_getthreadid_np() }
}

/// The calling thread's id for reports (see the module docs). Never 0.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub fn thread_id() -> i32 {
    counted_id()
}

/// The fallback id: a number this process gives each thread on first use. Built everywhere
/// under `cfg(test)`, so its unit test runs on Linux too.
#[cfg(any(test, not(any(target_os = "linux", target_os = "android", target_os = "freebsd"))))]
fn counted_id() -> i32 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicI32, Ordering};
    static NEXT: AtomicI32 = AtomicI32::new(1);
    thread_local! {
        // No destructor: readable in every thread-exit hook, to the very end.
        static ID: Cell<i32> = const { Cell::new(0) };
    }
    ID.with(|id| {
        if id.get() == 0 {
            // Relaxed: only uniqueness matters.
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

/// Writes the calling thread's name into `buf`, NUL-terminated and cut to fit; leaves `buf`
/// zeroed if the thread has no name or the OS cannot tell (see the module docs).
pub fn thread_name(buf: &mut [u8]) {
    buf.fill(0);
    if buf.is_empty() {
        return;
    }
    #[cfg(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris"
    ))]
    {
        // SAFETY: `buf` is writable for `buf.len()` bytes; pthread_self is this thread. On
        // failure `buf` may be partly written: zeroed again below.
        let rc = unsafe {
            libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr().cast(), buf.len())
        };
        if rc != 0 {
            buf.fill(0);
        }
        // NUL-terminated whatever the OS wrote.
        let last = buf.len() - 1;
        buf[last] = 0;
    }
}

/// Names the calling thread (`name` NUL-terminated, at most 15 bytes before the NUL: Linux's
/// limit, the smallest). Does nothing where the OS cannot (see the module docs).
pub(crate) fn set_thread_name(name: &std::ffi::CStr) {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris"
    ))]
    // SAFETY: names the calling thread with a NUL-terminated string of at most 15 bytes.
    unsafe {
        libc::pthread_setname_np(libc::pthread_self(), name.as_ptr());
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    // SAFETY: as above (this platform names only the calling thread).
    unsafe {
        libc::pthread_setname_np(name.as_ptr());
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris",
        target_os = "macos",
        target_os = "ios"
    )))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::counted_id;

    #[test]
    fn counted_ids_are_stable_per_thread_and_distinct() {
        let mine = counted_id();
        assert_ne!(mine, 0);
        assert_eq!(mine, counted_id());
        let theirs: Vec<i32> =
            (0..4).map(|_| std::thread::spawn(counted_id).join().unwrap()).collect();
        let mut all = theirs.clone();
        all.push(mine);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5, "ids repeat: {theirs:?} and {mine}");
    }
}
