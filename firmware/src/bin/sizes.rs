//! Prints `core::mem::size_of` of a node for k = 2, 3, 4, 8 and 20 as laid
//! out on this target (32-bit pointers), then exits 0. The other parameters
//! are the crate's defaults: 20 buckets, 3 lookups of 12 candidates, a store
//! of 32 values of 64 bytes. `examples/footprint.rs` prints the same table on
//! the host.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::mem::size_of;
use core::net::SocketAddrV4;

use cortex_m_rt::entry;
use microkad::{MemoryStore, Node};
use microkad_firmware::{exit, report};

type Store = MemoryStore<32, 64>;

#[entry]
fn main() -> ! {
    report!("size_of::<Node<A, MemoryStore<32, 64>, K>>() on thumbv7m (B = 20, L = 3, C = 12)");
    report!("k     A = u8   A = SocketAddrV4");
    report!(
        "2     {}     {}",
        size_of::<Node<u8, Store, 2>>(),
        size_of::<Node<SocketAddrV4, Store, 2>>()
    );
    report!(
        "3     {}     {}",
        size_of::<Node<u8, Store, 3>>(),
        size_of::<Node<SocketAddrV4, Store, 3>>()
    );
    report!(
        "4     {}     {}",
        size_of::<Node<u8, Store, 4>>(),
        size_of::<Node<SocketAddrV4, Store, 4>>()
    );
    report!(
        "8     {}     {}",
        size_of::<Node<u8, Store, 8>>(),
        size_of::<Node<SocketAddrV4, Store, 8>>()
    );
    report!(
        "20    {}     {}",
        size_of::<Node<u8, Store, 20>>(),
        size_of::<Node<SocketAddrV4, Store, 20>>()
    );
    report!("store alone: {}", size_of::<Store>());
    exit(true)
}

#[cfg(not(feature = "defmt"))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    exit(false)
}

#[cfg(feature = "defmt")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    exit(false)
}
