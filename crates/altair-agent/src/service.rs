//! The agent's gRPC API. Actions that change MySQL arrive with the orchestrator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use altair_proto::v1::agent_server::Agent;
use altair_proto::v1::*;
use altair_svc::Secret;
use mysql_async::prelude::Queryable;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::mysql::{connect, opts};

pub struct AgentService {
    pub registration: HostRegistration,
    pub snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    pub mysql_user: String,
    pub mysql_password: Secret,
}

const NOT_YET: &str = "this agent does not perform failover actions yet";

#[tonic::async_trait]
impl Agent for AgentService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(StatusResponse {
            registration: Some(self.registration.clone()),
            snapshot: Some(self.snapshots.borrow().as_ref().clone()),
            epoch: 0,
            self_fenced: false,
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
        let timeout = Duration::from_millis(u64::from(req.timeout_ms));
        let started = Instant::now();
        let result = async {
            let mut conn = connect(
                opts(&target.host, port, &self.mysql_user, &self.mysql_password),
                timeout,
            )
            .await?;
            let left = timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, conn.query_drop("SELECT 1")).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(crate::mysql::describe(&e)),
                Err(_) => Err(format!(
                    "no answer to SELECT 1 within {} ms",
                    timeout.as_millis()
                )),
            }
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u32;
        Ok(Response::new(match result {
            Ok(()) => CheckReachabilityResponse {
                reachable: true,
                error: String::new(),
                elapsed_ms,
            },
            Err(error) => CheckReachabilityResponse {
                reachable: false,
                error,
                elapsed_ms,
            },
        }))
    }

    async fn fence(&self, _: Request<FenceRequest>) -> Result<Response<FenceResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
    async fn set_read_only(
        &self,
        _: Request<SetReadOnlyRequest>,
    ) -> Result<Response<SetReadOnlyResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
    async fn salvage_binlog(
        &self,
        _: Request<SalvageBinlogRequest>,
    ) -> Result<Response<SalvageBinlogResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
    async fn apply_salvage(
        &self,
        _: Request<ApplySalvageRequest>,
    ) -> Result<Response<ApplySalvageResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
    async fn catch_up(
        &self,
        _: Request<CatchUpRequest>,
    ) -> Result<Response<CatchUpResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
    async fn promote(
        &self,
        _: Request<PromoteRequest>,
    ) -> Result<Response<PromoteResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
    async fn repoint(
        &self,
        _: Request<RepointRequest>,
    ) -> Result<Response<RepointResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
}
