#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! microkad placeholder docs

#[macro_use]
mod macros;

pub mod id;
pub mod peer;
pub mod rng;
pub mod routing;
pub mod store;
pub mod time;
pub mod wire;

pub use id::{Distance, Key, NodeId};
pub use peer::{Address, Peer};
pub use time::{Duration, Instant};
