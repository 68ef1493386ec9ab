//! loom models of the hash map's resize protocol, run on the real `rcu_collections::raw` code
//! (under `--cfg loom` the crate builds only its raw layer, on loom's atomics through its
//! `sync` shim).
//!
//! - **publish + migrate** (`resize_never_hides_a_key`): a resizer publishes the future table
//!   and migrates a bucket of two keys (tail first) while a reader looks both up in the old
//!   table: the reader must find both, in every interleaving.
//! - **writers during a migration** (`writer_during_migration_lands_once`,
//!   `appending_writer_during_migration_lands_once`): a writer inserts a third key of the
//!   same bucket while it migrates, at the front of the chain or appended after its tail (as
//!   the map inserts); afterwards every key is found, in exactly one chain.
//! - **a remover during a migration** (`remover_during_migration_finds_its_key`): a writer
//!   removes a key of a bucket while it migrates: it finds the key in its home chain, in
//!   every interleaving, because a bucket's lock is released only with the bucket wholly
//!   here or wholly moved.
//! - **unpublish** (`retired_table_is_never_read`): the resizer makes the future table
//!   current and retires the old one after a (toy) grace period; a reader that loads the
//!   current table inside a (toy) read section never sees a retired table.
//!
//! Each has a deliberately broken variant that the model must catch (`#[should_panic]`):
//! publishing the future table after migrating, unlinking a node before linking it in the
//! new table, appending after a tail found before taking the bucket's lock, releasing a
//! bucket's lock with some of its nodes moved (what a panicking `Hash` did before nodes
//! stored their hash), and retiring the old table before unpublishing it.
//!
//! Run with `ci/collections-loom.sh`, or:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-collections --test loom --release`.
#![cfg(loom)]

use std::sync::Arc;

use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, Ordering};
use loom::thread;
use rcu_collections::raw::{
    move_tail, move_tail_unlink_first, Hashed, Head, Link, Linked, RawTable,
};

/// A chained node whose hash is its key.
#[derive(Debug)]
struct N {
    link: Link<N>,
    key: u64,
}

impl Linked for N {
    fn link(&self) -> &Link<N> {
        &self.link
    }
}

impl Hashed for N {
    fn stored_hash(&self) -> u64 {
        self.key
    }
}

/// A table with `keys` in it (each pushed at the front of its chain).
fn table_with(buckets: usize, keys: &[u64]) -> RawTable<N> {
    let t = RawTable::new(buckets);
    for &key in keys {
        let mut lock = t.bucket(key).lock().expect("a fresh table");
        // SAFETY: (1) a fresh box, freed by `free_all` only.
        unsafe { lock.push_front(node(key)) };
    }
    t
}

fn node(key: u64) -> *mut N {
    Box::into_raw(Box::new(N { link: Link::new(), key }))
}

/// Frees every node of every chain of `t` (and its futures), then the tables.
fn free_all(t: RawTable<N>) {
    let mut tables = vec![t];
    loop {
        let last = tables.last().expect("one");
        let f = last.future();
        if f.is_null() {
            break;
        }
        // SAFETY: futures in the model are leaked boxes, freed here once.
        tables.push(*unsafe { Box::from_raw(f) });
    }
    for t in &tables {
        for i in 0..t.len() {
            if let Head::Chain(mut p) = t.bucket_at(i).head() {
                while !p.is_null() {
                    // SAFETY: every chained node is a leaked box, reachable once.
                    let n = unsafe { Box::from_raw(p) };
                    p = n.link().next();
                }
            }
        }
    }
}

/// Looks `key` up as a reader does.
fn find(t: &RawTable<N>, key: u64) -> bool {
    // SAFETY: the model frees nodes and tables only after every thread joined.
    unsafe { t.find(key, |n| n.key == key) }.is_some()
}

/// Runs a model (loom reads LOOM_MAX_PREEMPTIONS itself).
fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model(f);
}

/// Builds the old table (2 buckets; keys 0 and 2 share bucket 0, 2 first) and a published
/// or unpublished future (4 buckets, where they part).
fn two_key_chain() -> RawTable<N> {
    table_with(2, &[0, 2])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    PublishLate,
    UnlinkFirst,
    /// Broken: moves one node of bucket 0, then releases its lock unmarked.
    StopMidBucket,
}

