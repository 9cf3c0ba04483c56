//! Churn measurements (issue 6): how long routing tables take to notice a
//! departure, how many of their entries are alive, and a whole churn
//! scenario that compares the maintenance modes on the same network.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::network::{Addr, Churn, Op, Progress, SimConfig, Simulator};
use super::report::{Dist, NetSummary, OpError, OpKind};
use crate::event::RemovalReason;
use crate::id::Key;
use crate::rng::Rng;
use crate::store::Store;
use crate::time::{Duration, Instant};
use crate::wire::MessageKind;

/// How a node went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// It stopped silently.
    Crash,
    /// It sent LEAVE to its contacts, then stopped.
    Leave,
}

/// Time to detect departures: when each node went away, which routing
/// tables held it then, and how long each of them took to drop it.
///
/// Every table counts once: a node that was in 30 tables gives up to 30
/// delays. A table that never drops it gives none (see
/// [`Detection::undetected`]). A table that takes a departed node in *after*
/// the departure (a replacement promoted from a bucket's cache, say) and
/// drops it later is counted apart, in `late_delays`.
#[derive(Clone, Debug, Default)]
pub struct Detection {
    gone: HashMap<Addr, Gone>,
    /// Milliseconds from a crash to each removal of the crashed node as
    /// [`RemovalReason::Dead`] or [`RemovalReason::Unresponsive`] from a
    /// table that held it at the crash.
    pub crash_delays: Vec<u64>,
    /// Milliseconds from a leave to each removal of the leaving node as
    /// [`RemovalReason::Left`] from a table that held it at the leave.
    pub leave_delays: Vec<u64>,
    /// Milliseconds from a leave to each removal of the leaving node as dead
    /// or unresponsive from a table that held it at the leave: tables its
    /// LEAVE did not reach (it announces itself only to its own contacts).
    pub leave_missed_delays: Vec<u64>,
    /// Milliseconds from a departure to each removal of the departed node
    /// from a table that took it in after the departure.
    pub late_delays: Vec<u64>,
    /// Removals of departed nodes for any other reason.
    pub other: u64,
    /// Whether departures record the tables holding the departed node (a
    /// scan of every table per departure; see
    /// [`Simulator::track_holders`]). Without it, every removal of a
    /// departed node counts as a detection.
    pub track_holders: bool,
}

#[derive(Clone, Debug)]
struct Gone {
    at: Instant,
    how: Departure,
    /// Tables that held the node when it departed and have not dropped it
    /// (None: not tracked).
    holders: Option<Vec<Addr>>,
}

impl Detection {
    /// Records that `addr` went away at `at` while the tables of `holders`
    /// held it; the first record of a node wins (a leave is recorded before
    /// the crash that ends it).
    pub fn departed(
        &mut self,
        addr: Addr,
        at: Instant,
        how: Departure,
        holders: Option<Vec<Addr>>,
    ) {
        self.gone.entry(addr).or_insert(Gone { at, how, holders });
    }

    /// The table of `observer` dropped `addr` at `now` for `reason`; counted
    /// only if `addr` has departed.
    pub fn removed(&mut self, now: Instant, observer: Addr, addr: Addr, reason: RemovalReason) {
        let Some(gone) = self.gone.get_mut(&addr) else {
            return;
        };
        let delay = now.saturating_since(gone.at).as_millis();
        if let Some(holders) = &mut gone.holders {
            let Some(i) = holders.iter().position(|&h| h == observer) else {
                self.late_delays.push(delay);
                return;
            };
            holders.swap_remove(i);
        }
        use RemovalReason::*;
        match (gone.how, reason) {
            (Departure::Crash, Dead | Unresponsive) => self.crash_delays.push(delay),
            (Departure::Leave, Left) => self.leave_delays.push(delay),
            (Departure::Leave, Dead | Unresponsive) => self.leave_missed_delays.push(delay),
            _ => self.other += 1,
        }
    }

    /// When and how `addr` departed, if it did.
    pub fn departure(&self, addr: Addr) -> Option<(Instant, Departure)> {
        self.gone.get(&addr).map(|g| (g.at, g.how))
    }

    /// Nodes departed so far: (crashes, leaves).
    pub fn departures(&self) -> (usize, usize) {
        let leaves = self
            .gone
            .values()
            .filter(|g| g.how == Departure::Leave)
            .count();
        (self.gone.len() - leaves, leaves)
    }

    /// Table entries, held at a departure, not dropped yet: those of
    /// crashed nodes, those of nodes that left. (Tables of nodes that
    /// departed since count too.)
    pub fn undetected(&self) -> (usize, usize) {
        self.undetected_before(Instant::from_millis(u64::MAX))
    }

