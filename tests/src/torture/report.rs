//! What a run counts, the live one-line report, the final summary and its JSON form.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::arena::PIPE_LEN;
use super::config::Tests;
use super::frees::FreesReport;

/// The checks a run performs, each with its own failure count and verdict in the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Readers: no element older than one grace period, poisoned or reused under them.
    Age,
    /// Readers: a cookie taken inside a section does not complete during it.
    Polled,
    /// Counted `call_rcu` traffic: everything queued ran after `rcu_barrier`, callback
    /// chains finished, nothing left pending; no tracked value freed twice, early or with
    /// the wrong layout.
    Callbacks,
    /// Barrier rounds and the final barrier: every callback posted and every tracked
    /// deferred free queued before `rcu_barrier` had run, been dropped and been deallocated
    /// when it returned.
    Barrier,
    /// A `call_rcu` flood: grace periods and callbacks keep going, memory stays bounded.
    ForwardProgress,
    /// A reader held past the stall timeout is reported.
    Stall,
    /// `RcuHashMap`: readers see every value intact while writers insert, remove, update and
    /// the table resizes both ways; every value made is dropped once.
    Map,
    /// QSBR flavors: the tortured domain's grace periods issued no membarrier (they pair
    /// with readers by fences: `DomainStats::membarriers`).
    Membarrier,
    /// No torture thread panicked, and failures no other check claims.
    Threads,
}

impl Check {
    /// Every check, in the summary's order.
    pub const ALL: [Check; 9] = [
        Check::Age,
        Check::Polled,
        Check::Callbacks,
        Check::Barrier,
        Check::ForwardProgress,
        Check::Stall,
        Check::Map,
        Check::Membarrier,
        Check::Threads,
    ];

    /// Its name in the summary and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Check::Age => "age",
            Check::Polled => "polled",
            Check::Callbacks => "callbacks",
            Check::Barrier => "barrier",
            Check::ForwardProgress => "forward-progress",
            Check::Stall => "stall",
            Check::Map => "map",
            Check::Membarrier => "membarrier",
            Check::Threads => "threads",
        }
    }

    /// What it verifies, in a few words.
    fn what(self) -> &'static str {
        match self {
            Check::Age => "no reader saw an element older than 1 grace period, poisoned or reused",
            Check::Polled => "no cookie taken inside a read section completed during it",
            Check::Callbacks => {
                "every counted call_rcu ran by the final rcu_barrier; every tracked free freed once"
            }
            Check::Barrier => {
                "every callback and kvfree_rcu'd value queued before rcu_barrier had run, been \
                 dropped and deallocated when it returned"
            }
            Check::ForwardProgress => {
                "grace periods and callbacks kept going under a call_rcu flood, memory bounded"
            }
            Check::Stall => "a reader held past the stall timeout was reported",
            Check::Map => {
                "RcuHashMap readers saw every value intact through inserts, removes and resizes"
            }
            Check::Membarrier => "the QSBR domain's grace periods issued no membarrier",
            Check::Threads => "no torture thread panicked",
        }
    }

    /// Whether `tests` switched it on (`Threads` always runs; `Membarrier` under the QSBR
    /// flavors, `qsbr`).
    pub fn enabled(self, tests: &Tests, qsbr: bool) -> bool {
        match self {
            Check::Age => tests.age,
            Check::Polled => tests.polled,
            Check::Callbacks => tests.callbacks,
            Check::Barrier => tests.barrier,
            Check::ForwardProgress => tests.forward_progress,
            Check::Stall => tests.stall,
            Check::Map => tests.map,
            Check::Membarrier => qsbr,
            Check::Threads => true,
        }
    }

    fn index(self) -> usize {
        Check::ALL.iter().position(|c| *c == self).expect("listed")
    }
}

/// Buckets of the age histogram: ages 0 to `PIPE_LEN`, the last also counting older.
pub const AGE_BUCKETS: usize = PIPE_LEN as usize + 1;

