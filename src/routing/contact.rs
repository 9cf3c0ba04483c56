//! A routing-table entry and its liveness bookkeeping.

use crate::peer::Peer;
use crate::time::Instant;

/// Who started the relationship with a contact (MaidSafe paper, III-D1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Origin {
    /// We chose this contact: it answered one of our requests.
    Outgoing,
    /// This contact chose us: it sent us a request first.
    Incoming,
}

/// What a liveness probe is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ProbeKind {
    /// Ping-before-evict: one miss, judged after the request timeout, evicts.
    Evict,
    /// A replacement just promoted from its bucket's cache. It was heard from
    /// when it was cached, which may be hours ago, so it must answer within
    /// the request timeout or it is dropped like a failed eviction probe.
    Verify,
    /// Managed-connection keepalive: misses are counted at each keepalive
    /// tick, and `max_missed` of them in a row declare the contact dead.
    Keepalive,
}

/// When a probe was sent: the low 32 bits of its `Instant`. Probes last
/// seconds, far less than the 49 days after which 32 bits of milliseconds
/// wrap, and the 4 bytes saved make every contact 8 bytes smaller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ProbeTime(u32);

impl ProbeTime {
    pub(crate) fn at(t: Instant) -> Self {
        ProbeTime(t.as_millis() as u32)
    }

    /// The instant this stands for, given that it is not after `now`.
    pub(crate) fn resolve(self, now: Instant) -> Instant {
        let ago = (now.as_millis() as u32).wrapping_sub(self.0);
        Instant::from_millis(now.as_millis().saturating_sub(u64::from(ago)))
    }
}

/// An outstanding liveness probe (a PING) to a contact.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Probe {
    pub(crate) txid: u32,
    /// The deadline is `sent_at` plus the request timeout (or the next
    /// keepalive tick), which the node knows; not storing it keeps every
    /// contact smaller.
    pub(crate) sent_at: ProbeTime,
    pub(crate) kind: ProbeKind,
    /// Whether `poll_transmit` has emitted the PING yet.
    pub(crate) sent: bool,
}

/// A node in the routing table.
#[derive(Clone, Debug)]
pub struct Contact<A> {
    /// Id and address.
    pub peer: Peer<A>,
    /// When we last heard from it.
    pub last_seen: Instant,
    /// Requests it failed to answer since it last answered one.
    pub failures: u8,
    /// Who started the relationship.
    pub origin: Origin,
    pub(crate) probe: Option<Probe>,
}

impl<A> Contact<A> {
    /// A contact just heard from.
    pub fn new(peer: Peer<A>, now: Instant, origin: Origin) -> Self {
        Contact {
            peer,
            last_seen: now,
            failures: 0,
            origin,
            probe: None,
        }
    }

    /// Whether a liveness probe to this contact is outstanding.
    pub fn is_probing(&self) -> bool {
        self.probe.is_some()
    }
}
