//! What a run produces: one record per operation, distributions, the network
//! summary, and CSV output.

use std::fmt;
use std::io::{self, Write};

use crate::id::Key;
use crate::node::CommandError;
use crate::query::{LookupStats, Termination};
use crate::time::Instant;
use crate::wire::MessageKind;

/// What an operation was.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpKind {
    /// `find_node`: a lookup of the closest nodes to a key.
    FindNode,
    /// `get`: retrieve a value (py-dht's `retrieve_segment` through a lookup).
    Get,
    /// `put`: provide a value (py-dht's `provide_block_segment`).
    Put,
    /// `bootstrap`: a node joining through seeds.
    Join,
}

impl OpKind {
    /// A short lowercase name, as used in CSV output.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::FindNode => "find_node",
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::Join => "join",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an operation did not run to a protocol outcome.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpError {
    /// The node refused the command.
    Command(CommandError),
    /// No live node could run it (the network is empty, or the chosen node
    /// is dead).
    NoNode,
    /// The node crashed or left while the operation ran.
    NodeGone,
}

/// One operation and its outcome: a row of the CSV output.
#[derive(Clone, Debug)]
pub struct OpRecord {
    /// What it was.
    pub kind: OpKind,
    /// The node that ran it (its address), `u32::MAX` if none could.
    pub node: u32,
    /// The key looked up, stored or retrieved (the joining node's id for a join).
    pub target: Key,
    /// When it started, in virtual time.
    pub started: Instant,
    /// When the node reported its end, if it did.
    pub finished: Option<Instant>,
    /// Why it did not run, if it did not.
    pub error: Option<OpError>,
    /// Why the lookup ended.
    pub termination: Option<Termination>,
    /// The node's statistics of the lookup (requests, responses, timeouts,
    /// rounds i.e. hops, elapsed virtual time).
    pub stats: LookupStats,
    /// Contacts returned (find_node, get), replicas acknowledged (put), or
    /// routing-table size afterwards (join).
    pub returned: u32,
    /// find_node: the share of the true `b` closest live nodes (from global
    /// knowledge, at the end of the lookup) that the lookup returned.
    /// put: the share of the true `replicas` closest live nodes that hold the
    /// value afterwards. None for get and join.
    pub accuracy: Option<f64>,
    /// find_node and get: returned contacts that were dead when the lookup
    /// ended.
    pub dead_returned: u32,
    /// find_node: whether the returned contacts include the live node
    /// closest to the target (other than the asking node), from global
    /// knowledge at the end of the lookup. For a lookup of a live node's id,
    /// whether it found that node. None for other operations.
    pub nearest: Option<bool>,
    /// Whether the operation did its job: a find_node returned contacts, a
    /// get found the right value, a put stored at least one replica, a join
    /// ended with a non-empty table.
    pub success: bool,
}

impl OpRecord {
    pub(crate) fn new(kind: OpKind, node: u32, target: Key, started: Instant) -> Self {
        OpRecord {
            kind,
            node,
            target,
            started,
            finished: None,
            error: None,
            termination: None,
            stats: LookupStats::default(),
            returned: 0,
            accuracy: None,
            dead_returned: 0,
            nearest: None,
            success: false,
        }
    }

    /// Virtual latency in milliseconds: from the command to the event.
    pub fn latency_ms(&self) -> Option<u64> {
        self.finished
            .map(|f| f.saturating_since(self.started).as_millis())
    }

    /// The CSV header matching [`OpRecord::write_csv_row`].
    pub const CSV_HEADER: &'static str = "op,kind,node,target,started_ms,latency_ms,requests,responses,timeouts,hops,termination,returned,dead_returned,accuracy,success,error";

