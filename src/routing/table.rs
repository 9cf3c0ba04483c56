//! The routing table.

use heapless::Vec;

use super::{Bucket, Contact, Origin, Probe, ProbeKind, ProbeTime, Side};
use crate::id::{Key, NodeId};
use crate::peer::Peer;
use crate::time::{Duration, Instant};

/// What [`RoutingTable::insert`] did with a peer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InsertOutcome<A> {
    /// The peer is a new contact.
    Added,
    /// The peer was already a contact: it is now the most recently seen.
    Refreshed,
    /// A contact with this id is known at another address and is alive; the
    /// table keeps the known address (a spoofer cannot move a live contact).
    AddressConflict,
    /// The bucket is full. The peer waits in the replacement cache; the caller
    /// should ping `ping`, the least recently seen contact, and evict it only
    /// if it fails to answer.
    Pending {
        /// The contact to probe.
        ping: Peer<A>,
    },
    /// The bucket is full and its oldest contact is already being probed; the
    /// peer waits in the replacement cache.
    Queued,
    /// The peer chose this node, but the incoming side of its bucket is full:
    /// it waits in the replacement cache and should be told so (III-D1).
    Refused,
    /// The peer claims the table owner's own id and was refused.
    SelfId,
}

/// A contact that left the table, and who took its place.
#[derive(Clone, Debug)]
pub struct RemovedContact<A> {
    /// The contact as it was when removed.
    pub contact: Contact<A>,
    /// The replacement promoted into its bucket, if one was waiting.
    pub replaced_by: Option<Peer<A>>,
}

/// A Kademlia routing table of `B` buckets, each with `K` contacts this node
/// chose and `I` contacts that chose it.
///
/// Bucket `i` holds the contacts whose id shares exactly `i` leading bits with
/// the owner's; the last bucket also takes every contact sharing more, the way
/// a splitting table keeps its closest bucket whole. Memory is `B * (K + I)`
/// contacts plus `B` small replacement caches, whatever the id length. The
/// owner's own id is never stored. With `I = 0` (the default) buckets are
/// classic: both kinds of contact share the `K` slots.
// The small fields every datagram reads come first (`repr(C)`), where they
// share a cache line, instead of after the buckets.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct RoutingTable<A, const K: usize, const B: usize, const I: usize = 0> {
    /// No outstanding eviction or verification probe started before this
    /// (`None` when there is none). A lower bound, not the exact minimum: a
    /// probe that ends leaves it as it was, which can only make the node
    /// wake early, and [`RoutingTable::refresh_probe_floor`] makes it exact
    /// again. It lets `poll_timeout` answer without scanning the table.
    probe_floor: Option<Instant>,
    /// The node asks about probes after every datagram; these counts let it
    /// skip scanning the whole table when there are none, which is the
    /// common case outside managed mode.
    probes: ProbeCounts,
    /// How many contacts each bucket holds, kept apart from the buckets:
    /// `closest` walks past many buckets, most of them empty in a large
    /// table's deep end, and reading this array touches one cache line where
    /// reading each bucket's own length touched one per bucket.
    fill: [u8; B],
    local: NodeId,
    buckets: [Bucket<A, K, I>; B],
}

/// How many contacts have a probe outstanding, how many of those are not
/// sent yet, and how many are eviction or verification probes (which time
/// out after the request timeout; keepalives follow their own schedule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProbeCounts {
    all: u16,
    unsent: u16,
    timed: u16,
}

/// Whether `p` is an eviction or verification probe.
fn is_timed(p: Option<Probe>) -> bool {
    p.is_some_and(|p| p.kind != ProbeKind::Keepalive)
}

impl ProbeCounts {
    /// Follows one contact's probe going from `old` to `new` (a removed
    /// contact's goes to `None`).
    fn change(&mut self, old: Option<Probe>, new: Option<Probe>) {
        let unsent = |p: Option<Probe>| u16::from(p.is_some_and(|p| !p.sent));
        self.all = self.all + u16::from(new.is_some()) - u16::from(old.is_some());
        self.unsent = self.unsent + unsent(new) - unsent(old);
        self.timed = self.timed + u16::from(is_timed(new)) - u16::from(is_timed(old));
    }
}

