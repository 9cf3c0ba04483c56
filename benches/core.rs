//! Criterion benchmarks of the core's hot paths: the codec (every message
//! type), answering a FIND_NODE end to end, and the routing table.
//!
//! `cargo bench --bench core` (add `-- --quick` for a fast pass).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use heapless::Vec as HVec;
use microkad::config::Maintenance;
use microkad::rng::Rng;
use microkad::routing::{Origin, RoutingTable};
use microkad::wire::{self, Body, Header, MAX_CONTACTS, Message, RefuseReason};
use microkad::{Address, Config, Instant, Key, MemoryStore, Node, Peer, Record, StoreStatus, Ttl};

const NET: u32 = 7;
const LEN: usize = <u32 as Address>::MAX_MESSAGE_LEN;

fn header() -> Header {
    Header {
        network: NET,
        txid: 0xDEAD_BEEF,
        sender: Key::hash(b"sender"),
    }
}

fn peers(n: usize) -> HVec<Peer<u32>, MAX_CONTACTS> {
    (0..n)
        .map(|i| Peer::new(Key::hash(&(i as u32).to_le_bytes()), 100_000 + i as u32))
        .collect()
}

fn bodies() -> Vec<(&'static str, Body<u32>)> {
    let record = Record::new(Key::hash(b"key"), &[0xAB; 32], Ttl::Seconds(3600)).unwrap();
    vec![
        ("ping", Body::Ping),
        ("pong", Body::Pong),
        (
            "find_node",
            Body::FindNode {
                target: Key::hash(b"t"),
            },
        ),
        ("nodes_k4", Body::Nodes { contacts: peers(4) }),
        (
            "nodes_k20",
            Body::Nodes {
                contacts: peers(20),
            },
        ),
        (
            "find_value",
            Body::FindValue {
                key: Key::hash(b"k"),
            },
        ),
        (
            "value_32B",
            Body::Value {
                record: record.clone(),
            },
        ),
        (
            "store_32B",
            Body::Store {
                record: record.clone(),
            },
        ),
        (
            "store_ack",
            Body::StoreAck {
                status: StoreStatus::Stored,
            },
        ),
        ("give_value_32B", Body::GiveValue { record }),
        ("leave", Body::Leave),
        (
            "refused",
            Body::Refused {
                reason: RefuseReason::BucketFull,
            },
        ),
        (
            "down",
            Body::Down {
                dead: Key::hash(b"dead"),
            },
        ),
    ]
}

fn codec(c: &mut Criterion) {
    let mut enc = c.benchmark_group("encode");
    for (name, body) in bodies() {
        let msg = Message {
            header: header(),
            body,
        };
        let mut buf = [0u8; LEN];
        enc.bench_function(name, |b| {
            b.iter(|| wire::encode(black_box(&msg), &mut buf).unwrap())
        });
    }
    enc.finish();
    let mut dec = c.benchmark_group("decode");
    for (name, body) in bodies() {
        let mut buf = [0u8; LEN];
        let n = wire::encode(
            &Message {
                header: header(),
                body,
            },
            &mut buf,
        )
        .unwrap();
        let bytes = &buf[..n];
        dec.bench_function(name, |b| {
            b.iter(|| wire::decode::<u32>(black_box(bytes), NET).unwrap())
        });
    }
    dec.finish();
}

/// A node whose table is full (`K` contacts in each of its populated buckets),
/// and a FIND_NODE for a random key from one of its contacts: decode, look up
/// the closest contacts, encode the NODES reply.
fn answering<const K: usize>(c: &mut Criterion, name: &str) {
    let config = Config {
        network_id: NET,
        closest: K as u8,
        maintenance: Maintenance::Off,
        ..Config::default()
    };
    let mut rng = Rng::new(1);
    let mut node: Node<u32, MemoryStore<8, 64>, K, 20, 1, 8> =
        Node::new(config, Key::random(&mut rng), 1, Instant::ZERO);
    for i in 0..5_000u32 {
        node.add_contact(Instant::ZERO, Peer::new(Key::random(&mut rng), i));
    }
    let mut buf = [0u8; LEN];
    while node.poll_transmit(&mut buf).is_some() {}
    // The asker is a contact of the node, so that answering leaves the table
    // as it was; a close one (the last bucket), so that the random target
    // and the excluded asker do not fall in the same bucket.
    let asker = node.routing_table().iter().last().unwrap().peer.clone();
    let request: Message<u32> = Message {
        header: Header {
            network: NET,
            txid: 1,
            sender: asker.id,
        },
        body: Body::FindNode {
            target: Key::random(&mut rng),
        },
    };
    let mut req = [0u8; LEN];
    let n = wire::encode(&request, &mut req).unwrap();
    c.bench_function(name, |b| {
        b.iter(|| {
            node.handle_input(Instant::ZERO, asker.addr, black_box(&req[..n]))
                .unwrap();
            let t = node.poll_transmit(&mut buf).unwrap();
            black_box(t.len)
        })
    });
}

fn find_node_end_to_end(c: &mut Criterion) {
    answering::<4>(c, "answer_find_node/k4");
    answering::<20>(c, "answer_find_node/k20");
}

fn table(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    let local = Key::random(&mut rng);
    let ids: Vec<Key> = (0..1_000).map(|_| Key::random(&mut rng)).collect();
    let mut group = c.benchmark_group("routing_table");
    group.bench_function("insert_1000_k4", |b| {
        b.iter_batched(
            || RoutingTable::<u32, 4, 20>::new(local),
            |mut t| {
                for (i, id) in ids.iter().enumerate() {
                    black_box(t.insert(Peer::new(*id, i as u32), Instant::ZERO, Origin::Outgoing));
                }
                t
            },
            BatchSize::SmallInput,
        )
    });
    let mut t4 = RoutingTable::<u32, 4, 20>::new(local);
    let mut t20 = RoutingTable::<u32, 20, 20>::new(local);
    for i in 0..50_000u32 {
        let id = Key::random(&mut rng);
        t4.insert(Peer::new(id, i), Instant::ZERO, Origin::Outgoing);
        t20.insert(Peer::new(id, i), Instant::ZERO, Origin::Outgoing);
    }
    let target = Key::random(&mut rng);
    let mut out: HVec<Peer<u32>, MAX_CONTACTS> = HVec::new();
    group.bench_function("closest_4_of_k4", |b| {
        b.iter(|| t4.closest_into(black_box(&target), 4, None, &mut out))
    });
    group.bench_function("closest_20_of_k20", |b| {
        b.iter(|| t20.closest_into(black_box(&target), 20, None, &mut out))
    });
    group.finish();
}

criterion_group!(benches, codec, find_node_end_to_end, table);
criterion_main!(benches);
