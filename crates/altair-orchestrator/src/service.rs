//! The admin API. Reads work on any orchestrator; actions go to the leader (a follower
//! answers UNAVAILABLE naming the leader).

use std::sync::{Arc, Mutex};

use altair_core::ClusterName;
use altair_core::registry::{ClusterState, FailoverAudit, MonitorRecord, from_json, to_json};
use altair_proto::v1::orchestrator_server::Orchestrator;
use altair_proto::v1::*;
use altair_zk::{Op, Zk};
use tonic::{Request, Response, Status};

use std::time::Duration;

use altair_core::failover::Kind;

use altair_core::pause::Pause;

use crate::ctx::{Ctx, now_ms};
use crate::operator;
use crate::view::ClusterView;

pub struct AdminService {
    pub me: String,
    /// The current session (any role) and, when leading, the leader's context.
    pub session: Arc<Mutex<Option<Zk>>>,
    pub leader: Arc<Mutex<Option<Ctx>>>,
    pub dns: altair_dns::DnsClient,
}

fn zk_err(e: altair_zk::ZkError) -> Status {
    Status::unavailable(format!("ZooKeeper: {e}"))
}

impl AdminService {
    fn zk(&self) -> Result<Zk, Status> {
        self.session
            .lock()
            .ok()
            .and_then(|z| z.clone())
            .ok_or_else(|| Status::unavailable("this orchestrator has no ZooKeeper session"))
    }

    async fn leader_address(&self, zk: &Zk) -> String {
        match zk.get(&zk.layout().leader()).await {
            Ok(Some(b)) => from_json::<MonitorRecord>("leader", &b)
                .map(|r| format!("{} at {}", r.id, r.address))
                .unwrap_or_default(),
            _ => "unknown".into(),
        }
    }

    /// The leader's context, or UNAVAILABLE naming the leader.
    async fn leading(&self) -> Result<Ctx, Status> {
        if let Some(ctx) = self.leader.lock().ok().and_then(|l| l.clone()) {
            return Ok(ctx);
        }
        let zk = self.zk()?;
        Err(Status::unavailable(format!(
            "not the leader; the leader is {}",
            self.leader_address(&zk).await
        )))
    }

    async fn view(zk: &Zk, c: &ClusterName) -> Result<ClusterView, Status> {
        if !zk.exists(&zk.layout().cluster(c)).await.map_err(zk_err)? {
            return Err(Status::not_found(format!(
                "no cluster {c}: `altairctl status` lists the clusters"
            )));
        }
        ClusterView::load(zk, c).await.map_err(zk_err)
    }

    async fn operator_failover(
        &self,
        cluster: &str,
        to_host: &str,
        kind: Kind,
        force: bool,
        by: &str,
    ) -> Result<Response<FailoverRecord>, Status> {
        let c = Self::cluster(cluster)?;
        let target = if to_host.is_empty() {
            None
        } else {
            Some(
                altair_core::HostName::new(to_host.to_owned())
                    .map_err(|e| Status::invalid_argument(format!("to_host: {e}")))?
                    .to_string(),
            )
        };
        let ctx = self.leading().await?;
        let view = Self::view(&ctx.zk, &c).await?;
        let id = operator::start(&ctx, &view, kind, target, force, by).await?;
        let bound = Duration::from_millis(
            60_000
                + ctx.config.orchestrator.switchover_catch_up_timeout_ms
                + ctx.config.hooks.timeout_ms,
        );
        let audit = operator::await_audit(&ctx, &view, &id, bound).await?;
        Ok(Response::new(to_record(&audit)))
    }

    fn cluster(name: &str) -> Result<ClusterName, Status> {
        ClusterName::new(name.to_owned())
            .map_err(|e| Status::invalid_argument(format!("cluster: {e}")))
    }
}