impl<A: Clone + PartialEq, const K: usize, const B: usize, const I: usize>
    RoutingTable<A, K, B, I>
{
    // At most 256 buckets: a key has 256 bits, and `closest_refs` names
    // buckets with a `u8`. At most 255 contacts per bucket: `fill` counts
    // them in a `u8`.
    const CHECK: () = assert!(
        K >= 1 && B >= 1 && B <= 256 && K + I <= 255,
        "a routing table needs K >= 1, K + I <= 255 and 1 <= B <= 256"
    );

    /// An empty table owned by `local`.
    pub fn new(local: NodeId) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        RoutingTable {
            local,
            buckets: core::array::from_fn(|_| Bucket::new()),
            fill: [0; B],
            probes: ProbeCounts::default(),
            probe_floor: None,
        }
    }

    /// The owner's id.
    pub fn local_id(&self) -> &NodeId {
        &self.local
    }

    /// The bucket `id` belongs in.
    pub fn bucket_index(&self, id: &Key) -> usize {
        self.local.common_prefix_len(id).min(B - 1)
    }

    /// Bucket `i`, if `i < B`.
    pub fn bucket(&self, i: usize) -> Option<&Bucket<A, K, I>> {
        self.buckets.get(i)
    }

    /// All buckets, nearest-prefix last.
    pub fn buckets(&self) -> &[Bucket<A, K, I>] {
        &self.buckets
    }

    /// Number of contacts in the table. Read from the fill array (one cache
    /// line), not from every bucket: a node asks before every lookup.
    pub fn len(&self) -> usize {
        self.fill.iter().map(|&n| usize::from(n)).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.fill.iter().all(|&n| n == 0)
    }

    /// Every contact, bucket by bucket.
    pub fn iter(&self) -> impl Iterator<Item = &Contact<A>> {
        self.buckets.iter().flat_map(|b| b.iter())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Contact<A>> {
        self.buckets
            .iter_mut()
            .flat_map(|b| b.contacts.iter_mut().chain(b.incoming.iter_mut()))
    }

    /// Calls `f` on every contact; where it returns a probe, that probe
    /// replaces the contact's own. `f` may update the contact's liveness
    /// bookkeeping but must leave its probe to this method.
    pub(crate) fn start_probes(
        &mut self,
        now: Instant,
        mut f: impl FnMut(&mut Contact<A>) -> Option<Probe>,
    ) {
        let counts = &mut self.probes;
        let mut timed_started = false;
        for b in self.buckets.iter_mut() {
            for c in b.contacts.iter_mut().chain(b.incoming.iter_mut()) {
                if let Some(new) = f(c) {
                    counts.change(c.probe.replace(new), Some(new));
                    timed_started |= is_timed(Some(new));
                }
            }
        }
        self.probes_changed(timed_started.then_some(now));
    }

    /// Keeps `probe_floor` a lower bound after probes changed, `started`
    /// being when a timed probe started, if one did.
    fn probes_changed(&mut self, started: Option<Instant>) {
        if let Some(t) = started {
            self.probe_floor = Some(self.probe_floor.map_or(t, |f| f.min(t)));
        }
        if self.probes.timed == 0 {
            self.probe_floor = None;
        }
    }

    /// Makes `probe_floor` the exact start of the oldest timed probe again
    /// (the node calls this when it handles timeouts, so that a stale floor
    /// wakes it at most once).
    pub(crate) fn refresh_probe_floor(&mut self, now: Instant) {
        self.probe_floor = if self.probes.timed == 0 {
            None
        } else {
            self.iter()
                .filter(|c| is_timed(c.probe))
                .filter_map(|c| c.probe.map(|p| p.sent_at.resolve(now)))
                .min()
        };
    }

    /// The probe counts, recomputed from the contacts (for checking).
    #[cfg(debug_assertions)]
    fn recount_probes(&self) -> ProbeCounts {
        let mut counts = ProbeCounts::default();
        for c in self.iter() {
            counts.change(None, c.probe);
        }
        counts
    }

    /// The contact with this id.
    pub fn get(&self, id: &NodeId) -> Option<&Contact<A>> {
        let b = &self.buckets[self.bucket_index(id)];
        b.locate(id).map(|(side, i)| &b.list(side)[i])
    }

    /// Whether a contact with this id is in the table.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.get(id).is_some()
    }

    /// Learns of `peer`, heard from at `now`, following ping-before-evict.
    pub fn insert(&mut self, peer: Peer<A>, now: Instant, origin: Origin) -> InsertOutcome<A> {
        if peer.id == self.local {
            return InsertOutcome::SelfId;
        }
        let bi = self.bucket_index(&peer.id);
        let bucket = &mut self.buckets[bi];
        if let Some((side, i)) = bucket.locate(&peer.id) {
            let c = bucket.get_mut(side, i);
            if c.peer.addr != peer.addr {
                if c.failures == 0 && c.probe.is_none() {
                    return InsertOutcome::AddressConflict;
                }
                // The known address stopped answering: the node moved.
                c.peer.addr = peer.addr;
            }
            bucket.touch(side, i, now);
            return InsertOutcome::Refreshed;
        }
        let side = Bucket::<A, K, I>::side_for(origin);
        if bucket
            .push(side, Contact::new(peer.clone(), now, origin))
            .is_ok()
        {
            // It may have waited in the cache for the other side: it must not
            // be promoted there later as well.
            bucket.forget(&peer.id);
            self.fill[bi] = bucket.len() as u8;
            return InsertOutcome::Added;
        }
        bucket.remember(peer, origin);
        if side == Side::Incoming {
            return InsertOutcome::Refused;
        }
        let oldest = &bucket.contacts[0];
        if oldest.probe.is_some() {
            InsertOutcome::Queued
        } else {
            InsertOutcome::Pending {
                ping: oldest.peer.clone(),
            }
        }
    }

    /// Records that `id` failed to answer. After `max_failures` consecutive
    /// failures it is removed and the newest replacement takes its place.
    pub fn record_failure(
        &mut self,
        id: &NodeId,
        now: Instant,
        max_failures: u8,
    ) -> Option<RemovedContact<A>> {
        let bi = self.bucket_index(id);
        let bucket = &mut self.buckets[bi];
        let (side, i) = bucket.locate(id)?;
        let c = bucket.get_mut(side, i);
        c.failures = c.failures.saturating_add(1);
        let old = c.probe.take();
        let result = if c.failures >= max_failures.max(1) {
            let (contact, replaced_by) = bucket.remove_and_promote(side, i, now);
            self.fill[bi] = bucket.len() as u8;
            Some(RemovedContact {
                contact,
                replaced_by,
            })
        } else {
            None
        };
        self.probes.change(old, None);
        self.probes_changed(None);
        result
    }

    /// Removes `id` at once (it left, or is known dead).
    pub fn remove(&mut self, id: &NodeId, now: Instant) -> Option<RemovedContact<A>> {
        let bi = self.bucket_index(id);
        let bucket = &mut self.buckets[bi];
        let (side, i) = bucket.locate(id)?;
        let (contact, replaced_by) = bucket.remove_and_promote(side, i, now);
        self.fill[bi] = bucket.len() as u8;
        self.probes.change(contact.probe, None);
        self.probes_changed(None);
        Some(RemovedContact {
            contact,
            replaced_by,
        })
    }

    /// Copies into `out` the contacts closest to `key` by XOR distance,
    /// closest first, at most `n` (and at most `N`), skipping `exclude`.
    pub fn closest_into<const N: usize>(
        &self,
        key: &Key,
        n: usize,
        exclude: Option<&NodeId>,
        out: &mut Vec<Peer<A>, N>,
    ) {
        out.clear();
        for peer in self.closest_refs::<N>(key, n, exclude) {
            // Cannot fail: both hold at most N.
            let _ = out.push(peer.clone());
        }
    }

    /// The contacts closest to `key` by XOR distance, closest first, at most
    /// `n` (and at most `N`), skipping `exclude`: references into the table,
    /// so that a reply can be encoded without copying a contact.
    ///
    /// No allocation and no full sort: every contact of one bucket is closer
    /// to `key` than every contact of another, except in the last bucket,
    /// which merges every longer prefix. So the buckets are visited nearest
    /// first, each is sorted on its own and appended to a list of at most
    /// `n`, and the walk stops once the list is full.
    ///
    /// The order, with `split` the bucket `key` falls in and `d` the
    /// distance from this node to `key`: `split` itself (its contacts agree
    /// with `key` where `key` leaves this node's id); then each later bucket
    /// `j` whose bit `j` of `d` is 1, in increasing order (its contacts
    /// agree with `key` at bit `j`, and deeper buckets do not); then the last
    /// bucket; then each later bucket whose bit of `d` is 0, in decreasing
    /// order; then the buckets before `split`, in decreasing order (bucket
    /// `i < split` differs from `key` first at bit `i`).
    pub fn closest_refs<'a, const N: usize>(
        &'a self,
        key: &Key,
        n: usize,
        exclude: Option<&NodeId>,
    ) -> Vec<&'a Peer<A>, N> {
        let mut pick = Closest::<A, N>::new(key, n.min(N), exclude);
        let split = self.bucket_index(key);
        // Plain loops rather than one chain of iterators: the chain took
        // 188 more bytes of flash on Cortex-M3.
        let visit = |pick: &mut Closest<'a, '_, A, N>, i: usize| {
            if !pick.is_full() && self.fill[i] > 0 {
                pick.add(&self.buckets[i]);
                pick.end_group();
            }
        };
        // Near the key the bucket it falls in is often full enough alone.
        visit(&mut pick, split);
        if pick.is_full() {
            return pick.best.iter().map(|&(_, peer)| peer).collect();
        }
        let last = B - 1;
        // The later buckets in their order, occupied ones only: those where
        // `d` has a 1 from the front, those where it has a 0 from the back.
        // Both slots are written and one cursor moves, so that the random
        // bits of `d` cost no branch mispredictions.
        let mut later = [0u8; B];
        let (mut front, mut back) = (0, B - 1);
        for j in split + 1..last {
            let occupied = usize::from(self.fill[j] > 0);
            let one = usize::from(self.local.bit(j) != key.bit(j));
            later[front] = j as u8;
            later[back] = j as u8;
            front += occupied & one;
            back -= occupied & (one ^ 1);
        }
        for &j in &later[..front] {
            visit(&mut pick, usize::from(j));
        }
        if split < last {
            visit(&mut pick, last);
        }
        for &j in &later[back + 1..] {
            visit(&mut pick, usize::from(j));
        }
        for i in (0..split).rev() {
            visit(&mut pick, i);
        }
        pick.best.iter().map(|&(_, peer)| peer).collect()
    }

    /// The number of contacts in each bucket.
    pub fn bucket_fill(&self) -> [u8; B] {
        self.fill
    }

    /// The index of the nearest non-empty bucket (the one holding our closest
    /// neighbour), if the table has any contact.
    pub fn nearest_bucket(&self) -> Option<usize> {
        self.fill.iter().rposition(|&n| n > 0)
    }

    pub(crate) fn contact_mut(&mut self, id: &NodeId) -> Option<&mut Contact<A>> {
        let bi = self.bucket_index(id);
        let b = &mut self.buckets[bi];
        let (side, i) = b.locate(id)?;
        Some(b.get_mut(side, i))
    }

    /// Starts a liveness probe to `id`; false if `id` is not a contact.
    pub(crate) fn start_probe(
        &mut self,
        id: &NodeId,
        txid: u32,
        now: Instant,
        kind: ProbeKind,
        sent: bool,
    ) -> bool {
        let new = Some(Probe {
            txid,
            sent_at: ProbeTime::at(now),
            kind,
            sent,
        });
        match self.contact_mut(id) {
            Some(c) => {
                let old = core::mem::replace(&mut c.probe, new);
                self.probes.change(old, new);
                self.probes_changed(is_timed(new).then_some(now));
                true
            }
            None => false,
        }
    }

    /// The contact whose outstanding probe has this transaction id. The
    /// answer normally comes from the probed contact itself, `sender`, whose
    /// bucket is looked at first; only a mismatched answer costs a scan.
    pub(crate) fn probe_owner(&self, txid: u32, sender: &NodeId) -> Option<&Contact<A>> {
        if self.probes.all == 0 {
            return None;
        }
        let owns = |c: &&Contact<A>| c.probe.is_some_and(|p| p.txid == txid && p.sent);
        self.get(sender)
            .filter(owns)
            .or_else(|| self.iter().find(owns))
    }

    /// A probe not yet emitted: marks it sent and returns its
    /// target and transaction id.
    pub(crate) fn take_unsent_probe(&mut self) -> Option<(A, u32)> {
        if self.probes.unsent == 0 {
            return None;
        }
        let taken = self.iter_mut().find_map(|c| match &mut c.probe {
            Some(p) if !p.sent => {
                p.sent = true;
                Some((c.peer.addr.clone(), p.txid))
            }
            _ => None,
        });
        if taken.is_some() {
            self.probes.unsent -= 1;
        }
        taken
    }

    /// The earliest deadline of an eviction or verification probe, probes
    /// lasting `timeout`.
    #[cfg_attr(not(debug_assertions), allow(unused_variables))]
    pub(crate) fn next_probe_deadline(&self, now: Instant, timeout: Duration) -> Option<Instant> {
        // Debug builds (the tests, the fuzzers) check the counts, the fill
        // and the floor here, after every call into the node.
        #[cfg(debug_assertions)]
        assert_eq!(self.probes, self.recount_probes(), "probe counts");
        #[cfg(debug_assertions)]
        assert!(
            self.buckets
                .iter()
                .zip(&self.fill)
                .all(|(b, &n)| b.len() == n as usize),
            "bucket fill"
        );
        #[cfg(debug_assertions)]
        assert!(
            self.iter()
                .filter_map(|c| c.probe.filter(|_| is_timed(c.probe)))
                .all(|p| self
                    .probe_floor
                    .is_some_and(|f| f <= p.sent_at.resolve(now))),
            "probe floor"
        );
        if self.probes.timed == 0 {
            return None;
        }
        self.probe_floor.map(|f| f + timeout)
    }

    /// A contact whose eviction or verification probe is overdue at `now`, if any, and whether
    /// it was heard from (by any message) since the probe was sent.
    pub(crate) fn overdue_probe(&self, now: Instant, timeout: Duration) -> Option<(NodeId, bool)> {
        if self.probes.timed == 0 {
            return None;
        }
        self.iter().find_map(|c| match c.probe {
            Some(p)
                if p.kind != ProbeKind::Keepalive && p.sent_at.resolve(now) + timeout <= now =>
            {
                Some((
                    c.peer.id,
                    c.last_seen > p.sent_at.resolve(now) && c.failures == 0,
                ))
            }
            _ => None,
        })
    }

    /// Forgets the probe of `id` (it answered, or proved alive another way).
    pub(crate) fn clear_probe(&mut self, id: &NodeId) {
        if let Some(c) = self.contact_mut(id) {
            let old = c.probe.take();
            self.probes.change(old, None);
            self.probes_changed(None);
        }
    }
}

