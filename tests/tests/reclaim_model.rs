//! DESIGN §6: property test of deferred-reclamation API sequences against a model, with fault
//! injection, on a small-block domain (4-entry blocks, tiny pool: block boundaries and
//! fallbacks all the time).
//!
//! Operations: `kvfree_rcu`/`call_rcu`/`RcuCell::replace`/`RcuCell::update` under every token
//! (including a read section's), `call_rcu_fn`, `kvfree_rcu_mightsleep` (Sleepable and
//! NoReclaim), bursts, `synchronize_rcu`, `rcu_barrier`, fault injection per policy, and a
//! helper thread entering and leaving a read section of the domain.
//!
//! The model: the cell's current value is live (never freed); everything else is retired when
//! queued. Invariants checked after every operation:
//! - nothing is freed twice, and the live value is not freed;
//! - nothing retired while the helper reader was inside is freed before it leaves;
//! - after `rcu_barrier` (reader outside) every retired object has been freed.
//!
//! Operations that wait for a grace period (`synchronize_rcu`, `rcu_barrier`) would wait for
//! the helper reader forever; the model makes it leave first (after checking what it
//! protects). A `kvfree_rcu_mightsleep` whose policy has faults injected may synchronize
//! inline: the reader leaves a few milliseconds into the call, and an object freed inline
//! must have been freed after that.
#![cfg(not(loom))]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use proptest::prelude::*;
use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, FaultConfig, Policy};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::{with_token, TokenKind};

#[derive(Clone, Copy, Debug)]
enum Op {
    Kvfree(TokenKind),
    CallRcu(TokenKind),
    /// `call_rcu_fn`; `true`: with a NoReclaim token, else Sleepable.
    CallRcuFn(bool),
    /// `kvfree_rcu_mightsleep`; `true`: with a NoReclaim token, else Sleepable.
    KvfreeMightsleep(bool),
    CellReplace(TokenKind),
    CellUpdate(TokenKind),
    /// Many `kvfree_rcu` in a row (crosses block boundaries).
    Burst(TokenKind, u8),
    Synchronize,
    Barrier,
    /// Fail every `n`th block request of policy `POLICIES[p]`.
    InjectFaults(usize, u64),
    ClearFaults,
    ReaderEnter,
    ReaderExit,
}

const POLICIES: [Policy; 3] = [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait];

fn token() -> impl Strategy<Value = TokenKind> {
    prop::sample::select(TokenKind::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => token().prop_map(Op::Kvfree),
        2 => token().prop_map(Op::CallRcu),
        1 => any::<bool>().prop_map(Op::CallRcuFn),
        1 => any::<bool>().prop_map(Op::KvfreeMightsleep),
        2 => token().prop_map(Op::CellReplace),
        1 => token().prop_map(Op::CellUpdate),
        1 => (token(), 1..24u8).prop_map(|(t, n)| Op::Burst(t, n)),
        1 => Just(Op::Synchronize),
        1 => Just(Op::Barrier),
        1 => (0..3usize, 1..4u64).prop_map(|(p, n)| Op::InjectFaults(p, n)),
        1 => Just(Op::ClearFaults),
        2 => Just(Op::ReaderEnter),
        2 => Just(Op::ReaderExit),
    ]
}

fn drop_it(obj: Box<Rcu<Tracked>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// Commands to the helper reader thread.
enum ReaderCmd {
    Enter,
    Exit,
    /// Acknowledge at once, leave the section after this long (setting `reader_left` first),
    /// then acknowledge again.
    ExitAfter(Duration),
}

struct Model<'a> {
    domain: &'a Domain,
    log: &'static DropLog,
    cell: &'a RcuCell<Tracked>,
    /// Id of the cell's current value.
    live: usize,
    /// Retired, not yet known to be freed.
    retired: HashSet<usize>,
    /// Retired while the helper reader was inside.
    protected: HashSet<usize>,
    reader_inside: bool,
    faults: [u64; 3],
    to_reader: mpsc::Sender<ReaderCmd>,
    reader_ack: mpsc::Receiver<()>,
    /// Set by the reader just before it leaves on `ExitAfter`.
    reader_left: Arc<AtomicBool>,
}

