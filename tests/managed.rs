//! Managed connections and replication (MaidSafe paper, section III), and the
//! classic modes they are compared with.

mod common;

use common::{Net, node_id};
use microkad::wire::{self, Body, Header, Message, RefuseReason};
use microkad::{
    Config, Duration, Event, Instant, Key, Maintenance, MemoryStore, Node, Record, RemovalReason,
    Ttl,
};

const GAMMA: Duration = Duration::from_secs(1);
const DELTA: u8 = 3;

fn managed() -> Config {
    Config {
        network_id: 42,
        maintenance: Maintenance::Managed {
            keepalive_interval: GAMMA,
            max_missed: DELTA,
        },
        ..Config::default()
    }
}

fn holders(net: &Net, key: &Key) -> Vec<u16> {
    (0..net.nodes.len() as u16)
        .filter(|i| !net.down.contains(i) && net.nodes[*i as usize].get_local(key).is_some())
        .collect()
}

#[test]
fn a_crashed_node_leaves_every_table_within_gamma_delta() {
    let mut net = Net::new(20, managed());
    net.join_all_through_seed();
    net.run_for(Duration::from_secs(5));
    let victim = 7u16;
    let holding: Vec<usize> = (0..20)
        .filter(|&i| net.nodes[i].routing_table().contains(&node_id(victim)))
        .collect();
    assert!(holding.len() >= 3, "the victim is known to several nodes");
    net.down.insert(victim);
    let crash = net.now;
    let window = GAMMA.saturating_mul(u64::from(DELTA));
    // Just before the window closes, some table may still hold it...
    net.run_for(Duration::from_millis(window.as_millis() - 1));
    // ...and once it has closed, none does.
    net.run_until(|n| n.now >= crash + window);
    for (i, node) in net.nodes.iter().enumerate() {
        if i as u16 != victim {
            assert!(
                !node.routing_table().contains(&node_id(victim)),
                "node {i} still holds the crashed node"
            );
        }
    }
    let dead_events = net
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(e, Event::ContactRemoved { peer, reason: RemovalReason::Dead, .. } if peer.id == node_id(victim))
        })
        .count();
    assert!(
        dead_events >= holding.len(),
        "{dead_events} death notices for {} holders",
        holding.len()
    );
    // Keepalives went out and were answered.
    assert!(net.nodes[0].metrics().keepalives_sent > 0);
}

#[test]
fn a_graceful_leave_is_seen_at_once() {
    let mut net = Net::new(12, managed());
    net.join_all_through_seed();
    net.run_for(Duration::from_secs(3));
    let leaver = 4u16;
    let knew: Vec<usize> = (0..12)
        .filter(|&i| net.nodes[i].routing_table().contains(&node_id(leaver)))
        .collect();
    assert!(!knew.is_empty());
    let t = net.now;
    net.nodes[leaver as usize].leave(t);
    // Deliver the LEAVEs without letting the clock move.
    net.run_until(|n| n.now > t);
    assert!(
        net.now <= t + GAMMA,
        "the leave was seen before any keepalive could notice"
    );
    for i in knew {
        assert!(
            !net.nodes[i].routing_table().contains(&node_id(leaver)),
            "node {i} kept the leaver"
        );
        assert!(net.events.iter().any(|(n, e)| *n as usize == i
            && matches!(e, Event::ContactRemoved { peer, reason: RemovalReason::Left, .. } if peer.id == node_id(leaver))));
    }
}

