//! The fleet as an operator sees it: ZooKeeper's records (registrations, published
//! health, cluster state, journals, admission holds) joined with each owning monitor's
//! live view. `altairctl status` and the orchestrator's web console both read it.

mod failover;
mod gather;
mod summary;
mod types;

pub use failover::{FailoverView, StageView, history, one as failover};
pub use gather::{Reader, status};
pub use summary::{ClusterState, ClusterSummary, StateCount, counts};
pub use types::*;