impl Model<'_> {
    fn new_obj(&self) -> (Box<Rcu<Tracked>>, usize) {
        let obj = Rcu::boxed(self.log.track());
        let id = obj.id();
        (obj, id)
    }

    fn retire(&mut self, id: usize) {
        self.retired.insert(id);
        if self.reader_inside {
            self.protected.insert(id);
        }
    }

    fn check(&self, op: Op) {
        self.log.assert_no_double_free();
        assert!(!self.log.is_freed(self.live), "after {op:?}: the cell's live value was freed");
        if self.reader_inside {
            for &id in &self.protected {
                assert!(
                    !self.log.is_freed(id),
                    "after {op:?}: object {id}, retired while the reader was inside, was freed \
                     before it left"
                );
            }
        }
    }

    fn reader_enter(&mut self) {
        if !self.reader_inside {
            self.to_reader.send(ReaderCmd::Enter).unwrap();
            self.reader_ack.recv().unwrap();
            self.reader_inside = true;
        }
    }

    fn reader_exit(&mut self, op: Op) {
        if self.reader_inside {
            // Give the worker time to (wrongly) free what the reader protects.
            std::thread::sleep(Duration::from_millis(3));
            self.check(op);
            self.to_reader.send(ReaderCmd::Exit).unwrap();
            self.reader_ack.recv().unwrap();
            self.reader_inside = false;
            self.protected.clear();
        }
    }

    /// Has the reader leave a little later, while the caller runs `during` (which may wait
    /// for the reader); returns `during`'s result.
    fn reader_exit_during<R>(&mut self, op: Op, during: impl FnOnce() -> R) -> R {
        assert!(self.reader_inside);
        std::thread::sleep(Duration::from_millis(3));
        self.check(op);
        // SeqCst: a flag shared with the reader thread.
        self.reader_left.store(false, Ordering::SeqCst);
        self.to_reader.send(ReaderCmd::ExitAfter(Duration::from_millis(5))).unwrap();
        self.reader_ack.recv().unwrap();
        let result = during();
        self.reader_ack.recv().unwrap();
        self.reader_inside = false;
        self.protected.clear();
        result
    }

    fn barrier(&mut self, ctx: &Sleepable, op: Op) {
        self.reader_exit(op);
        self.domain.rcu_barrier(ctx);
        for &id in &self.retired {
            assert!(self.log.is_freed(id), "after {op:?}: object {id} not freed by rcu_barrier");
        }
        self.retired.clear();
    }

    fn apply(&mut self, ctx: &mut Sleepable, op: Op) {
        let domain = self.domain;
        match op {
            Op::Kvfree(kind) => {
                let (obj, id) = self.new_obj();
                with_token!(ctx, domain, kind, |t| domain.kvfree_rcu(t, obj));
                self.retire(id);
            }
            Op::CallRcu(kind) => {
                let (obj, id) = self.new_obj();
                with_token!(ctx, domain, kind, |t| domain.call_rcu(t, obj, drop_it));
                self.retire(id);
            }
            Op::Burst(kind, n) => {
                let objs: Vec<_> = (0..n).map(|_| self.new_obj()).collect();
                let ids: Vec<usize> = objs.iter().map(|(_, id)| *id).collect();
                with_token!(ctx, domain, kind, |t| {
                    for (obj, _) in objs {
                        domain.kvfree_rcu(t, obj);
                    }
                });
                for id in ids {
                    self.retire(id);
                }
            }
            Op::CallRcuFn(no_reclaim) => {
                let obj = self.log.track();
                let id = obj.id();
                let f = move |_: &Atomic<'_>| drop(obj);
                if no_reclaim {
                    let nr = ctx.no_reclaim();
                    domain.call_rcu_fn(&nr, f);
                } else {
                    domain.call_rcu_fn(&*ctx, f);
                }
                self.retire(id);
            }
            Op::KvfreeMightsleep(no_reclaim) => {
                let policy = if no_reclaim { 1 } else { 0 };
                let obj = Box::new(self.log.track());
                let id = obj.id();
                let log = self.log;
                let call = |ctx: &mut Sleepable| {
                    if no_reclaim {
                        let nr = ctx.no_reclaim();
                        domain.kvfree_rcu_mightsleep(&nr, obj);
                    } else {
                        domain.kvfree_rcu_mightsleep(&*ctx, obj);
                    }
                };
                if self.faults[policy] != 0 && self.reader_inside {
                    // It may synchronize inline, which waits for the reader: the reader leaves
                    // a little later, and if the object was freed inline, it must have left
                    // first.
                    let left = self.reader_left.clone();
                    self.reader_exit_during(op, || {
                        call(ctx);
                        // SeqCst: see `reader_left`.
                        let left = left.load(Ordering::SeqCst);
                        assert!(
                            !log.is_freed(id) || left,
                            "after {op:?}: freed inline while an older reader was inside"
                        );
                    });
                } else {
                    call(ctx);
                }
                self.retire(id);
            }
            Op::CellReplace(kind) => {
                let (obj, id) = self.new_obj();
                let old = self.live;
                with_token!(ctx, domain, kind, |t| self.cell.replace(t, obj));
                self.live = id;
                self.retire(old);
            }
            Op::CellUpdate(kind) => {
                let (obj, id) = self.new_obj();
                let old = self.live;
                let mut spare = Some(obj);
                let cell = self.cell;
                with_token!(ctx, domain, kind, |mut t| cell.update(t, |cur| {
                    assert_eq!(cur.id(), old, "update saw another value than the live one");
                    spare.take().expect("single writer: f runs once")
                }));
                self.live = id;
                self.retire(old);
            }
            Op::Synchronize => {
                self.reader_exit(op);
                domain.synchronize_rcu(&*ctx);
            }
            Op::Barrier => self.barrier(ctx, op),
            Op::InjectFaults(p, n) => {
                domain.inject_faults(POLICIES[p], FaultConfig::every_nth(n));
                self.faults[p] = n;
            }
            Op::ClearFaults => {
                for (p, policy) in POLICIES.into_iter().enumerate() {
                    domain.inject_faults(policy, FaultConfig::default());
                    self.faults[p] = 0;
                }
            }
            Op::ReaderEnter => self.reader_enter(),
            Op::ReaderExit => self.reader_exit(op),
        }
        self.check(op);
    }
}

