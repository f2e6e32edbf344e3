//! `altairctl status [CLUSTER]`: every cluster's hosts with role, health, read_only,
//! GTID position and lag. Registrations and published health come from ZooKeeper; live
//! health and each host's latest snapshot from the monitor that owns the cluster (when
//! it does not answer, the published health is shown and `source` says so). The reading
//! is `altair_status`'s (the console shows the same).

use std::time::Duration;

pub use altair_status::{
    ClusterStatus, HoldStatus, HostStatus, PauseStatus, Status, StatusError, status,
};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The human table.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    for h in &status.holds {
        let ago = humantime::format_duration(Duration::from_secs(
            now_ms().saturating_sub(h.raised_at_unix_ms) / 1000,
        ));
        let what = format!(
            "{} of {} primaries unreachable together ({})",
            h.unreachable.len(),
            h.primaries,
            h.unreachable.join(", ")
        );
        match &h.released_by {
            Some(by) => out.push_str(&format!(
                "FAILOVER HOLD on datacenter {} released by {by} ({}): raised {ago} ago, {what}; it ends once none of its primaries is unreachable\n",
                h.datacenter,
                h.released_reason.as_deref().unwrap_or("")
            )),
            None => out.push_str(&format!(
                "FAILOVER HOLD on datacenter {} (raised {ago} ago): {what} — possibly this control plane's own partition. A cluster fails over only when a replica in {} confirms its primary dead; `altairctl release {} --reason ...` once the datacenter is known to be down\n",
                h.datacenter, h.datacenter, h.datacenter
            )),
        }
    }
    for c in &status.clusters {
        out.push_str(&format!(
            "cluster {}  primary {}  monitor {} ({})\n",
            c.name,
            c.primary.as_deref().unwrap_or("-"),
            c.monitor.as_deref().unwrap_or("-"),
            c.source
        ));
        if let Some(epoch) = c.epoch {
            out.push_str(&format!("  epoch {epoch}"));
            if let Some(f) = &c.failover_in_progress {
                out.push_str(&format!("  failover in progress: {f}"));
            }
            if !c.needs_rejoin.is_empty() {
                out.push_str(&format!("  needs rejoin: {}", c.needs_rejoin.join(", ")));
            }
            for (host, gtids) in &c.errant {
                out.push_str(&format!(
                    "\n  {host} has errant transactions {gtids}: `altairctl rejoin {host} --force` after inspection"
                ));
            }
            out.push('\n');
        }
        if let Some(p) = c
            .hosts
            .iter()
            .find(|h| matches!(h.semi_sync.as_deref(), Some("waiting" | "degraded")))
        {
            if p.semi_sync.as_deref() == Some("degraded") {
                out.push_str(&format!(
                    "  durability semi_sync: DEGRADED: {} commits without waiting for a replica (no acknowledgement within the timeout)\n",
                    p.name
                ));
            } else {
                out.push_str(&format!(
                    "  durability semi_sync: {} waits for a replica's acknowledgement ({} semi-sync replicas connected)\n",
                    p.name,
                    p.semi_sync_clients.unwrap_or(0)
                ));
            }
        }
        if let Some(p) = c
            .hosts
            .iter()
            .find(|h| h.health.as_deref() == Some("write_stalled"))
        {
            out.push_str(&format!(
                "  WRITES STALLED: {} answers reads but its writes do not commit ({}); no automatic failover\n",
                p.name,
                p.write_probe_error.as_deref().unwrap_or("no reason given")
            ));
        }
        if let Some(r) = &c.readiness {
            out.push_str(&format!(
                "  failover readiness: {}\n",
                crate::readiness::line(r)
            ));
        }
        if let Some(p) = &c.paused {
            let until = match p.until_unix_ms {
                Some(u) => format!(
                    "for {} more",
                    humantime::format_duration(Duration::from_secs(
                        u.saturating_sub(now_ms()).div_ceil(1000)
                    ))
                ),
                None => "until `altairctl resume`".to_owned(),
            };
            out.push_str(&format!(
                "  PAUSED by {}: {} ({until}): no automatic failover\n",
                p.by, p.reason
            ));
        }
        if let Some(dc) = &c.failover_held_in {
            out.push_str(&format!(
                "  FAILOVER HELD by admission control (datacenter {dc}): the primary is unreachable; no replica in {dc} confirms it dead\n"
            ));
        }
        if let Some(b) = &c.failover_blocked {
            out.push_str(&format!(
                "  AUTOMATIC FAILOVER BLOCKED: {b}\n  (run `altairctl ack {}` to allow it)\n",
                c.name
            ));
        }
        out.push_str(&format!(
            "  {:<12} {:<8} {:<19} {:<22} {:<9} {:<24} {}\n",
            "host", "role", "health", "mysql", "read_only", "gtid", "lag"
        ));
        for h in &c.hosts {
            out.push_str(&format!(
                "  {:<12} {:<8} {:<19} {:<22} {:<9} {:<24} {}\n",
                h.name,
                h.role.as_deref().unwrap_or("-"),
                h.health.as_deref().unwrap_or("-"),
                h.mysql,
                h.read_only.map_or("-", |r| if r { "ON" } else { "OFF" }),
                match h.gtid_executed.as_deref() {
                    Some("") => "(none)",
                    Some(g) => g,
                    None => "-",
                },
                lag_column(h.seconds_behind, h.replication_lag_ms),
            ));
        }
    }
    out
}

/// `Seconds_Behind_Master` as mysqld says it, then the end-to-end lag the monitor
/// measured (`e2e`), e.g. `0s e2e 4.2s`.
fn lag_column(seconds_behind: Option<i64>, e2e_ms: Option<i64>) -> String {
    let mysqld = seconds_behind.map_or_else(|| "-".to_owned(), |s| format!("{s}s"));
    match e2e_ms {
        Some(ms) => format!("{mysqld} e2e {:.1}s", ms as f64 / 1000.0),
        None => mysqld,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lag_column_shows_mysqlds_figure_then_the_end_to_end_one() {
        assert_eq!(super::lag_column(Some(0), Some(4_200)), "0s e2e 4.2s");
        assert_eq!(super::lag_column(None, Some(0)), "- e2e 0.0s");
        assert_eq!(super::lag_column(Some(3), None), "3s");
        assert_eq!(super::lag_column(None, None), "-");
    }
}
