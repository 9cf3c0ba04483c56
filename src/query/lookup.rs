//! One lookup.

use heapless::Vec;

use crate::config::LookupEnd;
use crate::id::{Key, NodeId};
use crate::peer::Peer;
use crate::store::{Record, StoreStatus};
use crate::time::{Duration, Instant};

/// Names a command's query in events. Unique per node for 2^32 queries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueryId(pub u32);

/// What a lookup was started for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LookupKind {
    /// `find_node`: the closest nodes to a key.
    FindNode,
    /// `get`: a record, or failing that the closest nodes.
    Get,
    /// `put`: the closest nodes, then STORE on them.
    Put,
    /// `bootstrap`: ping seeds, look up our own id, refresh far buckets.
    Bootstrap,
}

/// Why a lookup ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Termination {
    /// The closest candidates have all answered.
    Converged,
    /// `step_to_stop` rounds in a row found no closer node, and the final
    /// sweep of the closest unasked candidates did not converge either; or,
    /// with [`LookupEnd::Unverified`], `step_to_stop` answers in a row
    /// found no closer node (that rule's usual end).
    Stalled,
    /// No candidate was left to ask.
    Exhausted,
    /// A `get` found its value.
    ValueFound,
    /// The lookup deadline passed.
    Deadline,
}

/// Statistics of one lookup, like py-dht's lookup summary.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LookupStats {
    /// Requests sent (FIND_NODE, FIND_VALUE, STORE and bootstrap PINGs).
    pub requests: u16,
    /// Answers received.
    pub responses: u16,
    /// Requests that timed out.
    pub timeouts: u16,
    /// Rounds of α requests.
    pub rounds: u16,
    /// From the command to the end.
    pub elapsed: Duration,
}

/// Where a candidate stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CandidateState {
    /// Known, not asked yet.
    Fresh,
    /// Asked; `sent` says whether `poll_transmit` has emitted the datagram.
    InFlight {
        txid: u32,
        deadline: Instant,
        round: u16,
        sent: bool,
    },
    /// Answered (the txid is kept to recognise duplicates).
    Answered { txid: u32 },
    /// Did not answer in time (the txid is kept to recognise late answers).
    Failed { txid: u32 },
    /// A STORE is outstanding.
    Storing {
        txid: u32,
        deadline: Instant,
        sent: bool,
    },
    /// The STORE was answered.
    Stored { txid: u32, status: StoreStatus },
    /// The STORE was not answered.
    StoreFailed { txid: u32 },
}

impl CandidateState {
    pub(crate) fn txid(&self) -> Option<u32> {
        match *self {
            CandidateState::Fresh => None,
            CandidateState::InFlight { txid, .. }
            | CandidateState::Answered { txid }
            | CandidateState::Failed { txid }
            | CandidateState::Storing { txid, .. }
            | CandidateState::Stored { txid, .. }
            | CandidateState::StoreFailed { txid } => Some(txid),
        }
    }

    fn is_failed(&self) -> bool {
        matches!(self, CandidateState::Failed { .. })
    }

    /// Whether a full list may drop this candidate for a closer one: not
    /// while a request to it is outstanding.
    fn is_evictable(&self) -> bool {
        !matches!(
            self,
            CandidateState::InFlight { .. } | CandidateState::Storing { .. }
        )
    }
}

/// A candidate: a peer and where it stands.
#[derive(Clone, Debug)]
pub(crate) struct Candidate<A> {
    pub(crate) peer: Peer<A>,
    pub(crate) state: CandidateState,
    /// Transaction id of the answer that named this candidate (0: it came
    /// from the routing table); down-lists report failures to that referrer.
    pub(crate) referrer: u32,
}

/// The lookup's phase.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// Bootstrap only: waiting for seeds to answer PINGs.
    PingingSeeds,
    /// Asking candidates.
    Searching,
    /// Put only: STOREs outstanding.
    Storing,
    /// Done; waiting for `poll_event` to report it.
    Finished(Termination),
}

/// What became of one request, as `Lookup::resolve` is told.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    /// Answered; `closer` when the answer brought a contact into the
    /// `width` closest live candidates.
    Answered { closer: bool },
    /// Timed out.
    Failed,
}

/// Distances to a lookup's target by their first 64 bits: most
/// comparisons need no more, and whole ids are compared only where the
/// words match.
#[derive(Clone, Copy)]
struct Ruler {
    target: Key,
    target_word: u64,
    local_word: u64,
}

impl Ruler {
    fn new(target: Key, local: &NodeId) -> Self {
        let target_word = target.first_word();
        Ruler {
            target,
            target_word,
            local_word: target_word ^ local.first_word(),
        }
    }

    /// The first 64 bits of `id`'s distance to the target.
    fn word(&self, id: &Key) -> u64 {
        self.target_word ^ id.first_word()
    }

    /// Whether `peer`, whose distance word is `dist`, is the local node.
    fn is_local<A>(&self, dist: u64, peer: &Peer<A>, local: &NodeId) -> bool {
        dist == self.local_word && peer.id == *local
    }

    /// Whether candidate `c` is closer to the target than `peer`.
    fn closer<A>(&self, c: &Candidate<A>, dist: u64, peer: &Peer<A>) -> bool {
        let d = self.word(&c.peer.id);
        d < dist || (d == dist && self.target.cmp_distance(&c.peer.id, &peer.id).is_lt())
    }

    /// Whether candidate `c` is `peer` (each id has its own distance).
    fn is_listed<A>(&self, c: &Candidate<A>, dist: u64, peer: &Peer<A>) -> bool {
        self.word(&c.peer.id) == dist && c.peer.id == peer.id
    }
}

