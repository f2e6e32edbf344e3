//! Self-fencing (DESIGN §6): an isolated primary makes itself read-only before the
//! orchestrator could promote another, and the orchestrator never promotes before that
//! moment has provably passed.
//!
//! The inequality, with `bound = self_fence_after_ms` of the old primary's agent:
//!
//! ```text
//! agent fences at    ≤ last_contact + bound + probe_interval
//! last_contact       = max(last accepted heartbeat answer, start of the last round that
//!                          reached every replica)
//! orchestrator waits ≥ max(monitor's last heartbeat, replicas' last accept from it)
//!                      + bound + probe_interval + SELF_FENCE_MARGIN_MS
//! ```
//! The agent's last lease comes from a heartbeat the monitor received, so it is no later
//! than the monitor's last heartbeat. A round that reached every replica opened a
//! connection to each replica's agent after it started, so it is no later than the last
//! connection from the primary's host any replica's agent accepted, which the replicas
//! report when the orchestrator verifies the primary (`failsafe_heard_until`). When no
//! replica says, the time the orchestrator's own fence failed stands in: every replica
//! that answered the verification could not reach the primary before then. (Dated from
//! the heartbeat alone, the wait missed the failsafe: a primary whose monitors lost it
//! first keeps reaching every replica, and so stays writable, until a replica is cut
//! too.)
/// Slack for clock skew between hosts and for the network round trip.
pub const SELF_FENCE_MARGIN_MS: u64 = 1_000;

/// Should a primary's agent fence its mysqld now? The rule that covers every partition
/// (DESIGN §6): a writable primary stays writable only while it holds a control-plane
/// *lease* — an accepted heartbeat answer from the monitor that owns its cluster (only a
/// monitor with a ZooKeeper session accepts) — or reaches *every* replica's agent
/// (Patroni's failsafe rule: no replica can then be promoted behind its back). When it
/// has had neither for `bound_ms`, it fences. Rows 3 (replicas cut: lease held) and 4a
/// (monitors cut: every replica reached) keep it writable; a primary cut off with only
/// some of its replicas fences, so the majority side may promote after the bound.
///
/// `last_lease_ms` and `last_all_replicas_ms` are on the agent's monotonic clock.
pub fn self_fence_due(
    now_ms: u64,
    writable_primary: bool,
    last_lease_ms: u64,
    last_all_replicas_ms: u64,
    bound_ms: u64,
) -> bool {
    writable_primary
        && now_ms.saturating_sub(last_lease_ms) >= bound_ms
        && now_ms.saturating_sub(last_all_replicas_ms) >= bound_ms
}

/// Did one round of checks reach every replica? An empty list of known replicas never
/// counts as "every replica" (a primary that knows none cannot claim the failsafe).
pub fn reached_every_replica(results: &[bool]) -> bool {
    !results.is_empty() && results.iter().all(|r| *r)
}

/// The earliest time the orchestrator may promote another host when it could not fence
/// the old primary through its agent: the monitor last heard the agent at
/// `last_heartbeat_ms`, and its last round reaching every replica started no later than
/// `failsafe_until_ms` (a replica's last accept from its host, or the failed fence's
/// time when no replica said).
pub fn earliest_promotion_ms(
    last_heartbeat_ms: u64,
    failsafe_until_ms: u64,
    bound_ms: u64,
    probe_interval_ms: u64,
) -> u64 {
    last_heartbeat_ms.max(failsafe_until_ms) + bound_ms + probe_interval_ms + SELF_FENCE_MARGIN_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_isolated_writable_primary_fences_itself() {
        assert!(self_fence_due(10_000, true, 0, 0, 10_000));
        assert!(
            !self_fence_due(9_999, true, 0, 0, 10_000),
            "not before the bound"
        );
        assert!(
            !self_fence_due(20_000, true, 15_000, 0, 10_000),
            "still holds the lease"
        );
        assert!(
            !self_fence_due(20_000, true, 0, 15_000, 10_000),
            "still reaches every replica"
        );
        assert!(
            !self_fence_due(20_000, false, 0, 0, 10_000),
            "a replica or read-only server"
        );
    }

    #[test]
    fn some_replicas_are_not_every_replica() {
        assert!(reached_every_replica(&[true, true]));
        assert!(
            !reached_every_replica(&[true, false]),
            "a primary cut off with one of two replicas"
        );
        assert!(
            !reached_every_replica(&[]),
            "knowing no replica is no failsafe"
        );
    }

    #[test]
    fn promotion_comes_after_the_latest_self_fence() {
        let (bound, probe) = (20_000, 1_000);
        // The agent's last lease is at or before the monitor's last heartbeat, its last
        // every-replica round at or before a replica's last accept from it.
        for (last_hb, last_round) in [(0u64, 0u64), (5_000, 5_900), (123_456, 100_000)] {
            let latest_fence = last_hb.max(last_round) + bound + probe;
            assert!(earliest_promotion_ms(last_hb, last_round, bound, probe) > latest_fence);
        }
    }

    #[test]
    fn a_primary_kept_writable_by_its_replicas_after_its_lease_is_waited_for() {
        // Its monitors lost it at 10 s (the lease ends there; every replica still reached,
        // as in row 4a), then a replica was cut from it at 40 s: the last round that
        // reached every replica started before 40 s, when that replica last accepted.
        let (bound, probe) = (2_000, 200);
        let (last_hb, last_accept) = (10_000u64, 40_000u64);
        let latest_fence = last_accept + bound + probe;
        assert!(earliest_promotion_ms(last_hb, last_accept, bound, probe) > latest_fence);
        // Dated from the heartbeat alone it would come 30 s before the agent fences.
        assert!(earliest_promotion_ms(last_hb, 0, bound, probe) < latest_fence);
    }
}
