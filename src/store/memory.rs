//! A fixed-capacity in-memory store.

use heapless::Vec;

use super::{Record, Store, StoreStatus, Ttl};
use crate::id::{Key, NodeId};
use crate::time::Instant;

#[derive(Clone, Debug)]
struct Entry<const V: usize> {
    key: Key,
    value: Vec<u8, V, u16>,
    expires_at: Instant,
}

/// Up to `N` records of at most `V` value bytes each, in RAM.
///
/// Memory is `N * (32 + V + 16)` bytes or so, fixed at compile time. A value
/// longer than `V` is refused with [`StoreStatus::TooLarge`].
#[derive(Clone, Debug)]
pub struct MemoryStore<const N: usize, const V: usize> {
    entries: Vec<Entry<V>, N, u16>,
}

impl<const N: usize, const V: usize> Default for MemoryStore<N, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const V: usize> MemoryStore<N, V> {
    /// An empty store.
    pub const fn new() -> Self {
        MemoryStore {
            entries: Vec::new(),
        }
    }

    /// The number of records this store can hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    fn position(&self, key: &Key) -> Option<usize> {
        self.entries.iter().position(|e| e.key == *key)
    }
}

impl<const N: usize, const V: usize> Store for MemoryStore<N, V> {
    fn put(&mut self, record: &Record, local: &NodeId, now: Instant) -> StoreStatus {
        if let Ttl::Seconds(0) = record.ttl {
            return StoreStatus::Expired;
        }
        let Ok(value) = Vec::<u8, V, u16>::from_slice(&record.value) else {
            return StoreStatus::TooLarge;
        };
        let entry = Entry {
            key: record.key,
            value,
            expires_at: record.ttl.expires_at(now),
        };
        if let Some(i) = self.position(&record.key) {
            let unchanged = self.entries[i].value == entry.value;
            self.entries[i] = entry;
            return if unchanged {
                StoreStatus::Unchanged
            } else {
                StoreStatus::Updated
            };
        }
        // Expired records are free space: reclaim them before judging "full".
        self.remove_expired(now);
        match self.entries.push(entry) {
            Ok(()) => StoreStatus::Stored,
            Err(entry) => {
                let new_distance = local.distance(&entry.key);
                let farthest = self
                    .entries
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, e)| local.distance(&e.key))
                    .map(|(i, e)| (i, local.distance(&e.key)));
                match farthest {
                    Some((i, d)) if new_distance < d => {
                        self.entries[i] = entry;
                        StoreStatus::Stored
                    }
                    _ => StoreStatus::Full,
                }
            }
        }
    }

    fn get(&self, key: &Key, now: Instant) -> Option<Record> {
        let e = self
            .entries
            .iter()
            .find(|e| e.key == *key && e.expires_at > now)?;
        let mut value = Vec::new();
        // V may exceed MAX_VALUE_LEN only if the embedder chose so; such a
        // value was accepted from a local put and cannot travel: truncation is
        // impossible because put() only stores what a Record could carry.
        value.extend_from_slice(&e.value).ok()?;
        Some(Record {
            key: e.key,
            value,
            ttl: Ttl::remaining(e.expires_at, now),
        })
    }

    fn remove(&mut self, key: &Key) -> bool {
        match self.position(key) {
            Some(i) => {
                self.entries.swap_remove(i);
                true
            }
            None => false,
        }
    }

    fn remove_expired(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.expires_at > now);
        before - self.entries.len()
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.entries
            .iter()
            .map(|e| e.expires_at)
            .filter(|t| *t != Instant::MAX)
            .min()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn key_at(&self, index: usize) -> Option<Key> {
        self.entries.get(index).map(|e| e.key)
    }

    fn for_each_key(&self, f: &mut dyn FnMut(&Key)) {
        for e in &self.entries {
            f(&e.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn rec(key: Key, ttl: Ttl) -> Record {
        Record::new(key, b"value", ttl).unwrap()
    }

    fn key_at_distance(local: &NodeId, first_byte: u8) -> Key {
        let mut k = *local;
        k.0[0] ^= first_byte;
        k
    }

    #[test]
    fn ttl_expiry_and_never() {
        let local = Key::ZERO;
        let mut s = MemoryStore::<4, 16>::new();
        let t0 = Instant::from_millis(1000);
        let a = Key::hash(b"a");
        let b = Key::hash(b"b");
        assert_eq!(
            s.put(&rec(a, Ttl::Seconds(10)), &local, t0),
            StoreStatus::Stored
        );
        assert_eq!(s.put(&rec(b, Ttl::Never), &local, t0), StoreStatus::Stored);
        assert_eq!(s.next_expiry(), Some(t0 + Duration::from_secs(10)));
        let later = t0 + Duration::from_millis(4500);
        assert_eq!(s.get(&a, later).unwrap().ttl, Ttl::Seconds(6));
        let after = t0 + Duration::from_secs(10);
        assert!(s.get(&a, after).is_none());
        assert_eq!(s.remove_expired(after), 1);
        assert_eq!(
            s.get(&b, Instant::from_millis(u64::MAX - 1)).unwrap().ttl,
            Ttl::Never
        );
        assert_eq!(s.next_expiry(), None);
    }

    #[test]
    fn full_store_evicts_farthest_only_for_closer_record() {
        let local = Key::ZERO;
        let mut s = MemoryStore::<2, 16>::new();
        let now = Instant::ZERO;
        let near = key_at_distance(&local, 0x01);
        let far = key_at_distance(&local, 0x80);
        let middle = key_at_distance(&local, 0x10);
        let farther_still = key_at_distance(&local, 0xF0);
        assert_eq!(
            s.put(&rec(near, Ttl::Never), &local, now),
            StoreStatus::Stored
        );
        assert_eq!(
            s.put(&rec(far, Ttl::Never), &local, now),
            StoreStatus::Stored
        );
        assert_eq!(
            s.put(&rec(farther_still, Ttl::Never), &local, now),
            StoreStatus::Full
        );
        assert_eq!(
            s.put(&rec(middle, Ttl::Never), &local, now),
            StoreStatus::Stored
        );
        assert!(s.get(&far, now).is_none(), "the farthest record made room");
        assert!(s.get(&near, now).is_some() && s.get(&middle, now).is_some());
        assert_eq!(s.capacity(), 2);
        let mut keys = std::vec::Vec::new();
        s.for_each_key(&mut |k| keys.push(*k));
        keys.sort();
        let mut expected = [near, middle];
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(
            s.put(&rec(near, Ttl::Seconds(5)), &local, now),
            StoreStatus::Unchanged
        );
        let changed = Record::new(near, b"other", Ttl::Never).unwrap();
        assert_eq!(s.put(&changed, &local, now), StoreStatus::Updated);
    }

    #[test]
    fn oversized_zero_ttl_and_expired_space() {
        let local = Key::ZERO;
        let mut s = MemoryStore::<1, 4>::new();
        let now = Instant::ZERO;
        assert_eq!(
            s.put(&rec(Key::hash(b"x"), Ttl::Never), &local, now),
            StoreStatus::TooLarge
        );
        let small = Record::new(Key::hash(b"y"), b"ab", Ttl::Seconds(1)).unwrap();
        assert_eq!(s.put(&small, &local, now), StoreStatus::Stored);
        assert_eq!(
            s.put(
                &Record {
                    ttl: Ttl::Seconds(0),
                    ..small.clone()
                },
                &local,
                now
            ),
            StoreStatus::Expired
        );
        // The first record has expired by t=2s, so a far record still fits.
        let other = Record::new(Key::hash(b"z"), b"cd", Ttl::Never).unwrap();
        assert_eq!(
            s.put(&other, &local, Instant::from_millis(2000)),
            StoreStatus::Stored
        );
        assert!(s.remove(&other.key));
        assert!(!s.remove(&other.key));
        assert!(s.is_empty());
    }
}