#[tonic::async_trait]
impl Orchestrator for AdminService {
    async fn list_clusters(
        &self,
        _: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        let zk = self.zk()?;
        let l = zk.layout();
        let mut clusters = Vec::new();
        for name in zk.children(&l.clusters()).await.map_err(zk_err)? {
            let Ok(c) = ClusterName::new(name.clone()) else {
                continue;
            };
            let state = zk
                .get(&l.cluster_state(&c))
                .await
                .map_err(zk_err)?
                .and_then(|b| from_json::<ClusterState>("state", &b).ok())
                .unwrap_or_default();
            let in_progress = zk
                .get(&l.failover_journal(&c))
                .await
                .map_err(zk_err)?
                .and_then(|b| from_json::<altair_core::failover::Journal>("journal", &b).ok())
                .map(|j| j.id)
                .unwrap_or_default();
            let paused = pause_state(&state);
            clusters.push(ClusterSummary {
                name,
                primary: state.primary.unwrap_or_default(),
                epoch: state.epoch,
                host_count: zk.children(&l.hosts(&c)).await.map_err(zk_err)?.len() as u32,
                failover_blocked_reason: state.failover_blocked.unwrap_or_default(),
                failover_in_progress: in_progress,
                paused,
            });
        }
        let leader = self.leader_address(&zk).await;
        Ok(Response::new(ListClustersResponse {
            clusters,
            answered_by: self.me.clone(),
            leader,
        }))
    }

    async fn get_topology(
        &self,
        request: Request<GetTopologyRequest>,
    ) -> Result<Response<Topology>, Status> {
        let c = Self::cluster(&request.into_inner().cluster)?;
        let zk = self.zk()?;
        let view = Self::view(&zk, &c).await?;
        Ok(Response::new(
            crate::topology::build(&view, &self.dns).await,
        ))
    }

