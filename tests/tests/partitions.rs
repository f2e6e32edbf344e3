//! DESIGN §4, the partitions that must NOT fail over (rows 3, 4a, 4b) and a ZooKeeper
//! outage, made with nft rules inside the hosts' network namespaces. Rows 3, 4a and 4b
//! run twice: with the tests' 1 s heartbeats, and at the shipped defaults (10 s
//! heartbeats, 1 s liveness pings), where silence is judged on the pings. Each asserts what an
//! operator would: the DNS name did not move, the epoch did not change, the primary still
//! takes the application user's writes.

use std::net::Ipv4Addr;
use std::time::Duration;

use altair_e2e::world::World;
use altair_testkit::fleet::FleetTiming;
use mysql_async::prelude::Queryable;

/// How long each fault is held: well past detection (3 × 1 s) plus verification.
const HOLD: Duration = Duration::from_secs(8);

async fn epoch(w: &World) -> Option<u64> {
    w.status().await.ok()?.clusters.first()?.epoch
}

/// The primary (db1) still takes writes from the application user.
async fn primary_writable(w: &World, id: u32) {
    let mut app = w.cluster.app_conn(0).await.expect("app on the primary");
    app.query_drop("CREATE TABLE IF NOT EXISTS p (id INT PRIMARY KEY)")
        .await
        .expect("create");
    app.query_drop(format!("INSERT INTO p VALUES ({id})"))
        .await
        .expect("the primary must stay writable");
}

async fn start() -> (World, Ipv4Addr, u64) {
    start_with(FleetTiming::default()).await
}

async fn start_with(timing: FleetTiming) -> (World, Ipv4Addr, u64) {
    let w = World::start_ha_with(3, 2, 2, 3600, &[], timing).await;
    // Let the leader record the cluster (epoch 1) before the fault.
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let primary_ip = w.net.as_ref().expect("net").host(0).ip;
    assert_eq!(w.primary_dns().await, vec![primary_ip]);
    (w, primary_ip, 1)
}

async fn assert_no_failover(w: &World, primary_ip: Ipv4Addr, epoch_before: u64, what: &str) {
    tokio::time::sleep(HOLD).await;
    assert_eq!(
        w.primary_dns().await,
        vec![primary_ip],
        "{what}: the DNS name moved"
    );
    assert_eq!(
        epoch(w).await,
        Some(epoch_before),
        "{what}: a failover started (epoch changed)"
    );
}

