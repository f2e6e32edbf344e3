//! A primary that is read-only although no failover replaced it is made writable again
//! (issue 11: a failover that cannot get stuck; issue 16: a host restart). Two real ways
//! to get there, each on real mariadbd in namespaces with the real services:
//! - its mysqld restarted (as an init system would) while the control plane could not
//!   act: it comes back read-only, healthy, and still the recorded primary;
//! - it fenced itself in a partition the orchestrator saw through (monitors cut from its
//!   agent and one replica cut from it: no lease, not every replica reached), so nothing
//!   was failed over; the partition heals;
//! - its agent froze past its lease and ZooKeeper session, and fenced it as it resumed.
//!
//! Asserted as a user would: the application user writes on the primary again, no
//! failover happened (epoch, DNS), and while the partition holds the primary stays
//! read-only (never lifted while its agent would fence it again).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use altair_e2e::ops::monitor_endpoints;
use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

async fn start() -> (World, Ipv4Addr) {
    let w = World::start_ha(3, 2, 1, 3600, &[]).await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let ip = w.net.as_ref().expect("net").host(0).ip;
    (w, ip)
}

/// One application write on `ip`; the server's error when refused.
async fn app_write(w: &World, ip: Ipv4Addr) -> Result<(), String> {
    let mut c = mysql_async::Conn::new(w.app_opts(ip))
        .await
        .map_err(|e| e.to_string())?;
    c.query_drop("CREATE TABLE IF NOT EXISTS reopen (id INT AUTO_INCREMENT PRIMARY KEY)")
        .await
        .map_err(|e| e.to_string())?;
    c.query_drop("INSERT INTO reopen VALUES ()")
        .await
        .map_err(|e| e.to_string())
}

async fn read_only(w: &World) -> Option<bool> {
    let mut c = w.cluster.admin_conn(0).await.ok()?;
    let v: Option<u8> = c.query_first("SELECT @@read_only").await.ok()?;
    v.map(|v| v == 1)
}

/// Waits until the application user can write on `ip`: how long it took.
async fn until_writable(w: &World, ip: Ipv4Addr, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match app_write(w, ip).await {
            Ok(()) => return started.elapsed(),
            Err(e) => assert!(
                started.elapsed() < timeout,
                "the primary still refuses writes after {timeout:?}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn no_failover(w: &World, ip: Ipv4Addr) {
    let s = w.status().await.expect("status");
    assert_eq!(s.clusters[0].epoch, Some(1), "a failover happened");
    assert_eq!(s.clusters[0].primary.as_deref(), Some("db1"));
    assert_eq!(w.primary_dns().await, vec![ip], "DNS moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_restarted_read_only_behind_the_control_planes_back_is_writable_again() {
    let (mut w, ip) = start().await;
    app_write(&w, ip).await.expect("writable at start");
    // The control plane cannot act while mysqld goes down and comes back (a leader
    // stalled, or a restart faster than detection): the orchestrator is frozen.
    w.fleet.orchestrators[0]
        .pause()
        .expect("SIGSTOP the orchestrator");
    w.cluster.instance_mut(0).kill();
    w.wait_health("db1", "mysql_down", Duration::from_secs(10))
        .await;
    w.cluster
        .instance_mut(0)
        .start()
        .await
        .expect("restart db1's mysqld");
    assert_eq!(read_only(&w).await, Some(true), "mysqld starts read-only");
    w.wait_health("db1", "healthy", Duration::from_secs(10))
        .await;
    w.fleet.orchestrators[0]
        .resume()
        .expect("SIGCONT the orchestrator");
    let took = until_writable(&w, ip, Duration::from_secs(30)).await;
    eprintln!("restarted primary: writable again {took:?} after the orchestrator resumed");
    no_failover(&w, ip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_fenced_itself_without_a_failover_is_writable_again_after_healing() {
    let (w, ip) = start().await;
    let net = w.net.as_ref().expect("net");
    // No lease (the monitors cannot hear its agent) and one replica out of reach: the
    // primary's agent must fence it. The orchestrator still logs in to it, so it is
    // verified alive and nothing is failed over.
    net.block_services(0, &monitor_endpoints(&w))
        .await
        .expect("cut the monitors from db1's agent");
    // In db2's namespace: a host takes one fault at a time.
    net.partition(1, &[net.host(0).ip])
        .await
        .expect("cut db2 from db1");
    let cut = Instant::now();
    while read_only(&w).await != Some(true) {
        assert!(
            cut.elapsed() < Duration::from_secs(15),
            "db1 did not fence itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("self-fenced {:?} after the cut", cut.elapsed());
    // While the partition holds it stays read-only (its agent would fence it again) and
    // no one is promoted around it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        read_only(&w).await,
        Some(true),
        "lifted during the partition"
    );
    no_failover(&w, ip).await;
    net.heal(0).await.expect("heal db1");
    net.heal(1).await.expect("heal db2");
    let healed = Instant::now();
    let took = until_writable(&w, ip, Duration::from_secs(30)).await;
    eprintln!(
        "self-fenced primary: writable again {took:?} after healing ({:?})",
        healed.elapsed()
    );
    no_failover(&w, ip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_whose_agent_froze_past_its_lease_is_writable_again() {
    let (w, ip) = start().await;
    app_write(&w, ip).await.expect("writable at start");
    // The agent frozen past its lease and its ZooKeeper session (a stalled host, a VM
    // pause of the agent alone): the orchestrator logs in to mysqld, so nothing fails
    // over. Resumed, the agent cannot ask ZooKeeper whether a failover started (its
    // session expired) and fences its primary — in the same instant its monitor hears it
    // again, before its next probe reports read_only: no later event wakes the leader.
    // ZooKeeper is out of its reach across the resume, so it fences every time (left to
    // timing, its new session sometimes answered first, and nothing was tested).
    let net = w.net.as_ref().expect("net");
    let zk: Vec<(Ipv4Addr, u16)> = (0..w.zk.len())
        .map(|i| match w.zk.client_addr(i) {
            std::net::SocketAddr::V4(a) => (*a.ip(), a.port()),
            std::net::SocketAddr::V6(a) => panic!("ZooKeeper on IPv6 {a}"),
        })
        .collect();
    net.block_services(0, &zk)
        .await
        .expect("cut db1's agent from ZooKeeper");
    w.fleet.agents[0].pause().expect("SIGSTOP db1's agent");
    tokio::time::sleep(Duration::from_secs(7)).await;
    w.fleet.agents[0].resume().expect("SIGCONT db1's agent");
    let resumed = Instant::now();
    while read_only(&w).await != Some(true) {
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "db1's agent did not fence its primary as it resumed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    net.heal(0).await.expect("heal db1");
    let took = until_writable(&w, ip, Duration::from_secs(30)).await;
    eprintln!(
        "agent frozen 7 s: the primary writable {took:?} after its write was first tried ({:?} after the resume)",
        resumed.elapsed()
    );
    // It had fenced itself (or the test proves nothing): the audit trail shows the
    // primary made writable again.
    let out = altair_e2e::ops::ctl(&w, &["--json", "history", "c1"]);
    let json: serde_json::Value =
        serde_json::from_str(&altair_e2e::stdout(&out)).expect("history JSON");
    assert!(
        json.as_array()
            .is_some_and(|a| a.iter().any(|r| r["outcome"] == "reopened")),
        "no reopening in the audit trail: {json}"
    );
    no_failover(&w, ip).await;
}
