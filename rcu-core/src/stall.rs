//! Stall detection: what is reported when a reader holds up a grace period too long, and to
//! whom.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A grace period held up by one reader for longer than the domain's stall timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StallReport {
    /// Name of the domain ("global" for the global domain).
    pub domain: String,
    /// The blocking reader thread's name, if it has one.
    pub thread_name: Option<String>,
    /// The blocking reader thread's kernel thread id.
    pub tid: i32,
    /// How long the grace period has waited so far.
    pub blocked_for: Duration,
    /// The stalled grace period's sequence number.
    pub gp_seq: u64,
    /// Callbacks and deferred frees queued on the domain and not yet run.
    pub pending_callbacks: u64,
}

impl core::fmt::Display for StallReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "rcu: grace period {} of domain '{}' stalled for {:.3}s by reader thread '{}' \
             (tid {}); {} callbacks pending: a read section is held too long (a blocked or \
             looping reader?)",
            self.gp_seq,
            self.domain,
            self.blocked_for.as_secs_f64(),
            self.thread_name.as_deref().unwrap_or("<unnamed>"),
            self.tid,
            self.pending_callbacks
        )
    }
}

/// Receives stall reports; called on the thread that drives the grace period.
pub type StallHandler = Arc<dyn Fn(&StallReport) + Send + Sync>;

/// Where a domain's stall reports go: the default prints one line to stderr.
pub(crate) struct StallSink {
    handler: Mutex<Option<StallHandler>>,
}

impl core::fmt::Debug for StallSink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StallSink")
    }
}

impl StallSink {
    pub(crate) const fn new() -> Self {
        StallSink { handler: Mutex::new(None) }
    }

    pub(crate) fn set(&self, handler: Option<StallHandler>) {
        *self.handler.lock().unwrap_or_else(|e| e.into_inner()) = handler;
    }

    pub(crate) fn report(&self, report: &StallReport) {
        // Clone out, so the handler runs without the lock held.
        let handler = self.handler.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match handler {
            Some(h) => h(report),
            None => eprintln!("{report}"),
        }
    }
}

/// When to report next: after the timeout, then at doubling intervals, so a long stall
/// produces a handful of lines rather than a flood.
#[derive(Debug)]
pub(crate) struct StallClock {
    next_report: Duration,
}

impl StallClock {
    pub(crate) fn new(timeout: Duration) -> Self {
        StallClock { next_report: timeout }
    }

    /// True if a report is due at `elapsed`; advances the clock when it is.
    pub(crate) fn due(&mut self, elapsed: Duration) -> bool {
        if elapsed < self.next_report {
            return false;
        }
        self.next_report = self.next_report.saturating_mul(2).max(elapsed);
        true
    }
}
