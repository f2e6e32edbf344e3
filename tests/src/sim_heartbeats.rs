//! Simulated agents heartbeating to real monitors, for the scale benchmarks only (never a
//! stand-in in an end-to-end test): one task per host of [`crate::sim_fleet::populate`]'s
//! clusters (`s<k>`, `db1..db3`), each sending a full heartbeat every interval, from a
//! start spread over the first, with the snapshot of a healthy cluster (db1 a writable
//! primary, db2/db3 replicating from it). A heartbeat not accepted is sent again to the
//! monitor the answer names, as a real agent does; one still not accepted is sent again a
//! second later, and the next accepted one keeps the agent's slot. Heartbeats only: no
//! liveness pings.
//!
//! The connections are shared: `per_monitor` to each monitor (the benchmark process may
//! hold 20,000 files here, fewer than one per simulated agent at 30,000 hosts).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use altair_proto::v1::monitor_client::MonitorClient;
use altair_proto::v1::{
    Endpoint, HeartbeatRequest, HostRef, HostRegistration, MysqlSnapshot, ReplicationStatus,
};
use tokio::sync::Mutex;
use tonic::transport::Channel;

use crate::sim_fleet::{mysql_of, unix_ms};

/// How soon a heartbeat no monitor accepted is sent again.
const RETRY: Duration = Duration::from_secs(1);

/// What the simulated agents count while `measuring` is set.
#[derive(Clone, Default)]
pub struct Beats {
    pub measuring: Arc<AtomicBool>,
    pub latencies: Arc<Mutex<Vec<Duration>>>,
    /// Heartbeats no monitor accepted (after following one redirect).
    pub refused: Arc<AtomicU64>,
    /// Heartbeats that failed (transport errors, refusals by status).
    pub failed: Arc<AtomicU64>,
}

/// The running agents; dropping it stops them.
pub struct Agents {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub beats: Beats,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the agents of clusters `s0..s<n>` sending to `monitors` (gRPC addresses,
/// `host:port`), `agents[j]` being the agent addresses `populate` registered.
pub fn start(
    n: usize,
    monitors: &[String],
    agents: &[String],
    interval: Duration,
    per_monitor: usize,
) -> Agents {
    let pools: Arc<Vec<(String, Vec<Channel>)>> = Arc::new(
        monitors
            .iter()
            .map(|m| {
                let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{m}"))
                    .expect("a monitor endpoint");
                let pool = (0..per_monitor).map(|_| endpoint.connect_lazy()).collect();
                (m.clone(), pool)
            })
            .collect(),
    );
    let beats = Beats::default();
    let hosts = n * 3;
    let tasks = (0..hosts)
        .map(|j| {
            let (k, i) = (j / 3, j % 3 + 1);
            let agent_address = agents[(k * 3 + i) % agents.len()].clone();
            tokio::spawn(agent(
                (k, i),
                agent_address,
                pools.clone(),
                beats.clone(),
                (interval, interval.mul_f64(j as f64 / hosts as f64)),
            ))
        })
        .collect();
    Agents { tasks, beats }
}

/// What a healthy host's agent reports (MariaDB, GTIDs left to the caller): a writable
/// primary, or a read-only replica replicating from `source` with no lag.
pub fn healthy_snapshot(server_id: u32, source: Option<Endpoint>) -> MysqlSnapshot {
    MysqlSnapshot {
        reachable: true,
        read_only: source.is_some(),
        flavor: altair_proto::v1::Flavor::Mariadb as i32,
        server_id,
        replication: source.map(|source| ReplicationStatus {
            source: Some(source),
            io_running: true,
            sql_running: true,
            using_gtid: true,
            seconds_behind: Some(0),
            ..ReplicationStatus::default()
        }),
        ..MysqlSnapshot::default()
    }
}

fn endpoint(k: usize, i: usize) -> Endpoint {
    let (host, port) = mysql_of(k, i);
    Endpoint { host, port }
}

/// Host `i` of cluster `k`: a heartbeat every `interval` after `offset`.
async fn agent(
    (k, i): (usize, usize),
    agent_address: String,
    pools: Arc<Vec<(String, Vec<Channel>)>>,
    beats: Beats,
    (interval, offset): (Duration, Duration),
) {
    tokio::time::sleep(offset).await;
    let is_primary = i == 1;
    let id = HostRef {
        cluster: format!("s{k}"),
        host: format!("db{i}"),
    };
    let registration = HostRegistration {
        id: Some(id),
        datacenter: "default".into(),
        mysql: Some(endpoint(k, i)),
        agent_address,
        ..HostRegistration::default()
    };
    let mut snapshot = healthy_snapshot((k * 3 + i) as u32, (!is_primary).then(|| endpoint(k, 1)));
    let run_id = format!("sim-s{k}-db{i}");
    // Which monitor this agent sends to: the one that last accepted it.
    let mut monitor = (k + i) % pools.len();
    let conn = k * 3 + i;
    // Its slots: a heartbeat every interval from its spread start, as a real agent's
    // ticker keeps its phase.
    let phase = tokio::time::Instant::now();
    let mut next = phase;
    for seq in 1u64.. {
        tokio::time::sleep_until(next).await;
        // The primary commits ~100 transactions per interval; replicas trail a little.
        let pos = seq * 100;
        snapshot.gtid_executed = format!("0-{}-{pos}", k * 3 + 1);
        snapshot.gtid_received = snapshot.gtid_executed.clone();
        snapshot.observed_at_unix_ms = unix_ms() as i64;
        let req = HeartbeatRequest {
            registration: Some(registration.clone()),
            sequence: seq,
            agent_run_id: run_id.clone(),
            reason: 1,
            snapshot: Some(snapshot.clone()),
            interval_ms: interval.as_millis() as u32,
            liveness_interval_ms: 0,
        };
        let t = Instant::now();
        let mut outcome = None;
        // The monitor it knows, then (once) the owner that one names.
        for _ in 0..2 {
            let pool = &pools[monitor].1;
            let mut client = MonitorClient::new(pool[conn % pool.len()].clone());
            match client.heartbeat(req.clone()).await {
                Ok(r) if r.get_ref().accepted => {
                    outcome = Some(true);
                    break;
                }
                Ok(r) => {
                    outcome = Some(false);
                    let owner = &r.get_ref().owner_address;
                    match pools.iter().position(|(a, _)| a == owner) {
                        Some(m) => monitor = m,
                        None => break,
                    }
                }
                Err(_) => {
                    outcome = None;
                    monitor = (monitor + 1) % pools.len();
                    break;
                }
            }
        }
        // Accepted: the next one at its next slot (a late one is not caught up); not
        // accepted: tried again in a second (the benchmark starts its monitors after
        // the agents, and every host must be heard soon after its adoption).
        let now = tokio::time::Instant::now();
        next = match outcome {
            Some(true) => {
                let slots = (now - phase).as_millis() / interval.as_millis().max(1) + 1;
                phase + interval * slots as u32
            }
            _ => now + RETRY,
        };
        if beats.measuring.load(Ordering::Relaxed) {
            match outcome {
                Some(true) => beats.latencies.lock().await.push(t.elapsed()),
                Some(false) => {
                    beats.refused.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    beats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
