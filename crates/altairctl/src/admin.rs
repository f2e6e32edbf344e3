//! Talking to the orchestrators: reads go to the first that answers, actions to the
//! leader (a follower answers UNAVAILABLE and the next address is tried).

use std::time::Duration;

use altair_proto::v1::orchestrator_client::OrchestratorClient;
use altair_proto::v1::*;
use serde::Serialize;
use tonic::transport::Channel;

/// Why no orchestrator could do it.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No orchestrator answered at all (exit 3).
    #[error("no orchestrator answered ({0})")]
    Unreachable(String),
    /// An orchestrator answered with a refusal (exit 1 or 2).
    #[error("{0}")]
    Refused(tonic::Status),
}

/// Operator actions (a switchover waits for the failover's audit record) may take this
/// long once an orchestrator accepted them; connecting keeps the configured timeout.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(180);

async fn client(
    address: &str,
    timeout: Duration,
    call_timeout: Duration,
) -> Result<OrchestratorClient<Channel>, String> {
    let channel = crate::tls::endpoint(address, altair_core::authz_peer::Expected::Orchestrator)?
        .connect_timeout(timeout)
        .timeout(call_timeout)
        .connect()
        .await
        .map_err(|e| format!("{address}: {}", altair_svc::dial::describe(&e)))?;
    Ok(OrchestratorClient::new(channel))
}

/// Calls `f` on each orchestrator in turn until one gives an answer that is not
/// UNAVAILABLE.
async fn each<T, F, Fut>(orchestrators: &[String], timeout: Duration, f: F) -> Result<T, AdminError>
where
    F: FnMut(OrchestratorClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    each_within(orchestrators, timeout, timeout, f).await
}

/// `each` with a separate bound on the call itself (operator actions).
pub(crate) async fn each_within<T, F, Fut>(
    orchestrators: &[String],
    timeout: Duration,
    call_timeout: Duration,
    mut f: F,
) -> Result<T, AdminError>
where
    F: FnMut(OrchestratorClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut tried = Vec::new();
    for address in orchestrators {
        let c = match client(address, timeout, call_timeout).await {
            Ok(c) => c,
            Err(e) => {
                tried.push(e);
                continue;
            }
        };
        match f(c).await {
            Ok(r) => return Ok(r.into_inner()),
            // UNIMPLEMENTED: an older orchestrator (mid-upgrade) without this call.
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unavailable | tonic::Code::Unimplemented
                ) =>
            {
                tried.push(format!("{address}: {}", s.message()))
            }
            Err(s) => return Err(AdminError::Refused(s)),
        }
    }
    Err(AdminError::Unreachable(tried.join("; ")))
}

pub async fn history(
    orchestrators: &[String],
    cluster: &str,
    limit: u32,
    timeout: Duration,
) -> Result<Vec<Audit>, AdminError> {
    let resp = each(orchestrators, timeout, |mut c| {
        let req = HistoryRequest {
            cluster: cluster.to_owned(),
            limit,
        };
        async move { c.history(req).await }
    })
    .await?;
    Ok(resp.records.iter().map(Audit::from).collect())
}

pub async fn acknowledge(
    orchestrators: &[String],
    cluster: &str,
    timeout: Duration,
) -> Result<(), AdminError> {
    each(orchestrators, timeout, |mut c| {
        let req = AcknowledgeRequest {
            cluster: cluster.to_owned(),
        };
        async move { c.acknowledge(req).await }
    })
    .await
    .map(|_| ())
}

pub async fn forget(
    orchestrators: &[String],
    cluster: &str,
    host: &str,
    timeout: Duration,
) -> Result<(), AdminError> {
    each(orchestrators, timeout, |mut c| {
        let req = ForgetRequest {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
        };
        async move { c.forget(req).await }
    })
    .await
    .map(|_| ())
}

