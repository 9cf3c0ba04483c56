//! The routing table: fixed-capacity k-buckets with ping-before-evict.

mod bucket;
mod contact;
mod table;

pub use bucket::{Bucket, REPLACEMENT_CAPACITY, Side};
pub use contact::{Contact, Origin};
pub(crate) use contact::{Probe, ProbeKind, ProbeTime};
pub use table::{InsertOutcome, RemovedContact, RoutingTable};
