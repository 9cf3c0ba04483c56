//! The simulator's event queue: a timing wheel of one-millisecond slots.
//!
//! Datagram delays are a few to a few hundred milliseconds, so nearly every
//! event lands within a short horizon of the current time. Such an event is
//! appended to the slot of its millisecond and popped in O(1); only events
//! past the horizon (long timeouts) wait in a binary heap, and enter their
//! slot when the wheel reaches them. The order is exactly that of a heap
//! keyed by `(time, sequence number)`: a slot is sorted by sequence number
//! when the wheel reaches it, and an entry pushed into the slot being
//! drained is inserted in its place. Sequence numbers need not follow push
//! order, which lets entries that another thread produced be pushed late.

use std::collections::BinaryHeap;

/// An entry: `at` (milliseconds), then `seq`, order it.
pub(super) trait Timed: Ord {
    /// When the entry is due.
    fn at(&self) -> u64;
    /// Its rank among entries due at the same time.
    fn seq(&self) -> u64;
}

/// Slots in the wheel: the horizon in milliseconds (a power of two).
const SLOTS: usize = 4096;

/// Entries in `(time, seq)` order. Entries must not be pushed earlier than
/// the last one popped.
pub(super) struct EventQueue<T> {
    slots: Vec<Vec<T>>,
    /// The time of the slot being drained: every slotted entry is due in
    /// `base..base + SLOTS`.
    base: u64,
    /// Entries of the current slot before `cursor` were popped already; the
    /// rest are sorted by `seq`.
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
        if at == self.base {
            // The slot being drained stays sorted behind the cursor.
            let slot = self.slot(at);
            let waiting = &self.slots[slot][self.cursor..];
            let place = self.cursor + waiting.partition_point(|e| e.seq() <= entry.seq());
            self.slots[slot].insert(place, entry);
            self.slotted += 1;
        } else if at < self.base + SLOTS as u64 {
            let i = self.slot(at);
            self.slots[i].push(entry);
            self.slotted += 1;
        } else {
            self.far.push(entry);
        }
    }

    /// When the earliest entry is due.
    pub(super) fn next_at(&self) -> Option<u64> {
        if self.slotted == 0 {
            return self.far.peek().map(T::at);
        }
        // Some slot within the horizon holds an entry, and it is earlier
        // than every entry of the heap.
        if self.slots[self.slot(self.base)].len() > self.cursor {
            return Some(self.base);
        }
        (1..SLOTS as u64)
            .map(|d| self.base + d)
            .find(|&at| !self.slots[self.slot(at)].is_empty())
    }

    /// Removes and returns the earliest entry.
    #[cfg(test)]
    pub(super) fn pop(&mut self) -> Option<T> {
        self.pop_before(u64::MAX)
    }

    /// Removes and returns the earliest entry if it is due before `end`.
    /// The wheel never turns past `end`, so entries due at `end` or later
    /// may still be pushed afterwards.
    pub(super) fn pop_before(&mut self, end: u64) -> Option<T> {
        loop {
            let i = self.slot(self.base);
            if let Some(&e) = self.slots[i].get(self.cursor) {
                if self.base >= end {
                    return None;
                }
                self.cursor += 1;
                self.slotted -= 1;
                return Some(e);
            }
            let next = if self.slotted == 0 {
                // The wheel is empty: jump to the heap's earliest entry.
                self.far.peek()?.at()
            } else {
                self.base + 1
            };
            if next >= end {
                return None;
            }
            self.slots[i].clear();
            self.cursor = 0;
            self.base = next;
            // Entries of the heap that the horizon now covers enter their
            // slots before anything else can be pushed there.
            while let Some(e) = self.far.peek()
                && e.at() < self.base + SLOTS as u64
            {
                let e = self.far.pop().expect("peeked");
                let i = self.slot(e.at());
                self.slots[i].push(e);
                self.slotted += 1;
            }
            let current = self.slot(self.base);
            self.slots[current].sort_unstable_by_key(T::seq);
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
        fn seq(&self) -> u64 {
            self.seq
        }
    }

    proptest! {
        /// Interleaved pushes (never before the last pop or the last
        /// window's end) and pops, some bounded by a window's end, come out
        /// exactly as from a binary heap keyed by (time, seq), whatever
        /// order the sequence numbers are pushed in, and whether the delays
        /// stay within the horizon or jump far past it.
        #[test]
        fn pops_in_the_order_of_a_heap(
            ops in prop::collection::vec(
                (0u8..3, 0u64..3, 0u64..200, 0u64..20_000, any::<u16>()),
                1..400,
            )
        ) {
            let mut wheel: EventQueue<Entry> = EventQueue::new();
            let mut heap = BinaryHeap::new();
            let (mut now, mut count) = (0u64, 0u64);
            for (op, range, near, far, rank) in ops {
                match op {
                    0 => {
                        let (a, b) = (wheel.pop(), heap.pop());
                        prop_assert_eq!(a, b);
                        if let Some(e) = a {
                            now = e.at;
                        }
                    }
                    1 => {
                        // A window that ends `near` ms after now.
                        let end = now + near;
                        let due = heap.peek().is_some_and(|e: &Entry| e.at < end);
                        let b = if due { heap.pop() } else { None };
                        prop_assert_eq!(wheel.pop_before(end), b);
                        now = b.map_or(end, |e| e.at);
                    }
                    _ => {
                        // Unique ranks in no particular order.
                        count += 1;
                        let seq = (u64::from(rank) << 32) | count;
                        let at = now + match range { 0 => 0, 1 => near, _ => far };
                        wheel.push(Entry { at, seq });
                        heap.push(Entry { at, seq });
                    }
                }
                prop_assert_eq!(wheel.next_at(), heap.peek().map(|e| e.at));
                prop_assert_eq!(wheel.len(), heap.len());
            }
            while let Some(b) = heap.pop() {
                prop_assert_eq!(wheel.pop(), Some(b));
            }
            prop_assert_eq!(wheel.pop(), None);
        }
    }
}
