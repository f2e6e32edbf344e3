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

/// Should a primary's agent fence its mysqld now? Only a writable primary that has heard
/// from no monitor and reached no replica for `bound_ms` does: it is isolated, and the
/// control plane may already be failing it over. A primary that still reaches a monitor
/// or a replica stays writable (losing ZooKeeper alone never fences).
pub fn self_fence_due(
    now_ms: u64,
    writable_primary: bool,
    last_control_ms: u64,
    last_replica_ms: u64,
    bound_ms: u64,
) -> bool {
    writable_primary
        && now_ms.saturating_sub(last_control_ms) >= bound_ms
        && now_ms.saturating_sub(last_replica_ms) >= bound_ms
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
            "still hears a monitor"
        );
        assert!(
            !self_fence_due(20_000, true, 0, 15_000, 10_000),
            "still reaches a replica"
        );
        assert!(
            !self_fence_due(20_000, false, 0, 0, 10_000),
            "a replica or read-only server"
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