    /// [`Detection::undetected`], counting only departures at or before
    /// `before`.
    pub fn undetected_before(&self, before: Instant) -> (usize, usize) {
        let mut out = (0, 0);
        for g in self.gone.values().filter(|g| g.at <= before) {
            let n = g.holders.as_ref().map_or(0, Vec::len);
            match g.how {
                Departure::Crash => out.0 += n,
                Departure::Leave => out.1 += n,
            }
        }
        out
    }

    /// Crash detection delays, in seconds.
    pub fn crash_secs(&self) -> Dist {
        secs(&self.crash_delays)
    }

    /// Leave detection delays (through LEAVE), in seconds.
    pub fn leave_secs(&self) -> Dist {
        secs(&self.leave_delays)
    }
}

fn secs(ms: &[u64]) -> Dist {
    Dist::of(ms.iter().map(|&m| m as f64 / 1000.0))
}

/// Routing-table entries over all live nodes at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCensus {
    /// When it was taken.
    pub at: Instant,
    /// Live nodes (joined or joining).
    pub nodes: usize,
    /// Routing-table entries (outgoing and incoming contacts).
    pub entries: usize,
    /// Entries naming a dead node.
    pub stale: usize,
}

impl TableCensus {
    /// Bucket accuracy: the share of entries that are alive (1 with no
    /// entries at all).
    pub fn alive_share(&self) -> f64 {
        if self.entries == 0 {
            1.0
        } else {
            1.0 - self.stale as f64 / self.entries as f64
        }
    }
}

impl<S, const K: usize, const B: usize, const L: usize, const C: usize, const I: usize>
    Simulator<S, K, B, L, C, I>
where
    S: Store + Default + Send,
{
    /// Counts routing-table entries and stale ones over all live nodes.
    pub fn table_census(&self) -> TableCensus {
        let mut c = TableCensus {
            at: self.now(),
            ..TableCensus::default()
        };
        for a in 0..self.node_count() as Addr {
            let Some(node) = self.node(a) else { continue };
            c.nodes += 1;
            for contact in node.routing_table().iter() {
                c.entries += 1;
                if !self.is_alive(contact.peer.addr) {
                    c.stale += 1;
                }
            }
        }
        c
    }

    /// Records the departure of `addr` with the live nodes whose tables
    /// hold it now (a scan of every table: kept for churn measurements).
    pub(super) fn note_departure(&mut self, addr: Addr, how: Departure) {
        if self.detection.departure(addr).is_some() {
            return;
        }
        let holders = self.detection.track_holders.then(|| {
            (0..self.node_count() as Addr)
                .filter(|&a| {
                    a != addr
                        && self
                            .node(a)
                            .is_some_and(|n| n.routing_table().iter().any(|c| c.peer.addr == addr))
                })
                .collect()
        });
        self.detection.departed(addr, self.now(), how, holders);
    }

    /// Makes every later departure record which tables hold the departed
    /// node (one scan of every table per departure), so that
    /// [`Detection`] tells the tables that held it from those that took it in
    /// later, and counts the entries never dropped.
    pub fn track_holders(&mut self) {
        self.detection.track_holders = true;
    }
}

/// Parameters of a churn run (see [`run_churn`]).
#[derive(Clone, Debug)]
pub struct ChurnScenario {
    /// Nodes, built from global knowledge.
    pub nodes: usize,
    /// Simulated time under churn.
    pub duration: Duration,
    /// Share of `nodes` replaced per simulated hour: half crash, half leave,
    /// and as many join through seeds.
    pub replaced_per_hour: f64,
    /// Values put before the churn starts and got after it ends.
    pub values: usize,
    /// Length of each value.
    pub value_len: usize,
    /// Lookups per simulated minute during the churn, alternately of a
    /// random key and of a random live node's id.
    pub lookups_per_min: u32,
    /// How often the routing tables are counted.
    pub sample_every: Duration,
}

impl Default for ChurnScenario {
    fn default() -> Self {
        ChurnScenario {
            nodes: 1_000,
            duration: Duration::from_secs(24 * 3600),
            replaced_per_hour: 0.10,
            values: 200,
            value_len: 32,
            lookups_per_min: 4,
            sample_every: Duration::from_secs(600),
        }
    }
}

