//! The runtime's reports on stderr (stall reports, leaked guards, panicking callbacks),
//! written with `write(2)` instead of through `std::io::stderr()`: std's stderr lock, held
//! by a thread that does not exist in a forked child, would block the child's first report
//! for ever, and at thread exit std's stderr may already be gone.
//!
//! A program that logs elsewhere (or a test that panics on purpose and checks the reports)
//! redirects them with [`set_report_sink`].

use std::sync::atomic::{AtomicPtr, Ordering};

/// Where reports go: null for fd 2, else a `fn(&str)` cast to a pointer. A plain function
/// pointer in an atomic, so that a report takes no lock and allocates nothing to find it
/// (reports are made in forked children and at thread exit).
static SINK: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Sends every later report of the runtime to `sink` instead of fd 2 (`None`: back to fd
/// 2), process-wide, and returns the sink it replaces.
///
/// The sink receives one report per call, without the trailing newline. It runs on whichever
/// thread makes the report: a domain's worker, a thread in its exit destructors, the only
/// thread of a forked child. So it must not take a lock another thread may hold (in a forked
/// child that thread is gone and the lock stays held), nor use `std::io::stderr()` or
/// thread-locals; appending to a lock-free log, counting, or `write(2)` is fine. A sink that
/// panics is contained and its line written to fd 2.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static REPORTS: AtomicUsize = AtomicUsize::new(0);
/// fn count(_line: &str) {
///     REPORTS.fetch_add(1, Ordering::Relaxed);
/// }
/// let previous = rcu_sys::stderr::set_report_sink(Some(count));
/// rcu_sys::stderr::report_line("rcu: an example report");
/// assert_eq!(REPORTS.load(Ordering::Relaxed), 1);
/// rcu_sys::stderr::set_report_sink(previous);
/// ```
pub fn set_report_sink(sink: Option<fn(&str)>) -> Option<fn(&str)> {
    let new = sink.map_or(std::ptr::null_mut(), |f| f as *mut ());
    // AcqRel: Release publishes what the caller set up for `sink` before it, to the Acquire
    // load in `report_line`; Acquire does the same for the sink it returns.
    let old = SINK.swap(new, Ordering::AcqRel);
    // SAFETY: non-null values of `SINK` are `fn(&str)` pointers stored above.
    (!old.is_null()).then(|| unsafe { std::mem::transmute::<*mut (), fn(&str)>(old) })
}

/// Writes `line` and a newline to fd 2 (or hands `line` to the sink set with
/// [`set_report_sink`]), best effort (a report has nowhere else to go).
///
/// ```
/// rcu_sys::stderr::report_line("rcu: an example report");
/// ```
pub fn report_line(line: &str) {
    // Acquire: pairs with the swap in `set_report_sink`.
    let sink = SINK.load(Ordering::Acquire);
    if !sink.is_null() {
        // SAFETY: non-null values of `SINK` are `fn(&str)` pointers (`set_report_sink`).
        let sink = unsafe { std::mem::transmute::<*mut (), fn(&str)>(sink) };
        if crate::contain::contain(|| sink(line)).is_some() {
            return;
        }
    }
    write_line(line);
}

/// Writes `line` and a newline to fd 2 with `write(2)`.
fn write_line(line: &str) {
    let mut rest = line.as_bytes();
    for chunk in [&mut rest, &mut &b"\n"[..]] {
        while !chunk.is_empty() {
            // SAFETY: writes at most `chunk.len()` bytes from a live buffer to fd 2.
            let n = unsafe { libc::write(2, chunk.as_ptr().cast(), chunk.len()) };
            if n <= 0 {
                // Interrupted: try again; anything else (closed, full): give up.
                if n < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                return;
            }
            *chunk = &chunk[n as usize..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{report_line, set_report_sink};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static PANICKED: AtomicUsize = AtomicUsize::new(0);

    fn record(line: &str) {
        SEEN.lock().unwrap().push(line.to_owned());
    }

    fn panics(_: &str) {
        PANICKED.fetch_add(1, Ordering::SeqCst);
        panic!("a report sink that panics (on purpose)");
    }

    /// What `f` writes to fd 2 (and whatever another thread writes there meanwhile).
    fn fd2_of(f: impl FnOnce()) -> String {
        let mut pipe = [0; 2];
        // SAFETY: `pipe` is a valid out-array of two fds.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: dup/dup2/close of fds this function owns, and of fd 2, restored below.
        let saved = unsafe { libc::dup(2) };
        // SAFETY: as above.
        unsafe { libc::dup2(pipe[1], 2) };
        f();
        // SAFETY: as above; closing every write end lets the read below see the end.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
            libc::close(pipe[1]);
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf` from our pipe.
            let n = unsafe { libc::read(pipe[0], buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        // SAFETY: our read end.
        unsafe { libc::close(pipe[0]) };
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One test, so that no other test of this binary sets a sink meanwhile.
    #[test]
    fn a_sink_receives_each_report_until_it_is_replaced() {
        let quiet = fd2_of(|| {
            assert!(set_report_sink(Some(record)).is_none(), "no sink before the first");
            report_line("rcu-sys: first report");
            report_line("rcu-sys: second report");
        });
        assert_eq!(*SEEN.lock().unwrap(), ["rcu-sys: first report", "rcu-sys: second report"]);
        assert!(!quiet.contains("rcu-sys: first report"), "a sunk report reached fd 2: {quiet}");

        // A panicking sink is contained: the report goes to fd 2 and the caller goes on.
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.to_string().contains("(on purpose)") {
                default(info);
            }
        }));
        let fallback = fd2_of(|| {
            let previous = set_report_sink(Some(panics));
            assert_eq!(previous.map(|f| f as usize), Some(record as fn(&str) as usize));
            report_line("rcu-sys: a report whose sink panicked");
        });
        assert_eq!(PANICKED.load(Ordering::SeqCst), 1);
        assert!(fallback.contains("rcu-sys: a report whose sink panicked\n"), "{fallback:?}");

        let direct = fd2_of(|| {
            let last = set_report_sink(None);
            assert_eq!(last.map(|f| f as usize), Some(panics as fn(&str) as usize));
            report_line("rcu-sys: to fd 2 again");
        });
        assert!(direct.contains("rcu-sys: to fd 2 again\n"), "{direct:?}");
        assert_eq!(SEEN.lock().unwrap().len(), 2, "the sink was replaced");
        assert_eq!(PANICKED.load(Ordering::SeqCst), 1, "the sink was replaced");
    }
}
