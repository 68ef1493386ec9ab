//! Bad configuration is rejected when the domain is built, by an error that names the field,
//! before anything is registered or started; values that are merely extreme (huge durations,
//! any budget) work instead of wrapping or panicking later.
//!
//! `config_fork.rs` checks, in a binary of its own (it forks), that a forked child's fork
//! handler meets no half-built domain.

mod common;

use std::panic::{self, catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_until, Pending, ReaderThread, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{
    AllocConfig, ConfigError, DomainConfig, StallReport, MAX_BLOCK_BYTES, MAX_THREAD_CACHE,
    MIN_BLOCK_BYTES, POOL_CAPACITY,
};

/// How long a reader holds a grace period in the stall tests: well past the 50 ms that a
/// wrapped timeout used to become.
const HOLD: Duration = Duration::from_millis(200);

/// A duration of 2^64 ns + 50 ms (584 years): `as_nanos() as u64` wraps it to 50 ms.
fn wraps_to_50ms() -> Duration {
    Duration::from_nanos(u64::MAX) + Duration::from_nanos(50_000_001)
}

/// The error `try_new` returns for `config`.
#[track_caller]
fn rejected(config: DomainConfig) -> ConfigError {
    match Domain::try_new(config.clone()) {
        Ok(_) => panic!("accepted: {config:?}"),
        Err(err) => {
            assert_eq!(config.validate(), Err(err.clone()), "validate and try_new disagree");
            err
        }
    }
}

/// Uses a domain: a read section, a grace period, a deferred free and a barrier.
fn exercise(domain: &Domain) {
    let mut ctx = Sleepable::enter();
    drop(domain.read_lock(&mut ctx));
    domain.synchronize_rcu(&ctx);
    domain.kvfree_rcu(&ctx, Rcu::boxed([7u8; 64]));
    domain.rcu_barrier(&ctx);
    assert_eq!(domain.stats().callbacks_pending, 0);
}

#[test]
fn a_nul_in_the_name_is_rejected_naming_the_field() {
    let err = rejected(DomainConfig::new().name("bad\0name"));
    assert_eq!(err.field(), "DomainConfig.name");
    let message = err.to_string();
    assert!(message.starts_with("DomainConfig.name contains a NUL byte at index 3: "), "{message}");
    assert!(message.contains("thread names") && message.contains("Fix:"), "{message}");
    // As a `std::error::Error`, for `?` into boxed errors.
    let boxed: Box<dyn std::error::Error> = err.into();
    assert!(boxed.to_string().contains("NUL byte"));

    // Nothing was left half-built: more domains come and go and work.
    for i in 0..4 {
        let domain = Domain::try_new(DomainConfig::new().name(format!("after-nul-{i}")))
            .expect("a valid configuration");
        exercise(&domain);
    }
    exercise(Domain::global());
}

/// Runs `f`, which must panic on this thread; returns the panic's message and the file and
/// line it reports.
fn panic_site(f: impl FnOnce()) -> (String, String, u32) {
    type Seen = Mutex<Option<(String, String, u32)>>;
    static SEEN: Seen = Mutex::new(None);
    let me = std::thread::current().id();
    let previous = Arc::new(panic::take_hook());
    let forward = previous.clone();
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            return forward(info); // another test's panic
        }
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        let location = info.location().expect("panics have a location");
        let site = (message, location.file().to_owned(), location.line());
        *SEEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(site);
    }));
    let result = catch_unwind(AssertUnwindSafe(f));
    drop(panic::take_hook()); // ours, holding `forward`
    match Arc::try_unwrap(previous) {
        Ok(hook) => panic::set_hook(hook),
        Err(_) => unreachable!("our hook was the only other holder"),
    }
    assert!(result.is_err(), "did not panic");
    SEEN.lock().unwrap_or_else(|e| e.into_inner()).take().expect("the hook saw the panic")
}

