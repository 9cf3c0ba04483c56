//! The simulator (feature `sim`): many real [`Node`](crate::Node)s on a
//! virtual clock, with loss, delay and churn.
//!
//! See `docs/SIMULATOR.md` for the design and measured figures, and
//! `examples/simulate.rs` for the command-line tool.
//!
//! ```
//! use microkad::sim::{SimConfig, Simulator};
//! use microkad::{Duration, MemoryStore};
//!
//! // 500 nodes, k = 4, 20 buckets, 3 lookups at once, 12 candidates each.
//! let mut sim: Simulator<MemoryStore<8, 64>, 4, 20, 3, 12> = Simulator::new(SimConfig::default());
//! sim.init_global(500, &());
//! let lookups = sim.plan_lookups(50, Duration::from_millis(10));
//! sim.run_until_done(&());
//! let exact = sim.ops()[lookups].iter().filter(|r| r.accuracy == Some(1.0)).count();
//! assert_eq!(exact, 50);
//! ```

mod churn;
mod crew;
mod index;
mod network;
mod partition;
mod queue;
mod report;

pub use churn::{ChurnReport, ChurnScenario, Departure, Detection, TableCensus, run_churn};
pub use index::KeyIndex;
pub use network::{Addr, Churn, Op, Progress, SimConfig, SimNode, Simulator, value_for};
pub use report::{Dist, NetSummary, OpError, OpKind, OpRecord, OpSummary, write_csv};
