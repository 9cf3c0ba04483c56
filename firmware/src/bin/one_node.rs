//! Footprint probe: one full node (k = 4, 20 buckets, 3 lookups of 12
//! candidates, a store of 32 values of 64 bytes: the crate's default `Node`)
//! in a static, with one datagram buffer.
//!
//! Every input comes through `core::hint::black_box`, so the optimiser must
//! keep every path a real device would use: decoding and answering each
//! request type, lookups, bootstrap, put, get, find_node, timers, events.
//! `cargo size --release --bin one_node` then measures what one node costs.
//! Run, it does one turn of its loop and exits 0. It prints nothing, so that
//! no formatting code is counted.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::entry;
use microkad::{Address, Config, Instant, Key, Node, Record, Ttl};
use microkad_firmware::{build, exit, slot};

/// The crate's default node, with one-byte link addresses.
type FullNode = Node<u8>;
const MSG: usize = <u8 as Address>::MAX_MESSAGE_LEN;

#[entry]
fn main() -> ! {
    let config = Config {
        network_id: black_box(1),
        ..Config::default()
    };
    let node = build(slot!(FullNode), || {
        FullNode::new(config, Key::hash(b"device"), black_box(7), Instant::ZERO)
    });
    // One buffer for both directions, as `transport::pump` uses it.
    let buf = build(slot!([u8; MSG]), || [0; MSG]);
    let mut now = Instant::ZERO;
    loop {
        now = now.max(black_box(Instant::from_millis(0)));
        // A datagram from the radio (here: whatever black_box says).
        let len = black_box(0usize).min(MSG);
        let from = black_box(1u8);
        let _ = node.handle_input(now, from, &black_box(&*buf)[..len]);
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        // A command from the application.
        let key = Key::hash(black_box(b"sensor"));
        let _ = match black_box(0u8) {
            1 => node.bootstrap(now, &[black_box(2u8)]),
            2 => match Record::new(key, black_box(b"21.5"), Ttl::Seconds(black_box(60))) {
                Ok(r) => node.put(now, r),
                Err(_) => continue,
            },
            3 => node.get(now, key),
            4 => node.find_node(now, key),
            5 => {
                node.leave(now);
                continue;
            }
            _ => Ok(microkad::QueryId(0)),
        };
        while let Some(t) = node.poll_transmit(&mut buf[..]) {
            black_box((&buf[..t.len], t.destination));
        }
        while let Some(event) = node.poll_event() {
            black_box(&event);
        }
        if !black_box(false) {
            exit(true);
        }
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    exit(false)
}