/// Live counters, shared by every torture thread. All Relaxed: they are statistics, read
/// after the threads are joined or approximately by the reporter.
#[derive(Debug, Default)]
pub struct Counters {
    /// Read sections completed.
    pub reads: AtomicU64,
    /// Sleepable flavors: read sections checked and ended on another thread than the one
    /// that began them (owned guards handed over).
    pub handovers: AtomicU64,
    /// Age histogram of elements seen by readers.
    pub ages: [AtomicU64; AGE_BUCKETS],
    /// Elements published by the writer.
    pub updates: AtomicU64,
    /// Counted callbacks queued by updaters.
    pub cb_queued: AtomicU64,
    /// Counted callbacks that ran.
    pub cb_done: AtomicU64,
    /// Barrier rounds passed.
    pub barriers: AtomicU64,
    /// Callback chains (elements aged by callbacks) not yet finished.
    pub chains: AtomicU64,
    /// Stall reports received by the stall test.
    pub stalls: AtomicU64,
    /// QSBR flavors: quiescent states the readers announced.
    pub quiescent_states: AtomicU64,
    /// QSBR flavors: times a reader went offline (and back online).
    pub offline_periods: AtomicU64,
    /// Failures detected.
    pub errors: AtomicU64,
    /// Failures per check (`Check::ALL`'s order); `fail` counts under `Check::Threads`.
    pub check_errors: [AtomicU64; Check::ALL.len()],
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

    /// Records a failure that no particular check claims (counted under `Check::Threads`).
    pub fn fail(&self, message: impl Into<String>) {
        self.fail_check(Check::Threads, message);
    }

