//! Identities: 256-bit keys, XOR distance and common-prefix length.
//!
//! Node ids and record keys live in the same 256-bit space (SHA-256 output), so
//! one type, [`Key`], serves both; [`NodeId`] is an alias that says which role a
//! key plays.

use core::fmt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rng::Rng;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a key in bits.
pub const KEY_BITS: usize = KEY_LEN * 8;

/// A 256-bit identifier: a node id or a record key.
///
/// Ordered as a 256-bit big-endian integer.
#[derive(Clone, Copy, Eq)]
pub struct Key(pub [u8; KEY_LEN]);

/// A key used as a node's identity.
pub type NodeId = Key;

// On the wire a key is a byte string: postcard writes its length (one byte,
// 32) and copies the 32 bytes in one go. As a plain array it would cost no
// length byte but pass through serde one byte at a time, which made key
// (de)serialisation a fifth of the simulator's time at k = 20.
impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

/// Accepts exactly [`KEY_LEN`] bytes.
struct KeyVisitor;

impl<'de> serde::de::Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("32 bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Key, E> {
        let bytes = <[u8; KEY_LEN]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))?;
        Ok(Key(bytes))
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Key, S::Error> {
        // Formats without a byte-string type (JSON, for one) send a sequence.
        let mut bytes = [0u8; KEY_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<u8>()?.is_some() {
            return Err(serde::de::Error::invalid_length(KEY_LEN + 1, &self));
        }
        Ok(Key(bytes))
    }
}

/// The XOR distance between two keys, ordered as a 256-bit big-endian integer.
#[derive(Clone, Copy, Eq)]
pub struct Distance(pub [u8; KEY_LEN]);

/// Big-endian 64-bit word `i` (0 to 3) of 32 bytes. Comparisons load words
/// one at a time, so that two keys differing in their first word (nearly
/// all pairs) cost one load each.
#[inline]
fn word(b: &[u8; KEY_LEN], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_be_bytes(w)
}

// Comparisons by 64-bit words: the same order as the byte arrays' (big-endian
// lexicographic), without a call to `memcmp`. Lookups and routing tables
// compare keys and distances in their innermost loops.
macro_rules! word_order {
    ($t:ty) => {
        impl PartialEq for $t {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                // Equality needs no byte order: comparing the arrays lets the
                // compiler use wide loads straight from memory, where going
                // through `words` made it byte-swap into a stack copy first.
                self.0 == other.0
            }
        }
        impl Ord for $t {
            #[inline]
            fn cmp(&self, other: &Self) -> core::cmp::Ordering {
                // Word by word in registers; the arrays' own `cmp` would
                // store the swapped words and read them back as vectors.
                for i in 0..KEY_LEN / 8 {
                    let (x, y) = (word(&self.0, i), word(&other.0, i));
                    if x != y {
                        return x.cmp(&y);
                    }
                }
                core::cmp::Ordering::Equal
            }
        }
        impl core::hash::Hash for $t {
            fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }
        impl PartialOrd for $t {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
    };
}
word_order!(Key);
word_order!(Distance);

impl Key {
    /// The all-zero key.
    pub const ZERO: Key = Key([0; KEY_LEN]);

    /// The key of arbitrary bytes: their SHA-256 digest.
    pub fn hash(data: &[u8]) -> Key {
        let digest = Sha256::digest(data);
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(&digest);
        Key(out)
    }

    /// A key drawn uniformly from the seeded generator.
    pub fn random(rng: &mut Rng) -> Key {
        let mut out = [0u8; KEY_LEN];
        rng.fill_bytes(&mut out);
        Key(out)
    }

    /// A random key that shares exactly `prefix_len` leading bits with `self`
    /// (and so lies in bucket `prefix_len` of `self`'s routing table). With
    /// `prefix_len >= KEY_BITS` the result is `self`.
    pub fn random_with_prefix(&self, prefix_len: usize, rng: &mut Rng) -> Key {
        if prefix_len >= KEY_BITS {
            return *self;
        }
        let mut out = Key::random(rng).0;
        let byte = prefix_len / 8;
        let bit = prefix_len % 8;
        out[..byte].copy_from_slice(&self.0[..byte]);
        // Keep the first `bit` bits of `self`, flip bit `prefix_len`, keep the random rest.
        let keep_mask: u8 = if bit == 0 { 0 } else { 0xFF << (8 - bit) };
        let flip: u8 = 0x80 >> bit;
        let rest_mask = !keep_mask & !flip;
        out[byte] = (self.0[byte] & keep_mask) | (!self.0[byte] & flip) | (out[byte] & rest_mask);
        Key(out)
    }

