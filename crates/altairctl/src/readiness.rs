//! `altairctl readiness`: what a failover of each cluster would do now, as its owning
//! monitor judges it from the heartbeats (also a line of `status`).

use std::collections::BTreeMap;

pub use altair_status::ReadinessStatus;
use altair_status::Status;

/// One line: the verdict and what it rests on.
pub fn line(r: &ReadinessStatus) -> String {
    let mut out = match (r.verdict.as_str(), &r.blocked_reason) {
        ("blocked", Some(why)) => format!("BLOCKED: {why}"),
        ("lossy", _) => format!(
            "LOSSY: candidate {} lacks {} transaction(s) {}",
            r.candidate.as_deref().unwrap_or("-"),
            r.missing_transactions,
            r.missing_gtids
        ),
        (v, _) => format!("{v}: candidate {}", r.candidate.as_deref().unwrap_or("-")),
    };
    if let Some(lag) = r.candidate_lag_s {
        out.push_str(&format!(", lag {lag}s"));
    }
    out.push_str(if r.salvage_possible {
        "; salvage possible if only mysqld fails"
    } else {
        "; no salvage (the primary's agent is not heard)"
    });
    for (host, gtids) in &r.errant {
        let whose = if r.candidate.as_deref() == Some(host.as_str()) {
            " (the candidate: a failover would publish them)"
        } else {
            ""
        };
        out.push_str(&format!("; {host} has errant transactions {gtids}{whose}"));
    }
    if !r.unasked.is_empty() {
        out.push_str(&format!("; not heard: {}", r.unasked.join(", ")));
    }
    out
}

/// What `altairctl readiness --json` prints: cluster → readiness (null when its
/// monitor did not answer).
pub fn by_cluster(status: &Status) -> BTreeMap<String, Option<ReadinessStatus>> {
    status
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.readiness.clone()))
        .collect()
}

/// The human table.
pub fn render(status: &Status) -> String {
    status
        .clusters
        .iter()
        .map(|c| match &c.readiness {
            Some(r) => format!("cluster {}  {}\n", c.name, line(r)),
            None => format!(
                "cluster {}  unknown: its monitor did not answer (readiness is judged by the owning monitor)\n",
                c.name
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lossy_line_lists_what_is_missing() {
        let r = ReadinessStatus {
            verdict: "lossy".into(),
            blocked_reason: None,
            primary: Some("db1".into()),
            candidate: Some("db2".into()),
            missing_transactions: 5,
            missing_gtids: "0-1-8..12 (5 transactions)".into(),
            candidate_lag_s: Some(3),
            salvage_possible: true,
            errant: BTreeMap::new(),
            unasked: vec!["db3".into()],
        };
        let l = line(&r);
        assert!(l.contains("LOSSY: candidate db2 lacks 5"), "{l}");
        assert!(
            l.contains("0-1-8..12") && l.contains("lag 3s") && l.contains("db3"),
            "{l}"
        );
    }
}