/// How `Lookup::offer_all` merges a batch of peers sorted by distance.
#[cfg(feature = "std")]
struct MergePlan<'p, A, const C: usize> {
    /// Each newcomer to add, after the old candidates before this index.
    accepted: Vec<(usize, &'p Peer<A>), C>,
    /// Old candidates from this index on that are not in flight are dropped.
    victim_floor: usize,
    /// How many old candidates are dropped.
    evicted: usize,
    offered: Offered,
}

/// Whether a merge drops the candidate at index `k`, in `state`: every
/// candidate not in flight from the plan's victim floor on is dropped.
#[cfg(feature = "std")]
fn is_dropped(k: usize, victim_floor: usize, state: &CandidateState) -> bool {
    k >= victim_floor && state.is_evictable()
}

/// What `Lookup::offer_all` did with a batch of peers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Offered {
    /// Peers added to the list.
    pub(crate) added: usize,
    /// Whether one of them landed among the `width` closest live candidates.
    pub(crate) closer: bool,
}

/// What the node should do after feeding a reply or a failure to a lookup.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReplyEffect {
    /// Nothing more.
    None,
    /// The search phase ended with this termination.
    SearchDone(Termination),
}

/// A lookup in progress.
#[derive(Clone, Debug)]
pub(crate) struct Lookup<A, const C: usize> {
    pub(crate) id: QueryId,
    pub(crate) kind: LookupKind,
    pub(crate) target: Key,
    pub(crate) phase: Phase,
    /// Sorted by distance to `target`, closest first.
    pub(crate) candidates: Vec<Candidate<A>, C, u8>,
    /// How many closest live candidates must answer for convergence.
    pub(crate) width: usize,
    pub(crate) round: u16,
    round_sent: u8,
    round_resolved: u8,
    round_progress: bool,
    /// At least the number of candidates whose request (`InFlight` or
    /// `Storing`) is outstanding: `next_deadline` stops looking once it has
    /// seen that many. Raised wherever such a state is made; lowered where
    /// one ends, and if some path forgets to lower it, the scan only runs
    /// to the end of the list.
    pub(crate) pending: u8,
    /// At least the number of requests marked but not yet sent. The node
    /// skips this lookup's list when looking for one to send while it is 0,
    /// and sets it to 0 when a scan finds none.
    pub(crate) unsent: u8,
    /// Rounds (answers, when unverified) in a row without a closer contact.
    stale: u8,
    /// [`LookupEnd::Verified`]: ends with a sweep and reports only
    /// candidates that answered.
    pub(crate) verify: bool,
    /// In the final sweep: every unasked one of the `width` closest is asked.
    sweeping: bool,
    pub(crate) stats: LookupStats,
    pub(crate) started: Instant,
    pub(crate) deadline: Instant,
    /// Put: the record to store. Get: the record found.
    pub(crate) record: Option<Record>,
    /// Bootstrap: the next bucket to refresh, counting down to 0.
    pub(crate) next_refresh: Option<u16>,
    /// Bootstrap: seed PINGs still unanswered.
    pub(crate) seeds_pending: u8,
    /// Started by the node's own maintenance: finishes without an event.
    pub(crate) internal: bool,
}

impl<A: Clone + PartialEq, const C: usize> Lookup<A, C> {
    pub(crate) fn new(
        id: QueryId,
        kind: LookupKind,
        target: Key,
        width: usize,
        end: LookupEnd,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        Lookup {
            id,
            kind,
            target,
            phase: Phase::Searching,
            candidates: Vec::new(),
            width: width.clamp(1, C.max(1)),
            round: 0,
            round_sent: 0,
            round_resolved: 0,
            round_progress: false,
            pending: 0,
            unsent: 0,
            stale: 0,
            verify: end == LookupEnd::Verified || kind == LookupKind::Bootstrap,
            sweeping: false,
            stats: LookupStats::default(),
            started: now,
            deadline: now + timeout,
            record: None,
            next_refresh: None,
            seeds_pending: 0,
            internal: false,
        }
    }

    /// Restarts the search toward a new target (bootstrap's bucket refreshes),
    /// keeping the statistics.
    pub(crate) fn retarget(&mut self, target: Key) {
        self.target = target;
        self.phase = Phase::Searching;
        self.candidates.clear();
        self.pending = 0;
        self.unsent = 0;
        self.round_sent = 0;
        self.round_resolved = 0;
        self.round_progress = false;
        self.stale = 0;
        self.sweeping = false;
    }

    /// Fills an empty list from the routing table's closest contacts, which
    /// come closest first, distinct, and without the local id: they are
    /// appended as they are. A list that is not empty gets them through
    /// [`Lookup::offer_all`]. Every lookup starts here: merging up to `C`
    /// contacts one by one cost 4 600 instructions per k = 20 lookup.
    pub(crate) fn seed<'p, I>(&mut self, peers: I, local: &NodeId)
    where
        I: IntoIterator<Item = &'p Peer<A>>,
        I::IntoIter: Clone,
        A: 'p,
    {
        if !self.candidates.is_empty() {
            self.offer_all(peers, local, 0);
            return;
        }
        for peer in peers {
            debug_assert!(peer.id != *local);
            debug_assert!(
                self.candidates
                    .last()
                    .is_none_or(|c| self.target.cmp_distance(&c.peer.id, &peer.id).is_lt())
            );
            let candidate = Candidate {
                peer: peer.clone(),
                state: CandidateState::Fresh,
                referrer: 0,
            };
            if self.candidates.push(candidate).is_err() {
                break;
            }
        }
    }

