//! One k-bucket: outgoing and incoming contacts and a replacement cache.

use heapless::Vec;

use super::{Contact, Origin};
use crate::id::NodeId;
use crate::peer::Peer;
use crate::time::Instant;

/// How many candidates a full bucket remembers for when a contact dies.
pub const REPLACEMENT_CAPACITY: usize = 2;

/// Which list of a bucket a contact is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Side {
    /// Contacts this node chose (all contacts, when `I` is 0).
    Outgoing,
    /// Contacts that chose this node (MaidSafe paper, III-D1).
    Incoming,
}

/// Up to `K` contacts this node chose and up to `I` that chose it, each list
/// least recently seen first, and a small replacement cache.
///
/// With `I = 0` the bucket is a classic Kademlia bucket: every contact,
/// whoever started the relationship, shares the `K` slots.
///
/// With `std` (hosts and the simulator), the bucket keeps the first 32 bits
/// of every contact's id beside each list (the prefix of slot `i` belongs to
/// contact `i`). Finding a contact, and choosing the closest ones, read
/// these, one or two cache lines for the whole bucket, and touch a contact
/// itself only when its prefix matches or it is chosen: a contact takes a
/// cache line of its own, and in a large simulation the line is rarely in
/// cache. Without `std` the prefixes are read from the contacts themselves:
/// a microcontroller has no data cache to spare misses in, and the 4 bytes
/// per slot (320 for the default node) would not fit its RAM budget. The
/// fields are in this order (`repr(C)`) so that the prefixes and the list's
/// length share the bucket's first lines.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Bucket<A, const K: usize, const I: usize = 0> {
    words: Prefixes<K>,
    incoming_words: Prefixes<I>,
    // One-byte lengths: K and I are at most 255, and a table has 3 * B of
    // these vectors (60 by default), so usize lengths would waste ~400 bytes.
    pub(crate) contacts: Vec<Contact<A>, K, u8>,
    pub(crate) incoming: Vec<Contact<A>, I, u8>,
    /// Peers that could not enter while the bucket was full, most recent last.
    pub(crate) replacements: Vec<(Peer<A>, Origin), REPLACEMENT_CAPACITY, u8>,
}

impl<A: Clone + PartialEq, const K: usize, const I: usize> Default for Bucket<A, K, I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Clone + PartialEq, const K: usize, const I: usize> Bucket<A, K, I> {
    /// An empty bucket.
    pub const fn new() -> Self {
        Bucket {
            words: Prefixes::new(),
            incoming_words: Prefixes::new(),
            contacts: Vec::new(),
            incoming: Vec::new(),
            replacements: Vec::new(),
        }
    }

    /// The contacts this node chose (all contacts when `I` is 0), least
    /// recently seen first.
    pub fn contacts(&self) -> &[Contact<A>] {
        &self.contacts
    }

    /// The contacts that chose this node, least recently seen first.
    pub fn incoming(&self) -> &[Contact<A>] {
        // With I = 0 the list is always empty: not reading its length saves
        // a cache miss (it sits past the K contacts) on every bucket visit.
        if I == 0 { &[] } else { &self.incoming }
    }

    /// Every contact of both lists.
    pub fn iter(&self) -> impl Iterator<Item = &Contact<A>> {
        self.contacts.iter().chain(self.incoming().iter())
    }

    /// The replacement candidates, most recent last.
    pub fn replacements(&self) -> impl Iterator<Item = &Peer<A>> {
        self.replacements.iter().map(|(p, _)| p)
    }

    /// Number of contacts in both lists.
    pub fn len(&self) -> usize {
        self.contacts.len() + self.incoming().len()
    }