#[test]
fn a_newcomer_closer_to_a_key_receives_it_through_give_value() {
    // 30 nodes; only the first 29 join at first.
    let mut cfg = managed();
    cfg.replicas = 4;
    let mut net = Net::new(30, cfg);
    for i in 1..29u16 {
        let q = net.nodes[i as usize].bootstrap(net.now, &[0]).unwrap();
        net.wait_for(
            i,
            |e| matches!(e, Event::Bootstrapped { query, .. } if *query == q),
        );
    }
    // A key right next to node 29's id: once 29 joins, it is the closest node.
    let mut key = node_id(29);
    key.0[31] ^= 1;
    let record = Record::new(key, b"hand me over", Ttl::Never).unwrap();
    net.nodes[3].put(net.now, record.clone()).unwrap();
    net.wait_for(3, |e| matches!(e, Event::PutFinished { stored: 4, .. }));
    assert!(net.nodes[29].get_local(&key).is_none());
    let q = net.nodes[29].bootstrap(net.now, &[0]).unwrap();
    net.wait_for(
        29,
        |e| matches!(e, Event::Bootstrapped { query, .. } if *query == q),
    );
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.nodes[29].get_local(&key).map(|r| r.value),
        Some(record.value.clone())
    );
    assert!(net.nodes[29].metrics().values_received >= 1);
    let handed: u64 = net
        .nodes
        .iter()
        .map(|n| n.metrics().values_handed_off)
        .sum();
    assert!(handed >= 1);
}

#[test]
fn an_incoming_contact_beyond_two_k_is_refused_with_a_typed_reply() {
    type Small = Node<u16, MemoryStore<4, 16>, 2, 8, 1, 4, 2>;
    let now = Instant::ZERO;
    let cfg = managed();
    let mut x = Small::new(cfg.clone(), Key::ZERO, 1, now);
    let mut buf = [0u8; 2048];
    let mut rng = microkad::rng::Rng::new(9);
    let mut ping = |x: &mut Small, from: u16, id: Key| {
        let msg: Message<u16> = Message {
            header: Header {
                network: 42,
                txid: from as u32,
                sender: id,
            },
            body: Body::Ping,
        };
        let n = wire::encode(&msg, &mut buf).unwrap();
        x.handle_input(now, from, &buf[..n]).unwrap();
        let t = x.poll_transmit(&mut buf).unwrap();
        assert_eq!(t.destination, from);
        wire::decode::<u16>(&buf[..t.len], 42).unwrap().body
    };
    // Two nodes X chose (outgoing) and two that chose it (incoming): 2k = 4.
    for a in 0..2u16 {
        x.add_contact(
            now,
            microkad::Peer::new(Key::ZERO.random_with_prefix(0, &mut rng), 100 + a),
        );
    }
    let ids: Vec<Key> = (0..3)
        .map(|_| Key::ZERO.random_with_prefix(0, &mut rng))
        .collect();
    assert_eq!(ping(&mut x, 1, ids[0]), Body::Pong);
    assert_eq!(ping(&mut x, 2, ids[1]), Body::Pong);
    assert_eq!(x.routing_table().bucket(0).unwrap().len(), 4);
    // The fifth is refused, with a reason, and kept out.
    assert_eq!(
        ping(&mut x, 3, ids[2]),
        Body::Refused {
            reason: RefuseReason::BucketFull
        }
    );
    assert!(!x.routing_table().contains(&ids[2]));
    assert_eq!(x.metrics().refused_sent, 1);

    // The refused side drops the refuser when its keepalive is refused.
    let mut y = Small::new(cfg, ids[2], 2, now);
    y.add_contact(now, microkad::Peer::new(Key::ZERO, 7));
    let later = now + GAMMA;
    y.handle_timeout(later);
    let t = y.poll_transmit(&mut buf).unwrap();
    let keepalive = wire::decode::<u16>(&buf[..t.len], 42).unwrap();
    assert_eq!((t.destination, keepalive.body.clone()), (7, Body::Ping));
    let refusal: Message<u16> = Message {
        header: Header {
            network: 42,
            txid: keepalive.header.txid,
            sender: Key::ZERO,
        },
        body: Body::Refused {
            reason: RefuseReason::BucketFull,
        },
    };
    let n = wire::encode(&refusal, &mut buf).unwrap();
    y.handle_input(later, 7, &buf[..n]).unwrap();
    assert!(!y.routing_table().contains(&Key::ZERO));
    assert!(matches!(
        y.poll_event(),
        Some(Event::ContactRemoved {
            reason: RemovalReason::Refused,
            ..
        })
    ));
}