    /// Writes this record as one CSV line; `op` is its index in the run.
    pub fn write_csv_row(&self, op: usize, w: &mut dyn Write) -> io::Result<()> {
        let key = self.target.0;
        write!(w, "{op},{},", self.kind)?;
        if self.node == u32::MAX {
            write!(w, ",")?;
        } else {
            write!(w, "{},", self.node)?;
        }
        for b in &key[..8] {
            write!(w, "{b:02x}")?;
        }
        write!(w, ",{},", self.started.as_millis())?;
        if let Some(l) = self.latency_ms() {
            write!(w, "{l}")?;
        }
        let s = &self.stats;
        write!(
            w,
            ",{},{},{},{},",
            s.requests, s.responses, s.timeouts, s.rounds
        )?;
        if let Some(t) = self.termination {
            write!(w, "{t:?}")?;
        }
        write!(w, ",{},{},", self.returned, self.dead_returned)?;
        if let Some(a) = self.accuracy {
            write!(w, "{a:.4}")?;
        }
        write!(w, ",{},", self.success as u8)?;
        if let Some(e) = self.error {
            match e {
                OpError::Command(c) => write!(w, "{c:?}")?,
                other => write!(w, "{other:?}")?,
            }
        }
        writeln!(w)
    }
}

/// Writes `records` as CSV, header first.
pub fn write_csv(records: &[OpRecord], w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{}", OpRecord::CSV_HEADER)?;
    for (i, r) in records.iter().enumerate() {
        r.write_csv_row(i, w)?;
    }
    Ok(())
}

/// Mean, median and 90th percentile of a sample, like py-dht's benchmark
/// output.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dist {
    /// Sample size.
    pub count: usize,
    /// Arithmetic mean (0 for an empty sample).
    pub mean: f64,
    /// Median (nearest rank).
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Dist {
    /// The distribution of `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Dist {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Dist {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            median: rank(0.5),
            p90: rank(0.9),
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(1);
        write!(
            f,
            "mean {:.p$}  median {:.p$}  p90 {:.p$}  max {:.p$}",
            self.mean, self.median, self.p90, self.max
        )
    }
}

/// A summary of a set of operations (one phase of a run).
#[derive(Clone, Debug, Default)]
pub struct OpSummary {
    /// Operations (py-dht's "rounds").
    pub count: usize,
    /// Operations that did not succeed (py-dht's "failed rounds").
    pub failed: usize,
    /// Virtual latency, milliseconds.
    pub latency_ms: Dist,
    /// Hops: rounds of α requests.
    pub hops: Dist,
    /// Requests sent per operation.
    pub requests: Dist,
    /// Requests that timed out (or were refused) per operation.
    pub timeouts: Dist,
    /// Accuracy, where defined.
    pub accuracy: Dist,
    /// Operations whose accuracy was exactly 1.
    pub exact: usize,
}

impl OpSummary {
    /// Summarises `records`.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a OpRecord> + Clone) -> OpSummary {
        let all = || records.clone().into_iter();
        let ran = || all().filter(|r| r.finished.is_some());
        OpSummary {
            count: all().count(),
            failed: all().filter(|r| !r.success).count(),
            latency_ms: Dist::of(ran().filter_map(|r| r.latency_ms()).map(|l| l as f64)),
            hops: Dist::of(ran().map(|r| r.stats.rounds as f64)),
            requests: Dist::of(ran().map(|r| r.stats.requests as f64)),
            timeouts: Dist::of(ran().map(|r| r.stats.timeouts as f64)),
            accuracy: Dist::of(all().filter_map(|r| r.accuracy)),
            exact: all().filter(|r| r.accuracy == Some(1.0)).count(),
        }
    }
}

