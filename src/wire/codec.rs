//! Encoding and decoding datagrams.

use serde::ser::SerializeStructVariant;
use serde::{Deserialize, Serialize};

use super::{Body, DecodeError, EncodeError, Header, Message, MessageKind, VERSION};
use crate::id::KEY_LEN;
use crate::peer::{Address, Peer};

/// Encodes `msg` into `out`; the number of bytes written.
pub fn encode<A: Address>(msg: &Message<A>, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_parts(&msg.header, &msg.body, out)
}

/// [`encode`] for a header and a body that are not assembled into a
/// [`Message`] (assembling one would copy the body).
pub(crate) fn encode_parts<B: Serialize>(
    header: &Header,
    body: &B,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let (first, rest) = out.split_first_mut().ok_or(EncodeError::BufferTooSmall)?;
    *first = VERSION;
    let used = postcard::serialize_with_flavor(&(header, body), Datagram { buf: rest, len: 0 })
        .map_err(|_| EncodeError::BufferTooSmall)?;
    Ok(1 + used)
}

/// Postcard's output into a datagram buffer: the bytes of its `Slice`
/// flavour, but keys (32 bytes) and varints (1 to 10) are copied inline.
/// `Slice` copies with a length known only at run time, and callgrind
/// counted 23 calls to `memcpy` per NODES reply of 20 contacts.
struct Datagram<'a> {
    buf: &'a mut [u8],
    len: usize,
}

/// The longest varint postcard writes (a `u64`'s).
const VARINT_MAX: usize = 10;

impl postcard::ser_flavors::Flavor for Datagram<'_> {
    type Output = usize;

    #[inline(always)]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        *slot = byte;
        self.len += 1;
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let out = self
            .buf
            .get_mut(self.len..)
            .and_then(|rest| rest.get_mut(..data.len()))
            .ok_or(postcard::Error::SerializeBufferFull)?;
        match (
            <&mut [u8; KEY_LEN]>::try_from(&mut *out),
            <&[u8; KEY_LEN]>::try_from(data),
        ) {
            (Ok(out), Ok(key)) => *out = *key,
            // Varints (postcard writes them through here too): a few
            // bytes, cheaper moved one by one than by a call.
            _ if data.len() <= VARINT_MAX => {
                for i in 0..VARINT_MAX {
                    if let (Some(o), Some(&d)) = (out.get_mut(i), data.get(i)) {
                        *o = d;
                    }
                }
            }
            _ => out.copy_from_slice(data),
        }
        self.len += data.len();
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// Encodes a NODES reply whose contacts are references (into a routing
/// table): the same bytes as [`Body::Nodes`] holding copies of them.
pub(crate) fn encode_nodes<A: Address>(
    header: &Header,
    contacts: &[&Peer<A>],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    encode_parts(header, &NodesRef(contacts), out)
}

/// The NODES variant of [`Body`], borrowing its contacts.
struct NodesRef<'a, A>(&'a [&'a Peer<A>]);

impl<A: Address> Serialize for NodesRef<'_, A> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // What `#[derive(Serialize)]` writes for `Body::Nodes { contacts }`;
        // a test checks that the bytes agree.
        let mut v =
            serializer.serialize_struct_variant("Body", MessageKind::Nodes as u32, "Nodes", 1)?;
        v.serialize_field("contacts", self.0)?;
        v.end()
    }
}

fn body_error(e: postcard::Error) -> DecodeError {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
        _ => DecodeError::InvalidField,
    }
}

/// Decodes one datagram addressed to a node of network `network`.
///
/// The checks run in wire order (length, version, header, network, message
/// type, fields, trailing bytes), so the error names the first fault.
#[inline(always)]
pub fn decode<A: Address>(bytes: &[u8], network: u32) -> Result<Message<A>, DecodeError> {
    let (header, rest) = decode_header::<A>(bytes, network)?;
    // Deserialised straight into the message: `take_from_bytes` would
    // return the body in a tuple first, one more copy of a large enum.
    let mut de = postcard::Deserializer::from_bytes(rest);
    let message = Message {
        header,
        body: Body::<A>::deserialize(&mut de).map_err(body_error)?,
    };
    if !de.finalize().map_err(body_error)?.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(message)
}

/// [`decode`], handing the message to `then` where it was decoded instead
/// of returning it: the body is the size of its largest variant (a full
/// NODES reply, over 700 bytes), and each move out of a result copies all
/// of it. The node decodes every datagram this way.
#[inline(always)]
pub(crate) fn decode_with<A: Address, R>(
    bytes: &[u8],
    network: u32,
    then: impl FnOnce(&Header, &Body<A>) -> R,
) -> Result<R, DecodeError> {
    let (header, rest) = decode_header::<A>(bytes, network)?;
    let mut de = postcard::Deserializer::from_bytes(rest);
    let body = Body::<A>::deserialize(&mut de);
    let body = match &body {
        Ok(body) => body,
        Err(e) => return Err(body_error(e.clone())),
    };
    if !de.finalize().map_err(body_error)?.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(then(&header, body))
}

