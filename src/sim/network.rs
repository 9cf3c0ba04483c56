//! The simulated network: many nodes, one virtual clock, one event queue.

use std::collections::{BinaryHeap, HashMap};

use rayon::prelude::*;

use super::churn::{Departure, Detection};
use super::crew::Crew;
use super::index::{KeyIndex, table_of};
use super::partition::{Command, NetParams, NodeEvent, Partition, Scheduled, Started, unit};
use super::report::{NetSummary, OpError, OpKind, OpRecord};
use crate::config::{Config, Maintenance};
use crate::event::Event;
use crate::id::Key;
use crate::node::{CommandError, Node};
use crate::peer::Peer;
use crate::query::QueryId;
use crate::rng::Rng;
use crate::store::Store;
use crate::time::{Duration, Instant};

/// A simulated node's address: its index in the simulator.
pub type Addr = u32;

/// The node type the simulator runs: a real [`Node`] addressed by [`Addr`].
pub type SimNode<
    S,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize = 0,
> = Node<Addr, S, K, B, L, C, I>;

/// Parameters of the simulated network (py-dht's `DHTNetwork` parameters and
/// more).
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice: the same seed gives the same run.
    pub seed: u64,
    /// Every node's protocol parameters. Its `network_id` is py-dht's
    /// `networkid`. The default turns background maintenance off, as in
    /// py-dht; set `node.maintenance` to compare the modes.
    pub node: Config,
    /// Probability that a datagram fails (py-dht's `errorrate`, per datagram
    /// rather than per connection: a request/response exchange then fails
    /// with probability `1 - (1 - loss)²`).
    pub loss: f64,
    /// Share of failures that are fast: the sender is told at once that the
    /// destination refused the datagram (an ICMP "port unreachable") and its
    /// request fails immediately. The rest are slow: the datagram vanishes
    /// and the request fails only when it times out.
    pub fast_share: f64,
    /// Shortest one-way delay of a datagram, in milliseconds.
    pub delay_min: u64,
    /// Longest one-way delay (each datagram draws uniformly from the range).
    pub delay_max: u64,
    /// Crashes, leaves and joins while the network runs.
    pub churn: Churn,
    /// Contacts each joining node is given as seeds.
    pub join_seeds: usize,
    /// Shares of the nodes run in parallel (0: one per thread of rayon's
    /// pool). Only the speed depends on it: a seed gives the same run with
    /// any number. A `delay_min` of 0 leaves no time to run in parallel and
    /// forces one.
    pub partitions: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            node: Config {
                network_id: 1,
                maintenance: Maintenance::Off,
                ..Config::default()
            },
            loss: 0.0,
            fast_share: 0.0,
            delay_min: 10,
            delay_max: 100,
            churn: Churn::default(),
            join_seeds: 1,
            partitions: 0,
        }
    }
}

/// Churn rates: events per second of virtual time across the whole network,
/// each a Poisson process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Churn {
    /// A random live node crashes: it stops at once, silently.
    pub crash_per_sec: f64,
    /// A random live node leaves gracefully (see [`Simulator::leave`]).
    pub leave_per_sec: f64,
    /// A new node joins through `join_seeds` random live nodes.
    pub join_per_sec: f64,
}

impl Churn {
    /// Whether any churn is configured.
    pub fn is_active(&self) -> bool {
        self.crash_per_sec > 0.0 || self.leave_per_sec > 0.0 || self.join_per_sec > 0.0
    }
}

/// Progress of a long phase, reported as `(done, total)`; may be called from
/// several threads at once.
pub trait Progress: Sync {
    /// Reports that `done` of `total` steps are finished.
    fn update(&self, done: u64, total: u64);
}

impl Progress for () {
    fn update(&self, _: u64, _: u64) {}
}

impl<F: Fn(u64, u64) + Sync> Progress for F {
    fn update(&self, done: u64, total: u64) {
        self(done, total)
    }
}

/// An operation to start at a given virtual time.
#[derive(Clone, Debug)]
pub enum Op {
    /// `find_node(target)` on `node`, or on a random live node.
    FindNode {
        /// The node, or `None` for a random live one.
        node: Option<Addr>,
        /// The key looked up.
        target: Key,
    },
    /// `get(key)`; the value found is checked against [`value_for`].
    Get {
        /// The node, or `None` for a random live one.
        node: Option<Addr>,
        /// The key.
        key: Key,
    },
    /// `put` of the record `key` → [`value_for`]`(key, len)`.
    Put {
        /// The node, or `None` for a random live one.
        node: Option<Addr>,
        /// The key.
        key: Key,
        /// The value's length.
        len: usize,
    },
    /// `bootstrap` of a node (created by [`Simulator::add_node`]) through
    /// `SimConfig::join_seeds` random live nodes.
    Join {
        /// The joining node.
        node: Addr,
    },
}

/// The value the simulator stores under `key`: `len` bytes derived from it,
/// so that a retrieved value can be checked without remembering it.
pub fn value_for(key: &Key, len: usize) -> Vec<u8> {
    key.0.iter().copied().cycle().take(len).collect()
}