/// Traffic through the simulated network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetSummary {
    /// Nodes ever created.
    pub nodes_created: u64,
    /// Nodes alive now.
    pub nodes_alive: u64,
    /// Nodes that crashed.
    pub crashed: u64,
    /// Nodes that left.
    pub left: u64,
    /// Datagrams the nodes sent.
    pub sent: u64,
    /// Bytes the nodes sent (every datagram, encoded).
    pub bytes_sent: u64,
    /// Datagrams delivered to a live node (and decoded by it).
    pub delivered: u64,
    /// Datagrams lost silently (slow failures).
    pub lost: u64,
    /// Datagrams refused at once (fast failures).
    pub refused: u64,
    /// Datagrams that reached a dead node.
    pub to_dead: u64,
    /// Responses accepted by the node that asked: successful exchanges.
    pub exchanges_ok: u64,
    /// Requests that timed out or were refused: failed exchanges.
    pub exchanges_failed: u64,
    /// Delivered datagrams the receiver rejected (late, duplicate, ...).
    pub rejected: u64,
    /// Datagrams and bytes sent per message type (indexed by the type byte).
    pub per_kind: Vec<(u64, u64)>,
    /// Contacts removed from routing tables because they stopped answering:
    /// (the contact was dead, the contact was alive).
    pub removed: (u64, u64),
    /// Node timers that fired (`handle_timeout` calls).
    pub timers: u64,
    /// Virtual time now.
    pub now: Instant,
}

fn kind_name(i: usize) -> String {
    match MessageKind::ALL.get(i) {
        Some(k) => format!("{k:?}"),
        None => format!("type {i}"),
    }
}

impl NetSummary {
    /// Adds `other`'s traffic counters (datagrams, bytes, exchanges,
    /// removals, timers) to this summary; node counts and time are left.
    pub fn add(&mut self, other: &NetSummary) {
        self.crashed += other.crashed;
        self.left += other.left;
        self.sent += other.sent;
        self.bytes_sent += other.bytes_sent;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.refused += other.refused;
        self.to_dead += other.to_dead;
        self.exchanges_ok += other.exchanges_ok;
        self.exchanges_failed += other.exchanges_failed;
        self.rejected += other.rejected;
        if self.per_kind.len() < other.per_kind.len() {
            self.per_kind.resize(other.per_kind.len(), (0, 0));
        }
        for (mine, theirs) in self.per_kind.iter_mut().zip(&other.per_kind) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        self.removed.0 += other.removed.0;
        self.removed.1 += other.removed.1;
        self.timers += other.timers;
    }
}

