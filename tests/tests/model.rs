//! Property test (DESIGN §6): random interleavings of read sections and polled/blocking
//! grace-period operations on a private domain, checked against a model of what the
//! contract promises.
//!
//! One helper thread is the reader (driven through [`ReaderThread`], so each step is done
//! when the command returns); the test thread takes cookies, polls and synchronizes; a
//! blocking call made while the reader is inside runs on a third thread and is checked not
//! to complete until the reader's outermost section has ended.
//!
//! The model knows only what must hold, not what may happen early (the domain's worker
//! completes polled requests in the background):
//! - a cookie taken inside the reader's current section polls false until that section ends;
//! - a cookie polls true after any grace-period wait that began after it was taken returned;
//! - a `start_poll`ed cookie completes on its own once the reader is outside;
//! - `poll` never goes from true back to false, and cookies never go backwards.

mod common;

use std::sync::Arc;

use common::{wait_until, Pending, ReaderThread, PATIENCE};
use proptest::prelude::*;
use proptest::sample::Index;
use rcu_core::prelude::*;
use rcu_core::DomainConfig;

#[derive(Clone, Debug)]
enum Op {
    /// The reader enters a section (nested if already inside).
    Enter,
    /// The reader leaves its innermost section.
    Exit,
    GetState,
    StartPoll,
    Poll(Index),
    Synchronize,
    Expedited,
    CondSynchronize(Index),
    /// Waits (bounded) for a requested cookie, when the reader is outside.
    WaitPoll(Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Enter),
        4 => Just(Op::Exit),
        3 => Just(Op::GetState),
        3 => Just(Op::StartPoll),
        4 => any::<Index>().prop_map(Op::Poll),
        2 => Just(Op::Synchronize),
        1 => Just(Op::Expedited),
        2 => any::<Index>().prop_map(Op::CondSynchronize),
        1 => any::<Index>().prop_map(Op::WaitPoll),
    ]
}

#[derive(Debug)]
struct CookieModel {
    cookie: GpCookie,
    /// The reader's section (by number) the cookie was taken in, if it was inside.
    section: Option<u64>,
    /// A grace-period wait that began after this cookie was taken has returned.
    must_be_true: bool,
    /// `poll` has returned true for it.
    seen_true: bool,
}

/// A wait running on its own thread because the reader was inside when it was made.
struct BlockedWait {
    pending: Pending<()>,
    what: &'static str,
    /// Must not return while the reader's current section lasts.
    must_block: bool,
    /// Cookies (indices) that must poll true once it has returned.
    covers: Vec<usize>,
}

struct Model {
    domain: Arc<Domain>,
    reader: ReaderThread,
    ctx: Sleepable,
    cookies: Vec<CookieModel>,
    /// Number of the reader's current outermost section, if inside.
    section: Option<u64>,
    sections: u64,
    waits: Vec<BlockedWait>,
    /// The highest cookie asked for with `start_poll`.
    requested: u64,
}

impl Model {
    fn new() -> Self {
        let domain = Arc::new(Domain::new(DomainConfig::new().name("model")));
        let reader = ReaderThread::spawn(domain.clone(), "model-reader");
        Model {
            domain,
            reader,
            ctx: Sleepable::enter(),
            cookies: Vec::new(),
            section: None,
            sections: 0,
            waits: Vec::new(),
            requested: 0,
        }
    }

    fn take(&mut self, cookie: GpCookie) {
        if let Some(last) = self.cookies.last() {
            assert!(
                cookie >= last.cookie,
                "cookie went backwards: {:?} -> {cookie:?}",
                last.cookie
            );
        }
        self.cookies.push(CookieModel {
            cookie,
            section: self.section,
            must_be_true: false,
            seen_true: false,
        });
    }

    /// Cookies that a grace-period wait starting now must complete.
    fn all_taken(&self) -> Vec<usize> {
        (0..self.cookies.len()).collect()
    }

    fn mark_true(&mut self, covers: &[usize]) {
        for &i in covers {
            self.cookies[i].must_be_true = true;
        }
    }

    /// Polls every cookie and checks it against the model.
    fn check(&mut self) {
        for (i, c) in self.cookies.iter_mut().enumerate() {
            let done = self.domain.poll(c.cookie);
            if c.section.is_some() && c.section == self.section {
                assert!(
                    !done,
                    "cookie {i} {:?} completed inside the section it was taken in",
                    c.cookie
                );
            }
            if c.must_be_true {
                assert!(done, "cookie {i} {:?} incomplete after a later wait returned", c.cookie);
            }
            if c.seen_true {
                assert!(done, "cookie {i} {:?} went from complete back to incomplete", c.cookie);
            }
            c.seen_true |= done;
        }
        if self.reader.is_inside() {
            for w in &mut self.waits {
                if w.must_block {
                    assert!(
                        !w.pending.is_done(),
                        "{} returned inside a section it must wait for",
                        w.what
                    );
                }
            }
        }
    }

