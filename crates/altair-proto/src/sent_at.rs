//! When a request to an agent was sent, by its caller's wall clock (metadata
//! `altair-sent-unix-ms`, milliseconds since the Unix epoch).
//!
//! gRPC's own deadline (`grpc-timeout`) is relative: the agent counts it from when it
//! reads the request. A request that waited in the socket of a frozen agent (SIGSTOP, a
//! VM stun) or in a stalled network would look fresh when it is finally read, although
//! its caller gave up on it long ago. With the time it was sent, the agent can tell.

use tonic::codegen::http;
use tonic::metadata::{MetadataMap, MetadataValue};

/// The metadata key.
pub const HEADER: &str = "altair-sent-unix-ms";

/// Milliseconds since the Unix epoch by this host's clock (0 before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Stamps `metadata` with the time now.
pub fn stamp(metadata: &mut MetadataMap) {
    metadata.insert(HEADER, MetadataValue::from(now_ms()));
}

/// Stamps raw HTTP headers (a tower service below tonic) with the time now.
pub fn stamp_headers(headers: &mut http::HeaderMap) {
    headers.insert(HEADER, http::HeaderValue::from(now_ms()));
}

/// The sending time a request carries: `None` when absent (an older caller, a hand-made
/// call) or not a plain decimal number of at most 15 digits.
pub fn read(metadata: &MetadataMap) -> Option<u64> {
    let v = metadata.get(HEADER)?.to_str().ok()?;
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_as_the_time_it_was_made() {
        let mut m = MetadataMap::new();
        let before = now_ms();
        stamp(&mut m);
        let read = read(&m).expect("stamped");
        assert!(read >= before && read <= now_ms(), "{read}");
    }

    #[test]
    fn a_missing_or_malformed_stamp_is_none() {
        assert_eq!(read(&MetadataMap::new()), None);
        for bad in ["", "-5", "12a", "1e3", " 7", "9999999999999999"] {
            let mut m = MetadataMap::new();
            m.insert(HEADER, bad.parse().expect("ascii"));
            assert_eq!(read(&m), None, "{bad:?}");
        }
    }
}
