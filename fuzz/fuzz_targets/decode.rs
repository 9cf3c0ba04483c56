//! Any bytes into `microkad::wire::decode`, for several address types.
//!
//! Properties checked on every input:
//! - decoding never panics, and its error agrees with the cheap facts about the
//!   input (empty, too long, version byte, message type byte);
//! - whatever decodes re-encodes within the address type's
//!   `MAX_MESSAGE_LEN`, in no more bytes than the input (the encoder writes
//!   minimal varints; the decoder also accepts longer ones), and byte for byte
//!   the same when the lengths agree;
//! - the re-encoded bytes decode to the same message, every strict prefix of
//!   them is `Truncated`, and one extra byte is `TrailingBytes` (or `TooLong`).
//!
//! The network id comes from the input: a first decode with a fixed id that
//! fails with `WrongNetwork(n)` is retried with `n`, so the fuzzer reaches the
//! body decoder without having to guess the id.

#![no_main]

use core::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use microkad::Address;
use microkad::wire::{DecodeError, MAX_MESSAGE_LEN, MessageKind, VERSION, decode, encode};

/// The network id of the first attempt.
const NETWORK: u32 = 7;

fn check<A: Address>(data: &[u8]) {
    let mut network = NETWORK;
    let mut result = decode::<A>(data, network);
    if let Err(DecodeError::WrongNetwork(n)) = result {
        assert_ne!(n, NETWORK, "WrongNetwork names the expected id");
        network = n;
        result = decode::<A>(data, network);
    }

    let msg = match result {
        Ok(msg) => msg,
        Err(e) => {
            check_error::<A>(data, e);
            return;
        }
    };

    assert!(!data.is_empty() && data.len() <= A::MAX_MESSAGE_LEN);
    assert_eq!(data[0], VERSION);
    assert_eq!(msg.header.network, network);

    let mut buf = [0u8; MAX_MESSAGE_LEN + 1];
    assert!(A::MAX_MESSAGE_LEN <= MAX_MESSAGE_LEN);
    let n = encode(&msg, &mut buf[..A::MAX_MESSAGE_LEN])
        .expect("a decoded message re-encodes within A::MAX_MESSAGE_LEN");
    assert!(n <= data.len(), "re-encoding is longer than the input");
    if n == data.len() {
        assert_eq!(&buf[..n], data, "same length but different bytes");
    }

    let again = decode::<A>(&buf[..n], network).expect("re-encoded message decodes");
    assert_eq!(again, msg, "round trip changed the message");

    for cut in 0..n {
        let expected = if cut == 0 {
            DecodeError::Empty
        } else {
            DecodeError::Truncated
        };
        assert_eq!(
            decode::<A>(&buf[..cut], network),
            Err(expected),
            "prefix of {cut} bytes"
        );
    }

    buf[n] = 0;
    let expected = if n < A::MAX_MESSAGE_LEN {
        DecodeError::TrailingBytes
    } else {
        DecodeError::TooLong
    };
    assert_eq!(
        decode::<A>(&buf[..=n], network),
        Err(expected),
        "one trailing byte"
    );
}

/// The error classes that a glance at the input can confirm.
fn check_error<A: Address>(data: &[u8], e: DecodeError) {
    assert_eq!(data.is_empty(), e == DecodeError::Empty);
    if data.is_empty() {
        return;
    }
    assert_eq!(data.len() > A::MAX_MESSAGE_LEN, e == DecodeError::TooLong);
    if e == DecodeError::TooLong {
        return;
    }
    assert_eq!(data[0] != VERSION, e == DecodeError::WrongVersion(data[0]));
    match e {
        DecodeError::WrongVersion(v) => assert_eq!(v, data[0]),
        DecodeError::UnknownMessageType(t) => assert!(t as usize >= MessageKind::COUNT),
        DecodeError::WrongNetwork(_) => unreachable!("retried with the named network"),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    check::<u8>(data);
    check::<u16>(data);
    check::<[u8; 4]>(data);
    check::<SocketAddr>(data);
});
