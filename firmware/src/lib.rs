//! Shared pieces of the firmware binaries: exiting QEMU, and the defmt
//! global logger when the `defmt` feature is on.
//!
//! - `three_nodes`: three microkad nodes talk through an in-memory hub,
//!   bootstrap, put and get a value, and report over semihosting.
//! - `one_node`: one full node (k = 4, a store of 32 values of 64 bytes)
//!   driven by opaque inputs, for measuring flash and static RAM.
//! - `sizes`: prints `size_of` of nodes for several k, as laid out on this
//!   target.
#![no_std]
#![deny(unsafe_code)]

#[cfg(feature = "defmt")]
use defmt_semihosting as _;

use core::mem::MaybeUninit;

use cortex_m_semihosting::debug;

/// Ends the QEMU run with exit status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached on hardware without a debugger attached.
    loop {
        cortex_m::asm::wfi();
    }
}

/// A `&'static mut MaybeUninit<$ty>`: fresh uninitialised static memory for
/// one value, reserved once per call site (a second run panics). Fill it with
/// [`build`]. Unlike `cortex_m::singleton!`, nothing passes through the
/// stack: a node is kilobytes.
#[macro_export]
macro_rules! slot {
    ($ty:ty) => {{
        static CELL: ::static_cell::StaticCell<$ty> = ::static_cell::StaticCell::new();
        CELL.uninit()
    }};
}

/// Writes `make()` into `slot` and returns it initialised. Not inlined, so
/// that `make` builds its value straight into the slot, in this function's
/// frame, and no copy lingers in the caller's frame.
#[inline(never)]
pub fn build<T>(slot: &'static mut MaybeUninit<T>, make: impl FnOnce() -> T) -> &'static mut T {
    slot.write(make())
}

/// Prints a line: over plain semihosting, or as a defmt frame under the
/// `defmt` feature (semihosting text would corrupt defmt's binary stream).
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        #[cfg(not(feature = "defmt"))]
        { ::cortex_m_semihosting::hprintln!($($arg)*); }
        #[cfg(feature = "defmt")]
        { ::defmt::println!($($arg)*); }
    }};
}

/// A fault (with flip-link as the linker, a stack overflow is one) ends the
/// run with status 1 instead of hanging until the timeout.
#[allow(unsafe_code)] // cortex-m-rt requires the handler to be an `unsafe fn`.
#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    // No formatting here: the footprint probe must not pay for core::fmt.
    #[cfg(not(feature = "defmt"))]
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        let _ = out.write_all(b"HARD FAULT\n");
    }
    #[cfg(feature = "defmt")]
    defmt::println!("HARD FAULT");
    exit(false)
}
