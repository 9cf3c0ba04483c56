//! Three microkad nodes in one Cortex-M3 firmware, talking through an
//! in-memory hub: nodes 1 and 2 join through node 0, node 2 stores a value,
//! node 1 finds it. Prints the result over semihosting and exits QEMU with
//! status 0 on success, 1 on any failure (a panic included).
//!
//! Time is virtual: the loop delivers every datagram, and when none is in
//! flight it jumps the clock to the earliest deadline. A device with a real
//! timer would read it instead; the node cannot tell the difference.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::cell::RefCell;

use cortex_m_rt::entry;
use microkad::transport::{MemoryHub, MemoryTransport, pump};
use microkad::{Config, Event, Instant, Key, MemoryStore, Node, Record, Ttl};
use microkad_firmware::{exit, report};

/// A small node: k = 4, 16 buckets, 2 lookups of 8 candidates, 32 records
/// of up to 64 bytes.
type FwNode = Node<u8, MemoryStore<32, 64>, 4, 16, 2, 8>;
type FwEvent = Event<u8, 4>;

const NODES: usize = 3;
/// Room for the longest datagram these nodes exchange: a NODES reply carries
/// at most k = 4 contacts (176 bytes), a record at most 64 value bytes (146
/// bytes). A longer datagram would be dropped by the hub and counted.
const MSG: usize = 256;
type Hub = MemoryHub<NODES, 6, MSG>;

/// Loop turns before the run counts as stuck.
const MAX_TURNS: u32 = 20_000;

struct World<'a> {
    nodes: [&'a mut FwNode; NODES],
    hub: &'a RefCell<Hub>,
    now: Instant,
    buf: [u8; MSG],
}

impl World<'_> {
    /// Runs until `want` accepts an event of node `who`, which it returns.
    /// Not inlined: its temporaries need not share `main`'s frame with the
    /// nodes' construction.
    #[inline(never)]
    fn run(&mut self, who: usize, want: impl Fn(&FwEvent) -> bool) -> Option<FwEvent> {
        for _ in 0..MAX_TURNS {
            let mut found = None;
            let mut next: Option<Instant> = None;
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let mut transport = MemoryTransport::new(self.hub, i as u8);
                let Ok(deadline) = pump(
                    &mut **node,
                    &mut transport,
                    self.now,
                    &mut self.buf[..],
                    |e| {
                        if i == who && found.is_none() && want(&e) {
                            found = Some(e);
                        }
                    },
                );
                if let Some(e) = found.take() {
                    return Some(e);
                }
                next = match (next, deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            if !self.hub.borrow().has_pending() {
                self.now = self.now.max(next?);
            }
        }
        None
    }
}

fn new_node(config: &Config, i: u8) -> FwNode {
    FwNode::new(
        config.clone(),
        Key::hash(&[b'n', i]),
        u64::from(i) + 1,
        Instant::ZERO,
    )
}

/// Not inlined: `Hub::new` builds the hub, `RefCell::new` moves it, and
/// that copy stays in this short-lived frame rather than in `main`'s.
#[inline(never)]
fn new_hub() -> RefCell<Hub> {
    RefCell::new(Hub::new())
}

fn fail(what: &str) -> ! {
    report!("FAIL: {}", what);
    exit(false)
}

#[entry]
fn main() -> ! {
    report!(
        "microkad on a Cortex-M3: 3 nodes of {} bytes, a hub of {} bytes",
        core::mem::size_of::<FwNode>(),
        core::mem::size_of::<Hub>()
    );
    let config = Config {
        network_id: 0xC0DE,
        // One replica, so that one of the three nodes must ask the others.
        replicas: 1,
        ..Config::default()
    };
    // The nodes and the hub live in `main`'s frame, which never returns: each
    // is built straight into its place. (A static would cost a copy through
    // the stack while it is built, and a node is 13 KB.)
    let mut n0 = new_node(&config, 0);
    let mut n1 = new_node(&config, 1);
    let mut n2 = new_node(&config, 2);
    let hub = new_hub();
    let mut world = World {
        nodes: [&mut n0, &mut n1, &mut n2],
        hub: &hub,
        now: Instant::ZERO,
        buf: [0; MSG],
    };
    match scenario(&mut world) {
        Ok(()) => exit(true),
        Err(what) => fail(what),
    }
}

/// Join, put, get. Not inlined, so that its temporaries (events, records)
/// stay out of `main`'s frame while the nodes are built.
#[inline(never)]
fn scenario(world: &mut World<'_>) -> Result<(), &'static str> {
    for i in 1..NODES {
        let now = world.now;
        world.nodes[i]
            .bootstrap(now, &[0])
            .map_err(|_| "bootstrap refused")?;
        match world.run(i, |e| matches!(e, Event::Bootstrapped { .. })) {
            Some(Event::Bootstrapped { contacts, .. }) if contacts > 0 => {
                report!("node {} joined through node 0: {} contacts", i, contacts)
            }
            _ => return Err("bootstrap"),
        }
    }

    let record = Record::new(
        Key::hash(b"greeting"),
        b"hello from a Cortex-M3",
        Ttl::Never,
    )
    .map_err(|_| "record")?;
    let now = world.now;
    world.nodes[2]
        .put(now, record.clone())
        .map_err(|_| "put refused")?;
    match world.run(2, |e| matches!(e, Event::PutFinished { .. })) {
        Some(Event::PutFinished {
            stored, attempted, ..
        }) if stored > 0 => {
            report!(
                "node 2 put greeting: stored on {} of {} nodes",
                stored,
                attempted
            )
        }
        _ => return Err("put"),
    }

    // A node that does not hold the record asks the network for it.
    let reader = (0..NODES)
        .find(|&i| world.nodes[i].get_local(&record.key).is_none())
        .ok_or("every node holds the record")?;
    let now = world.now;
    world.nodes[reader]
        .get(now, record.key)
        .map_err(|_| "get refused")?;
    let found = match world.run(reader, |e| matches!(e, Event::GetFinished { .. })) {
        Some(Event::GetFinished {
            record: Some(r),
            stats,
            ..
        }) if stats.requests > 0 => {
            report!(
                "node {} get greeting: found after {} requests",
                reader,
                stats.requests
            );
            r
        }
        _ => return Err("get: value not found"),
    };
    if found.value != record.value {
        return Err("get: wrong value");
    }
    let text = core::str::from_utf8(&found.value).unwrap_or("<not utf-8>");
    let hub = world.hub.borrow();
    report!(
        "OK: \"{}\" ({} datagrams delivered, {} dropped, virtual time {} ms)",
        text,
        hub.delivered(),
        hub.dropped(),
        world.now.as_millis()
    );
    Ok(())
}

#[cfg(not(feature = "defmt"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    cortex_m_semihosting::hprintln!("PANIC: {}", info);
    exit(false)
}

#[cfg(feature = "defmt")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    defmt::println!("PANIC");
    exit(false)
}
