//! Layer-2 tests of the orchestrator (STYLE §8.2): the real orchestrator binary, a real
//! ZooKeeper and a real BIND, and in-process agents (behind the same `Agent` gRPC trait
//! as the real one) that answer as a script says and log every call with its time. They
//! reach branches of the failover that real mysqld instances reach only by luck: a
//! candidate lost mid-step, a fence answered without an outcome, a promotion that fails.
//! No test here stands in for an end-to-end test: those run real agents and mysqld.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use altair_core::health::Health;
use altair_core::registry::{ClusterState, HealthRecord, HostRecord, to_json};
use altair_core::{ClusterName, HostName, PromotionRule};
use altair_proto::v1::agent_server::{Agent, AgentServer};
use altair_proto::v1::*;
use altair_testkit::bind::{Bind, BindOptions, TSIG_KEY_NAME};
use altair_testkit::zookeeper::ZooKeeper;
use altair_zk::{Op, Zk};
use tonic::{Request, Response, Status, Streaming};

use crate::sim_fleet::{KillOnDrop, LOCAL, unix_ms};

pub const CLUSTER: &str = "c1";
/// What each host declares: it fences itself within 3 s of losing contact, probing
/// every 200 ms.
pub const SELF_FENCE_AFTER_MS: u64 = 3_000;
pub const PROBE_INTERVAL_MS: u64 = 200;

/// Host `dbN`'s mysqld address: a loopback address of its own where nothing listens
/// (the orchestrator's own check of it is refused at once).
pub fn mysql_ip(host: &str) -> Ipv4Addr {
    let n: u8 = host.trim_start_matches("db").parse().unwrap_or(9);
    Ipv4Addr::new(127, 0, 0, 10 + n)
}

/// How a fence is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceAnswer {
    ReadOnly,
    /// An answer that says nothing about what was achieved.
    WithoutOutcome,
}

/// What one scripted agent does; the test may change it while the failover runs.
#[derive(Debug, Clone)]
pub struct Script {
    /// Its mysqld's GTID position.
    pub gtid: String,
    /// Position after a salvage is applied on it.
    pub gtid_after_apply: Option<String>,
    /// No agent listens at its address at all.
    pub not_listening: bool,
    /// Every call fails (the host is gone after it was reached).
    pub down: bool,
    pub fence: FenceAnswer,
    /// This many promotions fail before one succeeds.
    pub promote_failures: u32,
    /// The host goes down when asked to catch up.
    pub lost_at_catch_up: bool,
    /// The host goes down while it applies a salvage stream.
    pub lost_at_apply: bool,
    /// The host goes down right after its promotion succeeded.
    pub lost_after_promote: bool,
    /// The host goes down when asked to promote (the call fails, nothing answers after).
    pub lost_at_promote: bool,
    /// Its reachability check of the primary succeeds.
    pub sees_primary: bool,
    /// When its agent last accepted a connection from the primary's host (the
    /// primary's failsafe rounds), ms since the epoch; 0: never.
    pub last_heard_from_primary_ms: u64,
    /// Old primary only: what its binlog holds that no replica has.
    pub salvage: Option<(u32, String)>,
}

impl Script {
    pub fn at(gtid: &str) -> Self {
        Self {
            gtid: gtid.to_owned(),
            gtid_after_apply: None,
            not_listening: false,
            down: false,
            fence: FenceAnswer::ReadOnly,
            promote_failures: 0,
            lost_at_catch_up: false,
            lost_at_apply: false,
            lost_after_promote: false,
            lost_at_promote: false,
            sees_primary: false,
            last_heard_from_primary_ms: 0,
            salvage: None,
        }
    }
}

/// One call an agent received, with what it answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub at_ms: u64,
    pub host: String,
    pub rpc: &'static str,
    pub ok: bool,
}

type Log = Arc<Mutex<Vec<Call>>>;
type Shared = Arc<Mutex<Script>>;

struct ScriptedAgent {
    host: String,
    primary_mysql: Endpoint,
    script: Shared,
    log: Log,
}

type Chunks = Pin<Box<dyn tokio_stream::Stream<Item = Result<SalvageChunk, Status>> + Send>>;