/// The `n` contacts closest to a key, gathered group by group: every
/// contact of a group is farther from the key than every contact of the
/// groups before it. A group is appended unsorted and sorted once at its
/// end; only a group that would overflow the list falls back to sorted
/// insertion. Each entry carries the first 32 bits of its distance (from
/// the prefixes the bucket keeps, see [`Bucket`]), shifted to the top of a
/// `u64`: among a table's contacts they almost never tie, so most
/// comparisons are one integer comparison, and only a tie compares whole
/// keys.
struct Closest<'a, 'k, A, const N: usize> {
    best: Vec<(u64, &'a Peer<A>), N>,
    key: &'k Key,
    key_prefix: u32,
    n: usize,
    exclude: Option<&'k NodeId>,
    /// The distance word of the excluded id: only a contact that matches it
    /// needs the whole id compared.
    exclude_word: Option<u64>,
    group_start: usize,
    /// Whether the current group is already sorted (it overflowed).
    sorted: bool,
}

impl<'a, 'k, A: Clone + PartialEq, const N: usize> Closest<'a, 'k, A, N> {
    fn new(key: &'k Key, n: usize, exclude: Option<&'k NodeId>) -> Self {
        let key_prefix = key.prefix32();
        Closest {
            best: Vec::new(),
            key,
            key_prefix,
            n,
            exclude,
            exclude_word: exclude.map(|e| distance_word(key_prefix, e.prefix32())),
            group_start: 0,
            sorted: false,
        }
    }

