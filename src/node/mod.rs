//! The sans-IO node: the protocol state machine every embedder drives.
//!
//! Methods come in four groups, in the quinn-proto manner: getters, `handle_*`
//! (input), commands, and `poll_*` (output). The calling contract: after any
//! `handle_*` call or command, drain [`Node::poll_transmit`] and
//! [`Node::poll_event`] until they return `None`, then read
//! [`Node::poll_timeout`] and call [`Node::handle_timeout`] no later than that.

use heapless::{Deque, Vec};

use crate::config::Config;
use crate::event::{Event, RemovalReason};
use crate::id::{Key, NodeId};
use crate::metrics::Metrics;
use crate::peer::{Address, Peer};
use crate::query::{
    Candidate, CandidateState, Lookup, LookupKind, Outcome, Phase, QueryId, ReplyEffect,
    Termination,
};
use crate::rng::Rng;
use crate::routing::{InsertOutcome, Origin, ProbeKind, RoutingTable};
use crate::store::{MemoryStore, Record, Store, StoreStatus};
use crate::time::Instant;
use crate::wire::{
    self, Body, DecodeError, EncodeError, Header, MAX_CONTACTS, MessageKind, RefuseReason,
};

/// The length of an encoded message, or why it could not be encoded.
type Encoded = Result<usize, EncodeError>;

mod maintenance;

use maintenance::Handoff;

/// Responses and probes waiting for `poll_transmit`. Lookup requests do not
/// queue here: they are marked on their candidates and built on demand.
pub const OUTBOUND_CAPACITY: usize = 8;
/// Notices (contact removals) waiting for `poll_event`. Finished lookups wait
/// in their own slots and need no room here.
pub const NOTICE_CAPACITY: usize = 4;
/// Seeds one `bootstrap` can ping.
pub const MAX_SEEDS: usize = 8;
/// Pending GIVE_VALUE hand-offs (a contact joined, left, or a value changed).
pub const HANDOFF_CAPACITY: usize = 4;
/// Transaction ids of requests still unanswered when their lookup ended,
/// remembered so that their answers count as late rather than unsolicited.
const RETIRED_CAPACITY: usize = 16;

/// A datagram to send: `len` bytes at the start of the buffer given to
/// [`Node::poll_transmit`], for `destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub destination: A,
    /// Its length in bytes.
    pub len: usize,
}

/// Why `handle_input` rejected a datagram. Each variant has a counter in
/// [`Metrics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InputError {
    /// The bytes are not a valid message.
    Decode(DecodeError),
    /// The message claims to come from this node's own id.
    OwnId,
    /// A response to no request this node made.
    Unsolicited,
    /// A response to a request that already timed out.
    Late,
    /// A second response to an answered request.
    Duplicate,
    /// A response from another address or node id than the request went to.
    Mismatched,
    /// A response of the wrong type for its request.
    UnexpectedResponse,
    /// A VALUE response carrying a record for another key.
    InvalidRecord,
    /// A request arrived while the outbound queue was full; it was dropped.
    Overloaded,
    /// A GIVE_VALUE for a key this node is not among the closest to.
    NotResponsible,
}

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CommandError {
    /// Every lookup slot is in use: retry after a lookup finishes.
    Busy,
    /// The routing table is empty (and, for `bootstrap`, no seed was given).
    NoContacts,
    /// More seeds than [`MAX_SEEDS`].
    TooManySeeds,
}

#[derive(Clone, Copy, Debug)]
enum Outbound {
    Ping,
    Pong,
    Nodes { target: Key, requester: NodeId },
    ValueOrNodes { key: Key, requester: NodeId },
    StoreAck(StoreStatus),
    Refused,
    Down { dead: NodeId },
}

#[derive(Clone, Debug)]
struct Outgoing<A> {
    to: A,
    txid: u32,
    what: Outbound,
}

#[derive(Clone, Debug)]
struct SeedProbe<A> {
    addr: A,
    txid: u32,
    deadline: Instant,
    sent: bool,
    query: QueryId,
}

/// A small event waiting for `poll_event`. Kept apart from [`Event`], whose
/// lookup results make it large, so that the queue stays small.
#[derive(Clone, Debug)]
struct Notice<A> {
    peer: Peer<A>,
    reason: RemovalReason,
    replaced_by: Option<Peer<A>>,
}

/// A response's payload, as far as request matching cares.
// Lives only for the duration of one `handle_input` call.
#[allow(clippy::large_enum_variant)]
enum Response<'a, A> {
    Pong,
    Refused,
    Nodes(&'a [Peer<A>]),
    Value(Record),
    StoreAck(StoreStatus),
}

/// A Kademlia node as a pure state machine.
///
/// - `A`: the embedder's address type.
/// - `S`: the record store (default: 32 records of up to 64 bytes in RAM).
/// - `K`: bucket size (k). The MaidSafe paper argues for 2 to 4; 20 works too.
/// - `B`: number of buckets; nodes sharing `B - 1` or more leading bits with
///   this node share the last bucket.
/// - `L`: lookups that can run at once.
/// - `C`: candidates each lookup tracks.
/// - `I`: incoming contacts per bucket (MaidSafe paper, III-D1): with
///   `I = K`, each bucket keeps k contacts this node chose and k that chose
///   it, and refuses further incoming ones with a REFUSED reply. With `I = 0`
///   (the default) buckets are classic and both kinds share the K slots.
///
/// Memory is fixed by these parameters; nothing is ever allocated.
#[derive(Clone, Debug)]
pub struct Node<
    A: Address,
    S: Store = MemoryStore<32, 64>,
    const K: usize = 4,
    const B: usize = 20,
    const L: usize = 3,
    const C: usize = 12,
    const I: usize = 0,
