//! The monitor's gRPC API: heartbeats in, cluster health out.

use std::sync::{Arc, Mutex};

use altair_proto::v1::monitor_server::Monitor;
use altair_proto::v1::*;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

use crate::reconcile::lock;
use crate::state::{Clock, Ownership, Published, State};

pub struct MonitorService {
    pub state: Arc<Mutex<State>>,
    pub clock: Clock,
    pub publish: mpsc::UnboundedSender<Published>,
    /// The current ZooKeeper session (registrations are written with it).
    pub zk: watch::Receiver<Option<altair_zk::Zk>>,
    /// One registration write per host every few seconds at most.
    pub registrations: crate::register::Throttle,
}

/// A heartbeat's, ping's or registration's host names are valid and its caller is that
/// host's own agent (a certificate of another host, or of anything but an agent, cannot
/// keep a dead primary "healthy" nor move another host's record). `field` names the
/// host's field in errors.
fn speaks_for(caller: &altair_svc::authz::Caller, id: &HostRef, field: &str) -> Result<(), Status> {
    altair_core::ClusterName::new(id.cluster.clone())
        .map_err(|e| Status::invalid_argument(format!("{field}.cluster: {e}")))?;
    altair_core::HostName::new(id.host.clone())
        .map_err(|e| Status::invalid_argument(format!("{field}.host: {e}")))?;
    if let altair_svc::authz::Caller::Verified(id_of_caller) = caller {
        altair_core::authz::heartbeat_from(id_of_caller, &id.cluster, &id.host).map_err(|d| {
            tracing::warn!(caller = %id_of_caller, cluster = %id.cluster, host = %id.host, "a call speaking for another host refused");
            Status::permission_denied(d.to_string())
        })?;
    }
    Ok(())
}

/// A heartbeat's or ping's interval is sane.
fn interval_ok(interval_ms: u32) -> Result<(), Status> {
    if !(100..=300_000).contains(&interval_ms) {
        return Err(Status::invalid_argument(format!(
            "interval_ms {interval_ms} is not 100..=300000"
        )));
    }
    Ok(())
}

impl MonitorService {
    fn pinged(&self) -> Pinged {
        Pinged {
            state: self.state.clone(),
            clock: self.clock,
            publish: self.publish.clone(),
        }
    }
}

/// Counts a liveness stream open for as long as it lives.
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        crate::metrics::LIVENESS_STREAMS.inc();
        Self
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        crate::metrics::LIVENESS_STREAMS.dec();
    }
}

/// What answering a liveness ping needs: shared by `Ping` and every `Liveness` stream.
struct Pinged {
    state: Arc<Mutex<State>>,
    clock: Clock,
    publish: mpsc::UnboundedSender<Published>,
}

impl Pinged {
    fn answer(
        &self,
        caller: &altair_svc::authz::Caller,
        req: PingRequest,
    ) -> Result<HeartbeatResponse, Status> {
        crate::metrics::PINGS.inc();
        let id = req
            .host
            .ok_or_else(|| Status::invalid_argument("host is required"))?;
        speaks_for(caller, &id, "host")?;
        interval_ok(req.interval_ms)?;
        let mut state = lock(&self.state);
        let owner = match state.ownership(&id.cluster) {
            Ownership::Mine => None,
            Ownership::Other(owner) => Some(owner.address.clone()),
            Ownership::Nobody => Some(String::new()),
        };
        if let Some(owner_address) = owner {
            return Ok(HeartbeatResponse {
                accepted: false,
                owner_address,
            });
        }
        let now = self.clock.now_ms();
        let applied = state.ping(
            now,
            &id.cluster,
            &id.host,
            u64::from(req.interval_ms),
            &req.agent_run_id,
            req.sequence,
        );
        // A host this monitor does not track yet is not vouched for: its agent's next
        // heartbeat (sent at once at start and on a change of monitor) registers it.
        let accepted = match applied {
            Some(Some(p)) => {
                let _ = self.publish.send(p);
                true
            }
            Some(None) => true,
            None => false,
        };
        Ok(HeartbeatResponse {
            accepted,
            owner_address: String::new(),
        })
    }
}