    /// The distance word of a contact whose id starts with `word`.
    fn distance_word(&self, word: u32) -> u64 {
        distance_word(self.key_prefix, word)
    }

    fn is_full(&self) -> bool {
        self.best.len() >= self.n
    }

    fn add<const K: usize, const I: usize>(&mut self, bucket: &'a Bucket<A, K, I>) {
        for (word, c) in bucket.prefixed() {
            self.consider(word, c);
        }
        for (word, c) in bucket.prefixed_incoming() {
            self.consider(word, c);
        }
    }

    /// Adds a contact whose id starts with `word`; the contact itself is
    /// read only on a tie of prefixes.
    #[inline(always)]
    fn consider(&mut self, word: u32, c: &'a Contact<A>) {
        let d = self.distance_word(word);
        if self.exclude_word == Some(d) && self.exclude == Some(&c.peer.id) {
            return;
        }
        if !self.sorted {
            if self.best.push((d, &c.peer)).is_ok() {
                return;
            }
            self.sort_group();
            self.sorted = true;
        }
        insert_by_distance(&mut self.best, self.n, self.key, d, &c.peer);
    }

    fn end_group(&mut self) {
        if !self.sorted {
            self.sort_group();
        }
        self.group_start = self.best.len();
        self.sorted = false;
    }