/// What [`run_churn`] measured.
#[derive(Clone, Debug, Default)]
pub struct ChurnReport {
    /// Wall-clock seconds the run took.
    pub wall_secs: f64,
    /// Live nodes, mean over the samples.
    pub live_nodes: f64,
    /// Routing-table entries per live node, mean over the samples.
    pub entries_per_node: f64,
    /// Every table census (at the start of the churn, then every
    /// `sample_every`).
    pub census: Vec<TableCensus>,
    /// Departures and detection delays at the end of the churn.
    pub detection: Detection,
    /// Lookups of random keys that ended (their asker still alive).
    pub key_lookups: usize,
    /// Of those, how many returned the live node closest to the key.
    pub key_lookups_nearest: usize,
    /// Their mean accuracy (share of the true `b` closest returned).
    pub key_lookup_accuracy: f64,
    /// Lookups of live node ids whose asker and target stayed alive.
    pub node_lookups: usize,
    /// Of those, how many returned the target node.
    pub node_lookups_found: usize,
    /// Values put.
    pub values: usize,
    /// Puts that stored at least one replica.
    pub puts_ok: usize,
    /// Values a get found (right value) after the churn.
    pub values_found: usize,
    /// Live node-seconds of the churn phase (mean live nodes × duration).
    pub node_seconds: f64,
    /// Bytes sent during the churn phase, by message type.
    pub bytes: [u64; MessageKind::COUNT],
    /// Datagrams sent during the churn phase, by message type.
    pub datagrams: [u64; MessageKind::COUNT],
    /// FIND_NODE and NODES bytes of the scenario's own lookups and joins
    /// (estimated from their request and response counts and the mean
    /// message sizes); the rest is maintenance.
    pub user_lookup_bytes: f64,
}

impl ChurnReport {
    fn kind_bytes(&self, kinds: &[MessageKind]) -> f64 {
        kinds.iter().map(|&k| self.bytes[k as usize] as f64).sum()
    }

    /// Mean size of a message of `kind` during the churn (0 if none).
    pub fn message_size(&self, kind: MessageKind) -> f64 {
        self.bytes[kind as usize] as f64 / self.datagrams[kind as usize].max(1) as f64
    }

    /// Bucket accuracy: share of routing-table entries alive, mean over the
    /// samples.
    pub fn alive_share(&self) -> f64 {
        let n = self.census.len().max(1) as f64;
        self.census
            .iter()
            .map(TableCensus::alive_share)
            .sum::<f64>()
            / n
    }

    /// Liveness bytes: PING, PONG, REFUSED, LEAVE, DOWN.
    pub fn liveness_bytes(&self) -> f64 {
        use MessageKind::*;
        self.kind_bytes(&[Ping, Pong, Refused, Leave, Down])
    }

    /// Lookup bytes not caused by the scenario's lookups and joins: bucket
    /// refreshes and the lookups before republishes (an estimate).
    pub fn refresh_bytes(&self) -> f64 {
        use MessageKind::*;
        (self.kind_bytes(&[FindNode, Nodes]) - self.user_lookup_bytes).max(0.0)
    }

    /// Record moving: STORE, its acknowledgement, and GIVE_VALUE (no puts
    /// run during the churn, so these are republishes and hand-offs).
    pub fn record_bytes(&self) -> f64 {
        use MessageKind::*;
        self.kind_bytes(&[Store, StoreAck, GiveValue])
    }

    /// Maintenance bytes: liveness, refresh and record moving.
    pub fn maintenance_bytes(&self) -> f64 {
        self.liveness_bytes() + self.refresh_bytes() + self.record_bytes()
    }

    /// Every byte sent during the churn.
    pub fn total_bytes(&self) -> f64 {
        self.bytes.iter().sum::<u64>() as f64
    }

    /// `bytes` per live node per second.
    pub fn per_node_sec(&self, bytes: f64) -> f64 {
        bytes / self.node_seconds.max(1e-9)
    }

    /// Keepalive cost per routing-table entry per second: PING and PONG
    /// bytes over entry-seconds.
    pub fn ping_pong_per_entry_sec(&self) -> f64 {
        use MessageKind::*;
        self.kind_bytes(&[Ping, Pong]) / (self.node_seconds * self.entries_per_node).max(1e-9)
    }

    /// The header of [`ChurnReport::row`].
    pub fn header() -> String {
        format!(
            "{:<10} {:>6} {:>6} {:>15} {:>15} {:>7} {:>7} {:>6} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "mode",
            "alive",
            "x/k",
            "crash s mean/90",
            "leave s mean/90",
            "nearest",
            "target",
            "values",
            "stale",
            "live B/ns",
            "rfsh B/ns",
            "recs B/ns",
            "mnt B/ns",
            "all B/ns",
            "PP B/es",
        )
    }

