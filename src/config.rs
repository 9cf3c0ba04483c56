//! Runtime parameters of a node.
//!
//! Compile-time capacities (bucket size, number of buckets, lookup slots) are
//! const generics of [`Node`](crate::Node); everything that can change per
//! deployment without changing memory lives here.

use crate::time::Duration;

/// Runtime parameters. Start from [`Config::default`] and change fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Network id (py-dht's `networkid`): datagrams of other networks are rejected.
    pub network_id: u32,
    /// α: requests a lookup keeps in flight at once (py-dht's `a`).
    pub alpha: u8,
    /// β: replies a lookup round waits for before the next round starts.
    /// Clamped to `alpha`.
    pub beta: u8,
    /// `b`: how many closest contacts a FIND_NODE reply carries and a lookup
    /// reports (py-dht's `b`). Clamped to the bucket size K and to
    /// [`MAX_CONTACTS`](crate::wire::MAX_CONTACTS).
    pub closest: u8,
    /// A lookup stops after this many consecutive rounds that did not change
    /// its `closest` best candidates (py-dht's `steptostop`).
    pub step_to_stop: u8,
    /// How long to wait for the answer to one request.
    pub request_timeout: Duration,
    /// The most time a whole lookup (and its STOREs) may take.
    pub lookup_timeout: Duration,
    /// How many of the closest nodes a `put` stores the record on. Clamped to
    /// the lookup's candidate capacity.
    pub replicas: u8,
    /// Whether a `get` stops at the first value found (otherwise it runs to
    /// the end and reports the closest nodes too).
    pub stop_at_first_value: bool,
    /// Consecutive unanswered requests after which a contact is removed.
    pub max_failures: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network_id: 0,
            alpha: 3,
            beta: 3,
            closest: 4,
            step_to_stop: 3,
            request_timeout: Duration::from_millis(2_000),
            lookup_timeout: Duration::from_secs(30),
            replicas: 4,
            stop_at_first_value: true,
            max_failures: 2,
        }
    }
}