> {
    config: Config,
    id: NodeId,
    rng: Rng,
    now: Instant,
    table: RoutingTable<A, K, B, I>,
    store: S,
    lookups: Vec<Lookup<A, C>, L, u8>,
    seeds: Vec<SeedProbe<A>, MAX_SEEDS>,
    outbound: Deque<Outgoing<A>, OUTBOUND_CAPACITY>,
    notices: Deque<Notice<A>, NOTICE_CAPACITY>,
    retired: Deque<u32, RETIRED_CAPACITY>,
    handoffs: Deque<Handoff<A>, HANDOFF_CAPACITY>,
    /// The next keepalive tick (managed) or bucket refresh (periodic).
    next_maintenance: Option<Instant>,
    /// The next republish of every record (periodic modes).
    next_republish: Option<Instant>,
    /// Index of the next record to republish, while a republish runs.
    republish_cursor: Option<usize>,
    /// Index of the next contact to tell about our leaving, while leaving.
    leave_cursor: Option<usize>,
    next_query: u32,
    metrics: Metrics,
}

impl<
    A: Address,
    S: Store + Default,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize,
> Node<A, S, K, B, L, C, I>
{
    /// A node with an empty store of type `S` (by default a [`MemoryStore`]).
    pub fn new(config: Config, id: NodeId, seed: u64, now: Instant) -> Self {
        Self::with_store(config, id, seed, now, S::default())
    }
}

impl<
    A: Address,
    S: Store,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize,
