#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! A Kademlia distributed hash table for microcontrollers, peer-to-peer
//! stacks and large simulations.
//!
//! microkad is a **sans-IO** state machine: datagrams and the current time go
//! in, datagrams, events and the next deadline come out. It never reads a
//! clock, never opens a socket and never allocates; every table has a
//! capacity fixed at compile time, so a node's memory is `size_of::<Node>()`.
//! The same [`Node`] runs on a Cortex-M, over UDP, over a serial link and in
//! the simulator.
//!
//! # The calling contract
//!
//! 1. Feed input: [`Node::handle_input`] for each datagram, [`Node::handle_timeout`]
//!    when the deadline from [`Node::poll_timeout`] passes, or a command
//!    ([`Node::bootstrap`], [`Node::find_node`], [`Node::get`], [`Node::put`]).
//! 2. Drain output: call [`Node::poll_transmit`] until `None` and send each
//!    datagram; call [`Node::poll_event`] until `None`.
//! 3. Read [`Node::poll_timeout`] and call `handle_timeout` no later than that
//!    (early or repeated calls are harmless).
//!
//! Time is an [`Instant`] in milliseconds from any origin the embedder likes;
//! randomness comes from the seed given to [`Node::new`], so runs replay.
//!
//! # Example: two nodes, one value
//!
//! ```
//! use microkad::{Config, Event, Instant, Key, Maintenance, Node, Record, Ttl};
//!
//! // Addresses are whatever the embedder uses; here, small integers.
//! type Kad = Node<u8>;
//! let now = Instant::ZERO;
//! // No background maintenance, so that the network falls quiet at the end.
//! let config = Config { network_id: 7, maintenance: Maintenance::Off, ..Config::default() };
//! let mut nodes = [
//!     Kad::new(config.clone(), Key::hash(b"alice"), 1, now),
//!     Kad::new(config, Key::hash(b"bob"), 2, now),
//! ];
//!
//! // A perfect network: deliver datagrams until none is left, collect events.
//! fn run(nodes: &mut [Kad; 2], now: Instant) -> Vec<(usize, Event<u8, 4>)> {
//!     let mut buf = [0u8; <u8 as microkad::Address>::MAX_MESSAGE_LEN];
//!     let mut events = Vec::new();
//!     loop {
//!         let mut idle = true;
//!         for from in 0..2 {
//!             while let Some(t) = nodes[from].poll_transmit(&mut buf) {
//!                 idle = false;
//!                 let datagram = buf[..t.len].to_vec();
//!                 let _ = nodes[t.destination as usize].handle_input(now, from as u8, &datagram);
//!             }
//!             while let Some(e) = nodes[from].poll_event() {
//!                 events.push((from, e));
//!             }
//!         }
//!         if idle {
//!             return events;
//!         }
//!     }
//! }
//!
//! // Bob joins through Alice (address 0).
//! nodes[1].bootstrap(now, &[0]).unwrap();
//! let events = run(&mut nodes, now);
//! assert!(matches!(events[..], [(1, Event::Bootstrapped { contacts: 1, .. })]));
//!
//! // Bob stores a value; it lands on Alice, the closest (and only) other node.
//! let record = Record::new(Key::hash(b"greeting"), b"hello", Ttl::Seconds(3600)).unwrap();
//! nodes[1].put(now, record.clone()).unwrap();
//! let events = run(&mut nodes, now);
//! assert!(matches!(events[..], [(1, Event::PutFinished { stored: 1, .. })]));
//!
//! // Anyone can now find it.
//! assert_eq!(nodes[0].get_local(&record.key).unwrap().value, record.value);
//! nodes[1].get(now, record.key).unwrap();
//! let events = run(&mut nodes, now);
//! let [(1, Event::GetFinished { record: Some(found), .. })] = &events[..] else { panic!() };
//! assert_eq!(&found.value[..], b"hello");
//!
//! // No timer is pending except the record's expiry on Alice.
//! assert_eq!(nodes[1].poll_timeout(), None);
//! assert!(nodes[0].poll_timeout().is_some());
//! ```
//!
//! # Features
//!
//! - `std`: `std` support (error traits, the UDP transport).
//! - `log` / `defmt`: logging through the `log` crate or `defmt`; mutually
//!   exclusive. With neither, logging compiles to nothing.
//! - `sim`: the simulator (implies `std`).
//!
//! # Modules
//!
//! [`id`] (keys, distance), [`time`], [`config`], [`wire`] (messages and
//! codec), [`routing`] (k-buckets), [`store`] (records), [`query`] (lookups),
//! [`node`] (the state machine), [`event`], [`metrics`], [`transport`] (the I/O
//! seam).

#[macro_use]
mod macros;

pub mod config;
pub mod event;
pub mod id;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod query;
pub mod rng;
pub mod routing;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod store;
pub mod time;
pub mod transport;
pub mod wire;

pub use config::{Config, LookupEnd, Maintenance};
pub use event::{Event, RemovalReason};
pub use id::{Distance, Key, NodeId};
pub use metrics::Metrics;
pub use node::{CommandError, InputError, Node, Transmit};
pub use peer::{Address, Peer};
pub use query::{LookupKind, LookupStats, QueryId, Termination};
pub use store::{MemoryStore, Record, Store, StoreStatus, Ttl};
pub use time::{Duration, Instant};
pub use transport::Transport;
