//! Red team (SRCU S2): misuse the future safe API must prevent. `drained` compares *sums*
//! over slots (wrapping), so one slot whose unlocks exceed its locks on an index hides
//! another slot's open section on that index: `drained` reports drained while a section
//! counted before the scan is open (a use-after-free once a grace period relies on it). Each
//! test shows the masking (it asserts the hazard, so passing = shown). Per-slot comparison
//! (`locks(i) == unlocks(i)` for every slot) would turn each case into a hang instead.
#![cfg(not(loom))]

use rcu_core::raw::srcu::{drained, SrcuCounters, SrcuIndex};

/// A borrowed guard that outlives its slot's `force_end_borrowed` (e.g. kept in a
/// thread-local whose destructor runs after the slot's) and is then dropped: unlock > lock.
#[test]
fn misuse_late_unlock_after_force_end_masks_another_open_section() {
    let index = SrcuIndex::new();
    let (a, b) = (SrcuCounters::new(), SrcuCounters::new());
    let ia = a.lock(&index);
    a.force_end_borrowed(); // thread exit with the guard "forgotten"
    a.unlock(ia); // ... but it is dropped later after all
    let ib = b.lock(&index); // b's section is open
    assert_eq!(ia, ib);
    assert!(drained([&a, &b], ib), "expected the masking: drained while b is open");
}

/// An owned guard begun on slot A whose end is counted on slot B.
#[test]
fn misuse_owned_unlock_on_the_wrong_slot_masks() {
    let index = SrcuIndex::new();
    let (a, b) = (SrcuCounters::new(), SrcuCounters::new());
    let ia = a.lock_owned(&index);
    b.unlock_owned(ia); // wrong slot: a's section is still open
    assert!(drained([&a, &b], ia), "expected the masking: drained while a's guard is open");
}

/// An unlock counted on the other index (a guard that recorded the wrong index, or
/// re-read the index at unlock).
#[test]
fn misuse_unlock_on_the_wrong_index_masks() {
    let index = SrcuIndex::new();
    let (a, b) = (SrcuCounters::new(), SrcuCounters::new());
    let i0 = a.lock(&index); // a on index 0
    index.flip();
    let i1 = b.lock(&index); // b open on index 1
    a.unlock(1 - i0); // a's end counted on index 1
    assert_eq!(i1, 1 - i0);
    assert!(drained([&a, &b], i1), "expected the masking: index 1 drained while b is open");
}

/// `drained` walks the slots twice; its doc allows slots *added* between the walks, but a
/// slot *removed* between them (a registry that unlinks an exited thread's slot during a
/// scan) leaves its unlocks in the first sum and not its locks in the second.
#[test]
fn misuse_slot_removed_between_the_two_walks_masks() {
    use std::cell::Cell;
    let index = SrcuIndex::new();
    let (a, b) = (SrcuCounters::new(), SrcuCounters::new());
    let ia = a.lock(&index);
    a.unlock(ia); // a: one section, ended (locks 1, unlocks 1)
    let ib = b.lock(&index); // b open
    /// Yields [a, b] on the first walk, [b] on the second.
    #[derive(Clone)]
    struct Walk<'a> {
        a: &'a SrcuCounters,
        b: &'a SrcuCounters,
        walks: &'a Cell<u32>,
        pos: u32,
        walk: u32,
    }
    impl<'a> Iterator for Walk<'a> {
        type Item = &'a SrcuCounters;
        fn next(&mut self) -> Option<&'a SrcuCounters> {
            if self.pos == 0 {
                self.walks.set(self.walks.get() + 1);
                self.walk = self.walks.get();
            }
            self.pos += 1;
            match (self.walk, self.pos) {
                (1, 1) => Some(self.a),
                (1, 2) => Some(self.b),
                (2, 1) => Some(self.b),
                _ => None,
            }
        }
    }
    let walks = Cell::new(0);
    let walk = Walk { a: &a, b: &b, walks: &walks, pos: 0, walk: 0 };
    assert!(drained(walk, ib), "expected the masking: drained while b is open");
}
