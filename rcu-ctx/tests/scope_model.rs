//! Model-based property test of the scope bookkeeping.
//!
//! Random sequences of operations (acquire a root, open atomic / no-reclaim scopes and read
//! sections, assume an `Atomic` as a signal handler would, drop the innermost scope, panic
//! out of k levels) run against real tokens and against a model stack. After every step the
//! thread's state must equal the model's, `Sleepable::enter()` must panic exactly when the
//! model has a restriction open (naming the right one), the innermost token must pass debug
//! validation, and no violation may be reported.
//!
//! Real tokens borrow their parents, so the stack of live scopes is the call stack: each
//! level owns one scope and runs the following operations until one closes it. Every level
//! opens its child inside `catch_unwind`, so a panic raised `k` levels deeper unwinds through
//! exactly the scopes it leaves and is caught where the model says it stops.

use std::cell::Cell;
use std::panic::{self, catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use proptest::prelude::*;
use rcu_ctx::thread_state::{snapshot, Snapshot};
use rcu_ctx::validate::{self, Violation};
use rcu_ctx::{Atomic, Context, MaySleep, NoReclaim, ReadSection, Sleepable};

/// One entry of the model stack: the kind of scope a level owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A root `Sleepable` (no restriction).
    Root,
    NoReclaim,
    /// `Context::atomic` or `Atomic::assume`: both count as an atomic scope.
    Atomic,
    Read,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `Sleepable::enter()`: a new root level, or a panic when a restriction is open.
    EnterRoot,
    /// `atomic()` on the innermost token, when it has one.
    OpenAtomic,
    /// `no_reclaim()` on the innermost token, only when it may sleep.
    OpenNoReclaim,
    /// `ReadSection::enter` from the innermost token, when it has one.
    OpenRead,
    /// `Atomic::assume()`, allowed anywhere (a signal handler interrupting any code).
    Assume,
    /// Close the innermost scope.
    DropInnermost,
    /// Panic and unwind out of this many levels (clamped to the depth).
    Unwind(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::EnterRoot),
        3 => Just(Op::OpenAtomic),
        3 => Just(Op::OpenNoReclaim),
        3 => Just(Op::OpenRead),
        1 => Just(Op::Assume),
        4 => Just(Op::DropInnermost),
        2 => (1usize..=4).prop_map(Op::Unwind),
    ]
}

/// What a level can do with the token it owns. `None` means the types do not allow it.
trait Frame {
    fn open_atomic(&mut self) -> Option<Atomic<'_>>;
    fn open_no_reclaim(&mut self) -> Option<NoReclaim<'_>>;
    fn open_read(&mut self) -> Option<ReadSection<'_>>;
    /// Debug validation of the innermost token against the thread's state.
    fn validate_token(&self);
}

/// The bottom level: no token at all, only `Sleepable::enter()` and `Atomic::assume()`.
struct Bottom;

impl Frame for Bottom {
    fn open_atomic(&mut self) -> Option<Atomic<'_>> {
        None
    }
    fn open_no_reclaim(&mut self) -> Option<NoReclaim<'_>> {
        None
    }
    fn open_read(&mut self) -> Option<ReadSection<'_>> {
        None
    }
    fn validate_token(&self) {}
}

macro_rules! may_sleep_frame {
    ($ty:ty) => {
        impl Frame for $ty {
            fn open_atomic(&mut self) -> Option<Atomic<'_>> {
                Some(self.atomic())
            }
            fn open_no_reclaim(&mut self) -> Option<NoReclaim<'_>> {
                Some(self.no_reclaim())
            }
            fn open_read(&mut self) -> Option<ReadSection<'_>> {
                Some(ReadSection::enter(self))
            }
            fn validate_token(&self) {
                self.validate();
            }
        }
    };
}
may_sleep_frame!(Sleepable);
may_sleep_frame!(NoReclaim<'_>);

impl Frame for Atomic<'_> {
    fn open_atomic(&mut self) -> Option<Atomic<'_>> {
        Some(self.atomic())
    }
    fn open_no_reclaim(&mut self) -> Option<NoReclaim<'_>> {
        None
    }
    fn open_read(&mut self) -> Option<ReadSection<'_>> {
        Some(ReadSection::enter(self))
    }
    fn validate_token(&self) {
        self.validate();
    }
}

/// A read section hands out only `&Atomic`: nothing can be opened from it through the token
/// (`Atomic::assume` still can, as from a signal handler).
impl Frame for ReadSection<'_> {
    fn open_atomic(&mut self) -> Option<Atomic<'_>> {
        None
    }
    fn open_no_reclaim(&mut self) -> Option<NoReclaim<'_>> {
        None
    }
    fn open_read(&mut self) -> Option<ReadSection<'_>> {
        None
    }
    fn validate_token(&self) {
        self.token().validate();
    }
}