> Node<A, S, K, B, L, C, I>
{
    /// A node with the embedder's store. `seed` drives every random choice
    /// (transaction ids, refresh targets), so a run replays exactly.
    pub fn with_store(config: Config, id: NodeId, seed: u64, now: Instant, store: S) -> Self {
        let config_maintenance = config.maintenance;
        Node {
            config,
            id,
            rng: Rng::new(seed),
            now,
            table: RoutingTable::new(id),
            store,
            lookups: Vec::new(),
            seeds: Vec::new(),
            outbound: Deque::new(),
            notices: Deque::new(),
            retired: Deque::new(),
            handoffs: Deque::new(),
            next_maintenance: maintenance::first_tick(&config_maintenance, now),
            next_republish: maintenance::first_republish(&config_maintenance, now),
            republish_cursor: None,
            leave_cursor: None,
            next_query: 0,
            metrics: Metrics::default(),
        }
    }

    // ----- getters -----

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The runtime parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The routing table.
    pub fn routing_table(&self) -> &RoutingTable<A, K, B, I> {
        &self.table
    }

    /// The record store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The record store, mutably (for an embedder that manages records itself).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Counters of traffic and rejections.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Lookups started and not yet reported by `poll_event`.
    pub fn active_lookups(&self) -> usize {
        self.lookups.len()
    }

    /// The latest time the node was given.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The number of contacts a reply and a lookup result carry: `b`, clamped.
    fn b(&self) -> usize {
        (self.config.closest as usize).clamp(1, K.min(MAX_CONTACTS))
    }

    // ----- input -----

    /// One datagram from `from`, received at `now`.
    ///
    /// Rejected input leaves the node's state as it was, except for the
    /// counter that records the rejection.
    pub fn handle_input(
        &mut self,
        now: Instant,
        from: A,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        self.advance_clock(now);
        self.metrics.datagrams_in += 1;
        self.metrics.bytes_in += datagram.len() as u64;
        let network = self.config.network_id;
        match wire::decode_with(datagram, network, |header, body| {
            self.dispatch(from.clone(), header, body)
        }) {
            Ok(result) => result,
            Err(e) => {
                self.metrics.count_decode_error(e);
                trace!("rejected datagram from {:?}: {:?}", from, e);
                Err(InputError::Decode(e))
            }
        }
    }

    /// A decoded datagram from `from`.
    fn dispatch(&mut self, from: A, header: &Header, body: &Body<A>) -> Result<(), InputError> {
        if header.sender == self.id {
            self.metrics.own_id += 1;
            trace!("rejected datagram from {:?}: claims our own id", from);
            return Err(InputError::OwnId);
        }
        let sender = Peer::new(header.sender, from);
        let txid = header.txid;
        let kind = body.kind();
        // Matched by reference: binding a variant's fields by value would
        // copy the whole body (its largest variant is over 700 bytes).
        let result = match body {
            Body::Ping => self.serve(sender, txid, Outbound::Pong),
            &Body::FindNode { target } => {
                let requester = sender.id;
                self.serve(sender, txid, Outbound::Nodes { target, requester })
            }
            &Body::FindValue { key } => {
                let requester = sender.id;
                self.serve(sender, txid, Outbound::ValueOrNodes { key, requester })
            }
            Body::Store { record } => {
                // Store only what can be acknowledged: a dropped STORE must
                // leave no trace, so the requester's retry sees the same state.
                if self.outbound.is_full() {
                    self.metrics.overloaded += 1;
                    Err(InputError::Overloaded)
                } else {
                    let status = self.store.put(record, &self.id, self.now);
                    // Only the closest holder forwards, so an update costs
                    // r - 1 hand-offs, not r * (r - 1).
                    if status == StoreStatus::Updated
                        && self.config.maintenance.is_managed()
                        && self.is_closest_known(&record.key)
                    {
                        // III-C: a changed value goes to the other replicas.
                        self.queue_handoff(Handoff::changed(record.key, sender.id));
                    }
                    self.serve(sender, txid, Outbound::StoreAck(status))
                }
            }
            Body::Pong => self.on_response(sender, txid, Response::Pong),
            Body::Nodes { contacts } => self.on_response(sender, txid, Response::Nodes(contacts)),
            Body::Value { record } => {
                self.on_response(sender, txid, Response::Value(record.clone()))
            }
            &Body::StoreAck { status } => {
                self.on_response(sender, txid, Response::StoreAck(status))
            }
            Body::Refused { reason: _ } => self.on_response(sender, txid, Response::Refused),
            Body::GiveValue { record } => {
                self.learn(sender, Origin::Incoming);
                // Only a node that is itself in the record's replica set (as
                // far as it knows) takes a handed-over record: a GIVE_VALUE
                // cannot plant records anywhere in the network.
                if self.in_replica_set(&record.key) {
                    let status = self.store.put(record, &self.id, self.now);
                    self.metrics.values_received += 1;
                    trace!("GIVE_VALUE {:?}: {:?}", record.key, status);
                    Ok(())
                } else {
                    self.metrics.values_refused += 1;
                    Err(InputError::NotResponsible)
                }
            }
            Body::Leave => {
                // Only the contact itself, from its own address, can leave.
                let known = self
                    .table
                    .get(&sender.id)
                    .is_some_and(|c| c.peer.addr == sender.addr);
                if known && let Some(removed) = self.table.remove(&sender.id, self.now) {
                    self.on_removed(removed, RemovalReason::Left);
                }
                Ok(())
            }
            &Body::Down { dead } => {
                self.on_down_report(sender, dead);
                Ok(())
            }
        };
        if result.is_ok() {
            self.metrics.count_in(kind);
        }
        if let Err(e) = result {
            trace!("rejected datagram: {:?}", e);
        }
        result
    }

    /// Advances timers to `now`: request and lookup deadlines, liveness
    /// probes, record expiry. Early or repeated calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_clock(now);
        let now = self.now;
        // Lookup requests and deadlines.
        for li in 0..self.lookups.len() {
            let lookup = &mut self.lookups[li];
            if matches!(lookup.phase, Phase::Finished(_)) {
                continue;
            }
            let mut i = 0;
            while i < self.lookups[li].candidates.len() {
                let lookup = &mut self.lookups[li];
                let state = lookup.candidates[i].state;
                match state {
                    CandidateState::InFlight { deadline, .. } if deadline <= now => {
                        let id = lookup.candidates[i].peer.id;
                        let referrer = lookup.referrer_of(i);
                        let effect = lookup.resolve(
                            i,
                            Outcome::Failed,
                            self.config.beta,
                            self.config.step_to_stop,
                        );
                        self.metrics.timeouts += 1;
                        self.contact_failed(&id);
                        self.report_down(referrer, id);
                        if let ReplyEffect::SearchDone(t) = effect
                            && self.lookups[li].phase == Phase::Searching
                        {
                            self.finish_search(li, t);
                        }
                    }
                    CandidateState::Storing { txid, deadline, .. } if deadline <= now => {
                        lookup.candidates[i].state = CandidateState::StoreFailed { txid };
                        lookup.pending = lookup.pending.saturating_sub(1);
                        lookup.stats.timeouts = lookup.stats.timeouts.saturating_add(1);
                        let id = lookup.candidates[i].peer.id;
                        self.metrics.timeouts += 1;
                        self.contact_failed(&id);
                    }
                    _ => {}
                }
                i += 1;
            }
            let lookup = &mut self.lookups[li];
            if lookup.deadline <= now && !matches!(lookup.phase, Phase::Finished(_)) {
                for c in lookup.candidates.iter_mut() {
                    if let CandidateState::Storing { txid, .. } = c.state {
                        c.state = CandidateState::StoreFailed { txid };
                        lookup.pending = lookup.pending.saturating_sub(1);
                    }
                }
                // Whatever the phase: a put out of time sends no STOREs
                // (`lookup_timeout` bounds the whole lookup and its STOREs).
                lookup.phase = Phase::Finished(Termination::Deadline);
            }
            self.advance(li);
        }
        // Seed probes.
        let mut i = 0;
        while i < self.seeds.len() {
            if self.seeds[i].deadline <= now {
                let probe = self.seeds.swap_remove(i);
                self.metrics.timeouts += 1;
                if let Some(li) = self.lookup_index(probe.query) {
                    let l = &mut self.lookups[li];
                    l.seeds_pending = l.seeds_pending.saturating_sub(1);
                    l.stats.timeouts = l.stats.timeouts.saturating_add(1);
                    self.advance(li);
                }
            } else {
                i += 1;
            }
        }
        // Ping-before-evict probes: one missed probe evicts.
        while let Some((id, heard_since)) =
            self.table.overdue_probe(now, self.config.request_timeout)
        {
            let verifying = self
                .table
                .get(&id)
                .and_then(|c| c.probe)
                .is_some_and(|p| p.kind == ProbeKind::Verify);
            if heard_since {
                // The PONG was lost or is slow, but the contact spoke since.
                let peer = self.table.get(&id).map(|c| c.peer.clone());
                self.table.clear_probe(&id);
                if let (true, Some(peer)) = (verifying, peer) {
                    self.on_added(peer);
                }
                continue;
            }
            self.metrics.timeouts += 1;
            if verifying {
                self.metrics.promotions_failed += 1;
            }
            if let Some(removed) = self.table.record_failure(&id, now, 1) {
                self.on_removed(removed, RemovalReason::Unresponsive);
            }
        }
        // Probes that ended since leave the floor early; one wakeup makes it exact.
        self.table.refresh_probe_floor(now);
        if self.store.next_expiry().is_some_and(|t| t <= now) {
            self.store.remove_expired(now);
        }
        self.run_maintenance(now);
    }

    /// The network reported that `addr` refused a datagram (an ICMP "port
    /// unreachable", a refused connection, a link known to be down). Every
    /// request already sent to `addr` and still unanswered fails now, through
    /// the same path as a timeout, so that lookups move on at once instead of
    /// waiting for `request_timeout`. Liveness probes are left to time out.
    pub fn handle_unreachable(&mut self, now: Instant, addr: &A) {
        self.advance_clock(now);
        let now = self.now;
        let mut due = false;
        for l in self.lookups.iter_mut() {
            for c in l.candidates.iter_mut() {
                if c.peer.addr != *addr {
                    continue;
                }
                match &mut c.state {
                    CandidateState::InFlight {
                        deadline,
                        sent: true,
                        ..
                    }
                    | CandidateState::Storing {
                        deadline,
                        sent: true,
                        ..
                    } if *deadline > now => {
                        *deadline = now;
                        due = true;
                    }
                    _ => {}
                }
            }
        }
        for s in self.seeds.iter_mut() {
            if s.sent && s.addr == *addr && s.deadline > now {
                s.deadline = now;
                due = true;
            }
        }
        if due {
            self.handle_timeout(now);
        }
    }

    // ----- commands -----

    /// Joins the network: pings `seeds` (at most [`MAX_SEEDS`]), looks up this
    /// node's own id, then looks up a random id in every bucket farther than
    /// the nearest neighbour (pre-population, MaidSafe paper VI-B). Reported
    /// by [`Event::Bootstrapped`].
    pub fn bootstrap(&mut self, now: Instant, seeds: &[A]) -> Result<QueryId, CommandError> {
        self.advance_clock(now);
        if seeds.len() > MAX_SEEDS {
            return Err(CommandError::TooManySeeds);
        }
        if seeds.is_empty() && self.table.is_empty() {
            return Err(CommandError::NoContacts);
        }
        if self.lookups.is_full() || self.seeds.len() + seeds.len() > MAX_SEEDS {
            return Err(CommandError::Busy);
        }
        let width = self.b();
        let query = self.open_lookup(LookupKind::Bootstrap, self.id, width)?;
        let li = self.lookups.len() - 1;
        for addr in seeds {
            let txid = self.rng.next_txid();
            let deadline = self.now + self.config.request_timeout;
            // Cannot fail: capacity checked above.
            let _ = self.seeds.push(SeedProbe {
                addr: addr.clone(),
                txid,
                deadline,
                sent: false,
                query,
            });
        }
        let l = &mut self.lookups[li];
        l.seeds_pending = seeds.len() as u8;
        l.phase = Phase::PingingSeeds;
        self.advance(li);
        Ok(query)
    }

    /// Finds the `b` nodes closest to `target`. Reported by [`Event::FoundNodes`].
    pub fn find_node(&mut self, now: Instant, target: Key) -> Result<QueryId, CommandError> {
        self.advance_clock(now);
        let width = self.b();
        self.start_lookup(LookupKind::FindNode, target, width, None)
    }

    /// Looks up the record under `key`, locally first. Reported by
    /// [`Event::GetFinished`].
    pub fn get(&mut self, now: Instant, key: Key) -> Result<QueryId, CommandError> {
        self.advance_clock(now);
        if let Some(record) = self.store.get(&key, self.now) {
            let width = self.b();
            let query = self.open_lookup(LookupKind::Get, key, width)?;
            if let Some(l) = self.lookups.last_mut() {
                l.record = Some(record);
                l.phase = Phase::Finished(Termination::ValueFound);
            }
            return Ok(query);
        }
        let width = self.b();
        self.start_lookup(LookupKind::Get, key, width, None)
    }

    /// Stores `record` on the `replicas` closest nodes (py-dht's
    /// `provide_block_segment`). Reported by [`Event::PutFinished`].
    pub fn put(&mut self, now: Instant, record: Record) -> Result<QueryId, CommandError> {
        self.advance_clock(now);
        let width = (self.config.replicas as usize).max(self.b()).min(C);
        let key = record.key;
        self.start_lookup(LookupKind::Put, key, width, Some(record))
    }

    /// Adds a contact the embedder knows to be alive (a fixed peer, a
    /// simulator's global initialisation), under the same ping-before-evict
    /// rule as contacts learnt from the network.
    pub fn add_contact(&mut self, now: Instant, peer: Peer<A>) -> InsertOutcome<A> {
        self.advance_clock(now);
        self.learn(peer, Origin::Outgoing)
    }

    /// Stores a record in this node's own store only.
    pub fn put_local(&mut self, now: Instant, record: &Record) -> StoreStatus {
        self.advance_clock(now);
        self.store.put(record, &self.id, self.now)
    }

    /// The live record under `key` in this node's own store.
    pub fn get_local(&self, key: &Key) -> Option<Record> {
        self.store.get(key, self.now)
    }

    // ----- output -----

    /// The next datagram to send, encoded into `buf`. `buf` should hold
    /// [`Address::MAX_MESSAGE_LEN`] bytes; a message that does not fit is
    /// dropped and counted in [`Metrics::encode_failures`].
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit<A>> {
        loop {
            let (destination, kind, encoded) = self.next_message(buf)?;
            match encoded {
                Ok(len) => {
                    self.metrics.count_out(kind, len);
                    return Some(Transmit { destination, len });
                }
                Err(_) => self.metrics.encode_failures += 1,
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event<A, K>> {
        if let Some(n) = self.notices.pop_front() {
            return Some(Event::ContactRemoved {
                peer: n.peer,
                reason: n.reason,
                replaced_by: n.replaced_by,
            });
        }
        loop {
            let (li, termination) =
                self.lookups
                    .iter()
                    .enumerate()
                    .find_map(|(i, l)| match l.phase {
                        Phase::Finished(t) => Some((i, t)),
                        _ => None,
                    })?;
            let l = self.lookups.swap_remove(li);
            self.retire(&l);
            self.metrics.lookups_finished += 1;
            // Maintenance lookups (refresh, republish) are the node's own business.
            if !l.internal {
                return Some(self.outcome(l, termination));
            }
        }
    }

    /// When [`Node::handle_timeout`] should be called next, if anything is
    /// pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lookups = self
            .lookups
            .iter()
            .filter(|l| !matches!(l.phase, Phase::Finished(_)))
            .map(|l| l.next_deadline());
        let seeds = self.seeds.iter().map(|s| s.deadline);
        // A republish waiting for a slot that is free now wants a call now.
        let republish = self.republish_ready().then_some(self.now);
        lookups
            .chain(seeds)
            .chain(
                self.table
                    .next_probe_deadline(self.now, self.config.request_timeout),
            )
            .chain(self.store.next_expiry())
            .chain(self.next_maintenance)
            .chain(self.next_keepalive())
            .chain(self.next_republish)
            .chain(republish)
            .min()
    }

    // ----- internals -----

    fn advance_clock(&mut self, now: Instant) {
        // Time never runs backwards inside the node, whatever the embedder's clock does.
        self.now = self.now.max(now);
    }

    fn lookup_index(&self, query: QueryId) -> Option<usize> {
        self.lookups.iter().position(|l| l.id == query)
    }

    fn open_lookup(
        &mut self,
        kind: LookupKind,
        target: Key,
        width: usize,
    ) -> Result<QueryId, CommandError> {
        if self.lookups.is_full() {
            return Err(CommandError::Busy);
        }
        let query = QueryId(self.next_query);
        self.next_query = self.next_query.wrapping_add(1);
        let lookup = Lookup::new(
            query,
            kind,
            target,
            width,
            self.config.lookup_end,
            self.now,
            self.config.lookup_timeout,
        );
        // Cannot fail: checked above.
        let _ = self.lookups.push(lookup);
        self.metrics.lookups_started += 1;
        debug!("lookup {:?} {:?} started", query, kind);
        Ok(query)
    }

    fn start_lookup(
        &mut self,
        kind: LookupKind,
        target: Key,
        width: usize,
        record: Option<Record>,
    ) -> Result<QueryId, CommandError> {
        if self.table.is_empty() {
            return Err(CommandError::NoContacts);
        }
        let query = self.open_lookup(kind, target, width)?;
        let li = self.lookups.len() - 1;
        self.lookups[li].record = record;
        self.seed_candidates(li);
        self.advance(li);
        Ok(query)
    }

    /// Fills a lookup's candidates from the routing table.
    fn seed_candidates(&mut self, li: usize) {
        let lookup = &mut self.lookups[li];
        let target = lookup.target;
        lookup.seed(self.table.closest_refs::<C>(&target, C, None), &self.id);
    }

    /// Moves lookup `li` forward: phase changes and new rounds.
    fn advance(&mut self, li: usize) {
        let l = &mut self.lookups[li];
        match l.phase {
            Phase::PingingSeeds => {
                if l.seeds_pending == 0 {
                    l.phase = Phase::Searching;
                    self.seed_candidates(li);
                    self.advance(li);
                }
            }
            Phase::Searching => {
                if let Some(t) = l.termination() {
                    self.finish_search(li, t);
                } else if l.wants_round() {
                    let rng = &mut self.rng;
                    l.start_round(
                        self.config.alpha.max(1),
                        self.now,
                        self.config.request_timeout,
                        || rng.next_txid(),
                    );
                }
            }
            Phase::Storing => {
                let outstanding = l
                    .candidates
                    .iter()
                    .any(|c| matches!(c.state, CandidateState::Storing { .. }));
                if !outstanding {
                    l.phase = Phase::Finished(Termination::Converged);
                }
            }
            Phase::Finished(_) => {}
        }
    }

    /// The search phase of lookup `li` ended with `t`.
    fn finish_search(&mut self, li: usize, t: Termination) {
        let l = &mut self.lookups[li];
        match l.kind {
            LookupKind::FindNode | LookupKind::Get => l.phase = Phase::Finished(t),
            LookupKind::Put => {
                let replicas = (self.config.replicas as usize).max(1);
                let deadline = self.now + self.config.request_timeout;
                let mut marked = 0;
                for c in l.candidates.iter_mut() {
                    if marked >= replicas {
                        break;
                    }
                    // Unverified lookups store on the closest heard of, as
                    // py-dht's `provide_block_segment` does.
                    let eligible = match c.state {
                        CandidateState::Answered { .. } => true,
                        CandidateState::Fresh => !l.verify,
                        _ => false,
                    };
                    if eligible {
                        c.state = CandidateState::Storing {
                            txid: self.rng.next_txid(),
                            deadline,
                            sent: false,
                        };
                        marked += 1;
                    }
                }
                let marked_u8 = u8::try_from(marked).unwrap_or(u8::MAX);
                l.pending = l.pending.saturating_add(marked_u8);
                l.unsent = l.unsent.saturating_add(marked_u8);
                l.phase = if marked == 0 {
                    Phase::Finished(t)
                } else {
                    Phase::Storing
                };
                l.round = l.round.wrapping_add(1);
            }
            LookupKind::Bootstrap => {
                if t == Termination::Deadline {
                    l.phase = Phase::Finished(t);
                    return;
                }
                let remaining = match l.next_refresh {
                    // The self lookup just ended: refresh every bucket farther
                    // than the nearest neighbour's.
                    None => self.table.nearest_bucket().unwrap_or(0) as u16,
                    Some(n) => n,
                };
                if remaining == 0 {
                    l.phase = Phase::Finished(t);
                    l.next_refresh = Some(0);
                    return;
                }
                let bucket = remaining - 1;
                l.next_refresh = Some(bucket);
                let l = &self.lookups[li];
                for c in l.candidates.iter() {
                    if let CandidateState::InFlight {
                        txid, sent: true, ..
                    } = c.state
                    {
                        Self::remember_retired(&mut self.retired, txid);
                    }
                }
                let l = &mut self.lookups[li];
                let target = self.id.random_with_prefix(bucket as usize, &mut self.rng);
                l.retarget(target);
                self.seed_candidates(li);
                self.advance(li);
            }
        }
    }

    /// Answers a request (learning its sender first), or drops it when the
    /// outbound queue is full.
    fn serve(&mut self, sender: Peer<A>, txid: u32, what: Outbound) -> Result<(), InputError> {
        if self.outbound.is_full() {
            self.metrics.overloaded += 1;
            return Err(InputError::Overloaded);
        }
        let to = sender.addr.clone();
        let outcome = self.learn(sender, Origin::Incoming);
        // III-D1: a PING is how a node asks to be kept; a full incoming side
        // says no with a typed reply rather than silence.
        let what = match (what, outcome) {
            (Outbound::Pong, InsertOutcome::Refused) => {
                self.metrics.refused_sent += 1;
                Outbound::Refused
            }
            (what, _) => what,
        };
        self.metrics.requests_served += 1;
        // Cannot fail: checked above, and learning only queues a probe when
        // there is room left after this reply (see `learn`).
        let _ = self.outbound.push_back(Outgoing { to, txid, what });
        Ok(())
    }

    /// Adds a peer that proved itself (it sent a valid message) to the table.
    fn learn(&mut self, peer: Peer<A>, origin: Origin) -> InsertOutcome<A> {
        if self.leave_cursor.is_some() {
            // A leaving node takes no new contacts (it would owe them a LEAVE).
            if self.table.contains(&peer.id) {
                return InsertOutcome::Refreshed;
            }
            return InsertOutcome::Refused;
        }
        let outcome = self.table.insert(peer.clone(), self.now, origin);
        match &outcome {
            // Managed connections keep every contact under watch, so a full
            // bucket's contacts are known alive: the newcomer just waits.
            InsertOutcome::Pending { ping } if !self.config.maintenance.is_managed() => {
                let silent_since = self.table.get(&ping.id).map(|c| c.last_seen);
                if silent_since.is_some_and(|t| t + self.config.ping_oldest_after <= self.now) {
                    self.probe(ping.clone())
                }
            }
            InsertOutcome::AddressConflict => self.metrics.address_conflicts += 1,
            InsertOutcome::Added => self.on_added(peer),
            _ => {}
        }
        outcome
    }

    /// Pings a contact to learn whether it is still alive (ping-before-evict).
    fn probe(&mut self, contact: Peer<A>) {
        // Keep one slot free for the reply that may follow.
        if self.outbound.len() + 1 < OUTBOUND_CAPACITY {
            let txid = self.rng.next_txid();
            self.table
                .start_probe(&contact.id, txid, self.now, ProbeKind::Evict, true);
            let _ = self.outbound.push_back(Outgoing {
                to: contact.addr,
                txid,
                what: Outbound::Ping,
            });
        } else {
            self.metrics.probes_skipped += 1;
        }
    }

    /// A liveness probe was answered: the contact is alive, and a promoted
    /// replacement (`verifying`) now counts as a new contact.
    fn probe_answered(&mut self, sender: Peer<A>, verifying: bool) {
        self.table.clear_probe(&sender.id);
        self.learn(sender.clone(), Origin::Outgoing);
        if verifying {
            self.on_added(sender);
        }
    }

    fn contact_failed(&mut self, id: &NodeId) {
        if let Some(removed) = self
            .table
            .record_failure(id, self.now, self.config.max_failures)
        {
            self.on_removed(removed, RemovalReason::Unresponsive);
        }
    }

    /// Matches a response to the request it answers, then acts on it.
    fn on_response(
        &mut self,
        sender: Peer<A>,
        txid: u32,
        response: Response<'_, A>,
    ) -> Result<(), InputError> {
        // Lookup requests.
        for li in 0..self.lookups.len() {
            let Some(ci) = self.lookups[li].find_txid(txid) else {
                continue;
            };
            if matches!(self.lookups[li].phase, Phase::Finished(_)) {
                // The lookup ended (stalled or found its value) before this answer.
                self.metrics.late += 1;
                return Err(InputError::Late);
            }
            return self.on_lookup_response(li, ci, sender, response);
        }
        // Liveness probes.
        if let Some(contact) = self.table.probe_owner(txid, &sender.id) {
            if contact.peer != sender {
                self.metrics.mismatched += 1;
                return Err(InputError::Mismatched);
            }
            let verifying = contact.probe.is_some_and(|p| p.kind == ProbeKind::Verify);
            match response {
                Response::Pong => self.probe_answered(sender, verifying),
                Response::Refused => {
                    let keepalive = contact
                        .probe
                        .is_some_and(|p| p.kind == ProbeKind::Keepalive);
                    if keepalive {
                        // It will not keep us: stop keeping it (III-D1).
                        if let Some(removed) = self.table.remove(&sender.id, self.now) {
                            self.on_removed(removed, RemovalReason::Refused);
                        }
                    } else {
                        // An eviction or promotion check answered: alive,
                        // whatever it thinks of us.
                        self.probe_answered(sender, verifying);
                    }
                }
                _ => {
                    self.metrics.unexpected_response += 1;
                    return Err(InputError::UnexpectedResponse);
                }
            }
            return Ok(());
        }
        // Bootstrap seeds: their id is learnt from the answer.
        if let Some(si) = self.seeds.iter().position(|s| s.txid == txid && s.sent) {
            if self.seeds[si].addr != sender.addr {
                self.metrics.mismatched += 1;
                return Err(InputError::Mismatched);
            }
            // A seed whose incoming side is full still proves who and where
            // it is, and still answers lookups: good enough to join through.
            if !matches!(response, Response::Pong | Response::Refused) {
                self.metrics.unexpected_response += 1;
                return Err(InputError::UnexpectedResponse);
            }
            let probe = self.seeds.swap_remove(si);
            self.learn(sender.clone(), Origin::Outgoing);
            if let Some(li) = self.lookup_index(probe.query) {
                let l = &mut self.lookups[li];
                l.seeds_pending = l.seeds_pending.saturating_sub(1);
                l.stats.responses = l.stats.responses.saturating_add(1);
                self.advance(li);
            }
            return Ok(());
        }
        if let Some(pos) = self.retired.iter().position(|t| *t == txid) {
            // Answers to one request arrive at most once from an honest peer.
            let _ = self.retired.swap_remove_back(pos);
            self.metrics.late += 1;
            return Err(InputError::Late);
        }
        self.metrics.unsolicited += 1;
        Err(InputError::Unsolicited)
    }

    /// Remembers the unanswered requests of a lookup that is going away.
    fn retire(&mut self, l: &Lookup<A, C>) {
        for c in l.candidates.iter() {
            match c.state {
                CandidateState::InFlight {
                    txid, sent: true, ..
                }
                | CandidateState::Storing {
                    txid, sent: true, ..
                } => Self::remember_retired(&mut self.retired, txid),
                _ => {}
            }
        }
    }

    fn remember_retired(retired: &mut Deque<u32, RETIRED_CAPACITY>, txid: u32) {
        if retired.is_full() {
            retired.pop_front();
        }
        let _ = retired.push_back(txid);
    }

    fn on_lookup_response(
        &mut self,
        li: usize,
        ci: usize,
        sender: Peer<A>,
        response: Response<'_, A>,
    ) -> Result<(), InputError> {
        let l = &mut self.lookups[li];
        let candidate: &Candidate<A> = &l.candidates[ci];
        match candidate.state {
            CandidateState::InFlight { sent: true, .. }
            | CandidateState::Storing { sent: true, .. } => {}
            CandidateState::Answered { .. } | CandidateState::Stored { .. } => {
                self.metrics.duplicate += 1;
                return Err(InputError::Duplicate);
            }
            CandidateState::Failed { .. } | CandidateState::StoreFailed { .. } => {
                self.metrics.late += 1;
                return Err(InputError::Late);
            }
            // Not sent yet: nobody can be answering it.
            _ => {
                self.metrics.unsolicited += 1;
                return Err(InputError::Unsolicited);
            }
        }
        if candidate.peer != sender {
            self.metrics.mismatched += 1;
            return Err(InputError::Mismatched);
        }
        let storing = matches!(candidate.state, CandidateState::Storing { .. });
        let searching = l.phase == Phase::Searching;
        let kind = l.kind;
        let (beta, step) = (self.config.beta, self.config.step_to_stop);
        let effect = match (storing, response) {
            (true, Response::StoreAck(status)) => {
                let txid = l.candidates[ci].state.txid().unwrap_or(0);
                l.candidates[ci].state = CandidateState::Stored { txid, status };
                l.pending = l.pending.saturating_sub(1);
                l.stats.responses = l.stats.responses.saturating_add(1);
                ReplyEffect::None
            }
            (false, Response::Nodes(contacts)) => {
                // A straggler answering after the search ended only counts.
                let txid = l.candidates[ci].state.txid();
                let closer = searching && l.offer_all(contacts, &self.id, txid.unwrap_or(0)).closer;
                // Offers shift indices: find the answered candidate again.
                match txid.and_then(|t| l.find_txid(t)) {
                    Some(ci) => l.resolve(ci, Outcome::Answered { closer }, beta, step),
                    None => ReplyEffect::None,
                }
            }
            (false, Response::Value(record)) if kind == LookupKind::Get => {
                if record.key != l.target {
                    self.metrics.invalid_record += 1;
                    return Err(InputError::InvalidRecord);
                }
                l.record = Some(record);
                let effect = l.resolve(ci, Outcome::Answered { closer: false }, beta, step);
                if self.config.stop_at_first_value {
                    ReplyEffect::SearchDone(Termination::ValueFound)
                } else {
                    effect
                }
            }
            _ => {
                self.metrics.unexpected_response += 1;
                return Err(InputError::UnexpectedResponse);
            }
        };
        self.learn(sender, Origin::Outgoing);
        if let ReplyEffect::SearchDone(t) = effect
            && self.lookups[li].phase == Phase::Searching
        {
            self.finish_search(li, t);
        }
        self.advance(li);
        Ok(())
    }

    /// The next message to send, encoded into `buf`: queued responses and
    /// probes first, then requests marked on lookups, seed pings, keepalives,
    /// GIVE_VALUE hand-offs and LEAVE announcements. Each message is encoded
    /// where it is built: a NODES reply goes from the routing table to the
    /// buffer without being copied into a message first.
    fn next_message(&mut self, buf: &mut [u8]) -> Option<(A, MessageKind, Encoded)> {
        let (network, sender) = (self.config.network_id, self.id);
        let header = move |txid| Header {
            network,
            txid,
            sender,
        };
        let encode = |to: A, header: Header, body: &Body<A>, buf: &mut [u8]| {
            (to, body.kind(), wire::encode_parts(&header, body, buf))
        };
        if let Some(out) = self.outbound.pop_front() {
            let body = match out.what {
                Outbound::Ping => Body::Ping,
                Outbound::Pong => Body::Pong,
                Outbound::StoreAck(status) => Body::StoreAck { status },
                Outbound::Refused => Body::Refused {
                    reason: RefuseReason::BucketFull,
                },
                Outbound::Down { dead } => Body::Down { dead },
                Outbound::Nodes { target, requester } => {
                    let nodes = self.encode_nodes(header(out.txid), &target, &requester, buf);
                    return Some((out.to, MessageKind::Nodes, nodes));
                }
                Outbound::ValueOrNodes { key, requester } => match self.store.get(&key, self.now) {
                    Some(record) => Body::Value { record },
                    None => {
                        let nodes = self.encode_nodes(header(out.txid), &key, &requester, buf);
                        return Some((out.to, MessageKind::Nodes, nodes));
                    }
                },
            };
            return Some(encode(out.to, header(out.txid), &body, buf));
        }
        for l in self.lookups.iter_mut().filter(|l| l.unsent > 0) {
            for c in l.candidates.iter_mut() {
                let (txid, body) = match &mut c.state {
                    CandidateState::InFlight { txid, sent, .. } if !*sent => {
                        *sent = true;
                        let body = match l.kind {
                            LookupKind::Get => Body::FindValue { key: l.target },
                            _ => Body::FindNode { target: l.target },
                        };
                        (*txid, body)
                    }
                    CandidateState::Storing { txid, sent, .. } if !*sent => {
                        *sent = true;
                        let Some(record) = l.record.clone() else {
                            continue;
                        };
                        (*txid, Body::Store { record })
                    }
                    _ => continue,
                };
                l.unsent -= 1;
                l.stats.requests = l.stats.requests.saturating_add(1);
                return Some(encode(c.peer.addr.clone(), header(txid), &body, buf));
            }
            // The count was high (a marked request ended before it was sent).
            l.unsent = 0;
        }
        for s in self.seeds.iter_mut() {
            if !s.sent {
                s.sent = true;
                if let Some(l) = self.lookups.iter_mut().find(|l| l.id == s.query) {
                    l.stats.requests = l.stats.requests.saturating_add(1);
                }
                return Some(encode(s.addr.clone(), header(s.txid), &Body::Ping, buf));
            }
        }
        if let Some((to, txid)) = self.table.take_unsent_probe() {
            return Some(encode(to, header(txid), &Body::Ping, buf));
        }
        if let Some((to, txid, body)) = self.next_handoff() {
            return Some(encode(to, header(txid), &body, buf));
        }
        if let Some((to, txid, body)) = self.next_leave() {
            return Some(encode(to, header(txid), &body, buf));
        }
        None
    }

    /// Encodes the NODES reply to `requester` about `target` straight from
    /// the routing table.
    fn encode_nodes(
        &self,
        header: Header,
        target: &Key,
        requester: &NodeId,
        buf: &mut [u8],
    ) -> Encoded {
        let contacts = self
            .table
            .closest_refs::<MAX_CONTACTS>(target, self.b(), Some(requester));
        wire::encode_nodes(&header, &contacts, buf)
    }

    fn outcome(&self, l: Lookup<A, C>, termination: Termination) -> Event<A, K> {
        let mut stats = l.stats;
        stats.elapsed = self.now.saturating_since(l.started);
        debug!("lookup {:?} finished: {:?}", l.id, termination);
        let mut closest: Vec<Peer<A>, K> = Vec::new();
        for c in l.reported().take(self.b()) {
            let _ = closest.push(c.peer.clone());
        }
        match l.kind {
            LookupKind::Bootstrap => Event::Bootstrapped {
                query: l.id,
                contacts: self.table.len(),
                termination,
                stats,
            },
            LookupKind::FindNode => Event::FoundNodes {
                query: l.id,
                target: l.target,
                closest,
                termination,
                stats,
            },
            LookupKind::Get => Event::GetFinished {
                query: l.id,
                key: l.target,
                record: l.record,
                closest,
                termination,
                stats,
            },
            LookupKind::Put => {
                let mut stored = 0u8;
                let mut attempted = 0u8;
                for c in l.candidates.iter() {
                    match c.state {
                        CandidateState::Stored { status, .. } => {
                            attempted += 1;
                            if status.is_stored() {
                                stored += 1;
                            }
                        }
                        CandidateState::StoreFailed { .. } | CandidateState::Storing { .. } => {
                            attempted += 1
                        }
                        _ => {}
                    }
                }
                Event::PutFinished {
                    query: l.id,
                    key: l.target,
                    stored,
                    attempted,
                    termination,
                    stats,
                }
            }
        }
    }
}
