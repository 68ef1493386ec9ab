//! The runtime's threads are started with `pthread_create`, not `std::thread`: a thread that
//! std starts takes a lock of std's own as it starts (its per-thread bookkeeping), and a
//! forked child, which must start the runtime's threads again, would block for ever on that
//! lock if some thread of the parent held it at the fork (seen in `tests/fork_storm.rs`: every
//! thread the child started waited on one futex). A runtime thread needs nothing std's start
//! gives: it names itself, blocks every signal, and catches a panic of its body (the panic
//! hook has reported it; nothing may unwind into C).

use std::ffi::CString;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Stack size of a runtime thread: std's default for spawned threads.
const STACK_BYTES: usize = 2 << 20;

/// What the new thread starts with.
struct Start {
    name: CString,
    body: Box<dyn FnOnce() + Send>,
}

/// A started thread, to join or detach (exactly once) or, in a forked child, to forget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawThread(pub(crate) libc::pthread_t);

/// Starts `body` on a new thread named `name` (cut to the kernel's 15 bytes) with every
/// signal blocked: the process's signal handlers never run on a runtime thread, where they
/// could interrupt the runtime's own allocations (DESIGN §5.1; liburcu's threads do the same).
///
/// # Panics
/// If `name` contains a NUL byte.
pub(crate) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<RawThread> {
    let mut cut = name.len().min(15);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = CString::new(&name[..cut]).expect("checked by the caller: no NUL byte");
    let start = Box::into_raw(Box::new(Start { name, body: Box::new(body) }));
    // SAFETY: plain data, initialised by pthread_attr_init below.
    let mut attr: libc::pthread_attr_t = unsafe { core::mem::zeroed() };
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut all: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: an integer or a pointer (by platform); pthread_create writes it before use.
    let mut thread: libc::pthread_t = unsafe { core::mem::zeroed() };
    // SAFETY: every pointer is to a live local; the new thread inherits the full mask set
    // here, and this thread's own mask is restored right after pthread_create, which cannot
    // unwind. `start` is handed to the thread, or taken back below if it did not start.
    let rc = unsafe {
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, STACK_BYTES);
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let rc = libc::pthread_create(&mut thread, &attr, thread_main, start.cast());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        rc
    };
    if rc != 0 {
        // SAFETY: the thread did not start, so `start` is still ours.
        drop(unsafe { Box::from_raw(start) });
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(RawThread(thread))
}

extern "C" fn thread_main(start: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `spawn` passed a `Box<Start>` it gave up.
    let Start { name, body } = *unsafe { Box::from_raw(start.cast::<Start>()) };
    crate::identity::set_thread_name(&name);
    // The panic hook has reported a panic already; it must not unwind into C, nor may its
    // payload, whose drop may panic too.
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        crate::contain::drop_payload(payload);
    }
    core::ptr::null_mut()
}

/// Starts `body` on a runtime thread (as `spawn`) that nobody joins: it finishes on its own.
/// For work the runtime hands off so that the caller never waits for it (the wakes of async
/// registrations made before a fork, in the child).
///
/// # Panics
/// If `name` contains a NUL byte.
pub fn spawn_detached(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<()> {
    spawn(name, body).map(RawThread::detach)
}

impl RawThread {
    /// The handle as a word, for an atomic (`pthread_t` is an integer on Linux, a pointer on
    /// macOS and FreeBSD); never 0 for a started thread.
    pub(crate) fn into_word(self) -> usize {
        self.0 as usize
    }

    /// The handle `into_word` gave.
    pub(crate) fn from_word(word: usize) -> Self {
        RawThread(word as libc::pthread_t)
    }

    /// Waits for the thread to finish.
    pub(crate) fn join(self) {
        // SAFETY: a thread from `spawn`, joined or detached once (the caller's handle moves).
        unsafe { libc::pthread_join(self.0, core::ptr::null_mut()) };
    }

    /// Lets the thread finish on its own.
    pub(crate) fn detach(self) {
        // SAFETY: as in `join`.
        unsafe { libc::pthread_detach(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::spawn;

    /// A panic payload whose drop panics.
    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("a runtime thread's panic payload panicked in its drop (on purpose)");
        }
    }

    /// A body that panics with such a payload ends its thread, which can be joined: the
    /// payload's own panic is contained too (dropped bare, it unwound into C: an abort).
    #[test]
    fn a_body_whose_panic_payload_panics_when_dropped_ends_its_thread() {
        const NAME: &[u8] = b"rcu-test-bomb\0";
        // The two panics are on purpose: kept out of the output (libtest does not capture a
        // raw thread's), every other panic still reported.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut name = [0u8; 16];
            crate::thread_name(&mut name);
            if !name.starts_with(NAME) {
                previous(info);
            }
        }));
        let thread = spawn("rcu-test-bomb", || std::panic::panic_any(Bomb)).expect("spawn");
        thread.join();
    }
}