    /// Whether the bucket has no contact.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty() && self.incoming().is_empty()
    }

    /// Whether the outgoing list holds `K` contacts.
    pub fn is_full(&self) -> bool {
        self.contacts.is_full()
    }

    /// The side a new contact of this origin goes to.
    pub(crate) fn side_for(origin: Origin) -> Side {
        if I > 0 && origin == Origin::Incoming {
            Side::Incoming
        } else {
            Side::Outgoing
        }
    }

    pub(crate) fn list(&self, side: Side) -> &[Contact<A>] {
        match side {
            Side::Outgoing => &self.contacts,
            Side::Incoming => self.incoming(),
        }
    }

    /// Each contact of [`Bucket::contacts`] with the first 32 bits of its
    /// id, in order.
    pub(crate) fn prefixed(&self) -> impl Iterator<Item = (u32, &Contact<A>)> {
        self.words.zip(&self.contacts)
    }

    /// Each contact of [`Bucket::incoming`] with the first 32 bits of its id.
    pub(crate) fn prefixed_incoming(&self) -> impl Iterator<Item = (u32, &Contact<A>)> {
        self.incoming_words.zip(self.incoming())
    }

    /// The prefixes kept beside [`Bucket::contacts`] (for checking).
    #[cfg(all(test, feature = "std"))]
    pub(crate) fn words(&self) -> &[u32] {
        &self.words.words[..self.contacts.len()]
    }

    /// The prefixes kept beside [`Bucket::incoming`] (for checking).
    #[cfg(all(test, feature = "std"))]
    pub(crate) fn incoming_words(&self) -> &[u32] {
        &self.incoming_words.words[..self.incoming.len()]
    }

    pub(crate) fn locate(&self, id: &NodeId) -> Option<(Side, usize)> {
        let word = id.prefix32();
        let matches = |(w, c): (u32, &Contact<A>)| w == word && c.peer.id == *id;
        if let Some(i) = self.prefixed().position(matches) {
            return Some((Side::Outgoing, i));
        }
        self.prefixed_incoming()
            .position(matches)
            .map(|i| (Side::Incoming, i))
    }

    /// A contact, to update its state; its id must not change (the prefix
    /// beside it would no longer match).
    pub(crate) fn get_mut(&mut self, side: Side, i: usize) -> &mut Contact<A> {
        match side {
            Side::Outgoing => &mut self.contacts[i],
            Side::Incoming => &mut self.incoming[i],
        }
    }

    /// Adds a contact to `side`; hands it back when that side is full.
    pub(crate) fn push(&mut self, side: Side, c: Contact<A>) -> Result<(), Contact<A>> {
        let word = c.peer.id.prefix32();
        let at = self.list(side).len();
        match side {
            Side::Outgoing => {
                self.contacts.push(c)?;
                self.words.set(at, word);
            }
            Side::Incoming => {
                self.incoming.push(c)?;
                self.incoming_words.set(at, word);
            }
        }
        Ok(())
    }

    /// Removes contact `i` of `side`, and its prefix.
    fn take(&mut self, side: Side, i: usize) -> Contact<A> {
        let len = self.list(side).len();
        match side {
            Side::Outgoing => {
                self.words.remove(i, len);
                self.contacts.remove(i)
            }
            Side::Incoming => {
                self.incoming_words.remove(i, len);
                self.incoming.remove(i)
            }
        }
    }

    /// Moves a contact to the most-recently-seen end of its list.
    pub(crate) fn touch(&mut self, side: Side, i: usize, now: Instant) {
        let mut c = self.take(side, i);
        c.last_seen = now;
        c.failures = 0;
        // An outstanding probe stays: its PONG may still come and must match.
        // Cannot fail: we just removed one.
        let _ = self.push(side, c);
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

    /// Drops `id` from the replacement cache, if it is there.
    pub(crate) fn forget(&mut self, id: &NodeId) {
        if let Some(i) = self.replacements.iter().position(|(p, _)| p.id == *id) {
            self.replacements.remove(i);
        }
    }

    /// Removes a contact and promotes the most recent replacement that fits
    /// the freed side, if any.
    pub(crate) fn remove_and_promote(
        &mut self,
        side: Side,
        i: usize,
        now: Instant,
    ) -> (Contact<A>, Option<Peer<A>>) {
        let removed = self.take(side, i);
        let fits = self
            .replacements
            .iter()
            .rposition(|(_, origin)| Self::side_for(*origin) == side);
        let promoted = fits.map(|r| {
            let (peer, origin) = self.replacements.remove(r);
            debug_assert!(self.locate(&peer.id).is_none(), "a cached peer is listed");
            // It starts at the fresh end, but it may have departed since it
            // was cached: the node pings it at once (`ProbeKind::Verify`).
            let _ = self.push(side, Contact::new(peer.clone(), now, origin));
            peer
        });
        (removed, promoted)
    }
}

/// The id prefixes kept beside one list of a bucket (see [`Bucket`]): with
/// `std` an array, slot for slot; without it nothing, and each prefix is
/// read from its contact.
#[derive(Clone, Debug)]
struct Prefixes<const N: usize> {
    #[cfg(feature = "std")]
    words: [u32; N],
}

impl<const N: usize> Prefixes<N> {
    const fn new() -> Self {
        Prefixes {
            #[cfg(feature = "std")]
            words: [0; N],
        }
    }

    /// Records the prefix of the contact now in slot `at`.
    fn set(&mut self, at: usize, word: u32) {
        #[cfg(feature = "std")]
        {
            self.words[at] = word;
        }
        #[cfg(not(feature = "std"))]
        let _ = (at, word);
    }

    /// Closes the gap left by slot `i` of a list that held `len` contacts.
    fn remove(&mut self, i: usize, len: usize) {
        #[cfg(feature = "std")]
        self.words.copy_within(i + 1..len, i);
        #[cfg(not(feature = "std"))]
        let _ = (i, len);
    }

    /// Each contact of `list` (the list these prefixes belong to) with its
    /// prefix.
    fn zip<'a, A>(&'a self, list: &'a [Contact<A>]) -> impl Iterator<Item = (u32, &'a Contact<A>)> {
        #[cfg(feature = "std")]
        {
            self.words.iter().copied().zip(list)
        }
        #[cfg(not(feature = "std"))]
        {
            list.iter().map(|c| (c.peer.id.prefix32(), c))
        }
    }
}
