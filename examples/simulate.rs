//! The microkad simulator on the command line: build a network of real nodes
//! (from global knowledge or through the protocol's own bootstrap), then run
//! lookups, provide values and retrieve them, with loss, delay and churn, and
//! print a py-dht-style benchmark summary.
//!
//! ```text
//! cargo run --release --features sim --example simulate
//! cargo run --release --features sim --example simulate -- --k 20 --nodes 2000 --alpha 1
//! cargo run --release --features sim --example simulate -- --init protocol --nodes 100000 --lookups 10000
//! cargo run --release --features sim --example simulate -- --help
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant as WallClock;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use microkad::config::Maintenance;
use microkad::sim::{
    Churn, NetSummary, OpKind, OpRecord, OpSummary, Progress, SimConfig, Simulator,
};
use microkad::{Config, Duration, LookupEnd, MemoryStore, Store};

/// How the routing tables are filled before the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Init {
    /// From global knowledge: each bucket gets the k closest nodes in its range.
    Global,
    /// Through the protocol: every node joins through seeds, no global knowledge.
    Protocol,
}

/// How nodes keep their tables and records current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// None (like py-dht): tables change only through traffic.
    Off,
    /// Classic Kademlia: bucket refresh and record republish timers.
    Periodic,
    /// Periodic, plus down-lists (dead contacts reported to who gave them).
    DownList,
    /// MaidSafe managed connections: keepalives every γ, dead after δ misses.
    Managed,
}

/// How lookups end and what they report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum End {
    /// Kademlia: a final sweep asks every unasked one of the b closest;
    /// only contacts that answered are reported.
    Verified,
    /// py-dht's `lookup_for_hash`: stop after `--step-to-stop` answers in a
    /// row without a closer contact; report the b closest heard of.
    Unverified,
}

/// The node's compile-time capacities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Profile {
    /// The library's defaults: 20 buckets, 3 lookups at once, 12 candidates
    /// (2k for k > 4), a store of 32 records of up to 64 bytes.
    Standard,
    /// For a million nodes: 20 buckets, 1 lookup at once, 8 candidates (2k
    /// for k > 4), a store of 4 records of up to 32 bytes. k up to 8.
    Compact,
}