/// The model's rules: what the innermost scope allows.
fn allows(model: &[Kind], op: Op) -> bool {
    let top = model.last().copied();
    match op {
        Op::OpenAtomic | Op::OpenRead => {
            matches!(top, Some(Kind::Root | Kind::NoReclaim | Kind::Atomic))
        }
        Op::OpenNoReclaim => matches!(top, Some(Kind::Root | Kind::NoReclaim)),
        Op::EnterRoot => model.iter().all(|k| *k == Kind::Root),
        Op::Assume | Op::DropInnermost | Op::Unwind(_) => true,
    }
}

fn expected_snapshot(model: &[Kind]) -> Snapshot {
    let count = |kind| model.iter().filter(|k| **k == kind).count() as u32;
    Snapshot {
        read_depth: count(Kind::Read),
        atomic_depth: count(Kind::Atomic),
        no_reclaim_depth: count(Kind::NoReclaim),
    }
}

/// The restriction `Sleepable::enter()` must name: the one that forbids most.
fn expected_restriction(model: &[Kind]) -> Option<&'static str> {
    if model.contains(&Kind::Read) {
        Some("an RCU read section")
    } else if model.contains(&Kind::Atomic) {
        Some("an atomic scope")
    } else if model.contains(&Kind::NoReclaim) {
        Some("a no-reclaim scope")
    } else {
        None
    }
}

thread_local! {
    /// Set while a panic is expected, so the panic hook stays quiet.
    static EXPECTING_PANIC: Cell<bool> = const { Cell::new(false) };
    /// Violations reported on this thread (the handler is process-global).
    static VIOLATIONS: Cell<u32> = const { Cell::new(0) };
}

fn record_violation(v: &Violation) {
    eprintln!("{v}");
    VIOLATIONS.with(|n| n.set(n.get() + 1));
}

/// Payload of a model-driven panic: unwinding stops at the level whose depth is `to_depth`.
struct Unwind {
    to_depth: usize,
}

/// Silences the expected panics (model unwinds and `Sleepable::enter()` probes); every other
/// panic, such as a failed assertion, is printed as usual.
fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !EXPECTING_PANIC.with(Cell::get) && !info.payload().is::<Unwind>() {
                default(info);
            }
        }));
    });
}

/// Calls `Sleepable::enter()` and returns its panic message, if it panicked.
fn probe_enter() -> Option<String> {
    EXPECTING_PANIC.with(|e| e.set(true));
    let result = catch_unwind(|| {
        let _ = Sleepable::enter();
    });
    EXPECTING_PANIC.with(|e| e.set(false));
    let payload = result.err()?;
    Some(match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(other) => format!("non-string panic payload: {other:?}"),
    })
}

struct Run<'a> {
    ops: std::slice::Iter<'a, Op>,
    model: Vec<Kind>,
    /// Coverage, for the fixed-sequence test.
    max_depth: usize,
    unwinds: usize,
    enter_panics: usize,
}

/// Compares the thread with the model.
fn check(frame: &impl Frame, model: &[Kind]) {
    assert_eq!(snapshot(), expected_snapshot(model), "model stack {model:?}");
    match (probe_enter(), expected_restriction(model)) {
        (None, None) => {}
        (Some(message), Some(scope)) => {
            let wanted = format!("Sleepable::enter() called inside {scope}");
            assert!(message.contains(&wanted), "{message:?} should name {scope:?} ({model:?})");
        }
        (got, want) => {
            panic!("Sleepable::enter() panicked with {got:?}; model expects {want:?} ({model:?})")
        }
    }
    frame.validate_token();
}

/// Opens a child level with `body` (which opens the scope, pushes its kind and runs
/// [`level`]) inside `catch_unwind`; afterwards the model is back at `depth`.
fn nest(run: &mut Run<'_>, depth: usize, body: impl FnOnce(&mut Run<'_>)) {
    let result = catch_unwind(AssertUnwindSafe(|| body(run)));
    if let Err(payload) = result {
        match payload.downcast_ref::<Unwind>() {
            Some(u) if u.to_depth == depth => run.unwinds += 1,
            Some(u) => {
                assert!(u.to_depth < depth, "unwound past the target level");
                panic::resume_unwind(payload);
            }
            // A failed assertion deeper down: keep unwinding to the test.
            None => panic::resume_unwind(payload),
        }
    }
    // The child scope has been dropped, normally or by unwinding.
    run.model.truncate(depth);
}