/// The checks and the header that precede the body: length, version,
/// header, network and message type. Returns the header and the body's bytes.
#[inline(always)]
fn decode_header<A: Address>(bytes: &[u8], network: u32) -> Result<(Header, &[u8]), DecodeError> {
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if bytes.len() > A::MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong);
    }
    if version != VERSION {
        return Err(DecodeError::WrongVersion(version));
    }
    let (header, rest) = postcard::take_from_bytes::<Header>(rest).map_err(body_error)?;
    if header.network != network {
        return Err(DecodeError::WrongNetwork(header.network));
    }
    let &kind = rest.first().ok_or(DecodeError::Truncated)?;
    if kind as usize >= MessageKind::COUNT {
        return Err(DecodeError::UnknownMessageType(kind));
    }
    Ok((header, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Key;
    use crate::peer::Peer;
    use crate::store::{Record, StoreStatus, Ttl};
    use crate::wire::{MAX_CONTACTS, MAX_VALUE_LEN};
    use core::net::SocketAddr;
    use heapless::Vec;
    use proptest::prelude::*;

    const NET: u32 = 7;

    fn header() -> Header {
        Header {
            network: NET,
            txid: 0xDEAD_BEEF,
            sender: Key::hash(b"sender"),
        }
    }

    fn encoded(body: Body<u16>) -> std::vec::Vec<u8> {
        let mut buf = [0u8; <u16 as Address>::MAX_MESSAGE_LEN];
        let n = encode(
            &Message {
                header: header(),
                body,
            },
            &mut buf,
        )
        .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn ping_layout_is_as_documented() {
        let bytes = encoded(Body::Ping);
        // version, network varint (7), txid LE, sender (length 32, then
        // its 32 bytes), kind 0.
        assert_eq!(bytes[0], VERSION);
        assert_eq!(bytes[1], 7);
        assert_eq!(&bytes[2..6], &0xDEAD_BEEFu32.to_le_bytes());
        assert_eq!(bytes[6], 32);
        assert_eq!(&bytes[7..39], Key::hash(b"sender").as_bytes());
        assert_eq!(bytes[39], 0);
        assert_eq!(bytes.len(), 40);
    }

    #[test]
    fn error_empty() {
        assert_eq!(decode::<u16>(&[], NET), Err(DecodeError::Empty));
    }

    #[test]
    fn error_truncated_everywhere() {
        let bytes = encoded(Body::Store {
            record: Record::new(Key::hash(b"k"), b"hello", Ttl::Seconds(60)).unwrap(),
        });
        for cut in 1..bytes.len() {
            assert_eq!(
                decode::<u16>(&bytes[..cut], NET),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        assert!(decode::<u16>(&bytes, NET).is_ok());
    }

    #[test]
    fn error_too_long() {
        let bytes = [VERSION; <u16 as Address>::MAX_MESSAGE_LEN + 1];
        assert_eq!(decode::<u16>(&bytes, NET), Err(DecodeError::TooLong));
    }

    #[test]
    fn error_wrong_version() {
        let mut bytes = encoded(Body::Ping);
        bytes[0] = 9;
        assert_eq!(
            decode::<u16>(&bytes, NET),
            Err(DecodeError::WrongVersion(9))
        );
    }

    #[test]
    fn error_wrong_network() {
        let bytes = encoded(Body::Pong);
        assert_eq!(
            decode::<u16>(&bytes, NET + 1),
            Err(DecodeError::WrongNetwork(NET))
        );
    }

    #[test]
    fn error_invalid_field_key_of_wrong_length() {
        let mut bytes = encoded(Body::FindNode {
            target: Key::hash(b"t"),
        });
        // The target's length byte follows the header (40 bytes) and the kind.
        assert_eq!(bytes[40], 32);
        bytes[40] = 31;
        bytes.pop();
        assert_eq!(decode::<u16>(&bytes, NET), Err(DecodeError::InvalidField));
    }

    #[test]
    fn error_unknown_message_type() {
        let mut bytes = encoded(Body::Ping);
        bytes[39] = MessageKind::COUNT as u8;
        assert_eq!(
            decode::<u16>(&bytes, NET),
            Err(DecodeError::UnknownMessageType(MessageKind::COUNT as u8))
        );
        bytes[39] = 0xFF;
        assert_eq!(
            decode::<u16>(&bytes, NET),
            Err(DecodeError::UnknownMessageType(0xFF))
        );
    }

    #[test]
    fn error_invalid_field_too_many_contacts() {
        // A NODES reply claiming `count` contacts and carrying them all.
        let nodes = |count: usize| {
            let mut bytes = encoded(Body::Nodes {
                contacts: Vec::new(),
            });
            *bytes.last_mut().unwrap() = count as u8;
            for i in 0..count {
                let peer = Peer::new(Key::hash(&[i as u8]), 1u16);
                let mut buf = [0u8; 64];
                bytes.extend_from_slice(postcard::to_slice(&peer, &mut buf).unwrap());
            }
            bytes
        };
        assert!(decode::<u16>(&nodes(MAX_CONTACTS), NET).is_ok());
        assert_eq!(
            decode::<u16>(&nodes(MAX_CONTACTS + 1), NET),
            Err(DecodeError::InvalidField)
        );
    }

    #[test]
    fn error_invalid_field_value_too_long_and_bad_tags() {
        let mut bytes = encoded(Body::Store {
            record: Record::new(Key::hash(b"k"), &[], Ttl::Never).unwrap(),
        });
        // Replace the empty value (length 0, then TTL tag 0) with an over-long one.
        let tail = bytes.len() - 2;
        bytes.truncate(tail);
        let len = MAX_VALUE_LEN + 1;
        bytes.extend_from_slice(&[(len as u8) | 0x80, (len >> 7) as u8]);
        bytes.extend(core::iter::repeat_n(0u8, len));
        bytes.push(0);
        assert!(bytes.len() <= <u16 as Address>::MAX_MESSAGE_LEN);
        assert_eq!(decode::<u16>(&bytes, NET), Err(DecodeError::InvalidField));

        let mut ack = encoded(Body::StoreAck {
            status: StoreStatus::Full,
        });
        *ack.last_mut().unwrap() = 99; // no such status
        assert_eq!(decode::<u16>(&ack, NET), Err(DecodeError::InvalidField));

        let mut bad_varint = encoded(Body::Ping);
        bad_varint[1] = 0xFF; // network varint that never ends within 5 bytes
        bad_varint[2] = 0xFF;
        bad_varint[3] = 0xFF;
        bad_varint[4] = 0xFF;
        bad_varint[5] = 0xFF;
        assert_eq!(
            decode::<u16>(&bad_varint, NET),
            Err(DecodeError::InvalidField)
        );
    }

    #[test]
    fn error_trailing_bytes() {
        let mut bytes = encoded(Body::Pong);
        bytes.push(0);
        assert_eq!(decode::<u16>(&bytes, NET), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn encode_reports_small_buffer() {
        let msg: Message<u16> = Message {
            header: header(),
            body: Body::Ping,
        };
        assert_eq!(
            encode(&msg, &mut [0u8; 10]),
            Err(EncodeError::BufferTooSmall)
        );
        assert_eq!(encode(&msg, &mut []), Err(EncodeError::BufferTooSmall));
    }

    #[test]
    fn largest_messages_fit_the_bound() {
        let full = |addr: SocketAddr| {
            let mut contacts = Vec::new();
            for i in 0..MAX_CONTACTS {
                contacts
                    .push(Peer::new(Key::hash(&[i as u8]), addr))
                    .unwrap();
            }
            Body::Nodes { contacts }
        };
        let v6: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
            .parse()
            .unwrap();
        let max_header = Header {
            network: u32::MAX,
            txid: u32::MAX,
            sender: Key::hash(b"s"),
        };
        let mut buf = [0u8; 4096];
        let n = encode(
            &Message {
                header: max_header,
                body: full(v6),
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(n, <SocketAddr as Address>::MAX_MESSAGE_LEN);
        // The longest datagram is accepted: the bound is not one short.
        let decoded = decode::<SocketAddr>(&buf[..n], u32::MAX).unwrap();
        assert_eq!(decoded.body, full(v6));
        let record = Record::new(
            Key::hash(b"k"),
            &[0xAB; MAX_VALUE_LEN],
            Ttl::Seconds(u32::MAX),
        )
        .unwrap();
        let body: Body<u8> = Body::Store { record };
        let n = encode(
            &Message {
                header: max_header,
                body,
            },
            &mut buf,
        )
        .unwrap();
        assert!(n <= <u8 as Address>::MAX_MESSAGE_LEN);
        assert_eq!(
            n,
            crate::wire::MAX_HEADER_LEN + 1 + crate::wire::MAX_RECORD_LEN
        );
    }

    fn key() -> impl Strategy<Value = Key> {
        any::<[u8; 32]>().prop_map(Key)
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            key(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_VALUE_LEN),
            prop_oneof![Just(Ttl::Never), any::<u32>().prop_map(Ttl::Seconds)],
        )
            .prop_map(|(k, v, t)| Record::new(k, &v, t).unwrap())
    }

    fn body() -> impl Strategy<Value = Body<SocketAddr>> {
        // serde carries only the IP and port of a socket address (no IPv6 flow
        // info or scope id), so generate addresses without them.
        let addr = any::<SocketAddr>().prop_map(|a| match a {
            SocketAddr::V6(v6) => SocketAddr::new((*v6.ip()).into(), v6.port()),
            v4 => v4,
        });
        let peer = (key(), addr).prop_map(|(id, addr)| Peer::new(id, addr));
        let status = prop_oneof![
            Just(StoreStatus::Stored),
            Just(StoreStatus::Updated),
            Just(StoreStatus::Full),
            Just(StoreStatus::TooLarge),
            Just(StoreStatus::Expired),
            Just(StoreStatus::Unchanged),
        ];
        prop_oneof![
            Just(Body::Ping),
            Just(Body::Pong),
            key().prop_map(|target| Body::FindNode { target }),
            proptest::collection::vec(peer, 0..=MAX_CONTACTS).prop_map(|v| Body::Nodes {
                contacts: Vec::from_iter(v)
            }),
            key().prop_map(|key| Body::FindValue { key }),
            record().prop_map(|record| Body::Value { record }),
            record().prop_map(|record| Body::Store { record }),
            status.prop_map(|status| Body::StoreAck { status }),
            record().prop_map(|record| Body::GiveValue { record }),
            Just(Body::Leave),
            Just(Body::Refused {
                reason: crate::wire::RefuseReason::BucketFull
            }),
            key().prop_map(|dead| Body::Down { dead }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(network in any::<u32>(), txid in any::<u32>(), sender in key(), body in body()) {
            let msg = Message { header: Header { network, txid, sender }, body };
            let mut buf = [0u8; crate::wire::MAX_MESSAGE_LEN];
            let n = encode(&msg, &mut buf).unwrap();
            prop_assert_eq!(decode::<SocketAddr>(&buf[..n], network), Ok(msg));
        }

        #[test]
        fn nodes_by_reference_encode_like_nodes(header in (any::<u32>(), any::<u32>(), key()), contacts in body()) {
            let Body::Nodes { contacts } = contacts else { return Ok(()) };
            let header = Header { network: header.0, txid: header.1, sender: header.2 };
            let refs: std::vec::Vec<&Peer<SocketAddr>> = contacts.iter().collect();
            let (mut by_ref, mut owned) = ([0u8; crate::wire::MAX_MESSAGE_LEN], [0u8; crate::wire::MAX_MESSAGE_LEN]);
            let n = encode_nodes(&header, &refs, &mut by_ref).unwrap();
            let m = encode(&Message { header, body: Body::Nodes { contacts } }, &mut owned).unwrap();
            prop_assert_eq!(&by_ref[..n], &owned[..m]);
        }

        #[test]
        fn encode_fills_exactly_the_room_it_needs(network in any::<u32>(), txid in any::<u32>(), sender in key(), body in body()) {
            // Every shorter buffer is refused (keys, varints and values each
            // hit the end somewhere); the exact length gives the same bytes.
            let msg = Message { header: Header { network, txid, sender }, body };
            let mut full = [0u8; crate::wire::MAX_MESSAGE_LEN];
            let n = encode(&msg, &mut full).unwrap();
            for short in 0..n {
                let mut buf = [0u8; crate::wire::MAX_MESSAGE_LEN];
                prop_assert_eq!(encode(&msg, &mut buf[..short]), Err(EncodeError::BufferTooSmall));
            }
            let mut exact = [0u8; crate::wire::MAX_MESSAGE_LEN];
            prop_assert_eq!(encode(&msg, &mut exact[..n]), Ok(n));
            prop_assert_eq!(&exact[..n], &full[..n]);
        }

        #[test]
        fn decode_with_agrees_with_decode(network in any::<u32>(), txid in any::<u32>(), sender in key(),
                                          body in body(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
            // Valid messages, and the same bytes truncated or with one byte
            // changed: both decoders give the same message or the same error.
            let msg = Message { header: Header { network, txid, sender }, body };
            let mut buf = [0u8; crate::wire::MAX_MESSAGE_LEN];
            let n = encode(&msg, &mut buf).unwrap();
            let mut flipped = buf;
            flipped[flip.0 % n] ^= flip.1;
            for bytes in [&buf[..n], &buf[..cut % (n + 1)], &flipped[..n]] {
                let with = decode_with::<SocketAddr, _>(bytes, network, |h, b| Message { header: *h, body: b.clone() });
                prop_assert_eq!(with, decode::<SocketAddr>(bytes, network));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = decode::<SocketAddr>(&bytes, 1);
            let _ = decode::<u8>(&bytes, 1);
        }
    }
}
