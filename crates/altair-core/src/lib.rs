//! altair's pure domain: the types and decisions every service shares.
//!
//! Nothing here does I/O, spawns a task or reads a clock: time is passed in, so every
//! decision is unit-tested without a runtime or a network.

pub mod admission;
pub mod authz;
pub mod authz_peer;
pub mod binlog;
pub mod config;
pub mod epoch;
pub mod failover;
pub mod gtid;
pub mod health;
pub mod ids;
pub mod lag;
pub mod observe;
pub mod pause;
pub mod readiness;
pub mod registry;
pub mod rendezvous;
pub mod selffence;
pub mod topology;
pub mod zkpath;

pub use gtid::{Flavor, GtidError, GtidState};
pub use ids::{ClusterName, HostName, IdError, PromotionRule, Role};
