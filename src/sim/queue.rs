//! The simulator's event queue: a timing wheel of one-millisecond slots.
//!
//! Datagram delays are a few to a few hundred milliseconds, so nearly every
//! event lands within a short horizon of the current time. Such an event is
//! appended to the slot of its millisecond and popped in O(1); only events
//! past the horizon (long timeouts) wait in a binary heap, and enter their
//! slot when the wheel reaches them. The order is exactly that of a heap
//! keyed by `(time, sequence number)`: within a slot, entries sit in push
//! order, and entries from the heap enter a slot before any later push can.

use std::collections::BinaryHeap;

/// An entry: `at` (milliseconds) and `seq` (its push order) order it.
pub(super) trait Timed: Ord {
    /// When the entry is due.
    fn at(&self) -> u64;
}

/// Slots in the wheel: the horizon in milliseconds (a power of two).
const SLOTS: usize = 4096;

/// Entries in time order, ties in push order. Entries must not be pushed
/// earlier than the last one popped.
pub(super) struct EventQueue<T> {
    slots: Vec<Vec<T>>,
    /// The time of the slot being drained: every slotted entry is due in
    /// `base..base + SLOTS`.
    base: u64,
    /// Entries of the current slot before `cursor` were popped already.
    cursor: usize,
    /// Entries in slots, not yet popped.
    slotted: usize,
    /// Entries due at `base + SLOTS` or later. `BinaryHeap` pops its
    /// greatest entry, so `T`'s order must put the earliest entry greatest.
    far: BinaryHeap<T>,
}

impl<T: Timed + Copy> EventQueue<T> {
    pub(super) fn new() -> Self {
        EventQueue {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            base: 0,
            cursor: 0,
            slotted: 0,
            far: BinaryHeap::new(),
        }
    }

    fn slot(&self, at: u64) -> usize {
        (at % SLOTS as u64) as usize
    }

    /// Entries waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slotted + self.far.len()
    }

    pub(super) fn push(&mut self, entry: T) {
        let at = entry.at().max(self.base);
        debug_assert_eq!(at, entry.at(), "an entry pushed into the past");
        if at < self.base + SLOTS as u64 {
            let i = self.slot(at);
            self.slots[i].push(entry);
            self.slotted += 1;
        } else {
            self.far.push(entry);
        }
    }

    /// The earliest entry, without removing it.
    pub(super) fn peek(&self) -> Option<&T> {
        if self.slotted == 0 {
            return self.far.peek();
        }
        // Some slot within the horizon holds an entry, and it is earlier
        // than every entry of the heap.
        let current = &self.slots[self.slot(self.base)];
        if let Some(e) = current.get(self.cursor) {
            return Some(e);
        }
        (1..SLOTS as u64).find_map(|d| self.slots[self.slot(self.base + d)].first())
    }

    /// Removes and returns the earliest entry.
    pub(super) fn pop(&mut self) -> Option<T> {
        loop {
            let i = self.slot(self.base);
            if let Some(&e) = self.slots[i].get(self.cursor) {
                self.cursor += 1;
                self.slotted -= 1;
                return Some(e);
            }
            self.slots[i].clear();
            self.cursor = 0;
            if self.slotted == 0 {
                // The wheel is empty: jump to the heap's earliest entry.
                self.base = self.far.peek()?.at();
            } else {
                self.base += 1;
            }
            // Entries of the heap that the horizon now covers enter their
            // slots, earliest first, before anything else can be pushed there.
            while let Some(e) = self.far.peek()
                && e.at() < self.base + SLOTS as u64
            {
                let e = self.far.pop().expect("peeked");
                let i = self.slot(e.at());
                self.slots[i].push(e);
                self.slotted += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Entry {
        at: u64,
        seq: u64,
    }

    impl Ord for Entry {
        fn cmp(&self, other: &Self) -> Ordering {
            (other.at, other.seq).cmp(&(self.at, self.seq))
        }
    }
    impl PartialOrd for Entry {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Timed for Entry {
        fn at(&self) -> u64 {
            self.at
        }
    }

    proptest! {
        /// Interleaved pushes (never before the last pop) and pops come out
        /// exactly as from a binary heap keyed by (time, push order),
        /// whether the delays stay within the horizon or jump far past it.
        #[test]
        fn pops_in_the_order_of_a_heap(ops in prop::collection::vec((any::<bool>(), 0u64..3, 0u64..200, 0u64..20_000), 1..400)) {
            let mut wheel: EventQueue<Entry> = EventQueue::new();
            let mut heap = BinaryHeap::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (pop, range, near, far) in ops {
                if pop {
                    let (a, b) = (wheel.pop(), heap.pop());
                    prop_assert_eq!(a, b);
                    if let Some(e) = a {
                        now = e.at;
                    }
                } else {
                    seq += 1;
                    let at = now + match range { 0 => 0, 1 => near, _ => far };
                    wheel.push(Entry { at, seq });
                    heap.push(Entry { at, seq });
                }
                prop_assert_eq!(wheel.peek(), heap.peek());
                prop_assert_eq!(wheel.len(), heap.len());
            }
            while let Some(b) = heap.pop() {
                prop_assert_eq!(wheel.pop(), Some(b));
            }
            prop_assert_eq!(wheel.pop(), None);
        }
    }
}
