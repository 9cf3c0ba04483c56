//! What a node reports to its embedder through `poll_event`.

use heapless::Vec;

use crate::id::Key;
use crate::peer::Peer;
use crate::query::{LookupStats, QueryId, Termination};
use crate::store::Record;

/// Why a contact left the routing table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RemovalReason {
    /// It failed to answer `max_failures` requests in a row, or a
    /// ping-before-evict probe.
    Unresponsive,
    /// It missed δ keepalives in a row (managed connections).
    Dead,
    /// It said it was leaving (LEAVE).
    Left,
    /// It refused to keep this node as an incoming contact (REFUSED).
    Refused,
}

/// Something the embedder should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
// Lookup results make some variants large; an event is built once and moved
// to the embedder, and a no_std crate without a heap cannot box it.
#[allow(clippy::large_enum_variant)]
pub enum Event<A, const K: usize> {
    /// `bootstrap` finished.
    Bootstrapped {
        /// The command's query.
        query: QueryId,
        /// Contacts in the routing table afterwards.
        contacts: usize,
        /// Why the last lookup of the bootstrap ended.
        termination: Termination,
        /// Totals over every lookup of the bootstrap.
        stats: LookupStats,
    },
    /// `find_node` finished.
    FoundNodes {
        /// The command's query.
        query: QueryId,
        /// The key looked up.
        target: Key,
        /// The closest nodes that answered, closest first (at most `b`).
        closest: Vec<Peer<A>, K>,
        /// Why the lookup ended.
        termination: Termination,
        /// Lookup statistics.
        stats: LookupStats,
    },
    /// `get` finished.
    GetFinished {
        /// The command's query.
        query: QueryId,
        /// The key looked up.
        key: Key,
        /// The record, if a node had it.
        record: Option<Record>,
        /// The closest nodes that answered, closest first (at most `b`).
        closest: Vec<Peer<A>, K>,
        /// Why the lookup ended.
        termination: Termination,
        /// Lookup statistics.
        stats: LookupStats,
    },
    /// `put` finished.
    PutFinished {
        /// The command's query.
        query: QueryId,
        /// The record's key.
        key: Key,
        /// Nodes that acknowledged the STORE with a stored status.
        stored: u8,
        /// Nodes a STORE was sent to.
        attempted: u8,
        /// Why the lookup before the STOREs ended.
        termination: Termination,
        /// Lookup statistics (STOREs included).
        stats: LookupStats,
    },
    /// A contact left the routing table.
    ContactRemoved {
        /// The contact.
        peer: Peer<A>,
        /// Why.
        reason: RemovalReason,
        /// The replacement promoted into its bucket, if any.
        replaced_by: Option<Peer<A>>,
    },
}
