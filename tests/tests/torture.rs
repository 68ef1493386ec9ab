//! Short rcutorture configurations, run by `cargo test`: the real runtime must pass every
//! check under each flavor (the sleepable ones, `srcu` and `srcu-plain`, and `qsbr`
//! included) and with rare paths forced, and the busted fakes must fail (the torture can
//! fail): `busted`, `srcu-busted` and `qsbr-busted` the age check, `busted-barrier` the
//! barrier check.

use std::alloc::Layout;
use std::time::Duration;

use rcu_tests::torture::alloc::{self, Anomalies, Fate, Lane};
use rcu_tests::torture::{self, Check, Config, FlavorKind, Summary, Tests, TokenKind};

/// The torture's tracked frees are served and counted by it (`torture::alloc`).
#[global_allocator]
static ALLOC: torture::alloc::CountingAlloc = torture::alloc::CountingAlloc;

fn run(config: Config) -> Summary {
    let summary = torture::run(config, &mut |_| {});
    println!("{}", summary.text());
    summary
}

fn short(flavor: FlavorKind, seconds: u64) -> Config {
    Config {
        flavor,
        duration: Duration::from_secs(seconds),
        flood: Duration::from_millis(500),
        stall_timeout: Duration::from_millis(100),
        report_every: Duration::ZERO,
        tokens: TokenKind::defaults(flavor),
        ..Config::default()
    }
}

/// Only the age check (the core one): the polled check alone would also catch the fakes.
const AGE_ONLY: Tests = Tests {
    age: true,
    polled: false,
    callbacks: false,
    barrier: false,
    forward_progress: false,
    stall: false,
    map: false,
};

#[test]
fn custom_domain_passes_every_check() {
    let s = run(short(FlavorKind::Custom, 3));
    assert!(s.success(), "{}", s.text());
    assert!(
        s.last.reads > 0 && s.last.gps > 10 && s.frees > 0,
        "the run did nothing: {}",
        s.text()
    );
    assert!(s.barriers > 0, "no barrier round completed");
    assert!(s.stalls > 0, "the stall test saw no report");
    assert_eq!(s.cb_queued, s.cb_done);
    // Tracked frees went through every token, both kinds and both domains, and barrier
    // rounds judged them.
    let f = &s.deferred_frees;
    assert_eq!(f.by.len(), 2 * 5, "{:?}", f.by);
    assert!(f.by.iter().all(|(_, _, n)| *n > 0), "{:?}", f.by);
    assert!(f.judged_in_rounds > 0, "no round judged a deferred free: {}", s.text());
    // The summary names every check with its verdict, and says the stall reports are expected.
    let text = s.text();
    assert_eq!(s.verdict(Check::Membarrier), "off", "a QSBR check on a classic domain: {text}");
    for check in Check::ALL.into_iter().filter(|c| *c != Check::Membarrier) {
        assert_eq!(s.verdict(check), "ok", "{}", text);
        assert!(
            text.contains(&format!("    {:<16} ok", check.name())),
            "{} missing: {text}",
            check.name()
        );
    }
    assert!(text.contains("stall report(s): expected"), "{text}");
}

#[test]
fn global_domain_passes_every_check() {
    let s = run(short(FlavorKind::Global, 2));
    assert!(s.success(), "{}", s.text());
    assert!(s.last.gps > 10 && s.frees > 0, "the run did nothing: {}", s.text());
}

#[test]
fn rare_paths_pass_with_small_blocks_and_heavy_fault_injection() {
    let s = run(Config {
        small_blocks: true,
        fault_rate: 0.3,
        budget: 256 << 10,
        ..short(FlavorKind::Custom, 2)
    });
    assert!(s.success(), "{}", s.text());
    assert!(s.last.fallbacks > 0, "fault injection forced no fallback: {}", s.text());
}