fn resize(old: &RawTable<N>, next: *mut RawTable<N>, variant: Variant) {
    // SAFETY: `next` is a live box owned by the model until `free_all`.
    let next_ref = unsafe { &*next };
    match variant {
        Variant::Correct => {
            old.publish_future(next);
            // SAFETY: (1) published; (2) nodes freed only after the joins; (3) no future.
            unsafe { old.migrate_bucket(0, next_ref) };
        }
        Variant::PublishLate => {
            // SAFETY: as above, except (1): published only afterwards (the bug).
            unsafe { old.migrate_bucket(0, next_ref) };
            old.publish_future(next);
        }
        Variant::UnlinkFirst => {
            old.publish_future(next);
            let mut lock = old.bucket_at(0).lock().expect("not migrated");
            // SAFETY: as `move_tail`: nodes live, `next` has no future.
            while unsafe { move_tail_unlink_first(&mut lock, next_ref) } {}
            lock.mark_migrated();
        }
        Variant::StopMidBucket => {
            old.publish_future(next);
            let mut lock = old.bucket_at(0).lock().expect("not migrated");
            // SAFETY: nodes live until the model frees them; `next` has no future.
            unsafe { move_tail(&mut lock, next_ref) };
            drop(lock); // one node moved, one left, the bucket still the home of both
        }
    }
}

fn resize_with_reader(variant: Variant) {
    model(move || {
        let old = Arc::new(two_key_chain());
        let next = Box::into_raw(Box::new(RawTable::<N>::new(4)));
        // The reader runs on a spawned thread and the resizer on the model's main thread:
        // loom's DPOR remembers one last access per object, so a thread whose first access
        // is a load, run after another thread's loads, would hide those loads from its
        // later writes; this way round the reader's loads meet the resizer's writes.
        let reader = {
            let old = Arc::clone(&old);
            // The reader starts in the old table, as one that loaded it before the switch.
            thread::spawn(move || {
                let found = (find(&old, 2), find(&old, 0));
                assert!(found.0 && found.1, "a reader missed a key present throughout: {found:?}");
            })
        };
        resize(&old, next, variant);
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
        // Both keys are in the new table now, in their own buckets.
        // SAFETY: published future, freed below.
        let n = unsafe { &*next };
        assert!(find(n, 0) && find(n, 2));
        free_all(Arc::try_unwrap(old).unwrap_or_else(|_| panic!("joined")));
    });
}

/// Publish, then migrate (tail first, linked before unlinked): a reader in the old table
/// finds every key.
#[test]
fn resize_never_hides_a_key() {
    resize_with_reader(Variant::Correct);
}

/// Broken: the future table published after the bucket was migrated. A reader that sees
/// the bucket migrated (or misses a moved node) finds no future table: it misses the key.
#[test]
#[should_panic(expected = "a reader missed a key present throughout")]
fn broken_publish_after_migrating_is_caught() {
    resize_with_reader(Variant::PublishLate);
}

/// Broken: a node unlinked from the old chain before it is linked into the new one. A
/// reader can find it in neither.
#[test]
#[should_panic(expected = "a reader missed a key present throughout")]
fn broken_unlink_before_link_is_caught() {
    resize_with_reader(Variant::UnlinkFirst);
}

/// How the writer of `writer_during_migration` publishes key 4.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Push {
    /// At the front of its home chain (`push_front`).
    Front,
    /// At the end of its home chain, after the tail found under the lock (`push_back`, as
    /// the map inserts).
    Back,
    /// Broken: at the end, after a tail found before taking the lock, which the resizer may
    /// have moved to another bucket of the new table meanwhile.
    BackStaleTail,
}

/// The last node of the chain of `bucket` as a reader sees it (null: empty or migrated).
fn last_node(t: &RawTable<N>, key: u64) -> *mut N {
    let mut last = core::ptr::null_mut();
    if let Head::Chain(mut p) = t.bucket(key).head() {
        // SAFETY: nodes live until `free_all`.
        while let Some(n) = unsafe { p.as_ref() } {
            last = p;
            p = n.link().next();
        }
    }
    last
}

