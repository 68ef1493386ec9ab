//! What a run counts, the live one-line report, the final summary and its JSON form.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::arena::PIPE_LEN;

/// Buckets of the age histogram: ages 0 to `PIPE_LEN`, the last also counting older.
pub const AGE_BUCKETS: usize = PIPE_LEN as usize + 1;

/// Live counters, shared by every torture thread. All Relaxed: they are statistics, read
/// after the threads are joined or approximately by the reporter.
#[derive(Debug, Default)]
pub struct Counters {
    /// Read sections completed.
    pub reads: AtomicU64,
    /// Age histogram of elements seen by readers.
    pub ages: [AtomicU64; AGE_BUCKETS],
    /// Elements published by the writer.
    pub updates: AtomicU64,
    /// Counted deferred items queued by updaters.
    pub cb_queued: AtomicU64,
    /// Counted deferred items that ran (dropped or called back).
    pub cb_done: AtomicU64,
    /// Barrier rounds passed.
    pub barriers: AtomicU64,
    /// Callback chains (elements aged by callbacks) not yet finished.
    pub chains: AtomicU64,
    /// Stall reports received by the stall test.
    pub stalls: AtomicU64,
    /// Failures detected.
    pub errors: AtomicU64,
    messages: crate::SpinLock<Vec<String>>,
}

/// Keep this many failure messages; the rest are only counted.
const MAX_MESSAGES: usize = 20;

impl Counters {
    /// Adds one to `c`.
    pub fn bump(c: &AtomicU64) {
        // Relaxed: a statistic (see the type's docs).
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `c`.
    pub fn get(c: &AtomicU64) -> u64 {
        // Relaxed: a statistic (see the type's docs).
        c.load(Ordering::Relaxed)
    }

    /// Records a failure.
    pub fn fail(&self, message: impl Into<String>) {
        Self::bump(&self.errors);
        let message = message.into();
        self.messages.with(|m| {
            if m.len() < MAX_MESSAGES {
                m.push(message);
            }
        });
    }

    /// The failure messages kept.
    pub fn messages(&self) -> Vec<String> {
        self.messages.with(|m| m.clone())
    }

    /// The age histogram.
    pub fn age_histogram(&self) -> [u64; AGE_BUCKETS] {
        core::array::from_fn(|i| Self::get(&self.ages[i]))
    }
}

/// A point-in-time view for the live report.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Seconds since the start.
    pub elapsed: f64,
    /// Grace periods completed.
    pub gps: u64,
    /// Read sections.
    pub reads: u64,
    /// Elements published.
    pub updates: u64,
    /// Deferred items queued / run in the domain (all traffic).
    pub domain_queued: u64,
    /// As above.
    pub domain_invoked: u64,
    /// Allocation fallbacks, all policies.
    pub fallbacks: u64,
    /// Pending bytes in the domain.
    pub pending_bytes: u64,
    /// Failures.
    pub errors: u64,
    /// Ages seen.
    pub ages: [u64; AGE_BUCKETS],
}

fn si(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

impl Sample {
    /// One line: totals, rates since `prev`, age histogram, fallbacks, errors.
    pub fn line(&self, prev: &Sample) -> String {
        let dt = (self.elapsed - prev.elapsed).max(1e-9);
        let rate = |a: u64, b: u64| si(((a.saturating_sub(b)) as f64 / dt) as u64);
        let mut ages = String::new();
        for (i, n) in self.ages.iter().enumerate() {
            let _ = write!(ages, "{}{}", if i == 0 { "" } else { " " }, si(*n));
        }
        format!(
            "[{:>5.1}s] gp {} (+{}/s) reads {} (+{}/s) updates {} cb {}/{} pending {} KiB \
             fallbacks {} ages [{}] errors {}",
            self.elapsed,
            si(self.gps),
            rate(self.gps, prev.gps),
            si(self.reads),
            rate(self.reads, prev.reads),
            si(self.updates),
            si(self.domain_queued),
            si(self.domain_invoked),
            self.pending_bytes / 1024,
            si(self.fallbacks),
            ages,
            self.errors
        )
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Flavor name.
    pub flavor: &'static str,
    /// Seconds run.
    pub seconds: f64,
    /// The last sample.
    pub last: Sample,
    /// Counted callback traffic queued / done.
    pub cb_queued: u64,
    /// As above.
    pub cb_done: u64,
    /// Barrier rounds passed.
    pub barriers: u64,
    /// Stall reports seen by the stall test.
    pub stalls: u64,
    /// Elements freed (aged out).
    pub frees: u64,
    /// Failure messages (the first few).
    pub messages: Vec<String>,
}

impl Summary {
    /// True if no check failed.
    pub fn success(&self) -> bool {
        self.last.errors == 0
    }

    /// The human summary, ending in SUCCESS or FAILURE.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let l = &self.last;
        let _ = writeln!(s, "rcutorture summary ({} flavor, {:.1}s):", self.flavor, self.seconds);
        let _ = writeln!(
            s,
            "  grace periods {}  reads {}  updates {}  elements freed {}",
            l.gps, l.reads, l.updates, self.frees
        );
        let _ = writeln!(s, "  age histogram (0..{}+): {:?}", AGE_BUCKETS - 1, l.ages);
        let _ = writeln!(
            s,
            "  counted callbacks {}/{}  barrier rounds {}  stall reports {}  fallbacks {}",
            self.cb_done, self.cb_queued, self.barriers, self.stalls, l.fallbacks
        );
        for m in &self.messages {
            let _ = writeln!(s, "  error: {m}");
        }
        if self.success() {
            s.push_str("SUCCESS");
        } else {
            let _ = write!(s, "FAILURE: {} error(s)", l.errors);
        }
        s
    }

    /// The summary as one JSON object.
    pub fn json(&self) -> String {
        let l = &self.last;
        let messages: Vec<String> = self.messages.iter().map(|m| format!("{m:?}")).collect();
        format!(
            "{{\"flavor\":\"{}\",\"seconds\":{:.3},\"result\":\"{}\",\"errors\":{},\
             \"grace_periods\":{},\"reads\":{},\"updates\":{},\"frees\":{},\"ages\":{:?},\
             \"cb_queued\":{},\"cb_done\":{},\"barriers\":{},\"stalls\":{},\"fallbacks\":{},\
             \"messages\":[{}]}}",
            self.flavor,
            self.seconds,
            if self.success() { "SUCCESS" } else { "FAILURE" },
            l.errors,
            l.gps,
            l.reads,
            l.updates,
            self.frees,
            l.ages,
            self.cb_queued,
            self.cb_done,
            self.barriers,
            self.stalls,
            l.fallbacks,
            messages.join(",")
        )
    }
}
