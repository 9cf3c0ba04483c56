//! Iterative lookups: the state machine behind `find_node`, `get`, `put` and
//! `bootstrap`.
//!
//! A lookup keeps up to `C` candidates sorted by XOR distance to its target.
//! Each round asks up to α of the closest candidates not yet asked; a round ends
//! when β of its requests have been answered or have failed. The lookup ends
//! when the `width` closest live candidates have all answered (converged),
//! when no candidate is left to ask (exhausted), when a `get` finds its
//! value, or at its deadline. After `step_to_stop` rounds that brought no new
//! candidate into the `width` closest (py-dht's rule), one final sweep asks
//! every one of them not yet asked, at once, as Kademlia's last step does;
//! if even that does not converge, the lookup ends as stalled. With
//! `LookupEnd::Unverified` (py-dht's `lookup_for_hash`) there is no sweep:
//! the lookup stops after `step_to_stop` answers in a row without a closer
//! candidate and reports the closest candidates it heard of, asked or not.
//!
//! The lookup does no I/O: it marks candidates "to send", and the node turns
//! those marks into datagrams in `poll_transmit`. Requests therefore never
//! wait in a queue that could overflow.

mod lookup;

pub(crate) use lookup::{Candidate, CandidateState, Lookup, Outcome, Phase, ReplyEffect};
pub use lookup::{LookupKind, LookupStats, QueryId, Termination};
