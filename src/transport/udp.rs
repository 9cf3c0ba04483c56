//! A [`Transport`] on a [`std::net::UdpSocket`] (feature `std`).
//!
//! The socket is put in non-blocking mode, so [`Transport::try_recv`] never
//! blocks. [`UdpTransport::wait`] is the one blocking call: it sleeps until a
//! datagram arrives or the node's next deadline passes, which is all a
//! single-threaded event loop needs:
//!
//! ```no_run
//! use microkad::transport::{UdpTransport, pump};
//! use microkad::{Config, Instant, Key, Node};
//! use std::net::SocketAddr;
//!
//! let mut transport = UdpTransport::bind("127.0.0.1:4000")?;
//! let start = std::time::Instant::now();
//! let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
//! let mut node: Node<SocketAddr> = Node::new(Config::default(), Key::hash(b"me"), 1, now());
//! let mut buf = [0u8; microkad::wire::MAX_MESSAGE_LEN];
//! node.bootstrap(now(), &["127.0.0.1:4001".parse().unwrap()]).unwrap();
//! loop {
//!     let next = pump(&mut node, &mut transport, now(), &mut buf, |event| {
//!         println!("{event:?}");
//!     })?;
//!     let timeout = next.map(|t| std::time::Duration::from_millis(t.saturating_since(now()).as_millis()));
//!     transport.wait(timeout)?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Errors: a failed `send_to` (an unreachable or invalid address learnt from
//! the network, a full send buffer) drops the datagram, is logged at `warn`
//! and counted in [`UdpStats::send_errors`], and is *not* returned, so that
//! one bad address cannot stall the node. Receive errors caused by earlier
//! sends (ICMP port unreachable reported as `ConnectionRefused` or
//! `ConnectionReset`) are skipped the same way. Only errors of the socket
//! itself reach the caller.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use super::Transport;

/// Logs through the crate's macros, except under `defmt`: socket addresses and
/// `io::Error` have no `defmt::Format`, so the UDP transport logs to `log` only.
macro_rules! udp_log {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(not(feature = "defmt"))]
        { $level!($($arg)+); }
        #[cfg(feature = "defmt")]
        { if false { let _ = ::core::format_args!($($arg)+); } }
    }};
}

/// Counters of a [`UdpTransport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams that `send_to` refused; dropped.
    pub send_errors: u64,
    /// Receive errors skipped (ICMP reports of earlier sends).
    pub recv_errors: u64,
}

/// A [`Transport`] on a non-blocking UDP socket, addressed by [`SocketAddr`].
///
/// A datagram longer than the buffer given to `try_recv` is truncated by the
/// operating system; the node then rejects it as truncated. Give `try_recv`
/// (or [`pump`](super::pump)) a buffer of
/// [`wire::MAX_MESSAGE_LEN`](crate::wire::MAX_MESSAGE_LEN) bytes.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    stats: UdpStats,
}

impl UdpTransport {
    /// Binds a socket to `addr` (port 0 picks a free port).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::from_socket(UdpSocket::bind(addr)?)
    }

    /// Wraps a bound socket, switching it to non-blocking mode.
    pub fn from_socket(socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(UdpTransport {
            socket,
            stats: UdpStats::default(),
        })
    }

    /// The address the socket is bound to: the node's address for others.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Traffic and error counters.
    pub fn stats(&self) -> &UdpStats {
        &self.stats
    }

    /// The socket back (still non-blocking).
    pub fn into_inner(self) -> UdpSocket {
        self.socket
    }

    /// Blocks until a datagram is waiting or `timeout` has passed (`None`:
    /// no limit); whether a datagram is waiting. A zero timeout only checks.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        if timeout == Some(Duration::ZERO) {
            return self.readable_now();
        }
        self.socket.set_nonblocking(false)?;
        // A zero read timeout is an error for std; anything shorter than a
        // millisecond is rounded up.
        let result = self
            .socket
            .set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))
            .and_then(|()| self.socket.peek_from(&mut [0u8; 1]));
        self.socket.set_nonblocking(true)?;
        match result {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if is_icmp_report(&e) || e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn readable_now(&self) -> io::Result<bool> {
        match self.socket.peek_from(&mut [0u8; 1]) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) if is_icmp_report(&e) || e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Errors a UDP socket reports for an earlier datagram rather than for itself.
fn is_icmp_report(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    )
}

impl Transport for UdpTransport {
    type Address = SocketAddr;
    type Error = io::Error;

