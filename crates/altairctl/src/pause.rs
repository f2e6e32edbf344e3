//! `altairctl pause` / `resume`: a maintenance pause of one cluster or every cluster.

use std::time::Duration;

use altair_proto::v1::*;
use serde::Serialize;

use crate::admin::{ACTION_TIMEOUT, AdminError, each_within};

/// What `pause` / `resume` report.
#[derive(Debug, Serialize)]
pub struct Paused {
    /// `paused` or `resumed`.
    pub action: String,
    /// The clusters changed (resume: those that were paused).
    pub clusters: Vec<String>,
    pub reason: Option<String>,
    /// Seconds until the pause ends by itself; null: at `altairctl resume`.
    pub for_seconds: Option<u64>,
}

/// Parses `--for` ("30m", "2h", "1h 30m"): at least a second; a fraction of a second
/// rounds up.
pub fn parse_for(text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("--for {text:?}: {e} (write a duration such as 30m, 2h or 1h30m)"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("--for {text:?}: shorter than a second"));
    }
    Ok(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

pub async fn pause(
    orchestrators: &[String],
    cluster: Option<&str>,
    for_seconds: Option<u64>,
    reason: &str,
    timeout: Duration,
) -> Result<Paused, AdminError> {
    let r = each_within(orchestrators, timeout, ACTION_TIMEOUT, |mut c| {
        let req = PauseRequest {
            cluster: cluster.unwrap_or_default().to_owned(),
            all: cluster.is_none(),
            for_seconds: for_seconds.unwrap_or(0),
            reason: reason.to_owned(),
        };
        async move { c.pause(req).await }
    })
    .await?;
    Ok(Paused {
        action: "paused".into(),
        clusters: r.clusters,
        reason: Some(reason.trim().to_owned()),
        for_seconds,
    })
}

pub async fn resume(
    orchestrators: &[String],
    cluster: Option<&str>,
    timeout: Duration,
) -> Result<Paused, AdminError> {
    let r = each_within(orchestrators, timeout, ACTION_TIMEOUT, |mut c| {
        let req = ResumeRequest {
            cluster: cluster.unwrap_or_default().to_owned(),
            all: cluster.is_none(),
        };
        async move { c.resume(req).await }
    })
    .await?;
    Ok(Paused {
        action: "resumed".into(),
        clusters: r.clusters,
        reason: None,
        for_seconds: None,
    })
}

/// The human lines.
pub fn render(p: &Paused) -> String {
    if p.clusters.is_empty() {
        return if p.action == "resumed" {
            "no cluster was paused: nothing to resume\n".to_owned()
        } else {
            "no cluster to pause (none has a state yet)\n".to_owned()
        };
    }
    let how = match (p.action.as_str(), p.for_seconds) {
        ("paused", Some(s)) => format!(
            "paused for {}: no automatic failover until then or `altairctl resume`",
            humantime::format_duration(Duration::from_secs(s))
        ),
        ("paused", None) => "paused: no automatic failover until `altairctl resume`".to_owned(),
        _ => "resumed: automatic failover applies again".to_owned(),
    };
    p.clusters
        .iter()
        .map(|c| format!("cluster {c}: {how}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_are_named() {
        assert_eq!(parse_for("30m"), Ok(1800));
        assert_eq!(parse_for("1h 30m"), Ok(5400));
        assert_eq!(parse_for("1500ms"), Ok(2));
        let e = parse_for("ten minutes").expect_err("not a duration");
        assert!(e.contains("\"ten minutes\""), "{e}");
        assert!(
            parse_for("10ms")
                .expect_err("too short")
                .contains("shorter")
        );
    }

    #[test]
    fn render_says_what_happened() {
        let p = Paused {
            action: "paused".into(),
            clusters: vec!["shop".into()],
            reason: Some("kernel upgrade".into()),
            for_seconds: Some(3600),
        };
        assert!(render(&p).contains("cluster shop: paused for 1h"));
        let r = Paused {
            action: "resumed".into(),
            clusters: vec![],
            reason: None,
            for_seconds: None,
        };
        assert!(render(&r).contains("nothing to resume"));
    }
}
