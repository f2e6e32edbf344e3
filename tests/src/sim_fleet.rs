//! A simulated fleet for the scale benchmarks only (never a stand-in in an end-to-end
//! test): N clusters `s0..` of 3 hosts `db1..db3` registered in ZooKeeper as agents and
//! monitors would register them, their agents a few in-process gRPC servers that refuse
//! everything but reachability checks, and a monitor that answers `ClusterHealth` for
//! every cluster as a healthy one (db1 primary, db2/db3 replicating from it). Plus what
//! the benchmarks sample: a process's CPU and memory, ZooKeeper's request count, a metric.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use altair_core::health::Health;
use altair_core::registry::{ClusterState, HealthRecord, HostRecord, MonitorRecord, to_json};
use altair_core::{ClusterName, HostName, PromotionRule};
use altair_proto::v1::agent_server::{Agent, AgentServer};
use altair_proto::v1::monitor_server::{Monitor, MonitorServer};
use altair_proto::v1::*;
use altair_zk::{Op, Zk};
use tonic::{Request, Response, Status, Streaming};

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Host `i` (1..=3) of cluster `k`'s mysqld: a loopback address of its own where nothing
/// listens (a check of it is refused at once).
pub fn mysql_of(k: usize, i: usize) -> (String, u32) {
    (format!("127.{}.{}.{}", i, (k / 250) % 250, k % 250 + 1), 1)
}

/// A client session to the test's ZooKeeper server, under `/altair`, without auth.
pub async fn zk_client(server: &altair_testkit::zookeeper::ZooKeeper) -> Zk {
    let config = altair_core::config::ZkConfig {
        session_timeout_ms: 10_000,
        connect_timeout_ms: 2_000,
        ..altair_core::config::ZkConfig::new(server.servers())
    };
    Zk::connect(&config, None)
        .await
        .expect("connect to ZooKeeper")
}

/// `Status` calls the simulated agents have answered (the leader asks a primary's agent
/// at every look at a healthy cluster).
pub static STATUS_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Agents whose primary is gone: replicas cannot reach it; the fence is refused (a
/// failover then waits in its journal).
struct SimAgent;

type Chunks = Pin<Box<dyn tokio_stream::Stream<Item = Result<SalvageChunk, Status>> + Send>>;

fn simulated() -> Status {
    Status::unavailable("simulated agent")
}

#[tonic::async_trait]
impl Agent for SimAgent {
    type SalvageBinlogStream = Chunks;
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        STATUS_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(simulated())
    }
    async fn check_reachability(
        &self,
        _: Request<CheckReachabilityRequest>,
    ) -> Result<Response<CheckReachabilityResponse>, Status> {
        Ok(Response::new(CheckReachabilityResponse {
            reachable: false,
            error: "connection refused (simulated)".into(),
            elapsed_ms: 0,
            // The simulated primary died before the storm: its last self-fencing
            // failsafe round is long past.
            last_heard_from_target_unix_ms: 1,
        }))
    }
    async fn fence(&self, _: Request<FenceRequest>) -> Result<Response<FenceResponse>, Status> {
        Err(simulated())
    }
    async fn set_read_only(
        &self,
        _: Request<SetReadOnlyRequest>,
    ) -> Result<Response<SetReadOnlyResponse>, Status> {
        Err(simulated())
    }
    async fn salvage_binlog(
        &self,
        _: Request<SalvageBinlogRequest>,
    ) -> Result<Response<Self::SalvageBinlogStream>, Status> {
        Err(simulated())
    }
    async fn apply_salvage(
        &self,
        _: Request<Streaming<ApplySalvageChunk>>,
    ) -> Result<Response<ApplySalvageResponse>, Status> {
        Err(simulated())
    }
    async fn catch_up(
        &self,
        _: Request<CatchUpRequest>,
    ) -> Result<Response<CatchUpResponse>, Status> {
        Err(simulated())
    }
    async fn promote(
        &self,
        _: Request<PromoteRequest>,
    ) -> Result<Response<PromoteResponse>, Status> {
        Err(simulated())
    }
    async fn repoint(
        &self,
        _: Request<RepointRequest>,
    ) -> Result<Response<RepointResponse>, Status> {
        Err(simulated())
    }
    async fn rejoin(
        &self,
        _: Request<AgentRejoinRequest>,
    ) -> Result<Response<AgentRejoinResponse>, Status> {
        Err(simulated())
    }
}