    /// A blocking wait: done here if the reader is outside, else on another thread.
    fn wait(&mut self, what: &'static str, cookie: Option<usize>) {
        let covers = match cookie {
            // cond_synchronize completes its cookie and every earlier one.
            Some(i) => {
                let seq = self.cookies[i].cookie.seq();
                (0..self.cookies.len()).filter(|&j| self.cookies[j].cookie.seq() <= seq).collect()
            }
            None => self.all_taken(),
        };
        let target = cookie.map(|i| self.cookies[i].cookie);
        if !self.reader.is_inside() {
            match (what, target) {
                ("synchronize_rcu", _) => self.domain.synchronize_rcu(&self.ctx),
                ("synchronize_rcu_expedited", _) => {
                    self.domain.synchronize_rcu_expedited(&self.ctx)
                }
                (_, Some(c)) => self.domain.cond_synchronize(&self.ctx, c),
                _ => unreachable!(),
            }
            self.mark_true(&covers);
            return;
        }
        if self.waits.len() >= 2 {
            return;
        }
        // A wait made now must outlast the current section, except `cond_synchronize` of a
        // cookie taken before the section began (its grace period may already be past it).
        let must_block = match cookie {
            Some(i) => self.cookies[i].section == self.section,
            None => true,
        };
        let domain = self.domain.clone();
        let pending = Pending::spawn("model-waiter", move || {
            let ctx = Sleepable::enter();
            match (what, target) {
                ("synchronize_rcu", _) => domain.synchronize_rcu(&ctx),
                ("synchronize_rcu_expedited", _) => domain.synchronize_rcu_expedited(&ctx),
                (_, Some(c)) => domain.cond_synchronize(&ctx, c),
                _ => unreachable!(),
            }
        });
        self.waits.push(BlockedWait { pending, what, must_block, covers });
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Enter => {
                if self.reader.depth() >= 3 {
                    return;
                }
                if !self.reader.is_inside() {
                    self.sections += 1;
                    self.section = Some(self.sections);
                }
                self.reader.enter();
            }
            Op::Exit => {
                if !self.reader.is_inside() {
                    return;
                }
                self.reader.exit();
                if !self.reader.is_inside() {
                    self.section = None;
                    // The section is over: every wait made during it returns.
                    for w in std::mem::take(&mut self.waits) {
                        w.pending.join(w.what);
                        self.mark_true(&w.covers);
                    }
                }
            }
            Op::GetState => {
                let c = self.domain.get_state();
                self.take(c);
            }
            Op::StartPoll => {
                let c = self.domain.start_poll(&self.ctx);
                self.requested = self.requested.max(c.seq());
                self.take(c);
            }
            Op::Poll(i) => {
                if !self.cookies.is_empty() {
                    let i = i.index(self.cookies.len());
                    let c = &self.cookies[i];
                    // `check` below polls every cookie; this poll is the one the op names.
                    let _ = self.domain.poll(c.cookie);
                }
            }
            Op::Synchronize => self.wait("synchronize_rcu", None),
            Op::Expedited => self.wait("synchronize_rcu_expedited", None),
            Op::CondSynchronize(i) => {
                if !self.cookies.is_empty() {
                    self.wait("cond_synchronize", Some(i.index(self.cookies.len())));
                }
            }
            Op::WaitPoll(i) => {
                if !self.cookies.is_empty() && !self.reader.is_inside() {
                    let c = &self.cookies[i.index(self.cookies.len())];
                    if c.cookie.seq() <= self.requested {
                        let cookie = c.cookie;
                        assert!(
                            wait_until(PATIENCE, || self.domain.poll(cookie)),
                            "requested cookie {cookie:?} not completed by the worker with the \
                             reader outside: {:?}",
                            self.domain.stats()
                        );
                    }
                }
            }
        }
        self.check();
    }

    /// Ends every section, lets every wait return, and checks that one more grace period
    /// completes every cookie.
    fn finish(mut self) {
        while self.reader.is_inside() {
            self.apply(&Op::Exit);
        }
        assert!(self.waits.is_empty());
        self.domain.synchronize_rcu(&self.ctx);
        let all = self.all_taken();
        self.mark_true(&all);
        self.check();
    }
}

proptest! {
    // A failing case can take PATIENCE to fail; bound the time spent shrinking.
    #![proptest_config(ProptestConfig {
        cases: 32,
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn grace_periods_follow_the_model(ops in prop::collection::vec(op(), 1..48)) {
        let mut model = Model::new();
        for op in &ops {
            model.apply(op);
        }
        model.finish();
    }
}