/// Simulate a microkad (Kademlia) network of real nodes on a virtual clock.
#[derive(Parser, Debug, Clone)]
#[command(version, about, long_about = None)]
struct Args {
    /// Nodes in the network.
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Bucket size k (one of 2, 3, 4, 8, 16, 20).
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// α: concurrent requests per lookup (py-dht's `a`).
    #[arg(long, default_value_t = 3)]
    alpha: u8,
    /// β: answers a round waits for (default: α).
    #[arg(long)]
    beta: Option<u8>,
    /// b: contacts a reply carries and a lookup returns (default: k).
    #[arg(long)]
    b: Option<u8>,
    /// Rounds without a closer node before a lookup stops (py-dht's
    /// `steptostop`; answers, not rounds, with `--lookup-end unverified`).
    #[arg(long, default_value_t = 3)]
    step_to_stop: u8,
    /// How lookups end and which contacts they report.
    #[arg(long, value_enum, default_value_t = End::Verified)]
    lookup_end: End,
    /// Nodes a value is stored on (default: b).
    #[arg(long)]
    replicas: Option<u8>,
    /// Lookups (find_node of random keys from random nodes).
    #[arg(long, default_value_t = 1_000)]
    lookups: usize,
    /// Values provided (put) and then retrieved (get).
    #[arg(long, default_value_t = 1_000)]
    values: usize,
    /// Length of each value in bytes.
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    /// Virtual milliseconds between the starts of two operations.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// How routing tables are filled.
    #[arg(long, value_enum, default_value_t = Init::Global)]
    init: Init,
    /// With --init protocol: nodes joining at once (a wave starts when the last ended).
    #[arg(long, default_value_t = 1)]
    wave: usize,
    /// Seeds each joining node is given (random nodes already in).
    #[arg(long, default_value_t = 1)]
    join_seeds: usize,
    /// Probability that a datagram fails (py-dht's error rate, per datagram).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Share of failures that are fast (refused at once, like an ICMP port
    /// unreachable); the rest are slow (silently lost, found by timeout).
    #[arg(long, default_value_t = 0.0)]
    fast_share: f64,
    /// Shortest one-way delay, ms.
    #[arg(long, default_value_t = 10)]
    delay_min: u64,
    /// Longest one-way delay, ms (uniform per datagram).
    #[arg(long, default_value_t = 100)]
    delay_max: u64,
    /// Time to wait for one answer, ms.
    #[arg(long, default_value_t = 2_000)]
    request_timeout: u64,
    /// Deadline of a whole lookup, ms.
    #[arg(long, default_value_t = 30_000)]
    lookup_timeout: u64,
    /// Unanswered requests in a row before a contact is dropped.
    #[arg(long, default_value_t = 2)]
    max_failures: u8,
    /// Ping-before-evict checks a full bucket's oldest contact only after it
    /// has been silent this long, s (0: on every arrival).
    #[arg(long, default_value_t = 900)]
    ping_oldest_after: u64,
    /// Crashes per virtual second (during lookups, provides and retrieves).
    #[arg(long, default_value_t = 0.0)]
    crash_rate: f64,
    /// Graceful leaves (a LEAVE to every contact) per virtual second.
    #[arg(long, default_value_t = 0.0)]
    leave_rate: f64,
    /// Joins per virtual second.
    #[arg(long, default_value_t = 0.0)]
    join_rate: f64,
    /// Background maintenance of tables and records.
    #[arg(long, value_enum, default_value_t = Mode::Off)]
    maintenance: Mode,
    /// Managed mode: γ, the keepalive interval, ms.
    #[arg(long, default_value_t = 2_000)]
    keepalive: u64,
    /// Managed mode: δ, unanswered keepalives in a row that declare a contact dead.
    #[arg(long, default_value_t = 3)]
    max_missed: u8,
    /// Periodic and down-list modes: bucket refresh interval, s.
    #[arg(long, default_value_t = 3_600)]
    refresh: u64,
    /// Periodic and down-list modes: record republish interval, s.
    #[arg(long, default_value_t = 3_600)]
    republish: u64,
    /// Network id (py-dht's networkid).
    #[arg(long, default_value_t = 1)]
    network_id: u32,
    /// Seed of the whole run: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Node capacities.
    #[arg(long, value_enum, default_value_t = Profile::Standard)]
    profile: Profile,
    /// Write one CSV row per operation (lookups, puts, gets, joins) to this file.
    #[arg(long)]
    csv: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Shares of the nodes run in parallel (default: one per thread). The
    /// results do not depend on it, only the speed.
    #[arg(long, default_value_t = 0)]
    partitions: usize,
    /// Never draw progress bars.
    #[arg(long)]
    no_progress: bool,
    /// The experiment: the default one (lookups, provide, retrieve), or the
    /// maintenance modes side by side under churn (issue 6; there --nodes
    /// defaults to 1 000, --keepalive to 60 000 and --values to 200).
    #[arg(long, value_enum, default_value_t = Scenario::Default)]
    scenario: Scenario,
    /// --scenario churn: the modes to compare, on the same network.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Mode::Periodic, Mode::DownList, Mode::Managed])]
    modes: Vec<Mode>,
    /// --scenario churn: simulated hours of churn.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// --scenario churn: share of the nodes replaced per simulated hour (half
    /// crash, half leave; as many join).
    #[arg(long, default_value_t = 0.10)]
    replaced: f64,
    /// --scenario churn: lookups per simulated minute (alternately of a
    /// random key and of a live node's id).
    #[arg(long, default_value_t = 4)]
    lookups_per_min: u32,
    /// --scenario churn: simulated minutes between two counts of stale
    /// routing-table entries.
    #[arg(long, default_value_t = 10)]
    sample_min: u64,
}

/// Which experiment to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Lookups, then provide, then retrieve.
    Default,
    /// The maintenance modes under churn, side by side.
    Churn,
}

/// A progress bar that appears only once its phase has run for a second.
struct PhaseBar {
    bar: ProgressBar,
    start: WallClock,
    shown: AtomicBool,
    enabled: bool,
}

