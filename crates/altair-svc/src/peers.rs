//! When each peer address last opened a connection to this process's gRPC port (wall
//! clock, ms since the epoch). An agent answers with it when asked whether it reaches
//! the primary: a primary's self-fencing failsafe opens a connection to every replica's
//! agent each round, so the last one a replica accepted bounds the last round that
//! reached every replica — the orchestrator dates the old primary's self-fencing from
//! it (`altair_core::selffence`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};

/// Addresses remembered; past it the oldest is forgotten (a forgotten peer only makes
/// an orchestrator wait longer, never less).
const MAX_PEERS: usize = 4_096;

static LAST: LazyLock<Mutex<HashMap<IpAddr, u64>>> = LazyLock::new(Mutex::default);

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A connection from `ip` was accepted now.
pub fn accepted(ip: IpAddr) {
    accepted_at(ip.to_canonical(), now_unix_ms());
}

fn accepted_at(ip: IpAddr, at_ms: u64) {
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.len() >= MAX_PEERS
        && !last.contains_key(&ip)
        && let Some(oldest) = last.iter().min_by_key(|(_, t)| **t).map(|(ip, _)| *ip)
    {
        last.remove(&oldest);
    }
    let t = last.entry(ip).or_insert(at_ms);
    *t = (*t).max(at_ms);
}

/// When a connection from `ip` was last accepted, if one was.
pub fn last_accepted_unix_ms(ip: IpAddr) -> Option<u64> {
    LAST.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&ip.to_canonical())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_accept_per_address_is_kept_and_the_table_is_bounded() {
        let a: IpAddr = "10.9.9.1".parse().expect("ip");
        accepted_at(a, 1_000);
        accepted_at(a, 900);
        assert_eq!(last_accepted_unix_ms(a), Some(1_000));
        let mapped: IpAddr = "::ffff:10.9.9.1".parse().expect("ip");
        assert_eq!(
            last_accepted_unix_ms(mapped),
            Some(1_000),
            "an IPv4-mapped address"
        );
        for i in 0..(MAX_PEERS as u32 + 10) {
            accepted_at(
                IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i)),
                2_000 + u64::from(i),
            );
        }
        assert!(LAST.lock().expect("lock").len() <= MAX_PEERS);
        assert_eq!(last_accepted_unix_ms(a), None, "the oldest was forgotten");
    }
}