#[test]
fn continuous_churn_loses_no_value_while_a_replica_survives_each_window() {
    // 40 nodes start; 20 more join one by one while 20 crash one by one, one
    // crash per detection window (δγ), so every window leaves replicas alive.
    let mut net = Net::new(60, managed());
    for i in 1..40u16 {
        let q = net.nodes[i as usize].bootstrap(net.now, &[0]).unwrap();
        net.wait_for(
            i,
            |e| matches!(e, Event::Bootstrapped { query, .. } if *query == q),
        );
    }
    let keys: Vec<Key> = (0..20u8).map(|v| Key::hash(&[b'c', v])).collect();
    for (v, key) in keys.iter().enumerate() {
        let record = Record::new(*key, &[v as u8; 8], Ttl::Never).unwrap();
        let from = 1 + (v as u16 % 39);
        net.nodes[from as usize].put(net.now, record).unwrap();
        net.wait_for(from, |e| matches!(e, Event::PutFinished { .. }));
    }
    let window = GAMMA.saturating_mul(u64::from(DELTA));
    let mut rng = microkad::rng::Rng::new(2024);
    for round in 0..20u16 {
        // Crash a random live node other than the seed.
        let live: Vec<u16> = (1..40 + round).filter(|i| !net.down.contains(i)).collect();
        let victim = live[rng.below(live.len() as u64) as usize];
        net.down.insert(victim);
        // A newcomer joins through a live node.
        let newcomer = 40 + round;
        let via = live.iter().copied().find(|&i| i != victim).unwrap();
        net.nodes[newcomer as usize]
            .bootstrap(net.now, &[via])
            .unwrap();
        net.run_for(window + GAMMA);
        for key in &keys {
            assert!(
                !holders(&net, key).is_empty(),
                "round {round}: a value lost every replica"
            );
        }
    }
    // Every value is still found by a lookup from a live node.
    let asker = (1..60u16).find(|i| !net.down.contains(i)).unwrap();
    for (v, key) in keys.iter().enumerate() {
        let q = net.nodes[asker as usize].get(net.now, *key).unwrap();
        let e = net.wait_for(
            asker,
            |e| matches!(e, Event::GetFinished { query, .. } if *query == q),
        );
        let Event::GetFinished { record, .. } = e else {
            unreachable!()
        };
        assert_eq!(
            record.map(|r| r.value.to_vec()),
            Some(vec![v as u8; 8]),
            "value {v}"
        );
    }
}

#[test]
fn down_lists_report_dead_contacts_to_their_referrer() {
    let cfg = Config {
        network_id: 42,
        maintenance: Maintenance::DownList {
            refresh_interval: Duration::from_secs(3600),
            republish_interval: Duration::from_secs(3600),
        },
        ..Config::default()
    };
    let mut net = Net::new(40, cfg);
    net.join_all_through_seed();
    let victim = 9u16;
    net.down.insert(victim);
    // Everyone looks for the victim: nodes that do not know it meet it
    // through referrers.
    for i in 0..40u16 {
        if i != victim {
            let q = net.nodes[i as usize]
                .find_node(net.now, node_id(victim))
                .unwrap();
            net.wait_for(
                i,
                |e| matches!(e, Event::FoundNodes { query, .. } if *query == q),
            );
        }
    }
    net.run_for(Duration::from_secs(10));
    let sent: u64 = net
        .nodes
        .iter()
        .map(|n| n.metrics().down_reports_sent)
        .sum();
    let received: u64 = net
        .nodes
        .iter()
        .map(|n| n.metrics().down_reports_received)
        .sum();
    assert!(sent > 0 && received > 0, "sent {sent}, received {received}");
    // Every node told about the victim checked it and dropped it.
    for (i, n) in net.nodes.iter().enumerate() {
        if i as u16 != victim && n.metrics().down_reports_received > 0 {
            assert!(
                !n.routing_table().contains(&node_id(victim)),
                "node {i} kept a reported dead node"
            );
        }
    }
}

