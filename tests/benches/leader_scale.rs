//! The leader at fleet scale (`make bench`): the real orchestrator (release build) and a
//! real ZooKeeper against a simulated fleet — N clusters of 3 hosts registered in
//! ZooKeeper as agents and monitors would register them, their agents simulated by a few
//! in-process gRPC servers on loopback (simulation for the figures only: never a stand-in
//! in an end-to-end test). Measured for each N: cold start (process start → every
//! cluster read once), steady-state CPU, memory and ZooKeeper requests, and pickup
//! (a primary's health written `mysql_down` → the leader starts verifying it, from the
//! journal's `detect` stage) over 50 clusters.

#![allow(clippy::print_stdout)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use altair_core::config::ZkConfig;
use altair_core::failover::Journal;
use altair_core::health::Health;
use altair_core::registry::to_json;
use altair_core::{ClusterName, HostName};
use altair_e2e::sim_fleet::{
    KillOnDrop, LOCAL, ZK_OPS, health, metric, pct, populate, proc_cpu_ticks, rss_mb, start_agents,
    unix_ms, zk_packets, zk_requests_by_op,
};
use altair_e2e::{sim_fleet, sim_heartbeats};
use altair_zk::Zk;

const SIZES: [usize; 2] = [1_000, 10_000];
const AGENT_SERVERS: usize = 8;
const PICKUPS: usize = 50;
const STEADY: Duration = Duration::from_secs(20);

async fn run(n: usize, agents: &[String]) {
    let zk_server = altair_testkit::zookeeper::ZooKeeper::standalone_with_heap(LOCAL, 1024)
        .await
        .expect("ZooKeeper");
    let zk_cfg = ZkConfig {
        session_timeout_ms: 10_000,
        connect_timeout_ms: 2_000,
        ..ZkConfig::new(zk_server.servers())
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

    // Several monitors sharing the clusters, the leader still running and nothing
    // failing over yet (the pickups below leave 50 failovers retrying against agents
    // that refuse to fence): each monitor's reads and CPU, and the leader's CPU and
    // ZooKeeper's requests meanwhile.
    let shared = monitors_with_leader(&zk_server, dir.path(), pid, &metrics_addr).await;
    // The same with every host's agent heartbeating to them.
    let beating = heartbeats_with_leader(&zk_server, dir.path(), (n, agents), pid).await;

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
    let stuck = stuck_failovers(pid, &metrics_addr).await;
    let _ = child.0.kill();
    let _ = child.0.wait();
    let monitor = monitor_reconciliation(&zk_server, dir.path()).await;
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
        "resync on average (N × 2 requests / 300 s, computed)",
        n as f64 * 2.0 / 300.0
    );
    println!(
        "  {:<52} {:>6.0} / {:>4.0} ms",
        format!("pickup p50 / p99 ({PICKUPS} transitions)"),
        pct(&mut pickups, 0.5),
        pct(&mut pickups, 0.99)
    );
    println!(
        "  {:<52} {:>9.1} /s, {:.1} % CPU",
        format!("{PICKUPS} failovers waiting to retry: leader's ZK requests"),
        stuck.0,
        stuck.1
    );
    println!(
        "  {:<52} {:>9.1} /s",
        "one monitor owning them all: ZooKeeper reads", monitor.0
    );
    println!(
        "  {:<52} {:>9.1} %",
        "  its CPU, no heartbeats (of one core)", monitor.1
    );
    println!(
        "  {:<52} {:>9}",
        format!("{SHARING} monitors sharing them, with the leader:"),
        ""
    );
    for (i, (reads, cpu)) in shared.monitors.iter().enumerate() {
        println!(
            "  {:<52} {:>9.1} /s, {cpu:.1} % CPU",
            format!("  monitor m{}: ZooKeeper reads", i + 1),
            reads
        );
    }
    println!(
        "  {:<52} {:>9.1} %",
        "  the leader's CPU meanwhile (of one core)", shared.leader_cpu
    );
    println!(
        "  {:<52} {:>9.1} /s",
        "  ZooKeeper requests from all of them", shared.zk_rate
    );
    let b = &beating;
    println!(
        "  {:<52} {:>9}",
        format!(
            "{SHARING} monitors, {} agents heartbeating every {} s, the leader:",
            n * 3,
            BEAT.as_secs()
        ),
        ""
    );
    for (i, (cpu, reads)) in b.monitors.iter().enumerate() {
        println!(
            "  {:<52} {:>9.1} %, {reads:.1} ZK reads/s",
            format!("  monitor b{}: CPU (of one core)", i + 1),
            cpu
        );
    }
    println!(
        "  {:<52} {:>9.1} %",
        "  the leader's CPU meanwhile (of one core)", b.leader_cpu
    );
    println!(
        "  {:<52} {:>9}",
        "  the leader's Status calls to agents, from the start", b.status
    );
    println!(
        "  {:<52} {:>9.1} /s, writes {:.2} /s",
        "  ZooKeeper requests from all of them", b.zk_rate, b.zk_writes
    );
    println!(
        "  {:<52} {:>9.0} /s (refused {}, failed {})",
        "  heartbeats accepted", b.accepted, b.refused, b.failed
    );
    println!(
        "  {:<52} {:>6.2} / {:>5.2} ms",
        "  heartbeat latency p50 / p99", b.latency.0, b.latency.1
    );
}

