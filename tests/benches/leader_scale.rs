//! The leader at fleet scale (`make bench`): the real orchestrator (release build) and a
//! real ZooKeeper against a simulated fleet — N clusters of 3 hosts registered in
//! ZooKeeper as agents and monitors would register them, their agents simulated by a few
//! in-process gRPC servers on loopback (simulation for the figures only: never a stand-in
//! in an end-to-end test). Measured for each N: cold start (process start → every
//! cluster read once), steady-state CPU, memory and ZooKeeper requests, and pickup
//! (a primary's health written `mysql_down` → the leader starts verifying it, from the
//! journal's `detect` stage) over 50 clusters.

#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use altair_core::config::ZkConfig;
use altair_core::failover::Journal;
use altair_core::health::Health;
use altair_core::registry::{ClusterState, HealthRecord, HostRecord, to_json};
use altair_core::{ClusterName, HostName, PromotionRule};
use altair_proto::v1::agent_server::{Agent, AgentServer};
use altair_proto::v1::*;
use altair_zk::{Op, Zk};
use tonic::{Request, Response, Status, Streaming};

const SIZES: [usize; 2] = [1_000, 10_000];
const AGENT_SERVERS: usize = 8;
const PICKUPS: usize = 50;
const STEADY: Duration = Duration::from_secs(20);
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Agents whose primary is gone: replicas cannot reach it; the fence is refused (the
/// failover then waits in its journal, which is all the pickup figure needs).
struct SimAgent;

type Chunks = Pin<Box<dyn tokio_stream::Stream<Item = Result<SalvageChunk, Status>> + Send>>;

fn simulated() -> Status {
    Status::unavailable("simulated agent")
}

#[tonic::async_trait]
impl Agent for SimAgent {
    type SalvageBinlogStream = Chunks;
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
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

async fn start_agents() -> Vec<String> {
    let mut addresses = Vec::new();
    for _ in 0..AGENT_SERVERS {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(LOCAL, 0))
            .await
            .expect("bind");
        addresses.push(listener.local_addr().expect("addr").to_string());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AgentServer::new(SimAgent))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
    }
    addresses
}

fn health(c: &str, h: &str, health: Health, since: u64) -> HealthRecord {
    HealthRecord {
        cluster: c.into(),
        host: h.into(),
        health,
        previous: None,
        since_unix_ms: since,
        monitor: "sim".into(),
        reason: "simulated".into(),
        last_heartbeat_unix_ms: Some(since),
    }
}