/// What happens at a moment of the agenda.
#[derive(Clone, Copy, Debug)]
enum Agenda {
    /// An operation's start.
    Start(u32),
    /// A churn event of the given epoch (see `set_churn`).
    Churn(ChurnKind, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChurnKind {
    Crash,
    Leave,
    Join,
}

/// SplitMix64's finaliser: a well-mixed 64-bit function of `seed` and `i`.
pub(super) fn mix(seed: u64, salt: u64, i: u64) -> u64 {
    let mut z =
        seed ^ salt.wrapping_mul(0xA24B_AED4_963E_E407) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const SALT_ID: u64 = 1;
const SALT_NODE: u64 = 2;
const SALT_NET: u64 = 3;
const SALT_WORK: u64 = 4;
const SALT_CHURN: u64 = 5;

/// A set of node addresses with O(1) insert, remove and random pick.
#[derive(Default)]
struct AddrSet {
    items: Vec<Addr>,
    pos: Vec<u32>,
}

impl AddrSet {
    fn insert(&mut self, a: Addr) {
        let i = a as usize;
        if self.pos.len() <= i {
            self.pos.resize(i + 1, u32::MAX);
        }
        if self.pos[i] == u32::MAX {
            self.pos[i] = self.items.len() as u32;
            self.items.push(a);
        }
    }

    fn remove(&mut self, a: Addr) {
        let Some(&p) = self.pos.get(a as usize) else {
            return;
        };
        if p == u32::MAX {
            return;
        }
        let last = *self.items.last().expect("non-empty");
        self.items.swap_remove(p as usize);
        if last != a {
            self.pos[last as usize] = p;
        }
        self.pos[a as usize] = u32::MAX;
    }

    fn pick(&self, rng: &mut Rng) -> Option<Addr> {
        if self.items.is_empty() {
            None
        } else {
            Some(self.items[rng.below(self.items.len() as u64) as usize])
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Many [`Node`]s on a virtual clock.
///
/// Nodes are driven only through their public sans-IO API: every datagram a
/// node emits is encoded by it, carried through the event queue (with loss
/// and delay drawn from the seeded generator), and decoded by its receiver.
/// Time jumps from one event to the next; ties are broken by the order in
/// which events were scheduled, so a run is a pure function of its seed and
/// parameters.
///
/// The const generics are the node's capacities: `K` (bucket size), `B`
/// (buckets), `L` (concurrent lookups), `C` (candidates per lookup); `S` is
/// its record store.
pub struct Simulator<
    S,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize = 0,
> where
    S: Store + Default + Send,
{
    cfg: SimConfig,
    now: Instant,
    /// Node `addr` lives in partition `addr % parts.len()`.
    parts: Vec<Partition<S, K, B, L, C, I>>,
    /// Nodes ever created: addresses are `0..created`.
    created: usize,
    ids: Vec<Key>,
    /// Alive nodes that have joined (or were initialised globally): where
    /// operations run and where joins find their seeds.
    live: AddrSet,
    /// Every alive node, joined or joining, by id: the ground truth.
    index: KeyIndex,
    /// Operation starts and churn, run between windows.
    agenda: BinaryHeap<Scheduled<Agenda>>,
    agenda_seq: u64,
    /// The longest window of virtual time the partitions run apart: the
    /// shortest delay of a datagram.
    window: u64,
    /// Departures counted here; traffic is counted by the partitions.
    summary: NetSummary,
    work_rng: Rng,
    churn_rng: Rng,
    ops: Vec<OpRecord>,
    planned: Vec<Option<Op>>,
    /// Operations running on a node: (node, query) → op index.
    running: HashMap<(Addr, u32), u32>,
    /// Operations scheduled or running.
    open: usize,
    /// `run_until_done` waits for the operations below this index...
    awaited_below: usize,
    /// ...of which this many have not ended.
    awaited_open: usize,
    /// Bumped by `set_churn`: churn events of older epochs are ignored.
    churn_epoch: u32,
    /// Sum of the metrics of nodes that are gone.
    gone_timeouts: u64,
    scratch_events: Vec<NodeEvent<K>>,
    /// Kept for `record_started`.
    scratch_started: Vec<Started<K>>,
    /// The partitions handed to the crew during a window (empty between).
    scratch_parts: Vec<Partition<S, K, B, L, C, I>>,
    scratch_truth: Vec<u32>,
    /// Finished lookups whose accuracy is still to be measured against the
    /// index (see `settle_truth`).
    unsettled: Vec<Unsettled>,
    /// When nodes went away, and how long their contacts took to notice.
    pub(super) detection: Detection,
}

impl<S, const K: usize, const B: usize, const L: usize, const C: usize, const I: usize>
    Simulator<S, K, B, L, C, I>
where
    S: Store + Default + Send,
{
    /// An empty network.
    pub fn new(cfg: SimConfig) -> Self {
        let network = cfg.node.network_id;
        // version byte, network varint, 4-byte txid, 32-byte sender id.
        let varint = (32 - network.leading_zeros()).div_ceil(7).max(1) as usize;
        let seed = cfg.seed;
        let net = NetParams {
            seed: mix(seed, SALT_NET, 0),
            loss: cfg.loss.clamp(0.0, 1.0),
            fast_share: cfg.fast_share.clamp(0.0, 1.0),
            delay_min: cfg.delay_min,
            delay_span: cfg.delay_max.saturating_sub(cfg.delay_min),
            kind_offset: 1 + varint + 4 + crate::wire::KEY_WIRE_LEN,
        };
        let count = match cfg.partitions {
            _ if cfg.delay_min == 0 => 1,
            0 => rayon::current_num_threads(),
            n => n,
        };
        let mut sim = Simulator {
            now: Instant::ZERO,
            parts: (0..count).map(|i| Partition::new(i, count, net)).collect(),
            created: 0,
            ids: Vec::new(),
            live: AddrSet::default(),
            index: KeyIndex::default(),
            agenda: BinaryHeap::new(),
            agenda_seq: 0,
            window: cfg.delay_min.max(1),
            summary: NetSummary::default(),
            work_rng: Rng::new(mix(seed, SALT_WORK, 0)),
            churn_rng: Rng::new(mix(seed, SALT_CHURN, 0)),
            ops: Vec::new(),
            planned: Vec::new(),
            running: HashMap::new(),
            open: 0,
            awaited_below: 0,
            awaited_open: 0,
            churn_epoch: 0,
            gone_timeouts: 0,
            scratch_events: Vec::new(),
            scratch_started: Vec::new(),
            scratch_parts: Vec::new(),
            scratch_truth: Vec::new(),
            unsettled: Vec::new(),
            detection: Detection::default(),
            cfg,
        };
        sim.schedule_churn(ChurnKind::Crash);
        sim.schedule_churn(ChurnKind::Leave);
        sim.schedule_churn(ChurnKind::Join);
        sim
    }

    // ----- getters -----

    /// The parameters.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Nodes ever created (dead ones included): addresses are `0..len`.
    pub fn node_count(&self) -> usize {
        self.created
    }

    /// Live nodes that have joined.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Node `addr`, if alive.
    pub fn node(&self, addr: Addr) -> Option<&SimNode<S, K, B, L, C, I>> {
        if addr as usize >= self.created {
            return None;
        }
        self.parts[addr as usize % self.parts.len()].node(addr)
    }

    /// Node `addr`, mutably, if alive. After a command on it, call
    /// [`Simulator::flush`] so that its output enters the network.
    pub fn node_mut(&mut self, addr: Addr) -> Option<&mut SimNode<S, K, B, L, C, I>> {
        if addr as usize >= self.created {
            return None;
        }
        let count = self.parts.len();
        self.parts[addr as usize % count].node_mut(addr)
    }

    /// The id of node `addr` (dead or alive).
    pub fn id_of(&self, addr: Addr) -> Key {
        self.ids[addr as usize]
    }

    /// Whether node `addr` is alive.
    pub fn is_alive(&self, addr: Addr) -> bool {
        self.node(addr).is_some()
    }

    /// Every operation so far, in the order they were scheduled. A
    /// find_node's `accuracy` and `nearest` are filled in when the call that
    /// ran it (`run_until_done`, `run_until`, `step`) returns.
    pub fn ops(&self) -> &[OpRecord] {
        &self.ops
    }

    /// The `n` alive nodes closest to `target` (global knowledge), closest
    /// first.
    pub fn true_closest(&self, target: &Key, n: usize) -> Vec<Addr> {
        let mut out = Vec::new();
        self.index.closest(target, n, &mut out);
        out
    }

    /// Routing-table entries, over all live nodes, that name a dead node.
    pub fn stale_contacts(&self) -> usize {
        self.parts
            .iter()
            .flat_map(Partition::nodes)
            .map(|n| {
                n.routing_table()
                    .iter()
                    .filter(|c| !self.is_alive(c.peer.addr))
                    .count()
            })
            .sum()
    }

    /// Departures so far and the delays until routing tables dropped them.
    pub fn detection(&self) -> &Detection {
        &self.detection
    }

    /// Traffic so far.
    pub fn summary(&self) -> NetSummary {
        let mut s = self.summary.clone();
        for part in &self.parts {
            s.add(&part.summary);
        }
        s.nodes_created = self.created as u64;
        s.nodes_alive = self.parts.iter().flat_map(Partition::nodes).count() as u64;
        s.exchanges_failed = self.gone_timeouts
            + self
                .parts
                .iter()
                .flat_map(Partition::nodes)
                .map(|n| n.metrics().timeouts)
                .sum::<u64>();
        s.now = self.now;
        s
    }

    /// Bytes of one simulated node's state (`size_of` of the node type).
    pub const fn node_size() -> usize {
        core::mem::size_of::<SimNode<S, K, B, L, C, I>>()
    }

    // ----- building the network -----

    fn new_node(
        cfg: &Config,
        seed: u64,
        addr: Addr,
        now: Instant,
    ) -> (Key, Box<SimNode<S, K, B, L, C, I>>) {
        let id = Key::random(&mut Rng::new(mix(seed, SALT_ID, addr as u64)));
        let node = Box::new(SimNode::new(
            cfg.clone(),
            id,
            mix(seed, SALT_NODE, addr as u64),
            now,
        ));
        (id, node)
    }

    /// py-dht's `add_new_node`: creates a node (with an id drawn from the
    /// seed) that knows nobody; start its [`Op::Join`] to bring it in.
    pub fn add_node(&mut self) -> Addr {
        let addr = self.created as Addr;
        let (id, node) = Self::new_node(&self.cfg.node, self.cfg.seed, addr, self.now);
        self.push_node(addr, node);
        self.ids.push(id);
        self.settle_truth();
        self.index.insert(id, addr);
        addr
    }

    /// py-dht's `init_with_random_peers`, from global knowledge: creates `n`
    /// nodes and gives every routing table, for each bucket, the `K` nodes
    /// closest to its owner in that bucket's range. Runs on every core.
    /// Nodes created before are kept but do not take part.
    pub fn init_global(&mut self, n: usize, progress: &dyn Progress) {
        let first = self.created;
        let now = self.now;
        let (cfg, seed) = (&self.cfg.node, self.cfg.seed);
        let total = 3 * n as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = |step: u64| {
            let d = done.fetch_add(step, std::sync::atomic::Ordering::Relaxed) + step;
            progress.update(d, total);
        };
        let mut fresh: Vec<(Key, Box<SimNode<S, K, B, L, C, I>>)> = Vec::new();
        (first..first + n)
            .into_par_iter()
            .map(|a| {
                if a % 4096 == 0 {
                    tick(4096.min(n as u64));
                }
                Self::new_node(cfg, seed, a as Addr, now)
            })
            .collect_into_vec(&mut fresh);
        let pairs: Vec<(Key, Addr)> = fresh
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, (first + i) as Addr))
            .collect();
        let sorted = KeyIndex::build(pairs);
        tick(n as u64);
        // Visit the nodes in id order: neighbours in the key space share
        // the trie path, so the binary searches over `keys` stay in cache.
        let mut by_addr: Vec<Option<&mut SimNode<S, K, B, L, C, I>>> = fresh
            .iter_mut()
            .map(|(_, node)| Some(&mut **node))
            .collect();
        let mut in_order: Vec<&mut SimNode<S, K, B, L, C, I>> = (0..sorted.len())
            .map(|p| {
                by_addr[sorted.node_at(p) as usize - first]
                    .take()
                    .expect("each node once")
            })
            .collect();
        let keys = sorted.keys();
        in_order
            .par_iter_mut()
            .enumerate()
            .for_each_init(Vec::new, |scratch, (pos, node)| {
                if pos % 4096 == 0 {
                    tick(4096.min(n as u64));
                }
                table_of(keys, pos, K, B, scratch, |_, j| {
                    let peer = Peer::new(keys[j], sorted.node_at(j));
                    node.add_contact(now, peer);
                });
            });
        drop(in_order);
        progress.update(total, total);
        for (a, (id, node)) in (first..).zip(fresh) {
            self.ids.push(id);
            self.push_node(a as Addr, node);
        }
        for a in first..first + n {
            self.live.insert(a as Addr);
        }
        self.settle_truth();
        if first == 0 {
            self.index = sorted;
        } else {
            for a in first..first + n {
                self.index.insert(self.ids[a], a as Addr);
            }
        }
        // Global initialisation sends nothing, but honour the contract.
        for a in first..first + n {
            self.flush(a as Addr);
        }
    }

    /// Builds the network through the protocol itself: a first node, then
    /// `n - 1` nodes that each join through `SimConfig::join_seeds` random
    /// nodes already in, `wave` at a time (a wave starts when the previous
    /// one has finished). No global knowledge is used.
    pub fn init_protocol(&mut self, n: usize, wave: usize, progress: &dyn Progress) {
        if n == 0 {
            return;
        }
        if self.live.len() == 0 {
            let genesis = self.add_node();
            self.live.insert(genesis);
        }
        let wave = wave.max(1);
        let mut joined = 1;
        while joined < n {
            let batch = wave.min(n - joined);
            for _ in 0..batch {
                let node = self.add_node();
                self.schedule(self.now, Op::Join { node });
            }
            self.run_until_done(&|done: u64, _| {
                progress.update((joined as u64 + done).min(n as u64), n as u64)
            });
            joined += batch;
            progress.update(joined as u64, n as u64);
        }
    }

    // ----- operations -----

    /// Schedules `op` to start at `at` (not before now); returns its index in
    /// [`Simulator::ops`].
    pub fn schedule(&mut self, at: Instant, op: Op) -> usize {
        let at = at.max(self.now);
        let (kind, node, target) = match &op {
            Op::FindNode { node, target } => (OpKind::FindNode, *node, *target),
            Op::Get { node, key } => (OpKind::Get, *node, *key),
            Op::Put { node, key, .. } => (OpKind::Put, *node, *key),
            Op::Join { node } => (OpKind::Join, Some(*node), self.ids[*node as usize]),
        };
        let index = self.ops.len();
        self.ops
            .push(OpRecord::new(kind, node.unwrap_or(u32::MAX), target, at));
        self.planned.push(Some(op));
        self.open += 1;
        self.push_agenda(at.as_millis(), Agenda::Start(index as u32));
        index
    }

    /// Schedules `count` lookups of random keys from random live nodes, one
    /// every `interval`, starting now; returns their op indices.
    pub fn plan_lookups(&mut self, count: usize, interval: Duration) -> std::ops::Range<usize> {
        let start = self.ops.len();
        for i in 0..count {
            let target = Key::random(&mut self.work_rng);
            let at = self.now + interval.saturating_mul(i as u64);
            self.schedule(at, Op::FindNode { node: None, target });
        }
        start..self.ops.len()
    }

    /// Schedules `count` puts of random keys with `len`-byte values from
    /// random live nodes; returns the keys.
    pub fn plan_puts(&mut self, count: usize, len: usize, interval: Duration) -> Vec<Key> {
        let mut keys = Vec::with_capacity(count);
        for i in 0..count {
            let key = Key::random(&mut self.work_rng);
            let at = self.now + interval.saturating_mul(i as u64);
            self.schedule(
                at,
                Op::Put {
                    node: None,
                    key,
                    len,
                },
            );
            keys.push(key);
        }
        keys
    }

    /// Schedules a get of each key from a random live node.
    pub fn plan_gets(&mut self, keys: &[Key], interval: Duration) -> std::ops::Range<usize> {
        let start = self.ops.len();
        for (i, key) in keys.iter().enumerate() {
            let at = self.now + interval.saturating_mul(i as u64);
            self.schedule(
                at,
                Op::Get {
                    node: None,
                    key: *key,
                },
            );
        }
        start..self.ops.len()
    }

    fn start(&mut self, index: usize) {
        let Some(op) = self.planned[index].take() else {
            return;
        };
        let now = self.now;
        // A random live node, trying others if its lookup slots are busy.
        let pick = |sim: &mut Self, node: Option<Addr>, tries: &mut u32| -> Option<Addr> {
            *tries += 1;
            match node {
                Some(a) if *tries == 1 => sim.is_alive(a).then_some(a),
                Some(_) => None,
                None if *tries <= 8 => sim.live.pick(&mut sim.work_rng),
                None => None,
            }
        };
        let mut tries = 0;
        let result = loop {
            let (addr, node) = match &op {
                Op::Join { node } => (Some(*node), Some(*node)),
                Op::FindNode { node, .. } | Op::Get { node, .. } | Op::Put { node, .. } => {
                    (pick(self, *node, &mut tries), *node)
                }
            };
            let Some(addr) = addr else {
                break Err((node.unwrap_or(u32::MAX), OpError::NoNode));
            };
            let result = match &op {
                Op::Join { .. } => {
                    let mut seeds = Vec::new();
                    for _ in 0..self.cfg.join_seeds.clamp(1, crate::node::MAX_SEEDS) {
                        if let Some(s) = self.live.pick(&mut self.work_rng)
                            && s != addr
                            && !seeds.contains(&s)
                        {
                            seeds.push(s);
                        }
                    }
                    match self.node_mut(addr) {
                        Some(n) => n.bootstrap(now, &seeds).map(Some),
                        None => break Err((addr, OpError::NoNode)),
                    }
                }
                // The node's partition starts it when the next window
                // begins; whether the node will take it is known now.
                _ => self.admits(addr, &op).map(|()| None),
            };
            match result {
                Ok(q) => break Ok((addr, q)),
                Err(CommandError::Busy) if node.is_none() && tries < 8 => continue,
                Err(e) => break Err((addr, OpError::Command(e))),
            }
        };
        let rec = &mut self.ops[index];
        match result {
            Ok((addr, Some(QueryId(q)))) => {
                rec.node = addr;
                self.running.insert((addr, q), index as u32);
                self.flush(addr);
            }
            Ok((addr, None)) => {
                rec.node = addr;
                let count = self.parts.len();
                self.parts[addr as usize % count].commands.push(Command {
                    op: index as u32,
                    addr,
                    at: now.as_millis(),
                    what: op,
                });
            }
            Err((addr, e)) => {
                rec.node = addr;
                self.op_failed(index, e, now);
            }
        }
    }

    /// Whether node `addr` (alive) will accept `op` now, counting the
    /// commands already queued for it: the checks `find_node`, `get` and
    /// `put` make, in their order.
    fn admits(&self, addr: Addr, op: &Op) -> Result<(), CommandError> {
        let count = self.parts.len();
        let part = &self.parts[addr as usize % count];
        let node = part.node(addr).expect("picked alive");
        let local_value = match op {
            Op::Get { key, .. } => node.store().get(key, self.now).is_some(),
            _ => false,
        };
        if !local_value && node.routing_table().is_empty() {
            return Err(CommandError::NoContacts);
        }
        if node.active_lookups() + part.commands_for(addr) >= L {
            return Err(CommandError::Busy);
        }
        Ok(())
    }

    /// Records what the commands run in the last window did, in the order
    /// they were scheduled, with the events each caused at once.
    fn record_started(&mut self) {
        let mut started = std::mem::take(&mut self.scratch_started);
        for part in &mut self.parts {
            started.append(&mut part.started);
        }
        started.sort_by_key(|s| s.op);
        for s in started.drain(..) {
            let index = s.op as usize;
            match s.result {
                Ok(QueryId(q)) => {
                    self.running.insert((s.addr, q), s.op);
                }
                Err(e) => self.op_failed(index, e, Instant::from_millis(s.at)),
            }
            for event in s.events {
                self.on_event(s.at, s.addr, event);
            }
        }
        self.scratch_started = started;
    }

    /// Operation `index` ended at `at` without a protocol outcome.
    fn op_failed(&mut self, index: usize, error: OpError, at: Instant) {
        let rec = &mut self.ops[index];
        rec.error = Some(error);
        rec.finished = Some(at);
        self.op_done(index);
    }

    /// Operation `index` has ended.
    fn op_done(&mut self, index: usize) {
        self.open -= 1;
        if index < self.awaited_below {
            self.awaited_open -= 1;
        }
    }

    // ----- churn -----

    fn schedule_churn(&mut self, kind: ChurnKind) {
        let rate = match kind {
            ChurnKind::Crash => self.cfg.churn.crash_per_sec,
            ChurnKind::Leave => self.cfg.churn.leave_per_sec,
            ChurnKind::Join => self.cfg.churn.join_per_sec,
        };
        if rate <= 0.0 || !rate.is_finite() {
            return;
        }
        // Exponential inter-arrival time of a Poisson process.
        let u = 1.0 - unit(&mut self.churn_rng);
        let ms = (-u.ln() / rate * 1000.0).round() as u64;
        self.push_agenda(
            self.now.as_millis() + ms,
            Agenda::Churn(kind, self.churn_epoch),
        );
    }

    /// Sets the churn rates from now on (replacing `SimConfig::churn`).
    pub fn set_churn(&mut self, churn: Churn) {
        self.cfg.churn = churn;
        self.churn_epoch += 1;
        self.schedule_churn(ChurnKind::Crash);
        self.schedule_churn(ChurnKind::Leave);
        self.schedule_churn(ChurnKind::Join);
    }

    fn churn(&mut self, kind: ChurnKind) {
        match kind {
            ChurnKind::Crash => {
                if let Some(a) = self.live.pick(&mut self.churn_rng) {
                    self.crash(a);
                }
            }
            ChurnKind::Leave => {
                if let Some(a) = self.live.pick(&mut self.churn_rng) {
                    self.leave(a);
                }
            }
            ChurnKind::Join => {
                let node = self.add_node();
                self.schedule(self.now, Op::Join { node });
            }
        }
        self.schedule_churn(kind);
    }

    /// Node `addr` crashes: it stops at once, its state is dropped, and
    /// datagrams to it are lost silently. Operations it was running end with
    /// [`OpError::NodeGone`].
    pub fn crash(&mut self, addr: Addr) {
        let count = self.parts.len();
        let Some(node) = self.parts[addr as usize % count].remove(addr) else {
            return;
        };
        self.gone_timeouts += node.metrics().timeouts;
        drop(node);
        // A leave has already recorded itself: this keeps the first record.
        self.note_departure(addr, Departure::Crash);
        self.summary.crashed += 1;
        self.live.remove(addr);
        self.settle_truth();
        self.index.remove(&self.ids[addr as usize]);
        let mine: Vec<(Addr, u32)> = self
            .running
            .keys()
            .filter(|(a, _)| *a == addr)
            .copied()
            .collect();
        let mut gone: Vec<u32> = mine
            .iter()
            .filter_map(|key| self.running.remove(key))
            .collect();
        // Commands queued for it and not run yet end the same way.
        let part = &mut self.parts[addr as usize % count];
        gone.extend(
            part.commands
                .extract_if(.., |c| c.addr == addr)
                .map(|c| c.op),
        );
        for i in gone {
            self.op_failed(i as usize, OpError::NodeGone, self.now);
        }
    }

    /// Node `addr` leaves the network gracefully: [`Node::leave`] sends a
    /// LEAVE to every contact, which drop it at once; then it stops like a
    /// crash (counted as a leave).
    pub fn leave(&mut self, addr: Addr) {
        let now = self.now;
        let Some(node) = self.node_mut(addr) else {
            return;
        };
        node.leave(now);
        self.note_departure(addr, Departure::Leave);
        self.flush(addr);
        self.crash(addr);
        self.summary.crashed -= 1;
        self.summary.left += 1;
    }

    // ----- the event loop -----

    /// Moves node `addr`'s output into the network: every datagram it wants
    /// to send, every event, and its next timer. Call after any command
    /// given to a node through [`Simulator::node_mut`].
    pub fn flush(&mut self, addr: Addr) {
        if addr as usize >= self.created {
            return;
        }
        let count = self.parts.len();
        let part = &mut self.parts[addr as usize % count];
        part.flush(addr, self.now.as_millis());
        let mut events = std::mem::take(&mut part.events);
        for e in events.drain(..) {
            self.on_event(e.at, e.addr, e.event);
        }
        self.parts[addr as usize % count].events = events;
    }

    /// Adds node `addr` to its partition.
    fn push_node(&mut self, addr: Addr, node: Box<SimNode<S, K, B, L, C, I>>) {
        debug_assert_eq!(addr as usize, self.created);
        let count = self.parts.len();
        self.parts[addr as usize % count].add(addr, node);
        self.created += 1;
    }

    fn push_agenda(&mut self, at: u64, action: Agenda) {
        self.agenda_seq += 1;
        self.agenda.push(Scheduled {
            at,
            seq: self.agenda_seq,
            action,
        });
    }

    fn on_event(&mut self, at: u64, addr: Addr, event: Event<Addr, K>) {
        let now = Instant::from_millis(at);
        let (query, finish) = match event {
            Event::ContactRemoved { peer, reason, .. } => {
                self.detection.removed(now, addr, peer.addr, reason);
                if self.is_alive(peer.addr) {
                    self.summary.removed.1 += 1;
                } else {
                    self.summary.removed.0 += 1;
                }
                return;
            }
            Event::Bootstrapped {
                query,
                contacts,
                termination,
                stats,
            } => {
                self.live.insert(addr);
                (
                    query,
                    Finish::Join {
                        contacts,
                        termination,
                        stats,
                    },
                )
            }
            Event::FoundNodes {
                query,
                target,
                closest,
                termination,
                stats,
            } => {
                // Measured later, many at once and in parallel (see
                // `settle_truth`); the index cannot change until then.
                if let Some(&index) = self.running.get(&(addr, query.0)) {
                    self.unsettled.push(Unsettled {
                        op: index,
                        asker: addr,
                        target,
                        returned: closest.iter().map(|p| p.addr).collect(),
                    });
                }
                (
                    query,
                    Finish::Lookup {
                        returned: closest.len(),
                        dead: self.count_dead(&closest),
                        accuracy: None,
                        termination,
                        stats,
                        found: None,
                    },
                )
            }
            Event::GetFinished {
                query,
                key,
                record,
                closest,
                termination,
                stats,
            } => {
                let found = record.is_some_and(|r| {
                    r.key == key && r.value[..] == value_for(&key, r.value.len())[..]
                });
                (
                    query,
                    Finish::Lookup {
                        returned: closest.len(),
                        dead: self.count_dead(&closest),
                        accuracy: None,
                        termination,
                        stats,
                        found: Some(found),
                    },
                )
            }
            Event::PutFinished {
                query,
                key,
                stored,
                termination,
                stats,
                ..
            } => {
                let replicas = (self.cfg.node.replicas as usize).clamp(1, C);
                let mut truth = std::mem::take(&mut self.scratch_truth);
                self.index.closest(&key, replicas + 1, &mut truth);
                truth.retain(|&a| a != addr);
                truth.truncate(replicas);
                let holding = truth
                    .iter()
                    .filter(|&&a| self.node(a).is_some_and(|n| n.get_local(&key).is_some()))
                    .count();
                let accuracy = (!truth.is_empty()).then(|| holding as f64 / truth.len() as f64);
                self.scratch_truth = truth;
                (
                    query,
                    Finish::Put {
                        stored,
                        accuracy,
                        termination,
                        stats,
                    },
                )
            }
        };
        let Some(index) = self.running.remove(&(addr, query.0)) else {
            return;
        };
        self.op_done(index as usize);
        let rec = &mut self.ops[index as usize];
        rec.finished = Some(now);
        match finish {
            Finish::Join {
                contacts,
                termination,
                stats,
            } => {
                rec.termination = Some(termination);
                rec.stats = stats;
                rec.returned = contacts as u32;
                rec.success = contacts > 0;
            }
            Finish::Lookup {
                returned,
                dead,
                accuracy,
                termination,
                stats,
                found,
            } => {
                rec.termination = Some(termination);
                rec.stats = stats;
                rec.returned = returned as u32;
                rec.dead_returned = dead;
                rec.accuracy = accuracy;
                rec.success = found.unwrap_or(returned > 0);
            }
            Finish::Put {
                stored,
                accuracy,
                termination,
                stats,
            } => {
                rec.termination = Some(termination);
                rec.stats = stats;
                rec.returned = stored as u32;
                rec.accuracy = accuracy;
                rec.success = stored > 0;
            }
        }
    }

    /// How many of `peers` are dead.
    fn count_dead(&self, peers: &[Peer<Addr>]) -> u32 {
        peers.iter().filter(|p| !self.is_alive(p.addr)).count() as u32
    }

    /// `b`: how many contacts a lookup returns.
    fn b(&self) -> usize {
        (self.cfg.node.closest as usize).clamp(1, K.min(crate::wire::MAX_CONTACTS))
    }

    /// Measures every lookup finished since the last call against the
    /// index as it is now: the share of the `b` live nodes closest to its
    /// target (other than the asking node) that it returned, and whether it
    /// returned the nearest of them. Called before the index changes and
    /// before a run returns, so each lookup is measured against the network
    /// at its end; large batches are measured in parallel, off the event
    /// loop's thread.
    fn settle_truth(&mut self) {
        /// Below this many lookups, threads cost more than they save.
        const PARALLEL_FROM: usize = 64;
        let b = self.b();
        let index = &self.index;
        let measure = |truth: &mut Vec<u32>, u: &Unsettled| {
            index.closest(&u.target, b + 1, truth);
            truth.retain(|&a| a != u.asker);
            let nearest = truth.first().map(|n| u.returned.contains(n));
            truth.truncate(b);
            let hits = truth.iter().filter(|a| u.returned.contains(a)).count();
            let accuracy = (!truth.is_empty()).then(|| hits as f64 / truth.len() as f64);
            (accuracy, nearest)
        };
        let verdicts: Vec<(Option<f64>, Option<bool>)> = if self.unsettled.len() < PARALLEL_FROM {
            let mut truth = std::mem::take(&mut self.scratch_truth);
            let v = self
                .unsettled
                .iter()
                .map(|u| measure(&mut truth, u))
                .collect();
            self.scratch_truth = truth;
            v
        } else {
            self.unsettled
                .par_iter()
                .map_init(Vec::new, measure)
                .collect()
        };
        for (u, (accuracy, nearest)) in self.unsettled.drain(..).zip(verdicts) {
            let rec = &mut self.ops[u.op as usize];
            rec.accuracy = accuracy;
            rec.nearest = nearest;
        }
    }

    /// Runs the next agenda entry due at or before `until`, or else the
    /// next window of virtual time that starts at or before it; false when
    /// nothing is due by then.
    fn step_until(&mut self, until: u64, crew: Option<&Crew<Partition<S, K, B, L, C, I>>>) -> bool {
        // Datagrams posted since the last step (by the last window, or by
        // commands given between windows) reach their partitions first.
        let count = self.parts.len();
        for from in 0..count {
            for to in 0..count {
                if from != to {
                    let (a, b) = pair_mut(&mut self.parts, from, to);
                    Partition::deliver_mail(a, b);
                }
            }
        }
        let next_event = self.parts.iter().filter_map(Partition::next_at).min();
        let next_agenda = self.agenda.peek().map(|e| e.at);
        match (next_event, next_agenda) {
            (_, Some(a)) if a <= until && next_event.is_none_or(|e| a <= e) => {
                let entry = self.agenda.pop().expect("peeked");
                self.now = self.now.max(Instant::from_millis(entry.at));
                match entry.action {
                    Agenda::Start(i) => self.start(i as usize),
                    Agenda::Churn(kind, epoch) if epoch == self.churn_epoch => self.churn(kind),
                    Agenda::Churn(..) => {}
                }
                true
            }
            (Some(start), _) if start <= until => {
                let end = (start.saturating_add(self.window))
                    .min(next_agenda.unwrap_or(u64::MAX))
                    .min(until.saturating_add(1));
                self.run_window(end, crew);
                true
            }
            _ => false,
        }
    }

    /// Runs every partition through the events due before `end` (in
    /// parallel if a crew is there), then handles their node events.
    fn run_window(&mut self, end: u64, crew: Option<&Crew<Partition<S, K, B, L, C, I>>>) {
        match crew {
            Some(crew) if self.parts.len() > 1 => {
                // A kept vector: a run has up to hundreds of thousands of
                // windows, and `split_off` would allocate one for each.
                let mut theirs = std::mem::take(&mut self.scratch_parts);
                theirs.extend(self.parts.drain(1..));
                crew.run(end, &mut self.parts[0], &mut theirs);
                self.parts.append(&mut theirs);
                self.scratch_parts = theirs;
            }
            _ => self.parts.iter_mut().for_each(|p| p.run_window(end)),
        }
        // Everything before `end` has run: operations started from now on
        // must not start in the past of any partition.
        self.now = self.now.max(Instant::from_millis(end - 1));
        self.record_started();
        let mut events = std::mem::take(&mut self.scratch_events);
        for part in &mut self.parts {
            events.append(&mut part.events);
        }
        // The order a single partition would have handled them in.
        events.sort_by_key(|e| (e.at, e.rank));
        for e in events.drain(..) {
            self.on_event(e.at, e.addr, e.event);
        }
        self.scratch_events = events;
    }

    /// Runs the next agenda entry (an operation's start, churn) or window
    /// of node events; false when nothing is left to run.
    pub fn step(&mut self) -> bool {
        let stepped = self.step_until(u64::MAX - 1, None);
        self.settle_truth();
        stepped
    }

    /// Runs `f` with helper threads for every partition but the first, if
    /// there are several.
    fn with_crew<R>(
        &mut self,
        f: impl FnOnce(&mut Self, Option<&Crew<Partition<S, K, B, L, C, I>>>) -> R,
    ) -> R {
        let helpers = self.parts.len() - 1;
        if helpers == 0 {
            return f(self, None);
        }
        let crew = Crew::new(helpers);
        std::thread::scope(|scope| {
            let _dismiss = crew.start(scope);
            f(self, Some(&crew))
        })
    }

    /// Runs until every operation scheduled so far has finished (or the
    /// queue runs dry), reporting each finished operation to `progress`.
    /// Operations scheduled meanwhile (churn's joins) are not waited for.
    pub fn run_until_done(&mut self, progress: &dyn Progress) {
        // Only operations scheduled before this call are waited for: joins
        // that churn keeps scheduling would otherwise never let it return.
        self.awaited_below = self.ops.len();
        self.awaited_open = self.ops.iter().filter(|r| r.finished.is_none()).count();
        let total = self.awaited_open as u64;
        let mut last = self.awaited_open;
        self.with_crew(|sim, crew| {
            while sim.awaited_open > 0 && sim.step_until(u64::MAX - 1, crew) {
                if sim.awaited_open != last {
                    last = sim.awaited_open;
                    progress.update(total - last as u64, total);
                }
            }
        });
        self.settle_truth();
    }

    /// Runs every event up to `until` (virtual time), then sets the clock
    /// there.
    pub fn run_until(&mut self, until: Instant) {
        self.with_crew(|sim, crew| while sim.step_until(until.as_millis(), crew) {});
        self.now = self.now.max(until);
        self.settle_truth();
    }
}

/// Two distinct elements of a slice, both mutably.
fn pair_mut<T>(items: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (left, right) = items.split_at_mut(b);
        (&mut left[a], &mut right[0])
    } else {
        let (left, right) = items.split_at_mut(a);
        (&mut right[0], &mut left[b])
    }
}

/// A finished lookup whose accuracy is still to be measured.
struct Unsettled {
    op: u32,
    asker: Addr,
    target: Key,
    returned: Vec<Addr>,
}

enum Finish {
    Join {
        contacts: usize,
        termination: crate::query::Termination,
        stats: crate::query::LookupStats,
    },
    Lookup {
        returned: usize,
        dead: u32,
        accuracy: Option<f64>,
        termination: crate::query::Termination,
        stats: crate::query::LookupStats,
        found: Option<bool>,
    },
    Put {
        stored: u8,
        accuracy: Option<f64>,
        termination: crate::query::Termination,
        stats: crate::query::LookupStats,
    },
}