/// The ZooKeeper reads a service at metrics address `addr` has sent.
async fn zk_reads(addr: &str) -> f64 {
    zk_requests_by_op(addr)
        .await
        .iter()
        .zip(ZK_OPS)
        .filter(|(_, op)| matches!(*op, "get" | "list" | "exists" | "multi_read"))
        .map(|(n, _)| n)
        .sum::<f64>()
}

/// The pickups' failovers retry against agents that refuse to fence, their waits
/// doubling from 200 ms to 10 s: from 15 s on they wait seconds between tries. The
/// leader's ZooKeeper requests/s and CPU (% of one core) over the next 20 s.
async fn stuck_failovers(leader: u32, metrics: &str) -> (f64, f64) {
    tokio::time::sleep(Duration::from_secs(15)).await;
    let total = |ops: Vec<f64>| ops.iter().sum::<f64>();
    let (ops0, t0) = (
        total(zk_requests_by_op(metrics).await),
        proc_cpu_ticks(leader),
    );
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    let (ops1, t1) = (
        total(zk_requests_by_op(metrics).await),
        proc_cpu_ticks(leader),
    );
    let secs = window.as_secs_f64();
    (
        (ops1 - ops0) / secs,
        (t1 - t0) as f64 / 100.0 / secs * 100.0,
    )
}

/// Monitors started together by [`monitors_with_leader`].
const SHARING: usize = 3;

/// What [`monitors_with_leader`] measured.
struct Shared {
    /// Per monitor: ZooKeeper reads/s and CPU (% of one core).
    monitors: Vec<(f64, f64)>,
    leader_cpu: f64,
    /// Every request ZooKeeper received, per second.
    zk_rate: f64,
}