/// Connections as the real services take them: without Nagle's delay.
fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        s.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    })
}

/// `n` simulated agent servers on loopback; their addresses.
pub async fn start_agents(n: usize) -> Vec<String> {
    let mut addresses = Vec::new();
    for _ in 0..n {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(LOCAL, 0))
            .await
            .expect("bind");
        addresses.push(listener.local_addr().expect("addr").to_string());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AgentServer::new(SimAgent))
                .serve_with_incoming(incoming(listener)),
        );
    }
    addresses
}

/// A monitor that sees every simulated cluster healthy.
struct SimMonitor;

fn endpoint((host, port): (String, u32)) -> Endpoint {
    Endpoint { host, port }
}

fn host_health(cluster: &str, k: usize, i: usize, now: i64) -> HostHealth {
    let primary = i == 1;
    HostHealth {
        registration: Some(HostRegistration {
            id: Some(HostRef {
                cluster: cluster.to_owned(),
                host: format!("db{i}"),
            }),
            datacenter: "default".into(),
            mysql: Some(endpoint(mysql_of(k, i))),
            agent_address: String::new(),
            promotion_rule: 0,
        }),
        health: altair_proto::v1::Health::Healthy as i32,
        role: 0,
        snapshot: Some(MysqlSnapshot {
            reachable: true,
            server_id: i as u32,
            read_only: !primary,
            gtid_executed: format!("0-1-{}", 1_000_000 + k),
            replication: (!primary).then(|| ReplicationStatus {
                source: Some(endpoint(mysql_of(k, 1))),
                io_running: true,
                sql_running: true,
                using_gtid: true,
                seconds_behind: Some(0),
                ..ReplicationStatus::default()
            }),
            observed_at_unix_ms: now,
            ..MysqlSnapshot::default()
        }),
        last_heartbeat_unix_ms: now,
        consecutive_misses: 0,
        health_since_unix_ms: now - 3_600_000,
        replication_lag_ms: None,
    }
}

#[tonic::async_trait]
impl Monitor for SimMonitor {
    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        Err(Status::unavailable("simulated monitor"))
    }
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        Err(Status::unavailable("simulated monitor"))
    }
    type LivenessStream = tonic::codegen::BoxStream<HeartbeatResponse>;
    async fn liveness(
        &self,
        _: Request<tonic::Streaming<PingRequest>>,
    ) -> Result<Response<Self::LivenessStream>, Status> {
        Err(Status::unavailable("simulated monitor"))
    }
    async fn register(
        &self,
        _: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        Err(Status::unavailable("simulated monitor"))
    }
    async fn cluster_health(
        &self,
        request: Request<ClusterHealthRequest>,
    ) -> Result<Response<ClusterHealthResponse>, Status> {
        let cluster = request.into_inner().cluster;
        let k: usize = cluster
            .strip_prefix('s')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Status::not_found(format!("no simulated cluster {cluster}")))?;
        let now = unix_ms() as i64;
        Ok(Response::new(ClusterHealthResponse {
            monitor: "sim".into(),
            hosts: (1..=3).map(|i| host_health(&cluster, k, i, now)).collect(),
            readiness: Some(Readiness {
                verdict: "lossless".into(),
                primary: "db1".into(),
                candidate: "db2".into(),
                candidate_lag_s: Some(0),
                salvage_possible: true,
                ..Readiness::default()
            }),
            cluster,
        }))
    }
}

/// The simulated monitor on loopback, registered in ZooKeeper as monitor `sim`.
pub async fn start_monitor(zk: &Zk) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(LOCAL, 0))
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MonitorServer::new(SimMonitor))
            .serve_with_incoming(incoming(listener)),
    );
    zk.ensure_layout().await.expect("layout");
    let record = MonitorRecord {
        id: "sim".into(),
        address: address.clone(),
    };
    zk.put(
        &format!("{}/sim", zk.layout().monitors()),
        &to_json(&record),
    )
    .await
    .expect("register the simulated monitor");
    address
}