impl PhaseBar {
    fn new(name: &str, enabled: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta})",
            )
            .expect("valid template"),
        );
        bar.set_message(name.to_string());
        PhaseBar {
            bar,
            start: WallClock::now(),
            shown: AtomicBool::new(false),
            enabled,
        }
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for PhaseBar {
    fn update(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        if self.enabled
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed().as_secs_f64() > 1.0
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
}

/// The simulator's nodes are tens of megabytes to gigabytes of state,
/// touched in random order. mimalloc backs its arenas with transparent huge
/// pages, so one page fault and one TLB entry cover 2 MiB of nodes instead
/// of 4 KiB: global initialisation of 10 000 nodes at k = 20 takes about
/// 30 % less time, lookups 10 to 15 % less, and the 11 192-byte compact
/// node costs 12 288 bytes (docs/SIMULATOR.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let mut args =
        <Args as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if args.scenario == Scenario::Churn {
        let given =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        if !given("nodes") {
            args.nodes = 1_000;
        }
        if !given("keepalive") {
            args.keepalive = 60_000;
        }
        if !given("values") {
            args.values = 200;
        }
    }
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .expect("thread pool");
    }
    if args.scenario == Scenario::Churn {
        let ok = match args.k {
            2 => churn::<MemoryStore<32, 64>, 2, 20, 3, 12, 2>(&args),
            3 => churn::<MemoryStore<32, 64>, 3, 20, 3, 12, 3>(&args),
            4 => churn::<MemoryStore<32, 64>, 4, 20, 3, 12, 4>(&args),
            8 => churn::<MemoryStore<32, 64>, 8, 20, 3, 16, 8>(&args),
            k => {
                eprintln!("unsupported k = {k} for --scenario churn: use 2, 3, 4 or 8");
                false
            }
        };
        std::process::exit(if ok { 0 } else { 2 });
    }
    use Profile::*;
    let ok = match (args.profile, args.k) {
        (Standard, 2) => run::<MemoryStore<32, 64>, 2, 20, 3, 12>(&args),
        (Standard, 3) => run::<MemoryStore<32, 64>, 3, 20, 3, 12>(&args),
        (Standard, 4) => run::<MemoryStore<32, 64>, 4, 20, 3, 12>(&args),
        (Standard, 8) => run::<MemoryStore<32, 64>, 8, 20, 3, 16>(&args),
        (Standard, 16) => run::<MemoryStore<32, 64>, 16, 20, 3, 32>(&args),
        (Standard, 20) => run::<MemoryStore<32, 64>, 20, 20, 3, 40>(&args),
        (Compact, 2) => run::<MemoryStore<4, 32>, 2, 20, 1, 8>(&args),
        (Compact, 3) => run::<MemoryStore<4, 32>, 3, 20, 1, 8>(&args),
        (Compact, 4) => run::<MemoryStore<4, 32>, 4, 20, 1, 8>(&args),
        (Compact, 8) => run::<MemoryStore<4, 32>, 8, 20, 1, 16>(&args),
        (p, k) => {
            eprintln!(
                "unsupported k = {k} for the {p:?} profile: use 2, 3, 4, 8 (compact), or 16, 20 (standard)"
            );
            false
        }
    };
    if !ok {
        std::process::exit(2);
    }
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn print_phase(name: &str, wall: f64, records: &[OpRecord]) {
    let s = OpSummary::of(records);
    println!("-- phase: {name} --");
    println!("rounds          : {}", s.count);
    println!("failed rounds   : {}", s.failed);
    println!(
        "wall time (s)   : {wall:.4} ({:.2} us per op)",
        wall * 1e6 / s.count.max(1) as f64
    );
    if s.count == 0 {
        return;
    }
    println!("latency (ms)    : {:.1}", s.latency_ms);
    println!("hops            : {:.2}", s.hops);
    println!("requests        : {:.2}", s.requests);
    println!("timeouts        : {:.2}", s.timeouts);
    if s.accuracy.count > 0 {
        println!(
            "accuracy        : {:.3}  (exactly 1 in {}/{})",
            s.accuracy, s.exact, s.accuracy.count
        );
    }
}

/// The nodes' protocol parameters from the command line, in maintenance `mode`.
fn node_config(args: &Args, mode: Mode, closest: u8, replicas: u8) -> Config {
    let refresh_interval = Duration::from_secs(args.refresh);
    let republish_interval = Duration::from_secs(args.republish);
    Config {
        network_id: args.network_id,
        alpha: args.alpha.max(1),
        beta: args.beta.unwrap_or(args.alpha).max(1),
        closest,
        step_to_stop: args.step_to_stop,
        lookup_end: match args.lookup_end {
            End::Verified => LookupEnd::Verified,
            End::Unverified => LookupEnd::Unverified,
        },
        request_timeout: Duration::from_millis(args.request_timeout),
        lookup_timeout: Duration::from_millis(args.lookup_timeout),
        replicas,
        max_failures: args.max_failures,
        ping_oldest_after: Duration::from_secs(args.ping_oldest_after),
        maintenance: match mode {
            Mode::Off => Maintenance::Off,
            Mode::Periodic => Maintenance::Periodic {
                refresh_interval,
                republish_interval,
            },
            Mode::DownList => Maintenance::DownList {
                refresh_interval,
                republish_interval,
            },
            Mode::Managed => Maintenance::Managed {
                keepalive_interval: Duration::from_millis(args.keepalive),
                max_missed: args.max_missed,
            },
        },
        ..Config::default()
    }
}

