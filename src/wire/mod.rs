//! The wire protocol: message types and their postcard encoding.
//!
//! A datagram is one version byte followed by the postcard encoding of a
//! [`Header`] and a [`Body`]; `docs/PROTOCOL.md` describes every byte. Decoding
//! validates everything before a message reaches the node: each class of bad
//! input has its own [`DecodeError`], and no input panics.

mod codec;
mod error;
mod message;

pub use codec::{decode, encode};
pub(crate) use codec::{decode_with, encode_nodes, encode_parts};
pub use error::{DecodeError, EncodeError};
pub use message::{Body, Header, Message, MessageKind, RefuseReason};

/// The protocol version this crate speaks; the first byte of every datagram.
/// Version 2 encodes keys as byte strings (a length byte, then 32 bytes);
/// version 1 wrote the 32 bytes alone.
pub const VERSION: u8 = 2;

/// A key on the wire: its length (one varint byte, 32) and its 32 bytes.
pub const KEY_WIRE_LEN: usize = 1 + crate::id::KEY_LEN;

/// The longest value a record may carry, in bytes.
pub const MAX_VALUE_LEN: usize = 256;

/// The most contacts a NODES reply may carry. It bounds the `b` parameter and
/// leaves room for k = 20, the classic Kademlia setting.
pub const MAX_CONTACTS: usize = 20;

/// Longest postcard varint encoding of a `u32`.
const VARINT_U32_MAX: usize = 5;

/// The longest header: version byte, network id (varint u32), transaction id
/// (4 bytes), sender id ([`KEY_WIRE_LEN`] bytes).
pub const MAX_HEADER_LEN: usize = 1 + VARINT_U32_MAX + 4 + KEY_WIRE_LEN;

/// The longest encoded [`Record`](crate::store::Record): key, value length
/// (a varint, 2 bytes for up to 16383), value, TTL (variant byte and a varint u32).
pub const MAX_RECORD_LEN: usize = KEY_WIRE_LEN + 2 + MAX_VALUE_LEN + 1 + VARINT_U32_MAX;

/// The longest datagram for an address type whose encoding takes at most
/// `addr_max` bytes: the header, the body's kind byte, and the larger of a full
/// NODES reply (a length byte and [`MAX_CONTACTS`] id/address pairs) and a
/// message carrying one record. [`Address::MAX_MESSAGE_LEN`](crate::Address::MAX_MESSAGE_LEN)
/// applies it to each address type.
pub const fn max_message_len(addr_max: usize) -> usize {
    let nodes = 1 + MAX_CONTACTS * (KEY_WIRE_LEN + addr_max);
    let record = MAX_RECORD_LEN;
    let body = if nodes > record { nodes } else { record };
    MAX_HEADER_LEN + 1 + body
}

/// The longest datagram for a `SocketAddr` node, which is also enough for
/// every other built-in address type except byte arrays longer than 20 bytes
/// (size buffers for those with [`Address::MAX_MESSAGE_LEN`](crate::Address::MAX_MESSAGE_LEN)).
pub const MAX_MESSAGE_LEN: usize = <core::net::SocketAddr as crate::Address>::MAX_MESSAGE_LEN;
