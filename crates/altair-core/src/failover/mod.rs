//! The failover decisions (DESIGN §3, §5): is the primary really dead, may we fail over
//! now, which replica to promote, and the persisted step machine a new leader resumes.
//! All pure: the orchestrator gathers the facts and executes the steps.

mod candidate;
mod journal;
pub mod machine;
pub mod reopen;
pub mod salvage;
mod stall;
mod verify;

pub use candidate::{Candidate, CandidateRules, Refusal, choose, eligible, rank};
pub use journal::{Journal, Kind, Stage, Step};
pub use stall::{StallAction, StallAnswer, StallCheck, stall_action, stall_check};
pub use verify::{
    BlockReason, LastVerify, Verdict, failover_blocked, health_fingerprint, verdict, verify_due,
};
