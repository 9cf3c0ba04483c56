//! Codec errors: one variant per class of bad input.

use core::fmt;

/// Why a datagram was rejected. Each class of bad input has its own variant,
/// so that metrics can count them apart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// The datagram has no bytes.
    Empty,
    /// The datagram ends inside a field.
    Truncated,
    /// The datagram is longer than the longest valid message.
    TooLong,
    /// The first byte is not a protocol version this crate speaks.
    WrongVersion(u8),
    /// The datagram belongs to another network.
    WrongNetwork(u32),
    /// The message type byte names no known message.
    UnknownMessageType(u8),
    /// A field holds an invalid value: too many contacts, a value longer than
    /// the maximum, an unknown enum tag, a malformed varint, ...
    InvalidField,
    /// Bytes follow the end of a complete message.
    TrailingBytes,
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The output buffer is too small for the message.
    BufferTooSmall,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty datagram"),
            DecodeError::Truncated => f.write_str("truncated datagram"),
            DecodeError::TooLong => f.write_str("datagram longer than the maximum message"),
            DecodeError::WrongVersion(v) => write!(f, "unsupported protocol version {v}"),
            DecodeError::WrongNetwork(n) => write!(f, "datagram for network {n}"),
            DecodeError::UnknownMessageType(t) => write!(f, "unknown message type {t}"),
            DecodeError::InvalidField => f.write_str("invalid field"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after the message"),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small for the message")
    }
}

impl core::error::Error for DecodeError {}
impl core::error::Error for EncodeError {}