#[test]
fn busted_grace_periods_are_caught_by_the_age_check() {
    // Only the age/poison check: the polled check alone would also catch the fake, and this
    // test is about the core check having teeth.
    let s = run(Config { tests: AGE_ONLY, ..short(FlavorKind::Busted, 1) });
    assert!(!s.success(), "rcutorture did not notice a broken RCU: {}", s.text());
    assert!(
        s.messages.iter().any(|m| m.contains("too-short grace period") || m.contains("freed")),
        "failures were not the age/poison kind: {:?}",
        s.messages
    );
    assert!(s.text().ends_with(&format!("FAILURE: {} error(s)", s.last.errors)));
    // The verdicts say which check failed and which were not run.
    assert!(s.verdict(Check::Age).starts_with("FAILED ("), "{}", s.text());
    for check in
        [Check::Polled, Check::Callbacks, Check::Barrier, Check::ForwardProgress, Check::Stall]
    {
        assert_eq!(s.verdict(check), "off", "{}", s.text());
    }
    assert_eq!(s.verdict(Check::Threads), "ok", "{}", s.text());
}

/// A sleepable flavor's run passed every check, and did what it is there for: sections
/// handed over between threads, tracked frees with every token (the section's own among
/// them) and both kinds on both domains, barrier rounds, a stall report.
fn assert_srcu_run_passed(s: &Summary) {
    assert!(s.success(), "{}", s.text());
    let checked: u64 = s.last.ages.iter().sum();
    assert!(checked > 100 && s.last.gps > 10 && s.frees > 0, "the run did nothing: {}", s.text());
    assert!(s.handovers > 0, "no owned guard was handed over: {}", s.text());
    assert!(s.barriers > 0 && s.stalls > 0, "{}", s.text());
    assert_eq!(s.cb_queued, s.cb_done);
    // Four tokens for kvfree_srcu, the two that may wait for kvfree_srcu_mightsleep; on the
    // sleepable domain and on the global one.
    let f = &s.deferred_frees;
    assert_eq!(f.by.len(), 2 * 6, "{:?}", f.by);
    assert!(f.by.iter().all(|(_, _, n)| *n > 0), "{:?}", f.by);
    assert!(f.by.iter().any(|(_, label, _)| label == "kvfree_srcu/section"), "{:?}", f.by);
    for check in Check::ALL.into_iter().filter(|c| *c != Check::Membarrier) {
        assert_eq!(s.verdict(check), "ok", "{}", s.text());
    }
    assert_eq!(s.verdict(Check::Membarrier), "off", "{}", s.text());
}

#[test]
fn srcu_passes_every_check() {
    let s = run(short(FlavorKind::Srcu, 3));
    assert_eq!(s.flavor, "srcu");
    assert_srcu_run_passed(&s);
}

#[test]
fn srcu_plain_passes_every_check() {
    let s = run(short(FlavorKind::SrcuPlain, 2));
    assert_eq!(s.flavor, "srcu-plain");
    assert_srcu_run_passed(&s);
}

#[test]
fn srcu_busted_grace_periods_are_caught_by_the_age_check() {
    // Readers lock one sleepable domain, the writer retires on and waits for another, and
    // each reader holds its element until the writer has moved on past the pipeline: what
    // it holds is aged and freed under it, on every read that can see it.
    let s = run(Config { tests: AGE_ONLY, ..short(FlavorKind::SrcuBusted, 1) });
    assert!(!s.success(), "rcutorture did not notice a broken sleepable RCU: {}", s.text());
    assert!(s.verdict(Check::Age).starts_with("FAILED ("), "{}", s.text());
    assert!(
        s.messages.iter().any(|m| m.contains("too-short grace period") || m.contains("freed")),
        "failures were not the age/poison kind: {:?}",
        s.messages
    );
    assert_eq!(s.verdict(Check::Threads), "ok", "{}", s.text());
    assert!(s.text().ends_with(&format!("FAILURE: {} error(s)", s.last.errors)));
}

