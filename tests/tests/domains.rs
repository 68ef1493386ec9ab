//! Domains (DESIGN §5): readers of one domain never hold up another's grace periods, and
//! domains come and go cleanly (their worker threads are joined).

mod common;

use std::sync::Arc;

use common::{assert_holds_for, thread_names, wait_until, Pending, ReaderThread, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::DomainConfig;

/// A reader holding domain A blocks A's grace periods only: B's and the global domain's
/// complete (normal, expedited and polled), A's stays pending until the reader leaves.
#[test]
fn reader_of_one_domain_does_not_block_others() {
    let a = Arc::new(Domain::new(DomainConfig::new().name("dom-a")));
    let b = Arc::new(Domain::new(DomainConfig::new().name("dom-b")));
    let mut reader = ReaderThread::spawn(a.clone(), "a-reader");
    reader.enter();
    let a_cookie = a.get_state();
    let mut a_writer = Pending::spawn("a-writer", {
        let a = a.clone();
        move || a.synchronize_rcu(&Sleepable::enter())
    });
    let ctx = Sleepable::enter();
    for _ in 0..3 {
        let b_writer = Pending::spawn("b-writer", {
            let b = b.clone();
            move || {
                let ctx = Sleepable::enter();
                b.synchronize_rcu(&ctx);
                b.synchronize_rcu_expedited(&ctx);
                let c = b.get_state();
                b.cond_synchronize(&ctx, c);
                b.poll(c)
            }
        });
        assert!(b_writer.join("domain B's grace periods while A is held"));
        let global_writer = Pending::spawn("global-writer", || {
            let ctx = Sleepable::enter();
            synchronize_rcu(&ctx);
            synchronize_rcu_expedited(&ctx);
        });
        global_writer.join("the global domain's grace periods while A is held");
        let b_cookie = b.start_poll(&ctx);
        assert!(
            wait_until(PATIENCE, || b.poll(b_cookie)),
            "B's polled grace period did not complete while A was held"
        );
        assert!(!a_writer.is_done() && !a.poll(a_cookie), "A's grace period ended early");
    }
    assert_holds_for(HOLD, "A's grace period ended while its reader was inside", || {
        !a_writer.is_done()
    });
    reader.exit();
    a_writer.join("A's grace period after its reader left");
    assert!(a.poll(a_cookie));
}

/// A reader holding the global domain blocks no private domain.
#[test]
fn global_reader_does_not_block_private_domains() {
    let d = Arc::new(Domain::new(DomainConfig::new().name("dom-priv")));
    let mut reader = ReaderThread::spawn(Domain::global(), "global-reader");
    reader.enter();
    let writer = Pending::spawn("priv-writer", {
        let d = d.clone();
        move || {
            let ctx = Sleepable::enter();
            for _ in 0..5 {
                d.synchronize_rcu(&ctx);
                d.synchronize_rcu_expedited(&ctx);
            }
        }
    });
    writer.join("a private domain's grace periods while a global reader is inside");
    reader.exit();
}

/// Each domain counts its own grace periods.
#[test]
fn statistics_are_per_domain() {
    let a = Domain::new(DomainConfig::new().name("dom-sa"));
    let b = Domain::new(DomainConfig::new().name("dom-sb"));
    assert_eq!(a.name(), "dom-sa");
    assert!(!a.is_global() && Domain::global().is_global());
    assert_eq!(Domain::global().name(), "global");
    let ctx = Sleepable::enter();
    let b0 = b.stats();
    for _ in 0..5 {
        a.synchronize_rcu(&ctx);
    }
    a.synchronize_rcu_expedited(&ctx);
    let b1 = b.stats();
    assert_eq!(
        (b1.gp_seq, b1.gp_completed, b1.gps_normal, b1.gps_expedited),
        (b0.gp_seq, b0.gp_completed, b0.gps_normal, b0.gps_expedited),
        "grace periods of A counted in B"
    );
    let sa = a.stats();
    assert_eq!((sa.gps_normal, sa.gps_expedited), (5, 1), "{sa:?}");
    assert_eq!(sa.gp_completed, sa.gp_seq);
}

/// 50 domains created and dropped, each read in by several threads (one of which stays
/// registered in every domain after it is dropped): each domain's worker thread exists while
/// the domain lives and is gone once it is dropped.
#[test]
fn many_domains_come_and_go_cleanly() {
    // Worker threads are named "rcu-gp-<domain name>" and "rcu-refill-<domain name>"; the
    // names used here are unique to this test.
    const PREFIXES: [&str; 2] = ["rcu-gp-md", "rcu-refill-md"];
    let (to_lingerer, lingerer_rx) = std::sync::mpsc::channel::<Option<Arc<Domain>>>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // Reads once in each domain it is handed, and stays registered after the domain's drop.
    let lingerer = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        while let Ok(Some(domain)) = lingerer_rx.recv() {
            let guard = domain.read_lock(&mut ctx);
            drop(guard);
            drop(domain);
            done_tx.send(()).unwrap();
        }
    });
    for i in 0..50 {
        let domain = Arc::new(Domain::new(DomainConfig::new().name(format!("md{i}"))));
        let worker_name = format!("{}{i}", PREFIXES[0]);
        if i % 10 == 0 {
            // The worker names itself once it runs: wait for that rather than race it.
            assert!(
                wait_until(PATIENCE, || thread_names().contains(&worker_name)),
                "no worker thread {worker_name} while the domain lives: {:?}",
                thread_names()
            );
        }
        to_lingerer.send(Some(domain.clone())).unwrap();
        let cell = RcuCell::new_in(&domain, i);
        rcu_tests::scope(|s| {
            for t in 0..3 {
                let (domain, cell) = (&domain, &cell);
                s.spawn(move || {
                    let mut ctx = Sleepable::enter();
                    for round in 0..20 {
                        {
                            let guard = domain.read_lock(&mut ctx);
                            let v = *cell.load(&guard);
                            assert!(v == i || v == i + 1000, "{v}");
                        }
                        if round == 10 && t == 0 {
                            cell.set(&ctx, i + 1000);
                            domain.synchronize_rcu(&ctx);
                        }
                    }
                });
            }
        });
        done_rx.recv_timeout(PATIENCE).expect("the lingering reader read");
        drop(cell);
        // The scoped readers have exited (their slots are released by their thread-exit
        // hooks, which may run just after the scope returns); the lingering one and the
        // domain's worker stay.
        assert!(
            wait_until(PATIENCE, || domain.stats().readers == 2),
            "exited readers kept their slots: {:?}",
            domain.stats()
        );
        drop(domain);
    }
    to_lingerer.send(None).unwrap();
    lingerer.join().unwrap();
    // Dropping a domain joins its worker; the kernel may list a joined thread for a moment
    // longer, so allow it that moment.
    let leftover = || {
        thread_names()
            .into_iter()
            .filter(|n| PREFIXES.iter().any(|p| n.starts_with(p)))
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(PATIENCE, || leftover().is_empty()),
        "worker threads of dropped domains still run: {:?}",
        leftover()
    );
}