/// A writer inserts key 4 (bucket 0 of the old table, bucket 0 of the new) through its home
/// bucket while the resizer migrates: the key lands once, and every key is found after.
/// For the appending variants the old chain is `[0, 2]`: its tail, key 2, moves to bucket 2
/// of the new table, away from key 4's home.
fn writer_during_migration(push: Push) {
    model(move || {
        let old = Arc::new(match push {
            Push::Front => two_key_chain(),
            Push::Back | Push::BackStaleTail => table_with(2, &[2, 0]),
        });
        let next = Box::into_raw(Box::new(RawTable::<N>::new(4)));
        let next_addr = next as usize;
        let resizer = {
            let old = Arc::clone(&old);
            thread::spawn(move || resize(&old, next_addr as *mut RawTable<N>, Variant::Correct))
        };
        {
            let stale_tail = match push {
                Push::BackStaleTail => last_node(&old, 4),
                Push::Front | Push::Back => core::ptr::null_mut(),
            };
            // SAFETY: tables and nodes are freed after the joins.
            let (_, mut lock) = unsafe { old.lock_home(4) };
            // Key 4 was never inserted: its home chain must not hold it.
            let (mut p, mut tail) = (lock.first(), core::ptr::null_mut());
            // SAFETY: linked nodes live until `free_all`.
            while let Some(n) = unsafe { p.as_ref() } {
                assert_ne!(n.key, 4);
                tail = p;
                p = n.link().next();
            }
            match push {
                // SAFETY: (1) a fresh box, freed by `free_all` only.
                Push::Front => unsafe { lock.push_front(node(4)) },
                // SAFETY: (1) as above; (2) `tail` was found under the lock.
                Push::Back => unsafe { lock.push_back(tail, node(4)) },
                // SAFETY: (1) as above; (2) violated on purpose (the bug under test); the
                // stale tail is still a live node, so the model stays memory-safe.
                Push::BackStaleTail => unsafe { lock.push_back(stale_tail, node(4)) },
            }
        }
        resizer.join().unwrap();
        // SAFETY: published future, freed below.
        let n = unsafe { &*next };
        for key in [0, 2, 4] {
            assert!(find(n, key), "key {key} lost");
        }
        let mut copies = 0;
        for i in 0..n.len() {
            if let Head::Chain(mut p) = n.bucket_at(i).head() {
                while !p.is_null() {
                    // SAFETY: live until `free_all`.
                    let node = unsafe { &*p };
                    copies += usize::from(node.key == 4);
                    p = node.link().next();
                }
            }
        }
        assert_eq!(copies, 1);
        free_all(Arc::try_unwrap(old).unwrap_or_else(|_| panic!("joined")));
    });
}

#[test]
fn writer_during_migration_lands_once() {
    writer_during_migration(Push::Front);
}

/// The map's insert: appended after the tail found under the home bucket's lock.
#[test]
fn appending_writer_during_migration_lands_once() {
    writer_during_migration(Push::Back);
}

/// Broken: the tail found before locking may have moved to another bucket of the new table;
/// the key appended after it is lost to lookups (or cuts off its new chain).
#[test]
#[should_panic]
fn broken_append_after_a_tail_found_before_locking_is_caught() {
    writer_during_migration(Push::BackStaleTail);
}

/// A writer removes key 2 through its home bucket while the resizer migrates it (the old
/// chain is `[0, 2]`: key 2 is the tail, moved first). The writer must find it, and
/// afterwards it is gone from both tables while key 0 stays.
fn remover_during_migration(variant: Variant) {
    model(move || {
        let old = Arc::new(table_with(2, &[2, 0]));
        let next = Box::into_raw(Box::new(RawTable::<N>::new(4)));
        let next_addr = next as usize;
        let resizer = {
            let old = Arc::clone(&old);
            thread::spawn(move || resize(&old, next_addr as *mut RawTable<N>, variant))
        };
        let removed = {
            // SAFETY: tables and nodes are freed after the joins.
            let (_, mut lock) = unsafe { old.lock_home(2) };
            let (mut pred, mut p) = (core::ptr::null_mut(), lock.first());
            // SAFETY: linked nodes live until `free_all` (or the free below).
            while let Some(n) = unsafe { p.as_ref() } {
                if n.key == 2 {
                    break;
                }
                pred = p;
                p = n.link().next();
            }
            assert!(!p.is_null(), "a writer missed key 2 in its home chain");
            // SAFETY: `p` is in this locked chain, after `pred`.
            unsafe { lock.unlink(pred, p) };
            p
        };
        resizer.join().unwrap();
        assert!(!find(&old, 2), "key 2 still found after its removal");
        assert!(find(&old, 0), "key 0 lost");
        // SAFETY: unlinked above, unreachable once both threads are done.
        drop(unsafe { Box::from_raw(removed) });
        free_all(Arc::try_unwrap(old).unwrap_or_else(|_| panic!("joined")));
    });
}