    async fn switchover(
        &self,
        request: Request<SwitchoverRequest>,
    ) -> Result<Response<FailoverRecord>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        self.operator_failover(&r.cluster, &r.to_host, Kind::Switchover, false, &by)
            .await
    }

    async fn failover(
        &self,
        request: Request<FailoverRequest>,
    ) -> Result<Response<FailoverRecord>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        self.operator_failover(&r.cluster, &r.to_host, Kind::Forced, r.force, &by)
            .await
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<HistoryResponse>, Status> {
        let req = request.into_inner();
        let c = Self::cluster(&req.cluster)?;
        let zk = self.zk()?;
        let l = zk.layout();
        let mut ids = zk.children(&l.history(&c)).await.map_err(zk_err)?;
        ids.sort();
        ids.reverse();
        let limit = if req.limit == 0 {
            20
        } else {
            req.limit as usize
        };
        let mut records = Vec::new();
        for id in ids.into_iter().take(limit) {
            let Some(b) = zk.get(&l.history_entry(&c, &id)).await.map_err(zk_err)? else {
                continue;
            };
            let Ok(a) = from_json::<FailoverAudit>("audit", &b) else {
                continue;
            };
            records.push(to_record(&a));
        }
        Ok(Response::new(HistoryResponse { records }))
    }

    async fn acknowledge(
        &self,
        request: Request<AcknowledgeRequest>,
    ) -> Result<Response<AcknowledgeResponse>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let c = Self::cluster(&request.into_inner().cluster)?;
        let ctx = self.leader.lock().ok().and_then(|l| l.clone());
        let Some(ctx) = ctx else {
            let zk = self.zk()?;
            return Err(Status::unavailable(format!(
                "not the leader; the leader is {}",
                self.leader_address(&zk).await
            )));
        };
        let l = ctx.zk.layout();
        let (bytes, version) = ctx
            .zk
            .get_versioned(&l.cluster_state(&c))
            .await
            .map_err(zk_err)?
            .ok_or_else(|| Status::not_found(format!("cluster {c} has no state yet")))?;
        let mut state: ClusterState = from_json("state", &bytes).map_err(Status::internal)?;
        state.acknowledged = true;
        state.held = false;
        state.failover_blocked = None;
        ctx.write(&[Op::Set {
            path: l.cluster_state(&c),
            data: to_json(&state),
            version: Some(version),
        }])
        .await
        .map_err(zk_err)?;
        tracing::warn!(cluster = %c, by, "failover block acknowledged by an operator");
        Ok(Response::new(AcknowledgeResponse {}))
    }

    async fn abort(
        &self,
        request: Request<AbortRequest>,
    ) -> Result<Response<FailoverRecord>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        let c = Self::cluster(&r.cluster)?;
        let reason = r.reason.trim();
        if reason.is_empty() {
            return Err(Status::invalid_argument(
                "reason is required: say why the failover is aborted (it goes into the audit record)",
            ));
        }
        if reason.len() > 1000 {
            return Err(Status::invalid_argument("reason is longer than 1000 bytes"));
        }
        let ctx = self.leading().await?;
        let view = Self::view(&ctx.zk, &c).await?;
        let reason = format!("{reason} (by {by})");
        let id = crate::operator::request_abort(&ctx, &view, &reason).await?;
        let audit = operator::await_audit(&ctx, &view, &id, Duration::from_secs(120)).await?;
        Ok(Response::new(to_record(&audit)))
    }

    async fn forget(
        &self,
        request: Request<ForgetRequest>,
    ) -> Result<Response<ForgetResponse>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        let c = Self::cluster(&r.cluster)?;
        let host = altair_core::HostName::new(r.host.clone())
            .map_err(|e| Status::invalid_argument(format!("host: {e}")))?;
        let ctx = self.leading().await?;
        let view = Self::view(&ctx.zk, &c).await?;
        crate::forget::forget(&ctx, &view, &host, &by).await?;
        Ok(Response::new(ForgetResponse {}))
    }

    async fn pause(
        &self,
        request: Request<PauseRequest>,
    ) -> Result<Response<PauseResponse>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        let for_ms = r.for_seconds.saturating_mul(1000);
        let p = Pause::new(&by, &r.reason, now_ms(), for_ms)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ctx = self.leading().await?;
        let change = crate::pause::Change::Set(p);
        let clusters = crate::pause::apply_all(&ctx, &r.cluster, r.all, &change).await?;
        Ok(Response::new(PauseResponse { clusters }))
    }

    async fn resume(
        &self,
        request: Request<ResumeRequest>,
    ) -> Result<Response<PauseResponse>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        let ctx = self.leading().await?;
        let change = crate::pause::Change::Clear { by, expired: false };
        let clusters = crate::pause::apply_all(&ctx, &r.cluster, r.all, &change).await?;
        Ok(Response::new(PauseResponse { clusters }))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        let release = altair_core::admission::release(&r.datacenter, &by, &r.reason, now_ms())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ctx = self.leading().await?;
        match ctx.admission.release(&ctx, &r.datacenter, release).await {
            Ok(Ok(clusters)) => Ok(Response::new(ReleaseResponse { clusters })),
            Ok(Err(none)) => Err(Status::not_found(none)),
            Err(
                e @ (altair_zk::ZkError::NotLeader { .. }
                | altair_zk::ZkError::SessionExpired { .. }),
            ) => Err(Status::unavailable(format!("not the leader any more: {e}"))),
            Err(e) => Err(zk_err(e)),
        }
    }

    async fn rejoin(
        &self,
        request: Request<RejoinRequest>,
    ) -> Result<Response<RejoinResponse>, Status> {
        let by = altair_svc::authz::caller(&request)?.to_string();
        let r = request.into_inner();
        let c = Self::cluster(&r.cluster)?;
        let host = altair_core::HostName::new(r.host.clone())
            .map_err(|e| Status::invalid_argument(format!("host: {e}")))?
            .to_string();
        let ctx = self.leading().await?;
        let view = Self::view(&ctx.zk, &c).await?;
        let (state, version) = view
            .state
            .clone()
            .ok_or_else(|| Status::failed_precondition(format!("cluster {c} has no state yet")))?;
        if !state.needs_rejoin.contains(&host) {
            return Err(Status::failed_precondition(format!(
                "{host} is not waiting for rejoin in {c} (waiting: {})",
                if state.needs_rejoin.is_empty() {
                    "none".to_owned()
                } else {
                    state.needs_rejoin.join(", ")
                }
            )));
        }
        if view.journal.is_some() {
            return Err(Status::aborted(format!(
                "a failover is in progress on {c}; retry after it"
            )));
        }
        let out = crate::rejoin::rejoin_host(&ctx, &view, &state, version, &host, r.force)
            .await
            .map_err(Status::failed_precondition)?;
        if r.force && out.rejoined {
            tracing::warn!(cluster = %c, host = %host, by, errant = %out.errant, saved_to = %out.saved_to, "forced rejoin by an operator");
        }
        Ok(Response::new(RejoinResponse {
            rejoined: out.rejoined,
            errant_gtids: out.errant,
            saved_to: out.saved_to,
        }))
    }
}