#[test]
fn periodic_mode_refreshes_and_republishes() {
    let cfg = Config {
        network_id: 42,
        maintenance: Maintenance::Periodic {
            refresh_interval: Duration::from_secs(10),
            republish_interval: Duration::from_secs(15),
        },
        ..Config::default()
    };
    let mut net = Net::new(12, cfg);
    net.join_all_through_seed();
    let record = Record::new(Key::hash(b"periodic"), b"again", Ttl::Never).unwrap();
    net.nodes[2].put(net.now, record.clone()).unwrap();
    net.wait_for(2, |e| matches!(e, Event::PutFinished { .. }));
    let before: u64 = net.nodes.iter().map(|n| n.metrics().lookups_started).sum();
    net.run_for(Duration::from_secs(31));
    let republished: u64 = net.nodes.iter().map(|n| n.metrics().republished).sum();
    let after: u64 = net.nodes.iter().map(|n| n.metrics().lookups_started).sum();
    assert!(
        republished >= holders(&net, &record.key).len() as u64,
        "every holder republished"
    );
    assert!(
        after - before >= 12 * 3,
        "every node refreshed three times: {}",
        after - before
    );
    // Maintenance lookups finish without events reaching the embedder.
    assert!(
        !net.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Bootstrapped { .. } | Event::PutFinished { .. }))
    );
}

#[test]
fn forged_leave_and_misplaced_give_value_are_ignored() {
    type Small = Node<u16, MemoryStore<4, 16>, 2, 8, 1, 4, 2>;
    let now = Instant::ZERO;
    let cfg = Config {
        replicas: 2,
        ..managed()
    };
    let mut x = Small::new(cfg, Key::ZERO, 1, now);
    let friend = microkad::Peer::new(Key::hash(b"friend"), 5u16);
    x.add_contact(now, friend.clone());
    let send = |x: &mut Small, from: u16, sender: Key, body: Body<u16>| {
        x.handle_input(now, from, &common::datagram(sender, 9, 42, body))
    };
    // A LEAVE in the friend's name from another address changes nothing.
    assert_eq!(send(&mut x, 6, friend.id, Body::Leave), Ok(()));
    assert!(x.routing_table().contains(&friend.id));
    // From the friend itself, it removes the friend.
    assert_eq!(send(&mut x, 5, friend.id, Body::Leave), Ok(()));
    assert!(!x.routing_table().contains(&friend.id));
    // A record handed over for a key far closer to known contacts than to x
    // is refused: x is not in its replica set.
    for i in 0..4u16 {
        let mut id = Key([0xFF; 32]);
        id.0[31] = i as u8;
        x.add_contact(now, microkad::Peer::new(id, 10 + i));
    }
    let far = Record::new(Key([0xFF; 32]), b"x", Ttl::Never).unwrap();
    let giver = Key::hash(b"giver");
    assert_eq!(
        send(
            &mut x,
            7,
            giver,
            Body::GiveValue {
                record: far.clone()
            }
        ),
        Err(microkad::InputError::NotResponsible)
    );
    assert!(x.get_local(&far.key).is_none());
    assert_eq!(x.metrics().values_refused, 1);
    assert_eq!(x.metrics().values_received, 0);
    assert_eq!(
        x.metrics().rejected(),
        1,
        "a refused value is a rejected datagram"
    );
    // One close to x is taken.
    let near = Record::new(Key([0; 32]), b"y", Ttl::Never).unwrap();
    assert_eq!(
        send(
            &mut x,
            7,
            giver,
            Body::GiveValue {
                record: near.clone()
            }
        ),
        Ok(())
    );
    assert!(x.get_local(&near.key).is_some());
    assert_eq!(x.metrics().values_refused, 1);
    assert_eq!(x.metrics().values_received, 1);
}