#[test]
fn domain_new_panics_at_the_caller_with_the_message() {
    let mut line = 0;
    let (message, file, at) = panic_site(|| {
        line = line!() + 1;
        let _domain = Domain::new(DomainConfig::new().name("bad\0name"));
    });
    assert!(
        message.starts_with("rcu-core: DomainConfig.name contains a NUL byte at index 3: "),
        "{message}"
    );
    assert_eq!((file.as_str(), at), (file!(), line), "the panic is not reported at the caller");

    let (message, _, _) = panic_site(|| {
        let _domain = Domain::new(DomainConfig::new().alloc(AllocConfig::new().block_bytes(0)));
    });
    assert!(message.starts_with("rcu-core: AllocConfig.block_bytes is 0, out of range"));

    // And the process carries on.
    exercise(&Domain::new(DomainConfig::new().name("after-panic")));
}

#[test]
fn bad_allocator_values_are_rejected_naming_the_field() {
    let with = |alloc: AllocConfig| DomainConfig::new().alloc(alloc);
    let cases = [
        (AllocConfig::new().block_bytes(usize::MAX), "AllocConfig.block_bytes"),
        (AllocConfig::new().block_bytes(0), "AllocConfig.block_bytes"),
        (AllocConfig::new().block_bytes(MIN_BLOCK_BYTES - 1), "AllocConfig.block_bytes"),
        (AllocConfig::new().block_bytes(MAX_BLOCK_BYTES + 1), "AllocConfig.block_bytes"),
        (
            AllocConfig::new().thread_cache_blocks(MAX_THREAD_CACHE + 1),
            "AllocConfig.thread_cache_blocks",
        ),
        (AllocConfig::new().thread_cache_blocks(usize::MAX), "AllocConfig.thread_cache_blocks"),
        (AllocConfig::new().pool_watermarks(9, 8), "AllocConfig.pool_watermarks"),
        (AllocConfig::new().pool_watermarks(0, POOL_CAPACITY + 1), "AllocConfig.pool_watermarks"),
    ];
    for (alloc, field) in cases {
        let err = rejected(with(alloc));
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains("Fix:"), "{err}");
        assert_eq!(alloc.validate(), Err(err));
    }
    let err = rejected(with(AllocConfig::new().block_bytes(usize::MAX)));
    assert!(
        err.to_string().starts_with("AllocConfig.block_bytes is 18446744073709551615"),
        "{err}"
    );

    // The bounds themselves, and budgets of any size, are accepted and work.
    let fine = [
        AllocConfig::new().block_bytes(MIN_BLOCK_BYTES),
        AllocConfig::new().block_bytes(MAX_BLOCK_BYTES),
        AllocConfig::new().thread_cache_blocks(0),
        AllocConfig::new().thread_cache_blocks(MAX_THREAD_CACHE),
        AllocConfig::new().pool_watermarks(0, 0),
        AllocConfig::new().pool_watermarks(POOL_CAPACITY, POOL_CAPACITY),
        AllocConfig::new().budget_bytes(0),
        AllocConfig::new().budget_bytes(usize::MAX),
    ];
    for alloc in fine {
        let domain = Domain::try_new(with(alloc)).unwrap_or_else(|e| panic!("{alloc:?}: {e}"));
        exercise(&domain);
    }
}

#[test]
fn a_zero_stall_timeout_is_rejected_and_extreme_durations_accepted() {
    let err = rejected(DomainConfig::new().stall_timeout(Duration::ZERO));
    assert_eq!(err.field(), "DomainConfig.stall_timeout");
    assert!(err.to_string().starts_with("DomainConfig.stall_timeout is zero: "), "{err}");

    for long in [Duration::from_secs(u64::MAX), Duration::MAX, wraps_to_50ms()] {
        let config = DomainConfig::new().stall_timeout(long).batch_delay(long);
        exercise(&Domain::try_new(config).expect("long durations are valid"));
    }
    let config =
        DomainConfig::new().stall_timeout(Duration::from_nanos(1)).batch_delay(Duration::ZERO);
    exercise(&Domain::try_new(config).expect("short durations are valid"));
}

#[test]
#[should_panic(expected = "rcu-core: Domain::set_stall_timeout(0): a zero stall timeout")]
fn set_stall_timeout_zero_panics_naming_the_rule() {
    let domain = Domain::new(DomainConfig::new().name("zero-stall"));
    domain.set_stall_timeout(Duration::ZERO);
}