#[tonic::async_trait]
impl Monitor for MonitorService {
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let caller = altair_svc::authz::caller(&request)?;
        let req = request.into_inner();
        crate::metrics::HEARTBEATS.inc();
        let registration = req
            .registration
            .ok_or_else(|| Status::invalid_argument("registration is required"))?;
        let id = registration
            .id
            .clone()
            .ok_or_else(|| Status::invalid_argument("registration.id is required"))?;
        speaks_for(&caller, &id, "registration.id")?;
        interval_ok(req.interval_ms)?;
        let snapshot = req
            .snapshot
            .ok_or_else(|| Status::invalid_argument("snapshot is required"))?;
        let mut state = lock(&self.state);
        match state.ownership(&id.cluster) {
            Ownership::Mine => {}
            Ownership::Other(owner) => {
                return Ok(Response::new(HeartbeatResponse {
                    accepted: false,
                    owner_address: owner.address.clone(),
                }));
            }
            Ownership::Nobody => {
                return Ok(Response::new(HeartbeatResponse {
                    accepted: false,
                    owner_address: String::new(),
                }));
            }
        }
        let now = self.clock.now_ms();
        let (cluster, host) = (id.cluster.clone(), id.host.clone());
        if let Some(p) = state.heartbeat(
            now,
            registration,
            snapshot,
            (
                u64::from(req.interval_ms),
                (req.liveness_interval_ms > 0)
                    .then(|| u64::from(req.liveness_interval_ms.max(100))),
            ),
            &req.agent_run_id,
            req.sequence,
        ) {
            let _ = self.publish.send(p);
        }
        // Set at once; series of hosts no longer tracked go with the readiness export.
        let lag = state
            .clusters
            .get(&cluster)
            .and_then(|hosts| hosts.get(&host))
            .and_then(|h| h.lag_ms);
        crate::metrics::replication_lag(&cluster, &host, lag);
        Ok(Response::new(HeartbeatResponse {
            accepted: true,
            owner_address: String::new(),
        }))
    }

    async fn ping(
        &self,
        request: Request<PingRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let caller = altair_svc::authz::caller(&request)?;
        self.pinged()
            .answer(&caller, request.into_inner())
            .map(Response::new)
    }

    type LivenessStream = tonic::codegen::BoxStream<HeartbeatResponse>;

    async fn liveness(
        &self,
        request: Request<tonic::Streaming<PingRequest>>,
    ) -> Result<Response<Self::LivenessStream>, Status> {
        use futures_util::StreamExt;
        let caller = altair_svc::authz::caller(&request)?;
        let pinged = self.pinged();
        let open = OpenStream::new();
        // One answer per ping, in order; a bad ping ends the stream with its error.
        let answers = request.into_inner().map(move |ping| {
            let _open = &open;
            ping.and_then(|p| pinged.answer(&caller, p))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let caller = altair_svc::authz::caller(&request)?;
        let req = request.into_inner();
        let refused = |s: Status| {
            crate::metrics::registration("refused");
            s
        };
        let id = req
            .id
            .clone()
            .ok_or_else(|| refused(Status::invalid_argument("id is required")))?;
        speaks_for(&caller, &id, "id").map_err(refused)?;
        let record = req.to_record().map_err(|e| {
            tracing::warn!(cluster = %id.cluster, host = %id.host, problem = %e, "registration refused");
            refused(Status::invalid_argument(e))
        })?;
        let zk = self.zk.borrow().clone().ok_or_else(|| {
            crate::metrics::registration("failed");
            Status::unavailable("this monitor has no ZooKeeper session; try another")
        })?;
        use crate::register::Outcome;
        match crate::register::write(&zk, &record, &self.registrations).await {
            Ok(Outcome::Written) => {
                crate::metrics::registration("written");
                tracing::info!(cluster = %record.cluster, host = %record.host, mysql = %record.mysql, agent = %record.agent, "host registered in ZooKeeper for its agent");
                Ok(Response::new(RegisterResponse { written: true }))
            }
            Ok(Outcome::Unchanged) => {
                crate::metrics::registration("unchanged");
                Ok(Response::new(RegisterResponse { written: false }))
            }
            Ok(Outcome::Enrolling) => {
                crate::metrics::registration("enrolling");
                Err(Status::unavailable(format!(
                    "cluster {} is new: the leader has been asked to create its nodes and has not yet (is an orchestrator leading?); ask again",
                    record.cluster
                )))
            }
            Ok(Outcome::TooSoon(wait)) => Err(refused(Status::resource_exhausted(format!(
                "{}/{}'s record was written moments ago; ask again in {} ms",
                record.cluster,
                record.host,
                wait.as_millis()
            )))),
            Err(e) => {
                crate::metrics::registration("failed");
                tracing::warn!(cluster = %record.cluster, host = %record.host, error = %e, "cannot write a host record");
                Err(Status::unavailable(format!(
                    "cannot write the host record: {e}"
                )))
            }
        }
    }

    async fn cluster_health(
        &self,
        request: Request<ClusterHealthRequest>,
    ) -> Result<Response<ClusterHealthResponse>, Status> {
        let cluster = request.into_inner().cluster;
        altair_core::ClusterName::new(cluster.clone())
            .map_err(|e| Status::invalid_argument(format!("cluster: {e}")))?;
        let state = lock(&self.state);
        if let Ownership::Other(owner) = state.ownership(&cluster) {
            return Err(Status::failed_precondition(format!(
                "monitor {} does not own cluster {cluster}; ask {} at {}",
                state.me, owner.id, owner.address
            )));
        }
        let now = self.clock.now_ms();
        let hosts = state
            .clusters
            .get(&cluster)
            .map(|hosts| {
                hosts
                    .iter()
                    .map(|(name, h)| HostHealth {
                        registration: Some(h.registration.clone().unwrap_or_else(|| {
                            HostRegistration {
                                id: Some(HostRef {
                                    cluster: cluster.clone(),
                                    host: name.clone(),
                                }),
                                ..HostRegistration::default()
                            }
                        })),
                        health: h
                            .detector
                            .health()
                            .map_or(Health::Unspecified, Health::from)
                            as i32,
                        role: Role::Unspecified as i32,
                        snapshot: h.snapshot.clone(),
                        last_heartbeat_unix_ms: if h.detector.heard_once() {
                            h.detector.last_heard_ms() as i64
                        } else {
                            0
                        },
                        consecutive_misses: h.detector.misses(now, &state.detector),
                        health_since_unix_ms: h.detector.since_ms() as i64,
                        replication_lag_ms: h.lag_ms.map(|ms| ms as i64),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let inputs = state.clusters.get(&cluster).map(crate::readiness::inputs);
        let me = state.me.clone();
        drop(state);
        let readiness = inputs.map(|i| crate::readiness::to_proto(&crate::readiness::judge(i)));
        Ok(Response::new(ClusterHealthResponse {
            cluster,
            monitor: me,
            hosts,
            readiness,
        }))
    }
}
