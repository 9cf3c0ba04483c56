//! Iterative lookups: the state machine behind `find_node`, `get`, `put` and
//! `bootstrap`.
//!
//! A lookup keeps up to `C` candidates sorted by XOR distance to its target.
//! Each round asks up to α of the closest candidates not yet asked; a round ends
//! when β of its requests have been answered or have failed. The lookup ends
//! when the `width` closest live candidates have all answered (converged),
//! after `step_to_stop` rounds that brought no new candidate into those
//! `width` (stalled), when no candidate is left to ask (exhausted), when a
//! `get` finds its value, or at its deadline.
//!
//! The lookup does no I/O: it marks candidates "to send", and the node turns
//! those marks into datagrams in `poll_transmit`. Requests therefore never
//! wait in a queue that could overflow.

mod lookup;

pub(crate) use lookup::{Candidate, CandidateState, Lookup, Phase, ReplyEffect};
pub use lookup::{LookupKind, LookupStats, QueryId, Termination};