/// One failover audit record, as `altairctl history --json` prints it.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub id: String,
    /// automatic, forced or switchover; maintenance for a pause or resume.
    pub kind: String,
    pub outcome: String,
    pub epoch: u64,
    pub old_primary: String,
    pub new_primary: String,
    pub started_at_unix_ms: i64,
    pub total_ms: u32,
    pub stages: Vec<AuditStage>,
    pub gtids_salvaged: String,
    pub transactions_salvaged: u32,
    /// Exact whenever the old host answered (empty: nothing lost).
    pub gtids_lost: String,
    pub old_binlog_end: String,
    pub reason: String,
    /// What an operator should know (an agent that did not answer, an admission hold).
    pub notes: Vec<String>,
    pub finished_at_unix_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct AuditStage {
    pub name: String,
    pub duration_ms: u32,
    pub error: String,
}

impl From<&FailoverRecord> for Audit {
    fn from(r: &FailoverRecord) -> Self {
        let outcome = FailoverOutcome::try_from(r.outcome)
            .map(|o| {
                o.as_str_name()
                    .trim_start_matches("FAILOVER_OUTCOME_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_else(|_| "unknown".into());
        let kind = FailoverKind::try_from(r.kind)
            .map(|k| {
                k.as_str_name()
                    .trim_start_matches("FAILOVER_KIND_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_else(|_| "unknown".into());
        Self {
            id: r.id.clone(),
            kind,
            outcome,
            epoch: r.epoch,
            old_primary: r.old_primary.clone(),
            new_primary: r.new_primary.clone(),
            started_at_unix_ms: r.started_at_unix_ms,
            total_ms: r.total_ms,
            stages: r
                .stages
                .iter()
                .map(|s| AuditStage {
                    name: s.name.clone(),
                    duration_ms: s.duration_ms,
                    error: s.error.clone(),
                })
                .collect(),
            gtids_salvaged: r.gtids_salvaged.clone(),
            transactions_salvaged: r.transactions_salvaged,
            gtids_lost: r.gtids_lost.clone(),
            old_binlog_end: r.old_binlog_end.clone(),
            reason: r.reason.clone(),
            notes: r.notes.clone(),
            finished_at_unix_ms: r.finished_at_unix_ms,
        }
    }
}

/// The human report.
pub fn render_history(cluster: &str, records: &[Audit]) -> String {
    if records.is_empty() {
        return format!("cluster {cluster}: no failover recorded\n");
    }
    let mut out = String::new();
    for r in records {
        if matches!(r.outcome.as_str(), "paused" | "resumed") {
            out.push_str(&format!(
                "maintenance {}  cluster {cluster}  epoch {}  {}\n  {}\n",
                r.id,
                r.epoch,
                r.outcome,
                r.reason
                    .split_once("; ")
                    .map_or(r.reason.as_str(), |(_, d)| d)
            ));
            continue;
        }
        out.push_str(&format!(
            "{} {}  cluster {cluster}  epoch {}  outcome {}\n  {} -> {}  total {} ms\n",
            if r.kind == "switchover" {
                "switchover"
            } else {
                "failover"
            },
            r.id,
            r.epoch,
            r.outcome,
            r.old_primary,
            if r.new_primary.is_empty() {
                "-"
            } else {
                &r.new_primary
            },
            r.total_ms
        ));
        for s in &r.stages {
            out.push_str(&format!(
                "    {:<10} {:>7} ms  {}\n",
                s.name, s.duration_ms, s.error
            ));
        }
        if !r.gtids_salvaged.is_empty() {
            out.push_str(&format!(
                "  salvaged: {} ({} transactions)\n",
                r.gtids_salvaged, r.transactions_salvaged
            ));
        }
        if r.outcome == "succeeded" {
            out.push_str(&format!(
                "  lost: {}\n",
                if r.gtids_lost.is_empty() {
                    "none"
                } else {
                    &r.gtids_lost
                }
            ));
        }
        out.push_str(&format!("  {}\n", r.reason));
        for n in &r.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    out
}
