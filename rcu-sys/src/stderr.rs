//! The runtime's reports on stderr (stall reports, leaked guards, panicking callbacks),
//! written with `write(2)` instead of through `std::io::stderr()`: std's stderr lock, held
//! by a thread that does not exist in a forked child, would block the child's first report
//! for ever, and at thread exit std's stderr may already be gone.

/// Writes `line` and a newline to fd 2, best effort (a report has nowhere else to go).
///
/// ```
/// rcu_sys::stderr::report_line("rcu: an example report");
/// ```
pub fn report_line(line: &str) {
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
