//! Global knowledge of the key space: every live node's id in sorted order.
//!
//! Sorting ids turns the binary trie of the key space into ranges of one
//! array: the ids sharing a given prefix are a contiguous run, and the run
//! splits at one point into the ids whose next bit is 0 and those whose next
//! bit is 1. Two things follow.
//!
//! - **Closest by XOR.** The ids in a run that are closest to a target are
//!   found by descending the trie: take the half whose next bit matches the
//!   target's first, and the other half only for what is still missing. Each
//!   step is one binary search, so `n` closest ids cost `O(n + log² N)`
//!   instead of a scan of all `N`.
//! - **Routing tables from global knowledge.** For a node `x`, the ids in its
//!   bucket `i` (sharing exactly `i` leading bits with `x`) are the sibling
//!   half at depth `i` on the path from the root to `x`; the `k` of them
//!   closest to `x` are found as above. A whole table costs `O(B · (k + log² N))`
//!   and every node's table is independent of the others, so they are
//!   computed in parallel.

use crate::id::{KEY_BITS, Key};

/// Within `keys[lo..hi]`, all sharing their first `depth` bits, the index
/// where ids with bit `depth` set begin.
#[inline]
fn split(keys: &[Key], lo: usize, hi: usize, depth: usize) -> usize {
    lo + keys[lo..hi].partition_point(|k| !k.bit(depth))
}

/// Appends to `out` the indices (into `keys`) of the `n` ids of
/// `keys[lo..hi]` closest to `target`, in no particular order. Every id in
/// the range must share its first `depth` bits with every other.
pub(crate) fn closest_in_range(
    keys: &[Key],
    lo: usize,
    hi: usize,
    depth: usize,
    target: &Key,
    n: usize,
    out: &mut Vec<usize>,
) {
    if n == 0 || lo >= hi {
        return;
    }
    if hi - lo <= n || depth >= KEY_BITS {
        // All of them (or, past the last bit, equal ids: any of them).
        out.extend(lo..hi.min(lo + n));
        return;
    }
    let mid = split(keys, lo, hi, depth);
    let (near, far) = if target.bit(depth) {
        ((mid, hi), (lo, mid))
    } else {
        ((lo, mid), (mid, hi))
    };
    closest_in_range(keys, near.0, near.1, depth + 1, target, n, out);
    let taken = n.min(near.1 - near.0);
    if taken < n {
        closest_in_range(keys, far.0, far.1, depth + 1, target, n - taken, out);
    }
}

/// For the node whose id is `keys[pos]`, calls `f(bucket, index)` for the
/// `k` ids closest to it in each of its `buckets` buckets (bucket `i` holds the
/// ids sharing exactly `i` leading bits with it; the last bucket also holds
/// every id sharing more). `scratch` is reused between calls.
pub(crate) fn table_of(
    keys: &[Key],
    pos: usize,
    k: usize,
    buckets: usize,
    scratch: &mut Vec<usize>,
    mut f: impl FnMut(usize, usize),
) {
    let me = keys[pos];
    let (mut lo, mut hi) = (0, keys.len());
    let last = buckets.saturating_sub(1);
    for depth in 0..last {
        if hi - lo <= 1 {
            return;
        }
        let mid = split(keys, lo, hi, depth);
        let sibling = if me.bit(depth) {
            let s = (lo, mid);
            lo = mid;
            s
        } else {
            let s = (mid, hi);
            hi = mid;
            s
        };
        scratch.clear();
        closest_in_range(keys, sibling.0, sibling.1, depth + 1, &me, k, scratch);
        for &i in scratch.iter() {
            f(depth, i);
        }
    }
    // The last bucket: everything sharing `last` or more bits, except `me`
    // (at distance zero, so first when present).
    scratch.clear();
    closest_in_range(keys, lo, hi, last, &me, k + 1, scratch);
    for &i in scratch.iter().filter(|&&i| i != pos).take(k) {
        f(last, i);
    }
}

/// The ids of the live nodes, sorted, with the node index of each.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    keys: Vec<Key>,
    nodes: Vec<u32>,
}