/// A pause in force, as the API shows it.
pub(crate) fn pause_state(state: &ClusterState) -> Option<PauseState> {
    let p = state.paused.as_ref().filter(|p| p.active(now_ms()))?;
    Some(PauseState {
        by: p.by.clone(),
        reason: p.reason.clone(),
        since_unix_ms: p.since_ms as i64,
        until_unix_ms: p.until_ms.unwrap_or(0) as i64,
    })
}

fn to_record(a: &FailoverAudit) -> FailoverRecord {
    let j = &a.journal;
    let outcome = match a.outcome.as_str() {
        "succeeded" => FailoverOutcome::Succeeded,
        "primary_alive" => FailoverOutcome::PrimaryAlive,
        "refused" => FailoverOutcome::Refused,
        "aborted" => FailoverOutcome::Aborted,
        "paused" => FailoverOutcome::Paused,
        "resumed" => FailoverOutcome::Resumed,
        "reopened" => FailoverOutcome::Reopened,
        _ => FailoverOutcome::Failed,
    };
    let kind = match j.kind {
        // Operator actions recorded in the same trail.
        _ if matches!(
            outcome,
            FailoverOutcome::Paused | FailoverOutcome::Resumed | FailoverOutcome::Reopened
        ) =>
        {
            FailoverKind::Maintenance
        }
        Kind::Automatic => FailoverKind::Automatic,
        Kind::Forced => FailoverKind::Forced,
        Kind::Switchover => FailoverKind::Switchover,
    };
    FailoverRecord {
        id: j.id.clone(),
        cluster: j.cluster.clone(),
        epoch: j.epoch,
        kind: kind as i32,
        outcome: outcome as i32,
        reason: format!(
            "{}{}{}",
            j.trigger,
            if a.detail.is_empty() { "" } else { "; " },
            a.detail
        ),
        old_primary: j.old_primary.clone(),
        new_primary: a.new_primary.clone().unwrap_or_default(),
        stages: j
            .stages
            .iter()
            .map(|s| StageTiming {
                name: s.name.clone(),
                started_at_unix_ms: s.started_at_ms as i64,
                duration_ms: s.duration_ms as u32,
                error: s.error.clone(),
            })
            .collect(),
        gtids_lost: j.gtids_lost.clone(),
        gtids_salvaged: j.gtids_salvaged.clone(),
        started_at_unix_ms: j.started_at_ms as i64,
        total_ms: a.total_ms as u32,
        transactions_salvaged: j.transactions_salvaged,
        old_binlog_end: j.old_binlog_end.clone(),
        notes: j.notes.clone(),
        finished_at_unix_ms: a.finished_at_ms as i64,
    }
}