    /// Adds candidates in distance order; says how many were added and
    /// whether one came among the `width` closest live candidates. A
    /// full list drops its farthest entry that is not in flight, but only
    /// for a closer newcomer. A peer is copied only when it is added.
    ///
    /// Answers list their contacts closest first, and so does the routing
    /// table: then the batch is planned in one walk of the list and merged
    /// into it in one pass from the back, so that each candidate moves at
    /// most once (inserting the newcomers one by one shifted the tail of the
    /// list for each: 64 bytes per candidate, up to `C` of them, and the
    /// first answer of a lookup brings up to 20 newcomers). Peers in any
    /// other order are added one by one, with the same result.
    ///
    /// The merge is built with `std` only (hosts and the simulator): on a
    /// microcontroller, with lists of a dozen candidates, it would cost
    /// 2 KB of flash for little.
    pub(crate) fn offer_all<'p, I>(&mut self, peers: I, local: &NodeId, referrer: u32) -> Offered
    where
        I: IntoIterator<Item = &'p Peer<A>>,
        I::IntoIter: Clone,
        A: 'p,
    {
        let peers = peers.into_iter();
        #[cfg(feature = "std")]
        if let Some(plan) = self.plan_merge(peers.clone(), local) {
            return self.merge(plan, referrer);
        }
        self.offer_each(peers, local, referrer)
    }

