//! An arbitrary sequence of steps into one `Node`: time passing, datagrams
//! (raw bytes, or well-formed messages aimed at the node's own outstanding
//! requests), and commands. After every step the node's invariants must hold.
//!
//! Peers live at addresses 0..4 with ids `Key::hash(&[addr])`; the node is at
//! `Key::hash(b"fuzzed")`. The first input byte picks the maintenance mode.

#![no_main]

use heapless::Vec as HVec;
use libfuzzer_sys::fuzz_target;
use microkad::wire::{self, Body, Header, Message, RefuseReason};
use microkad::{
    Address, Config, Duration, Instant, Key, Maintenance, MemoryStore, Node, Peer, Record, Store,
    StoreStatus, Ttl,
};

const K: usize = 2;
const B: usize = 8;
const I: usize = 2;
type Fuzzed = Node<u8, MemoryStore<8, 32>, K, B, 2, 6, I>;
const NETWORK: u32 = 5;

/// A little cursor over the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn key(&mut self) -> Key {
        Key::hash(self.bytes(4))
    }
}

fn peer_id(addr: u8) -> Key {
    Key::hash(&[addr])
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let maintenance = match input.byte().unwrap_or(0) % 4 {
        0 => Maintenance::Off,
        1 => Maintenance::Periodic {
            refresh_interval: Duration::from_secs(5),
            republish_interval: Duration::from_secs(7),
        },
        2 => Maintenance::DownList {
            refresh_interval: Duration::from_secs(5),
            republish_interval: Duration::from_secs(7),
        },
        _ => Maintenance::Managed {
            keepalive_interval: Duration::from_secs(1),
            max_missed: 2,
        },
    };
    let config = Config {
        network_id: NETWORK,
        maintenance,
        closest: 2,
        replicas: 3,
        ..Config::default()
    };
    let me = Key::hash(b"fuzzed");
    let mut now = Instant::from_millis(1);
    let mut node = Fuzzed::new(config, me, 1, now);
    let stored_before: usize = 0;
    let _ = stored_before;
    // Requests the node sent: (destination, txid, what was asked).
    let mut sent: std::vec::Vec<(u8, u32, Body<u8>)> = std::vec::Vec::new();
    let mut buf = [0u8; <u8 as Address>::MAX_MESSAGE_LEN];

    while let Some(op) = input.byte() {
        match op % 6 {
            0 => now += Duration::from_millis(u64::from(input.u16().unwrap_or(0))),
            1 => {
                let from = input.byte().unwrap_or(0) % 4;
                let len = input.byte().unwrap_or(0) as usize;
                let raw = input.bytes(len).to_vec();
                let _ = node.handle_input(now, from, &raw);
            }
            2 => {
                // A well-formed message, often answering one of our requests.
                let pick = input.byte().unwrap_or(0);
                let (from, txid, asked) = match sent.get(pick as usize % sent.len().max(1)) {
                    Some((to, txid, body)) if pick & 0x80 == 0 => (*to, *txid, Some(body.kind())),
                    _ => (
                        input.byte().unwrap_or(0) % 4,
                        input.u16().unwrap_or(0) as u32,
                        None,
                    ),
                };
                let sender = if input.byte().unwrap_or(0) % 8 == 0 {
                    input.key()
                } else {
                    peer_id(from)
                };
                let body = match input.byte().unwrap_or(0) % 12 {
                    0 => Body::Ping,
                    1 => Body::Pong,
                    2 => Body::FindNode {
                        target: input.key(),
                    },
                    3 => {
                        let mut contacts = HVec::new();
                        for _ in 0..input.byte().unwrap_or(0) % 5 {
                            let a = input.byte().unwrap_or(0) % 6;
                            let _ = contacts.push(Peer::new(peer_id(a), a));
                        }
                        Body::Nodes { contacts }
                    }
                    4 => Body::FindValue { key: input.key() },
                    5 | 6 | 8 => {
                        let key = input.key();
                        let len = input.byte().unwrap_or(0) as usize % 40;
                        let value = input.bytes(len).to_vec();
                        let ttl = match input.byte().unwrap_or(0) % 3 {
                            0 => Ttl::Never,
                            _ => Ttl::Seconds(u32::from(input.u16().unwrap_or(0))),
                        };
                        let record = Record::new(key, &value, ttl).unwrap();
                        match op / 6 % 3 {
                            0 => Body::Value { record },
                            1 => Body::Store { record },
                            _ => Body::GiveValue { record },
                        }
                    }
                    7 => Body::StoreAck {
                        status: StoreStatus::Stored,
                    },
                    9 => Body::Leave,
                    10 => Body::Refused {
                        reason: RefuseReason::BucketFull,
                    },
                    _ => Body::Down {
                        dead: peer_id(input.byte().unwrap_or(0) % 4),
                    },
                };
                let _ = asked;
                let msg = Message {
                    header: Header {
                        network: NETWORK,
                        txid,
                        sender,
                    },
                    body,
                };
                if let Ok(n) = wire::encode(&msg, &mut buf) {
                    let datagram = buf[..n].to_vec();
                    let _ = node.handle_input(now, from, &datagram);
                }
            }
            3 => {
                let _ = match input.byte().unwrap_or(0) % 6 {
                    0 => node.bootstrap(now, &[0, 1]).map(|_| ()),
                    1 => node.find_node(now, input.key()).map(|_| ()),
                    2 => node.get(now, input.key()).map(|_| ()),
                    3 => {
                        let record =
                            Record::new(input.key(), input.bytes(8), Ttl::Seconds(30)).unwrap();
                        node.put(now, record).map(|_| ())
                    }
                    4 => {
                        let a = input.byte().unwrap_or(0) % 4;
                        node.add_contact(now, Peer::new(peer_id(a), a));
                        Ok(())
                    }
                    _ => {
                        node.leave(now);
                        Ok(())
                    }
                };
            }
            4 => {
                if let Some(t) = node.poll_timeout() {
                    now = now.max(t);
                }
                node.handle_timeout(now);
            }
            _ => node.handle_timeout(now),
        }

        // Drain, remembering what we asked whom.
        while let Some(t) = node.poll_transmit(&mut buf) {
            let msg =
                wire::decode::<u8>(&buf[..t.len], NETWORK).expect("the node sends valid messages");
            assert_eq!(msg.header.sender, me);
            if sent.len() > 64 {
                sent.remove(0);
            }
            sent.push((t.destination, msg.header.txid, msg.body));
        }
        while node.poll_event().is_some() {}

        // Invariants.
        let table = node.routing_table();
        assert!(table.len() <= B * (K + I));
        assert!(!table.contains(&me));
        for (i, bucket) in table.buckets().iter().enumerate() {
            assert!(bucket.contacts().len() <= K && bucket.incoming().len() <= I);
            for c in bucket.iter() {
                assert_eq!(table.bucket_index(&c.peer.id), i);
            }
        }
        assert!(node.store().len() <= 8);
        assert!(node.active_lookups() <= 2);
        if let Some(t) = node.poll_timeout() {
            // A deadline in the past is fine (call now); but never before the node's clock origin.
            assert!(t >= Instant::from_millis(1));
        }
    }
});