impl KeyIndex {
    /// An index of `(id, node)` pairs, sorted in parallel.
    pub fn build(mut pairs: Vec<(Key, u32)>) -> Self {
        use rayon::slice::ParallelSliceMut;
        pairs.par_sort_unstable();
        let (keys, nodes) = pairs.into_iter().unzip();
        KeyIndex { keys, nodes }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The sorted ids.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The node at sorted position `pos`.
    pub fn node_at(&self, pos: usize) -> u32 {
        self.nodes[pos]
    }

    /// Adds a node (`O(N)`: the arrays shift).
    pub fn insert(&mut self, key: Key, node: u32) {
        let pos = self.keys.partition_point(|k| *k < key);
        self.keys.insert(pos, key);
        self.nodes.insert(pos, node);
    }

    /// Removes a node by id; whether it was there.
    pub fn remove(&mut self, key: &Key) -> bool {
        match self.keys.binary_search(key) {
            Ok(pos) => {
                self.keys.remove(pos);
                self.nodes.remove(pos);
                true
            }
            Err(_) => false,
        }
    }

    /// The `n` nodes whose ids are closest to `target`, closest first,
    /// written into `out` (which is cleared first).
    pub fn closest(&self, target: &Key, n: usize, out: &mut Vec<u32>) {
        let mut idx = Vec::with_capacity(n);
        closest_in_range(&self.keys, 0, self.keys.len(), 0, target, n, &mut idx);
        // Compared in place: building two 32-byte distances per comparison
        // made this sort most of the cost of a lookup's accuracy.
        idx.sort_unstable_by(|&a, &b| target.cmp_distance(&self.keys[a], &self.keys[b]));
        out.clear();
        out.extend(idx.into_iter().map(|i| self.nodes[i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn brute(keys: &[Key], target: &Key, n: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..keys.len()).collect();
        all.sort_by_key(|&i| keys[i].distance(target));
        all.truncate(n);
        all
    }

    fn sorted_keys(seed: u64, n: usize) -> Vec<Key> {
        let mut rng = Rng::new(seed);
        let mut keys: Vec<Key> = (0..n).map(|_| Key::random(&mut rng)).collect();
        keys.sort();
        keys
    }

    #[test]
    fn closest_matches_brute_force() {
        for (seed, n) in [(1, 0), (2, 1), (3, 17), (4, 300), (5, 2000)] {
            let keys = sorted_keys(seed, n);
            let mut rng = Rng::new(seed + 100);
            for want in [0, 1, 4, 20, 40] {
                let target = if n > 0 && want % 2 == 0 {
                    keys[rng.below(n as u64) as usize]
                } else {
                    Key::random(&mut rng)
                };
                let mut out = Vec::new();
                closest_in_range(&keys, 0, keys.len(), 0, &target, want, &mut out);
                out.sort_by_key(|&i| keys[i].distance(&target));
                assert_eq!(out, brute(&keys, &target, want), "n={n} want={want}");
            }
        }
    }

    #[test]
    fn tables_match_brute_force() {
        let keys = sorted_keys(9, 1500);
        let mut scratch = Vec::new();
        // With 12 buckets the last one is nearly always empty; with 3 or 1
        // it holds hundreds of ids, this node's own among them.
        for (k, b, pos) in [0, 1, 700, 1499]
            .into_iter()
            .flat_map(|pos| [(4, 12, pos), (4, 3, pos), (20, 1, pos)])
        {
            let me = keys[pos];
            let mut got: Vec<Vec<usize>> = vec![Vec::new(); b];
            table_of(&keys, pos, k, b, &mut scratch, |bucket, i| {
                got[bucket].push(i)
            });
            for (bucket, got) in got.iter_mut().enumerate() {
                let mut members: Vec<usize> = (0..keys.len())
                    .filter(|&i| i != pos && me.common_prefix_len(&keys[i]).min(b - 1) == bucket)
                    .collect();
                members.sort_by_key(|&i| keys[i].distance(&me));
                members.truncate(k);
                got.sort_by_key(|&i| keys[i].distance(&me));
                assert_eq!(*got, members, "pos={pos} k={k} b={b} bucket={bucket}");
            }
        }
    }

    #[test]
    fn equal_ids_are_taken_as_many_as_asked() {
        // Past the last bit the ids of a range are equal: any of them will do.
        let mut keys = vec![Key([7; 32]); 5];
        keys.insert(0, Key::ZERO);
        let mut out = Vec::new();
        closest_in_range(&keys, 0, keys.len(), 0, &Key([7; 32]), 2, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|&i| keys[i] == Key([7; 32])), "{out:?}");
        out.clear();
        closest_in_range(&keys, 0, keys.len(), 0, &Key::ZERO, 3, &mut out);
        out.sort_unstable();
        assert_eq!(out[0], 0, "the one distinct id is the closest to itself");
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn index_insert_remove_closest() {
        let mut rng = Rng::new(4);
        let pairs: Vec<(Key, u32)> = (0..100).map(|i| (Key::random(&mut rng), i)).collect();
        let mut index = KeyIndex::build(pairs.clone());
        assert_eq!(index.len(), 100);
        assert!(!index.is_empty());
        assert!(KeyIndex::default().is_empty());
        let target = pairs[10].0;
        let mut out = Vec::new();
        index.closest(&target, 3, &mut out);
        assert_eq!(out[0], 10);
        assert!(index.remove(&target));
        assert!(!index.remove(&target));
        index.closest(&target, 3, &mut out);
        assert!(!out.contains(&10));
        index.insert(target, 10);
        index.closest(&target, 1, &mut out);
        assert_eq!(out, vec![10]);
    }
}