    /// Records a failure of `check`.
    pub fn fail_check(&self, check: Check, message: impl Into<String>) {
        Self::bump(&self.errors);
        Self::bump(&self.check_errors[check.index()]);
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

    /// Failures per check, in `Check::ALL`'s order.
    pub fn check_errors(&self) -> [u64; Check::ALL.len()] {
        core::array::from_fn(|i| Self::get(&self.check_errors[i]))
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

/// What a QSBR flavor's readers and grace periods did.
#[derive(Clone, Copy, Debug, Default)]
pub struct QsbrFigures {
    /// Quiescent states the readers announced.
    pub quiescent_states: u64,
    /// Times a reader went offline and back online.
    pub offline_periods: u64,
    /// Membarriers the run's QSBR domains' grace periods issued: must be 0.
    pub membarriers: u64,
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
    /// Read sections checked and ended on another thread than the one that began them.
    pub handovers: u64,
    /// The updaters' tracked deferred frees.
    pub deferred_frees: FreesReport,
    /// Stall reports seen by the stall test.
    pub stalls: u64,
    /// Elements freed (aged out).
    pub frees: u64,
    /// Failure messages (the first few).
    pub messages: Vec<String>,
    /// The checks switched on.
    pub tests: Tests,
    /// Failures per check, in `Check::ALL`'s order.
    pub check_errors: [u64; Check::ALL.len()],
    /// True if fault injection or small blocks were on (fallbacks are then expected).
    pub forced_fallbacks: bool,
    /// QSBR flavors: what the readers and grace periods did (`None` for the others).
    pub qsbr: Option<QsbrFigures>,
}

impl Summary {
    /// True if no check failed.
    pub fn success(&self) -> bool {
        self.last.errors == 0
    }

    /// `check`'s verdict: "ok", "FAILED (n)" or "off" (switched off for this run).
    pub fn verdict(&self, check: Check) -> String {
        let errors = self.check_errors[check.index()];
        if errors > 0 {
            format!("FAILED ({errors})")
        } else if check.enabled(&self.tests, self.qsbr.is_some()) {
            "ok".to_string()
        } else {
            "off".to_string()
        }
    }

    /// What `check` counted, and which counts are expected to be non-zero.
    fn evidence(&self, check: Check) -> String {
        let l = &self.last;
        match check {
            Check::Age if self.handovers > 0 => format!(
                "{} reads checked, {} of them on another thread than the one that began the \
                 section (owned guards handed over); ages 0 and 1 are normal",
                l.reads, self.handovers
            ),
            Check::Age => format!("{} reads checked; ages 0 and 1 are normal", l.reads),
            Check::Polled => format!("checked on each of the {} reads", l.reads),
            Check::Callbacks => {
                format!("{}/{} counted callbacks ran", self.cb_done, self.cb_queued)
            }
            Check::Barrier => {
                let f = &self.deferred_frees;
                let mut by = String::new();
                for (i, (domain, mode, n)) in f.by.iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        _ if f.by[i - 1].0 != *domain => "; ",
                        _ => ", ",
                    };
                    let head = if sep == ", " { String::new() } else { format!("{domain}: ") };
                    let _ = write!(by, "{sep}{head}{mode} {n}");
                }
                format!(
                    "{} barrier rounds; {} deferred frees judged by the first round after them, \
                     all {} by the final barrier ({}); {} waits for a lane's oldest free",
                    self.barriers,
                    f.judged_in_rounds,
                    f.queued,
                    by,
                    f.ring_waits
                )
            }
            Check::ForwardProgress => "flood measured against grace periods and budget".into(),
            Check::Stall => format!(
                "{} stall report(s): expected, at least 1 (the test holds a reader past the \
                 timeout on purpose; reports repeat at doubling intervals while it waits)",
                self.stalls
            ),
            Check::Map => "checksum, key and drop poison of every value read; values made == dropped after rcu_barrier".into(),
            Check::Membarrier => format!(
                "{} membarrier(s) over {} grace periods (readers fence going online instead)",
                self.qsbr.unwrap_or_default().membarriers,
                l.gps
            ),
            Check::Threads => "every thread joined".into(),
        }
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
            "  counted callbacks {}/{}  deferred frees {}  barrier rounds {}  stall reports {}  \
             fallbacks {}",
            self.cb_done,
            self.cb_queued,
            self.deferred_frees.queued,
            self.barriers,
            self.stalls,
            l.fallbacks
        );
        if let Some(q) = &self.qsbr {
            let _ = writeln!(
                s,
                "  qsbr: quiescent states {}  offline periods {}  membarriers {}",
                q.quiescent_states, q.offline_periods, q.membarriers
            );
        }
        let _ = writeln!(s, "  checks:");
        for check in Check::ALL {
            let verdict = self.verdict(check);
            let detail =
                if verdict == "off" { "not run".to_string() } else { self.evidence(check) };
            let _ = writeln!(
                s,
                "    {:<16} {:<10} {}: {}",
                check.name(),
                verdict,
                check.what(),
                detail
            );
        }
        let _ = writeln!(
            s,
            "  fallbacks {}: {}",
            l.fallbacks,
            if self.forced_fallbacks {
                "expected (fault injection or small blocks force the fallback paths to run)"
            } else {
                "allocation fallbacks taken on their own (not a failure)"
            }
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
        let checks: Vec<String> = Check::ALL
            .iter()
            .map(|c| format!("\"{}\":\"{}\"", c.name(), self.verdict(*c)))
            .collect();
        let qsbr = match &self.qsbr {
            Some(q) => format!(
                "{{\"quiescent_states\":{},\"offline_periods\":{},\"membarriers\":{}}}",
                q.quiescent_states, q.offline_periods, q.membarriers
            ),
            None => "null".into(),
        };
        format!(
            "{{\"flavor\":\"{}\",\"seconds\":{:.3},\"result\":\"{}\",\"errors\":{},\
             \"grace_periods\":{},\"reads\":{},\"handovers\":{},\"updates\":{},\"frees\":{},\"ages\":{:?},\
             \"cb_queued\":{},\"cb_done\":{},\"deferred_frees\":{},\"barriers\":{},\
             \"stalls\":{},\"fallbacks\":{},\"qsbr\":{},\"checks\":{{{}}},\"messages\":[{}]}}",
            self.flavor,
            self.seconds,
            if self.success() { "SUCCESS" } else { "FAILURE" },
            l.errors,
            l.gps,
            l.reads,
            self.handovers,
            l.updates,
            self.frees,
            l.ages,
            self.cb_queued,
            self.cb_done,
            self.deferred_frees.queued,
            self.barriers,
            self.stalls,
            l.fallbacks,
            qsbr,
            checks.join(","),
            messages.join(",")
        )
    }
}