/// [`SHARING`] real monitors started together while the leader (`leader`) runs: the
/// clusters are shared among them by rendezvous hashing, each reconciles its share
/// every 2 s. Measured from 8 s after their start (their first reconciliation and
/// ownership settled) for 16 s; no agent heartbeats (the hosts' detection window,
/// 3 × 60 s assumed until a first heartbeat, outlasts it).
async fn monitors_with_leader(
    zk_server: &altair_testkit::zookeeper::ZooKeeper,
    dir: &std::path::Path,
    leader: u32,
    leader_metrics: &str,
) -> Shared {
    let mut children = Vec::new();
    let mut metrics_addrs = Vec::new();
    for i in 1..=SHARING {
        let (child, addr, _) = spawn_monitor(zk_server, dir, &format!("shared{i}"), 60_000);
        children.push(child);
        metrics_addrs.push(addr);
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    let zk_addr = zk_server.client_addr(0);
    let mut before = Vec::new();
    for (c, addr) in children.iter().zip(&metrics_addrs) {
        before.push((zk_reads(addr).await, proc_cpu_ticks(c.0.id())));
    }
    let (leader0, packets0) = (proc_cpu_ticks(leader), zk_packets(zk_addr).await);
    let ops0 = zk_requests_by_op(leader_metrics).await;
    let window = Duration::from_secs(16);
    tokio::time::sleep(window).await;
    let secs = window.as_secs_f64();
    let (leader1, packets1) = (proc_cpu_ticks(leader), zk_packets(zk_addr).await);
    let leader_ops: Vec<String> = zk_requests_by_op(leader_metrics)
        .await
        .iter()
        .zip(ops0)
        .zip(ZK_OPS)
        .filter(|((a, b), _)| a > &b)
        .map(|((a, b), op)| format!("{op} {:.1}/s", (a - b) / secs))
        .collect();
    eprintln!("the leader's ZooKeeper requests while the monitors ran: {leader_ops:?}");
    let mut monitors = Vec::new();
    for ((c, addr), (r0, t0)) in children.iter().zip(&metrics_addrs).zip(before) {
        let (r1, t1) = (zk_reads(addr).await, proc_cpu_ticks(c.0.id()));
        monitors.push(((r1 - r0) / secs, (t1 - t0) as f64 / 100.0 / secs * 100.0));
        let by_op: Vec<String> = zk_requests_by_op(addr)
            .await
            .iter()
            .zip(ZK_OPS)
            .filter(|(n, _)| **n > 0.0)
            .map(|(n, op)| format!("{op} {n}"))
            .collect();
        eprintln!("a sharing monitor's ZooKeeper requests since its start: {by_op:?}");
    }
    for mut c in children {
        let _ = c.0.kill();
        let _ = c.0.wait();
    }
    // Their ephemeral registrations last until their sessions expire (10 s): the
    // single monitor measured next must own every cluster.
    tokio::time::sleep(Duration::from_secs(11)).await;
    Shared {
        monitors,
        leader_cpu: (leader1 - leader0) as f64 / 100.0 / secs * 100.0,
        zk_rate: (packets1 - packets0) as f64 / secs,
    }
}

/// The interval of the simulated agents' heartbeats (the fleet: 10 s).
const BEAT: Duration = Duration::from_secs(10);

/// What [`heartbeats_with_leader`] measured.
struct Beating {
    /// Per monitor: CPU (% of one core), ZooKeeper reads/s.
    monitors: Vec<(f64, f64)>,
    leader_cpu: f64,
    /// `Status` calls the leader made to agents from the monitors' (or, monitors first,
    /// the agents') start to the end of the measurement: at least 20 s after the last
    /// health write, past any watch it armed (`reopen::Watch`, 15 s).
    status: u64,
    /// Every request ZooKeeper received, per second; its writes (zxid steps) per second.
    zk_rate: f64,
    zk_writes: f64,
    /// Heartbeats accepted per second; p50 and p99 as the agents saw them (ms).
    accepted: f64,
    latency: (f64, f64),
    /// Heartbeats refused (no monitor owned the cluster) and failed while measured.
    refused: u64,
    failed: u64,
}

/// The whole fleet at once: [`SHARING`] real monitors sharing the clusters, every host's
/// agent simulated heartbeating to its cluster's owner every [`BEAT`] (N × 3 agents), and
/// the leader running. After every agent's first heartbeat and the monitors' first
/// judgements (ZooKeeper's zxid still for 2 s), measured for 20 s.
async fn heartbeats_with_leader(
    zk_server: &altair_testkit::zookeeper::ZooKeeper,
    dir: &std::path::Path,
    (n, agents): (usize, &[String]),
    leader: u32,
) -> Beating {
    // The agents run before the monitors listen (each tries again every second until a
    // monitor accepts it), as a fleet's agents do when its monitors start: every host is
    // heard within a second or two of its adoption. `ALTAIR_BENCH_MONITORS_FIRST=1`
    // starts the monitors 3 s before the agents instead: the hosts whose first heartbeat
    // comes late in the spread are judged `suspect`, then healthy again (a mass flap).
    let monitors_first = std::env::var("ALTAIR_BENCH_MONITORS_FIRST").is_ok_and(|v| v == "1");
    let ports: Vec<(u16, u16)> = (0..SHARING).map(|_| (free_port(), free_port())).collect();
    let grpc: Vec<String> = ports
        .iter()
        .map(|(g, _)| format!("127.0.0.1:{g}"))
        .collect();
    let mut sim = None;
    if !monitors_first {
        sim = Some(sim_heartbeats::start(n, &grpc, agents, BEAT, 1_000));
        tokio::time::sleep(BEAT).await;
    }
    let mut children = Vec::new();
    let mut metrics_addrs = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let id = format!("beat{}", i + 1);
        let (child, m, _) = spawn_monitor_on(zk_server, dir, &id, BEAT.as_millis() as u64, *p);
        children.push(child);
        metrics_addrs.push(m);
    }
    if monitors_first {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let status0 = sim_fleet::STATUS_CALLS.load(Ordering::SeqCst);
    let started = Instant::now();
    let sim = sim.unwrap_or_else(|| sim_heartbeats::start(n, &grpc, agents, BEAT, 1_000));
    tokio::time::sleep(BEAT + Duration::from_secs(1)).await;
    let zk_addr = zk_server.client_addr(0);
    let zxid = || async { zk_zxid(zk_addr).await };
    // The monitors' first judgements written: ZooKeeper's zxid still for 2 s.
    let mut last = zxid().await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = zxid().await;
        if now == last {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!("ZooKeeper was still being written 60 s after the start: measuring anyway");
            break;
        }
        last = now;
    }
    let mut before = Vec::new();
    for (c, addr) in children.iter().zip(&metrics_addrs) {
        before.push((zk_reads(addr).await, proc_cpu_ticks(c.0.id())));
    }
    let (leader0, packets0, zx0) = (
        proc_cpu_ticks(leader),
        zk_packets(zk_addr).await,
        zxid().await,
    );
    sim.beats.measuring.store(true, Ordering::SeqCst);
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    sim.beats.measuring.store(false, Ordering::SeqCst);
    let secs = window.as_secs_f64();
    let (leader1, packets1, zx1) = (
        proc_cpu_ticks(leader),
        zk_packets(zk_addr).await,
        zxid().await,
    );
    let status = sim_fleet::STATUS_CALLS.load(Ordering::SeqCst) - status0;
    let mut monitors = Vec::new();
    for ((c, addr), (r0, t0)) in children.iter().zip(&metrics_addrs).zip(before) {
        let (r1, t1) = (zk_reads(addr).await, proc_cpu_ticks(c.0.id()));
        monitors.push(((t1 - t0) as f64 / 100.0 / secs * 100.0, (r1 - r0) / secs));
    }
    // The monitors go first: agents falling silent must not be judged.
    for mut c in children {
        let _ = c.0.kill();
        let _ = c.0.wait();
    }
    let mut lat: Vec<f64> = sim
        .beats
        .latencies
        .lock()
        .await
        .iter()
        .map(|d| d.as_secs_f64() * 1_000.0)
        .collect();
    let (refused, failed) = (
        sim.beats.refused.load(Ordering::SeqCst),
        sim.beats.failed.load(Ordering::SeqCst),
    );
    drop(sim);
    // Their ephemeral registrations last until their sessions expire (10 s).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let accepted = lat.len() as f64 / secs;
    let latency = if lat.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
    };
    Beating {
        monitors,
        leader_cpu: (leader1 - leader0) as f64 / 100.0 / secs * 100.0,
        status,
        zk_rate: (packets1 - packets0) as f64 / secs,
        zk_writes: zx1.saturating_sub(zx0) as f64 / secs,
        accepted,
        latency,
        refused,
        failed,
    }
}

