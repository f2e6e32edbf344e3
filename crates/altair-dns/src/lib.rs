//! Service discovery through DNS (DESIGN §7): RFC 2136 dynamic updates signed with TSIG
//! to the zone's authoritative server, and direct (uncached) queries to check what that
//! server answers.

mod batch;
mod key;
mod update;

pub use key::TsigKey;
pub use update::{DnsClient, lookup_a};

use hickory_proto::op::ResponseCode;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{name:?} is not a valid DNS name: {reason}")]
    BadName { name: String, reason: String },
    #[error("{name} is not inside zone {zone}")]
    OutsideZone { name: String, zone: String },
    #[error("bad TSIG key {key_name:?}: {reason}")]
    BadKey { key_name: String, reason: String },
    /// The server answered with an error code (REFUSED, NOTAUTH, NXRRSET, ...).
    #[error("DNS server {server} answered {code} to the {operation} of {name}")]
    Rejected {
        server: std::net::SocketAddr,
        operation: &'static str,
        name: String,
        code: ResponseCode,
    },
    #[error("DNS server {server} did not answer the {operation} of {name}: {reason}")]
    Unreachable {
        server: std::net::SocketAddr,
        operation: &'static str,
        name: String,
        reason: String,
    },
}

impl DnsError {
    /// True for a failed compare-and-swap prerequisite: the record did not hold the
    /// expected value (someone else moved it).
    pub fn is_prerequisite_failure(&self) -> bool {
        matches!(
            self,
            Self::Rejected {
                code: ResponseCode::NXRRSet | ResponseCode::YXRRSet | ResponseCode::NXDomain,
                ..
            }
        )
    }
}

pub type Result<T, E = DnsError> = std::result::Result<T, E>;