impl fmt::Display for NetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nodes           : {} alive, {} created, {} crashed, {} left",
            self.nodes_alive, self.nodes_created, self.crashed, self.left
        )?;
        writeln!(
            f,
            "datagrams       : {} sent, {} delivered, {} lost (slow), {} refused (fast), {} to dead nodes",
            self.sent, self.delivered, self.lost, self.refused, self.to_dead
        )?;
        writeln!(
            f,
            "bytes on wire   : {} ({:.1} per datagram)",
            self.bytes_sent,
            self.bytes_sent as f64 / self.sent.max(1) as f64
        )?;
        writeln!(
            f,
            "exchanges       : {} successful, {} failed, {} datagrams rejected",
            self.exchanges_ok, self.exchanges_failed, self.rejected
        )?;
        let kinds: Vec<String> = self
            .per_kind
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(i, (n, b))| format!("{} {n} ({b} B)", kind_name(i)))
            .collect();
        writeln!(f, "by type         : {}", kinds.join(", "))?;
        writeln!(
            f,
            "contacts removed: {} dead, {} alive (false positives)",
            self.removed.0, self.removed.1
        )?;
        write!(
            f,
            "virtual time    : {:.1} s ({} timers fired)",
            self.now.as_millis() as f64 / 1000.0,
            self.timers
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_nearest_rank() {
        let d = Dist::of((1..=10).map(|x| x as f64));
        assert_eq!((d.count, d.median, d.p90, d.max), (10, 5.0, 9.0, 10.0));
        assert_eq!(d.mean, 5.5);
        assert_eq!(Dist::of([]), Dist::default());
    }

    #[test]
    fn dist_of_an_unsorted_sample_skips_nan() {
        let d = Dist::of([7.0, f64::NAN, 1.0, 3.0, 2.0]);
        assert_eq!(d.count, 4);
        assert_eq!((d.min, d.max), (1.0, 7.0));
        assert_eq!(d.mean, 13.0 / 4.0);
        assert_eq!(
            (d.median, d.p90),
            (2.0, 7.0),
            "nearest rank, not interpolated"
        );
        assert_eq!(
            format!("{d:.2}"),
            "mean 3.25  median 2.00  p90 7.00  max 7.00"
        );
        assert_eq!(format!("{d}"), "mean 3.2  median 2.0  p90 7.0  max 7.0");
        let single = Dist::of([4.0]);
        assert_eq!((single.median, single.p90, single.min), (4.0, 4.0, 4.0));
    }

    #[test]
    fn op_kinds_are_named_as_in_the_csv() {
        let names: Vec<String> = [OpKind::FindNode, OpKind::Get, OpKind::Put, OpKind::Join]
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(names, ["find_node", "get", "put", "join"]);
    }

    #[test]
    fn csv_row_of_every_field() {
        let mut target = [0u8; 32];
        target[..8].copy_from_slice(&[0xAB, 0x01, 0, 0, 0, 0, 0xFF, 0x10]);
        let mut done = OpRecord::new(OpKind::Put, 42, Key(target), Instant::from_millis(1_500));
        done.finished = Some(Instant::from_millis(1_750));
        done.termination = Some(Termination::Converged);
        done.stats = LookupStats {
            requests: 9,
            responses: 7,
            timeouts: 2,
            rounds: 4,
            ..LookupStats::default()
        };
        done.returned = 3;
        done.dead_returned = 1;
        done.accuracy = Some(0.75);
        done.success = true;
        let mut refused = OpRecord::new(OpKind::Get, u32::MAX, Key::ZERO, Instant::from_millis(9));
        refused.error = Some(OpError::Command(CommandError::Busy));
        let mut gone = OpRecord::new(OpKind::Join, 5, Key::ZERO, Instant::ZERO);
        gone.error = Some(OpError::NodeGone);
        let mut out = Vec::new();
        write_csv(&[done, refused, gone], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], OpRecord::CSV_HEADER);
        assert_eq!(
            lines[1],
            "0,put,42,ab0100000000ff10,1500,250,9,7,2,4,Converged,3,1,0.7500,1,"
        );
        assert_eq!(lines[2], "1,get,,0000000000000000,9,,0,0,0,0,,0,0,,0,Busy");
        assert_eq!(
            lines[3],
            "2,join,5,0000000000000000,0,,0,0,0,0,,0,0,,0,NodeGone"
        );
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn csv_row_shape() {
        let mut r = OpRecord::new(OpKind::FindNode, 3, Key::ZERO, Instant::from_millis(5));
        r.finished = Some(Instant::from_millis(105));
        r.accuracy = Some(1.0);
        r.success = true;
        let mut out = Vec::new();
        write_csv(&[r], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].split(',').count(),
            lines[1].split(',').count(),
            "{text}"
        );
        assert!(lines[1].starts_with("0,find_node,3,0000000000000000,5,100,"));
    }

    /// A summary whose every counter is distinct, scaled by `m`.
    fn traffic(m: u64, kinds: usize) -> NetSummary {
        NetSummary {
            nodes_created: 1000 * m,
            nodes_alive: 900 * m,
            crashed: m,
            left: 2 * m,
            sent: 3 * m,
            bytes_sent: 4 * m,
            delivered: 5 * m,
            lost: 6 * m,
            refused: 7 * m,
            to_dead: 8 * m,
            exchanges_ok: 9 * m,
            exchanges_failed: 10 * m,
            rejected: 11 * m,
            per_kind: (0..kinds as u64)
                .map(|i| (m * (i + 1), m * 100 * (i + 1)))
                .collect(),
            removed: (12 * m, 13 * m),
            timers: 14 * m,
            now: Instant::from_millis(15 * m),
        }
    }

    #[test]
    fn adding_summaries_adds_traffic_and_keeps_node_counts_and_time() {
        let mut total = traffic(1, 2);
        total.add(&traffic(10, 3));
        let mut want = traffic(11, 3);
        want.nodes_created = 1000;
        want.nodes_alive = 900;
        want.now = Instant::from_millis(15);
        // The third kind came only from the other summary.
        want.per_kind[2] = (30, 3000);
        assert_eq!(total, want);
        // A shorter list added to a longer one keeps the longer one's tail.
        let mut long = traffic(1, 3);
        long.add(&traffic(1, 1));
        assert_eq!(long.per_kind, [(2, 200), (2, 200), (3, 300)]);
    }

    #[test]
    fn network_summary_prints_every_counter() {
        let mut summary = traffic(1, MessageKind::COUNT + 1);
        summary.per_kind[1] = (0, 0);
        let text = summary.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "nodes           : 900 alive, 1000 created, 1 crashed, 2 left"
        );
        assert_eq!(
            lines[1],
            "datagrams       : 3 sent, 5 delivered, 6 lost (slow), 7 refused (fast), 8 to dead nodes"
        );
        assert_eq!(lines[2], "bytes on wire   : 4 (1.3 per datagram)");
        assert_eq!(
            lines[3],
            "exchanges       : 9 successful, 10 failed, 11 datagrams rejected"
        );
        assert!(
            lines[4].starts_with("by type         : Ping 1 (100 B), FindNode 3 (300 B), "),
            "a kind with no datagram is left out: {}",
            lines[4]
        );
        let unknown = MessageKind::COUNT + 1;
        assert!(
            lines[4].ends_with(&format!(
                ", type {} {unknown} ({} B)",
                MessageKind::COUNT,
                unknown * 100
            )),
            "{}",
            lines[4]
        );
        assert_eq!(
            lines[5],
            "contacts removed: 12 dead, 13 alive (false positives)"
        );
        assert_eq!(lines[6], "virtual time    : 0.0 s (14 timers fired)");
        assert_eq!(lines.len(), 7);
        let idle = NetSummary::default().to_string();
        assert!(
            idle.contains("bytes on wire   : 0 (0.0 per datagram)"),
            "{idle}"
        );
    }

    #[test]
    fn operation_summary_counts_failures_and_exact_answers() {
        let record = |finished: Option<u64>, success: bool, accuracy: Option<f64>, rounds: u16| {
            let mut r = OpRecord::new(OpKind::FindNode, 1, Key::ZERO, Instant::from_millis(100));
            r.finished = finished.map(Instant::from_millis);
            r.success = success;
            r.accuracy = accuracy;
            r.stats.rounds = rounds;
            r.stats.requests = rounds * 3;
            r.stats.timeouts = rounds - 1;
            r
        };
        let records = [
            record(Some(300), true, Some(1.0), 2),
            record(Some(500), true, Some(0.5), 4),
            record(None, false, None, 9),
            record(Some(200), false, Some(1.0), 6),
            record(Some(150), true, Some(1.0), 1),
        ];
        let summary = OpSummary::of(&records);
        assert_eq!((summary.count, summary.failed, summary.exact), (5, 2, 3));
        // The record that never finished counts in no distribution but accuracy's.
        assert_eq!(summary.latency_ms, Dist::of([200.0, 400.0, 100.0, 50.0]));
        assert_eq!(summary.hops, Dist::of([2.0, 4.0, 6.0, 1.0]));
        assert_eq!(summary.requests, Dist::of([6.0, 12.0, 18.0, 3.0]));
        assert_eq!(summary.timeouts, Dist::of([1.0, 3.0, 5.0, 0.0]));
        assert_eq!(summary.accuracy, Dist::of([1.0, 0.5, 1.0, 1.0]));
        assert_eq!(records[0].latency_ms(), Some(200));
        assert_eq!(records[2].latency_ms(), None);
    }
}
