//! Peers: a node id together with the embedder's address for it.

use core::fmt::Debug;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::id::NodeId;
use crate::wire;

/// The embedder's address type: a socket address, a serial link number, a
/// simulator index, ...
///
/// Addresses travel inside NODES replies, so they must be serde types with a
/// known upper bound on their postcard encoding; that bound sizes every buffer
/// ([`Address::MAX_MESSAGE_LEN`]). With the `defmt` feature they must also
/// implement `defmt::Format`, so that logs can name them ([`MaybeFormat`]).
pub trait Address: Clone + Eq + Debug + Serialize + DeserializeOwned + MaybeFormat {
    /// The longest postcard encoding of any value of this type, in bytes.
    const MAX_ENCODED_LEN: usize;
    /// The longest datagram a node with this address type sends or accepts.
    const MAX_MESSAGE_LEN: usize = wire::max_message_len(Self::MAX_ENCODED_LEN);
}

/// `defmt::Format` with the `defmt` feature, and no bound at all without it:
/// the logging macros name addresses, and defmt can only print `Format` types.
#[cfg(feature = "defmt")]
pub trait MaybeFormat: defmt::Format {}
#[cfg(feature = "defmt")]
impl<T: defmt::Format + ?Sized> MaybeFormat for T {}

/// `defmt::Format` with the `defmt` feature, and no bound at all without it:
/// the logging macros name addresses, and defmt can only print `Format` types.
#[cfg(not(feature = "defmt"))]
pub trait MaybeFormat {}
#[cfg(not(feature = "defmt"))]
impl<T: ?Sized> MaybeFormat for T {}

/// Longest postcard varint for an integer of `bits` bits.
const fn varint_max(bits: usize) -> usize {
    bits.div_ceil(7)
}

impl Address for u8 {
    const MAX_ENCODED_LEN: usize = 1;
}
impl Address for u16 {
    const MAX_ENCODED_LEN: usize = varint_max(16);
}
impl Address for u32 {
    const MAX_ENCODED_LEN: usize = varint_max(32);
}
impl Address for u64 {
    const MAX_ENCODED_LEN: usize = varint_max(64);
}
impl<const N: usize> Address for [u8; N]
where
    [u8; N]: Serialize + DeserializeOwned,
{
    const MAX_ENCODED_LEN: usize = N;
}
impl Address for core::net::SocketAddrV4 {
    // serde encodes (ip octets, port): 4 raw bytes and a u16 varint.
    const MAX_ENCODED_LEN: usize = 4 + varint_max(16);
}
impl Address for core::net::SocketAddrV6 {
    // serde encodes (ip octets, port): 16 raw bytes and a u16 varint.
    const MAX_ENCODED_LEN: usize = 16 + varint_max(16);
}
impl Address for core::net::SocketAddr {
    // enum variant varint, then the larger of the two variants.
    const MAX_ENCODED_LEN: usize = 1 + 16 + varint_max(16);
}

/// A node as other nodes see it: its id and where to reach it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Peer<A> {
    /// The node's id.
    pub id: NodeId,
    /// The embedder's address for the node.
    pub addr: A,
}

impl<A> Peer<A> {
    /// A peer from its id and address.
    pub const fn new(id: NodeId, addr: A) -> Self {
        Peer { id, addr }
    }
}

#[cfg(feature = "defmt")]
impl<A> defmt::Format for Peer<A> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

    fn encoded_len<T: Serialize>(v: &T) -> usize {
        let mut buf = [0u8; 64];
        postcard::to_slice(v, &mut buf).unwrap().len()
    }

    #[test]
    fn declared_bounds_hold_for_extreme_values() {
        assert_eq!(encoded_len(&u32::MAX), u32::MAX_ENCODED_LEN);
        assert_eq!(encoded_len(&u64::MAX), u64::MAX_ENCODED_LEN);
        assert_eq!(encoded_len(&u16::MAX), u16::MAX_ENCODED_LEN);
        let v6 = SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from([0xff; 16]),
            u16::MAX,
            7,
            9,
        ));
        assert_eq!(encoded_len(&v6), SocketAddr::MAX_ENCODED_LEN);
        let v4 = SocketAddrV4::new(Ipv4Addr::new(255, 255, 255, 255), u16::MAX);
        assert_eq!(encoded_len(&v4), SocketAddrV4::MAX_ENCODED_LEN);
        let SocketAddr::V6(v6) = v6 else {
            unreachable!()
        };
        assert_eq!(encoded_len(&v6), SocketAddrV6::MAX_ENCODED_LEN);
        assert_eq!(encoded_len(&[0xffu8; 6]), <[u8; 6]>::MAX_ENCODED_LEN);
    }
}