    /// Sorts the current group and keeps at most `n` entries in all. An
    /// insertion sort: a group holds at most a few buckets' worth of
    /// contacts, and `sort_unstable_by` cost 4 KB of flash on Cortex-M0.
    fn sort_group(&mut self) {
        let key = self.key;
        let group = &mut self.best[self.group_start..];
        for i in 1..group.len() {
            let entry = group[i];
            let mut j = i;
            while j > 0 && farther(key, &group[j - 1], &entry) {
                group[j] = group[j - 1];
                j -= 1;
            }
            group[j] = entry;
        }
        self.best.truncate(self.n.max(self.group_start));
    }
}

/// The first 32 bits of the distance between ids starting with `a` and
/// `b`, at the top of a `u64` (so that the lower bits compare equal).
fn distance_word(a: u32, b: u32) -> u64 {
    u64::from(a ^ b) << 32
}

/// Whether entry `a` is farther from `key` than entry `b`: by the distance
/// word each carries, and by the whole key on a tie.
fn farther<A>(key: &Key, a: &(u64, &Peer<A>), b: &(u64, &Peer<A>)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && farther_on_tie(key, a.1, b.1))
}

/// The rare tie of `farther`, kept out of line: inlined, the compiler may
/// load both ids before it knows the words tie (the references are known
/// to be valid), and each such load is a cache miss on a cold contact.
#[cold]
#[inline(never)]
fn farther_on_tie<A>(key: &Key, a: &Peer<A>, b: &Peer<A>) -> bool {
    key.cmp_distance(&a.id, &b.id).is_gt()
}