#[test]
fn a_leaving_node_takes_no_new_contacts() {
    let mut net = Net::new(6, managed());
    net.join_all_through_seed();
    let t = net.now;
    assert!(!net.nodes[2].is_leaving());
    net.nodes[2].leave(t);
    let before = net.nodes[2].routing_table().len();
    let stranger = microkad::Peer::new(Key::hash(b"late joiner"), 5u16);
    net.nodes[2].add_contact(t, stranger.clone());
    assert!(!net.nodes[2].routing_table().contains(&stranger.id));
    assert_eq!(net.nodes[2].routing_table().len(), before);
    assert!(net.nodes[2].is_leaving());
}

#[test]
fn a_lonely_periodic_node_does_not_spin() {
    let cfg = Config {
        network_id: 42,
        maintenance: Maintenance::Periodic {
            refresh_interval: Duration::from_secs(10),
            republish_interval: Duration::from_secs(5),
        },
        ..Config::default()
    };
    let t0 = Instant::from_millis(1);
    let mut n: Node<u16> = Node::new(cfg, Key::hash(b"alone"), 3, t0);
    n.put_local(t0, &Record::new(Key::hash(b"k"), b"v", Ttl::Never).unwrap());
    let t = t0 + Duration::from_secs(5);
    assert_eq!(n.poll_timeout(), Some(t));
    n.handle_timeout(t);
    // Nothing to republish to: the next wakeup is the next timer, not "now".
    assert!(n.poll_timeout().unwrap() > t);
}

