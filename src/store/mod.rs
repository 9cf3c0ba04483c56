//! Record storage: the [`Store`] trait and a fixed-capacity [`MemoryStore`].
//!
//! The node talks to its store only through [`Store`], so an embedder can keep
//! records in flash, in a database, or anywhere else. Every operation takes the
//! current time because TTLs are relative.

mod memory;
mod record;

pub use memory::MemoryStore;
pub use record::{Record, StoreStatus, Ttl, ValueTooLong};

use crate::id::{Key, NodeId};
use crate::time::Instant;

/// Where a node keeps its records.
pub trait Store {
    /// Stores `record` at `now`. `local` is the node's own id: a full store
    /// uses it to decide which record to evict (the farthest from `local`, and
    /// only if the new record is closer). Never drops a record silently: the
    /// status says what happened.
    fn put(&mut self, record: &Record, local: &NodeId, now: Instant) -> StoreStatus;

    /// The live record stored under `key`, its TTL set to what remains at `now`.
    fn get(&self, key: &Key, now: Instant) -> Option<Record>;

    /// Removes the record under `key`; whether there was one.
    fn remove(&mut self, key: &Key) -> bool;

    /// Removes every record whose TTL has run out at `now`; how many.
    fn remove_expired(&mut self, now: Instant) -> usize;

    /// When the next record expires, if any record ever does.
    fn next_expiry(&self) -> Option<Instant>;

    /// Number of records held (expired ones included until removed).
    fn len(&self) -> usize;

    /// Whether the store holds no record.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each stored key (in no particular order).
    fn for_each_key(&self, f: &mut dyn FnMut(&Key));

    /// The key of the `index`-th record, for `index < len()`, in the same
    /// order as `for_each_key`. Lets the node walk its records one at a time
    /// (hand-offs, republishing) without holding a borrow of the store; a
    /// store that changes meanwhile may make a walk skip or repeat a record.
    fn key_at(&self, index: usize) -> Option<Key>;
}