fn run_case(ops: &[Op]) {
    let domain = Domain::new(
        DomainConfig::new()
            .name("model")
            .alloc(AllocConfig::new().small_blocks())
            .batch_delay(Duration::from_millis(1)),
    );
    let log = DropLog::new(ops.len() * 24 + 2);
    let first = log.track();
    let live = first.id();
    let cell = RcuCell::new_in(&domain, first);
    let mut ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    rcu_tests::scope(|s| {
        let (to_reader, commands) = mpsc::channel();
        let (ack, reader_ack) = mpsc::channel();
        let domain_ref = &domain;
        let reader_left = Arc::new(AtomicBool::new(false));
        let left = reader_left.clone();
        s.spawn(move || {
            let mut ctx = Sleepable::enter();
            // Ends when the model hangs up (also when it panics).
            while let Ok(ReaderCmd::Enter) = commands.recv() {
                let guard = domain_ref.read_lock(&mut ctx);
                ack.send(()).unwrap();
                match commands.recv() {
                    Ok(ReaderCmd::Exit) => {
                        drop(guard);
                        ack.send(()).unwrap();
                    }
                    Ok(ReaderCmd::ExitAfter(delay)) => {
                        ack.send(()).unwrap();
                        std::thread::sleep(delay);
                        // SeqCst: see `Model::reader_left`.
                        left.store(true, Ordering::SeqCst);
                        drop(guard);
                        // The model may have stopped listening (it panicked).
                        let _ = ack.send(());
                    }
                    _ => break,
                }
            }
        });
        let mut model = Model {
            domain: &domain,
            log,
            cell: &cell,
            live,
            retired: HashSet::new(),
            protected: HashSet::new(),
            reader_inside: false,
            faults: [0; 3],
            to_reader,
            reader_ack,
            reader_left,
        };
        for &op in ops {
            model.apply(&mut ctx, op);
        }
        model.barrier(&ctx, Op::Barrier);
    });
    drop(cell);
    drop(domain);
    log.assert_all_freed_once();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn deferred_reclamation_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run_case(&ops);
    }
}

/// A fixed sequence through every kind of operation, so the interesting interleavings run on
/// every test run, whatever proptest draws.
#[test]
fn a_fixed_sequence_through_every_operation() {
    use TokenKind::*;
    let mut ops = vec![Op::ReaderEnter];
    for kind in TokenKind::ALL {
        ops.extend([Op::Kvfree(kind), Op::CallRcu(kind), Op::CellReplace(kind)]);
        ops.extend([Op::CellUpdate(kind), Op::Burst(kind, 9)]);
    }
    ops.extend([Op::CallRcuFn(false), Op::CallRcuFn(true), Op::KvfreeMightsleep(false)]);
    ops.extend([Op::KvfreeMightsleep(true), Op::ReaderExit, Op::Barrier]);
    for p in 0..3 {
        ops.push(Op::InjectFaults(p, 1));
    }
    ops.extend([Op::ReaderEnter, Op::Burst(Atomic, 20), Op::Burst(NoReclaim, 20)]);
    ops.extend([Op::Burst(Sleepable, 20), Op::CellReplace(InReadSection), Op::CallRcuFn(true)]);
    ops.extend([Op::KvfreeMightsleep(true), Op::Synchronize, Op::ClearFaults, Op::Barrier]);
    run_case(&ops);
}