pub fn health(c: &str, h: &str, health: Health, since: u64) -> HealthRecord {
    HealthRecord {
        cluster: c.into(),
        host: h.into(),
        health,
        previous: None,
        since_unix_ms: since,
        monitor: "sim".into(),
        reason: "simulated".into(),
        last_heartbeat_unix_ms: Some(since),
        self_fenced_at_unix_ms: None,
    }
}

/// Registers `n` clusters of 3 hosts: state, host records and health, 10 per multi-op.
pub async fn populate(zk: &Zk, n: usize, agents: &[String]) {
    zk.ensure_layout().await.expect("layout");
    let l = zk.layout().clone();
    let now = unix_ms();
    let batches: Vec<Vec<Op>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(10)
        .map(|ks| {
            let mut ops = Vec::new();
            for &k in ks {
                let name = format!("s{k}");
                let c = ClusterName::new(name.clone()).expect("name");
                for path in [l.cluster(&c), l.hosts(&c), l.health(&c)] {
                    ops.push(Op::Create {
                        path,
                        data: Vec::new(),
                    });
                }
                let state = ClusterState {
                    epoch: 1,
                    primary: Some("db1".into()),
                    ..ClusterState::default()
                };
                ops.push(Op::Create {
                    path: l.cluster_state(&c),
                    data: to_json(&state),
                });
                for i in 1..=3 {
                    let host = format!("db{i}");
                    let h = HostName::new(host.clone()).expect("name");
                    let (ip, port) = mysql_of(k, i);
                    let record = HostRecord {
                        cluster: name.clone(),
                        host: host.clone(),
                        datacenter: "default".into(),
                        mysql: format!("{ip}:{port}"),
                        agent: agents[(k * 3 + i) % agents.len()].clone(),
                        promotion_rule: PromotionRule::Neutral,
                        self_fence_after_ms: Some(3_000),
                        probe_interval_ms: Some(200),
                        durability: Default::default(),
                    };
                    ops.push(Op::Create {
                        path: l.host(&c, &h),
                        data: to_json(&record),
                    });
                    ops.push(Op::Create {
                        path: l.host_health(&c, &h),
                        data: to_json(&health(&name, &host, Health::Healthy, now)),
                    });
                }
            }
            ops
        })
        .collect();
    let root = l.root().to_owned();
    for ops in &batches {
        zk.fenced_write(&root, ops).await.expect("populate");
    }
}

/// CPU time `pid` has used, in clock ticks (1/100 s).
pub fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split(' ').collect())
        .unwrap_or_default();
    // utime, stime: fields 14 and 15 (1-based), 12 and 13 after the command.
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

pub fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Requests ZooKeeper has received so far (`mntr`).
pub async fn zk_packets(addr: SocketAddr) -> u64 {
    altair_testkit::zookeeper::four_letter(addr, "mntr")
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("zk_packets_received"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One sample of a service's `/metrics` (0 while the endpoint is not up yet).
pub async fn metric(addr: &str, name: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0.0;
    };
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut text = String::new();
    if s.write_all(request.as_bytes()).await.is_err() || s.read_to_string(&mut text).await.is_err()
    {
        return 0.0;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.trim().parse::<f64>().ok())
        .next()
        .unwrap_or(0.0)
}

/// The operations of `altair_zookeeper_requests_total`.
pub const ZK_OPS: [&str; 10] = altair_zk::REQUEST_OPS;

/// Requests a service at metrics address `addr` has sent to ZooKeeper, by operation
/// (in [`ZK_OPS`]'s order).
pub async fn zk_requests_by_op(addr: &str) -> Vec<f64> {
    let mut by_op = Vec::new();
    for op in ZK_OPS {
        let name = format!("altair_zookeeper_requests_total{{op=\"{op}\"}}");
        by_op.push(metric(addr, &name).await);
    }
    by_op
}

/// A child process that dies with the benchmark, even when a check panics.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `p` quantile (0..=1) of `v`.
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
