//! Records: what the DHT stores.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::id::Key;
use crate::time::{Duration, Instant};
use crate::wire::MAX_VALUE_LEN;

/// How long a record lives, relative to the moment it is stored.
///
/// The MaidSafe paper's rule: all time is relative to an event, never a date,
/// so that nodes need no clock synchronisation. `Never` is the paper's `-1`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Ttl {
    /// The record never expires.
    Never,
    /// The record expires this many seconds after it is stored.
    Seconds(u32),
}

impl Ttl {
    /// The instant a record stored at `now` with this TTL expires.
    pub fn expires_at(self, now: Instant) -> Instant {
        match self {
            Ttl::Never => Instant::MAX,
            Ttl::Seconds(s) => now + Duration::from_secs(s as u64),
        }
    }

    /// The TTL that remains at `now` for a record expiring at `expires_at`,
    /// rounded up to whole seconds so that a live record never reads as 0.
    pub fn remaining(expires_at: Instant, now: Instant) -> Ttl {
        if expires_at == Instant::MAX {
            return Ttl::Never;
        }
        let ms = expires_at.saturating_since(now).as_millis();
        Ttl::Seconds(u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX))
    }
}

/// A key, its value and the value's time to live.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Record {
    /// Where the record lives in the key space.
    pub key: Key,
    /// The value, at most [`MAX_VALUE_LEN`] bytes.
    pub value: Vec<u8, MAX_VALUE_LEN>,
    /// How long the record lives from the moment it is stored.
    pub ttl: Ttl,
}

/// A value longer than [`MAX_VALUE_LEN`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ValueTooLong;

impl Record {
    /// A record, or [`ValueTooLong`] when `value` exceeds [`MAX_VALUE_LEN`].
    pub fn new(key: Key, value: &[u8], ttl: Ttl) -> Result<Self, ValueTooLong> {
        Ok(Record {
            key,
            value: Vec::from_slice(value).map_err(|_| ValueTooLong)?,
            ttl,
        })
    }
}

/// The outcome of a STORE, as carried in a STORE_ACK.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreStatus {
    /// A new record was stored.
    Stored,
    /// An existing record with this key was replaced.
    Updated,
    /// The store is full and every stored record is closer to this node than
    /// the offered one.
    Full,
    /// The value is longer than this node's store accepts.
    TooLarge,
    /// The record's TTL had already run out.
    Expired,
    /// The same value was already stored under this key; its TTL was
    /// refreshed.
    Unchanged,
}

impl StoreStatus {
    /// Whether the record is now held by the store.
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            StoreStatus::Stored | StoreStatus::Updated | StoreStatus::Unchanged
        )
    }
}
