//! The gRPC contracts shared by the altair services (package `altair.v1`).
//!
//! Generated at build time from `proto/altair/v1/*.proto`; see those files for field docs.

/// Version 1 of the wire contract.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
    tonic::include_proto!("altair.v1");
}

mod convert;
pub mod sent_at;
