//! A storm of simulated failovers (`make bench`): the real orchestrator (release build),
//! a real ZooKeeper and a real BIND leading 1,000 simulated clusters whose agents are
//! scripted in-process gRPC servers that answer every action at once (simulation for the
//! figures only: never a stand-in in an end-to-end test). Measured: one failover alone
//! (the primary's health written `mysql_down` → its audit record written), then 100
//! clusters' primaries failing in one ZooKeeper transaction → the last audit record; the
//! ratio is the figure (goal: the storm within 2 × one).

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use altair_core::health::Health;
use altair_core::registry::to_json;
use altair_core::{ClusterName, HostName};
use altair_e2e::scripted::{
    Script, health_record, mysql_ip, register_ops, serve_agent, start_orchestrator,
};
use altair_e2e::sim_fleet::{
    LOCAL, ZK_OPS, metric, pct, proc_cpu_ticks, unix_ms, zk_packets, zk_requests_by_op,
};
use altair_testkit::bind::{Bind, BindOptions};
use altair_zk::{Op, Zk};

const CLUSTERS: usize = 1_000;
const STORM: usize = 100;
const SINGLES: usize = 7;
/// Agent servers per host role (clusters share them, as a few processes would).
const SERVERS: usize = 4;

fn name(k: usize) -> String {
    format!("s{k}")
}