/// The resizer holds a bucket's lock until it is wholly moved: a remover finds its key.
#[test]
fn remover_during_migration_finds_its_key() {
    remover_during_migration(Variant::Correct);
}

/// Broken: a bucket's lock released with one of its nodes moved: its home is still here,
/// so a remover misses the moved key.
#[test]
#[should_panic(expected = "a writer missed key 2 in its home chain")]
fn broken_lock_released_mid_bucket_is_caught() {
    remover_during_migration(Variant::StopMidBucket);
}

/// The toy grace period of the unpublish model: a reader flag that the retirer waits on.
struct Switch {
    current: AtomicPtr<RawTable<N>>,
    in_section: AtomicBool,
    old_retired: AtomicBool,
}

fn unpublish(broken: bool) {
    model(move || {
        let old = Box::into_raw(Box::new(two_key_chain()));
        let next = Box::into_raw(Box::new(RawTable::<N>::new(4)));
        // SAFETY: live until the end of the model.
        let (old_ref, next_ref) = unsafe { (&*old, &*next) };
        old_ref.publish_future(next);
        for i in 0..2 {
            // SAFETY: (1) published; (2) nodes live; (3) no future.
            unsafe { old_ref.migrate_bucket(i, next_ref) };
        }
        let s = Arc::new(Switch {
            current: AtomicPtr::new(old),
            in_section: AtomicBool::new(false),
            old_retired: AtomicBool::new(false),
        });
        let resizer = {
            let s = Arc::clone(&s);
            let next_addr = next as usize;
            thread::spawn(move || {
                if broken {
                    // Relaxed: the model's witness of "freed".
                    s.old_retired.store(true, Ordering::Relaxed);
                }
                // Release: publishes the new table (its migrated buckets).
                s.current.store(next_addr as *mut RawTable<N>, Ordering::Release);
                // SeqCst fence: the toy grace period's half of the store-buffering pair
                // with the reader's fence (loom models fences, not SeqCst accesses, fully):
                // either the reader sees the new table, or we see its section.
                fence(Ordering::SeqCst);
                // Acquire: pairs with the reader's Release end of section.
                while s.in_section.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                if !broken {
                    // Relaxed: the witness (see above).
                    s.old_retired.store(true, Ordering::Relaxed);
                }
            })
        };
        // The reader: a section around one lookup through the current table.
        // Relaxed + SeqCst fence: the reader's half of the pair (see the resizer).
        s.in_section.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        // Acquire: pairs with the resizer's Release store of the new table.
        let t = s.current.load(Ordering::Acquire);
        if t == old {
            // Relaxed: the witness; the section orders it before a correct retirement.
            assert!(!s.old_retired.load(Ordering::Relaxed), "a reader used a retired table");
        }
        // SAFETY: both tables live until the end of the model.
        assert!(find(unsafe { &*t }, 2));
        // Release: the section's reads happen before the resizer's retirement.
        s.in_section.store(false, Ordering::Release);
        resizer.join().unwrap();
        // SAFETY: leaked above, freed once: `old`'s future is `next`.
        free_all(*unsafe { Box::from_raw(old) });
    });
}

/// Unpublish, wait for readers, retire: no reader uses the retired table.
#[test]
fn retired_table_is_never_read() {
    unpublish(false);
}

/// Broken: retired before unpublished: a reader can load it after retirement.
#[test]
#[should_panic(expected = "a reader used a retired table")]
fn broken_retire_before_unpublish_is_caught() {
    unpublish(true);
}