/// The network's parameters from the command line (churn is set later).
fn sim_config(args: &Args, node: Config) -> SimConfig {
    SimConfig {
        seed: args.seed,
        node,
        loss: args.loss,
        fast_share: args.fast_share,
        delay_min: args.delay_min,
        delay_max: args.delay_max.max(args.delay_min),
        churn: Churn::default(),
        join_seeds: args.join_seeds,
        partitions: args.partitions,
    }
}

fn run<S, const K: usize, const B: usize, const L: usize, const C: usize>(args: &Args) -> bool
where
    S: Store + Default + Send,
{
    let b = args.b.unwrap_or(K as u8).clamp(1, K as u8);
    let node = node_config(args, args.maintenance, b, args.replicas.unwrap_or(b));
    let cfg = sim_config(args, node);
    let churn = Churn {
        crash_per_sec: args.crash_rate,
        leave_per_sec: args.leave_rate,
        join_per_sec: args.join_rate,
    };
    println!(
        "microkad simulator: {} nodes, k={K}, alpha={}, beta={}, b={b}, init={:?}, loss={}% ({}% of it fast), delay {}-{} ms, seed {}",
        args.nodes,
        cfg.node.alpha,
        cfg.node.beta,
        args.init,
        args.loss * 100.0,
        args.fast_share * 100.0,
        cfg.delay_min,
        cfg.delay_max,
        args.seed
    );
    let node_size = Simulator::<S, K, B, L, C>::node_size();
    println!(
        "node            : {node_size} bytes (K={K}, B={B}, L={L}, C={C}, store {}), profile {:?}",
        std::any::type_name::<S>()
            .rsplit("::")
            .next()
            .unwrap_or("?"),
        args.profile
    );
    let progress = !args.no_progress;
    let mut sim = Simulator::<S, K, B, L, C>::new(cfg);

    // Phase 1: build the network.
    let bar = PhaseBar::new("init", progress);
    let t = WallClock::now();
    match args.init {
        Init::Global => sim.init_global(args.nodes, &bar),
        Init::Protocol => sim.init_protocol(args.nodes, args.wave, &bar),
    }
    let init_wall = t.elapsed().as_secs_f64();
    bar.finish();
    println!();
    match args.init {
        Init::Global => {
            println!("-- phase: init (global knowledge) --");
            println!("nodes           : {}", sim.live_count());
            println!("wall time (s)   : {init_wall:.4}");
        }
        Init::Protocol => {
            let joins: Vec<OpRecord> = sim
                .ops()
                .iter()
                .filter(|r| r.kind == OpKind::Join)
                .cloned()
                .collect();
            print_phase("init (bootstrap through the protocol)", init_wall, &joins);
            println!(
                "table size      : {:.1}",
                microkad::sim::Dist::of(joins.iter().map(|r| r.returned as f64))
            );
        }
    }
    let after_init: NetSummary = sim.summary();
    if churn.is_active() {
        sim.set_churn(churn);
    }
    let interval = Duration::from_millis(args.interval);

    // Phase 2: lookups.
    let bar = PhaseBar::new("lookups", progress);
    let t = WallClock::now();
    let lookups = sim.plan_lookups(args.lookups, interval);
    sim.run_until_done(&bar);
    let wall = t.elapsed().as_secs_f64();
    bar.finish();
    print_phase("lookups (find_node)", wall, &sim.ops()[lookups]);

    // Phase 3: provide.
    let bar = PhaseBar::new("provide", progress);
    let t = WallClock::now();
    let first = sim.ops().len();
    let keys = sim.plan_puts(args.values, args.value_size, interval);
    sim.run_until_done(&bar);
    let wall = t.elapsed().as_secs_f64();
    bar.finish();
    // Churn may have scheduled joins meanwhile: the puts are the first ones.
    let puts = first..first + keys.len();
    print_phase("provide (put)", wall, &sim.ops()[puts.clone()]);
    let stored = microkad::sim::Dist::of(sim.ops()[puts].iter().map(|r| r.returned as f64));
    if stored.count > 0 {
        println!("replicas stored : {stored:.2}");
    }

    // Phase 4: retrieve.
    let bar = PhaseBar::new("retrieve", progress);
    let t = WallClock::now();
    let gets = sim.plan_gets(&keys, interval);
    sim.run_until_done(&bar);
    let wall = t.elapsed().as_secs_f64();
    bar.finish();
    print_phase("retrieve (get)", wall, &sim.ops()[gets]);

    let summary = sim.summary();
    println!("-- network --");
    println!("{summary}");
    if args.init == Init::Protocol {
        println!(
            "of which init   : {} datagrams, {} bytes",
            after_init.sent, after_init.bytes_sent
        );
    }
    if let Some(rss) = peak_rss_bytes() {
        println!(
            "peak memory     : {:.1} MiB (VmHWM), {:.0} bytes per created node",
            rss as f64 / (1 << 20) as f64,
            rss as f64 / sim.node_count().max(1) as f64
        );
    }
    if let Some(path) = &args.csv {
        let result = File::create(path).and_then(|f| {
            let mut w = BufWriter::new(f);
            microkad::sim::write_csv(sim.ops(), &mut w)?;
            w.flush()
        });
        match result {
            Ok(()) => println!(
                "csv             : {} rows written to {path}",
                sim.ops().len()
            ),
            Err(e) => {
                eprintln!("cannot write {path}: {e}");
                return false;
            }
        }
    }
    true
}