#[test]
fn set_budget_accepts_any_size() {
    let domain = Domain::new(DomainConfig::new().name("budgets"));
    for budget in [0, 1, usize::MAX, 64 << 20] {
        domain.set_budget(budget);
        assert_eq!(domain.stats().budget_bytes, budget as u64);
        exercise(&domain);
    }
}

/// Holds one grace period of `domain` with a reader for `HOLD`, with the grace period's
/// leader (a writer thread) waiting on it the whole time.
fn hold_a_grace_period(domain: &Arc<Domain>, reader: &mut ReaderThread) {
    reader.enter();
    let before = domain.stats().gp_seq;
    let mut writer = Pending::spawn("huge-writer", {
        let domain = domain.clone();
        move || domain.synchronize_rcu(&Sleepable::enter())
    });
    assert!(wait_until(PATIENCE, || domain.stats().gp_seq > before), "no grace period began");
    // The grace period cannot end while the reader is inside: a held grace period, whatever
    // the timing.
    assert!(!writer.wait_timeout(HOLD), "a grace period ended during a read section");
    reader.exit();
    writer.join("the grace period after its reader left");
}

/// Stall timeouts of centuries used to wrap to fractions of a second (`as_nanos() as u64`);
/// now they saturate at 584 years. The assertion does not depend on timing: with a timeout
/// of centuries, any report at all is wrong.
#[test]
fn huge_stall_timeouts_never_report() {
    let domain = Arc::new(Domain::new(
        DomainConfig::new().name("huge-stall").stall_timeout(Duration::from_secs(u64::MAX)),
    ));
    let reports = Arc::new(AtomicU64::new(0));
    let count = reports.clone();
    domain.set_stall_handler(Some(Arc::new(move |_: &StallReport| {
        // Relaxed: a count, read after the writer was joined (which orders it).
        count.fetch_add(1, Ordering::Relaxed);
    })));
    let mut reader = ReaderThread::spawn(domain.clone(), "huge-reader");

    hold_a_grace_period(&domain, &mut reader); // the configured timeout
    domain.set_stall_timeout(wraps_to_50ms()); // the setter, with the value that wrapped
    hold_a_grace_period(&domain, &mut reader);
    domain.set_stall_timeout(Duration::MAX);
    hold_a_grace_period(&domain, &mut reader);

    // Relaxed: see the handler.
    assert_eq!(reports.load(Ordering::Relaxed), 0, "a stall reported with a 584-year timeout");
    assert_eq!(domain.stats().stalls, 0);
}

/// A batch delay of `Duration::MAX` means "collect only when hurried": barriers hurry the
/// worker, so `rcu_barrier` still returns, and nothing panics on the way.
#[test]
fn batch_delay_max_panics_nothing_and_barriers_return() {
    let configured =
        Arc::new(Domain::new(DomainConfig::new().name("delay-max").batch_delay(Duration::MAX)));
    let set = Arc::new(Domain::new(DomainConfig::new().name("delay-set")));
    set.set_batch_delay(Duration::MAX);
    for domain in [configured, set] {
        let barrier = Pending::spawn("delay-barrier", {
            let domain = domain.clone();
            move || {
                let mut ctx = Sleepable::enter();
                for i in 0..1000u64 {
                    domain.kvfree_rcu(&ctx, Rcu::boxed(i));
                }
                {
                    let atomic = ctx.atomic();
                    domain.kvfree_rcu(&atomic, Rcu::boxed(0u64));
                }
                domain.rcu_barrier(&ctx);
                domain.stats()
            }
        });
        let stats = barrier.join("rcu_barrier with a batch delay of Duration::MAX");
        assert_eq!((stats.callbacks_queued, stats.callbacks_pending), (1001, 0), "{stats:?}");
        // Back to something short, and to zero: both still work.
        domain.set_batch_delay(Duration::ZERO);
        exercise(&domain);
        domain.set_batch_delay(Duration::from_millis(5));
        exercise(&domain);
        // Dropping runs whatever is queued (the worker hurries while stopping).
        domain.set_batch_delay(Duration::MAX);
        domain.kvfree_rcu(&Sleepable::enter(), Rcu::boxed(1u8));
        drop(Arc::try_unwrap(domain).expect("the barrier thread has exited"));
    }
}
