//! How much memory a node takes: `core::mem::size_of` of a `Node` for
//! bucket sizes k = 2, 3, 4, 8 and 20 and a few address types, and of its
//! main parts. Nothing is allocated anywhere, so these are the whole story.
//!
//! ```text
//! cargo run --example footprint
//! ```
//!
//! The numbers are for the machine that runs this (64-bit here). The
//! firmware prints the same table as laid out on a Cortex-M
//! (`firmware/run.sh`, binary `sizes`); see docs/DEVICES.md.

use core::mem::size_of;
use std::net::{SocketAddr, SocketAddrV4};

use microkad::routing::RoutingTable;
use microkad::transport::serial::{DEFAULT_CAPACITY, SerialTransport};
use microkad::transport::{MemoryHub, MemoryTransport};
use microkad::{Address, Event, MemoryStore, Node, Record};

/// The default store: 32 records of up to 64 value bytes.
type Store = MemoryStore<32, 64>;

macro_rules! node_row {
    ($a:ty, $name:expr) => {{
        println!(
            "{:<16}{:>9}{:>9}{:>9}{:>9}{:>9}",
            $name,
            size_of::<Node<$a, Store, 2>>(),
            size_of::<Node<$a, Store, 3>>(),
            size_of::<Node<$a, Store, 4>>(),
            size_of::<Node<$a, Store, 8>>(),
            size_of::<Node<$a, Store, 20>>(),
        );
    }};
}

macro_rules! part_row {
    ($a:ty, $name:expr) => {{
        println!(
            "{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            $name,
            size_of::<RoutingTable<$a, 4, 20>>(),
            size_of::<Node<$a, Store, 4, 20, 4>>() - size_of::<Node<$a, Store, 4, 20, 3>>(),
            size_of::<Node<$a, Store, 4, 20, 3, 13>>() - size_of::<Node<$a, Store, 4, 20, 3, 12>>(),
            size_of::<Event<$a, 4>>(),
            <$a as Address>::MAX_MESSAGE_LEN,
            size_of::<Node<$a, Store, 4>>()
                - size_of::<RoutingTable<$a, 4, 20>>()
                - size_of::<Store>(),
        );
    }};
}

fn main() {
    println!(
        "size_of::<Node<A, MemoryStore<32, 64>, K>>() in bytes (B = 20 buckets, L = 3 lookups of C = 12 candidates)"
    );
    println!(
        "{:<16}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "address A", "k = 2", "k = 3", "k = 4", "k = 8", "k = 20"
    );
    node_row!(u8, "u8");
    node_row!(u16, "u16");
    node_row!(u32, "u32");
    node_row!(SocketAddrV4, "SocketAddrV4");
    node_row!(SocketAddr, "SocketAddr");

    println!();
    println!("Parts of the k = 4 node (bytes)");
    println!(
        "{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "address A", "table", "+lookup", "+cand.", "Event", "max dgram", "rest"
    );
    part_row!(u8, "u8");
    part_row!(SocketAddrV4, "SocketAddrV4");
    part_row!(SocketAddr, "SocketAddr");
    println!(
        "store MemoryStore<32, 64>: {} bytes; one Record (value up to 256 bytes): {} bytes",
        size_of::<Store>(),
        size_of::<Record>()
    );
    println!(
        "(table: the routing table; +lookup: one more lookup slot (L = 4 vs 3); +cand.: one more"
    );
    println!(
        " candidate per lookup (C = 13 vs 12, all L = 3 slots); rest: everything but table and store)"
    );

    println!();
    println!("I/O (bytes)");
    println!(
        "SerialTransport<_, {DEFAULT_CAPACITY}> (two frame buffers):   {}",
        size_of::<SerialTransport<()>>()
    );
    println!(
        "MemoryHub<3, 6, 256> (the firmware's hub):        {}",
        size_of::<MemoryHub<3, 6, 256>>()
    );
    println!(
        "MemoryTransport (a handle on a hub):              {}",
        size_of::<MemoryTransport<'static, 3, 6, 256>>()
    );
    println!(
        "one datagram buffer, u8 addresses:                {}",
        <u8 as Address>::MAX_MESSAGE_LEN
    );
}
