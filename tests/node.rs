//! The sans-IO node through its public API.

mod common;

use common::{Net, datagram, node_id, sent};
use microkad::routing::InsertOutcome;
use microkad::wire::{self, Body, DecodeError, Message, MessageKind};
use microkad::{
    CommandError, Config, Duration, Event, InputError, Instant, Key, LookupKind, Maintenance, Peer,
    Record, RemovalReason, StoreStatus, Termination, Ttl,
};

fn config() -> Config {
    // No background maintenance: these tests settle the network and check
    // request-driven behaviour; tests/managed.rs covers maintenance.
    Config {
        network_id: 42,
        maintenance: Maintenance::Off,
        ..Config::default()
    }
}

#[test]
fn two_nodes_exchange_every_message_type() {
    let mut net = Net::new(2, config());
    // PING/PONG (bootstrap), FIND_NODE/NODES (the self lookup).
    let q = net.nodes[1].bootstrap(net.now, &[0]).unwrap();
    let e = net.wait_for(1, |e| matches!(e, Event::Bootstrapped { .. }));
    let Event::Bootstrapped {
        query,
        contacts,
        stats,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!((query, contacts), (q, 1));
    assert!(stats.requests >= 2 && stats.responses >= 2, "{stats:?}");
    assert!(net.nodes[0].routing_table().contains(&node_id(1)));
    assert!(net.nodes[1].routing_table().contains(&node_id(0)));

    // STORE/STORE_ACK.
    let record = Record::new(Key::hash(b"greeting"), b"hello", Ttl::Seconds(3600)).unwrap();
    net.nodes[1].put(net.now, record.clone()).unwrap();
    let e = net.wait_for(1, |e| matches!(e, Event::PutFinished { .. }));
    let Event::PutFinished {
        stored, attempted, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!((stored, attempted), (1, 1));
    assert_eq!(
        net.nodes[0].get_local(&record.key).unwrap().value,
        record.value
    );

    // FIND_VALUE/VALUE, from the node that does not hold it locally.
    assert!(net.nodes[1].get_local(&record.key).is_none());
    net.nodes[1].get(net.now, record.key).unwrap();
    let e = net.wait_for(1, |e| matches!(e, Event::GetFinished { .. }));
    let Event::GetFinished {
        record: found,
        termination,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(found.unwrap().value, record.value);
    assert_eq!(termination, Termination::ValueFound);

    // FIND_VALUE answered with NODES when the key is absent.
    net.nodes[1].get(net.now, Key::hash(b"absent")).unwrap();
    let e = net.wait_for(1, |e| matches!(e, Event::GetFinished { .. }));
    let Event::GetFinished {
        record: None,
        closest,
        ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(closest[0].id, node_id(0));
    assert_eq!(net.nodes[0].metrics().rejected(), 0);
    assert_eq!(net.nodes[1].metrics().rejected(), 0);
}

#[test]
fn fifty_nodes_find_every_node_and_every_value() {
    let mut net = Net::new(50, config());
    net.join_all_through_seed();
    for i in 0..50u16 {
        assert!(
            net.nodes[i as usize].routing_table().len() >= 4,
            "node {i} knows too little: {:?}",
            net.nodes[i as usize].metrics()
        );
    }
    // Every node finds every other node's id.
    for i in 0..50u16 {
        for j in 0..50u16 {
            if i == j {
                continue;
            }
            let q = net.nodes[i as usize]
                .find_node(net.now, node_id(j))
                .unwrap();
            let e = net.wait_for(
                i,
                |e| matches!(e, Event::FoundNodes { query, .. } if *query == q),
            );
            let Event::FoundNodes { closest, .. } = e else {
                unreachable!()
            };
            assert_eq!(
                closest.first().map(|p| (p.id, p.addr)),
                Some((node_id(j), j)),
                "{i} looking for {j}"
            );
        }
    }
    // Every node stores a value; every value is found from every node.
    for i in 0..50u16 {
        let record = Record::new(Key::hash(&[b'v', i as u8]), &[i as u8; 10], Ttl::Never).unwrap();
        net.nodes[i as usize].put(net.now, record).unwrap();
        let e = net.wait_for(i, |e| matches!(e, Event::PutFinished { .. }));
        let Event::PutFinished { stored, .. } = e else {
            unreachable!()
        };
        assert!(stored >= 4, "node {i} stored on {stored} nodes only");
    }
    for i in 0..50u16 {
        for v in 0..50u8 {
            let q = net.nodes[i as usize]
                .get(net.now, Key::hash(&[b'v', v]))
                .unwrap();
            let e = net.wait_for(
                i,
                |e| matches!(e, Event::GetFinished { query, .. } if *query == q),
            );
            let Event::GetFinished { record, .. } = e else {
                unreachable!()
            };
            assert_eq!(
                record.map(|r| r.value.to_vec()),
                Some(vec![v; 10]),
                "node {i}, value {v}"
            );
        }
    }
    for n in &net.nodes {
        let m = n.metrics();
        assert_eq!(
            (
                m.decode_invalid_field,
                m.mismatched,
                m.unsolicited,
                m.duplicate
            ),
            (0, 0, 0, 0),
            "{m:?}"
        );
    }
}

#[test]
fn lookup_through_silent_peers_finishes_by_timeouts() {
    let mut net = Net::new(8, config());
    net.join_all_through_seed();
    // Every peer of node 7 goes silent.
    for i in 0..7u16 {
        net.down.insert(i);
    }
    let start = net.now;
    let q = net.nodes[7]
        .find_node(net.now, Key::hash(b"anything"))
        .unwrap();
    let e = net.wait_for(
        7,
        |e| matches!(e, Event::FoundNodes { query, .. } if *query == q),
    );
    let Event::FoundNodes {
        closest,
        termination,
        stats,
        ..
    } = e
    else {
        unreachable!()
    };
    assert!(closest.is_empty());
    assert_eq!(termination, Termination::Exhausted);
    assert!(stats.timeouts >= 1 && stats.responses == 0, "{stats:?}");
    assert!(net.now.saturating_since(start) >= config().request_timeout);
    assert!(net.nodes[7].metrics().timeouts >= 1);
    // Unanswered contacts were marked failed, and removed after max_failures.
    let table = net.nodes[7].routing_table();
    assert!(
        table.iter().all(|c| c.failures >= 1),
        "every asked contact is marked"
    );
    net.nodes[7]
        .find_node(net.now, Key::hash(b"again"))
        .unwrap();
    net.settle();
    assert!(
        net.events
            .iter()
            .any(|(n, e)| *n == 7 && matches!(e, Event::ContactRemoved { .. }))
    );
}

#[test]
fn lookup_deadline_ends_a_lookup() {
    let cfg = Config {
        lookup_timeout: Duration::from_millis(500),
        ..config()
    };
    let mut net = Net::new(6, cfg);
    net.join_all_through_seed();
    for i in 0..5u16 {
        net.down.insert(i);
    }
    let q = net.nodes[5].get(net.now, Key::hash(b"k")).unwrap();
    let e = net.wait_for(
        5,
        |e| matches!(e, Event::GetFinished { query, .. } if *query == q),
    );
    let Event::GetFinished { termination, .. } = e else {
        unreachable!()
    };
    assert_eq!(termination, Termination::Deadline);
}

#[test]
fn commands_report_busy_and_no_contacts() {
    let mut net = Net::new(3, config());
    let n = &mut net.nodes[2];
    assert_eq!(
        n.find_node(Instant::ZERO, Key::ZERO),
        Err(CommandError::NoContacts)
    );
    assert_eq!(
        n.bootstrap(Instant::ZERO, &[]),
        Err(CommandError::NoContacts)
    );
    assert_eq!(
        n.bootstrap(Instant::ZERO, &[0; 9]),
        Err(CommandError::TooManySeeds)
    );
    net.join_all_through_seed();
    let n = &mut net.nodes[2];
    for _ in 0..4 {
        n.find_node(net.now, Key::hash(b"x")).unwrap();
    }
    assert_eq!(
        n.find_node(net.now, Key::hash(b"x")),
        Err(CommandError::Busy)
    );
    assert_eq!(n.active_lookups(), 4);
    net.settle();
    let done = net
        .events
        .iter()
        .filter(|(i, e)| *i == 2 && matches!(e, Event::FoundNodes { .. }))
        .count();
    assert_eq!(done, 4);
    assert!(net.nodes[2].find_node(net.now, Key::hash(b"x")).is_ok());
}

#[test]
fn hostile_input_is_rejected_counted_and_harmless() {
    let mut net = Net::new(3, config());
    net.join_all_through_seed();
    let record = Record::new(Key::hash(b"keep"), b"me", Ttl::Never).unwrap();
    assert_eq!(
        net.nodes[0].put_local(net.now, &record),
        StoreStatus::Stored
    );
    let table_before = net.nodes[0].routing_table().len();
    let now = net.now;
    let stranger = Key::hash(b"stranger");
    let node = &mut net.nodes[0];
    let mut buf = [0u8; 2048];

    // Malformed datagrams: every decode error class reaches the node.
    let ping = datagram(stranger, 1, 42, Body::Ping);
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (vec![], DecodeError::Empty),
        (ping[..20].to_vec(), DecodeError::Truncated),
        (vec![1; 5000], DecodeError::TooLong),
        (
            [&[9u8][..], &ping[1..]].concat(),
            DecodeError::WrongVersion(9),
        ),
        (
            datagram(stranger, 1, 43, Body::Ping),
            DecodeError::WrongNetwork(43),
        ),
        (
            [&ping[..ping.len() - 1], &[200u8][..]].concat(),
            DecodeError::UnknownMessageType(200),
        ),
        ([&ping[..], &[0u8][..]].concat(), DecodeError::TrailingBytes),
    ];
    for (bytes, err) in cases {
        assert_eq!(
            node.handle_input(now, 9, &bytes),
            Err(InputError::Decode(err))
        );
    }
    let mut ack = datagram(
        stranger,
        1,
        42,
        Body::StoreAck {
            status: StoreStatus::Full,
        },
    );
    *ack.last_mut().unwrap() = 77;
    assert_eq!(
        node.handle_input(now, 9, &ack),
        Err(InputError::Decode(DecodeError::InvalidField))
    );

    // Our own id.
    let own = datagram(node_id(0), 1, 42, Body::Ping);
    assert_eq!(node.handle_input(now, 9, &own), Err(InputError::OwnId));

    // Unsolicited responses of every type.
    for body in [
        Body::Pong,
        no_contacts(),
        Body::Value {
            record: record.clone(),
        },
        Body::StoreAck {
            status: StoreStatus::Stored,
        },
    ] {
        assert_eq!(
            node.handle_input(now, 9, &datagram(stranger, 77, 42, body)),
            Err(InputError::Unsolicited)
        );
    }
    assert!(
        node.poll_transmit(&mut buf).is_none(),
        "rejected input causes no reply"
    );
    assert_eq!(node.metrics().rejected(), 13);
    assert_eq!(
        node.routing_table().len(),
        table_before,
        "no stranger entered the table"
    );
    assert!(!node.routing_table().contains(&stranger));
    assert_eq!(
        node.get_local(&record.key).unwrap().value,
        record.value,
        "nothing stored was lost"
    );

    // Spoofed, mismatched, duplicated and late responses to a real request.
    let q = node.find_node(now, Key::hash(b"target")).unwrap();
    let mut sent = Vec::new();
    while let Some(t) = node.poll_transmit(&mut buf) {
        let msg = wire::decode::<u16>(&buf[..t.len], 42).unwrap();
        sent.push((t.destination, msg.header.txid));
    }
    assert!(!sent.is_empty());
    let (to, txid) = sent[0];
    let real_id = node_id(to);
    let nodes = |c| Body::Nodes { contacts: c };
    // Right txid, wrong address; right txid, wrong id; wrong response type.
    assert_eq!(
        node.handle_input(
            now,
            to + 1,
            &datagram(real_id, txid, 42, nodes(Default::default()))
        ),
        Err(InputError::Mismatched)
    );
    assert_eq!(
        node.handle_input(
            now,
            to,
            &datagram(stranger, txid, 42, nodes(Default::default()))
        ),
        Err(InputError::Mismatched)
    );
    assert_eq!(
        node.handle_input(now, to, &datagram(real_id, txid, 42, Body::Pong)),
        Err(InputError::UnexpectedResponse)
    );
    // The genuine answer, then the same again.
    assert_eq!(
        node.handle_input(
            now,
            to,
            &datagram(real_id, txid, 42, nodes(Default::default()))
        ),
        Ok(())
    );
    assert_eq!(
        node.handle_input(
            now,
            to,
            &datagram(real_id, txid, 42, nodes(Default::default()))
        ),
        Err(InputError::Duplicate)
    );
    // A second request times out, then its answer arrives late.
    if let Some(&(to2, txid2)) = sent.get(1) {
        let later = now + config().request_timeout;
        node.handle_timeout(later);
        let reply = datagram(node_id(to2), txid2, 42, nodes(Default::default()));
        assert_eq!(node.handle_input(later, to2, &reply), Err(InputError::Late));
    }
    let m = *node.metrics();
    assert_eq!(
        (m.mismatched, m.unexpected_response, m.duplicate),
        (2, 1, 1)
    );
    net.settle();
    assert!(
        net.events
            .iter()
            .any(|(i, e)| *i == 0 && matches!(e, Event::FoundNodes { query, .. } if *query == q))
    );
}

#[test]
fn get_rejects_a_value_for_another_key() {
    let mut net = Net::new(2, config());
    net.join_all_through_seed();
    let node = &mut net.nodes[1];
    let now = net.now;
    node.get(now, Key::hash(b"wanted")).unwrap();
    let mut buf = [0u8; 2048];
    let t = node.poll_transmit(&mut buf).unwrap();
    let txid = wire::decode::<u16>(&buf[..t.len], 42).unwrap().header.txid;
    let forged = Record::new(Key::hash(b"other"), b"evil", Ttl::Never).unwrap();
    let reply = datagram(node_id(0), txid, 42, Body::Value { record: forged });
    assert_eq!(
        node.handle_input(now, 0, &reply),
        Err(InputError::InvalidRecord)
    );
    assert_eq!(node.metrics().invalid_record, 1);
}

#[test]
fn records_expire() {
    let mut net = Net::new(2, config());
    let record = Record::new(Key::hash(b"short"), b"lived", Ttl::Seconds(5)).unwrap();
    let now = net.now;
    net.nodes[0].put_local(now, &record);
    assert_eq!(
        net.nodes[0].poll_timeout(),
        Some(now + Duration::from_secs(5))
    );
    net.nodes[0].handle_timeout(now + Duration::from_secs(5));
    assert!(net.nodes[0].get_local(&record.key).is_none());
    assert_eq!(microkad::Store::len(net.nodes[0].store()), 0);
    assert_eq!(net.nodes[0].poll_timeout(), None);
    let _ = LookupKind::Get;
}

#[test]
fn full_store_answers_full_over_the_wire() {
    use microkad::{MemoryStore, Node};
    let cfg = config();
    let now = Instant::ZERO;
    let mut server: Node<u16, MemoryStore<1, 16>> =
        Node::with_store(cfg.clone(), node_id(0), 1, now, MemoryStore::new());
    // A record at the server's own id is as close as can be: nothing evicts it.
    let mine = Record::new(node_id(0), b"mine", Ttl::Never).unwrap();
    assert_eq!(server.put_local(now, &mine), StoreStatus::Stored);
    let other = Record::new(Key::hash(b"far"), b"x", Ttl::Never).unwrap();
    server
        .handle_input(
            now,
            1,
            &datagram(
                node_id(1),
                5,
                42,
                Body::Store {
                    record: other.clone(),
                },
            ),
        )
        .unwrap();
    let mut buf = [0u8; 2048];
    let t = server.poll_transmit(&mut buf).unwrap();
    let reply = wire::decode::<u16>(&buf[..t.len], 42).unwrap();
    assert_eq!(
        reply.body,
        Body::StoreAck {
            status: StoreStatus::Full
        }
    );
    assert_eq!(reply.header.txid, 5);
    assert!(server.get_local(&mine.key).is_some());
}

/// Ping-before-evict checks only a silent oldest contact; and a peer cached
/// while its bucket was full may depart before it is promoted, so a promoted
/// replacement must answer a PING, or it is dropped again.
#[test]
fn a_promoted_replacement_must_answer_before_it_counts() {
    type OneSlot = microkad::Node<u16, microkad::MemoryStore<4, 16>, 1, 8>;
    // Ids whose first bit differs from ours all share bucket 0.
    let me = Key([0; 32]);
    let in_bucket_0 = |n: u8| {
        let mut id = [0u8; 32];
        id[0] = 0x80;
        id[31] = n;
        Key(id)
    };
    let (oldest, cached) = (in_bucket_0(1), in_bucket_0(2));
    let timeout = config().request_timeout;

    for answer in [false, true] {
        let mut node = OneSlot::new(config(), me, 7, Instant::ZERO);
        let t0 = Instant::ZERO;
        node.handle_input(t0, 1, &datagram(oldest, 10, 42, Body::Ping))
            .unwrap();
        sent(&mut node);
        // The bucket is full, but `oldest` was just heard: `cached` waits in
        // the replacement cache and nobody is pinged.
        node.handle_input(t0, 2, &datagram(cached, 11, 42, Body::Ping))
            .unwrap();
        let out = sent(&mut node);
        assert!(!out.iter().any(|(_, m)| matches!(m.body, Body::Ping)));
        // Once `oldest` has been silent long enough, the next arrival checks it.
        let t0 = t0 + config().ping_oldest_after;
        node.handle_input(t0, 2, &datagram(cached, 12, 42, Body::Ping))
            .unwrap();
        let out = sent(&mut node);
        assert!(
            out.iter()
                .any(|(to, m)| *to == 1 && matches!(m.body, Body::Ping)),
            "ping-before-evict goes to the oldest contact"
        );
        assert!(!node.routing_table().contains(&cached));
        // `oldest` stays silent: it is evicted and `cached` promoted, which
        // at once gets a PING of its own.
        let t1 = t0 + timeout;
        node.handle_timeout(t1);
        assert!(!node.routing_table().contains(&oldest));
        assert!(node.routing_table().contains(&cached));
        let out = sent(&mut node);
        let verify = out
            .iter()
            .find(|(to, m)| *to == 2 && matches!(m.body, Body::Ping))
            .expect("the promoted replacement is pinged")
            .1
            .header
            .txid;
        assert!(node.poll_timeout().is_some_and(|t| t <= t1 + timeout));
        if answer {
            node.handle_input(t1, 2, &datagram(cached, verify, 42, Body::Pong))
                .unwrap();
        }
        node.handle_timeout(t1 + timeout);
        assert_eq!(node.routing_table().contains(&cached), answer);
        assert_eq!(node.metrics().promotions_failed, u64::from(!answer));
        let unresponsive = core::iter::from_fn(|| node.poll_event())
            .filter(|e| {
                matches!(e, Event::ContactRemoved { peer, reason: microkad::RemovalReason::Unresponsive, .. }
                    if peer.id == cached)
            })
            .count();
        assert_eq!(unresponsive, usize::from(!answer));
    }
}

/// A node at `node_id(0)` whose `n` contacts, at addresses 1..=n with ids
/// `node_id(address)`, are played by the test.
fn scripted(n: u16, cfg: Config) -> common::TestNode {
    let now = Instant::from_millis(1_000);
    let mut node = common::TestNode::new(cfg, node_id(0), 7, now);
    for i in 1..=n {
        node.add_contact(now, Peer::new(node_id(i), i));
    }
    node
}

/// Answers request `txid` as the peer at address `from`.
fn answer(
    node: &mut common::TestNode,
    from: u16,
    txid: u32,
    body: Body<u16>,
) -> Result<(), InputError> {
    let now = node.now();
    node.handle_input(now, from, &datagram(node_id(from), txid, 42, body))
}

/// Runs a put on a scripted node until its STOREs are out: every FIND_NODE
/// is answered with an empty NODES, after timer calls at once and just short
/// of its deadline. Returns the STOREs (address, txid), marked at `now()`.
fn put_until_stores(node: &mut common::TestNode, record: &Record) -> Vec<(u16, u32)> {
    node.put(node.now(), record.clone()).unwrap();
    loop {
        let requests = sent(node);
        assert!(!requests.is_empty(), "the put stalled");
        let stores: Vec<(u16, u32)> = requests
            .iter()
            .filter(|(_, m)| matches!(&m.body, Body::Store { record: r } if r == record))
            .map(|(to, m)| (*to, m.header.txid))
            .collect();
        if !stores.is_empty() {
            assert_eq!(stores.len(), requests.len(), "STOREs come last");
            return stores;
        }
        // Early and repeated timer calls are harmless.
        node.handle_timeout(node.now());
        node.handle_timeout(node.now() + almost_a_request_timeout());
        for (to, msg) in requests {
            assert!(matches!(msg.body, Body::FindNode { .. }), "{msg:?}");
            assert_eq!(answer(node, to, msg.header.txid, no_contacts()), Ok(()));
        }
    }
}

/// An empty NODES reply.
fn no_contacts() -> Body<u16> {
    Body::Nodes {
        contacts: heapless::Vec::new(),
    }
}

/// Acknowledges every STORE in `stores` (address, txid) as stored.
fn ack_stores(node: &mut common::TestNode, stores: &[(u16, u32)]) {
    for &(to, txid) in stores {
        let ack = Body::StoreAck {
            status: StoreStatus::Stored,
        };
        assert_eq!(answer(node, to, txid, ack), Ok(()));
    }
}

/// What the put the node reports next did: records stored, STOREs
/// attempted, how it ended, its statistics.
fn put_finished(
    node: &mut common::TestNode,
) -> Option<(u8, u8, Termination, microkad::LookupStats)> {
    match node.poll_event()? {
        Event::PutFinished {
            stored,
            attempted,
            termination,
            stats,
            ..
        } => Some((stored, attempted, termination, stats)),
        other => panic!("not a put: {other:?}"),
    }
}

fn almost_a_request_timeout() -> Duration {
    Duration::from_millis(config().request_timeout.as_millis() - 1)
}

#[test]
fn early_timer_calls_fail_no_request() {
    let mut node = scripted(4, config());
    let record = Record::new(Key::hash(b"v"), b"v", Ttl::Never).unwrap();
    let stores = put_until_stores(&mut node, &record);
    // Fewer contacts than replicas: every one is asked to store.
    assert_eq!(stores.len(), 4);
    node.handle_timeout(node.now());
    node.handle_timeout(node.now() + almost_a_request_timeout());
    ack_stores(&mut node, &stores);
    let (stored, attempted, termination, stats) =
        put_finished(&mut node).expect("the put did not finish");
    assert_eq!(
        (stored, attempted, termination),
        (4, 4, Termination::Converged)
    );
    assert_eq!(stats.timeouts, 0);
    assert_eq!(node.metrics().timeouts, 0);
}

#[test]
fn a_silent_replica_fails_at_the_request_timeout() {
    let mut node = scripted(4, config());
    let start = node.now();
    let record = Record::new(Key::hash(b"v"), b"v", Ttl::Never).unwrap();
    let stores = put_until_stores(&mut node, &record);
    let marked_at = node.now();
    let (silent, _) = stores[3];
    ack_stores(&mut node, &stores[..3]);
    assert!(node.poll_event().is_none(), "one STORE is still out");
    let deadline = marked_at + config().request_timeout;
    assert_eq!(node.poll_timeout(), Some(deadline));
    node.handle_timeout(deadline);
    let (stored, attempted, termination, stats) =
        put_finished(&mut node).expect("the put did not finish at the request timeout");
    assert_eq!(
        (stored, attempted, termination),
        (3, 4, Termination::Converged)
    );
    assert_eq!(stats.timeouts, 1);
    assert_eq!(node.metrics().timeouts, 1);
    assert!(node.now().saturating_since(start) < config().lookup_timeout);
    let failures = node.routing_table().get(&node_id(silent)).unwrap().failures;
    assert_eq!(failures, 1, "the silent replica is marked");
}

#[test]
fn the_clock_never_runs_back_and_every_datagram_is_counted() {
    let cfg = Config {
        request_timeout: Duration::from_millis(1_234),
        ..config()
    };
    let t0 = Instant::from_millis(5_000);
    let mut node = common::TestNode::new(cfg, node_id(0), 1, t0);
    assert_eq!(node.config().network_id, 42);
    assert_eq!(node.config().request_timeout, Duration::from_millis(1_234));
    assert_eq!(node.now(), t0);
    let ping = datagram(node_id(1), 7, 42, Body::Ping);
    let later = t0 + Duration::from_millis(10);
    assert_eq!(node.handle_input(later, 1, &ping), Ok(()));
    assert_eq!(node.now(), later);
    // An earlier reading of the embedder's clock does not move the node back.
    assert_eq!(
        node.handle_input(t0, 1, &[]),
        Err(InputError::Decode(DecodeError::Empty))
    );
    assert_eq!(node.now(), later);
    node.handle_timeout(t0);
    assert_eq!(node.now(), later);
    let m = node.metrics();
    assert_eq!((m.datagrams_in, m.bytes_in), (2, ping.len() as u64));
    // Only the valid datagram counts by type; the PONG counts going out.
    let mut in_by_kind = [0; MessageKind::COUNT];
    in_by_kind[MessageKind::Ping as usize] = 1;
    assert_eq!(m.datagrams_in_by_kind, in_by_kind);
    assert_eq!((m.datagrams_out, m.bytes_out), (0, 0));
    let mut buf = [0u8; 128];
    let pong = node.poll_transmit(&mut buf).expect("the PING is answered");
    let m = node.metrics();
    assert_eq!((m.datagrams_out, m.bytes_out), (1, pong.len as u64));
    let mut out_by_kind = [0; MessageKind::COUNT];
    out_by_kind[MessageKind::Pong as usize] = 1;
    assert_eq!(m.datagrams_out_by_kind, out_by_kind);
    out_by_kind[MessageKind::Pong as usize] = pong.len as u64;
    assert_eq!(m.bytes_out_by_kind, out_by_kind);
    assert_eq!(m.liveness_bytes_out(), pong.len as u64);
}

#[test]
fn a_store_is_refused_whole_while_the_reply_queue_is_full() {
    let mut node = scripted(0, config());
    // PINGs whose PONGs are not collected fill the outbound queue.
    for txid in 0..microkad::node::OUTBOUND_CAPACITY as u32 {
        let ping = datagram(node_id(1), txid, 42, Body::Ping);
        assert_eq!(node.handle_input(node.now(), 1, &ping), Ok(()));
    }
    let record = Record::new(Key::hash(b"k"), b"v", Ttl::Never).unwrap();
    let store = Body::Store {
        record: record.clone(),
    };
    assert_eq!(node.metrics().requests_served, 8);
    assert_eq!(
        answer(&mut node, 1, 98, Body::Ping),
        Err(InputError::Overloaded)
    );
    assert_eq!(
        answer(&mut node, 1, 99, store.clone()),
        Err(InputError::Overloaded)
    );
    assert_eq!(node.metrics().overloaded, 2);
    assert_eq!(node.metrics().requests_served, 8);
    assert!(
        node.get_local(&record.key).is_none(),
        "no trace of the STORE"
    );
    // Once the queue drains, the retry is stored and acknowledged.
    assert_eq!(sent(&mut node).len(), microkad::node::OUTBOUND_CAPACITY);
    assert_eq!(answer(&mut node, 1, 100, store), Ok(()));
    assert!(node.get_local(&record.key).is_some());
    let replies = sent(&mut node);
    assert!(matches!(
        replies[..],
        [(
            1,
            Message {
                body: Body::StoreAck {
                    status: StoreStatus::Stored
                },
                ..
            }
        )]
    ));
    assert_eq!(node.metrics().overloaded, 2);
}

#[test]
fn a_put_out_of_time_sends_no_store() {
    let cfg = Config {
        lookup_timeout: Duration::from_millis(500),
        ..config()
    };
    let mut node = scripted(4, cfg);
    let start = node.now();
    let record = Record::new(Key::hash(b"late"), b"v", Ttl::Never).unwrap();
    node.put(start, record).unwrap();
    // One peer answers; the others stay silent past the lookup's deadline.
    let requests = sent(&mut node);
    let (to, msg) = &requests[0];
    assert_eq!(
        answer(&mut node, *to, msg.header.txid, no_contacts()),
        Ok(())
    );
    let deadline = start + Duration::from_millis(500);
    assert!(node.poll_timeout().is_some_and(|t| t <= deadline));
    node.handle_timeout(deadline);
    // An answer after the deadline, before the event is collected, is late.
    let (slow, slow_request) = &requests[1];
    assert_eq!(
        answer(&mut node, *slow, slow_request.header.txid, no_contacts()),
        Err(InputError::Late)
    );
    assert_eq!(node.metrics().late, 1);
    let late = sent(&mut node);
    assert!(
        late.iter()
            .all(|(_, m)| !matches!(m.body, Body::Store { .. })),
        "no STORE after the lookup's deadline: {late:?}"
    );
    let (stored, attempted, termination, _) =
        put_finished(&mut node).expect("the put did not end at its deadline");
    assert_eq!(
        (stored, attempted, termination),
        (0, 0, Termination::Deadline)
    );
}

#[test]
fn an_unreachable_peer_fails_at_once_and_only_its_own_requests() {
    let mut node = scripted(4, config());
    node.find_node(node.now(), Key::hash(b"t")).unwrap();
    let first = sent(&mut node);
    assert_eq!(first.len(), 3, "alpha requests");
    // Nobody at that address was asked: nothing happens.
    node.handle_unreachable(node.now(), &99);
    assert_eq!(node.metrics().timeouts, 0);
    assert!(sent(&mut node).is_empty());
    let (gone, gone_request) = &first[1];
    node.handle_unreachable(node.now(), gone);
    assert_eq!(node.metrics().timeouts, 1);
    let failures = node.routing_table().get(&node_id(*gone)).unwrap().failures;
    assert_eq!(failures, 1);
    // The other requests are still open.
    for (to, msg) in first.iter().filter(|(to, _)| to != gone) {
        assert_eq!(
            answer(&mut node, *to, msg.header.txid, no_contacts()),
            Ok(())
        );
    }
    assert_eq!(
        answer(&mut node, *gone, gone_request.header.txid, no_contacts()),
        Err(InputError::Late)
    );
    assert_eq!(node.metrics().timeouts, 1);
    assert_eq!(node.metrics().late, 1);
}

#[test]
fn an_unreachable_seed_fails_at_once() {
    let mut node = scripted(0, config());
    node.bootstrap(node.now(), &[1, 2]).unwrap();
    let pings = sent(&mut node);
    assert_eq!(pings.len(), 2);
    node.handle_timeout(node.now());
    assert_eq!(node.metrics().timeouts, 0);
    node.handle_unreachable(node.now(), &2);
    assert_eq!(node.metrics().timeouts, 1);
    let txid = |to: u16| pings.iter().find(|(a, _)| *a == to).unwrap().1.header.txid;
    assert_eq!(answer(&mut node, 1, txid(1), Body::Pong), Ok(()));
    // Both seeds are settled, so the join goes on through the one that answered.
    let next = sent(&mut node);
    assert!(
        !next.is_empty()
            && next
                .iter()
                .all(|(to, m)| *to == 1 && matches!(m.body, Body::FindNode { .. })),
        "{next:?}"
    );
    assert_eq!(
        answer(&mut node, 2, txid(2), Body::Pong),
        Err(InputError::Unsolicited)
    );
}

/// Answers every FIND_NODE of a scripted node with an empty NODES until the
/// node reports an event; returns it and the number of requests answered.
fn answer_until_event(node: &mut common::TestNode) -> (common::TestEvent, u32) {
    let mut answered = 0;
    loop {
        if let Some(e) = node.poll_event() {
            return (e, answered);
        }
        let requests = sent(node);
        assert!(!requests.is_empty(), "stalled without an event");
        for (to, msg) in requests {
            assert!(matches!(msg.body, Body::FindNode { .. }), "{msg:?}");
            assert_eq!(answer(node, to, msg.header.txid, no_contacts()), Ok(()));
            answered += 1;
        }
    }
}

#[test]
fn a_silent_seed_times_out_and_the_join_goes_on_through_the_other() {
    let mut node = scripted(0, config());
    let start = node.now();
    let q = node.bootstrap(start, &[1, 2]).unwrap();
    let pings = sent(&mut node);
    let txid = pings.iter().find(|(a, _)| *a == 1).unwrap().1.header.txid;
    assert_eq!(answer(&mut node, 1, txid, Body::Pong), Ok(()));
    // Seed 2 is silent: nothing moves until its request times out.
    node.handle_timeout(start + almost_a_request_timeout());
    assert!(sent(&mut node).is_empty());
    assert_eq!(node.metrics().timeouts, 0);
    let deadline = start + config().request_timeout;
    assert_eq!(node.poll_timeout(), Some(deadline));
    node.handle_timeout(deadline);
    assert_eq!(node.metrics().timeouts, 1);
    let (event, find_nodes) = answer_until_event(&mut node);
    let Event::Bootstrapped {
        query,
        contacts,
        termination,
        stats,
    } = event
    else {
        panic!("not a bootstrap event")
    };
    assert_eq!((query, contacts), (q, 1));
    assert_ne!(termination, Termination::Deadline);
    assert_eq!(stats.timeouts, 1);
    // Both seed PINGs count as the join's requests.
    assert_eq!(u32::from(stats.requests), 2 + find_nodes);
    assert!(node.routing_table().contains(&node_id(1)));
    assert_eq!(node.metrics().lookups_finished, 1);
}

#[test]
fn bootstrap_takes_at_most_max_seeds_at_a_time() {
    use microkad::node::MAX_SEEDS;
    let mut node = scripted(0, config());
    let now = node.now();
    let seeds: Vec<u16> = (1..=MAX_SEEDS as u16 + 1).collect();
    assert_eq!(node.bootstrap(now, &seeds), Err(CommandError::TooManySeeds));
    // Exactly MAX_SEEDS seeds may be out at once, over several joins.
    assert!(node.bootstrap(now, &seeds[..MAX_SEEDS / 2]).is_ok());
    assert!(
        node.bootstrap(now, &seeds[MAX_SEEDS / 2..MAX_SEEDS])
            .is_ok()
    );
    assert_eq!(
        node.bootstrap(now, &seeds[MAX_SEEDS..]),
        Err(CommandError::Busy)
    );
    assert_eq!(sent(&mut node).len(), MAX_SEEDS);
    // Or all in one.
    let mut node = scripted(0, config());
    assert!(node.bootstrap(now, &seeds[..MAX_SEEDS]).is_ok());
    assert_eq!(sent(&mut node).len(), MAX_SEEDS);
}

#[test]
fn an_unanswered_eviction_probe_evicts_the_oldest_contact() {
    let (mut node, pinged) = newcomer_for_a_stale_full_bucket(config(), 0);
    assert!(
        matches!(pinged[..], [(10, _)]),
        "the oldest contact is pinged: {pinged:?}"
    );
    let mut newcomer = Key::ZERO;
    newcomer.0[0] = 0x80;
    assert!(!node.routing_table().contains(&newcomer));
    let probed_at = node.now();
    node.handle_timeout(probed_at + almost_a_request_timeout());
    assert_eq!(node.metrics().timeouts, 0);
    node.handle_timeout(probed_at + config().request_timeout);
    assert_eq!(node.metrics().timeouts, 1);
    let Some(Event::ContactRemoved { peer, reason, .. }) = node.poll_event() else {
        panic!("no contact removed")
    };
    assert_eq!((peer.addr, reason), (10, RemovalReason::Unresponsive));
    assert!(!node.routing_table().contains(&peer.id));
}

#[test]
fn a_message_too_large_for_the_buffer_is_dropped_and_counted() {
    let mut node = scripted(0, config());
    assert_eq!(answer(&mut node, 1, 5, Body::Ping), Ok(()));
    let mut tiny = [0u8; 4];
    assert!(node.poll_transmit(&mut tiny).is_none());
    assert_eq!(node.metrics().encode_failures, 1);
    assert_eq!(node.metrics().datagrams_out, 0);
    assert!(sent(&mut node).is_empty(), "the PONG is gone");
}

#[test]
fn a_seed_answer_moves_its_own_join_not_another_lookup() {
    let mut node = scripted(2, config());
    let now = node.now();
    node.find_node(now, Key::hash(b"elsewhere")).unwrap();
    node.bootstrap(now, &[3]).unwrap();
    let first = sent(&mut node);
    let ping = first
        .iter()
        .find(|(to, m)| *to == 3 && matches!(m.body, Body::Ping))
        .expect("the seed is pinged");
    assert_eq!(answer(&mut node, 3, ping.1.header.txid, Body::Pong), Ok(()));
    // The join's own search starts: it looks up this node's id.
    let next = sent(&mut node);
    assert!(
        next.iter()
            .any(|(_, m)| matches!(m.body, Body::FindNode { target } if target == node_id(0))),
        "{next:?}"
    );
}

#[test]
fn an_unverified_put_stores_on_the_closest_heard_of_asked_or_not() {
    let cfg = Config {
        lookup_end: microkad::LookupEnd::Unverified,
        ..config()
    };
    let mut node = scripted(4, cfg);
    let record = Record::new(Key::hash(b"v"), b"v", Ttl::Never).unwrap();
    node.put(node.now(), record.clone()).unwrap();
    let mut asked = Vec::new();
    let stores = loop {
        let requests = sent(&mut node);
        assert!(!requests.is_empty(), "the put stalled");
        if matches!(requests[0].1.body, Body::Store { .. }) {
            break requests;
        }
        for (to, msg) in requests {
            asked.push(to);
            assert_eq!(
                answer(&mut node, to, msg.header.txid, no_contacts()),
                Ok(())
            );
        }
    };
    // Three answers without progress end the search before the fourth
    // contact is asked; py-dht's rule stores on it all the same.
    assert_eq!(asked.len(), 3);
    let mut stored_on: Vec<u16> = stores.iter().map(|(to, _)| *to).collect();
    stored_on.sort();
    assert_eq!(stored_on, [1, 2, 3, 4]);
}

#[test]
fn a_known_id_from_another_address_is_a_conflict() {
    let mut node = scripted(2, config());
    let spoofed = datagram(node_id(1), 5, 42, Body::Ping);
    assert_eq!(node.handle_input(node.now(), 9, &spoofed), Ok(()));
    assert_eq!(node.metrics().address_conflicts, 1);
    let kept = node.routing_table().get(&node_id(1)).unwrap();
    assert_eq!(kept.peer.addr, 1, "a live contact keeps its address");
    assert_eq!(node.routing_table().len(), 2);
}

/// A node at the zero id with a full bucket of four contacts (addresses 10
/// to 13, 10 the oldest), all silent for `ping_oldest_after`, and `queued`
/// PONGs waiting in its reply queue; then a newcomer for that bucket turns
/// up. Returns the node and the PINGs it sends (address, txid).
fn newcomer_for_a_stale_full_bucket(
    cfg: Config,
    queued: u32,
) -> (common::TestNode, Vec<(u16, u32)>) {
    let start = Instant::from_millis(1_000);
    let mut node = common::TestNode::new(cfg.clone(), Key::ZERO, 7, start);
    // Ids whose first bit differs from ours share bucket 0.
    for i in 0..4u16 {
        let mut id = Key([0xFF; 32]);
        id.0[31] = i as u8;
        node.add_contact(start, Peer::new(id, 10 + i));
    }
    let later = start + cfg.ping_oldest_after;
    for txid in 0..queued {
        let ping = datagram(node_id(1), txid, 42, Body::Ping);
        assert_eq!(node.handle_input(later, 1, &ping), Ok(()));
    }
    let mut newcomer = Key::ZERO;
    newcomer.0[0] = 0x80;
    let outcome = node.add_contact(later, Peer::new(newcomer, 20));
    assert!(
        matches!(outcome, InsertOutcome::Pending { .. }),
        "{outcome:?}"
    );
    let pinged = sent(&mut node)
        .into_iter()
        .filter(|(_, m)| matches!(m.body, Body::Ping))
        .map(|(to, m)| (to, m.header.txid))
        .collect();
    (node, pinged)
}

/// The stale full bucket's newcomer, and the probe it causes: the oldest
/// contact (address 10, id ...FF00) is pinged. Returns the node, the
/// probe's txid and the oldest contact's id.
fn probe_of_the_oldest() -> (common::TestNode, u32, Key) {
    let (node, pinged) = newcomer_for_a_stale_full_bucket(config(), 0);
    let [(10, probe_txid)] = pinged[..] else {
        panic!("{pinged:?}")
    };
    let mut oldest = Key([0xFF; 32]);
    oldest.0[31] = 0;
    (node, probe_txid, oldest)
}

#[test]
fn an_eviction_probe_whose_contact_spoke_otherwise_keeps_it() {
    let (mut node, probe_txid, oldest) = probe_of_the_oldest();
    // The oldest contact never answers the probe, but sends a request of its
    // own while the probe is out: it is alive, the PONG was lost.
    let probed_at = node.now();
    let asked_at = probed_at + Duration::from_millis(5);
    let ping = datagram(oldest, probe_txid.wrapping_add(1), 42, Body::Ping);
    assert_eq!(node.handle_input(asked_at, 10, &ping), Ok(()));
    assert_eq!(
        pings_to(&sent(&mut node), 10),
        0,
        "a PONG, not another probe"
    );
    node.handle_timeout(probed_at + config().request_timeout);
    assert_eq!(node.metrics().timeouts, 0, "no failure counted");
    let kept = node
        .routing_table()
        .get(&oldest)
        .expect("the contact is kept");
    assert_eq!(kept.failures, 0);
    assert!(node.poll_event().is_none(), "nothing removed");
    // Its probe is over: nothing more falls due for it.
    node.handle_timeout(probed_at + config().request_timeout.saturating_mul(3));
    assert!(node.routing_table().contains(&oldest));
    assert_eq!(node.metrics().timeouts, 0);
}

#[test]
fn ping_before_evict_keeps_a_slot_for_a_reply_and_is_off_under_managed_connections() {
    let capacity = microkad::node::OUTBOUND_CAPACITY as u32;
    // Room for the probe and one reply after it: the oldest is pinged.
    let (node, pinged) = newcomer_for_a_stale_full_bucket(config(), capacity - 2);
    assert!(matches!(pinged[..], [(10, _)]), "{pinged:?}");
    assert_eq!(node.metrics().probes_skipped, 0);
    // Only room for one more datagram: the probe is skipped and counted.
    let (node, pinged) = newcomer_for_a_stale_full_bucket(config(), capacity - 1);
    assert!(pinged.is_empty());
    assert_eq!(node.metrics().probes_skipped, 1);
    // Managed connections watch every contact with keepalives already.
    let managed = Config {
        maintenance: Maintenance::MANAGED,
        ..config()
    };
    let (node, pinged) = newcomer_for_a_stale_full_bucket(managed, 0);
    assert!(pinged.is_empty());
    assert_eq!(node.metrics().probes_skipped, 0);
}

#[test]
fn answers_to_probes_and_seeds_are_checked_and_counted() {
    let (mut node, probe_txid, oldest) = probe_of_the_oldest();
    let now = node.now();
    let pong = datagram(oldest, probe_txid, 42, Body::Pong);
    assert_eq!(
        node.handle_input(now, 11, &pong),
        Err(InputError::Mismatched),
        "right id, wrong address"
    );
    let nodes = datagram(oldest, probe_txid, 42, no_contacts());
    assert_eq!(
        node.handle_input(now, 10, &nodes),
        Err(InputError::UnexpectedResponse)
    );
    let m = *node.metrics();
    assert_eq!((m.mismatched, m.unexpected_response), (1, 1));
    assert_eq!(node.handle_input(now, 10, &pong), Ok(()));
    assert!(
        node.routing_table().contains(&oldest),
        "the oldest answered"
    );

    // A seed.
    let mut node = scripted(0, config());
    node.bootstrap(node.now(), &[1]).unwrap();
    let pings = sent(&mut node);
    let seed_txid = pings[0].1.header.txid;
    assert_eq!(
        answer(&mut node, 2, seed_txid, Body::Pong),
        Err(InputError::Mismatched),
        "the seed's txid from another address"
    );
    assert_eq!(
        answer(&mut node, 1, seed_txid.wrapping_add(1), Body::Pong),
        Err(InputError::Unsolicited),
        "another txid from the seed's address"
    );
    let nodes = no_contacts();
    assert_eq!(
        answer(&mut node, 1, seed_txid, nodes),
        Err(InputError::UnexpectedResponse)
    );
    let m = *node.metrics();
    assert_eq!(
        (m.mismatched, m.unsolicited, m.unexpected_response),
        (1, 1, 1)
    );
    assert!(node.routing_table().is_empty(), "no answer was taken");
    assert_eq!(answer(&mut node, 1, seed_txid, Body::Pong), Ok(()));
    assert!(node.routing_table().contains(&node_id(1)));
}

#[test]
fn an_answer_to_a_finished_lookup_is_late_once_then_unsolicited() {
    let cfg = Config {
        lookup_timeout: Duration::from_millis(500),
        ..config()
    };
    let mut node = scripted(4, cfg);
    let q = node.find_node(node.now(), Key::hash(b"t")).unwrap();
    let requests = sent(&mut node);
    // The lookup runs out of time with its requests out, and its event is
    // collected.
    node.handle_timeout(node.now() + Duration::from_millis(500));
    let Some(Event::FoundNodes {
        query, termination, ..
    }) = node.poll_event()
    else {
        panic!("the lookup did not end")
    };
    assert_eq!((query, termination), (q, Termination::Deadline));
    let (to, msg) = &requests[0];
    let reply = datagram(node_id(*to), msg.header.txid, 42, no_contacts());
    let now = node.now();
    assert_eq!(node.handle_input(now, *to, &reply), Err(InputError::Late));
    assert_eq!(
        node.handle_input(now, *to, &reply),
        Err(InputError::Unsolicited)
    );
    let m = *node.metrics();
    assert_eq!((m.late, m.unsolicited), (1, 1));
}

#[test]
fn a_value_answer_to_a_node_lookup_is_unexpected() {
    let mut node = scripted(4, config());
    node.find_node(node.now(), Key::hash(b"t")).unwrap();
    let requests = sent(&mut node);
    let (to, msg) = &requests[0];
    let record = Record::new(Key::hash(b"t"), b"v", Ttl::Never).unwrap();
    assert_eq!(
        answer(&mut node, *to, msg.header.txid, Body::Value { record }),
        Err(InputError::UnexpectedResponse)
    );
    assert_eq!(node.metrics().unexpected_response, 1);
    assert_eq!(
        answer(&mut node, *to, msg.header.txid, no_contacts()),
        Ok(())
    );
}

#[test]
fn an_answered_keepalive_hands_off_nothing() {
    let cfg = Config {
        maintenance: Maintenance::Managed {
            keepalive_interval: Duration::from_secs(1),
            max_missed: 3,
        },
        ..config()
    };
    let mut node = scripted(1, cfg);
    // A record whose replica set holds the one contact, stored after the
    // contact joined: the contact is owed nothing.
    let record = Record::new(node_id(1), b"v", Ttl::Never).unwrap();
    node.put_local(node.now(), &record);
    let mut answered = 0;
    for _ in 0..3 {
        let due = node.poll_timeout().expect("keepalives are due");
        node.handle_timeout(due);
        for (to, msg) in sent(&mut node) {
            assert!(matches!(msg.body, Body::Ping), "{msg:?}");
            assert_eq!(answer(&mut node, to, msg.header.txid, Body::Pong), Ok(()));
            answered += 1;
        }
        let after = sent(&mut node);
        assert!(after.is_empty(), "{after:?}");
    }
    assert!(answered >= 1, "no keepalive was sent");
    assert_eq!(node.metrics().values_handed_off, 0);
}

/// A node under periodic maintenance with four contacts, whose four lookup
/// slots are all taken by node lookups started at `now()`.
fn periodic_with_every_lookup_slot_taken(
    refresh_interval: Duration,
    republish_interval: Duration,
) -> common::TestNode {
    let cfg = Config {
        maintenance: Maintenance::Periodic {
            refresh_interval,
            republish_interval,
        },
        ..config()
    };
    let mut node = scripted(4, cfg);
    let start = node.now();
    for i in 0..4u8 {
        node.find_node(start, Key::hash(&[i])).unwrap();
    }
    assert_eq!(node.find_node(start, Key::ZERO), Err(CommandError::Busy));
    node
}

#[test]
fn a_republish_waiting_for_a_lookup_slot_asks_for_a_call_once_one_is_free() {
    // Every lookup slot is taken when the republish falls due.
    let mut node =
        periodic_with_every_lookup_slot_taken(Duration::from_secs(3_600), Duration::from_secs(1));
    let start = node.now();
    let record = Record::new(Key::hash(b"kept"), b"v", Ttl::Never).unwrap();
    node.put_local(start, &record);
    let mut requests = sent(&mut node);
    let due = start + Duration::from_secs(1);
    assert_eq!(node.poll_timeout(), Some(due));
    node.handle_timeout(due);
    assert_eq!(node.metrics().republished, 0, "no slot for it");
    assert!(
        node.poll_timeout().is_some_and(|t| t > due),
        "a republish waiting for a slot does not make the node spin"
    );
    // The lookups end; the first free slot makes the republish due at once.
    while !requests.is_empty() {
        for (to, msg) in requests {
            assert_eq!(
                answer(&mut node, to, msg.header.txid, no_contacts()),
                Ok(())
            );
        }
        requests = sent(&mut node);
    }
    let found = core::iter::from_fn(|| node.poll_event())
        .filter(|e| matches!(e, Event::FoundNodes { .. }))
        .count();
    assert_eq!(found, 4);
    assert_eq!(node.poll_timeout(), Some(node.now()));
    node.handle_timeout(node.now());
    assert_eq!(node.metrics().republished, 1);
    assert!(
        sent(&mut node)
            .iter()
            .any(|(_, m)| matches!(m.body, Body::FindNode { target } if target == record.key))
    );
}

#[test]
fn a_refresh_with_no_free_lookup_slot_is_skipped_and_counted() {
    let mut node =
        periodic_with_every_lookup_slot_taken(Duration::from_secs(1), Duration::from_secs(3_600));
    let start = node.now();
    sent(&mut node);
    let due = start + Duration::from_secs(1);
    assert_eq!(node.poll_timeout(), Some(due));
    node.handle_timeout(due);
    assert_eq!(node.metrics().maintenance_skipped, 1);
    assert!(sent(&mut node).is_empty(), "no refresh request went out");
}

#[test]
fn removals_beyond_the_notice_queue_are_counted_as_dropped_events() {
    let capacity = microkad::node::NOTICE_CAPACITY as u16;
    let mut node = scripted(capacity + 1, config());
    for i in 1..=capacity + 1 {
        let leave = datagram(node_id(i), 1, 42, Body::Leave);
        assert_eq!(node.handle_input(node.now(), i, &leave), Ok(()));
    }
    assert!(node.routing_table().is_empty());
    assert_eq!(node.metrics().events_dropped, 1);
    let removed = core::iter::from_fn(|| node.poll_event())
        .filter(|e| matches!(e, Event::ContactRemoved { .. }))
        .count();
    assert_eq!(removed, usize::from(capacity));
}

/// How many PINGs a scripted node sends to `to`.
fn pings_to(out: &[(u16, Message<u16>)], to: u16) -> usize {
    out.iter()
        .filter(|(a, m)| *a == to && matches!(m.body, Body::Ping))
        .count()
}

#[test]
fn a_down_report_is_checked_with_one_ping_if_there_is_room() {
    let report = |reporter: u16, txid: u32| {
        datagram(node_id(reporter), txid, 42, Body::Down { dead: node_id(2) })
    };
    // Two reports about contact 2: one PING.
    let mut node = scripted(2, config());
    let now = node.now();
    assert_eq!(node.handle_input(now, 1, &report(1, 1)), Ok(()));
    assert_eq!(node.handle_input(now, 1, &report(1, 2)), Ok(()));
    assert_eq!(pings_to(&sent(&mut node), 2), 1);
    assert_eq!(node.metrics().down_reports_received, 2);
    // With one slot left in the reply queue, the report is not checked.
    let mut node = scripted(2, config());
    for txid in 0..microkad::node::OUTBOUND_CAPACITY as u32 - 1 {
        assert_eq!(answer(&mut node, 1, 100 + txid, Body::Ping), Ok(()));
    }
    assert_eq!(node.handle_input(now, 1, &report(1, 1)), Ok(()));
    assert_eq!(pings_to(&sent(&mut node), 2), 0);
    assert_eq!(
        node.metrics().probes_skipped,
        1,
        "the skipped check is counted"
    );
}

#[test]
fn a_dead_candidate_is_reported_to_its_referrer_if_there_is_room() {
    let cfg = Config {
        maintenance: Maintenance::DOWN_LIST,
        ..config()
    };
    // Contact 1 refers the lookup to node 50, which never answers; `queued`
    // PINGs from contact 1 wait in the reply queue when 50 times out.
    let run = |queued: u32| {
        let mut node = scripted(1, cfg.clone());
        node.find_node(node.now(), node_id(50)).unwrap();
        let first = sent(&mut node);
        let mut referral = heapless::Vec::new();
        referral.push(Peer::new(node_id(50), 50)).unwrap();
        let nodes = Body::Nodes { contacts: referral };
        assert_eq!(answer(&mut node, 1, first[0].1.header.txid, nodes), Ok(()));
        let asked = sent(&mut node);
        assert!(asked.iter().any(|(to, _)| *to == 50), "{asked:?}");
        for txid in 0..queued {
            assert_eq!(answer(&mut node, 1, 100 + txid, Body::Ping), Ok(()));
        }
        node.handle_timeout(node.now() + config().request_timeout);
        let downs = sent(&mut node)
            .iter()
            .filter(|(to, m)| {
                *to == 1 && matches!(m.body, Body::Down { dead } if dead == node_id(50))
            })
            .count();
        let m = *node.metrics();
        (downs, m.down_reports_sent, m.down_reports_skipped)
    };
    assert_eq!(run(0), (1, 1, 0));
    let nearly_full = microkad::node::OUTBOUND_CAPACITY as u32 - 1;
    assert_eq!(run(nearly_full), (0, 0, 1));
}
