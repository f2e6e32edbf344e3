//! Self-fencing (DESIGN §6): an isolated primary makes itself read-only before the
//! orchestrator could promote another, and the orchestrator never promotes before that
//! moment has provably passed.
//!
//! The inequality, with `bound = self_fence_after_ms` of the old primary's agent:
//!
//! ```text
//! agent fences at    ≤ last_answer_from_a_monitor + bound + probe_interval
//! orchestrator waits ≥ monitor's last_heartbeat + bound + probe_interval + SELF_FENCE_MARGIN_MS
//! ```
//! The agent's last answer comes after the monitor received the heartbeat, so the
//! orchestrator's earliest promotion is always after the agent's latest self-fence.

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
/// the old primary through its agent.
pub fn earliest_promotion_ms(last_heartbeat_ms: u64, bound_ms: u64, probe_interval_ms: u64) -> u64 {
    last_heartbeat_ms + bound_ms + probe_interval_ms + SELF_FENCE_MARGIN_MS
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
        // The agent's last answer is at or after the monitor's last heartbeat.
        for last_hb in [0u64, 5_000, 123_456] {
            let latest_fence = last_hb + bound + probe;
            assert!(earliest_promotion_ms(last_hb, bound, probe) > latest_fence);
        }
    }
}