/// ZooKeeper's last zxid (`srvr`): it steps at every write.
async fn zk_zxid(addr: std::net::SocketAddr) -> u64 {
    altair_testkit::zookeeper::four_letter(addr, "srvr")
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0)
}

/// A real monitor `id` assuming `heartbeat_ms` between its hosts' heartbeats until it
/// hears them; its metrics address and its gRPC address.
fn spawn_monitor(
    zk_server: &altair_testkit::zookeeper::ZooKeeper,
    dir: &std::path::Path,
    id: &str,
    heartbeat_ms: u64,
) -> (KillOnDrop, String, String) {
    spawn_monitor_on(zk_server, dir, id, heartbeat_ms, (free_port(), free_port()))
}

/// A loopback port nothing listens on (a moment ago).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// [`spawn_monitor`] on given gRPC and metrics ports.
fn spawn_monitor_on(
    zk_server: &altair_testkit::zookeeper::ZooKeeper,
    dir: &std::path::Path,
    id: &str,
    heartbeat_ms: u64,
    (port, metrics): (u16, u16),
) -> (KillOnDrop, String, String) {
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!(
            "[monitor]\nid = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\nheartbeat_interval_ms = {heartbeat_ms}\n\
             [zookeeper]\nservers = {:?}\nsession_timeout_ms = 10000\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n[tls]\ninsecure = true\n",
            zk_server.servers()
        ),
    )
    .expect("monitor config");
    let log = std::fs::File::create(dir.join(format!("{id}.log"))).expect("log");
    let child = KillOnDrop(
        std::process::Command::new(altair_e2e::bin("altair-monitor"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stderr(log)
            .spawn()
            .expect("monitor"),
    );
    (
        child,
        format!("127.0.0.1:{metrics}"),
        format!("127.0.0.1:{port}"),
    )
}

/// One real monitor owning every cluster (the only one), no agent heartbeating: the
/// ZooKeeper reads/s of its reconciliation (every 2 s: the clusters, each one's hosts)
/// and its CPU, from 8 s after its start (its first reconciliation done) for 16 s; the
/// hosts' detection window (3 × 60 s assumed until a first heartbeat) outlasts it.
async fn monitor_reconciliation(
    zk_server: &altair_testkit::zookeeper::ZooKeeper,
    dir: &std::path::Path,
) -> (f64, f64) {
    let (mut child, addr, _) = spawn_monitor(zk_server, dir, "m1", 60_000);
    let pid = child.0.id();
    // Reads only (no host's detection window, 3 × 60 s, ends while measured: nothing
    // is published).
    // Its first reconciliation reads every cluster's hosts and health.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (r0, t0) = (zk_reads(&addr).await, proc_cpu_ticks(pid));
    let window = Duration::from_secs(16);
    tokio::time::sleep(window).await;
    let (r1, t1) = (zk_reads(&addr).await, proc_cpu_ticks(pid));
    let _ = child.0.kill();
    let _ = child.0.wait();
    let secs = window.as_secs_f64();
    ((r1 - r0) / secs, (t1 - t0) as f64 / 100.0 / secs * 100.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let agents = start_agents(AGENT_SERVERS).await;
    // `ALTAIR_BENCH_CLUSTERS=N`: that size only.
    let sizes: Vec<usize> = match std::env::var("ALTAIR_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None => SIZES.to_vec(),
    };
    for n in sizes {
        run(n, &agents).await;
    }
}
