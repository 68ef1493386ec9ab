//! Stall detection (DESIGN §5): a grace period held up longer than the stall timeout reports
//! the blocking reader (name, id, how long, grace-period number) through the domain's
//! handler, then backs off (reports at doubling intervals) instead of flooding.

mod common;

use std::sync::Arc;

use rcu_tests::SpinLock;
use std::time::{Duration, Instant};

use common::{wait_until, Pending, ReaderThread, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, StallReport};

const TIMEOUT: Duration = Duration::from_millis(100);

/// How long the reader holds at least, so that the first reports (due at 100 and 200 ms of
/// the grace period) fall inside the hold.
const MIN_HOLD: Duration = Duration::from_millis(400);

type Reports = Arc<SpinLock<Vec<(Instant, StallReport)>>>;

/// Installs a handler on `domain` that records each report with its arrival time.
fn record_reports(domain: &Domain) -> Reports {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    domain.set_stall_handler(Some(Arc::new(move |report: &StallReport| {
        sink.with(|r| r.push((Instant::now(), report.clone())));
    })));
    reports
}

fn count(reports: &Reports) -> usize {
    reports.with(|r| r.len())
}

/// What one held-up grace period produced.
struct Stall {
    /// When the writer was started (no later than its grace period).
    start: Instant,
    /// From `start` until the writer returned: no report can be later.
    total: Duration,
    reports: Vec<(Instant, StallReport)>,
}

/// A reader named `reader_name` enters; a writer waits for a grace period (expedited or
/// not); the reader holds at least `MIN_HOLD` and until a report has arrived (at most
/// `PATIENCE`), then leaves.
fn hold_up_a_grace_period(
    domain: &Arc<Domain>,
    reports: &Reports,
    reader_name: &str,
    expedited: bool,
) -> (Stall, i32) {
    let mut reader = ReaderThread::spawn(domain.clone(), reader_name);
    reader.enter();
    let already = count(reports);
    let start = Instant::now();
    let writer = Pending::spawn("stall-writer", {
        let domain = domain.clone();
        move || {
            let ctx = Sleepable::enter();
            if expedited {
                domain.synchronize_rcu_expedited(&ctx);
            } else {
                domain.synchronize_rcu(&ctx);
            }
        }
    });
    let reported = wait_until(PATIENCE, || count(reports) > already);
    std::thread::sleep(MIN_HOLD.saturating_sub(start.elapsed()));
    reader.exit();
    writer.join("the stalled grace period after its reader left");
    let total = start.elapsed();
    let reports: Vec<_> = reports.with(|r| r[already..].to_vec());
    assert!(
        reported && !reports.is_empty(),
        "no stall report while a reader held a grace period for {total:?} \
         (stall timeout {TIMEOUT:?})"
    );
    (Stall { start, total, reports }, reader.tid())
}

fn stall_is_reported_then_backs_off(expedited: bool) {
    let name = if expedited { "stall-exp" } else { "stall-norm" };
    let domain = Arc::new(Domain::new(DomainConfig::new().name(name).stall_timeout(TIMEOUT)));
    let reports = record_reports(&domain);
    let before = domain.stats();
    let (stall, tid) = hold_up_a_grace_period(&domain, &reports, "stall-reader", expedited);
    let (first_at, first) = &stall.reports[0];
    let latency = first_at.duration_since(stall.start);
    // No upper bound on the latency: when the leader gets to report is the scheduler's
    // business on a loaded machine. That a report comes at all is checked within `PATIENCE`
    // (a watchdog meaning hung); what it says, and the back-off, below.
    assert!(latency >= TIMEOUT, "reported after {latency:?}, before the timeout {TIMEOUT:?}");

    // Who and what.
    assert!(first.tid != 0);
    assert_eq!(first.tid, tid, "the report names another thread: {first:?}");
    assert_eq!(first.thread_name.as_deref(), Some("stall-reader"), "{first:?}");
    assert_eq!(first.domain, name);
    assert_eq!(first.gp_seq, before.gp_seq + 1, "{first:?}");
    assert!(first.blocked_for >= TIMEOUT, "{first:?}");
    let line = first.to_string();
    assert!(line.contains("stall-reader") && line.contains(name), "{line}");

    // Back-off: report i is due once the grace period has waited TIMEOUT * 2^i, so over the
    // whole hold there are at most 1 + log2(total / TIMEOUT) of them (3 for ~400 ms).
    for (i, (_, r)) in stall.reports.iter().enumerate() {
        assert!(r.blocked_for >= TIMEOUT * 2u32.pow(i as u32), "report {i} too early: {r:?}");
        assert_eq!((r.tid, r.gp_seq), (first.tid, first.gp_seq), "{r:?}");
    }
    let bound = 1 + (stall.total.as_secs_f64() / TIMEOUT.as_secs_f64()).log2().floor() as usize;
    assert!(
        stall.reports.len() <= bound.max(1),
        "{} reports over {:?}: no back-off",
        stall.reports.len(),
        stall.total
    );
    if stall.total < Duration::from_millis(1600) {
        assert!(stall.reports.len() <= 4);
    }
    let after = domain.stats();
    assert_eq!(after.stalls - before.stalls, stall.reports.len() as u64, "{after:?}");
}

#[test]
fn stall_is_reported_then_backs_off_normal() {
    stall_is_reported_then_backs_off(false);
}

#[test]
fn stall_is_reported_then_backs_off_expedited() {
    stall_is_reported_then_backs_off(true);
}

/// A reader that leaves well within the timeout causes no report.
#[test]
fn no_report_for_a_reader_within_the_timeout() {
    let timeout = Duration::from_secs(3);
    let domain =
        Arc::new(Domain::new(DomainConfig::new().name("stall-none").stall_timeout(timeout)));
    let reports = record_reports(&domain);
    let mut reader = ReaderThread::spawn(domain.clone(), "quick-reader");
    reader.enter();
    let start = Instant::now();
    let writer = Pending::spawn("writer", {
        let domain = domain.clone();
        move || domain.synchronize_rcu(&Sleepable::enter())
    });
    std::thread::sleep(HOLD);
    reader.exit();
    writer.join("a grace period after a short hold");
    if start.elapsed() < timeout {
        assert_eq!(count(&reports), 0, "a report although the reader left in time");
        assert_eq!(domain.stats().stalls, 0);
    }
}

/// The timeout and the handler can be changed on a live domain.
#[test]
fn stall_timeout_and_handler_can_be_changed() {
    // The default timeout (21 s) would never fire in this test.
    let domain = Arc::new(Domain::new(DomainConfig::new().name("stall-set")));
    domain.set_stall_timeout(TIMEOUT);
    let first = record_reports(&domain);
    let (stall, _) = hold_up_a_grace_period(&domain, &first, "set-reader-1", false);
    assert_eq!(stall.reports[0].1.thread_name.as_deref(), Some("set-reader-1"));
    let seen_by_first = count(&first);

    let second = record_reports(&domain);
    let (stall, _) = hold_up_a_grace_period(&domain, &second, "set-reader-2", false);
    assert_eq!(stall.reports[0].1.thread_name.as_deref(), Some("set-reader-2"));
    assert_eq!(count(&first), seen_by_first, "a replaced handler still got reports");
    assert_eq!(domain.stats().stalls, (seen_by_first + count(&second)) as u64);
}
