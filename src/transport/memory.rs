//! An in-memory network for tests, examples and firmware: no sockets, no
//! allocation.

use core::cell::RefCell;
use core::convert::Infallible;

use heapless::{Deque, Vec};

use super::Transport;

/// Mailboxes for `N` nodes addressed `0..N`, each holding up to `Q` datagrams
/// of up to `M` bytes. A datagram to a full mailbox, to an address out of
/// range, or longer than `M` is dropped, as a real network would, and counted.
#[derive(Debug)]
pub struct MemoryHub<const N: usize, const Q: usize, const M: usize> {
    mailboxes: [Deque<(u8, Vec<u8, M>), Q>; N],
    dropped: u32,
    delivered: u32,
    /// Addresses whose traffic is discarded (a crashed or cut-off node).
    down: [bool; N],
}

impl<const N: usize, const Q: usize, const M: usize> Default for MemoryHub<N, Q, M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const Q: usize, const M: usize> MemoryHub<N, Q, M> {
    /// An empty hub.
    pub fn new() -> Self {
        MemoryHub {
            mailboxes: core::array::from_fn(|_| Deque::new()),
            dropped: 0,
            delivered: 0,
            down: [false; N],
        }
    }

    /// Datagrams dropped so far.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Datagrams delivered to a mailbox so far.
    pub fn delivered(&self) -> u32 {
        self.delivered
    }

    /// Whether any mailbox holds a datagram.
    pub fn has_pending(&self) -> bool {
        self.mailboxes.iter().any(|m| !m.is_empty())
    }

    /// Cuts `addr` off (`true`) or reconnects it: while cut off, everything
    /// sent to or by it is dropped and its mailbox is emptied.
    pub fn set_down(&mut self, addr: u8, down: bool) {
        if let Some(d) = self.down.get_mut(addr as usize) {
            *d = down;
            if down {
                self.mailboxes[addr as usize].clear();
            }
        }
    }

    fn deliver(&mut self, from: u8, to: u8, datagram: &[u8]) {
        let (Some(mailbox), Ok(bytes)) = (
            self.mailboxes.get_mut(to as usize),
            Vec::from_slice(datagram),
        ) else {
            self.dropped += 1;
            return;
        };
        if self.down[to as usize] || self.down.get(from as usize).copied().unwrap_or(true) {
            self.dropped += 1;
            return;
        }
        match mailbox.push_back((from, bytes)) {
            Ok(()) => self.delivered += 1,
            Err(_) => self.dropped += 1,
        }
    }

    fn take(&mut self, addr: u8) -> Option<(u8, Vec<u8, M>)> {
        self.mailboxes.get_mut(addr as usize)?.pop_front()
    }
}

/// One node's handle on a [`MemoryHub`].
#[derive(Debug, Clone, Copy)]
pub struct MemoryTransport<'a, const N: usize, const Q: usize, const M: usize> {
    hub: &'a RefCell<MemoryHub<N, Q, M>>,
    addr: u8,
}

impl<'a, const N: usize, const Q: usize, const M: usize> MemoryTransport<'a, N, Q, M> {
    /// The transport of the node at `addr`.
    pub fn new(hub: &'a RefCell<MemoryHub<N, Q, M>>, addr: u8) -> Self {
        MemoryTransport { hub, addr }
    }

    /// This transport's own address.
    pub fn addr(&self) -> u8 {
        self.addr
    }
}

impl<const N: usize, const Q: usize, const M: usize> Transport for MemoryTransport<'_, N, Q, M> {
    type Address = u8;
    type Error = Infallible;

    fn send(&mut self, to: &u8, datagram: &[u8]) -> Result<(), Infallible> {
        self.hub.borrow_mut().deliver(self.addr, *to, datagram);
        Ok(())
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<(usize, u8)>, Infallible> {
        loop {
            let Some((from, bytes)) = self.hub.borrow_mut().take(self.addr) else {
                return Ok(None);
            };
            if let Some(dst) = buf.get_mut(..bytes.len()) {
                dst.copy_from_slice(&bytes);
                return Ok(Some((bytes.len(), from)));
            }
            // Longer than the caller's buffer: dropped, as the trait says.
            self.hub.borrow_mut().dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_and_drops_what_does_not_fit() {
        let hub = RefCell::new(MemoryHub::<3, 2, 8>::new());
        let mut a = MemoryTransport::new(&hub, 0);
        let mut b = MemoryTransport::new(&hub, 1);
        assert_eq!((a.addr(), b.addr()), (0, 1));
        a.send(&1, b"one").unwrap();
        a.send(&1, b"two").unwrap();
        a.send(&1, b"three").unwrap(); // mailbox full
        a.send(&9, b"x").unwrap(); // no such node
        a.send(&1, b"123456789").unwrap(); // longer than M
        assert_eq!(hub.borrow().dropped(), 3);
        assert!(hub.borrow().has_pending());
        let mut buf = [0u8; 8];
        assert_eq!(b.try_recv(&mut buf).unwrap(), Some((3, 0)));
        assert_eq!(&buf[..3], b"one");
        assert!(hub.borrow().has_pending(), "\"two\" is still there");
        let mut tiny = [0u8; 2];
        assert_eq!(
            b.try_recv(&mut tiny).unwrap(),
            None,
            "too long for the buffer: dropped"
        );
        assert!(!hub.borrow().has_pending());
        assert_eq!(hub.borrow().dropped(), 4);
        hub.borrow_mut().set_down(1, true);
        a.send(&1, b"lost").unwrap();
        b.send(&0, b"lost too").unwrap();
        assert_eq!(b.try_recv(&mut buf).unwrap(), None);
        assert_eq!(a.try_recv(&mut buf).unwrap(), None);
        assert_eq!(hub.borrow().dropped(), 6, "to and from a node cut off");
        assert_eq!(hub.borrow().delivered(), 2);
        hub.borrow_mut().set_down(1, false);
        b.send(&0, b"back").unwrap();
        assert_eq!(a.try_recv(&mut buf).unwrap(), Some((4, 1)));
    }
}
