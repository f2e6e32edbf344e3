//! `altairctl release DATACENTER`: lets the failovers held by a datacenter's admission
//! hold go ahead.

use std::time::Duration;

use altair_proto::v1::ReleaseRequest;
use serde::Serialize;

use crate::admin::{ACTION_TIMEOUT, AdminError, each_within};

/// What `release` reports.
#[derive(Debug, Serialize)]
pub struct Released {
    pub datacenter: String,
    /// The clusters whose failover the hold was holding (they fail over now).
    pub clusters: Vec<String>,
    pub reason: String,
}

pub async fn release(
    orchestrators: &[String],
    datacenter: &str,
    reason: &str,
    timeout: Duration,
) -> Result<Released, AdminError> {
    let r = each_within(orchestrators, timeout, ACTION_TIMEOUT, |mut c| {
        let req = ReleaseRequest {
            datacenter: datacenter.to_owned(),
            reason: reason.to_owned(),
        };
        async move { c.release(req).await }
    })
    .await?;
    Ok(Released {
        datacenter: datacenter.to_owned(),
        clusters: r.clusters,
        reason: reason.trim().to_owned(),
    })
}

/// The human lines.
pub fn render(r: &Released) -> String {
    if r.clusters.is_empty() {
        return format!(
            "datacenter {}: hold released; no failover was waiting on it (any that becomes due fails over as usual until the hold ends)\n",
            r.datacenter
        );
    }
    format!(
        "datacenter {}: hold released; failing over (each primary still verified dead): {}\n",
        r.datacenter,
        r.clusters.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_the_clusters() {
        let r = Released {
            datacenter: "dc1".into(),
            clusters: vec!["c1".into(), "c2".into()],
            reason: "rack lost".into(),
        };
        assert!(render(&r).contains("failing over"));
        assert!(render(&r).contains("c1, c2"));
        let none = Released {
            clusters: vec![],
            ..r
        };
        assert!(render(&none).contains("no failover was waiting"));
    }
}
