#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! microkad placeholder docs

#[macro_use]
mod macros;

pub mod config;
pub mod event;
pub mod id;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod query;
pub mod rng;
pub mod routing;
pub mod store;
pub mod time;
pub mod transport;
pub mod wire;

pub use config::Config;
pub use event::{Event, RemovalReason};
pub use id::{Distance, Key, NodeId};
pub use metrics::Metrics;
pub use node::{CommandError, InputError, Node, Transmit};
pub use peer::{Address, Peer};
pub use query::{LookupKind, LookupStats, QueryId, Termination};
pub use store::{MemoryStore, Record, Store, StoreStatus, Ttl};
pub use time::{Duration, Instant};
pub use transport::Transport;
