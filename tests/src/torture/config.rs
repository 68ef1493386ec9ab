//! What a torture run does: threads, duration, flavor, delays, faults, token mix, tests.

use std::time::Duration;

/// Which token the updaters use to queue deferred work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `Sleepable`: may wait (backpressure).
    Sleepable,
    /// `NoReclaim`: may allocate, never reclaims.
    NoReclaim,
    /// `Atomic`: never allocates or blocks.
    Atomic,
    /// The token of a read section of the tortured sleepable domain (`guard.ctx()`), entered
    /// for the call: on that domain it queues without ever waiting for it (on the global
    /// domain, it is another domain's section). Sleepable flavors only; never with
    /// `kvfree_rcu_mightsleep`, which may wait.
    Section,
}

impl TokenKind {
    /// The tokens a run of `flavor` cycles through by default: every one it has.
    pub fn defaults(flavor: FlavorKind) -> Vec<TokenKind> {
        let mut tokens = vec![TokenKind::Sleepable, TokenKind::NoReclaim, TokenKind::Atomic];
        if flavor.is_sleepable() {
            tokens.push(TokenKind::Section);
        }
        tokens
    }

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Sleepable => "sleepable",
            TokenKind::NoReclaim => "noreclaim",
            TokenKind::Atomic => "atomic",
            TokenKind::Section => "section",
        }
    }
}

/// Which domain (or fake) to torture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlavorKind {
    /// The global domain.
    Global,
    /// An isolated domain.
    Custom,
    /// The deliberately broken fake: must produce FAILURE.
    Busted,
    /// An isolated domain whose `kvfree_rcu` leaves deallocations to the queueing thread
    /// and whose `rcu_barrier` does not finish them: the barrier check must fail.
    BustedBarrier,
    /// An isolated sleepable domain (`SrcuStruct<Fast>`).
    Srcu,
    /// An isolated sleepable domain with plain readers (`SrcuStruct<Plain>`).
    SrcuPlain,
    /// Two sleepable domains wired wrongly: readers lock one, updates retire on the other,
    /// and readers hold values across more than the pipeline's grace periods of it: the age
    /// check must fail.
    SrcuBusted,
    /// An isolated QSBR domain (`QsbrDomain`): readers stay online across batches of reads.
    Qsbr,
    /// Two QSBR domains wired wrongly: readers are online on one, updates retire on the
    /// other, and readers hold values across more than the pipeline's grace periods of it:
    /// the age check must fail.
    QsbrBusted,
}

impl FlavorKind {
    /// True for the sleepable flavors.
    pub fn is_sleepable(self) -> bool {
        matches!(self, FlavorKind::Srcu | FlavorKind::SrcuPlain | FlavorKind::SrcuBusted)
    }

    /// True for the QSBR flavors.
    pub fn is_qsbr(self) -> bool {
        matches!(self, FlavorKind::Qsbr | FlavorKind::QsbrBusted)
    }
}

/// The checks a run performs; each can be switched off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tests {
    /// Readers check element ages and poison (the core check).
    pub age: bool,
    /// Readers check that a cookie taken inside a section does not complete during it.
    pub polled: bool,
    /// Updaters queue counted `call_rcu` traffic and tracked `kvfree_rcu` values; all
    /// callbacks must run by the end.
    pub callbacks: bool,
    /// A thread checks that `rcu_barrier` covers everything queued before it: callbacks ran,
    /// the updaters' tracked values dropped and deallocated (also after the final barrier).
    pub barrier: bool,
    /// A `call_rcu` flood must not stop grace periods or callbacks, and stays bounded.
    pub forward_progress: bool,
    /// A reader held past the stall timeout must be reported.
    pub stall: bool,
    /// `rcu_collections::RcuHashMap` under torture (`map.rs`); skipped by the busted flavor;
    /// on a sleepable domain of the run's reader flavour under the sleepable flavors, on a
    /// QSBR domain under the QSBR flavors.
    pub map: bool,
}

impl Tests {
    /// Every test.
    pub const ALL: Tests = Tests {
        age: true,
        polled: true,
        callbacks: true,
        barrier: true,
        forward_progress: true,
        stall: true,
        map: true,
    };
}

/// A torture run's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Reader threads.
    pub readers: usize,
    /// Updater threads queueing callback traffic (besides the one writer).
    pub updaters: usize,
    /// How long to run.
    pub duration: Duration,
    /// What to torture.
    pub flavor: FlavorKind,
    /// Classic and QSBR flavors: one read in this many holds its section (QSBR: stays online
    /// without a quiescent state) for a long delay (0: never). The sleepable flavors' readers
    /// sleep as `srcu_max_sleep` says instead.
    pub long_delay_every: u32,
    /// The long delay.
    pub long_delay: Duration,
    /// One read in this many spins briefly inside its section (0: never).
    pub short_delay_every: u32,
    /// Probability that a block request fails by injection (the run's own domain: custom,
    /// sleepable and QSBR flavors).
    pub fault_rate: f64,
    /// Sleepable flavors: the longest a reader sleeps in a section (half the sections sleep
    /// a random time up to it, the others do not sleep).
    pub srcu_max_sleep: Duration,
    /// Tokens the writer's callback chains and the updaters cycle through.
    pub tokens: Vec<TokenKind>,
    /// Which checks to run.
    pub tests: Tests,
    /// How long the forward-progress flood runs.
    pub flood: Duration,
    /// Stall timeout of the stall test's domain.
    pub stall_timeout: Duration,
    /// Pending-memory budget of the custom domain, bytes.
    pub budget: usize,
    /// Custom domain uses tiny blocks, so rare allocation paths run all the time.
    pub small_blocks: bool,
    /// Period of the live report (zero: no live report).
    pub report_every: Duration,
    /// Seed of the random delays and faults.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            readers: 2,
            updaters: 1,
            duration: Duration::from_secs(10),
            flavor: FlavorKind::Custom,
            long_delay_every: 20_000,
            long_delay: Duration::from_millis(2),
            short_delay_every: 50,
            fault_rate: 0.01,
            srcu_max_sleep: Duration::from_millis(5),
            tokens: vec![TokenKind::Sleepable, TokenKind::NoReclaim, TokenKind::Atomic],
            tests: Tests::ALL,
            flood: Duration::from_secs(2),
            stall_timeout: Duration::from_millis(200),
            budget: 8 << 20,
            small_blocks: false,
            report_every: Duration::from_secs(1),
            seed: 0x5eed,
        }
    }
}