#[test]
fn qsbr_passes_every_check() {
    let s = run(short(FlavorKind::Qsbr, 3));
    assert_eq!(s.flavor, "qsbr");
    assert!(s.success(), "{}", s.text());
    let checked: u64 = s.last.ages.iter().sum();
    assert!(checked > 100 && s.last.gps > 10 && s.frees > 0, "the run did nothing: {}", s.text());
    // Readers announced quiescent states and went offline (each at least once, after its
    // first batch); the grace periods issued no membarrier.
    let q = s.qsbr.expect("a QSBR run reports its figures");
    assert!(q.quiescent_states > 0 && q.offline_periods > 0, "{q:?}");
    assert_eq!(q.membarriers, 0, "{}", s.text());
    assert!(s.barriers > 0 && s.stalls > 0, "{}", s.text());
    assert_eq!(s.cb_queued, s.cb_done);
    // Three tokens for kvfree_rcu, the two that may sleep for kvfree_rcu_mightsleep; on the
    // QSBR domain and on the global one.
    let f = &s.deferred_frees;
    assert_eq!(f.by.len(), 2 * 5, "{:?}", f.by);
    assert!(f.by.iter().all(|(_, _, n)| *n > 0), "{:?}", f.by);
    assert!(f.by.iter().any(|(domain, _, _)| *domain == "qsbr"), "{:?}", f.by);
    for check in Check::ALL {
        assert_eq!(s.verdict(check), "ok", "{}", s.text());
    }
    assert!(s.text().contains("membarrier       ok"), "{}", s.text());
}

#[test]
fn qsbr_busted_grace_periods_are_caught_by_the_age_check() {
    // Readers are online in one QSBR domain, the writer retires on and waits for another,
    // and each reader holds its element until the writer has moved on past the pipeline:
    // what it holds is aged and freed under it.
    let s = run(Config { tests: AGE_ONLY, ..short(FlavorKind::QsbrBusted, 1) });
    assert!(!s.success(), "rcutorture did not notice a broken QSBR: {}", s.text());
    assert!(s.verdict(Check::Age).starts_with("FAILED ("), "{}", s.text());
    assert!(
        s.messages.iter().any(|m| m.contains("too-short grace period") || m.contains("freed")),
        "failures were not the age/poison kind: {:?}",
        s.messages
    );
    // Its domains are real QSBR ones: no membarrier, and no other failure.
    assert_eq!(s.verdict(Check::Membarrier), "ok", "{}", s.text());
    assert_eq!(s.verdict(Check::Threads), "ok", "{}", s.text());
    assert!(s.text().ends_with(&format!("FAILURE: {} error(s)", s.last.errors)));
}

#[test]
fn a_barrier_that_returns_before_deallocations_is_caught_by_the_barrier_check() {
    // The busted-barrier flavor: a real domain whose tracked headed frees are dropped by
    // their callback and deallocated only at the queueing thread's next "block boundary",
    // which no barrier finishes. Whatever the timing, the final barrier returns before the
    // last value of the run is deallocated (`frees::busted_kvfree`).
    let tests = Tests {
        age: false,
        polled: false,
        callbacks: true,
        barrier: true,
        forward_progress: false,
        stall: false,
        map: false,
    };
    let s = run(Config { tests, ..short(FlavorKind::BustedBarrier, 1) });
    assert!(!s.success(), "rcutorture did not notice a barrier returning early: {}", s.text());
    assert!(s.verdict(Check::Barrier).starts_with("FAILED ("), "{}", s.text());
    assert!(
        s.messages.iter().any(|m| m.contains("busted-barrier domain returned before")
            && m.contains("dropped but not deallocated")),
        "failures were not the barrier's deallocations: {:?}",
        s.messages
    );
    // Dropped exactly once, every callback ran: only the barrier's promise was broken.
    assert_eq!(s.verdict(Check::Callbacks), "ok", "{}", s.text());
    assert_eq!(s.verdict(Check::Threads), "ok", "{}", s.text());
    assert!(s.text().ends_with(&format!("FAILURE: {} error(s)", s.last.errors)));
}

