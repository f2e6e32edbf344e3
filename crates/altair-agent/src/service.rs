//! The agent's gRPC API. Actions that change MySQL arrive with the orchestrator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use altair_proto::v1::agent_server::Agent;
use altair_proto::v1::*;
use altair_svc::Secret;
use mysql_async::prelude::Queryable;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::actions::Actions;
use crate::mysql::opts;

pub struct AgentService {
    pub contact: Arc<crate::selffence::Contact>,
    pub actions: Arc<Actions>,
    pub registration: HostRegistration,
    pub snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    /// The account `CheckReachability` logs in with (`[probe]`, else the admin's).
    pub probe_user: String,
    pub probe_password: Secret,
    pub probe_tls: altair_svc::mysql_tls::MysqlTlsLoaded,
}

/// MySQL's "access denied" codes (1044 database, 1045 user/password, 1698 no password
/// given for a user that needs one).
const ACCESS_DENIED: [u16; 3] = [1044, 1045, 1698];

/// How a reachability check failed to get `SELECT 1` through.
enum CheckFailed {
    /// mysqld answered (it refused the account): it is up.
    Answered(String),
    /// No answer from mysqld.
    Unanswered(String),
}
use CheckFailed::{Answered, Unanswered};

#[tonic::async_trait]
impl Agent for AgentService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let fenced_at = self
            .contact
            .fenced_at_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        Ok(Response::new(StatusResponse {
            registration: Some(self.registration.clone()),
            snapshot: Some(self.snapshots.borrow().as_ref().clone()),
            epoch: self.actions.epoch(),
            self_fenced: fenced_at > 0,
            self_fenced_at_unix_ms: fenced_at as i64,
        }))
    }

    async fn check_reachability(
        &self,
        request: Request<CheckReachabilityRequest>,
    ) -> Result<Response<CheckReachabilityResponse>, Status> {
        let req = request.into_inner();
        let target = req
            .target
            .ok_or_else(|| Status::invalid_argument("target is required"))?;
        if target.host.is_empty() || !altair_core::config::is_host(&target.host) {
            return Err(Status::invalid_argument(format!(
                "target.host {:?} is not a host name or address",
                target.host
            )));
        }
        let port = u16::try_from(target.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                Status::invalid_argument(format!("target.port {} is not 1..=65535", target.port))
            })?;
        if !(1..=30_000).contains(&req.timeout_ms) {
            return Err(Status::invalid_argument(format!(
                "timeout_ms {} is not 1..=30000",
                req.timeout_ms
            )));
        }
        // The check logs in (with the probe account, or the admin's when none is set)
        // only ever to a mysqld of this cluster (the list follows ZooKeeper by watch; a host
        // registered since is looked up now).
        if !self.contact.is_cluster_mysql(&target.host, port)
            && let Some(fresh) = self.actions.registered_mysql().await
        {
            self.contact.set_cluster_mysql(fresh);
        }
        if !self.contact.is_cluster_mysql(&target.host, port) {
            return Err(Status::permission_denied(format!(
                "{}:{port} is not the mysqld of a host registered in this cluster",
                target.host
            )));
        }
        if req.last_heard_only {
            return Ok(Response::new(CheckReachabilityResponse {
                reachable: false,
                error: "not checked: only when this agent last heard from the host".into(),
                elapsed_ms: 0,
                last_heard_from_target_unix_ms: last_heard_from(&target.host, port).await,
            }));
        }
        let timeout = Duration::from_millis(u64::from(req.timeout_ms));
        let started = Instant::now();
        // Looked up beside the check, not after it: a slow name lookup must not push
        // the answer past the caller's deadline.
        let heard = last_heard_from(&target.host, port);
        let result = async {
            let login = opts(
                &target.host,
                port,
                &self.probe_user,
                &self.probe_password,
                &self.probe_tls,
            );
            let mut conn = match tokio::time::timeout(timeout, mysql_async::Conn::new(login)).await
            {
                Ok(Ok(conn)) => conn,
                // mysqld answered the handshake and refused the account: it is up (and the
                // probe account's grant needs fixing — said in the answer and the log).
                Ok(Err(mysql_async::Error::Server(e))) if ACCESS_DENIED.contains(&e.code) => {
                    tracing::warn!(target = %format!("{}:{port}", target.host), user = %self.probe_user, code = e.code, "the probe account is refused by a mysqld of this cluster: counted as reachable; check its grant");
                    return Err(Answered(format!(
                        "mysqld answered but refused the probe account {}: server error {}",
                        self.probe_user, e.code
                    )));
                }
                // The TLS handshake failed: mysqld sent its greeting first, so it is up
                // (a certificate or setting to fix, said in the answer and the log).
                Ok(Err(e)) if altair_svc::mysql_tls::answered(&e) => {
                    tracing::warn!(target = %format!("{}:{port}", target.host), error = %crate::mysql::describe(&e), "a mysqld of this cluster answered but refused the probe's session: counted as reachable; check [probe] tls and tls_ca_file");
                    return Err(Answered(format!(
                        "mysqld answered but refused the session: {}",
                        crate::mysql::describe(&e)
                    )));
                }
                Ok(Err(e)) => return Err(Unanswered(crate::mysql::describe(&e))),
                Err(_) => {
                    return Err(Unanswered(format!(
                        "no handshake within {} ms",
                        timeout.as_millis()
                    )));
                }
            };
            let left = timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, conn.query_drop("SELECT 1")).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Unanswered(crate::mysql::describe(&e))),
                Err(_) => Err(Unanswered(format!(
                    "no answer to SELECT 1 within {} ms",
                    timeout.as_millis()
                ))),
            }
        };
        let (result, heard) = tokio::join!(result, heard);
        let elapsed_ms = started.elapsed().as_millis() as u32;
        let (reachable, error) = match result {
            Ok(()) => (true, String::new()),
            Err(Answered(note)) => (true, note),
            Err(Unanswered(error)) => (false, error),
        };
        Ok(Response::new(CheckReachabilityResponse {
            reachable,
            error,
            elapsed_ms,
            last_heard_from_target_unix_ms: heard,
        }))
    }

    async fn fence(
        &self,
        request: Request<FenceRequest>,
    ) -> Result<Response<FenceResponse>, Status> {
        let deadline = crate::deadline::deadline(&request, "fence")?;
        let req = request.into_inner();
        self.actions.check_epoch(req.epoch).await?;
        let fenced = match FenceMode::try_from(req.mode) {
            Ok(FenceMode::ReadOnly) => {
                self.actions
                    .fence_read_only(req.allow_kill, deadline)
                    .await?
            }
            Ok(FenceMode::StopMysqld) => self.actions.stop_mysqld(deadline).await?,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "mode {} is not a fence mode",
                    req.mode
                )));
            }
        };
        let outcome = if fenced.not_running {
            FenceOutcome::NotRunning
        } else {
            FenceOutcome::ReadOnly
        };
        tracing::warn!(epoch = req.epoch, failover_id = %req.failover_id, connections_killed = fenced.killed, outcome = outcome.as_str_name(), "mysqld fenced");
        self.actions.reprobe.notify_one();
        Ok(Response::new(FenceResponse {
            connections_killed: fenced.killed,
            gtid_executed: fenced.gtid,
            outcome: outcome as i32,
        }))
    }

    async fn set_read_only(
        &self,
        request: Request<SetReadOnlyRequest>,
    ) -> Result<Response<SetReadOnlyResponse>, Status> {
        let deadline = crate::deadline::deadline(&request, "set_read_only")?;
        let req = request.into_inner();
        self.actions.check_epoch(req.epoch).await?;
        if !req.read_only && !self.contact.may_be_writable() {
            return Err(Status::failed_precondition(
                "refused to make mysqld writable: this host holds no control-plane lease and does not reach every replica's agent (it would fence itself again)",
            ));
        }
        if !req.read_only {
            self.contact.made_writable();
        }
        let read_only = self.actions.set_read_only(req.read_only, deadline).await?;
        if !read_only {
            self.contact.made_writable();
        }
        tracing::info!(epoch = req.epoch, read_only, "read_only set");
        self.actions.reprobe.notify_one();
        Ok(Response::new(SetReadOnlyResponse { read_only }))
    }

    type SalvageBinlogStream = tokio_stream::wrappers::ReceiverStream<Result<SalvageChunk, Status>>;

    async fn salvage_binlog(
        &self,
        request: Request<SalvageBinlogRequest>,
    ) -> Result<Response<Self::SalvageBinlogStream>, Status> {
        let deadline = deadline_of(request.metadata(), "salvage", request.get_ref().timeout_ms)?;
        let req = request.into_inner();
        self.actions.check_epoch(req.epoch).await?;
        if req.after_gtid.is_empty() || req.after_gtid.contains(['\'', '"', ' ']) {
            return Err(Status::invalid_argument(format!(
                "after_gtid {:?} is not a GTID position",
                req.after_gtid
            )));
        }
        let prepared =
            tokio::time::timeout_at(deadline, self.actions.prepare_salvage(&req.after_gtid))
                .await
                .map_err(|_| {
                    Status::deadline_exceeded("the binlog scan did not finish by its deadline")
                })??;
        let plan = &prepared.plan;
        tracing::warn!(
            epoch = req.epoch, failover_id = %req.failover_id, after = %req.after_gtid,
            missing = %plan.missing_gtids, transactions = plan.transaction_count,
            bytes = plan.bytes, start = %plan.start, end = %plan.end_gtid, torn = %plan.torn_gtid,
            "binlog salvage planned"
        );
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(crate::salvage::stream(prepared, deadline, tx));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn apply_salvage(
        &self,
        request: Request<tonic::Streaming<ApplySalvageChunk>>,
    ) -> Result<Response<ApplySalvageResponse>, Status> {
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty salvage stream"))?;
        let deadline = deadline_of(&metadata, "apply_salvage", first.timeout_ms)?;
        self.actions.check_epoch(first.epoch).await?;
        let (epoch, failover_id, gtids) =
            (first.epoch, first.failover_id.clone(), first.gtids.clone());
        let gtid_executed = self
            .actions
            .clone()
            .apply_salvage_stream(first, stream, deadline)
            .await?;
        tracing::warn!(epoch, failover_id = %failover_id, gtids = %gtids, executed = %gtid_executed, "salvaged transactions applied");
        self.actions.reprobe.notify_one();
        Ok(Response::new(ApplySalvageResponse { gtid_executed }))
    }

    async fn catch_up(
        &self,
        request: Request<CatchUpRequest>,
    ) -> Result<Response<CatchUpResponse>, Status> {
        let deadline = deadline_of(request.metadata(), "catch_up", request.get_ref().timeout_ms)?;
        let req = request.into_inner();
        self.actions.check_epoch(req.epoch).await?;
        if req.gtid.contains(['\'', '"']) {
            return Err(Status::invalid_argument("gtid contains quotes"));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left < Duration::from_millis(1) {
            return Err(Status::deadline_exceeded(
                "catch_up: its deadline passed before the wait could start",
            ));
        }
        let (caught_up, gtid_executed) = self.actions.catch_up(&req.gtid, left).await?;
        Ok(Response::new(CatchUpResponse {
            caught_up,
            gtid_executed,
        }))
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<PromoteResponse>, Status> {
        let deadline = crate::deadline::deadline(&request, "promote")?;
        let req = request.into_inner();
        self.actions.check_epoch(req.epoch).await?;
        self.contact.made_writable();
        let gtid_executed = self.actions.promote(req.epoch, deadline).await?;
        self.contact.made_writable();
        tracing::warn!(epoch = req.epoch, failover_id = %req.failover_id, gtid = %gtid_executed, "promoted to primary: writable");
        self.actions.reprobe.notify_one();
        Ok(Response::new(PromoteResponse { gtid_executed }))
    }

    async fn repoint(
        &self,
        request: Request<RepointRequest>,
    ) -> Result<Response<RepointResponse>, Status> {
        let deadline = crate::deadline::deadline(&request, "repoint")?;
        let req = request.into_inner();
        self.actions.check_epoch(req.epoch).await?;
        let (host, port) = source_of(req.source)?;
        self.actions
            .repoint(&host, port, req.use_current_pos, deadline)
            .await?;
        tracing::info!(epoch = req.epoch, source = %format!("{host}:{port}"), "replication repointed");
        self.actions.reprobe.notify_one();
        Ok(Response::new(RepointResponse {}))
    }

    async fn rejoin(
        &self,
        request: Request<AgentRejoinRequest>,
    ) -> Result<Response<AgentRejoinResponse>, Status> {
        let deadline = crate::deadline::deadline(&request, "rejoin")?;
        let req = request.into_inner();
        self.actions.check_epoch(req.epoch).await?;
        let (host, port) = source_of(req.source)?;
        let done = self
            .actions
            .rejoin(
                &host,
                port,
                &req.fork_gtid,
                req.fork_primary_server_id,
                req.revert_errant,
                deadline,
            )
            .await?;
        if done.rejoined {
            tracing::warn!(epoch = req.epoch, source = %format!("{host}:{port}"), errant = %done.errant, saved_to = %done.saved_to, "rejoined as a replica");
        } else {
            tracing::error!(errant = %done.errant, "not rejoined: this host has errant transactions");
        }
        self.actions.reprobe.notify_one();
        Ok(Response::new(AgentRejoinResponse {
            rejoined: done.rejoined,
            errant_gtids: done.errant,
            saved_to: done.saved_to,
            reverted: done.reverted,
        }))
    }
}

/// A request's deadline from its `timeout_ms` (required, at most 10 minutes), less what
/// it waited before this agent read it; refused when it waited out that deadline.
fn deadline_of(
    metadata: &tonic::metadata::MetadataMap,
    what: &'static str,
    timeout_ms: u32,
) -> Result<tokio::time::Instant, Status> {
    if !(1..=600_000).contains(&timeout_ms) {
        return Err(Status::invalid_argument(format!(
            "timeout_ms {timeout_ms} is not 1..=600000"
        )));
    }
    let timeout = Duration::from_millis(u64::from(timeout_ms));
    Ok(tokio::time::Instant::now() + crate::deadline::fresh(metadata, what, timeout, timeout)?)
}

/// The replication source of a request: required, with a port that fits.
fn source_of(source: Option<Endpoint>) -> Result<(String, u16), Status> {
    let source = source.ok_or_else(|| Status::invalid_argument("source is required"))?;
    let port = u16::try_from(source.port)
        .map_err(|_| Status::invalid_argument("source.port is not 1..=65535"))?;
    Ok((source.host, port))
}

/// When this agent last accepted a connection from `host` (any of its addresses), ms
/// since the epoch; 0 when none is remembered or the name does not resolve at once.
async fn last_heard_from(host: &str, port: u16) -> u64 {
    let ips: Vec<std::net::IpAddr> = match host.parse() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::lookup_host((host, port)),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            _ => Vec::new(),
        },
    };
    ips.into_iter()
        .filter_map(altair_svc::peers::last_accepted_unix_ms)
        .max()
        .unwrap_or(0)
}