/// Sends two STOREs of `key` with different values to a node at the zero id
/// from its contact at address 10, and returns where GIVE_VALUE went after
/// each (the first STORE creates the record, the second changes it).
fn hand_offs_after_two_stores(maintenance: Maintenance, key: Key) -> (Vec<u16>, Vec<u16>) {
    let now = Instant::ZERO;
    let cfg = Config {
        replicas: 4,
        maintenance,
        ..managed()
    };
    let mut x = common::TestNode::new(cfg, Key::ZERO, 1, now);
    // Three contacts at the far end of the key space, all in one bucket.
    for i in 0..3u16 {
        let mut id = Key([0xFF; 32]);
        id.0[31] = i as u8;
        x.add_contact(now, microkad::Peer::new(id, 10 + i));
    }
    // The writer is the contact at address 10.
    let mut writer = Key([0xFF; 32]);
    writer.0[31] = 0;
    let store = |x: &mut common::TestNode, txid: u32, value: &[u8]| {
        let record = Record::new(key, value, Ttl::Never).unwrap();
        let store = common::datagram(writer, txid, 42, Body::Store { record });
        assert_eq!(x.handle_input(now, 10, &store), Ok(()));
        let mut given = Vec::new();
        let mut acks = 0;
        for (to, msg) in common::sent(x) {
            match msg.body {
                Body::GiveValue { record } => {
                    assert_eq!(record.value.as_slice(), value);
                    given.push(to);
                }
                Body::StoreAck { .. } => acks += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(acks, 1, "every STORE is acknowledged");
        given.sort();
        given
    };
    let first = store(&mut x, 1, b"old");
    let second = store(&mut x, 2, b"new");
    (first, second)
}

#[test]
fn only_the_closest_holder_forwards_a_changed_value_and_only_when_managed() {
    let mut near = Key::ZERO;
    near.0[31] = 1;
    let mut far = Key([0xFF; 32]);
    far.0[31] = 0x40;
    // Closest known holder, managed: a new record stays put, a changed one
    // goes to the rest of the replica set except the node it came from.
    assert_eq!(
        hand_offs_after_two_stores(managed().maintenance, near),
        (vec![], vec![11, 12])
    );
    // Not the closest known holder: the closest one forwards, not this one.
    assert_eq!(
        hand_offs_after_two_stores(managed().maintenance, far),
        (vec![], vec![])
    );
    // Classic Kademlia: no hand-offs at all.
    assert_eq!(
        hand_offs_after_two_stores(Maintenance::Off, near),
        (vec![], vec![])
    );
}

#[test]
fn a_keepalive_goes_only_to_contacts_silent_for_gamma() {
    let t0 = Instant::from_millis(1_000);
    let mut x = common::TestNode::new(managed(), Key::ZERO, 1, t0);
    let half = t0 + Duration::from_millis(500);
    x.add_contact(t0, microkad::Peer::new(node_id(1), 1));
    x.add_contact(half, microkad::Peer::new(node_id(2), 2));
    let pinged_at = |x: &mut common::TestNode, t: Instant| {
        assert_eq!(x.poll_timeout(), Some(t));
        x.handle_timeout(t);
        common::sent(x)
            .into_iter()
            .filter(|(_, m)| matches!(m.body, Body::Ping))
            .map(|(to, _)| to)
            .collect::<Vec<u16>>()
    };
    assert_eq!(pinged_at(&mut x, t0 + GAMMA), [1]);
    assert_eq!(pinged_at(&mut x, half + GAMMA), [2]);
    assert_eq!(x.metrics().keepalives_sent, 2);
}

#[test]
fn a_late_pong_to_the_first_keepalive_still_counts() {
    let t0 = Instant::from_millis(1_000);
    let mut x = common::TestNode::new(managed(), Key::ZERO, 1, t0);
    x.add_contact(t0, microkad::Peer::new(node_id(1), 1));
    let mut keepalives = Vec::new();
    for k in 1..=2u64 {
        let t = t0 + GAMMA.saturating_mul(k);
        assert_eq!(x.poll_timeout(), Some(t));
        x.handle_timeout(t);
        for (to, m) in common::sent(&mut x) {
            assert!(to == 1 && matches!(m.body, Body::Ping), "{m:?}");
            keepalives.push(m.header.txid);
        }
    }
    assert_eq!(keepalives.len(), 2);
    assert_eq!(keepalives[0], keepalives[1], "the repeat reuses the txid");
    // The PONG to the first keepalive arrives after the second was sent.
    let now = x.now();
    let pong = common::datagram(node_id(1), keepalives[0], 42, Body::Pong);
    assert_eq!(x.handle_input(now, 1, &pong), Ok(()));
    assert_eq!(x.routing_table().get(&node_id(1)).unwrap().failures, 0);
}

#[test]
fn hand_offs_beyond_the_queue_are_counted_as_dropped() {
    let capacity = microkad::node::HANDOFF_CAPACITY;
    let now = Instant::ZERO;
    let mut x = common::TestNode::new(managed(), Key::ZERO, 1, now);
    x.put_local(now, &Record::new(Key::ZERO, b"v", Ttl::Never).unwrap());
    // Each newcomer (one per bucket) is owed the record: one hand-off each.
    for b in 0..=capacity {
        let mut id = Key::ZERO;
        id.0[0] = 0x80 >> b;
        x.add_contact(now, microkad::Peer::new(id, 10 + b as u16));
    }
    assert_eq!(x.routing_table().len(), capacity + 1);
    assert_eq!(x.metrics().handoffs_dropped, 1);
    let given = common::sent(&mut x)
        .iter()
        .filter(|(_, m)| matches!(m.body, Body::GiveValue { .. }))
        .count();
    assert_eq!(given, capacity);
}

/// An id whose first byte is `first` and last byte `last`, zero elsewhere.
fn id_of(first: u8, last: u8) -> Key {
    let mut id = Key::ZERO;
    id.0[0] = first;
    id.0[31] = last;
    id
}

/// Where GIVE_VALUE datagrams go, and with which keys.
fn give_values(x: &mut common::TestNode) -> Vec<(u16, Key)> {
    common::sent(x)
        .into_iter()
        .filter_map(|(to, m)| match m.body {
            Body::GiveValue { record } => Some((to, record.key)),
            _ => None,
        })
        .collect()
}

/// A managed node at the zero id whose replica sets have two members.
fn managed_at_zero_with_two_replicas(now: Instant) -> common::TestNode {
    let cfg = Config {
        replicas: 2,
        ..managed()
    };
    common::TestNode::new(cfg, Key::ZERO, 1, now)
}

#[test]
fn a_newcomer_is_handed_only_the_records_whose_replica_set_it_enters() {
    let now = Instant::ZERO;
    let mut x = managed_at_zero_with_two_replicas(now);
    x.add_contact(now, microkad::Peer::new(id_of(0xFF, 0), 10));
    // Replica sets of two: {x, newcomer} for the first key, {x, 10} for
    // the second.
    let (near, far) = (id_of(0x40, 1), id_of(0x80, 0));
    for key in [near, far] {
        x.put_local(now, &Record::new(key, b"v", Ttl::Never).unwrap());
    }
    x.add_contact(now, microkad::Peer::new(id_of(0x40, 0), 20));
    assert_eq!(give_values(&mut x), [(20, near)]);
}

#[test]
fn a_departure_hands_the_record_to_the_node_that_enters_the_replica_set() {
    let now = Instant::ZERO;
    let mut x = managed_at_zero_with_two_replicas(now);
    let key = id_of(0, 0x10);
    // Distances to the key: 11 < x < 12 < 13, so the set is {11, x}.
    let (departing, next, farther) = (id_of(0, 0x11), id_of(0, 0x20), id_of(0x80, 0));
    for (id, addr) in [(departing, 11), (next, 12), (farther, 13)] {
        x.add_contact(now, microkad::Peer::new(id, addr));
    }
    x.put_local(now, &Record::new(key, b"v", Ttl::Never).unwrap());
    assert!(give_values(&mut x).is_empty());
    // A node outside the set leaves: the set is unchanged, nothing to hand.
    let leave = common::datagram(farther, 1, 42, Body::Leave);
    assert_eq!(x.handle_input(now, 13, &leave), Ok(()));
    assert!(!x.routing_table().contains(&farther));
    assert!(give_values(&mut x).is_empty());
    let leave = common::datagram(departing, 1, 42, Body::Leave);
    assert_eq!(x.handle_input(now, 11, &leave), Ok(()));
    assert!(!x.routing_table().contains(&departing));
    assert_eq!(give_values(&mut x), [(12, key)]);
}

#[test]
fn a_keepalive_does_not_replace_a_promoted_contact_s_check() {
    let t0 = Instant::from_millis(1_000);
    let mut x = common::TestNode::new(managed(), Key::ZERO, 1, t0);
    // A full bucket (four ids whose first bit differs from ours) and a
    // newcomer for it waiting in the replacement cache.
    for i in 0..4u8 {
        x.add_contact(t0, microkad::Peer::new(id_of(0xFF, i), 10 + u16::from(i)));
    }
    let newcomer = id_of(0x80, 0);
    x.add_contact(t0, microkad::Peer::new(newcomer, 20));
    assert!(!x.routing_table().contains(&newcomer));
    // Contact 10 leaves; the newcomer is promoted and must answer a PING.
    let half = t0 + Duration::from_millis(500);
    let leave = common::datagram(id_of(0xFF, 0), 1, 42, Body::Leave);
    assert_eq!(x.handle_input(half, 10, &leave), Ok(()));
    let check = common::sent(&mut x)
        .into_iter()
        .find(|(to, m)| *to == 20 && matches!(m.body, Body::Ping))
        .expect("the promoted contact is checked")
        .1
        .header
        .txid;
    // Keepalives fall due before the answer, the newcomer's too (γ after
    // its promotion): its check is left alone.
    let mut pinged = Vec::new();
    for t in [t0 + GAMMA, half + GAMMA] {
        x.handle_timeout(t);
        for (to, m) in common::sent(&mut x) {
            if matches!(m.body, Body::Ping) {
                pinged.push(to);
            }
        }
    }
    assert_eq!(pinged, [11, 12, 13]);
    let pong = common::datagram(newcomer, check, 42, Body::Pong);
    assert_eq!(x.handle_input(half + GAMMA, 20, &pong), Ok(()));
    assert!(x.routing_table().contains(&newcomer));
    assert_eq!(x.metrics().promotions_failed, 0);
}