#[test]
fn the_counting_allocator_sees_a_tracked_values_drop_and_deallocation() {
    assert!(alloc::installed());
    let lane = Lane::claim().expect("a free lane");
    let layout = Layout::new::<[u64; 4]>();
    let seq = lane.next();
    let armed = lane.arm(layout).expect("a fresh lane's slot is free");
    let value = Box::new([seq, 1, 2, 3]);
    assert!(armed.served(&*value as *const [u64; 4] as *const u8), "not served from the slab");
    assert_eq!(lane.next(), seq + 1);
    // Another allocation of the same layout is not the lane's.
    let other = std::hint::black_box(Box::new([seq, 1, 2, 3]));
    assert_eq!(lane.fate(seq), Fate::Pending);
    alloc::note_drop(lane, seq); // what the tracked value's `Drop` does
    assert_eq!(lane.fate(seq), Fate::Dropped);
    drop(other);
    assert_eq!(lane.fate(seq), Fate::Dropped, "a foreign deallocation was counted");
    drop(value);
    assert_eq!(lane.fate(seq), Fate::Done);
    assert_eq!(lane.anomalies(), Anomalies::default());
    // Deallocated without a drop, or with another layout: counted as anomalies.
    let armed = lane.arm(layout).expect("the previous value was deallocated");
    let value = Box::new([seq + 1, 1, 2, 3]);
    assert!(armed.served(&*value as *const [u64; 4] as *const u8));
    drop(value);
    assert_eq!(lane.fate(seq + 1), Fate::Done);
    assert_eq!(lane.anomalies(), Anomalies { undropped_deallocs: 1, ..Anomalies::default() });
    // Left claimed: its books now hold an anomaly on purpose.
}

fn rcutorture(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcutorture"))
        .args(args)
        .output()
        .expect("run the rcutorture binary");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_binary_reports_success_with_exit_code_zero() {
    let (code, out) = rcutorture(&["--duration", "1s", "--tests", "age,polled,callbacks"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with("SUCCESS"), "{out}");
    assert!(out.contains("s] gp "), "no live report line: {out}");
}

#[test]
fn the_binary_reports_failure_with_a_nonzero_exit_code() {
    let (code, out) =
        rcutorture(&["--flavor", "busted", "--duration", "1s", "--tests", "age", "--json"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"result\":\"FAILURE\""), "{out}");
    assert!(out.contains("\"checks\":{\"age\":\"FAILED ("), "{out}");
}

#[test]
fn the_binary_reports_an_early_barrier_with_a_nonzero_exit_code() {
    let (code, out) = rcutorture(&[
        "--flavor",
        "busted-barrier",
        "--duration",
        "1s",
        "--tests",
        "callbacks,barrier",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"result\":\"FAILURE\""), "{out}");
    assert!(out.contains("\"barrier\":\"FAILED ("), "{out}");
    assert!(out.contains("\"callbacks\":\"ok\""), "{out}");
}

#[test]
fn the_binary_reports_srcu_busted_with_a_nonzero_exit_code() {
    let (code, out) =
        rcutorture(&["--flavor", "srcu-busted", "--duration", "1s", "--tests", "age", "--json"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"flavor\":\"srcu-busted\""), "{out}");
    assert!(out.contains("\"checks\":{\"age\":\"FAILED ("), "{out}");
}

#[test]
fn the_binary_reports_qsbr_busted_with_a_nonzero_exit_code() {
    let (code, out) =
        rcutorture(&["--flavor", "qsbr-busted", "--duration", "1s", "--tests", "age", "--json"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"flavor\":\"qsbr-busted\""), "{out}");
    assert!(out.contains("\"checks\":{\"age\":\"FAILED ("), "{out}");
    assert!(out.contains("\"membarriers\":0"), "{out}");
}

#[test]
fn the_binary_refuses_the_section_token_under_a_classic_flavor() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcutorture"))
        .args(["--flavor", "custom", "--tokens", "section"])
        .output()
        .expect("run the rcutorture binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tokens section needs a sleepable flavor"), "{stderr}");
}