    /// What adding `peers` one by one would do, worked out without changing
    /// the list; `None` if their distances to the target do not strictly
    /// increase (by the first 64 bits), which the plan relies on.
    ///
    /// The plan rests on two facts of one-by-one insertion in increasing
    /// distance: a newcomer lands past every earlier newcomer, so none of
    /// them is ever the victim of a later one; and each victim is the
    /// farthest candidate not in flight, so the candidates dropped are the
    /// ones not in flight from some index on (`victim_floor`).
    #[cfg(feature = "std")]
    fn plan_merge<'p>(
        &self,
        peers: impl Iterator<Item = &'p Peer<A>>,
        local: &NodeId,
    ) -> Option<MergePlan<'p, A, C>>
    where
        A: 'p,
    {
        let ruler = Ruler::new(self.target, local);
        let old = &self.candidates[..];
        let mut plan = MergePlan {
            accepted: Vec::new(),
            victim_floor: old.len(),
            evicted: 0,
            offered: Offered::default(),
        };
        // The walk: `at` old candidates are closer than the last newcomer,
        // and `live_before` of them are still listed and have not failed.
        let (mut at, mut live_before, mut last) = (0, 0, None);
        for peer in peers {
            let dist = ruler.word(&peer.id);
            if last.is_some_and(|l| dist <= l) {
                return None;
            }
            last = Some(dist);
            if ruler.is_local(dist, peer, local) {
                continue;
            }
            while let Some(c) = old.get(at).filter(|c| ruler.closer(c, dist, peer)) {
                live_before += usize::from(
                    !c.state.is_failed() && !is_dropped(at, plan.victim_floor, &c.state),
                );
                at += 1;
            }
            // A peer already listed sits at `at` (each id has its own
            // distance). Should that candidate be dropped for an earlier
            // newcomer, turning the peer away is still right: the list is
            // then full, and nothing past `at` is left to drop for it.
            if old.get(at).is_some_and(|c| ruler.is_listed(c, dist, peer)) {
                continue;
            }
            let len = old.len() - plan.evicted + plan.accepted.len();
            if len == C {
                // The farthest candidate still listed and not in flight,
                // which must lie past the newcomer.
                match old[..plan.victim_floor]
                    .iter()
                    .rposition(|c| c.state.is_evictable())
                {
                    Some(v) if v >= at => {
                        plan.victim_floor = v;
                        plan.evicted += 1;
                    }
                    _ => continue,
                }
            }
            // Every earlier newcomer lies before this one, and none failed.
            if live_before + plan.accepted.len() < self.width {
                plan.offered.closer = true;
            }
            // Cannot fail: every accepted peer is listed after the merge.
            let _ = plan.accepted.push((at, peer));
            plan.offered.added += 1;
        }
        Some(plan)
    }

    /// Carries out a plan: fills the list from the back, each candidate
    /// still listed moving once to its place.
    #[cfg(feature = "std")]
    fn merge(&mut self, plan: MergePlan<'_, A, C>, referrer: u32) -> Offered {
        let MergePlan {
            accepted,
            victim_floor,
            evicted,
            offered,
        } = plan;
        let Some(&(_, farthest)) = accepted.last() else {
            return offered;
        };
        let old_len = self.candidates.len();
        let new_len = old_len - evicted + accepted.len();
        let fresh = |peer: &Peer<A>| Candidate {
            peer: peer.clone(),
            state: CandidateState::Fresh,
            referrer,
        };
        if offered.closer {
            self.round_progress = true;
        }
        if let [(at, peer)] = accepted[..] {
            // One newcomer, the usual case late in a lookup: one shift of
            // the tail (a `memmove`) beats moving candidates one by one.
            if evicted == 1 {
                self.candidates[at..=victim_floor].rotate_right(1);
                self.candidates[at] = fresh(peer);
            } else {
                // Cannot fail: the list was not full.
                let _ = self.candidates.insert(at, fresh(peer));
            }
            return offered;
        }
        while self.candidates.len() < new_len {
            // Cannot fail: new_len <= C. The slot is overwritten below.
            let _ = self.candidates.push(fresh(farthest));
        }
        // Old candidates [0, k) and newcomers [0, a) are still to place,
        // into slots [0, d). An old candidate never moves toward the front
        // (each dropped one was dropped for a closer newcomer), so the
        // slots it leaves behind are only ever written after it moved.
        let (mut k, mut d) = (old_len, new_len);
        for &(at, peer) in accepted.iter().rev() {
            while k > at {
                k -= 1;
                if !is_dropped(k, victim_floor, &self.candidates[k].state) {
                    d -= 1;
                    // A copy: slot `k` is itself a destination later on.
                    self.candidates[d] = self.candidates[k].clone();
                }
            }
            d -= 1;
            self.candidates[d] = fresh(peer);
        }
        debug_assert_eq!(k, d, "the closest candidates stay where they were");
        offered
    }

    /// Adds candidates one by one, in any order (see [`Lookup::offer_all`]):
    /// each newcomer is placed by a walk of the list that starts where the
    /// previous one was placed, or from the front when it is not farther.
    fn offer_each<'p>(
        &mut self,
        peers: impl IntoIterator<Item = &'p Peer<A>>,
        local: &NodeId,
        referrer: u32,
    ) -> Offered
    where
        A: 'p,
    {
        let ruler = Ruler::new(self.target, local);
        let mut offered = Offered::default();
        // The walk: every candidate before `from` is closer than the last
        // newcomer, and `live_before_from` of them have not failed.
        let (mut from, mut live_before_from, mut last) = (0, 0, None);
        for peer in peers {
            let dist = ruler.word(&peer.id);
            if last.is_none_or(|l| dist <= l) {
                // Not past the previous newcomer (or the first): walk from the start.
                (from, live_before_from) = (0, 0);
            }
            last = Some(dist);
            // Late in a lookup most offers are farther than every candidate of
            // a full list: one integer comparison turns them away.
            if self.candidates.is_full()
                && self
                    .candidates
                    .last()
                    .is_some_and(|c| ruler.word(&c.peer.id) < dist)
            {
                continue;
            }
            if ruler.is_local(dist, peer, local) {
                continue;
            }
            let mut pos = from;
            while let Some(c) = self
                .candidates
                .get(pos)
                .filter(|c| ruler.closer(c, dist, peer))
            {
                live_before_from += usize::from(!c.state.is_failed());
                pos += 1;
            }
            from = pos;
            // Each id has its own distance to the target, so a peer already
            // listed sits exactly at `pos`: no scan of the list is needed.
            if self
                .candidates
                .get(pos)
                .is_some_and(|c| ruler.is_listed(c, dist, peer))
            {
                continue;
            }
            let victim = if self.candidates.is_full() {
                if pos == self.candidates.len() {
                    // Farther than every candidate: nothing could make room.
                    continue;
                }
                match self.candidates.iter().rposition(|c| c.state.is_evictable()) {
                    Some(v) if v >= pos => Some(v),
                    _ => continue,
                }
            } else {
                None
            };
            // Progress: the newcomer lands among the `width` closest live ones.
            if live_before_from < self.width {
                self.round_progress = true;
                offered.closer = true;
            }
            let candidate = Candidate {
                peer: peer.clone(),
                state: CandidateState::Fresh,
                referrer,
            };
            match victim {
                // The victim's slot moves up to `pos` in one shift.
                Some(v) => {
                    self.candidates[pos..=v].rotate_right(1);
                    self.candidates[pos] = candidate;
                }
                // Cannot fail: the list is not full.
                None => {
                    let _ = self.candidates.insert(pos, candidate);
                }
            }
            offered.added += 1;
        }
        offered
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| matches!(c.state, CandidateState::InFlight { .. }))
            .count()
    }

    /// Starts a round: marks up to `alpha - in_flight` of the closest fresh
    /// candidates as in flight, drawing a txid for each. Returns how many.
    pub(crate) fn start_round(
        &mut self,
        alpha: u8,
        now: Instant,
        timeout: Duration,
        mut txid: impl FnMut() -> u32,
    ) -> u8 {
        let budget = if self.sweeping {
            usize::MAX
        } else {
            (alpha as usize).saturating_sub(self.in_flight())
        };
        self.round = self.round.wrapping_add(1);
        self.round_sent = 0;
        self.round_resolved = 0;
        self.round_progress = false;
        let round = self.round;
        // A sweep only asks the `width` closest live candidates.
        let mut live = 0;
        for c in self.candidates.iter_mut() {
            if self.round_sent as usize >= budget || (self.sweeping && live >= self.width) {
                break;
            }
            if !c.state.is_failed() {
                live += 1;
            }
            if c.state == CandidateState::Fresh {
                c.state = CandidateState::InFlight {
                    txid: txid(),
                    deadline: now + timeout,
                    round,
                    sent: false,
                };
                self.round_sent += 1;
            }
        }
        self.pending = self.pending.saturating_add(self.round_sent);
        self.unsent = self.unsent.saturating_add(self.round_sent);
        if self.round_sent > 0 {
            self.stats.rounds = self.stats.rounds.saturating_add(1);
        }
        self.round_sent
    }

    /// The peer that named candidate `i`, if it is still among the candidates.
    pub(crate) fn referrer_of(&self, i: usize) -> Option<Peer<A>> {
        let referrer = self.candidates.get(i)?.referrer;
        if referrer == 0 {
            return None;
        }
        let r = self.find_txid(referrer)?;
        Some(self.candidates[r].peer.clone())
    }

    /// Index of the candidate with an outstanding or past request `txid`.
    pub(crate) fn find_txid(&self, txid: u32) -> Option<usize> {
        self.candidates
            .iter()
            .position(|c| c.state.txid() == Some(txid))
    }

    /// Records that candidate `i` answered or failed its request, and
    /// decides whether the search goes on.
    pub(crate) fn resolve(
        &mut self,
        i: usize,
        outcome: Outcome,
        beta: u8,
        step_to_stop: u8,
    ) -> ReplyEffect {
        let CandidateState::InFlight { txid, round, .. } = self.candidates[i].state else {
            return ReplyEffect::None;
        };
        self.pending = self.pending.saturating_sub(1);
        let closer = match outcome {
            Outcome::Answered { closer } => {
                self.candidates[i].state = CandidateState::Answered { txid };
                self.stats.responses = self.stats.responses.saturating_add(1);
                closer
            }
            Outcome::Failed => {
                self.candidates[i].state = CandidateState::Failed { txid };
                self.stats.timeouts = self.stats.timeouts.saturating_add(1);
                false
            }
        };
        if round == self.round {
            self.round_resolved += 1;
        }
        if let Some(t) = self.termination() {
            return ReplyEffect::SearchDone(t);
        }
        if !self.verify {
            // py-dht counts answers, and stops without a sweep.
            self.stale = if closer {
                0
            } else {
                self.stale.saturating_add(1)
            };
            if self.stale >= step_to_stop.max(1) {
                return ReplyEffect::SearchDone(Termination::Stalled);
            }
        }
        self.after_progress(beta, step_to_stop)
    }

    /// Whether a new round is due, or the final sweep begins or ends.
    fn after_progress(&mut self, beta: u8, step_to_stop: u8) -> ReplyEffect {
        // The final sweep waits for all its requests; other rounds for β.
        let needed = if self.sweeping {
            self.round_sent.max(1)
        } else {
            beta.clamp(1, self.round_sent.max(1))
        };
        if self.round_resolved >= needed || self.in_flight() == 0 {
            if self.sweeping {
                // The sweep did not converge (new close nodes appeared, or
                // some did not answer): stop here, as py-dht would have.
                return ReplyEffect::SearchDone(Termination::Stalled);
            }
            if self.verify {
                self.stale = if self.round_progress {
                    0
                } else {
                    self.stale.saturating_add(1)
                };
            }
            // After `step_to_stop` rounds without a closer node, one last
            // round asks every closest candidate not yet asked (Kademlia's
            // final step), so stopping early does not cost accuracy.
            if self.verify && self.stale >= step_to_stop.max(1) {
                self.sweeping = true;
            }
            self.round_sent = 0;
            self.round_resolved = 0;
        }
        ReplyEffect::None
    }

    /// Whether a new round should start now.
    pub(crate) fn wants_round(&self) -> bool {
        self.phase == Phase::Searching && self.round_sent == 0
    }

    /// Converged when the `width` closest live candidates have all answered
    /// (or every live candidate has, if fewer exist); exhausted when none is
    /// left and none answered.
    pub(crate) fn termination(&self) -> Option<Termination> {
        let mut live = 0;
        for c in self.candidates.iter() {
            match c.state {
                CandidateState::Failed { .. } => continue,
                CandidateState::Fresh | CandidateState::InFlight { .. } => return None,
                _ => live += 1,
            }
            if live >= self.width {
                return Some(Termination::Converged);
            }
        }
        Some(if live > 0 {
            Termination::Converged
        } else {
            Termination::Exhausted
        })
    }

    /// The candidates a lookup reports, closest first: those that answered,
    /// or when unverified every one not known to have failed.
    pub(crate) fn reported(&self) -> impl Iterator<Item = &Candidate<A>> {
        let verify = self.verify;
        self.candidates.iter().filter(move |c| match c.state {
            CandidateState::Answered { .. }
            | CandidateState::Storing { .. }
            | CandidateState::Stored { .. }
            | CandidateState::StoreFailed { .. } => true,
            CandidateState::Fresh | CandidateState::InFlight { .. } => !verify,
            CandidateState::Failed { .. } => false,
        })
    }

    /// The earliest deadline among outstanding requests and the lookup itself.
    pub(crate) fn next_deadline(&self) -> Instant {
        let mut t = self.deadline;
        let mut seen = 0;
        for c in self.candidates.iter() {
            if seen >= self.pending {
                break;
            }
            match c.state {
                CandidateState::InFlight { deadline, .. }
                | CandidateState::Storing { deadline, .. } => {
                    t = t.min(deadline);
                    seen += 1;
                }
                _ => {}
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const C: usize = 8;

    /// A key starting with `b` and ending with `last`: keys that differ
    /// only in `last` tie on their first 64 bits, so that the whole-id
    /// comparisons behind the 64-bit ones are exercised too.
    fn key(b: u8, last: u8) -> Key {
        let mut k = [0; 32];
        k[0] = b;
        k[31] = last;
        Key(k)
    }

    proptest! {
        /// Whatever the order of the offered peers, in one batch or many,
        /// the list holds the `C` closest distinct ids seen (none in flight
        /// here, so any farther candidate makes room), nearest first, and
        /// never the local id.
        #[test]
        fn offers_keep_the_closest_distinct_peers(
            target in any::<[u8; 32]>(),
            batches in prop::collection::vec(prop::collection::vec((0u8..40, 0u8..3), 0..12), 0..6),
            sort_batches in any::<bool>(),
        ) {
            let target = Key(target);
            let local = key(7, 0);
            let mut lookup: Lookup<u32, C> = Lookup::new(
                QueryId(1), LookupKind::FindNode, target, 4, LookupEnd::Verified,
                Instant::ZERO, Duration::from_secs(1));
            let mut seen: std::vec::Vec<Key> = std::vec::Vec::new();
            for batch in batches {
                let mut peers: std::vec::Vec<Peer<u32>> = batch
                    .iter()
                    .map(|&(b, r)| Peer::new(key(b, r), u32::from(b)))
                    .collect();
                if sort_batches {
                    peers.sort_by(|a, b| target.cmp_distance(&a.id, &b.id));
                }
                for p in &peers {
                    if p.id != local && !seen.contains(&p.id) {
                        seen.push(p.id);
                    }
                }
                lookup.offer_all(&peers, &local, 0);
            }
            seen.sort_by(|a, b| target.cmp_distance(a, b));
            seen.truncate(C);
            let got: std::vec::Vec<Key> = lookup.candidates.iter().map(|c| c.peer.id).collect();
            prop_assert_eq!(got, seen);
        }
    }

    proptest! {
        /// Merging a batch sorted by distance leaves the list, the counts
        /// and the progress flag exactly as adding its peers one by one,
        /// whatever the candidates' states (in flight ones are never
        /// dropped) and however full the list.
        #[test]
        #[cfg(feature = "std")]
        fn a_sorted_batch_merges_as_one_by_one_insertion(
            target in any::<[u8; 32]>(),
            first in prop::collection::vec((0u8..40, 0u8..3), 0..12),
            states in prop::collection::vec(0u8..6, C),
            batch in prop::collection::vec((0u8..40, 0u8..3), 0..12),
            width in 1usize..5,
        ) {
            let target = Key(target);
            let local = key(7, 0);
            let mut lookup: Lookup<u32, C> = Lookup::new(
                QueryId(1), LookupKind::FindNode, target, width, LookupEnd::Verified,
                Instant::ZERO, Duration::from_secs(1));
            let first: std::vec::Vec<Peer<u32>> =
                first.iter().map(|&(b, r)| Peer::new(key(b, r), u32::from(b))).collect();
            lookup.offer_each(&first, &local, 0);
            for (c, &s) in lookup.candidates.iter_mut().zip(&states) {
                let deadline = Instant::ZERO;
                c.state = match s {
                    0 => CandidateState::Fresh,
                    1 => CandidateState::InFlight { txid: 1, deadline, round: 0, sent: true },
                    2 => CandidateState::Answered { txid: 2 },
                    3 => CandidateState::Failed { txid: 3 },
                    4 => CandidateState::Storing { txid: 4, deadline, sent: false },
                    _ => CandidateState::StoreFailed { txid: 5 },
                };
            }
            let mut peers: std::vec::Vec<Peer<u32>> =
                batch.iter().map(|&(b, r)| Peer::new(key(b, r), u32::from(b))).collect();
            peers.sort_by(|a, b| target.cmp_distance(&a.id, &b.id));
            // The merge takes batches whose first 64 bits of distance
            // strictly increase; ties with the listed candidates remain.
            peers.dedup_by(|a, b| a.id.first_word() == b.id.first_word());
            let mut merged = lookup.clone();
            let plan = merged.plan_merge(peers.iter(), &local);
            prop_assert!(plan.is_some());
            let offered = merged.merge(plan.unwrap(), 9);
            let mut each = lookup;
            let expected = each.offer_each(&peers, &local, 9);
            prop_assert_eq!(offered, expected);
            prop_assert_eq!(merged.round_progress, each.round_progress);
            let list = |l: &Lookup<u32, C>| -> std::vec::Vec<(Key, u32, CandidateState, u32)> {
                l.candidates.iter().map(|c| (c.peer.id, c.peer.addr, c.state, c.referrer)).collect()
            };
            prop_assert_eq!(list(&merged), list(&each));
        }
    }

    /// A `find_node` toward the zero key that converges on `width`
    /// candidates, with Kademlia's end.
    fn lookup_of_width(width: usize) -> Lookup<u32, C> {
        Lookup::new(
            QueryId(1),
            LookupKind::FindNode,
            Key::ZERO,
            width,
            LookupEnd::Verified,
            Instant::ZERO,
            Duration::from_secs(1),
        )
    }

    /// Starts a round of `alpha` at `at` with a 1 s timeout, numbering the
    /// requests from `txid` on.
    fn ask<const N: usize>(
        lookup: &mut Lookup<u32, N>,
        alpha: u8,
        at: Instant,
        txid: &mut u32,
    ) -> u8 {
        lookup.start_round(alpha, at, Duration::from_secs(1), || {
            *txid += 1;
            *txid
        })
    }

    #[test]
    fn progress_means_landing_among_the_closest_live_candidates() {
        let local = key(0xff, 0);
        let mut lookup = lookup_of_width(2);
        let listed = [0x10, 0x20, 0x30].map(|b| Peer::new(key(b, 0), u32::from(b)));
        assert_eq!(lookup.offer_all(&listed, &local, 0).added, 3);
        lookup.candidates[0].state = CandidateState::Failed { txid: 1 };
        lookup.candidates[1].state = CandidateState::Failed { txid: 2 };
        lookup.candidates[2].state = CandidateState::Answered { txid: 3 };
        // Behind two failed candidates and one live one: the second live.
        let second = lookup.offer_all(&[Peer::new(key(0x40, 0), 4)], &local, 3);
        assert_eq!(
            second,
            Offered {
                added: 1,
                closer: true
            }
        );
        // Behind two live ones: not among the two closest live candidates.
        let third = lookup.offer_all(&[Peer::new(key(0x50, 0), 5)], &local, 3);
        assert_eq!(
            third,
            Offered {
                added: 1,
                closer: false
            }
        );
    }

    #[test]
    fn only_the_local_id_itself_is_refused() {
        let local = key(0xff, 0);
        let mut lookup = lookup_of_width(2);
        // Shares its first 64 bits with the local id, so its distance to
        // the target does too: only the whole id tells them apart.
        let mut twin = local;
        twin.0[31] = 1;
        assert_eq!(lookup.offer_all(&[Peer::new(twin, 1)], &local, 0).added, 1);
        assert_eq!(lookup.candidates[0].peer.id, twin);
        assert_eq!(lookup.offer_all(&[Peer::new(local, 2)], &local, 0).added, 0);
        assert_eq!(
            lookup.offer_each(&[Peer::new(local, 2)], &local, 0).added,
            0
        );
        assert_eq!(lookup.candidates.len(), 1);
    }

    #[test]
    fn seeding_a_list_that_is_not_empty_merges() {
        let local = key(0xff, 0);
        let mut lookup = lookup_of_width(2);
        let first = [0x10, 0x30].map(|b| Peer::new(key(b, 0), u32::from(b)));
        lookup.seed(&first, &local);
        let more = [0x20, 0x30].map(|b| Peer::new(key(b, 0), u32::from(b)));
        lookup.seed(&more, &local);
        let listed: std::vec::Vec<Key> = lookup.candidates.iter().map(|c| c.peer.id).collect();
        assert_eq!(listed, [key(0x10, 0), key(0x20, 0), key(0x30, 0)]);
    }

    #[test]
    fn retargeting_starts_over_and_keeps_the_statistics() {
        let local = key(0xff, 0);
        let mut lookup = lookup_of_width(2);
        let peers = [0x10, 0x20, 0x30].map(|b| Peer::new(key(b, 0), u32::from(b)));
        lookup.seed(&peers, &local);
        assert_eq!(ask(&mut lookup, 2, Instant::ZERO, &mut 0), 2);
        lookup.stats.requests = 2;
        lookup.phase = Phase::Finished(Termination::Converged);
        lookup.retarget(key(0x30, 0));
        assert_eq!(lookup.target, key(0x30, 0));
        assert_eq!(lookup.phase, Phase::Searching);
        assert!(lookup.candidates.is_empty());
        assert_eq!(
            (lookup.pending, lookup.unsent, lookup.in_flight()),
            (0, 0, 0)
        );
        assert_eq!(lookup.stats.requests, 2);
        // The new search orders its candidates by the new target.
        lookup.seed(&[Peer::new(key(0x31, 0), 1)], &local);
        lookup.offer_all(&peers, &local, 0);
        assert_eq!(lookup.candidates[0].peer.id, key(0x30, 0));
        assert_eq!(lookup.candidates[1].peer.id, key(0x31, 0));
    }

    #[test]
    fn a_round_tops_up_the_requests_in_flight_to_alpha() {
        let local = key(0xff, 0);
        let mut lookup = lookup_of_width(4);
        let peers = [1, 2, 3, 4, 5].map(|b| Peer::new(key(b, 0), u32::from(b)));
        lookup.seed(&peers, &local);
        let mut txid = 0;
        let mut round =
            |lookup: &mut Lookup<u32, C>, alpha| ask(lookup, alpha, Instant::ZERO, &mut txid);
        assert_eq!(round(&mut lookup, 2), 2);
        assert_eq!(lookup.in_flight(), 2);
        // Two still outstanding: a round of three sends one more.
        assert_eq!(round(&mut lookup, 3), 1);
        assert_eq!(lookup.in_flight(), 3);
        assert_eq!(round(&mut lookup, 3), 0);
    }

    /// A lookup of the given width whose candidates are at distances
    /// 1, 2, ... from the target, in these states.
    fn lookup_in_states(width: usize, states: &[CandidateState]) -> Lookup<u32, C> {
        let mut lookup = lookup_of_width(width);
        let peers: std::vec::Vec<Peer<u32>> = (1..=states.len() as u8)
            .map(|b| Peer::new(key(b, 0), u32::from(b)))
            .collect();
        lookup.seed(&peers, &key(0xff, 0));
        for (c, &state) in lookup.candidates.iter_mut().zip(states) {
            c.state = state;
        }
        lookup
    }

    #[test]
    fn termination_passes_over_failed_candidates() {
        use CandidateState::{Answered, Failed, Fresh};
        let (answered, failed) = (Answered { txid: 1 }, Failed { txid: 2 });
        let end = |width, states: &[CandidateState]| lookup_in_states(width, states).termination();
        // The second closest live candidate has not been asked yet.
        assert_eq!(end(2, &[failed, answered, Fresh]), None);
        assert_eq!(
            end(2, &[failed, answered, answered, Fresh]),
            Some(Termination::Converged)
        );
        // Fewer live candidates than the width, all answered.
        assert_eq!(end(2, &[failed, answered]), Some(Termination::Converged));
        assert_eq!(end(2, &[failed, failed]), Some(Termination::Exhausted));
    }

    #[test]
    fn a_round_ends_after_beta_answers_and_counts_only_if_it_sent() {
        let mut lookup = lookup_in_states(4, &[CandidateState::Fresh; 5]);
        assert!(lookup.wants_round());
        let mut txid = 0;
        let mut round = |lookup: &mut Lookup<u32, C>| ask(lookup, 3, Instant::ZERO, &mut txid);
        assert_eq!(round(&mut lookup), 3);
        assert_eq!(lookup.stats.rounds, 1);
        assert!(!lookup.wants_round());
        // β = 2: one answer does not end the round, the second does.
        let answered = Outcome::Answered { closer: true };
        assert_eq!(lookup.resolve(0, answered, 2, 3), ReplyEffect::None);
        assert!(!lookup.wants_round());
        assert_eq!(lookup.resolve(1, answered, 2, 3), ReplyEffect::None);
        assert!(lookup.wants_round());
        // One still in flight, α = 3: two more go out.
        assert_eq!(round(&mut lookup), 2);
        assert_eq!(lookup.stats.rounds, 2);
        // Nothing fresh is left: a round that sends nothing is not counted.
        lookup.round_sent = 0;
        assert_eq!(round(&mut lookup), 0);
        assert_eq!(lookup.stats.rounds, 2);
        // A finished lookup wants no round.
        lookup.phase = Phase::Finished(Termination::Converged);
        assert!(!lookup.wants_round());
    }

    #[test]
    fn a_sweep_asks_only_the_closest_live_candidates() {
        use CandidateState::{Failed, Fresh};
        let mut lookup = lookup_in_states(2, &[Failed { txid: 1 }, Fresh, Fresh, Fresh]);
        lookup.sweeping = true;
        assert_eq!(ask(&mut lookup, 1, Instant::ZERO, &mut 1), 2);
        assert_eq!(lookup.candidates[3].state, Fresh);
    }

    #[test]
    fn a_candidate_remembers_who_named_it() {
        let local = key(0xff, 0);
        let mut lookup = lookup_in_states(2, &[CandidateState::Answered { txid: 7 }]);
        lookup.offer_all(&[Peer::new(key(2, 0), 2)], &local, 7);
        assert_eq!(lookup.referrer_of(1), Some(Peer::new(key(1, 0), 1)));
        // From the routing table: named by nobody.
        assert_eq!(lookup.referrer_of(0), None);
        assert_eq!(lookup.referrer_of(5), None);
    }

    #[test]
    fn the_next_deadline_counts_every_request_still_outstanding() {
        let target = Key::ZERO;
        let mut lookup: Lookup<u32, C> = Lookup::new(
            QueryId(1),
            LookupKind::FindNode,
            target,
            4,
            LookupEnd::Verified,
            Instant::ZERO,
            Duration::from_secs(60),
        );
        let peers: std::vec::Vec<Peer<u32>> = (1..=5)
            .map(|b| Peer::new(key(b, 0), u32::from(b)))
            .collect();
        assert_eq!(lookup.offer_all(&peers, &key(0xff, 0), 0).added, 5);
        assert_eq!(lookup.next_deadline(), Instant::from_millis(60_000));
        let mut txid = 0;
        // Two requests at 0 ms, then one more at 500 ms once both answered.
        assert_eq!(ask(&mut lookup, 2, Instant::ZERO, &mut txid), 2);
        assert_eq!((lookup.pending, lookup.unsent), (2, 2));
        assert_eq!(lookup.next_deadline(), Instant::from_millis(1000));
        lookup.resolve(0, Outcome::Answered { closer: false }, 2, 3);
        assert_eq!(lookup.next_deadline(), Instant::from_millis(1000));
        lookup.resolve(1, Outcome::Failed, 2, 3);
        assert_eq!(lookup.pending, 0);
        assert_eq!(lookup.next_deadline(), Instant::from_millis(60_000));
        assert_eq!(ask(&mut lookup, 1, Instant::from_millis(500), &mut txid), 1);
        // The one outstanding request is the third candidate: the scan
        // must not stop before it.
        assert_eq!(lookup.next_deadline(), Instant::from_millis(1500));
    }

    #[test]
    fn a_full_list_keeps_candidates_in_flight() {
        let target = Key::ZERO;
        let local = key(0xff, 0);
        let mut lookup: Lookup<u32, 2> = Lookup::new(
            QueryId(1),
            LookupKind::FindNode,
            target,
            2,
            LookupEnd::Verified,
            Instant::ZERO,
            Duration::from_secs(1),
        );
        let far = [Peer::new(key(0x40, 0), 1), Peer::new(key(0x80, 0), 2)];
        assert_eq!(lookup.offer_all(&far, &local, 0).added, 2);
        lookup.pending = 2;
        for c in lookup.candidates.iter_mut() {
            c.state = CandidateState::InFlight {
                txid: 1,
                deadline: Instant::ZERO,
                round: 1,
                sent: true,
            };
        }
        // Nothing may be dropped for the closer newcomer: both are asked.
        assert_eq!(
            lookup
                .offer_all(&[Peer::new(key(0x01, 0), 3)], &local, 0)
                .added,
            0
        );
        lookup.candidates[1].state = CandidateState::Answered { txid: 1 };
        assert_eq!(
            lookup
                .offer_all(&[Peer::new(key(0x01, 0), 3)], &local, 0)
                .added,
            1
        );
        let ids: std::vec::Vec<u8> = lookup.candidates.iter().map(|c| c.peer.id.0[0]).collect();
        assert_eq!(ids, [0x01, 0x40]);
    }

    /// Five candidates, the closest two asked; then answers that bring
    /// nothing closer. Verified: after `step_to_stop` such rounds the sweep
    /// asks the other three of the `width` closest. Unverified: it stops
    /// there and reports every candidate that did not fail, asked or not.
    #[test]
    fn the_end_rule_decides_between_a_sweep_and_stopping() {
        for end in [LookupEnd::Verified, LookupEnd::Unverified] {
            let mut lookup: Lookup<u32, C> = Lookup::new(
                QueryId(1),
                LookupKind::FindNode,
                Key::ZERO,
                5,
                end,
                Instant::ZERO,
                Duration::from_secs(60),
            );
            let peers: std::vec::Vec<Peer<u32>> = (1..=5)
                .map(|b| Peer::new(key(b, 0), u32::from(b)))
                .collect();
            lookup.offer_all(&peers, &key(0xff, 0), 0);
            let mut txid = 0;
            let mut next = || {
                txid += 1;
                txid
            };
            let timeout = Duration::from_secs(1);
            let mut effects = std::vec::Vec::new();
            assert_eq!(lookup.start_round(1, Instant::ZERO, timeout, &mut next), 1);
            effects.push(lookup.resolve(0, Outcome::Answered { closer: false }, 1, 2));
            assert_eq!(lookup.start_round(1, Instant::ZERO, timeout, &mut next), 1);
            effects.push(lookup.resolve(1, Outcome::Failed, 1, 2));
            let asked = |l: &Lookup<u32, C>| {
                l.candidates
                    .iter()
                    .filter(|c| c.state != CandidateState::Fresh)
                    .count()
            };
            let reported: std::vec::Vec<u8> = lookup.reported().map(|c| c.peer.id.0[0]).collect();
            match end {
                LookupEnd::Verified => {
                    assert_eq!(effects, [ReplyEffect::None, ReplyEffect::None]);
                    assert_eq!(reported, [1]);
                    // The sweep: the three left of the five closest at once.
                    assert_eq!(lookup.start_round(1, Instant::ZERO, timeout, &mut next), 3);
                    assert_eq!(asked(&lookup), 5);
                }
                LookupEnd::Unverified => {
                    assert_eq!(
                        effects,
                        [
                            ReplyEffect::None,
                            ReplyEffect::SearchDone(Termination::Stalled)
                        ]
                    );
                    assert_eq!(asked(&lookup), 2);
                    assert_eq!(reported, [1, 3, 4, 5]);
                }
            }
        }
    }
}
