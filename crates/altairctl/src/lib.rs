//! altairctl: the operator CLI. It talks to the orchestrators' gRPC API.

pub mod actions;
pub mod admin;
pub mod pause;
pub mod ping;
pub mod readiness;
pub mod release;
pub mod status;
pub mod tls;
pub mod topology;

/// Exit statuses scripts can rely on.
pub mod exit {
    /// The command did what was asked.
    pub const OK: u8 = 0;
    /// The command ran and the answer is "no" or the operation failed.
    pub const FAILED: u8 = 1;
    /// Bad arguments or config.
    pub const USAGE: u8 = 2;
    /// No orchestrator could be reached.
    pub const UNREACHABLE: u8 = 3;
}
