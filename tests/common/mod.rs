//! A deterministic in-memory network for integration tests: every node is a
//! real `Node`, every datagram is really encoded and decoded, and the clock
//! jumps to the next deadline when nothing is in flight.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};

use microkad::wire::{self, Body, Header, Message};
use microkad::{Config, Duration, Event, Instant, Key, MemoryStore, Node, Store};

pub type TestNode = Node<u16, MemoryStore<64, 256>, 4, 20, 4, 16, 4>;
pub type TestEvent = Event<u16, 4>;

pub struct Net {
    pub nodes: Vec<TestNode>,
    pub now: Instant,
    queue: VecDeque<(u16, u16, Vec<u8>)>,
    pub events: Vec<(u16, TestEvent)>,
    /// Nodes whose traffic is silently lost (crashed or unreachable).
    pub down: HashSet<u16>,
    pub delivered: u64,
}

pub fn node_id(i: u16) -> Key {
    Key::hash(&i.to_be_bytes())
}

impl Net {
    pub fn new(n: u16, config: Config) -> Self {
        let now = Instant::from_millis(1_000);
        let nodes = (0..n)
            .map(|i| TestNode::new(config.clone(), node_id(i), 0xC0FFEE + i as u64, now))
            .collect();
        Net {
            nodes,
            now,
            queue: VecDeque::new(),
            events: Vec::new(),
            down: HashSet::new(),
            delivered: 0,
        }
    }

    /// Moves every pending datagram and event out of every node.
    pub fn flush(&mut self) {
        let mut buf = [0u8; <u16 as microkad::Address>::MAX_MESSAGE_LEN];
        for (i, node) in self.nodes.iter_mut().enumerate() {
            while let Some(t) = node.poll_transmit(&mut buf) {
                self.queue
                    .push_back((i as u16, t.destination, buf[..t.len].to_vec()));
            }
            while let Some(e) = node.poll_event() {
                self.events.push((i as u16, e));
            }
        }
    }

    /// Runs until no datagram is in flight and no timer is pending, or until
    /// `stop` says so; returns the number of steps taken.
    pub fn run_until(&mut self, mut stop: impl FnMut(&Net) -> bool) -> usize {
        let mut steps = 0;
        loop {
            self.flush();
            if stop(self) {
                return steps;
            }
            steps += 1;
            assert!(steps < 10_000_000, "the network never settles");
            if let Some((from, to, bytes)) = self.queue.pop_front() {
                if self.down.contains(&from) || self.down.contains(&to) {
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(to as usize) {
                    self.delivered += 1;
                    let _ = node.handle_input(self.now, from, &bytes);
                }
                continue;
            }
            let next = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.down.contains(&(*i as u16)))
                .filter_map(|(_, n)| n.poll_timeout())
                .min();
            let Some(next) = next else { return steps };
            self.now = self.now.max(next);
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if !self.down.contains(&(i as u16))
                    && node.poll_timeout().is_some_and(|t| t <= self.now)
                {
                    node.handle_timeout(self.now);
                }
            }
        }
    }

    /// Runs for `d` of virtual time (timers keep firing: keepalives never stop).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(|net| net.now >= end);
    }

    /// Runs until nothing is left to do.
    pub fn settle(&mut self) {
        self.run_until(|_| false);
    }

    /// Runs until node `i` reports an event matching `pred`, and returns it.
    pub fn wait_for(&mut self, i: u16, mut pred: impl FnMut(&TestEvent) -> bool) -> TestEvent {
        let mut found = None;
        self.run_until(|net| net.events.iter().any(|(n, e)| *n == i && pred(e)));
        if let Some(pos) = self.events.iter().position(|(n, e)| *n == i && pred(e)) {
            found = Some(self.events.remove(pos).1);
        }
        found.expect("the network settled without the awaited event")
    }

    /// Joins every node but the seed (node 0) through the seed, one by one.
    pub fn join_all_through_seed(&mut self) {
        for i in 1..self.nodes.len() as u16 {
            let q = self.nodes[i as usize]
                .bootstrap(self.now, &[0])
                .expect("bootstrap starts");
            self.wait_for(
                i,
                |e| matches!(e, Event::Bootstrapped { query, .. } if *query == q),
            );
        }
    }
}

/// A datagram from `sender` in network `network`, encoded.
pub fn datagram(sender: Key, txid: u32, network: u32, body: Body<u16>) -> Vec<u8> {
    let mut buf = [0u8; <u16 as microkad::Address>::MAX_MESSAGE_LEN];
    let n = wire::encode(
        &Message {
            header: Header {
                network,
                txid,
                sender,
            },
            body,
        },
        &mut buf,
    )
    .unwrap();
    buf[..n].to_vec()
}

/// Every datagram the node has to send now, decoded (network 42).
pub fn sent<
    S: Store,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize,
>(
    node: &mut Node<u16, S, K, B, L, C, I>,
) -> Vec<(u16, Message<u16>)> {
    let mut buf = [0u8; <u16 as microkad::Address>::MAX_MESSAGE_LEN];
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit(&mut buf) {
        out.push((t.destination, wire::decode(&buf[..t.len], 42).unwrap()));
    }
    out
}