/// Registers `n` clusters of 3 hosts: state, host records and health, 10 per multi-op.
async fn populate(zk: &Zk, n: usize, agents: &[String]) {
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
                    let record = HostRecord {
                        cluster: name.clone(),
                        host: host.clone(),
                        datacenter: "default".into(),
                        // Nothing listens there: the leader's own check fails at once.
                        mysql: "127.0.0.1:1".into(),
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

fn proc_cpu_ticks(pid: u32) -> u64 {
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

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn zk_packets(addr: SocketAddr) -> u64 {
    altair_testkit::zookeeper::four_letter(addr, "mntr")
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("zk_packets_received"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One sample of the orchestrator's `/metrics` (0 while the endpoint is not up yet).
async fn metric(addr: &str, name: &str) -> f64 {
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

/// The orchestrator dies with the benchmark, even when a check panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(n: usize, agents: &[String]) {
    let zk_server = altair_testkit::zookeeper::ZooKeeper::standalone_with_heap(LOCAL, 1024)
        .await
        .expect("ZooKeeper");
    let zk_cfg = ZkConfig {
        servers: zk_server.servers(),
        root: "/altair".into(),
        session_timeout_ms: 10_000,
        connect_timeout_ms: 2_000,
        auth_file: None,
    };
    let zk = Zk::connect(&zk_cfg, None).await.expect("zk");
    let populated = Instant::now();
    populate(&zk, n, agents).await;
    eprintln!("{n} clusters registered in {:?}", populated.elapsed());

    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let pw = file("pw", "simulated");
    let tsig = file("tsig", "c2ltdWxhdGVkc2ltdWxhdGVkc2ltdWxhdGVkMTIzNDU=");
    let port = |l: std::net::TcpListener| l.local_addr().expect("addr").port();
    let (grpc, metrics) = (
        port(std::net::TcpListener::bind("127.0.0.1:0").expect("port")),
        port(std::net::TcpListener::bind("127.0.0.1:0").expect("port")),
    );
    let config = file(
        "o.toml",
        &format!(
            "[orchestrator]\nid = \"o1\"\nlisten = \"127.0.0.1:{grpc}\"\nverify_timeout_ms = 1000\n\
             [mysql]\nuser = \"altair\"\npassword_file = \"{pw}\"\n\
             [replication]\nuser = \"repl\"\npassword_file = \"{pw}\"\n\
             [dns]\nserver = \"127.0.0.1:5353\"\nzone = \"sim.test.\"\ntsig_key_name = \"k\"\ntsig_secret_file = \"{tsig}\"\n\
             [zookeeper]\nservers = {:?}\nsession_timeout_ms = 10000\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
             [tls]\ninsecure = true\n",
            zk_server.servers()
        ),
    );
    let log = std::fs::File::create(dir.path().join("o.log")).expect("log");
    let started = Instant::now();
    let mut child = KillOnDrop(
        std::process::Command::new(altair_e2e::bin("altair-orchestrator"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stderr(log)
            .spawn()
            .expect("orchestrator"),
    );
    let pid = child.0.id();
    let metrics_addr = format!("127.0.0.1:{metrics}");
    loop {
        if metric(&metrics_addr, "altair_orchestrator_view_loads_total").await >= n as f64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the leader did not read every cluster within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cold = started.elapsed();

    // Steady state: nothing changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let zk_addr = zk_server.client_addr(0);
    let (ticks0, packets0, loads0) = (
        proc_cpu_ticks(pid),
        zk_packets(zk_addr).await,
        metric(&metrics_addr, "altair_orchestrator_view_loads_total").await,
    );
    tokio::time::sleep(STEADY).await;
    let (ticks1, packets1, loads1) = (
        proc_cpu_ticks(pid),
        zk_packets(zk_addr).await,
        metric(&metrics_addr, "altair_orchestrator_view_loads_total").await,
    );
    let secs = STEADY.as_secs_f64();
    let cpu = (ticks1 - ticks0) as f64 / 100.0 / secs * 100.0;
    let zk_rate = (packets1 - packets0) as f64 / secs;
    let loads_rate = (loads1 - loads0) / secs;
    let rss = rss_mb(pid);

    // Pickup: a primary's health written mysql_down → the leader starts verifying.
    let l = zk.layout().clone();
    let mut pickups = Vec::new();
    for i in 0..PICKUPS {
        let name = format!("s{}", (i * 7919) % n);
        let c = ClusterName::new(name.clone()).expect("name");
        let h = HostName::new("db1".to_owned()).expect("name");
        let since = unix_ms();
        zk.put(
            &l.host_health(&c, &h),
            &to_json(&health(&name, "db1", Health::MysqlDown, since)),
        )
        .await
        .expect("write health");
        let waited = Instant::now();
        let journal: Journal = loop {
            if let Some(j) = zk
                .get_record::<Journal>("journal", &l.failover_journal(&c))
                .await
                .expect("read")
            {
                break j;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "no failover of {name} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let detect = journal
            .stages
            .iter()
            .find(|s| s.name == "detect")
            .map_or(0, |s| s.duration_ms);
        pickups.push(detect as f64);
    }
    let _ = child.0.kill();
    let _ = child.0.wait();
    println!(
        "simulated fleet: {n} clusters, {} hosts ({AGENT_SERVERS} simulated agent servers)",
        n * 3
    );
    println!(
        "  {:<52} {:>9.2} s",
        "cold start (process start → every cluster read)",
        cold.as_secs_f64()
    );
    println!(
        "  {:<52} {:>9.1} %",
        "leader CPU, steady state (of one core)", cpu
    );
    println!("  {:<52} {:>9.0} MB", "leader RSS", rss);
    println!(
        "  {:<52} {:>9.1} /s",
        "ZooKeeper requests, steady state, between resyncs", zk_rate
    );
    println!(
        "  {:<52} {:>9.1} /s",
        "cluster re-reads in that window", loads_rate
    );
    println!(
        "  {:<52} {:>9.0} /s",
        "resync on average (N × 9 reads / 300 s, computed)",
        n as f64 * 9.0 / 300.0
    );
    println!(
        "  {:<52} {:>6.0} / {:>4.0} ms",
        format!("pickup p50 / p99 ({PICKUPS} transitions)"),
        pct(&mut pickups, 0.5),
        pct(&mut pickups, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let agents = start_agents().await;
    for n in SIZES {
        run(n, &agents).await;
    }
}
