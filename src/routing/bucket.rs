//! One k-bucket and its replacement cache.

use heapless::Vec;

use super::{Contact, Origin};
use crate::id::NodeId;
use crate::peer::Peer;
use crate::time::Instant;

/// How many candidates a full bucket remembers for when a contact dies.
pub const REPLACEMENT_CAPACITY: usize = 2;

/// Up to `K` contacts, least recently seen first, and a small replacement cache.
#[derive(Clone, Debug)]
pub struct Bucket<A, const K: usize> {
    pub(crate) contacts: Vec<Contact<A>, K>,
    /// Peers that could not enter while the bucket was full, most recent last.
    pub(crate) replacements: Vec<(Peer<A>, Origin), REPLACEMENT_CAPACITY>,
}

impl<A: Clone + PartialEq, const K: usize> Default for Bucket<A, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Clone + PartialEq, const K: usize> Bucket<A, K> {
    /// An empty bucket.
    pub const fn new() -> Self {
        Bucket {
            contacts: Vec::new(),
            replacements: Vec::new(),
        }
    }

    /// The contacts, least recently seen first.
    pub fn contacts(&self) -> &[Contact<A>] {
        &self.contacts
    }

    /// The replacement candidates, most recent last.
    pub fn replacements(&self) -> impl Iterator<Item = &Peer<A>> {
        self.replacements.iter().map(|(p, _)| p)
    }

    /// Number of contacts.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Whether the bucket has no contact.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    /// Whether the bucket holds `K` contacts.
    pub fn is_full(&self) -> bool {
        self.contacts.is_full()
    }

    pub(crate) fn position(&self, id: &NodeId) -> Option<usize> {
        self.contacts.iter().position(|c| c.peer.id == *id)
    }

    /// Moves contact `i` to the most-recently-seen end.
    pub(crate) fn touch(&mut self, i: usize, now: Instant) {
        let mut c = self.contacts.remove(i);
        c.last_seen = now;
        c.failures = 0;
        // An outstanding probe stays: its PONG may still come and must match.
        // Cannot fail: we just removed one.
        let _ = self.contacts.push(c);
    }

    /// Remembers a peer for later, replacing the oldest remembered one.
    pub(crate) fn remember(&mut self, peer: Peer<A>, origin: Origin) {
        if let Some(i) = self.replacements.iter().position(|(p, _)| p.id == peer.id) {
            self.replacements.remove(i);
        } else if self.replacements.is_full() {
            self.replacements.remove(0);
        }
        let _ = self.replacements.push((peer, origin));
    }

    /// Removes contact `i` and promotes the most recent replacement, if any.
    pub(crate) fn remove_and_promote(
        &mut self,
        i: usize,
        now: Instant,
    ) -> (Contact<A>, Option<Peer<A>>) {
        let removed = self.contacts.remove(i);
        let promoted = self.replacements.pop().map(|(peer, origin)| {
            // The replacement was heard from recently enough to be cached; it
            // starts at the fresh end and is probed like any other contact.
            let _ = self.contacts.push(Contact::new(peer.clone(), now, origin));
            peer
        });
        (removed, promoted)
    }
}
