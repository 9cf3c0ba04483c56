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

#[cfg(test)]
mod tests {
    use super::memory::{MemoryHub, MemoryTransport};
    use super::*;
    use crate::{Address, Config, Key};
    use core::cell::RefCell;

    const LEN: usize = <u8 as Address>::MAX_MESSAGE_LEN;

    #[test]
    fn pump_sends_at_once_and_fires_timers_when_due_not_before() {
        let hub = RefCell::new(MemoryHub::<2, 4, LEN>::new());
        hub.borrow_mut().set_down(1, true); // the seed is gone
        let mut link = MemoryTransport::new(&hub, 0);
        let config = Config::default();
        let timeout = config.request_timeout;
        let start = Instant::from_millis(1);
        let mut node: Node<u8> = Node::new(config, Key::hash(b"joiner"), 1, start);
        node.bootstrap(start, &[1]).unwrap();
        let mut buf = [0u8; LEN];
        let mut events = 0;
        let next = pump(&mut node, &mut link, start, &mut buf, |_| events += 1).unwrap();
        assert_eq!(hub.borrow().dropped(), 1, "the PING to the seed went out");
        assert!(next.is_some_and(|t| t <= start + timeout), "{next:?}");
        let early = Instant::from_millis(start.as_millis() + timeout.as_millis() - 1);
        pump(&mut node, &mut link, early, &mut buf, |_| events += 1).unwrap();
        assert_eq!(node.metrics().timeouts, 0);
        pump(&mut node, &mut link, start + timeout, &mut buf, |_| {
            events += 1
        })
        .unwrap();
        assert_eq!(node.metrics().timeouts, 1, "the seed's PING timed out");
        assert_eq!(events, 1, "and the join ended");
    }
}