/// Inserts `peer`, whose distance to `key` starts with `d`, into `best`
/// (sorted by distance to `key`, nearest first), which keeps at most `n`
/// entries.
fn insert_by_distance<'a, A, const N: usize>(
    best: &mut Vec<(u64, &'a Peer<A>), N>,
    n: usize,
    key: &Key,
    d: u64,
    peer: &'a Peer<A>,
) {
    let mut pos = best.len();
    while pos > 0 && farther(key, &best[pos - 1], &(d, peer)) {
        pos -= 1;
    }
    if pos >= n {
        return;
    }
    if best.len() == n {
        best.pop();
    }
    // Cannot fail: len < n <= N after the pop.
    let _ = best.insert(pos, (d, peer));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    type Table = RoutingTable<u32, 3, 8>;

    fn peer(id: Key, a: u32) -> Peer<u32> {
        Peer::new(id, a)
    }

    /// `n` ids whose first bit differs from `local`'s (its bucket 0),
    /// drawn from `seed`.
    fn far_ids(local: Key, seed: u64, n: usize) -> std::vec::Vec<Key> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| local.random_with_prefix(0, &mut rng))
            .collect()
    }

    #[test]
    fn self_is_refused_and_full_bucket_pings_oldest() {
        let local = Key::ZERO;
        let mut t = Table::new(local);
        let now = Instant::ZERO;
        assert!(t.is_empty());
        assert_eq!(
            t.insert(peer(local, 0), now, Origin::Incoming),
            InsertOutcome::SelfId
        );
        assert!(t.is_empty());
        // Four peers in bucket 0 (first bit set): the fourth does not fit.
        let ids = far_ids(local, 3, 4);
        for (i, id) in ids.iter().take(3).enumerate() {
            assert_eq!(
                t.insert(peer(*id, i as u32), now, Origin::Outgoing),
                InsertOutcome::Added
            );
        }
        assert!(!t.is_empty() && t.len() == 3);
        assert_eq!(
            t.insert(peer(ids[3], 3), now, Origin::Incoming),
            InsertOutcome::Pending {
                ping: peer(ids[0], 0)
            }
        );
        assert!(!t.contains(&ids[3]));
        assert!(t.start_probe(&ids[0], 42, Instant::ZERO, ProbeKind::Evict, true));
        assert_eq!(
            t.insert(peer(ids[3], 3), now, Origin::Incoming),
            InsertOutcome::Queued
        );
        assert_eq!(t.probe_owner(42, &ids[0]).unwrap().peer.id, ids[0]);
        // Answered by someone else, it is still found (and the node rejects it).
        assert_eq!(t.probe_owner(42, &ids[1]).unwrap().peer.id, ids[0]);
        assert!(t.probe_owner(43, &ids[0]).is_none());
        assert_eq!(
            t.overdue_probe(Instant::from_millis(9), Duration::from_millis(10)),
            None
        );
        assert_eq!(
            t.overdue_probe(Instant::from_millis(10), Duration::from_millis(10)),
            Some((ids[0], false))
        );
        // The probe fails: the oldest is evicted and the replacement promoted.
        let removed = t
            .record_failure(&ids[0], Instant::from_millis(10), 1)
            .unwrap();
        assert_eq!(removed.contact.peer.id, ids[0]);
        assert_eq!(removed.replaced_by, Some(peer(ids[3], 3)));
        assert!(t.contains(&ids[3]) && !t.contains(&ids[0]));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn probe_deadline_is_a_lower_bound_made_exact_by_a_refresh() {
        let mut t = Table::new(Key::ZERO);
        let mut rng = Rng::new(5);
        let ids: std::vec::Vec<Key> = (0..2)
            .map(|i| Key::ZERO.random_with_prefix(i, &mut rng))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            t.insert(peer(*id, i as u32), Instant::ZERO, Origin::Outgoing);
        }
        let timeout = Duration::from_millis(100);
        let at = Instant::from_millis;
        assert_eq!(t.next_probe_deadline(at(0), timeout), None);
        t.start_probe(&ids[0], 1, at(10), ProbeKind::Evict, true);
        t.start_probe(&ids[1], 2, at(50), ProbeKind::Verify, true);
        assert_eq!(t.next_probe_deadline(at(60), timeout), Some(at(110)));
        // The older probe is answered: the deadline may stay early...
        t.clear_probe(&ids[0]);
        assert_eq!(t.next_probe_deadline(at(70), timeout), Some(at(110)));
        // ...until the node handles a timeout, which makes it exact.
        t.refresh_probe_floor(at(110));
        assert_eq!(t.next_probe_deadline(at(110), timeout), Some(at(150)));
        // No timed probe left: no deadline, whatever the floor was.
        t.clear_probe(&ids[1]);
        assert_eq!(t.next_probe_deadline(at(120), timeout), None);
    }

    #[test]
    fn live_contact_keeps_its_address_and_answering_refreshes() {
        let mut t = Table::new(Key::ZERO);
        let id = Key::hash(b"x");
        let now = Instant::ZERO;
        t.insert(peer(id, 1), now, Origin::Outgoing);
        assert_eq!(
            t.insert(peer(id, 2), now, Origin::Outgoing),
            InsertOutcome::AddressConflict
        );
        assert_eq!(t.get(&id).unwrap().peer.addr, 1);
        assert!(t.record_failure(&id, now, 3).is_none());
        assert_eq!(t.get(&id).unwrap().failures, 1);
        assert_eq!(
            t.insert(peer(id, 2), Instant::from_millis(5), Origin::Outgoing),
            InsertOutcome::Refreshed
        );
        let c = t.get(&id).unwrap();
        assert_eq!(
            (c.peer.addr, c.failures, c.last_seen),
            (2, 0, Instant::from_millis(5))
        );
    }

    #[test]
    fn k_twenty_and_k_one_work() {
        let mut rng = Rng::new(9);
        let local = Key::random(&mut rng);
        let mut big = RoutingTable::<u32, 20, 16>::new(local);
        let mut small = RoutingTable::<u32, 1, 4>::new(local);
        for i in 0..500 {
            let id = Key::random(&mut rng);
            big.insert(peer(id, i), Instant::ZERO, Origin::Outgoing);
            small.insert(peer(id, i), Instant::ZERO, Origin::Outgoing);
        }
        assert!(big.len() <= 20 * 16 && big.bucket(0).unwrap().len() == 20);
        assert_eq!(small.len(), 4);
    }

    /// A peer waiting in the replacement cache that gets into the bucket
    /// another way leaves the cache: promoting it later would list it twice
    /// (closest_refs then named it twice, and NODES replies carried it
    /// twice).
    #[test]
    #[cfg(debug_assertions)]
    fn probe_counts_follow_every_change() {
        let local = Key::ZERO;
        let mut t = Table::new(local);
        let now = Instant::ZERO;
        let ids = far_ids(local, 11, 2);
        for (i, id) in ids.iter().enumerate() {
            t.insert(peer(*id, i as u32), now, Origin::Outgoing);
        }
        let counts = |t: &Table| {
            assert_eq!(t.probes, t.recount_probes());
            (t.probes.all, t.probes.unsent, t.probes.timed)
        };
        assert!(t.start_probe(&ids[0], 1, now, ProbeKind::Evict, false));
        assert!(t.start_probe(&ids[1], 2, now, ProbeKind::Keepalive, false));
        assert_eq!(counts(&t), (2, 2, 1));
        // An unsent eviction probe replaced by a sent keepalive.
        assert!(t.start_probe(&ids[0], 3, now, ProbeKind::Keepalive, true));
        assert_eq!(counts(&t), (2, 1, 0));
        assert_eq!(t.take_unsent_probe(), Some((1, 2)));
        assert_eq!(t.take_unsent_probe(), None);
        assert_eq!(counts(&t), (2, 0, 0));
        t.clear_probe(&ids[0]);
        assert!(t.start_probe(&ids[1], 4, now, ProbeKind::Verify, false));
        assert_eq!(counts(&t), (1, 1, 1));
        t.clear_probe(&ids[1]);
        assert_eq!(counts(&t), (0, 0, 0));
        assert_eq!(t.next_probe_deadline(now, Duration::from_secs(2)), None);
        // Probes started in one sweep (keepalive ticks): a timed one
        // among them sets the deadline.
        let later = Instant::from_millis(500);
        t.start_probes(later, |c| {
            let kind = if c.peer.addr == 0 {
                ProbeKind::Keepalive
            } else {
                ProbeKind::Verify
            };
            Some(Probe {
                txid: 5 + c.peer.addr,
                sent_at: ProbeTime::at(later),
                kind,
                sent: true,
            })
        });
        assert_eq!(counts(&t), (2, 0, 1));
        assert_eq!(
            t.next_probe_deadline(later, Duration::from_secs(2)),
            Some(Instant::from_millis(2500))
        );
    }

    #[test]
    fn a_contact_is_never_listed_twice() {
        let local = Key::ZERO;
        let mut t = RoutingTable::<u32, 1, 4, 1>::new(local);
        let now = Instant::ZERO;
        let ids = far_ids(local, 8, 4);
        t.insert(peer(ids[0], 0), now, Origin::Outgoing);
        t.insert(peer(ids[1], 1), now, Origin::Incoming);
        // The incoming side is full: ids[2] waits in the cache.
        assert_eq!(
            t.insert(peer(ids[2], 2), now, Origin::Incoming),
            InsertOutcome::Refused
        );
        // The outgoing slot frees with nothing to promote into it, and
        // ids[2] comes back as a contact this node chose.
        assert_eq!(t.remove(&ids[0], now).unwrap().replaced_by, None);
        // Only the choosing side holds a contact: the bucket is not empty.
        let b = t.bucket(0).unwrap();
        assert!(!b.is_empty() && !b.is_full() && b.len() == 1);
        assert_eq!(
            t.insert(peer(ids[2], 2), now, Origin::Outgoing),
            InsertOutcome::Added
        );
        // The incoming slot frees: nothing is waiting for it any more.
        assert_eq!(t.remove(&ids[1], now).unwrap().replaced_by, None);
        let listed: std::vec::Vec<Key> = t.iter().map(|c| c.peer.id).collect();
        assert_eq!(listed, [ids[2]]);
        let closest = t.closest_refs::<4>(&ids[3], 4, None);
        assert_eq!(closest.len(), 1);
    }

    #[test]
    fn incoming_side_is_bounded_and_refuses_with_a_typed_outcome() {
        let local = Key::ZERO;
        let mut t = RoutingTable::<u32, 2, 4, 2>::new(local);
        let now = Instant::ZERO;
        let ids = far_ids(local, 5, 6);
        let bucket = |t: &RoutingTable<u32, 2, 4, 2>| t.bucket(0).unwrap().clone();
        assert!(bucket(&t).is_empty() && !bucket(&t).is_full());
        // Two chosen and two choosing contacts fit side by side: 2k per bucket.
        assert_eq!(
            t.insert(peer(ids[0], 0), now, Origin::Outgoing),
            InsertOutcome::Added
        );
        assert!(!bucket(&t).is_empty() && !bucket(&t).is_full());
        assert_eq!(
            t.insert(peer(ids[1], 1), now, Origin::Outgoing),
            InsertOutcome::Added
        );
        // Full means the chosen side is full; the choosing side has room.
        assert!(bucket(&t).is_full());
        assert_eq!(
            t.insert(peer(ids[2], 2), now, Origin::Incoming),
            InsertOutcome::Added
        );
        assert_eq!(
            t.insert(peer(ids[3], 3), now, Origin::Incoming),
            InsertOutcome::Added
        );
        assert_eq!(t.bucket(0).unwrap().len(), 4);
        assert_eq!(t.bucket(0).unwrap().incoming().len(), 2);
        // A third incoming one is refused, and remembered as a replacement.
        assert_eq!(
            t.insert(peer(ids[4], 4), now, Origin::Incoming),
            InsertOutcome::Refused
        );
        assert!(!t.contains(&ids[4]));
        assert!(t.bucket(0).unwrap().replacements().any(|p| p.id == ids[4]));
        // A third outgoing one goes through ping-before-evict as usual.
        assert_eq!(
            t.insert(peer(ids[5], 5), now, Origin::Outgoing),
            InsertOutcome::Pending {
                ping: peer(ids[0], 0)
            }
        );
        // When an incoming contact goes, the waiting incoming peer takes its place.
        let removed = t.remove(&ids[2], now).unwrap();
        assert_eq!(removed.replaced_by, Some(peer(ids[4], 4)));
        assert!(
            t.bucket(0)
                .unwrap()
                .incoming()
                .iter()
                .any(|c| c.peer.id == ids[4])
        );
        // Each side keeps its own id prefixes (with std), in its own order.
        #[cfg(feature = "std")]
        {
            let b = t.bucket(0).unwrap();
            let prefixes = |list: &[Contact<u32>]| -> std::vec::Vec<u32> {
                list.iter().map(|c| c.peer.id.prefix32()).collect()
            };
            assert_eq!(b.words(), prefixes(b.contacts()).as_slice());
            assert_eq!(b.incoming_words(), prefixes(b.incoming()).as_slice());
            assert_eq!(b.incoming_words().len(), 2);
        }
        assert!(t.contains(&ids[3]) && t.contains(&ids[4]) && !t.contains(&ids[2]));
        // Both sides are searched by closest_into.
        let mut out: Vec<Peer<u32>, 8> = Vec::new();
        t.closest_into(&ids[3], 8, None, &mut out);
        assert_eq!(out[0].id, ids[3]);
        assert_eq!(out.len(), 4);
    }

    fn brute_force(t: &Table, key: &Key, n: usize) -> std::vec::Vec<Peer<u32>> {
        let mut all: std::vec::Vec<Peer<u32>> = t.iter().map(|c| c.peer.clone()).collect();
        all.sort_by_key(|p| p.id.distance(key));
        all.truncate(n);
        all
    }

    proptest! {
        /// Full k = 20 buckets, many of whose contacts share their first 32
        /// bits (and so their prefix word): every contact is found by id,
        /// and an id that is not there is not found.
        #[test]
        fn contacts_are_found_in_full_buckets_when_prefixes_tie(
            local in any::<[u8; 32]>(), seed in any::<u64>(), count in 0usize..120,
        ) {
            let local = Key(local);
            let mut rng = Rng::new(seed);
            let mut t = RoutingTable::<u32, 20, 4>::new(local);
            for i in 0..count {
                let id = if rng.below(2) == 0 {
                    local.random_with_prefix(32 + rng.below(8) as usize, &mut rng)
                } else {
                    Key::random(&mut rng)
                };
                t.insert(peer(id, i as u32), Instant::ZERO, Origin::Outgoing);
            }
            for c in t.iter() {
                prop_assert_eq!(t.get(&c.peer.id).map(|f| f.peer.addr), Some(c.peer.addr));
            }
            let absent = local.random_with_prefix(33, &mut rng);
            prop_assert_eq!(t.get(&absent).is_some(), t.iter().any(|c| c.peer.id == absent));
        }
    }

    proptest! {
        #[test]
        fn table_invariants(local in any::<[u8; 32]>(), seed in any::<u64>(), count in 0usize..200,
                            key in any::<[u8; 32]>(), n in 0usize..12, near in any::<bool>()) {
            let local = Key(local);
            let mut rng = Rng::new(seed);
            let mut t = Table::new(local);
            t.insert(peer(local, 0), Instant::ZERO, Origin::Outgoing);
            for i in 0..count {
                // Mix uniform ids with ids near `local` so that every bucket,
                // the merged last one included, gets exercised.
                // Some share 32 bits or more with it: their prefixes tie.
                let depth = if rng.below(4) == 0 { 32 + rng.below(8) } else { rng.below(12) };
                let id = if near { local.random_with_prefix(depth as usize, &mut rng) } else { Key::random(&mut rng) };
                let now = Instant::from_millis(i as u64);
                let outcome = t.insert(peer(id, i as u32), now, Origin::Outgoing);
                if let InsertOutcome::Pending { ping } = outcome && rng.below(2) == 0 {
                    t.record_failure(&ping.id, now, 1);
                }
                // Refresh (moves to the fresh end) or remove a known contact.
                let pick = rng.below(t.len().max(1) as u64) as usize;
                let known = t.iter().nth(pick).map(|c| c.peer.clone());
                if let Some(known) = known {
                    match rng.below(4) {
                        0 => prop_assert_eq!(t.insert(known, now, Origin::Incoming), InsertOutcome::Refreshed),
                        1 => prop_assert!(t.remove(&known.id, now).is_some()),
                        _ => {}
                    }
                }
            }
            // The prefixes beside each list (with std) match its contacts,
            // in order, and every contact is found by id.
            #[cfg(feature = "std")]
            for b in t.buckets() {
                let words: std::vec::Vec<u32> = b.contacts().iter().map(|c| c.peer.id.prefix32()).collect();
                prop_assert_eq!(b.words(), words.as_slice());
                prop_assert!(b.incoming_words().is_empty());
            }
            for c in t.iter() {
                prop_assert_eq!(t.get(&c.peer.id).map(|f| f.peer.addr), Some(c.peer.addr));
            }
            prop_assert!(t.len() <= 3 * 8);
            prop_assert!(!t.contains(&local));
            // The nearest occupied bucket holds the contact closest to us.
            let nearest = t.iter().map(|c| t.bucket_index(&c.peer.id)).max();
            prop_assert_eq!(t.nearest_bucket(), nearest);
            let fill: std::vec::Vec<usize> = t.buckets().iter().map(|b| b.len()).collect();
            let reported = t.bucket_fill().map(usize::from);
            prop_assert_eq!(reported.as_slice(), fill.as_slice());
            prop_assert_eq!(fill.iter().sum::<usize>(), t.iter().count());
            for (i, b) in t.buckets().iter().enumerate() {
                prop_assert!(b.len() <= 3);
                for c in b.iter() {
                    prop_assert_eq!(t.bucket_index(&c.peer.id), i);
                    prop_assert_eq!(local.common_prefix_len(&c.peer.id).min(7), i);
                }
            }
            let key = Key(key);
            let mut out: Vec<Peer<u32>, 10> = Vec::new();
            t.closest_into(&key, n, None, &mut out);
            let expected = brute_force(&t, &key, n.min(10));
            prop_assert_eq!(out.as_slice(), expected.as_slice());
            // A list shorter than a bucket: the bucket overflows it, and
            // later contacts are placed into the sorted rest one by one.
            let mut two: Vec<Peer<u32>, 2> = Vec::new();
            t.closest_into(&key, n, None, &mut two);
            let expected = brute_force(&t, &key, n.min(2));
            prop_assert_eq!(two.as_slice(), expected.as_slice());
            t.closest_into(&local, n, None, &mut two);
            let expected = brute_force(&t, &local, n.min(2));
            prop_assert_eq!(two.as_slice(), expected.as_slice());
            // The same with the table's own id as the key (the merged bucket first).
            t.closest_into(&local, n, None, &mut out);
            let expected = brute_force(&t, &local, n.min(10));
            prop_assert_eq!(out.as_slice(), expected.as_slice());
            // Leaving out one contact (a requester is never sent itself).
            if let Some(skip) = t.iter().nth(seed as usize % t.len().max(1)).map(|c| c.peer.id) {
                t.closest_into(&key, n, Some(&skip), &mut out);
                let mut expected = brute_force(&t, &key, n.min(10) + 1);
                expected.retain(|p| p.id != skip);
                expected.truncate(n.min(10));
                prop_assert_eq!(out.as_slice(), expected.as_slice());
            }
        }
    }
}