impl ScriptedAgent {
    /// Logs the call; `Err` when the script has the host down.
    fn enter(&self, rpc: &'static str) -> Result<Script, Status> {
        let script = self.script.lock().map(|s| s.clone()).unwrap_or_else(|e| {
            let s = e.into_inner();
            s.clone()
        });
        self.log(rpc, !script.down);
        if script.down {
            return Err(Status::unavailable("scripted: the host is down"));
        }
        Ok(script)
    }

    fn log(&self, rpc: &'static str, ok: bool) {
        if let Ok(mut l) = self.log.lock() {
            l.push(Call {
                at_ms: unix_ms(),
                host: self.host.clone(),
                rpc,
                ok,
            });
        }
    }

    fn edit(&self, f: impl FnOnce(&mut Script)) {
        if let Ok(mut s) = self.script.lock() {
            f(&mut s);
        }
    }

    fn snapshot(&self, s: &Script) -> MysqlSnapshot {
        let primary = self.host == "db1";
        MysqlSnapshot {
            reachable: true,
            flavor: Flavor::Mariadb as i32,
            server_id: self.host.trim_start_matches("db").parse().unwrap_or(9),
            read_only: !primary,
            gtid_executed: s.gtid.clone(),
            gtid_received: s.gtid.clone(),
            gtid_applied: s.gtid.clone(),
            replication: (!primary).then(|| ReplicationStatus {
                source: Some(self.primary_mysql.clone()),
                io_running: false,
                sql_running: true,
                using_gtid: true,
                seconds_behind: None,
                ..ReplicationStatus::default()
            }),
            observed_at_unix_ms: unix_ms() as i64,
            ..MysqlSnapshot::default()
        }
    }
}