/// Runs operations at one level until one closes this level's scope (or they run out).
fn level<F: Frame>(frame: &mut F, run: &mut Run<'_>) {
    let depth = run.model.len();
    run.max_depth = run.max_depth.max(depth);
    check(frame, &run.model);
    while let Some(&op) = run.ops.next() {
        let allowed = allows(&run.model, op);
        match op {
            Op::DropInnermost if depth > 0 => return,
            Op::DropInnermost => {}
            Op::Unwind(levels) => {
                let levels = levels.min(depth);
                if levels > 0 {
                    panic::panic_any(Unwind { to_depth: depth - levels });
                }
            }
            Op::EnterRoot if allowed => nest(run, depth, |run| {
                let mut root = Sleepable::enter();
                run.model.push(Kind::Root);
                level(&mut root, run);
            }),
            Op::EnterRoot => {
                // `check` below probes it too; count it here as an operation.
                assert!(
                    probe_enter().is_some(),
                    "Sleepable::enter() must panic in {:?}",
                    run.model
                );
                run.enter_panics += 1;
            }
            Op::OpenAtomic if allowed => nest(run, depth, |run| {
                let mut child = frame.open_atomic().expect("the types allow an atomic scope");
                run.model.push(Kind::Atomic);
                level(&mut child, run);
            }),
            Op::OpenNoReclaim if allowed => nest(run, depth, |run| {
                let mut child = frame.open_no_reclaim().expect("the types allow no_reclaim");
                run.model.push(Kind::NoReclaim);
                level(&mut child, run);
            }),
            Op::OpenRead if allowed => nest(run, depth, |run| {
                let mut child = frame.open_read().expect("the types allow a read section");
                run.model.push(Kind::Read);
                level(&mut child, run);
            }),
            Op::OpenAtomic => assert!(frame.open_atomic().is_none(), "model forbids atomic()"),
            Op::OpenNoReclaim => {
                assert!(frame.open_no_reclaim().is_none(), "model forbids no_reclaim()");
            }
            Op::OpenRead => assert!(frame.open_read().is_none(), "model forbids a read section"),
            Op::Assume => nest(run, depth, |run| {
                // SAFETY: (1) `child` is dropped when this closure returns or unwinds, before
                // `level` returns; (2) every scope opened after it belongs to a deeper level,
                // which ends (normally or by unwinding) before this closure does.
                let mut child = unsafe { Atomic::assume() };
                run.model.push(Kind::Atomic);
                level(&mut child, run);
            }),
        }
        check(frame, &run.model);
    }
}

/// What a run reached, for the fixed-sequence test.
#[derive(Debug)]
struct Coverage {
    max_depth: usize,
    unwinds: usize,
    enter_panics: usize,
}

/// Runs `ops` on a fresh thread (so a failing case cannot leave state behind for the next
/// one, or for shrinking) and checks that everything is restored afterwards.
fn run_model(ops: Vec<Op>) -> Coverage {
    install_quiet_panic_hook();
    let thread = std::thread::spawn(move || {
        validate::set_violation_handler(record_violation);
        assert_eq!(snapshot(), Snapshot::default());
        let mut run =
            Run { ops: ops.iter(), model: Vec::new(), max_depth: 0, unwinds: 0, enter_panics: 0 };
        level(&mut Bottom, &mut run);
        assert!(run.model.is_empty());
        assert_eq!(snapshot(), Snapshot::default());
        assert_eq!(VIOLATIONS.with(Cell::get), 0, "tokens used correctly must not be reported");
        Coverage { max_depth: run.max_depth, unwinds: run.unwinds, enter_panics: run.enter_panics }
    });
    thread.join().unwrap_or_else(|payload| panic::resume_unwind(payload))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn thread_state_follows_the_scope_model(ops in prop::collection::vec(op(), 0..64)) {
        run_model(ops);
    }
}

/// A fixed sequence, so that the machinery above is known to reach deep nesting, multi-level
/// unwinds and refused `Sleepable::enter()` calls (the property test only samples).
#[test]
fn fixed_sequence_reaches_deep_nesting_and_unwinds() {
    use Op::*;
    let ops = vec![
        EnterRoot,
        EnterRoot,
        OpenNoReclaim,
        OpenNoReclaim,
        OpenAtomic,
        OpenNoReclaim, // refused: atomic scope
        OpenRead,
        OpenAtomic, // refused: only `&Atomic` inside a read section
        EnterRoot,  // panics: read section
        Assume,
        OpenRead,
        Unwind(3), // out of: read, assumed atomic, read
        EnterRoot, // panics: atomic scope
        DropInnermost,
        DropInnermost,
        OpenAtomic,
        Unwind(9), // clamped: out of everything
        EnterRoot,
        OpenRead,
        DropInnermost,
        OpenAtomic,
    ];
    let coverage = run_model(ops);
    assert_eq!(coverage.max_depth, 8, "{coverage:?}");
    assert_eq!(coverage.unwinds, 2, "{coverage:?}");
    assert_eq!(coverage.enter_panics, 2, "{coverage:?}");
}