    /// One line of the comparison table for `mode` at bucket size `k`.
    pub fn row(&self, mode: &str, k: usize) -> String {
        let share = self.alive_share();
        let c = self.detection.crash_secs();
        let l = self.detection.leave_secs();
        let pair = |d: Dist| {
            if d.count == 0 {
                "-".to_string()
            } else {
                format!("{:.1}/{:.1}", d.mean, d.p90)
            }
        };
        let pct = |a: usize, b: usize| {
            if b == 0 {
                "-".to_string()
            } else {
                format!("{:.1}%", 100.0 * a as f64 / b as f64)
            }
        };
        let stale = self.census.last().map_or(0, |c| c.stale);
        format!(
            "{:<10} {:>5.1}% {:>6.2} {:>15} {:>15} {:>7} {:>7} {:>6} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.3}",
            mode,
            100.0 * share,
            share * k as f64,
            pair(c),
            pair(l),
            pct(self.key_lookups_nearest, self.key_lookups),
            pct(self.node_lookups_found, self.node_lookups),
            pct(self.values_found, self.values),
            stale,
            self.per_node_sec(self.liveness_bytes()),
            self.per_node_sec(self.refresh_bytes()),
            self.per_node_sec(self.record_bytes()),
            self.per_node_sec(self.maintenance_bytes()),
            self.per_node_sec(self.total_bytes()),
            self.ping_pong_per_entry_sec(),
        )
    }