#[tonic::async_trait]
impl Agent for ScriptedAgent {
    type SalvageBinlogStream = Chunks;

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self.enter("status")?;
        Ok(Response::new(StatusResponse {
            snapshot: Some(self.snapshot(&s)),
            ..StatusResponse::default()
        }))
    }

    async fn check_reachability(
        &self,
        _: Request<CheckReachabilityRequest>,
    ) -> Result<Response<CheckReachabilityResponse>, Status> {
        let s = self.enter("check_reachability")?;
        Ok(Response::new(CheckReachabilityResponse {
            reachable: s.sees_primary,
            error: if s.sees_primary {
                String::new()
            } else {
                "connection refused (scripted)".into()
            },
            elapsed_ms: 1,
            last_heard_from_target_unix_ms: s.last_heard_from_primary_ms,
        }))
    }

    async fn fence(&self, _: Request<FenceRequest>) -> Result<Response<FenceResponse>, Status> {
        let s = self.enter("fence")?;
        let outcome = match s.fence {
            FenceAnswer::ReadOnly => FenceOutcome::ReadOnly,
            FenceAnswer::WithoutOutcome => FenceOutcome::Unspecified,
        };
        Ok(Response::new(FenceResponse {
            connections_killed: 0,
            gtid_executed: s.gtid,
            outcome: outcome as i32,
        }))
    }

    async fn set_read_only(
        &self,
        _: Request<SetReadOnlyRequest>,
    ) -> Result<Response<SetReadOnlyResponse>, Status> {
        self.enter("set_read_only")?;
        Ok(Response::new(SetReadOnlyResponse { read_only: true }))
    }

    async fn salvage_binlog(
        &self,
        _: Request<SalvageBinlogRequest>,
    ) -> Result<Response<Self::SalvageBinlogStream>, Status> {
        let s = self.enter("salvage_binlog")?;
        let (count, missing) = s.salvage.unwrap_or((0, String::new()));
        let plan = SalvagePlan {
            end_gtid: s.gtid,
            missing_gtids: missing,
            transaction_count: count,
            start: "binlog.000001:4".into(),
            bytes: u64::from(count) * 100,
            scanned: true,
            ..SalvagePlan::default()
        };
        let mut chunks = vec![Ok(SalvageChunk {
            plan: Some(plan),
            events: Vec::new(),
        })];
        if count > 0 {
            chunks.push(Ok(SalvageChunk {
                plan: None,
                events: vec![0u8; 100 * count as usize],
            }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn apply_salvage(
        &self,
        request: Request<Streaming<ApplySalvageChunk>>,
    ) -> Result<Response<ApplySalvageResponse>, Status> {
        let s = self.enter("apply_salvage")?;
        if s.lost_at_apply {
            self.edit(|s| s.down = true);
            return Err(Status::unavailable(
                "scripted: the host went down while applying",
            ));
        }
        let mut stream = request.into_inner();
        while stream.message().await?.is_some() {}
        let mut gtid = String::new();
        self.edit(|s| {
            if let Some(after) = s.gtid_after_apply.clone() {
                s.gtid = after;
            }
            gtid = s.gtid.clone();
        });
        Ok(Response::new(ApplySalvageResponse {
            gtid_executed: gtid,
        }))
    }

    async fn catch_up(
        &self,
        _: Request<CatchUpRequest>,
    ) -> Result<Response<CatchUpResponse>, Status> {
        let s = self.enter("catch_up")?;
        if s.lost_at_catch_up {
            self.edit(|s| s.down = true);
            return Err(Status::unavailable("scripted: the host went down"));
        }
        Ok(Response::new(CatchUpResponse {
            caught_up: true,
            gtid_executed: s.gtid,
        }))
    }

    async fn promote(
        &self,
        _: Request<PromoteRequest>,
    ) -> Result<Response<PromoteResponse>, Status> {
        let s = self.enter("promote")?;
        if s.promote_failures > 0 {
            self.edit(|s| s.promote_failures -= 1);
            return Err(Status::internal("scripted: the promotion failed"));
        }
        if s.lost_at_promote {
            self.edit(|s| s.down = true);
            return Err(Status::unavailable("scripted: the host went down"));
        }
        if s.lost_after_promote {
            self.edit(|s| s.down = true);
        }
        Ok(Response::new(PromoteResponse {
            gtid_executed: s.gtid,
        }))
    }

    async fn repoint(
        &self,
        _: Request<RepointRequest>,
    ) -> Result<Response<RepointResponse>, Status> {
        self.enter("repoint")?;
        Ok(Response::new(RepointResponse {}))
    }

    async fn rejoin(
        &self,
        _: Request<AgentRejoinRequest>,
    ) -> Result<Response<AgentRejoinResponse>, Status> {
        self.enter("rejoin")?;
        Err(Status::unavailable("scripted: rejoin is not scripted"))
    }
}

/// One cluster `c1` of db1 (primary) .. db3 with scripted agents, and the real
/// orchestrator leading it.
pub struct Scripted {
    pub zk: Zk,
    pub bind: Bind,
    scripts: BTreeMap<String, Shared>,
    log: Log,
    dir: tempfile::TempDir,
    _orchestrator: KillOnDrop,
    _zk_server: ZooKeeper,
}

fn name<T, E: std::fmt::Debug>(s: &str, f: impl FnOnce(String) -> Result<T, E>) -> T {
    f(s.to_owned()).expect("a valid name")
}

pub fn health_record(
    cluster: &str,
    host: &str,
    health: Health,
    last_heard_ms: u64,
) -> HealthRecord {
    HealthRecord {
        cluster: cluster.into(),
        host: host.into(),
        health,
        previous: None,
        since_unix_ms: last_heard_ms,
        monitor: "scripted".into(),
        reason: "scripted".into(),
        last_heartbeat_unix_ms: Some(last_heard_ms),
        self_fenced_at_unix_ms: None,
    }
}

impl Scripted {
    /// Starts ZooKeeper, BIND (`primary.c1` → db1), the three agents as scripted, the
    /// cluster's records (epoch 1, db1 primary, everyone healthy) and the orchestrator.
    pub async fn start(scripts: [Script; 3]) -> Self {
        Self::start_with(scripts, "").await
    }

    /// `start` with `extra` config sections for the orchestrator (`[fence]`, …).
    pub async fn start_with(scripts: [Script; 3], extra: &str) -> Self {
        let zk_server = ZooKeeper::standalone(LOCAL).await.expect("ZooKeeper");
        let zk = crate::sim_fleet::zk_client(&zk_server).await;
        let bind = Bind::start(BindOptions {
            records: vec![("primary.c1".into(), mysql_ip("db1"))],
            ..BindOptions::default()
        })
        .await
        .expect("BIND");
        let log: Log = Arc::default();
        let mut shared = BTreeMap::new();
        let mut agents = BTreeMap::new();
        for (i, script) in scripts.into_iter().enumerate() {
            let host = format!("db{}", i + 1);
            let script: Shared = Arc::new(Mutex::new(script));
            let address = serve_agent(&host, script.clone(), log.clone()).await;
            shared.insert(host.clone(), script);
            agents.insert(host, address);
        }
        zk.ensure_layout().await.expect("layout");
        let ops = register_ops(&zk, CLUSTER, &agents);
        zk.fenced_write(zk.layout().root(), &ops)
            .await
            .expect("register c1");
        let dir = tempfile::tempdir().expect("dir");
        let orchestrator = start_orchestrator(
            dir.path(),
            &zk_server,
            &bind,
            &crate::bin("altair-orchestrator"),
            extra,
        );
        Self {
            zk,
            bind,
            scripts: shared,
            log,
            dir,
            _orchestrator: orchestrator,
            _zk_server: zk_server,
        }
    }

    /// Changes a host's script.
    pub fn edit(&self, host: &str, f: impl FnOnce(&mut Script)) {
        if let Some(mut s) = self.scripts.get(host).and_then(|s| s.lock().ok()) {
            f(&mut s);
        }
    }

    /// The primary's monitor reports `health`, last heard from at `last_heard_ms`.
    pub async fn fail_primary(&self, health: Health, last_heard_ms: u64) {
        let c = name(CLUSTER, ClusterName::new);
        let h = name("db1", HostName::new);
        self.zk
            .put(
                &self.zk.layout().host_health(&c, &h),
                &to_json(&health_record(CLUSTER, "db1", health, last_heard_ms)),
            )
            .await
            .expect("write the primary's health");
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Calls of `rpc` (to any host), oldest first.
    pub fn calls_of(&self, rpc: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.rpc == rpc).collect()
    }

    /// Waits until `host` has received `rpc` `n` times, within `within` (the story of
    /// every call in the failure message).
    pub async fn until_called(&self, rpc: &str, host: &str, n: usize, within: Duration) {
        let started = Instant::now();
        while self.calls_of(rpc).iter().filter(|c| c.host == host).count() < n {
            assert!(
                started.elapsed() < within,
                "{host} did not receive {rpc} {n} time(s) within {within:?}\n{}",
                self.story()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The latest failover once it has ended (a verification that found the primary
    /// alive is not a failover).
    pub async fn finished(&self, within: Duration) -> altair_status::FailoverView {
        let c = name(CLUSTER, ClusterName::new);
        let started = Instant::now();
        loop {
            let history = altair_status::history(&self.zk, &c, 5)
                .await
                .unwrap_or_default();
            if let Some(f) = history
                .into_iter()
                .find(|f| f.finished_at_unix_ms.is_some() && f.outcome != "primary_alive")
            {
                return f;
            }
            assert!(
                started.elapsed() < within,
                "no failover ended within {within:?}\n{}",
                self.story()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The running failover's journal, if one runs.
    pub async fn journal(&self) -> Option<altair_core::failover::Journal> {
        let c = name(CLUSTER, ClusterName::new);
        self.zk
            .get_record("journal", &self.zk.layout().failover_journal(&c))
            .await
            .ok()
            .flatten()
    }

    /// Audit records of verifications that found the primary alive.
    pub async fn alive_verdicts(&self) -> usize {
        let c = name(CLUSTER, ClusterName::new);
        altair_status::history(&self.zk, &c, 100)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|f| f.outcome == "primary_alive")
            .count()
    }

    /// What `primary.c1` answers now.
    pub async fn dns_primary(&self) -> Vec<Ipv4Addr> {
        let Ok(dns) = altair_dns::DnsClient::new(self.bind.addr(), self.bind.zone(), None) else {
            return Vec::new();
        };
        dns.query_a("primary.c1").await.unwrap_or_default()
    }

    /// The calls and the orchestrator's log, for a failing assertion.
    pub fn story(&self) -> String {
        let calls: Vec<String> = self
            .calls()
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} {}",
                    c.at_ms,
                    c.host,
                    c.rpc,
                    if c.ok { "ok" } else { "failed" }
                )
            })
            .collect();
        let log =
            std::fs::read_to_string(self.dir.path().join("orchestrator.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        format!(
            "calls:\n{}\norchestrator log (last lines):\n{}",
            calls.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

/// A scripted agent for `host` (db1 is the primary, the others replicate from db1's
/// mysqld) serving on a loopback port of its own; its address. With `not_listening` in
/// the script, nothing listens at that address.
pub async fn serve_agent(
    host: &str,
    script: Arc<Mutex<Script>>,
    log: Arc<Mutex<Vec<Call>>>,
) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(LOCAL, 0))
        .await
        .expect("bind an agent port");
    let address = listener.local_addr().expect("addr").to_string();
    let not_listening = script.lock().map(|s| s.not_listening).unwrap_or(false);
    if not_listening {
        drop(listener);
        return address;
    }
    let agent = ScriptedAgent {
        host: host.to_owned(),
        primary_mysql: Endpoint {
            host: mysql_ip("db1").to_string(),
            port: 1,
        },
        script,
        log,
    };
    // Accepted sockets without Nagle's delay, as the real services take them.
    let incoming = {
        use tokio_stream::StreamExt;
        tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
            s.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        })
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServer::new(agent))
            .serve_with_incoming(incoming),
    );
    address
}

/// The writes that register `cluster` (db1 primary at epoch 1, every host healthy, agents
/// at `agents` by host) as agents and monitors would have; the layout must exist.
pub fn register_ops(zk: &Zk, cluster: &str, agents: &BTreeMap<String, String>) -> Vec<Op> {
    let l = zk.layout().clone();
    let c = name(cluster, ClusterName::new);
    let mut ops = Vec::new();
    for path in l.cluster_parents(&c) {
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
    let now = unix_ms();
    for (host, agent) in agents {
        let h = name(host, HostName::new);
        let record = HostRecord {
            cluster: cluster.into(),
            host: host.clone(),
            datacenter: "default".into(),
            mysql: format!("{}:1", mysql_ip(host)),
            agent: agent.clone(),
            promotion_rule: PromotionRule::Neutral,
            self_fence_after_ms: Some(SELF_FENCE_AFTER_MS),
            probe_interval_ms: Some(PROBE_INTERVAL_MS),
            durability: Default::default(),
        };
        ops.push(Op::Create {
            path: l.host(&c, &h),
            data: to_json(&record),
        });
        ops.push(Op::Create {
            path: l.host_health(&c, &h),
            data: to_json(&health_record(cluster, host, Health::Healthy, now)),
        });
    }
    ops
}

/// The orchestrator `binary` leading the clusters in `zk`, publishing into `bind`, its
/// config and log (`orchestrator.log`) in `dir`; `extra` is appended to its config.
pub fn start_orchestrator(
    dir: &std::path::Path,
    zk: &ZooKeeper,
    bind: &Bind,
    binary: &std::path::Path,
    extra: &str,
) -> KillOnDrop {
    let pw = dir.join("pw");
    std::fs::write(&pw, "scripted").expect("write");
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    };
    let config = dir.join("orchestrator.toml");
    std::fs::write(
        &config,
        format!(
            "[orchestrator]\nid = \"o1\"\nlisten = \"127.0.0.1:{}\"\nverify_timeout_ms = 1000\ncatch_up_timeout_ms = 1000\n\
             [mysql]\nuser = \"altair\"\npassword_file = \"{pw}\"\n\
             [replication]\nuser = \"repl\"\npassword_file = \"{pw}\"\n\
             [dns]\nserver = \"{}\"\nzone = \"{}\"\ntsig_key_name = \"{TSIG_KEY_NAME}\"\ntsig_secret_file = \"{}\"\n\
             [zookeeper]\nservers = {:?}\nsession_timeout_ms = 10000\n\
             [tls]\ninsecure = true\n{extra}",
            port(),
            bind.addr(),
            bind.zone(),
            bind.tsig_secret_file().display(),
            zk.servers(),
            pw = pw.display(),
        ),
    )
    .expect("write the orchestrator's config");
    let log = std::fs::File::create(dir.join("orchestrator.log")).expect("log");
    KillOnDrop(
        std::process::Command::new(binary)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("start altair-orchestrator"),
    )
}