fn history(w: &World) -> serde_json::Value {
    let out = std::process::Command::new(altair_e2e::bin("altairctl"))
        .arg("--config")
        .arg(&w.ctl_config)
        .args(["--json", "history", "c1"])
        .output()
        .expect("altairctl");
    serde_json::from_str(&altair_e2e::stdout(&out)).expect("JSON history")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_3_primary_cut_from_its_replicas_only_does_not_fail_over() {
    row_3(FleetTiming::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_3_primary_cut_from_its_replicas_only_does_not_fail_over_at_shipped_defaults() {
    row_3(FleetTiming::shipped()).await;
}

async fn row_3(timing: FleetTiming) {
    let (w, primary_ip, e) = start_with(timing).await;
    let net = w.net.as_ref().expect("net");
    net.partition(0, &[net.host(1).ip, net.host(2).ip])
        .await
        .expect("partition");
    assert_no_failover(&w, primary_ip, e, "row 3").await;
    assert_eq!(
        w.health("db1").await.as_deref(),
        Some("healthy"),
        "the primary's agent still reaches its monitor"
    );
    primary_writable(&w, 3).await;
    net.heal(0).await.expect("heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_4a_monitor_cut_from_the_primarys_agent_does_not_fail_over() {
    row_4a(FleetTiming::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_4a_monitor_cut_from_the_primarys_agent_does_not_fail_over_at_shipped_defaults() {
    row_4a(FleetTiming::shipped()).await;
}

async fn row_4a(timing: FleetTiming) {
    let (w, primary_ip, e) = start_with(timing).await;
    let net = w.net.as_ref().expect("net");
    let monitors = altair_e2e::ops::monitor_endpoints(&w);
    assert_eq!(monitors.len(), 2);
    net.block_services(0, &monitors)
        .await
        .expect("cut the agent from the monitors");
    w.wait_health("db1", "unreachable", Duration::from_secs(15))
        .await;
    assert_no_failover(&w, primary_ip, e, "row 4a").await;
    primary_writable(&w, 4).await;
    let h = history(&w);
    assert!(
        h.as_array()
            .expect("records")
            .iter()
            .any(|r| r["outcome"] == "primary_alive"),
        "the verification that found the primary alive is recorded: {h}"
    );
    net.heal(0).await.expect("heal");
    w.wait_health("db1", "healthy", Duration::from_secs(15))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_4b_control_plane_cut_from_the_primary_but_a_replica_reaches_it_does_not_fail_over() {
    row_4b(FleetTiming::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_4b_control_plane_cut_from_the_primary_but_a_replica_reaches_it_does_not_fail_over_at_shipped_defaults()
 {
    row_4b(FleetTiming::shipped()).await;
}

async fn row_4b(timing: FleetTiming) {
    let (w, primary_ip, e) = start_with(timing).await;
    let net = w.net.as_ref().expect("net");
    // Everything of the control plane (ZooKeeper, monitors, orchestrators) lives at the
    // bridge address; the replicas do not.
    net.partition(0, &[net.gateway()])
        .await
        .expect("cut the primary's host from the control plane");
    w.wait_health("db1", "unreachable", Duration::from_secs(15))
        .await;
    assert_no_failover(&w, primary_ip, e, "row 4b").await;
    // A replica reaches it, and so does its own replication.
    let mut c = w.cluster.admin_conn(1).await.expect("replica");
    let io = altair_testkit::mariadb::sql::query_maps(&mut c, "SHOW SLAVE STATUS")
        .await
        .expect("status");
    assert_eq!(
        io[0]["Slave_IO_Running"].as_deref(),
        Some("Yes"),
        "the replica still replicates from the primary"
    );
    net.heal(0).await.expect("heal");
    w.wait_health("db1", "healthy", Duration::from_secs(15))
        .await;
    primary_writable(&w, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_zookeeper_entirely_never_fences_a_healthy_primary_nor_fails_over() {
    let (mut w, primary_ip, _) = start().await;
    w.zk.kill(0);
    tokio::time::sleep(HOLD).await;
    assert_eq!(
        w.primary_dns().await,
        vec![primary_ip],
        "a failover happened without ZooKeeper"
    );
    primary_writable(&w, 7).await;
    let mut admin = w.cluster.admin_conn(0).await.expect("admin");
    let ro = altair_testkit::mariadb::sql::query_value(&mut admin, "SELECT @@read_only")
        .await
        .expect("read_only");
    assert_eq!(
        ro.as_deref(),
        Some("0"),
        "the healthy primary was made read-only"
    );
    w.zk.restart(0).await.expect("ZooKeeper back");
    w.wait_all_healthy(3).await;
    assert_eq!(epoch(&w).await, Some(1));
    assert_eq!(w.primary_dns().await, vec![primary_ip]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_4c_isolated_primary_fences_itself_before_the_new_primary_is_promoted() {
    use altair_proto::v1::StatusRequest;
    let (w, primary_ip, _) = start().await;
    let net = w.net.as_ref().expect("net");
    let sampler = altair_testkit::checker::ReadOnlySampler::start(&w.cluster);
    net.isolate(0).await.expect("isolate the primary's host");
    let started = std::time::Instant::now();
    loop {
        let ips = w.primary_dns().await;
        if ips.first().is_some_and(|ip| *ip != primary_ip) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failover of an isolated primary"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "row 4c: DNS moved {:?} after isolating the primary",
        started.elapsed()
    );
    // The audit record follows the DNS move ("record" runs after "publish").
    let record = loop {
        let h = history(&w);
        if let Some(r) = h
            .as_array()
            .and_then(|a| a.iter().find(|r| r["outcome"] == "succeeded"))
        {
            break r.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(70),
            "no audit record: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Sampled over unix sockets every 25 ms through isolation and failover: never two
    // writable instances at once.
    let rounds = sampler.stop().await;
    let new_ip = w
        .primary_dns()
        .await
        .first()
        .copied()
        .expect("a primary address");
    let new = net
        .hosts()
        .iter()
        .position(|h| h.ip == new_ip)
        .expect("new primary");
    let verdict = altair_testkit::checker::judge(&rounds, &[], 0, new, &Default::default());
    verdict.assert_clean(false);
    net.heal(0).await.expect("heal");
    let mut agent = altair_e2e::grpc::agent(&w.fleet, 0).await;
    let status = agent
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert!(
        status.self_fenced,
        "the isolated primary did not fence itself"
    );
    // The audit record keeps per-stage start times: promotion came after self-fencing.
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("zk");
    let c = altair_core::ClusterName::new("c1").expect("name");
    let id = record["id"].as_str().expect("id");
    let audit: altair_core::registry::FailoverAudit = zk
        .get_record("audit", &zk.layout().history_entry(&c, id))
        .await
        .expect("read")
        .expect("audit");
    let promote = audit
        .journal
        .stages
        .iter()
        .find(|s| s.name == "promote")
        .expect("promote stage");
    let fenced_at = status.self_fenced_at_unix_ms as u64;
    eprintln!(
        "self-fenced {} ms before promotion began",
        promote.started_at_ms as i64 - fenced_at as i64
    );
    assert!(
        fenced_at < promote.started_at_ms,
        "promotion at {} began before self-fencing at {fenced_at}",
        promote.started_at_ms
    );
    let mut admin = w
        .cluster
        .admin_conn(0)
        .await
        .expect("old primary reachable after healing");
    let ro = altair_testkit::mariadb::sql::query_value(&mut admin, "SELECT @@read_only")
        .await
        .expect("read_only");
    assert_eq!(ro.as_deref(), Some("1"));
}