/// `--scenario churn`: each mode of `args.modes` on the same network (same
/// seed), under the same churn; managed nodes have `I = K` incoming contacts
/// per bucket (the paper's 2k), the others classic buckets (`I = 0`).
fn churn<S, const K: usize, const B: usize, const L: usize, const C: usize, const I: usize>(
    args: &Args,
) -> bool
where
    S: Store + Default + Send,
{
    use microkad::sim::{ChurnReport, ChurnScenario, run_churn};
    let b = args.b.unwrap_or(K as u8).clamp(1, K as u8);
    let replicas = args.replicas.unwrap_or(2 * K as u8);
    let scenario = ChurnScenario {
        nodes: args.nodes,
        duration: Duration::from_millis((args.hours * 3_600_000.0).round() as u64),
        replaced_per_hour: args.replaced,
        values: args.values,
        value_len: args.value_size,
        lookups_per_min: args.lookups_per_min,
        sample_every: Duration::from_secs(args.sample_min.max(1) * 60),
    };
    println!(
        "microkad churn scenario: {} nodes (global init), k={K}, alpha={}, b={b}, replicas={replicas}, delay {}-{} ms, loss {}%, seed {}",
        args.nodes,
        args.alpha,
        args.delay_min,
        args.delay_max.max(args.delay_min),
        args.loss * 100.0,
        args.seed
    );
    println!(
        "churn           : {} simulated hours, {}% of the nodes replaced per hour (half crash, half leave; as many join through {} seed(s)); {} values of {} B put before, got after; {} lookups per minute; tables counted every {} min",
        args.hours,
        args.replaced * 100.0,
        args.join_seeds,
        args.values,
        args.value_size,
        args.lookups_per_min,
        args.sample_min
    );
    println!(
        "modes           : periodic/down-list refresh {} s, republish {} s, I=0; managed gamma={} ms, delta={}, I={I}; request timeout {} ms, max failures {}",
        args.refresh,
        args.republish,
        args.keepalive,
        args.max_missed,
        args.request_timeout,
        args.max_failures
    );
    let mut rows = Vec::new();
    for &mode in &args.modes {
        let cfg = sim_config(args, node_config(args, mode, b, replicas));
        let name = format!("{mode:?}").to_lowercase();
        let bar = PhaseBar::new(&name, !args.no_progress);
        let report = if mode == Mode::Managed {
            run_churn::<S, K, B, L, C, I>(cfg, &scenario, &bar)
        } else {
            run_churn::<S, K, B, L, C, 0>(cfg, &scenario, &bar)
        };
        bar.finish();
        println!("{}", report.details(&name));
        rows.push((name, report));
    }
    println!();
    println!("{}", ChurnReport::header());
    for (name, r) in &rows {
        println!("{}", r.row(name, K));
    }
    println!(
        "alive: share of routing-table entries naming a live node (mean of the counts), x/k the same times k; crash/leave: seconds from the departure to its removal from each table that held it (mean/p90); nearest: lookups of random keys that returned the nearest live node; target: lookups of live ids that found the node; values: gets that found the value after the churn; stale: dead entries at the end; B/ns: bytes per live node per second during the churn: live = PING, PONG, REFUSED, LEAVE, DOWN; rfsh = FIND_NODE + NODES beyond the scenario's lookups and joins (estimated); recs = STORE, STORE_ACK, GIVE_VALUE; mnt = their sum; all = every byte; PP B/es = PING + PONG bytes per table entry per second"
    );
    true
}