    fn send(&mut self, to: &SocketAddr, datagram: &[u8]) -> io::Result<()> {
        match self.socket.send_to(datagram, to) {
            Ok(_) => {
                self.stats.datagrams_out += 1;
                udp_log!(trace, "udp: sent {} bytes to {}", datagram.len(), to);
            }
            Err(e) => {
                self.stats.send_errors += 1;
                udp_log!(warn, "udp: send to {} failed, datagram dropped: {}", to, e);
            }
        }
        Ok(())
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((len, from)) => {
                    self.stats.datagrams_in += 1;
                    udp_log!(trace, "udp: received {} bytes from {}", len, from);
                    return Ok(Some((len, from)));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if is_icmp_report(&e) => {
                    self.stats.recv_errors += 1;
                    udp_log!(debug, "udp: skipped report of an earlier send: {}", e);
                }
                Err(e) => {
                    udp_log!(warn, "udp: receive failed: {}", e);
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_exchange_datagrams_without_blocking() {
        let mut a = UdpTransport::bind("127.0.0.1:0").unwrap();
        let mut b = UdpTransport::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(b.try_recv(&mut buf).unwrap(), None);
        assert!(!b.wait(Some(Duration::ZERO)).unwrap());
        assert!(!b.wait(Some(Duration::from_millis(5))).unwrap());
        a.send(&b.local_addr().unwrap(), b"ping").unwrap();
        assert!(b.wait(Some(Duration::from_secs(5))).unwrap());
        let (len, from) = b.try_recv(&mut buf).unwrap().unwrap();
        assert_eq!((&buf[..len], from), (&b"ping"[..], a.local_addr().unwrap()));
        assert_eq!(b.try_recv(&mut buf).unwrap(), None);
        // A send that the OS refuses is dropped and counted, not returned.
        let nowhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
        a.send(&nowhere, b"x").unwrap();
        assert_eq!(a.stats().send_errors, 1);
        assert_eq!(a.stats().datagrams_out, 1);
        assert_eq!(
            b.stats(),
            &UdpStats {
                datagrams_in: 1,
                ..UdpStats::default()
            }
        );
    }

    #[test]
    fn waiting_reports_a_datagram_already_there_and_keeps_it() {
        let mut a = UdpTransport::bind("127.0.0.1:0").unwrap();
        let mut b = UdpTransport::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        a.send(&to, b"one").unwrap();
        a.send(&to, b"two").unwrap();
        assert!(b.wait(None).unwrap(), "no limit: returns once one is there");
        assert!(
            b.wait(Some(Duration::ZERO)).unwrap(),
            "a zero timeout only checks"
        );
        assert!(b.wait(Some(Duration::from_nanos(1))).unwrap());
        let mut buf = [0u8; 8];
        let mut got = Vec::new();
        while let Some((len, _)) = b.try_recv(&mut buf).unwrap() {
            got.push(buf[..len].to_vec());
        }
        assert_eq!(
            got,
            [b"one".to_vec(), b"two".to_vec()],
            "waiting consumed nothing"
        );
        assert_eq!(b.stats().datagrams_in, 2);
    }

    #[test]
    fn waiting_blocks_until_a_datagram_arrives() {
        let a = UdpTransport::bind("127.0.0.1:0").unwrap();
        let mut b = UdpTransport::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        for timeout in [None, Some(Duration::from_secs(30))] {
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    a.socket().send_to(b"late", to).unwrap();
                });
                assert!(b.wait(timeout).unwrap(), "{timeout:?}");
            });
            let mut buf = [0u8; 8];
            assert_eq!(b.try_recv(&mut buf).unwrap().map(|(len, _)| len), Some(4));
        }
    }

    /// A transport whose socket is connected to a port nobody listens on,
    /// so that Linux reports the ICMP "port unreachable" of a send to it on
    /// the socket (an unconnected socket does not hear of it).
    fn connected_to_a_closed_port() -> (UdpTransport, SocketAddr) {
        let closed = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(closed).unwrap();
        (UdpTransport::from_socket(socket).unwrap(), closed)
    }

    #[test]
    fn a_report_of_an_earlier_send_is_skipped_and_counted() {
        let (mut transport, closed) = connected_to_a_closed_port();
        transport.send(&closed, b"anyone?").unwrap();
        let mut buf = [0u8; 8];
        // Loopback reports at once, but give the report a moment if not.
        for _ in 0..100 {
            assert_eq!(transport.try_recv(&mut buf).unwrap(), None);
            if transport.stats().recv_errors > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            transport.stats(),
            &UdpStats {
                datagrams_out: 1,
                recv_errors: 1,
                ..UdpStats::default()
            }
        );
    }

    #[test]
    fn a_report_of_an_earlier_send_wakes_the_waiter() {
        let (mut transport, closed) = connected_to_a_closed_port();
        transport.send(&closed, b"anyone?").unwrap();
        assert!(transport.wait(Some(Duration::from_secs(30))).unwrap());
        let (mut transport, closed) = connected_to_a_closed_port();
        transport.send(&closed, b"anyone?").unwrap();
        // Only checking: the report may not be there yet.
        for _ in 0..100 {
            if transport.wait(Some(Duration::ZERO)).unwrap() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no report of the refused datagram within a second");
    }

    #[test]
    fn the_socket_handed_back_is_the_bound_one() {
        let transport = UdpTransport::bind("127.0.0.1:0").unwrap();
        let addr = transport.local_addr().unwrap();
        assert_eq!(transport.socket().local_addr().unwrap(), addr);
        let socket = transport.into_inner();
        assert_eq!(socket.local_addr().unwrap(), addr);
        let mut buf = [0u8; 4];
        let empty = socket.recv_from(&mut buf).unwrap_err();
        assert_eq!(empty.kind(), ErrorKind::WouldBlock, "still non-blocking");
        assert!(is_icmp_report(&io::Error::from(
            ErrorKind::ConnectionRefused
        )));
        assert!(is_icmp_report(&io::Error::from(ErrorKind::ConnectionReset)));
        assert!(!is_icmp_report(&io::Error::from(ErrorKind::WouldBlock)));
    }
}
