//! Twenty nodes on real UDP sockets on 127.0.0.1: they join through one seed,
//! store 100 values, read every one back from other nodes, lose a node, and
//! still read every value.
//!
//! One thread drives all twenty sockets, so the only nondeterminism left is
//! the ports the OS picks. The clock is virtual: it jumps to the next
//! deadline only when a full pass over every socket moved no datagram, so a
//! slow machine can never make a request time out.
#![cfg(feature = "std")]

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use microkad::transport::{UdpTransport, pump};
use microkad::{Config, Event, Instant, Key, MemoryStore, Node, QueryId, Record, Store, Ttl};

const NODES: usize = 20;
const VALUES: usize = 100;

type UdpNode = Node<SocketAddr, MemoryStore<256, 64>>;
type UdpEvent = Event<SocketAddr, 4>;

struct Net {
    nodes: Vec<Option<(Box<UdpNode>, UdpTransport)>>,
    addrs: Vec<SocketAddr>,
    now: Instant,
    events: Vec<(usize, UdpEvent)>,
    buf: Vec<u8>,
    started: std::time::Instant,
}

impl Net {
    fn new(config: Config) -> Net {
        let now = Instant::from_millis(1);
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..NODES {
            let transport = UdpTransport::bind("127.0.0.1:0").expect("bind");
            addrs.push(transport.local_addr().unwrap());
            let id = Key::hash(format!("udp node {i}").as_bytes());
            let node = Box::new(UdpNode::new(config.clone(), id, 7 + i as u64, now));
            nodes.push(Some((node, transport)));
        }
        Net {
            nodes,
            addrs,
            now,
            events: Vec::new(),
            buf: vec![0u8; microkad::wire::MAX_MESSAGE_LEN],
            started: std::time::Instant::now(),
        }
    }

    fn node(&mut self, i: usize) -> &mut UdpNode {
        &mut self.nodes[i].as_mut().expect("node is up").0
    }

    /// Pumps every live node once; whether any datagram moved, and the
    /// earliest deadline.
    fn pass(&mut self) -> (bool, Option<Instant>) {
        let mut moved = false;
        let mut next: Option<Instant> = None;
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            let Some((node, transport)) = slot else {
                continue;
            };
            let before = *transport.stats();
            let events = &mut self.events;
            let deadline = pump(&mut **node, transport, self.now, &mut self.buf, |e| {
                events.push((i, e))
            })
            .expect("socket error");
            let after = transport.stats();
            moved |= after.datagrams_in != before.datagrams_in
                || after.datagrams_out != before.datagrams_out;
            next = next.into_iter().chain(deadline).min();
        }
        (moved, next)
    }

    /// Runs until node `i` reports the end of query `q`, and returns it.
    fn wait(&mut self, i: usize, q: QueryId) -> UdpEvent {
        let mut found = None;
        self.run(Instant::MAX, |events| {
            let pos = events.iter().position(|(n, e)| {
                *n == i
                    && matches!(e,
                        Event::Bootstrapped { query, .. }
                        | Event::GetFinished { query, .. }
                        | Event::PutFinished { query, .. }
                        | Event::FoundNodes { query, .. } if *query == q)
            });
            found = pos.map(|p| events.remove(p).1);
            found.is_some()
        });
        found.unwrap()
    }

    /// Runs until `done` says so or the virtual clock reaches `until`.
    fn run(&mut self, until: Instant, mut done: impl FnMut(&mut Vec<(usize, UdpEvent)>) -> bool) {
        let mut idle_passes = 0;
        loop {
            let (moved, next) = self.pass();
            if done(&mut self.events) {
                return;
            }
            assert!(
                self.started.elapsed() < StdDuration::from_secs(60),
                "the network is stuck at {:?}",
                self.now
            );
            if moved {
                idle_passes = 0;
                continue;
            }
            // Nothing moved in a whole pass. Loopback delivery is immediate,
            // but give the kernel one more look before time jumps.
            idle_passes += 1;
            if idle_passes < 2 {
                std::thread::sleep(StdDuration::from_micros(200));
                continue;
            }
            idle_passes = 0;
            if self.now >= until {
                return;
            }
            let next = next.expect("a timer is pending").min(until);
            self.now = self.now.max(next);
        }
    }

    /// Stops node `i`: its socket closes, its records are gone.
    fn stop(&mut self, i: usize) {
        self.nodes[i] = None;
    }
}

fn key(v: usize) -> Key {
    Key::hash(format!("key {v}").as_bytes())
}

fn value(v: usize) -> Vec<u8> {
    format!("value number {v}").into_bytes()
}

/// Gets every value from a node other than `skip` and other than its
/// putter, checking the value.
fn get_all(net: &mut Net, round: usize, down: Option<usize>) {
    for v in 0..VALUES {
        let putter = v % NODES;
        let mut reader = (putter + 1 + (v * 7 + round) % (NODES - 1)) % NODES;
        while Some(reader) == down || reader == putter {
            reader = (reader + 1) % NODES;
        }
        let now = net.now;
        let q = net.node(reader).get(now, key(v)).expect("get starts");
        match net.wait(reader, q) {
            Event::GetFinished {
                record: Some(r), ..
            } => assert_eq!(
                &r.value[..],
                &value(v)[..],
                "value {v} read by node {reader}"
            ),
            other => panic!("value {v} not found by node {reader} (round {round}): {other:?}"),
        }
    }
}

#[test]
fn twenty_nodes_store_and_find_a_hundred_values_and_survive_a_lost_node() {
    let config = Config {
        network_id: 0x0dd,
        ..Config::default()
    };
    let mut net = Net::new(config);

    // Everyone joins through node 0.
    let seed = net.addrs[0];
    for i in 1..NODES {
        let now = net.now;
        let q = net
            .node(i)
            .bootstrap(now, &[seed])
            .expect("bootstrap starts");
        let Event::Bootstrapped { contacts, .. } = net.wait(i, q) else {
            unreachable!()
        };
        assert!(contacts >= 1, "node {i} joined with no contact");
    }
    for i in 0..NODES {
        let n = net.node(i).routing_table().len();
        assert!(n >= 4, "node {i} knows only {n} contacts");
    }

    // 100 values, put by every node in turn.
    for v in 0..VALUES {
        let putter = v % NODES;
        let record = Record::new(key(v), &value(v), Ttl::Never).unwrap();
        let now = net.now;
        let q = net.node(putter).put(now, record).expect("put starts");
        let Event::PutFinished { stored, .. } = net.wait(putter, q) else {
            unreachable!()
        };
        assert!(stored >= 2, "value {v} stored on {stored} nodes only");
    }

    get_all(&mut net, 0, None);

    // Stop the node that holds the most records, then read everything again.
    let victim = (0..NODES)
        .max_by_key(|&i| net.node(i).store().len())
        .unwrap();
    let held = net.node(victim).store().len();
    net.stop(victim);
    let victim_id = Key::hash(format!("udp node {victim}").as_bytes());
    get_all(&mut net, 1, Some(victim));

    // A minute later, keepalives have found the node dead everywhere, and
    // every value is still there.
    let until = net.now + microkad::Duration::from_secs(60);
    net.run(until, |_| false);
    for i in (0..NODES).filter(|&i| i != victim) {
        assert!(
            !net.node(i).routing_table().contains(&victim_id),
            "node {i} still lists the stopped node"
        );
    }
    get_all(&mut net, 2, Some(victim));

    eprintln!(
        "{NODES} nodes, {VALUES} values, node {victim} (holding {held} records) stopped; \
         {:?} of virtual time, {:?} of real time",
        net.now,
        net.started.elapsed()
    );
}