    /// Several lines of detail for `mode`.
    pub fn details(&self, mode: &str) -> String {
        let mut s = String::new();
        let d = &self.detection;
        let (crashes, leaves) = d.departures();
        let _ = writeln!(s, "[{mode}]");
        let _ = writeln!(
            s,
            "  nodes          : {:.0} live on average, {:.1} table entries each; {crashes} crashed, {leaves} left",
            self.live_nodes, self.entries_per_node
        );
        let (lo, hi) = self
            .census
            .iter()
            .map(TableCensus::alive_share)
            .fold((1.0f64, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let _ = writeln!(
            s,
            "  bucket accuracy: mean {:.4} (min {lo:.4}, max {hi:.4}) over {} samples",
            self.alive_share(),
            self.census.len()
        );
        let _ = writeln!(
            s,
            "  crash detection: {:.1} s over {} removals",
            d.crash_secs(),
            d.crash_delays.len()
        );
        let _ = writeln!(
            s,
            "  leave detection: {:.1} s over {} removals by LEAVE; {} more as dead ({:.1} s); {} other",
            d.leave_secs(),
            d.leave_delays.len(),
            d.leave_missed_delays.len(),
            secs(&d.leave_missed_delays),
            d.other
        );
        let (uc, ul) = d.undetected();
        let _ = writeln!(
            s,
            "  not dropped yet: {uc} entries of crashed nodes, {ul} of nodes that left; taken in after the departure, then dropped: {} ({:.1} s)",
            d.late_delays.len(),
            secs(&d.late_delays)
        );
        let _ = writeln!(
            s,
            "  lookups        : {} of random keys, {} returned the nearest live node, mean accuracy {:.4}; {} of live ids, {} found the node",
            self.key_lookups,
            self.key_lookups_nearest,
            self.key_lookup_accuracy,
            self.node_lookups,
            self.node_lookups_found
        );
        let _ = writeln!(
            s,
            "  values         : {} put ({} stored), {} found after the churn",
            self.values, self.puts_ok, self.values_found
        );
        let kinds: Vec<String> = MessageKind::ALL
            .iter()
            .filter(|&&k| self.datagrams[k as usize] > 0)
            .map(|&k| {
                format!(
                    "{k:?} {:.3} ({:.0} B each)",
                    self.per_node_sec(self.bytes[k as usize] as f64),
                    self.message_size(k)
                )
            })
            .collect();
        let _ = writeln!(s, "  B/node/s by type: {}", kinds.join(", "));
        let _ = writeln!(
            s,
            "  scenario lookups and joins (FIND_NODE + NODES, estimated): {:.3} B/node/s",
            self.per_node_sec(self.user_lookup_bytes)
        );
        let _ = write!(s, "  wall time      : {:.1} s", self.wall_secs);
        s
    }
}

fn kind_delta(after: &NetSummary, before: &NetSummary) -> ([u64; 12], [u64; 12]) {
    let mut bytes = [0; MessageKind::COUNT];
    let mut datagrams = [0; MessageKind::COUNT];
    for i in 0..MessageKind::COUNT {
        let a = after.per_kind.get(i).copied().unwrap_or((0, 0));
        let b = before.per_kind.get(i).copied().unwrap_or((0, 0));
        datagrams[i] = a.0 - b.0;
        bytes[i] = a.1 - b.1;
    }
    (bytes, datagrams)
}

/// Runs a churn scenario: builds `scenario.nodes` nodes from global
/// knowledge with `cfg` (its seed makes every mode start from the same
/// network), puts the values, then runs `scenario.duration` of churn with
/// lookups throughout and table censuses every `scenario.sample_every`,
/// stops the churn and gets every value. `progress` sees the churn's
/// samples.
pub fn run_churn<
    S,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize,
>(
    cfg: SimConfig,
    scenario: &ChurnScenario,
    progress: &dyn Progress,
) -> ChurnReport
where
    S: Store + Default + Send,
{
    let wall = std::time::Instant::now();
    let mut rng = Rng::new(cfg.seed ^ 0xC4_0C4_0C4);
    let mut sim = Simulator::<S, K, B, L, C, I>::new(cfg);
    sim.track_holders();
    sim.init_global(scenario.nodes, &());
    let first_put = sim.ops().len();
    let keys = sim.plan_puts(
        scenario.values,
        scenario.value_len,
        Duration::from_millis(20),
    );
    sim.run_until_done(&());
    let puts_ok = sim.ops()[first_put..].iter().filter(|r| r.success).count();

    let before = sim.summary();
    let first_op = sim.ops().len();
    let t0 = sim.now();
    let per_sec = scenario.nodes as f64 * scenario.replaced_per_hour / 3600.0;
    sim.set_churn(Churn {
        crash_per_sec: per_sec / 2.0,
        leave_per_sec: per_sec / 2.0,
        join_per_sec: per_sec,
    });
    let mut census = vec![sim.table_census()];
    let end = t0 + scenario.duration;
    let every = scenario.sample_every.as_millis().max(1);
    let windows = scenario.duration.as_millis().div_ceil(every);
    let gap = Duration::from_millis(60_000 / u64::from(scenario.lookups_per_min.max(1)));
    // (op index, the node whose id is looked up).
    let mut lookups: Vec<(usize, Option<Addr>)> = Vec::new();
    let mut next = t0;
    for w in 1..=windows {
        let until = (t0 + Duration::from_millis(every * w)).min(end);
        while scenario.lookups_per_min > 0 && next < until {
            if lookups.len().is_multiple_of(2) {
                let target = Key::random(&mut rng);
                lookups.push((
                    sim.schedule(next, Op::FindNode { node: None, target }),
                    None,
                ));
            } else {
                let n = sim.node_count() as u64;
                let target = loop {
                    let a = rng.below(n) as Addr;
                    if sim.is_alive(a) {
                        break a;
                    }
                };
                let op = Op::FindNode {
                    node: None,
                    target: sim.id_of(target),
                };
                lookups.push((sim.schedule(next, op), Some(target)));
            }
            next += gap;
        }
        sim.run_until(until);
        census.push(sim.table_census());
        progress.update(w, windows);
    }
    sim.set_churn(Churn::default());
    let after = sim.summary();
    let detection = sim.detection().clone();
    let last_op = sim.ops().len();
    // Let the last lookups end, then get every value.
    sim.run_until_done(&());
    let first_get = sim.ops().len();
    sim.plan_gets(&keys, Duration::from_millis(20));
    sim.run_until_done(&());
    let values_found = sim.ops()[first_get..].iter().filter(|r| r.success).count();

    let ops = sim.ops();
    let mut r = ChurnReport {
        values: keys.len(),
        puts_ok,
        values_found,
        ..ChurnReport::default()
    };
    let mut accuracy = 0.0;
    for &(i, target) in &lookups {
        let rec = &ops[i];
        if rec.error == Some(OpError::NodeGone) {
            continue;
        }
        match target {
            None => {
                r.key_lookups += 1;
                r.key_lookups_nearest += usize::from(rec.nearest == Some(true));
                accuracy += rec.accuracy.unwrap_or(0.0);
            }
            Some(t) => {
                let ended = rec.finished.unwrap_or(end);
                let target_gone = detection.departure(t).is_some_and(|(at, _)| at <= ended);
                if rec.node == t || target_gone {
                    continue;
                }
                r.node_lookups += 1;
                r.node_lookups_found += usize::from(rec.nearest == Some(true));
            }
        }
    }
    r.key_lookup_accuracy = accuracy / r.key_lookups.max(1) as f64;
    (r.bytes, r.datagrams) = kind_delta(&after, &before);
    // The scenario's own FIND_NODE traffic: its lookups and the joins.
    let (mut requests, mut responses) = (0u64, 0u64);
    for rec in &ops[first_op..last_op] {
        if matches!(rec.kind, OpKind::FindNode | OpKind::Join) {
            requests += u64::from(rec.stats.requests);
            responses += u64::from(rec.stats.responses);
        }
    }
    r.user_lookup_bytes = requests as f64 * r.message_size(MessageKind::FindNode)
        + responses as f64 * r.message_size(MessageKind::Nodes);
    let n = census.len() as f64;
    r.live_nodes = census.iter().map(|c| c.nodes as f64).sum::<f64>() / n;
    r.entries_per_node = census
        .iter()
        .map(|c| c.entries as f64 / c.nodes.max(1) as f64)
        .sum::<f64>()
        / n;
    r.node_seconds = r.live_nodes * scenario.duration.as_millis() as f64 / 1000.0;
    r.census = census;
    r.detection = detection;
    r.wall_secs = wall.elapsed().as_secs_f64();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Maintenance};
    use crate::store::MemoryStore;

    type Store = MemoryStore<16, 64>;

    fn config(maintenance: Maintenance) -> SimConfig {
        SimConfig {
            seed: 11,
            node: Config {
                network_id: 6,
                maintenance,
                ..Config::default()
            },
            join_seeds: 2,
            ..SimConfig::default()
        }
    }

    /// 100 nodes, 10 minutes of churn replacing 20 % of them (120 % per
    /// hour), 40 values: managed connections (γ = 15 s, δ = 3, I = K)
    /// against classic periodic
    /// maintenance (hourly refresh and republish) on the same network.
    #[test]
    fn managed_connections_under_churn() {
        let scenario = ChurnScenario {
            nodes: 100,
            duration: Duration::from_secs(600),
            replaced_per_hour: 1.2,
            values: 40,
            value_len: 16,
            lookups_per_min: 6,
            sample_every: Duration::from_secs(60),
        };
        let (gamma, delta) = (15_000, 3);
        let managed_cfg = config(Maintenance::Managed {
            keepalive_interval: Duration::from_millis(gamma),
            max_missed: delta as u8,
        });
        let delay_max = managed_cfg.delay_max;
        let managed = run_churn::<Store, 4, 20, 3, 12, 4>(managed_cfg, &scenario, &());
        let periodic =
            run_churn::<Store, 4, 20, 3, 12, 0>(config(Maintenance::PERIODIC), &scenario, &());
        println!("{}", ChurnReport::header());
        println!("{}", managed.row("managed", 4));
        println!("{}", periodic.row("periodic", 4));
        println!(
            "{}\n{}",
            managed.details("managed"),
            periodic.details("periodic")
        );

        let d = &managed.detection;
        let (crashes, leaves) = d.departures();
        assert!(
            crashes >= 5 && leaves >= 5,
            "{crashes} crashes, {leaves} leaves"
        );
        // Every crash is noticed within γ·δ of the last datagram the crashed
        // node sent, which arrives at most one delay after the crash.
        assert!(d.crash_delays.len() >= crashes, "{d:?}");
        let bound = gamma * delta + delay_max;
        assert!(d.crash_delays.iter().all(|&ms| ms <= bound), "{d:?}");
        // ... and by every table that held it, but for the departures of
        // the last γ·δ + delay (the churn ended 600 s after it began).
        let end = managed.census.last().unwrap().at;
        let window = Duration::from_millis(bound + 1);
        let old = Instant::from_millis(end.as_millis() - window.as_millis());
        assert_eq!(d.undetected_before(old), (0, 0), "{d:?}");
        // A LEAVE is seen within one delay.
        assert!(!d.leave_delays.is_empty());
        assert!(d.leave_delays.iter().all(|&ms| ms <= delay_max), "{d:?}");
        // Tables stay more accurate than with hourly refreshes.
        assert!(
            managed.alive_share() > periodic.alive_share(),
            "managed {} periodic {}",
            managed.alive_share(),
            periodic.alive_share()
        );
        // The scenario's own figures: 60 lookups, half of keys and half of
        // live ids (less those whose asker or target went away), one
        // census per minute and one at the start.
        for report in [&managed, &periodic] {
            assert_eq!(report.census.len(), 11);
            assert_eq!(report.values, scenario.values);
            let (keys, ids) = (report.key_lookups, report.node_lookups);
            assert!(
                (25..=30).contains(&keys) && (20..=30).contains(&ids),
                "{keys} {ids}"
            );
            assert!(report.key_lookups_nearest * 10 >= keys * 9, "{report:?}");
            assert!(report.node_lookups_found * 10 >= ids * 9, "{report:?}");
            assert!((0.8..=1.0).contains(&report.key_lookup_accuracy));
            let lookup_bytes = report.kind_bytes(&[MessageKind::FindNode, MessageKind::Nodes]);
            assert!(report.user_lookup_bytes > 0.0 && report.user_lookup_bytes <= lookup_bytes);
        }
        // No value is lost.
        assert_eq!(managed.puts_ok, scenario.values);
        assert_eq!(managed.values_found, scenario.values);
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn detection_sorts_each_removal_by_how_the_node_went_and_who_held_it() {
        use RemovalReason::*;
        let mut d = Detection {
            track_holders: true,
            ..Detection::default()
        };
        d.departed(1, at(1_000), Departure::Crash, Some(vec![10, 11, 12]));
        d.departed(2, at(2_000), Departure::Leave, Some(vec![10, 11, 12, 13]));
        // The first record wins: the crash that ends a leave changes nothing.
        d.departed(2, at(2_500), Departure::Crash, Some(vec![]));
        assert_eq!(d.departure(2), Some((at(2_000), Departure::Leave)));
        assert_eq!(d.departure(3), None);
        assert_eq!(d.departures(), (1, 1));
        assert_eq!(d.undetected(), (3, 4));

        d.removed(at(4_000), 10, 1, Dead);
        d.removed(at(5_500), 11, 1, Unresponsive);
        d.removed(at(6_000), 20, 1, Dead); // took it in after the crash
        d.removed(at(9_000), 10, 3, Dead); // never departed: ignored
        d.removed(at(2_040), 10, 2, Left);
        d.removed(at(7_000), 11, 2, Unresponsive); // its LEAVE missed 11
        d.removed(at(8_000), 12, 2, Refused);
        assert_eq!(d.crash_delays, [3_000, 4_500]);
        assert_eq!(d.late_delays, [5_000]);
        assert_eq!(d.leave_delays, [40]);
        assert_eq!(d.leave_missed_delays, [5_000]);
        assert_eq!(d.other, 1);
        // Table 12 still holds the crashed node, table 13 the one that left.
        assert_eq!(d.undetected(), (1, 1));
        assert_eq!(d.undetected_before(at(1_999)), (1, 0));
        assert_eq!(d.undetected_before(at(2_000)), (1, 1));
        assert_eq!(d.undetected_before(at(999)), (0, 0));
        // A holder counts once: a second removal by table 10 is a late one.
        d.removed(at(9_000), 10, 1, Dead);
        assert_eq!(d.late_delays, [5_000, 8_000]);
        let crash = d.crash_secs();
        assert_eq!((crash.count, crash.min, crash.max), (2, 3.0, 4.5));
        assert_eq!(d.leave_secs().max, 0.04);
    }

    #[test]
    fn untracked_detection_counts_every_removal() {
        let mut d = Detection::default();
        d.departed(1, at(100), Departure::Crash, None);
        d.removed(at(300), 5, 1, RemovalReason::Unresponsive);
        d.removed(at(700), 6, 1, RemovalReason::Dead);
        assert_eq!(d.crash_delays, [200, 600]);
        assert!(d.late_delays.is_empty());
        assert_eq!(d.undetected(), (0, 0), "nothing known of the holders");
    }

    /// A report of 100 live nodes over 10 s with 8 table entries each.
    fn report_with_traffic() -> ChurnReport {
        let mut r = ChurnReport {
            live_nodes: 100.0,
            entries_per_node: 8.0,
            node_seconds: 1_000.0,
            user_lookup_bytes: 1_500.0,
            ..ChurnReport::default()
        };
        let traffic = [
            (MessageKind::Ping, 10, 400),
            (MessageKind::Pong, 10, 600),
            (MessageKind::Refused, 1, 30),
            (MessageKind::Leave, 2, 50),
            (MessageKind::Down, 1, 70),
            (MessageKind::FindNode, 20, 1_000),
            (MessageKind::Nodes, 20, 3_000),
            (MessageKind::Store, 4, 800),
            (MessageKind::StoreAck, 4, 100),
            (MessageKind::GiveValue, 1, 100),
        ];
        for (kind, datagrams, bytes) in traffic {
            r.datagrams[kind as usize] = datagrams;
            r.bytes[kind as usize] = bytes;
        }
        r.census = vec![
            TableCensus {
                at: at(0),
                nodes: 100,
                entries: 800,
                stale: 0,
            },
            TableCensus {
                at: at(10_000),
                nodes: 100,
                entries: 800,
                stale: 200,
            },
        ];
        r
    }

    #[test]
    fn churn_report_splits_bytes_into_liveness_refresh_and_records() {
        let r = report_with_traffic();
        assert_eq!(r.liveness_bytes(), 1_150.0);
        assert_eq!(
            r.refresh_bytes(),
            2_500.0,
            "lookup bytes less the scenario's own"
        );
        assert_eq!(r.record_bytes(), 1_000.0);
        assert_eq!(r.maintenance_bytes(), 4_650.0);
        assert_eq!(r.total_bytes(), 6_150.0);
        assert_eq!(r.per_node_sec(r.total_bytes()), 6.15);
        assert_eq!(r.message_size(MessageKind::Nodes), 150.0);
        assert_eq!(r.message_size(MessageKind::Value), 0.0, "none sent");
        assert_eq!(r.ping_pong_per_entry_sec(), 1_000.0 / 8_000.0);
        assert_eq!(r.alive_share(), 0.875, "the mean of 1 and 0.75");
        assert_eq!(TableCensus::default().alive_share(), 1.0, "no entries");
        let mut lookups_only = ChurnReport::default();
        lookups_only.bytes[MessageKind::Nodes as usize] = 100;
        lookups_only.user_lookup_bytes = 150.0;
        assert_eq!(
            lookups_only.refresh_bytes(),
            0.0,
            "an estimate above the total"
        );
        assert_eq!(ChurnReport::default().alive_share(), 0.0, "no census");
    }

    #[test]
    fn churn_report_row_and_details_show_the_figures() {
        let mut r = report_with_traffic();
        r.key_lookups = 8;
        r.key_lookups_nearest = 6;
        r.values = 40;
        r.values_found = 40;
        r.detection.departed(1, at(0), Departure::Crash, None);
        r.detection.removed(at(2_000), 5, 1, RemovalReason::Dead);
        let header = ChurnReport::header();
        let row = r.row("managed", 4);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(header.split_whitespace().next(), Some("mode"));
        assert_eq!(
            cells,
            [
                "managed", "87.5%", "3.50", "2.0/2.0", "-", "75.0%", "-", "100.0%", "200", "1.15",
                "2.50", "1.00", "4.65", "6.15", "0.125"
            ]
        );
        let details = r.details("managed");
        for expected in [
            "[managed]",
            "100 live on average, 8.0 table entries each; 1 crashed, 0 left",
            "bucket accuracy: mean 0.8750 (min 0.7500, max 1.0000) over 2 samples",
            "crash detection: mean 2.0  median 2.0  p90 2.0  max 2.0 s over 1 removals",
            "8 of random keys, 6 returned the nearest live node",
            "40 put (0 stored), 40 found after the churn",
            "Ping 0.400 (40 B each)",
            "scenario lookups and joins (FIND_NODE + NODES, estimated): 1.500 B/node/s",
        ] {
            assert!(details.contains(expected), "{expected:?} in\n{details}");
        }
        let by_type = details
            .lines()
            .find(|l| l.contains("by type"))
            .expect("a line by message type");
        assert_eq!(
            by_type.matches(" B each)").count(),
            10,
            "types never sent are left out"
        );
    }

    #[test]
    fn kind_delta_subtracts_per_type_counts() {
        let before = NetSummary {
            per_kind: vec![(1, 10), (2, 20)],
            ..NetSummary::default()
        };
        let after = NetSummary {
            per_kind: vec![(4, 40), (2, 20), (5, 50)],
            ..NetSummary::default()
        };
        let (bytes, datagrams) = kind_delta(&after, &before);
        assert_eq!((bytes[0], bytes[1], bytes[2], bytes[3]), (30, 0, 50, 0));
        assert_eq!((datagrams[0], datagrams[2]), (3, 5));
    }

    #[test]
    fn a_crash_is_tracked_in_every_table_that_holds_the_node() {
        type Sim = Simulator<Store, 4, 20, 3, 12, 0>;
        let mut sim = Sim::new(config(Maintenance::Off));
        sim.init_global(60, &());
        let table_len = |sim: &Sim, a: Addr| sim.node(a).map_or(0, |n| n.routing_table().len());
        // Live tables that name `gone`.
        let holders_of = |sim: &Sim, gone: Addr| {
            (0..60)
                .filter_map(|a| sim.node(a))
                .filter(|n| n.routing_table().iter().any(|c| c.peer.addr == gone))
                .count()
        };
        let entries: usize = (0..60).map(|a| table_len(&sim, a)).sum();
        let before = sim.table_census();
        assert_eq!(
            (before.nodes, before.entries, before.stale),
            (60, entries, 0)
        );

        let dropped = table_len(&sim, 7) + table_len(&sim, 8);
        sim.crash(7);
        assert_eq!(sim.detection().undetected(), (0, 0), "holders not tracked");
        sim.track_holders();
        let holders = holders_of(&sim, 8);
        sim.crash(8);
        assert!(holders > 0);
        assert_eq!(sim.detection().undetected(), (holders, 0));
        let after = sim.table_census();
        let stale = holders_of(&sim, 7) + holders_of(&sim, 8);
        assert!(stale > holders);
        assert_eq!((after.nodes, after.stale), (58, stale));
        assert_eq!(
            after.entries,
            entries - dropped,
            "the dead's own tables are gone"
        );
    }
}
