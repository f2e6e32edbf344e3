//! A cluster's failovers as an operator reads them: the audit records (newest first) and
//! the journal of the one in progress, in one shape.

use altair_core::ClusterName;
use altair_core::failover::Journal;
use altair_core::registry::FailoverAudit;
use altair_zk::Zk;
use serde::{Deserialize, Serialize};

/// One stage of a failover and how long it took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageView {
    /// detect, verify, lock, fence, choose, catch_up, salvage, promote, repoint, publish, record.
    pub name: String,
    pub started_at_unix_ms: u64,
    pub duration_ms: u64,
    /// Empty on success.
    pub error: String,
}

/// One failover (or a maintenance pause/resume recorded in the same trail).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverView {
    pub id: String,
    pub cluster: String,
    pub epoch: u64,
    /// `automatic`, `forced`, `switchover` or `maintenance`.
    pub kind: String,
    /// `in_progress`, `succeeded`, `failed`, `refused`, `aborted`, `primary_alive`,
    /// `paused`, `resumed`.
    pub outcome: String,
    /// What triggered it, and what its outcome rests on.
    pub reason: String,
    pub old_primary: String,
    pub new_primary: Option<String>,
    /// While in progress: the step it runs now.
    pub step: Option<String>,
    pub stages: Vec<StageView>,
    /// GTIDs the new primary lacks (empty: nothing lost; `unknown: …` when the old host
    /// could not be asked).
    pub gtids_lost: String,
    pub gtids_salvaged: String,
    pub transactions_salvaged: u32,
    pub old_binlog_end: String,
    pub notes: Vec<String>,
    pub started_at_unix_ms: u64,
    /// Null while in progress.
    pub finished_at_unix_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

impl FailoverView {
    /// A finished failover from its audit record.
    pub fn finished(a: &FailoverAudit) -> Self {
        let mut v = Self::running(&a.journal);
        v.outcome = a.outcome.clone();
        if matches!(a.outcome.as_str(), "paused" | "resumed") {
            v.kind = "maintenance".into();
        }
        if !a.detail.is_empty() {
            v.reason = format!("{}; {}", v.reason, a.detail);
        }
        v.new_primary = a.new_primary.clone();
        v.step = None;
        v.finished_at_unix_ms = Some(a.finished_at_ms);
        v.total_ms = Some(a.total_ms);
        v
    }

    /// The failover in progress, from its journal.
    pub fn running(j: &Journal) -> Self {
        Self {
            id: j.id.clone(),
            cluster: j.cluster.clone(),
            epoch: j.epoch,
            kind: j.kind.as_str().to_owned(),
            outcome: "in_progress".into(),
            reason: j.trigger.clone(),
            old_primary: j.old_primary.clone(),
            new_primary: j.candidate.clone(),
            step: Some(j.step.as_str().to_owned()),
            stages: j
                .stages
                .iter()
                .map(|s| StageView {
                    name: s.name.clone(),
                    started_at_unix_ms: s.started_at_ms,
                    duration_ms: s.duration_ms,
                    error: s.error.clone(),
                })
                .collect(),
            gtids_lost: j.gtids_lost.clone(),
            gtids_salvaged: j.gtids_salvaged.clone(),
            transactions_salvaged: j.transactions_salvaged,
            old_binlog_end: j.old_binlog_end.clone(),
            notes: j.notes.clone(),
            started_at_unix_ms: j.started_at_ms,
            finished_at_unix_ms: None,
            total_ms: None,
        }
    }
}

/// The failover in progress (if any), then the last `limit` audit records, newest first.
pub async fn history(
    zk: &Zk,
    cluster: &ClusterName,
    limit: usize,
) -> altair_zk::Result<Vec<FailoverView>> {
    let l = zk.layout();
    let mut out = Vec::new();
    if let Some(j) = zk
        .get_record::<Journal>("failover journal", &l.failover_journal(cluster))
        .await?
    {
        out.push(FailoverView::running(&j));
    }
    let mut ids = zk.children(&l.history(cluster)).await?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    for id in ids.into_iter().take(limit) {
        if let Some(a) = zk
            .get_record::<FailoverAudit>("audit", &l.history_entry(cluster, &id))
            .await?
        {
            out.push(FailoverView::finished(&a));
        }
    }
    Ok(out)
}

/// One failover by id: the one in progress or an audit record.
pub async fn one(
    zk: &Zk,
    cluster: &ClusterName,
    id: &str,
) -> altair_zk::Result<Option<FailoverView>> {
    let l = zk.layout();
    if let Some(j) = zk
        .get_record::<Journal>("failover journal", &l.failover_journal(cluster))
        .await?
        .filter(|j| j.id == id)
    {
        return Ok(Some(FailoverView::running(&j)));
    }
    Ok(zk
        .get_record::<FailoverAudit>("audit", &l.history_entry(cluster, id))
        .await?
        .map(|a| FailoverView::finished(&a)))
}
