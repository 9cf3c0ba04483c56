//! The I/O seam: the [`Transport`] trait and a driver that pumps a [`Node`]
//! through any transport.
//!
//! The node itself never touches I/O; embedders with their own event loop
//! (tokio, embassy, a simulator) call the node's `handle_*`/`poll_*` methods
//! directly. [`pump`] is the small loop for everyone else.

mod memory;
pub mod serial;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub mod udp;

pub use memory::{MemoryHub, MemoryTransport};
pub use serial::SerialTransport;
#[cfg(feature = "std")]
pub use udp::UdpTransport;

use crate::event::Event;
use crate::node::Node;
use crate::peer::Address;
use crate::store::Store;
use crate::time::Instant;

/// Something that moves datagrams: a UDP socket, a serial link, an in-memory
/// queue.
pub trait Transport {
    /// How the transport names peers.
    type Address: Address;
    /// What can go wrong.
    type Error;

    /// Sends one datagram to `to`. Best effort: a datagram may be lost, as
    /// with UDP.
    fn send(&mut self, to: &Self::Address, datagram: &[u8]) -> Result<(), Self::Error>;

    /// Receives one datagram into `buf` without blocking: its length and
    /// sender, or `None` when nothing is waiting. A datagram longer than `buf`
    /// is dropped by the transport.
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<(usize, Self::Address)>, Self::Error>;
}

/// One turn of the driver loop: hands every waiting datagram to `node`, fires
/// due timers, sends everything the node wants sent, and passes every event to
/// `on_event`. Returns when the node next needs [`pump`] (or
/// [`Node::handle_timeout`]) even if no datagram arrives.
///
/// `buf` is used for both directions and should hold
/// [`Address::MAX_MESSAGE_LEN`] bytes. Datagrams the node rejects are counted
/// in its [`Metrics`](crate::Metrics) and otherwise ignored.
pub fn pump<T, S, const K: usize, const B: usize, const L: usize, const C: usize, const I: usize>(
    node: &mut Node<T::Address, S, K, B, L, C, I>,
    transport: &mut T,
    now: Instant,
    buf: &mut [u8],
    mut on_event: impl FnMut(Event<T::Address, K>),
) -> Result<Option<Instant>, T::Error>
where
    T: Transport,
    S: Store,
{
    while let Some((len, from)) = transport.try_recv(buf)? {
        let _ = node.handle_input(now, from, &buf[..len]);
        drain(node, transport, buf, &mut on_event)?;
    }
    if node.poll_timeout().is_some_and(|t| t <= now) {
        node.handle_timeout(now);
    }
    drain(node, transport, buf, &mut on_event)?;
    Ok(node.poll_timeout())
}

/// Sends every pending datagram and reports every pending event.
fn drain<T, S, const K: usize, const B: usize, const L: usize, const C: usize, const I: usize>(
    node: &mut Node<T::Address, S, K, B, L, C, I>,
    transport: &mut T,
    buf: &mut [u8],
    on_event: &mut impl FnMut(Event<T::Address, K>),
) -> Result<(), T::Error>
where
    T: Transport,
    S: Store,
{
    while let Some(t) = node.poll_transmit(buf) {
        transport.send(&t.destination, &buf[..t.len])?;
    }
    while let Some(e) = node.poll_event() {
        on_event(e);
    }
    Ok(())
}