    /// The first 64 bits, as a big-endian integer: the XOR of two keys'
    /// first words is the first word of their distance.
    #[inline]
    pub fn first_word(&self) -> u64 {
        word(&self.0, 0)
    }

    /// The first 32 bits, as a big-endian integer: a prefix short enough to
    /// keep one per contact beside a bucket, long enough that two ids of a
    /// table rarely share it.
    #[inline]
    pub fn prefix32(&self) -> u32 {
        (self.first_word() >> 32) as u32
    }

    /// Orders `a` and `b` by their XOR distance to `self`, nearest first:
    /// `self.distance(a).cmp(&self.distance(b))` without building either
    /// distance. Routing tables and lookups sort by this in their inner loops.
    #[inline]
    pub fn cmp_distance(&self, a: &Key, b: &Key) -> core::cmp::Ordering {
        for i in 0..KEY_LEN / 8 {
            let t = word(&self.0, i);
            let (x, y) = (word(&a.0, i) ^ t, word(&b.0, i) ^ t);
            if x != y {
                return x.cmp(&y);
            }
        }
        core::cmp::Ordering::Equal
    }

    /// The XOR distance from `self` to `other`.
    pub fn distance(&self, other: &Key) -> Distance {
        let mut out = [0u8; KEY_LEN];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Distance(out)
    }

    /// Number of leading bits `self` and `other` share (256 when equal).
    /// Compared eight bytes at a time: distinct ids almost always differ in
    /// the first eight, and every routing-table insert and lookup asks this.
    pub fn common_prefix_len(&self, other: &Key) -> usize {
        for i in 0..KEY_LEN / 8 {
            let x = word(&self.0, i) ^ word(&other.0, i);
            if x != 0 {
                return i * 64 + x.leading_zeros() as usize;
            }
        }
        KEY_BITS
    }