/// Fails the primaries of `clusters` in one transaction; when each one's audit record
/// appeared, ms after the write, and how many ZooKeeper requests this polling made.
async fn fail(zk: &Zk, clusters: &[usize]) -> (Vec<f64>, u64) {
    let l = zk.layout().clone();
    let now = unix_ms();
    let ops: Vec<Op> = clusters
        .iter()
        .map(|&k| Op::Set {
            path: l.host_health(
                &ClusterName::new(name(k)).expect("name"),
                &HostName::new("db1").expect("name"),
            ),
            data: to_json(&health_record(&name(k), "db1", Health::MysqlDown, now)),
            version: None,
        })
        .collect();
    let started = Instant::now();
    zk.fenced_write(l.root(), &ops)
        .await
        .expect("fail the primaries");
    let mut done: BTreeMap<usize, f64> = BTreeMap::new();
    let mut requests = 1;
    // The polling is kept light (every 25 ms, reads in parallel) so that the benchmark's
    // own reads do not load ZooKeeper and the 2 cores it measures.
    let every = if clusters.len() == 1 { 5 } else { 25 };
    while done.len() < clusters.len() {
        let mut reads = tokio::task::JoinSet::new();
        for &k in clusters.iter().filter(|k| !done.contains_key(k)) {
            let zk = zk.clone();
            let path = l.history(&ClusterName::new(name(k)).expect("name"));
            reads.spawn(async move { (k, zk.children(&path).await.unwrap_or_default()) });
            requests += 1;
        }
        let at = started.elapsed().as_secs_f64() * 1000.0;
        while let Some(Ok((k, children))) = reads.join_next().await {
            if !children.is_empty() {
                done.insert(k, at);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{} of {} failovers ended within 300 s",
            done.len(),
            clusters.len()
        );
        tokio::time::sleep(Duration::from_millis(every)).await;
    }
    (done.into_values().collect(), requests)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let zk_server = altair_testkit::zookeeper::ZooKeeper::standalone_with_heap(LOCAL, 1024)
        .await
        .expect("ZooKeeper");
    let zk = altair_e2e::sim_fleet::zk_client(&zk_server).await;
    let bind = Bind::start(BindOptions {
        records: (0..CLUSTERS)
            .map(|k| (format!("primary.{}", name(k)), mysql_ip("db1")))
            .collect(),
        ..BindOptions::default()
    })
    .await
    .expect("BIND");
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut servers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for host in ["db1", "db2", "db3"] {
        for _ in 0..SERVERS {
            let script = Arc::new(Mutex::new(Script::at("0-1-100")));
            let address = serve_agent(host, script, log.clone()).await;
            servers.entry(host.to_owned()).or_default().push(address);
        }
    }
    zk.ensure_layout().await.expect("layout");
    for ks in (0..CLUSTERS).collect::<Vec<_>>().chunks(10) {
        let mut ops = Vec::new();
        for &k in ks {
            let agents: BTreeMap<String, String> = servers
                .iter()
                .map(|(h, a)| (h.clone(), a[k % SERVERS].clone()))
                .collect();
            ops.extend(register_ops(&zk, &name(k), &agents));
        }
        zk.fenced_write(zk.layout().root(), &ops)
            .await
            .expect("register");
    }

    let dir = tempfile::tempdir().expect("dir");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let orchestrator = start_orchestrator(
        dir.path(),
        &zk_server,
        &bind,
        &altair_e2e::bin("altair-orchestrator"),
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n"),
    );
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let started = Instant::now();
    while metric(&metrics_addr, "altair_orchestrator_view_loads_total").await < CLUSTERS as f64 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the leader did not read every cluster within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut one: Vec<f64> = Vec::new();
    for k in 0..SINGLES {
        one.extend(fail(&zk, &[k]).await.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let storm: Vec<usize> = (SINGLES..SINGLES + STORM).collect();
    let zk_addr = zk_server.client_addr(0);
    let _ = altair_testkit::zookeeper::four_letter(zk_addr, "srst").await;
    // `srst` resets the latencies, not the packet count (ZooKeeper 3.8).
    let packets0 = zk_packets(zk_addr).await;
    let (orchestrator_pid, zk_pid) = (
        orchestrator.0.id(),
        zk_server.pid(0).expect("ZooKeeper's pid"),
    );
    let metric_at = |name: &'static str| metric(&metrics_addr, name);
    let (loads0, patches0, events0) = (
        metric_at("altair_orchestrator_view_loads_total").await,
        metric_at("altair_orchestrator_view_patches_total").await,
        metric_at("altair_orchestrator_watch_events_total").await,
    );
    let ops = async || zk_requests_by_op(&metrics_addr).await;
    let ops0 = ops().await;
    let cpu0 = (proc_cpu_ticks(orchestrator_pid), proc_cpu_ticks(zk_pid));
    let (mut each, polled) = fail(&zk, &storm).await;
    let cpu = (
        proc_cpu_ticks(orchestrator_pid) - cpu0.0,
        proc_cpu_ticks(zk_pid) - cpu0.1,
    );
    let received = zk_packets(zk_addr).await.saturating_sub(packets0);
    let by_op: Vec<String> = ops()
        .await
        .iter()
        .zip(&ops0)
        .zip(ZK_OPS)
        .filter(|((n, n0), _)| *n > *n0)
        .map(|((n, n0), op)| format!("{op} {:.1}", (n - n0) / STORM as f64))
        .collect();
    let (loads, patches, events) = (
        metric_at("altair_orchestrator_view_loads_total").await - loads0,
        metric_at("altair_orchestrator_view_patches_total").await - patches0,
        metric_at("altair_orchestrator_watch_events_total").await - events0,
    );
    let mntr = altair_testkit::zookeeper::four_letter(zk_addr, "mntr")
        .await
        .unwrap_or_default();
    let stat = |key: &str| {
        mntr.lines()
            .find_map(|l| l.strip_prefix(key))
            .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
    };
    // Where the storm's time went: each stage's p50 and max over the storm's records.
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // Time inside a failover's span that no stage accounts for (journal writes between
    // steps, a wait for a failover slot).
    let mut between: Vec<f64> = Vec::new();
    for &k in &storm {
        let c = ClusterName::new(name(k)).expect("name");
        for f in altair_status::history(&zk, &c, 1).await.unwrap_or_default() {
            let start = f
                .stages
                .iter()
                .map(|s| s.started_at_unix_ms)
                .min()
                .unwrap_or(0);
            let end = f
                .stages
                .iter()
                .map(|s| s.started_at_unix_ms + s.duration_ms)
                .max()
                .unwrap_or(0);
            let inside: u64 = f.stages.iter().map(|s| s.duration_ms).sum();
            between.push(end.saturating_sub(start).saturating_sub(inside) as f64);
            for st in f.stages {
                stages
                    .entry(st.name)
                    .or_default()
                    .push(st.duration_ms as f64);
            }
        }
    }
    let one_p50 = pct(&mut one, 0.5);
    let last = each.iter().copied().fold(0.0, f64::max);
    println!(
        "benchmark: a storm of {STORM} simulated failovers among {CLUSTERS} clusters (real orchestrator, ZooKeeper, BIND; scripted agents answering at once)"
    );
    println!(
        "one failover alone ({SINGLES} runs), health written → audit record: p50 {one_p50:.0} ms, max {:.0} ms",
        one.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "storm: first {:.0} ms, p50 {:.0} ms, last {last:.0} ms; last ÷ one alone = {:.2} (goal ≤ 2)",
        pct(&mut each.clone(), 0.0),
        pct(&mut each, 0.5),
        last / one_p50
    );
    let breakdown: Vec<String> = stages
        .iter_mut()
        .map(|(n, v)| format!("{n} {:.0}/{:.0}", pct(v, 0.5), pct(v, 1.0)))
        .collect();
    println!(
        "storm stages, p50/max ms: {}; between stages {:.0}/{:.0}",
        breakdown.join(", "),
        pct(&mut between.clone(), 0.5),
        pct(&mut between, 1.0)
    );
    println!(
        "ZooKeeper during the storm: {} requests ({} of them the benchmark's polling: {:.0} per failover from the orchestrator), latency avg {} ms, max {} ms; fsync over the warning threshold {} times",
        received,
        polled,
        received.saturating_sub(polled) as f64 / STORM as f64,
        stat("zk_avg_latency"),
        stat("zk_max_latency"),
        stat("zk_fsync_threshold_exceed_count")
    );
    println!(
        "orchestrator during the storm: {:.1} view loads, {:.1} view patches and {:.1} watch events per failover; CPU {} ms (orchestrator), {} ms (ZooKeeper) over the storm's {last:.0} ms",
        loads / STORM as f64,
        patches / STORM as f64,
        events / STORM as f64,
        cpu.0 * 10,
        cpu.1 * 10
    );
    println!(
        "the orchestrator's ZooKeeper requests per failover, by operation: {}",
        by_op.join(", ")
    );
}
