//! Runtime parameters of a node.
//!
//! Compile-time capacities (bucket size, number of buckets, lookup slots) are
//! const generics of [`Node`](crate::Node); everything that can change per
//! deployment without changing memory lives here.

use crate::time::Duration;

/// How a node keeps its routing table and its records current.
///
/// The simulator runs the three on the same network to compare them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maintenance {
    /// No background traffic at all: the table changes only through
    /// requests, answers and ping-before-evict. For tests and for devices
    /// that sleep.
    Off,
    /// Classic Kademlia: ping-before-evict, a refresh of every bucket (a
    /// lookup of a random id in it) every `refresh_interval`, and a
    /// republish of every stored record every `republish_interval`.
    Periodic {
        /// Time between bucket refreshes.
        refresh_interval: Duration,
        /// Time between record republishes.
        republish_interval: Duration,
    },
    /// `Periodic`, plus down-lists (Binzenhöfer and Schnabel): a node that
    /// finds a contact dead during a lookup reports it to the node that gave
    /// it that contact, which checks and drops it.
    DownList {
        /// Time between bucket refreshes.
        refresh_interval: Duration,
        /// Time between record republishes.
        republish_interval: Duration,
    },
    /// MaidSafe managed connections (paper, section III): a contact last
    /// heard from at `t` gets a keepalive at `t + γ`, `t + 2γ`, …,
    /// `t + (δ−1)γ` and is dead at `t + δγ` if it stayed silent; contacts that
    /// leave say so; records move to newcomers with GIVE_VALUE. No refresh,
    /// no republish.
    Managed {
        /// γ: the keepalive interval.
        keepalive_interval: Duration,
        /// δ: intervals of silence that declare a contact dead.
        max_missed: u8,
    },
}

impl Maintenance {
    /// Managed connections with γ = 2 s and δ = 3 (the paper's γ).
    pub const MANAGED: Maintenance = Maintenance::Managed {
        keepalive_interval: Duration::from_secs(2),
        max_missed: 3,
    };
    /// Classic Kademlia timers: refresh hourly, republish hourly.
    pub const PERIODIC: Maintenance = Maintenance::Periodic {
        refresh_interval: Duration::from_secs(3600),
        republish_interval: Duration::from_secs(3600),
    };
    /// Down-lists on top of the classic timers.
    pub const DOWN_LIST: Maintenance = Maintenance::DownList {
        refresh_interval: Duration::from_secs(3600),
        republish_interval: Duration::from_secs(3600),
    };

    /// Whether this is [`Maintenance::Managed`].
    pub fn is_managed(&self) -> bool {
        matches!(self, Maintenance::Managed { .. })
    }
}

/// How a `find_node`, `get` or `put` lookup ends, and which contacts it
/// reports. Bootstrap lookups always use [`LookupEnd::Verified`]: their
/// point is to meet the neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LookupEnd {
    /// Kademlia's rule: after `step_to_stop` rounds without a closer
    /// contact, ask every one of the `closest` candidates not asked yet, and
    /// report only contacts that answered. Every reported contact (and every
    /// node a `put` stores on) was alive during the lookup. At `closest` = 20
    /// that is at least 20 requests per lookup.
    #[default]
    Verified,
    /// py-dht's `lookup_for_hash`: stop once `step_to_stop` answers in a row
    /// (failures count too) brought no contact into the `closest` best, and
    /// report the `closest` best contacts heard of, asked or not. A reported
    /// contact may be gone, and a `put` stores on contacts nobody asked;
    /// in exchange a lookup costs a few requests instead of at least
    /// `closest`.
    Unverified,
}

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
    /// its `closest` best candidates (py-dht's `steptostop`); with
    /// [`LookupEnd::Unverified`] it counts answers instead of rounds.
    pub step_to_stop: u8,
    /// How a lookup ends and which contacts it reports.
    pub lookup_end: LookupEnd,
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
    /// Ping-before-evict only checks a full bucket's least recently seen
    /// contact if it has been silent at least this long. A contact heard
    /// more recently is taken as alive: the newcomer waits in the replacement
    /// cache and no PING is sent (BitTorrent's BEP 5 calls such contacts
    /// "good" for 15 minutes). Without this rule every request from a
    /// stranger to a full bucket costs a PING and a PONG, and each PING can
    /// set off another check at its receiver. `Duration::ZERO` checks on
    /// every arrival. Managed connections never check: they watch every
    /// contact anyway.
    pub ping_oldest_after: Duration,
    /// How the table and the records are kept current.
    pub maintenance: Maintenance,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network_id: 0,
            alpha: 3,
            beta: 3,
            closest: 4,
            step_to_stop: 3,
            lookup_end: LookupEnd::Verified,
            request_timeout: Duration::from_millis(2_000),
            lookup_timeout: Duration::from_secs(30),
            // The paper's III-D2: with small k, keep 2k replicas.
            replicas: 8,
            stop_at_first_value: true,
            max_failures: 2,
            ping_oldest_after: Duration::from_secs(15 * 60),
            maintenance: Maintenance::MANAGED,
        }
    }
}