    /// Bit `i` (0 to 255), most significant first.
    #[inline]
    pub fn bit(&self, i: usize) -> bool {
        self.0[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Distance {
    /// The distance of a key to itself.
    pub const ZERO: Distance = Distance([0; KEY_LEN]);
    /// The largest possible distance.
    pub const MAX: Distance = Distance([0xFF; KEY_LEN]);

    /// Number of leading zero bits (256 for the zero distance).
    pub fn leading_zeros(&self) -> usize {
        for (i, b) in self.0.iter().enumerate() {
            if *b != 0 {
                return i * 8 + b.leading_zeros() as usize;
            }
        }
        KEY_BITS
    }

    /// The distance's top 64 bits as an integer: a cheap, monotone summary
    /// used where a full 256-bit comparison is not needed (statistics).
    pub fn high_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for Key {
    /// Full lowercase hex (64 characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Key {
    /// The first 8 bytes in hex, enough to tell ids apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0[..8])?;
        f.write_str("…")
    }
}

impl fmt::Display for Distance {
    /// Full lowercase hex (64 characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Distance {
    /// The number of leading zero bits and the first 8 bytes in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d(lz={}, ", self.leading_zeros())?;
        write_hex(f, &self.0[..8])?;
        f.write_str("…)")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Key {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[u8]:02x}…", self.0[..8])
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Distance {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "d({=[u8]:02x}…)", self.0[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Key> {
        any::<[u8; 32]>().prop_map(Key)
    }

    #[test]
    fn hash_is_sha256() {
        // SHA-256("abc"), the FIPS 180-2 test vector.
        let k = Key::hash(b"abc");
        let mut s = heapless::String::<64>::new();
        core::fmt::write(&mut s, format_args!("{k}")).unwrap();
        assert_eq!(
            s.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn prefix_len_edges() {
        let a = Key::ZERO;
        assert_eq!(a.common_prefix_len(&a), 256);
        assert_eq!(Distance::ZERO.leading_zeros(), 256);
        let mut b = Key::ZERO;
        b.0[0] = 0x80;
        assert_eq!(a.common_prefix_len(&b), 0);
        b.0[0] = 0;
        b.0[31] = 1;
        assert_eq!(a.common_prefix_len(&b), 255);
    }

    #[test]
    fn deserializes_from_bytes_or_a_sequence_of_exactly_32() {
        use serde::de::value::{BytesDeserializer, Error, SeqDeserializer};
        let bytes: [u8; 33] = core::array::from_fn(|i| i as u8);
        let want = Key(bytes[..32].try_into().unwrap());
        let from_bytes = |b: &[u8]| Key::deserialize(BytesDeserializer::<Error>::new(b));
        let from_seq =
            |b: &[u8]| Key::deserialize(SeqDeserializer::<_, Error>::new(b.iter().copied()));
        assert_eq!(from_bytes(&bytes[..32]).unwrap(), want);
        assert_eq!(from_seq(&bytes[..32]).unwrap(), want);
        for (short_or_long, len) in [(&bytes[..31], 31), (&bytes[..], 33)] {
            let expected = format!("invalid length {len}, expected 32 bytes");
            assert_eq!(from_bytes(short_or_long).unwrap_err().to_string(), expected);
            assert_eq!(from_seq(short_or_long).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn leading_words_and_text_forms() {
        let k = Key(core::array::from_fn(|i| i as u8 + 1));
        assert_eq!(k.first_word(), 0x0102_0304_0506_0708);
        assert_eq!(k.prefix32(), 0x0102_0304);
        let d = k.distance(&Key::ZERO);
        assert_eq!(d.high_u64(), 0x0102_0304_0506_0708);
        let hex = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";
        assert_eq!(format!("{k}"), hex);
        assert_eq!(format!("{d}"), hex);
        assert_eq!(format!("{k:?}"), "0102030405060708…");
        assert_eq!(format!("{d:?}"), "d(lz=7, 0102030405060708…)");
    }

    proptest! {
        #[test]
        fn distance_is_a_metric(a in key(), b in key(), c in key()) {
            prop_assert_eq!(a.distance(&a), Distance::ZERO);
            prop_assert_eq!(a.distance(&b), b.distance(&a));
            // XOR "triangle": d(a,c) = d(a,b) xor d(b,c); unique nearest: d(a,b)=d(a,c) implies b=c.
            if a.distance(&b) == a.distance(&c) { prop_assert_eq!(b, c); }
        }

        #[test]
        fn order_matches_bytes(a in key(), b in key(), same in any::<bool>()) {
            let b = if same { a } else { b };
            prop_assert_eq!(a.cmp(&b), a.0.cmp(&b.0));
            prop_assert_eq!(a == b, a.0 == b.0);
            let (x, y) = (a.distance(&Key::ZERO), b.distance(&Key::ZERO));
            prop_assert_eq!(x.cmp(&y), x.0.cmp(&y.0));
            prop_assert_eq!(x == y, x.0 == y.0);
        }

        #[test]
        fn cmp_distance_matches_distance_order(t in key(), a in key(), b in key(), same in any::<bool>()) {
            let b = if same { a } else { b };
            prop_assert_eq!(t.cmp_distance(&a, &b), t.distance(&a).cmp(&t.distance(&b)));
        }

        #[test]
        fn order_matches_big_endian_integer(a in key(), b in key()) {
            let (x, y) = (a.distance(&Key::ZERO), b.distance(&Key::ZERO));
            let big = |d: &Distance| (u128::from_be_bytes(d.0[..16].try_into().unwrap()), u128::from_be_bytes(d.0[16..].try_into().unwrap()));
            prop_assert_eq!(x.cmp(&y), big(&x).cmp(&big(&y)));
        }

        #[test]
        fn random_with_prefix_lands_in_bucket(a in key(), seed in any::<u64>(), p in 0usize..KEY_BITS) {
            let mut rng = crate::rng::Rng::new(seed);
            let k = a.random_with_prefix(p, &mut rng);
            prop_assert_eq!(a.common_prefix_len(&k), p);
            prop_assert_eq!(a.common_prefix_len(&k), a.distance(&k).leading_zeros());
        }
    }
}
