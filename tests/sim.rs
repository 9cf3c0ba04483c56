//! The simulator: reproducibility, accuracy on a static network, loss, and
//! churn.
#![cfg(feature = "sim")]

use microkad::sim::{
    Churn, NetSummary, Op, OpError, OpKind, OpRecord, SimConfig, Simulator, write_csv,
};
use microkad::wire::MessageKind;
use microkad::{Config, Duration, Instant, LookupEnd, MemoryStore, config::Maintenance};

type Sim = Simulator<MemoryStore<16, 64>, 4, 20, 3, 12>;

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        node: Config {
            network_id: 9,
            closest: 4,
            replicas: 4,
            maintenance: Maintenance::Off,
            ..Config::default()
        },
        ..SimConfig::default()
    }
}

fn csv(records: &[OpRecord]) -> String {
    let mut out = Vec::new();
    write_csv(records, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// A run with everything random switched on: loss of both kinds, delays,
/// churn, lookups, puts and gets.
fn busy_run(seed: u64) -> (String, NetSummary) {
    busy_run_in(seed, 0, 150, 20)
}

/// `busy_run` with the nodes split into `partitions` shares, delays up to
/// `delay_max` ms and an operation every `interval` ms.
fn busy_run_in(
    seed: u64,
    partitions: usize,
    delay_max: u64,
    interval: u64,
) -> (String, NetSummary) {
    let mut cfg = config(seed);
    cfg.partitions = partitions;
    cfg.loss = 0.1;
    cfg.fast_share = 0.5;
    cfg.delay_min = 5;
    cfg.delay_max = delay_max;
    cfg.join_seeds = 2;
    let mut sim = Sim::new(cfg);
    sim.init_global(400, &());
    // Joins in waves: many finish in the same window, and the order in
    // which they enter the set of live nodes decides later random picks.
    sim.init_protocol(61, 20, &());
    sim.set_churn(Churn {
        crash_per_sec: 2.0,
        leave_per_sec: 1.0,
        join_per_sec: 2.0,
    });
    let interval = Duration::from_millis(interval);
    sim.plan_lookups(150, interval);
    sim.run_until_done(&());
    let keys = sim.plan_puts(50, 40, interval);
    sim.run_until_done(&());
    sim.plan_gets(&keys, interval);
    sim.run_until_done(&());
    (csv(sim.ops()), sim.summary())
}

#[test]
fn same_seed_same_run_bit_for_bit() {
    let (csv_a, sum_a) = busy_run(7);
    let (csv_b, sum_b) = busy_run(7);
    assert_eq!(sum_a, sum_b);
    assert_eq!(csv_a, csv_b);
    // The run really was busy, and another seed gives another run.
    assert!(sum_a.lost > 0 && sum_a.refused > 0, "{sum_a}");
    // Datagrams reached crashed nodes, and node timers fired.
    assert!(sum_a.to_dead > 0 && sum_a.timers > 0, "{sum_a}");
    assert!(
        sum_a.crashed > 0 && sum_a.left > 0 && sum_a.nodes_created > 400,
        "{sum_a}"
    );
    assert!(csv_a.lines().count() > 250);
    let (csv_c, _) = busy_run(8);
    assert_ne!(csv_a, csv_c);
}

#[test]
fn partitions_change_nothing_but_speed() {
    // Short delays and many operations at once: nodes often receive
    // several datagrams in the same millisecond, whose order must not
    // depend on which partition sent them.
    let (csv_one, sum_one) = busy_run_in(7, 1, 8, 1);
    for partitions in [2, 3, 5] {
        let (csv, sum) = busy_run_in(7, partitions, 8, 1);
        assert_eq!(sum, sum_one, "{partitions} partitions");
        assert_eq!(csv, csv_one, "{partitions} partitions");
    }
}

#[test]
fn static_network_lookups_are_exact() {
    let mut sim = Sim::new(config(1));
    sim.init_global(3_000, &());
    let lookups = sim.plan_lookups(300, Duration::from_millis(5));
    sim.run_until_done(&());
    for r in &sim.ops()[lookups] {
        assert_eq!(r.accuracy, Some(1.0), "{r:?}");
        assert!(r.success && r.error.is_none() && r.stats.timeouts == 0);
    }
    let keys = sim.plan_puts(100, 32, Duration::from_millis(5));
    sim.run_until_done(&());
    let puts: Vec<OpRecord> = sim.ops()[sim.ops().len() - 100..].to_vec();
    for r in &puts {
        assert_eq!(r.kind, OpKind::Put);
        // The value sits on exactly the true 4 closest nodes.
        assert_eq!((r.returned, r.accuracy), (4, Some(1.0)), "{r:?}");
    }
    let gets = sim.plan_gets(&keys, Duration::from_millis(5));
    sim.run_until_done(&());
    assert!(sim.ops()[gets].iter().all(|r| r.success));
    // Let the answers that arrive after their lookup ended land too.
    sim.run_until(sim.now() + Duration::from_secs(60));
    let s = sim.summary();
    assert_eq!(
        (s.lost, s.refused, s.to_dead, s.exchanges_failed),
        (0, 0, 0, 0)
    );
    assert_eq!(s.sent, s.delivered);
    let (datagrams, bytes) = s
        .per_kind
        .iter()
        .fold((0, 0), |(n, b), &(kn, kb)| (n + kn, b + kb));
    assert_eq!((datagrams, bytes), (s.sent, s.bytes_sent));
    assert!(s.bytes_sent > 40 * s.sent, "{s}");
    // The per-type counts read each datagram's type byte: every request was
    // answered, and every answer matched its request (none came late here).
    let sent = |kind: MessageKind| s.per_kind.get(kind as usize).map_or(0, |c| c.0);
    assert!(sent(MessageKind::FindNode) > 300 * 4);
    assert_eq!(
        sent(MessageKind::FindNode) + sent(MessageKind::FindValue),
        sent(MessageKind::Nodes) + sent(MessageKind::Value)
    );
    assert_eq!(sent(MessageKind::Store), sent(MessageKind::StoreAck));
    assert_eq!(
        sent(MessageKind::Ping),
        sent(MessageKind::Pong) + sent(MessageKind::Refused)
    );
    let answers: u64 = MessageKind::ALL
        .iter()
        .filter(|k| k.is_response())
        .map(|&k| sent(k))
        .sum();
    assert_eq!(s.exchanges_ok + s.rejected, answers);
}

#[test]
fn a_network_built_through_the_protocol_finds_its_nodes() {
    let mut cfg = config(3);
    cfg.join_seeds = 2;
    let mut sim = Sim::new(cfg);
    sim.init_protocol(400, 4, &());
    assert_eq!(sim.live_count(), 400);
    assert!(
        sim.ops()
            .iter()
            .all(|r| r.kind == OpKind::Join && r.success)
    );
    let lookups = sim.plan_lookups(200, Duration::from_millis(5));
    sim.run_until_done(&());
    let records = &sim.ops()[lookups];
    let mean = records.iter().map(|r| r.accuracy.unwrap()).sum::<f64>() / 200.0;
    assert!(mean > 0.97, "mean accuracy {mean}");
}

/// Mean virtual latency of 200 lookups at 30 % loss.
fn latency_at_loss(fast_share: f64) -> f64 {
    let mut cfg = config(4);
    cfg.loss = 0.3;
    cfg.fast_share = fast_share;
    let mut sim = Sim::new(cfg);
    sim.init_global(1_000, &());
    let lookups = sim.plan_lookups(200, Duration::from_millis(5));
    sim.run_until_done(&());
    let records = &sim.ops()[lookups];
    assert!(records.iter().all(|r| r.finished.is_some()));
    records
        .iter()
        .map(|r| r.latency_ms().unwrap() as f64)
        .sum::<f64>()
        / 200.0
}

#[test]
fn fast_failures_fail_at_once_slow_ones_time_out() {
    let fast = latency_at_loss(1.0);
    let slow = latency_at_loss(0.0);
    // A refused request fails on the spot; a lost one costs request_timeout.
    // Only lost requests can be refused (a lost answer still times out), so
    // the gain is about half the waiting.
    assert!(fast < 0.75 * slow, "fast {fast} ms, slow {slow} ms");
}

/// Rounds of lookups aimed at 50 crashed nodes of 2 000: per round, the dead
/// contacts left in tables before it, its timeouts and its mean accuracy.
fn lookups_at_crashed_nodes(maintenance: Maintenance, rounds: usize) -> Vec<(usize, u32, f64)> {
    let mut cfg = config(5);
    cfg.node.maintenance = maintenance;
    let mut sim = Sim::new(cfg);
    sim.init_global(2_000, &());
    let crashed: Vec<u32> = (0..2_000).step_by(40).collect();
    for &a in &crashed {
        sim.crash(a);
    }
    assert_eq!(sim.live_count(), 1_950);
    // Lookups of the dead nodes' own ids, from random live nodes: the paths
    // that lead to them most often.
    let mut out = Vec::new();
    for _ in 0..rounds {
        let stale = sim.stale_contacts();
        let first = sim.ops().len();
        for (i, &a) in crashed.iter().enumerate() {
            for j in 0..4 {
                let at = sim.now() + Duration::from_millis((i * 4 + j) as u64 * 5);
                let target = sim.id_of(a);
                sim.schedule(at, Op::FindNode { node: None, target });
            }
        }
        sim.run_until_done(&());
        // Let the checks that down-reports trigger finish.
        sim.run_until(sim.now() + Duration::from_secs(5));
        let ops = &sim.ops()[first..];
        for r in ops {
            // A lookup returns only nodes that answered it: never a dead one.
            assert!(r.success && r.dead_returned == 0, "{r:?}");
        }
        let timeouts: u32 = ops.iter().map(|o| o.stats.timeouts as u32).sum();
        let accuracy = ops.iter().map(|o| o.accuracy.unwrap()).sum::<f64>() / ops.len() as f64;
        out.push((stale, timeouts, accuracy));
    }
    let s = sim.summary();
    // No loss: only dead contacts were ever removed.
    assert!(s.removed.1 == 0, "{s}");
    out
}

#[test]
fn crashed_nodes_stop_being_returned_once_noticed() {
    // Down-lists: a node that finds a contact dead tells the node that gave
    // it that contact, which checks and drops it. With maintenance off, a
    // node that only hands a dead contact out never learns it is dead.
    let quiet = Duration::from_secs(100_000);
    let down = lookups_at_crashed_nodes(
        Maintenance::DownList {
            refresh_interval: quiet,
            republish_interval: quiet,
        },
        4,
    );
    let off = lookups_at_crashed_nodes(Maintenance::Off, 4);
    // The same network and crashes, so the same dead contacts at the start.
    assert_eq!(down[0].0, off[0].0);
    // With down-lists the network noticed: fewer dead contacts in tables
    // after every round, so fewer requests went to dead nodes.
    for w in down.windows(2) {
        assert!(w[1].0 < w[0].0, "{down:?}");
    }
    let (first, last) = (down[0], down[down.len() - 1]);
    assert!(last.1 < first.1, "{down:?}");
    // Without them, far fewer dead contacts went away.
    let purged = |r: &[(usize, u32, f64)]| r[0].0 - r[r.len() - 1].0;
    assert!(purged(&down) > 2 * purged(&off), "{down:?} {off:?}");
    // Accuracy is measured against the live nodes only.
    assert!(first.2 > 0.9 && last.2 >= first.2, "{down:?}");
}

#[test]
fn managed_connections_purge_crashed_nodes_from_every_table() {
    let mut cfg = config(6);
    cfg.node.maintenance = Maintenance::Managed {
        keepalive_interval: Duration::from_secs(2),
        max_missed: 3,
    };
    let mut sim = Sim::new(cfg);
    sim.init_global(300, &());
    for a in (0..300).step_by(15) {
        sim.crash(a);
    }
    // Crashing a dead node again, or an address never created, does nothing.
    sim.crash(15);
    sim.crash(300);
    sim.crash(u32::MAX);
    assert_eq!(sim.summary().crashed, 20);
    assert!(sim.stale_contacts() > 0);
    // Every contact is dead at most γ·δ = 6 s after it was last heard from.
    sim.run_until(sim.now() + Duration::from_secs(7));
    assert_eq!(sim.stale_contacts(), 0);
    let s = sim.summary();
    assert!(s.removed.0 > 0 && s.removed.1 == 0, "{s}");
    let lookups = sim.plan_lookups(100, Duration::from_millis(5));
    sim.run_until_done(&());
    for r in &sim.ops()[lookups] {
        assert_eq!((r.stats.timeouts, r.accuracy), (0, Some(1.0)), "{r:?}");
    }
}

/// py-dht's rule stops after `step_to_stop` answers without a closer
/// contact and reports the closest contacts it heard of: fewer requests than
/// Kademlia's verifying sweep, and on a static network the same answers.
#[test]
fn unverified_lookups_ask_less_and_still_find_the_closest() {
    let run = |end: LookupEnd| {
        let mut cfg = config(4);
        cfg.node.alpha = 1;
        cfg.node.beta = 1;
        cfg.node.lookup_end = end;
        (cfg.node.closest, cfg.node.replicas) = (8, 8);
        let mut sim = Simulator::<MemoryStore<16, 64>, 8, 20, 3, 16>::new(cfg);
        sim.init_global(2_000, &());
        let lookups = sim.plan_lookups(200, Duration::from_millis(5));
        sim.run_until_done(&());
        let keys = sim.plan_puts(50, 32, Duration::from_millis(5));
        sim.run_until_done(&());
        let puts = sim.ops().len() - 50..sim.ops().len();
        let gets = sim.plan_gets(&keys, Duration::from_millis(5));
        sim.run_until_done(&());
        let ops = sim.ops();
        let requests: u32 = ops[lookups.clone()]
            .iter()
            .map(|r| u32::from(r.stats.requests))
            .sum();
        let exact = ops[lookups]
            .iter()
            .filter(|r| r.accuracy == Some(1.0))
            .count();
        let stored_exactly = ops[puts]
            .iter()
            .filter(|r| (r.returned, r.accuracy) == (8, Some(1.0)))
            .count();
        let found = ops[gets].iter().filter(|r| r.success).count();
        (requests, exact, stored_exactly, found)
    };
    let (verified_requests, verified_exact, verified_stored, verified_found) =
        run(LookupEnd::Verified);
    let (requests, exact, stored, found) = run(LookupEnd::Unverified);
    eprintln!(
        "verified: {verified_requests} requests, {verified_exact} exact, {verified_stored} stored, {verified_found} found; unverified: {requests}, {exact}, {stored}, {found}"
    );
    assert!(
        requests * 10 < verified_requests * 7,
        "{requests} vs {verified_requests}"
    );
    assert!(verified_exact >= 195 && verified_stored >= 48 && verified_found == 50);
    assert!(
        exact >= 195 && stored >= 48 && found == 50,
        "{exact} {stored} {found}"
    );
}

/// A `find_node` is started in its node's partition when the next window
/// begins; a crash in between ends it as it ends one already running.
#[test]
fn a_crash_before_a_queued_start_ends_the_operation() {
    let mut sim = Sim::new(config(5));
    sim.init_global(200, &());
    let at = sim.now() + Duration::from_millis(10);
    let target = sim.id_of(7);
    let op = sim.schedule(
        at,
        Op::FindNode {
            node: Some(3),
            target,
        },
    );
    let other = sim.schedule(
        at,
        Op::FindNode {
            node: Some(4),
            target,
        },
    );
    sim.run_until(Instant::from_millis(at.as_millis() - 1));
    // Two steps: the two agenda entries (both starts queued, none run).
    assert!(sim.step() && sim.step());
    assert!(sim.ops()[op].finished.is_none());
    sim.crash(3);
    assert_eq!(sim.ops()[op].error, Some(OpError::NodeGone));
    sim.run_until_done(&());
    assert_eq!(sim.ops()[op].error, Some(OpError::NodeGone));
    assert!(sim.ops()[other].success, "{:?}", sim.ops()[other]);
}

#[test]
fn single_nodes_are_driven_through_the_public_api() {
    use microkad::Key;
    use microkad::sim::value_for;

    let mut sim = Sim::new(config(5));
    sim.init_global(200, &());
    // A node added by hand knows nobody until its join runs, but global
    // knowledge has it at once.
    let newcomer = sim.add_node();
    assert_eq!(newcomer, 200);
    assert!(sim.is_alive(newcomer));
    assert!(sim.node(newcomer).unwrap().routing_table().is_empty());
    assert_eq!(sim.true_closest(&sim.id_of(newcomer), 1), [newcomer]);
    let join = sim.schedule(sim.now(), Op::Join { node: newcomer });
    sim.run_until_done(&());
    let record = &sim.ops()[join];
    assert!(record.kind == OpKind::Join && record.success, "{record:?}");
    assert!(sim.node(newcomer).unwrap().routing_table().len() >= 4);

    // The true closest are the brute-force closest, closest first.
    let target = Key::hash(b"somewhere");
    let mut all: Vec<u32> = (0..=newcomer).collect();
    all.sort_by(|&a, &b| target.cmp_distance(&sim.id_of(a), &sim.id_of(b)));
    assert_eq!(sim.true_closest(&target, 6), all[..6]);
    sim.crash(all[0]);
    assert_eq!(
        sim.true_closest(&target, 5),
        all[1..6],
        "the dead are left out"
    );
    assert!(sim.node_mut(all[0]).is_none());
    assert!(sim.node_mut(newcomer + 1).is_none(), "never created");
    sim.flush(newcomer + 1);

    // A command given to a node directly enters the network at `flush`.
    let asker = all[150];
    let sent_before = sim.summary().sent;
    let now = sim.now();
    sim.node_mut(asker).unwrap().find_node(now, target).unwrap();
    assert_eq!(
        sim.summary().sent,
        sent_before,
        "nothing sent before the flush"
    );
    sim.flush(asker);
    assert_eq!(sim.summary().sent, sent_before + 3, "α = 3 requests");
    let heard_before = sim.node(asker).unwrap().metrics().datagrams_in;
    sim.run_until(now + Duration::from_secs(30));
    assert!(sim.node(asker).unwrap().metrics().datagrams_in >= heard_before + 3);

    // Values are derived from their keys.
    let key = Key([3; 32]);
    assert_eq!(value_for(&key, 40), [3; 40]);
    let counting: [u8; 32] = std::array::from_fn(|i| i as u8);
    let value = value_for(&Key(counting), 40);
    assert_eq!(value[..32], counting);
    assert_eq!(value[32..], counting[..8], "the key repeats");

    assert!(!Churn::default().is_active());
    for churn in [
        Churn {
            crash_per_sec: 0.1,
            ..Churn::default()
        },
        Churn {
            leave_per_sec: 0.1,
            ..Churn::default()
        },
        Churn {
            join_per_sec: 0.1,
            ..Churn::default()
        },
    ] {
        assert!(churn.is_active(), "{churn:?}");
    }
}

/// Each datagram draws its own loss and delay: the shares lost and refused
/// come out as configured, no node is cut off whole, and a request and its
/// answer take between twice the shortest and twice the longest delay.
#[test]
fn every_datagram_is_lost_or_delayed_on_its_own_draw() {
    let run = |loss: f64, delay: (u64, u64), end: LookupEnd| {
        let mut cfg = config(12);
        cfg.loss = loss;
        cfg.fast_share = 0.25;
        (cfg.delay_min, cfg.delay_max) = delay;
        cfg.node.alpha = 1;
        cfg.node.beta = 1;
        cfg.node.lookup_end = end;
        let mut sim = Sim::new(cfg);
        sim.init_global(1_000, &());
        let lookups = sim.plan_lookups(400, Duration::from_millis(5));
        sim.run_until_done(&());
        (sim.ops()[lookups].to_vec(), sim.summary())
    };

    // Verified lookups ask on until their candidates run out, so only a
    // node cut off whole would hear no answer at all.
    let (records, s) = run(0.3, (10, 100), LookupEnd::Verified);
    let failed = (s.lost + s.refused) as f64;
    let loss = failed / s.sent as f64;
    assert!(
        s.sent > 4_000 && (0.27..0.33).contains(&loss),
        "{loss} of {s}"
    );
    let fast = s.refused as f64 / failed;
    assert!(
        (0.20..0.30).contains(&fast),
        "{fast} of the failures refused"
    );
    // A node whose every datagram were lost would never hear an answer.
    let unanswered = records.iter().filter(|r| r.stats.responses == 0).count();
    assert!(unanswered <= 4, "{unanswered} of 400 lookups heard nothing");

    // (10, 11): both ends of the range are drawn, the longest included.
    for delay in [(40, 40), (10, 11), (10, 100)] {
        // One request at a time and no final sweep: a lookup's latency is
        // the sum of its round trips.
        let (records, s) = run(0.0, delay, LookupEnd::Unverified);
        assert_eq!(s.sent, s.delivered);
        let mut per_exchange = Vec::new();
        for r in &records {
            let latency = r.latency_ms().unwrap();
            let requests = u64::from(r.stats.requests);
            assert!(
                (2 * delay.0 * requests..=2 * delay.1 * requests).contains(&latency),
                "{delay:?}: {r:?}"
            );
            per_exchange.push(latency as f64 / requests as f64);
        }
        // Uniform delays: a round trip takes delay_min + delay_max on average.
        let mean = per_exchange.iter().sum::<f64>() / per_exchange.len() as f64;
        let expected = (delay.0 + delay.1) as f64;
        assert!(
            (mean - expected).abs() < 0.025 * expected,
            "{delay:?}: mean {mean}"
        );
    }
}

/// Operations started at the same moment on random nodes count the lookup
/// slots of the starts already queued for a node, so that each goes where a
/// slot is free instead of failing `Busy` when its window begins.
#[test]
fn simultaneous_operations_spread_over_free_lookup_slots() {
    use microkad::CommandError;

    const SLOTS: usize = 3; // `Sim`'s L
    let mut sim = Sim::new(config(6));
    sim.init_global(4, &());
    let at = sim.now() + Duration::from_millis(10);
    let ops: Vec<usize> = (0..4 * SLOTS + 2)
        .map(|i| {
            let target = microkad::Key::hash(&i.to_le_bytes());
            sim.schedule(at, Op::FindNode { node: None, target })
        })
        .collect();
    sim.run_until_done(&());
    let mut per_node = [0; 4];
    let mut busy = 0;
    for &op in &ops {
        let r = &sim.ops()[op];
        match r.error {
            None => per_node[r.node as usize] += 1,
            Some(OpError::Command(CommandError::Busy)) => busy += 1,
            Some(e) => panic!("{e:?} in {r:?}"),
        }
    }
    assert_eq!(per_node, [SLOTS; 4], "every slot of every node taken");
    assert_eq!(busy, 2, "and the rest refused");
}

/// Progress reaches its total in each long phase, and a second global
/// initialisation builds a network of its own beside the first.
#[test]
fn progress_ends_at_its_total_and_global_inits_stay_apart() {
    use std::sync::Mutex;

    let seen = Mutex::new(Vec::new());
    let progress = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
    let mut sim = Sim::new(config(8));
    sim.init_global(150, &progress);
    let reports = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(reports.last(), Some(&(450, 450)), "{reports:?}");
    assert!(reports.iter().all(|&(done, total)| done <= total));

    sim.init_global(150, &());
    assert_eq!(sim.live_count(), 300);
    let first = |addr: u32| addr < 150;
    for addr in [0, 77, 149, 150, 222, 299] {
        let table = sim.node(addr).unwrap().routing_table();
        assert!(table.len() >= 4, "{addr}");
        assert!(
            table.iter().all(|c| first(c.peer.addr) == first(addr)),
            "node {addr} knows only its own network"
        );
        assert_eq!(sim.true_closest(&sim.id_of(addr), 1), [addr]);
    }

    let lookups = sim.plan_lookups(20, Duration::from_millis(5));
    sim.run_until_done(&progress);
    let reports = seen.into_inner().unwrap();
    assert_eq!(reports.last(), Some(&(20, 20)), "{reports:?}");
    assert!(reports.windows(2).all(|w| w[0].0 < w[1].0), "{reports:?}");
    assert!(sim.ops()[lookups].iter().all(|r| r.success));
}
