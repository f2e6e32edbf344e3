//! The monitor fleet and ZooKeeper under failure (DESIGN §4 rows 5 and 7), and the
//! "transitions only" promise: a steady fleet causes no ZooKeeper write.

use std::time::{Duration, Instant};

use altair_e2e::world::{CLUSTER, World};
use altair_e2e::{bin, stderr, stdout};

fn all_healthy(s: &altairctl::status::Status) -> bool {
    s.clusters.first().is_some_and(|c| {
        c.hosts
            .iter()
            .all(|h| h.health.as_deref() == Some("healthy"))
    })
}

/// The read requests each agent has sent ZooKeeper, by operation
/// (`altair_zookeeper_requests_total`).
async fn agents_zookeeper_reads(w: &World) -> Vec<Vec<(&'static str, f64)>> {
    let mut out = Vec::new();
    for agent in &w.fleet.agents {
        let m = altair_e2e::ops::scrape(&agent.metrics).await;
        out.push(
            ["get", "list", "exists", "multi_read"]
                .into_iter()
                .map(|op| {
                    let n = m
                        .get(&format!("altair_zookeeper_requests_total{{op=\"{op}\"}}"))
                        .copied()
                        .unwrap_or_else(|| panic!("agent metrics lack ZooKeeper's {op}: {m:?}"));
                    (op, n)
                })
                .collect(),
        );
    }
    out
}

/// Samples status until `until` and fails if any host is ever reported unreachable.
async fn assert_never_unreachable(w: &World, duration: Duration) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        if let Ok(s) = w.status().await {
            for h in s.clusters.iter().flat_map(|c| &c.hosts) {
                assert_ne!(
                    h.health.as_deref(),
                    Some("unreachable"),
                    "{} became unreachable: {s:?}",
                    h.name
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owning_monitor_moves_the_cluster_and_no_host_goes_unreachable() {
    let w = World::start(1, 3, 2).await;
    owning_monitor_killed(w).await;
}

/// The same at the shipped defaults, with an orchestrator: agents ping every second over
/// their liveness streams (10 s heartbeats), so what moves them is a stream that breaks
/// under a ping; no host may look unreachable and nothing fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owning_monitor_at_shipped_defaults_breaks_no_lease_and_fails_nothing_over() {
    let w = World::start_ha_with(
        3,
        2,
        1,
        3600,
        &[],
        altair_testkit::fleet::FleetTiming::shipped(),
    )
    .await;
    w.wait_until("cluster recorded", Duration::from_secs(30), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    // Past the first heartbeats: the pings set the pace.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let w = owning_monitor_killed(w).await;
    let s = w.status().await.expect("status");
    assert_eq!(s.clusters[0].epoch, Some(1), "something failed over: {s:?}");
    assert_eq!(s.clusters[0].primary.as_deref(), Some("db1"), "{s:?}");
}

/// Kills the monitor owning the cluster; another must own it and report every host
/// healthy within the ZooKeeper session timeout + one heartbeat, no host ever unreachable.
async fn owning_monitor_killed(mut w: World) -> World {
    let owner = w.status().await.expect("status").clusters[0]
        .monitor
        .clone()
        .expect("an owner");
    let i = w
        .fleet
        .monitors
        .iter()
        .position(|m| m.id == owner)
        .expect("owner runs");
    w.fleet.monitors[i].kill();
    let killed = Instant::now();
    let watch = assert_never_unreachable(&w, Duration::from_secs(12));
    let takeover = w.wait_until(
        "another monitor owns the cluster",
        Duration::from_secs(30),
        |s| {
            let c = &s.clusters[0];
            c.monitor.as_deref().is_some_and(|m| m != owner)
                && c.source == "monitor"
                && all_healthy(s)
        },
    );
    let (_, took) = tokio::join!(watch, takeover);
    let bound = Duration::from_millis(w.timing.zk_session_timeout_ms + w.timing.heartbeat_ms);
    eprintln!(
        "another monitor owned {CLUSTER} and reported it healthy {took:?} after {owner} was killed (session timeout + heartbeat = {bound:?})"
    );
    assert!(killed.elapsed() >= took);
    // ZooKeeper expires sessions on its tick (500 ms here): allow one tick and the
    // status poll on top of the design bound.
    assert!(
        took <= bound + Duration::from_millis(1_000),
        "takeover took {took:?}"
    );
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_zookeeper_server_of_three_changes_no_health() {
    let mut w = World::start(3, 3, 2).await;
    let mut leader = None;
    for i in 0..3 {
        if w.zk.mode(i).await.as_deref() == Some("leader") {
            leader = Some(i);
        }
    }
    let leader = leader.expect("the ensemble has a leader");
    w.zk.kill(leader);
    assert_never_unreachable(&w, Duration::from_secs(10)).await;
    let s = w.status().await.expect("status with two servers");
    assert!(
        all_healthy(&s),
        "health changed after losing one ZooKeeper server: {s:?}"
    );
}

fn zxid(srvr: &str) -> String {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Zxid: "))
        .expect("srvr reports Zxid")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_minute_of_heartbeats_writes_nothing_to_zookeeper() {
    let w = World::start(1, 3, 2).await;
    let addr = w.zk.client_addr(0);
    // Let start-up writes (registrations, first judgements) settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = zxid(
        &altair_testkit::zookeeper::four_letter(addr, "srvr")
            .await
            .expect("srvr"),
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = zxid(
        &altair_testkit::zookeeper::four_letter(addr, "srvr")
            .await
            .expect("srvr"),
    );
    eprintln!(
        "ZooKeeper zxid over 60 s of heartbeats (3 agents, 1 s interval): {before} -> {after}"
    );
    assert_eq!(before, after, "heartbeats caused ZooKeeper writes");

    // What an operator sees, through the real CLI.
    let out = std::process::Command::new(bin("altairctl"))
        .arg("--config")
        .arg(&w.ctl_config)
        .args(["--json", "status", CLUSTER])
        .output()
        .expect("altairctl");
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let c = &json["clusters"][0];
    assert_eq!(c["name"], CLUSTER);
    assert_eq!(c["primary"], "db1");
    let hosts = c["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 3);
    for h in hosts {
        assert_eq!(h["health"], "healthy", "{h}");
        let want = if h["name"] == "db1" {
            "primary"
        } else {
            "replica"
        };
        assert_eq!(h["role"], want, "{h}");
    }
    let table = std::process::Command::new(bin("altairctl"))
        .arg("--config")
        .arg(&w.ctl_config)
        .arg("status")
        .output()
        .expect("altairctl");
    assert!(stdout(&table).contains("db1"), "{}", stdout(&table));

    let missing = std::process::Command::new(bin("altairctl"))
        .arg("--config")
        .arg(&w.ctl_config)
        .args(["status", "nosuch"])
        .output()
        .expect("altairctl");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no cluster named \"nosuch\""),
        "{}",
        stderr(&missing)
    );
}

/// A health transition costs ZooKeeper one write (the health record), not a log entry
/// with its parents created again each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_transition_costs_zookeeper_one_write() {
    let mut w = World::start(1, 3, 2).await;
    let addr = w.zk.client_addr(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let zxid_now = || async {
        let text = zxid(
            &altair_testkit::zookeeper::four_letter(addr, "srvr")
                .await
                .expect("srvr"),
        );
        u64::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex zxid")
    };
    let before = zxid_now().await;
    // One transition: a replica's mysqld goes down (its agent reports it at once). No
    // ZooKeeper client is opened meanwhile: a session's start and end are transactions.
    w.cluster.instance_mut(2).kill();
    let host = w.cluster.instance(2).name().to_owned();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = zxid_now().await;
    let s = w.status().await.expect("status");
    assert!(
        s.clusters[0]
            .hosts
            .iter()
            .any(|h| h.name == host && h.health.as_deref() == Some("mysql_down")),
        "{host} is not reported mysql_down: {s:?}"
    );
    eprintln!("one health transition: ZooKeeper zxid {before:#x} -> {after:#x}");
    assert_eq!(
        after - before,
        1,
        "ZooKeeper transactions for one transition"
    );
}

/// Every znode under `path`, `path` included.
async fn znodes(zk: &altair_zk::Zk, path: &str) -> usize {
    let mut count = 0;
    let mut todo = vec![path.to_owned()];
    while let Some(p) = todo.pop() {
        count += 1;
        for child in zk.children(&p).await.expect("list") {
            todo.push(format!("{p}/{child}"));
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_health_transitions_leave_zookeeper_no_bigger() {
    use mysql_async::prelude::Queryable;
    let _heavy = altair_e2e::heavy().await;
    let w = World::start_ha(
        3,
        1,
        1,
        3600,
        &[("ALTAIR_ORCHESTRATOR__ORCHESTRATOR__HISTORY_KEEP", "2")],
    )
    .await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("zookeeper");
    let before = znodes(&zk, "/altair").await;
    // The cluster's creation (its state, the last host records) has been read by then.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let agents_read_before = agents_zookeeper_reads(&w).await;
    // A replica's replication stopped and started 100 times: 200 transitions
    // (replication_broken, healthy), each reported at once.
    let mut replica = w.cluster.admin_conn(2).await.expect("admin on db3");
    let mut seen = 0;
    for _ in 0..100 {
        for (sql, health) in [
            ("STOP SLAVE", "replication_broken"),
            ("START SLAVE", "healthy"),
        ] {
            replica.query_drop(sql).await.expect(sql);
            let started = Instant::now();
            while w.health("db3").await.as_deref() != Some(health)
                && started.elapsed() < Duration::from_secs(5)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if w.health("db3").await.as_deref() == Some(health) {
                seen += 1;
            }
        }
    }
    // Membership did not change: the agents follow it by watch, and read nothing (they
    // once polled it every 2 s: ~2.5 reads/s per agent, 75,000/s for 30,000 agents).
    let agents_read = agents_zookeeper_reads(&w).await;
    for (i, (b, a)) in agents_read_before.iter().zip(&agents_read).enumerate() {
        let sent: Vec<(&str, f64)> = b
            .iter()
            .zip(a)
            .map(|((op, b), (_, a))| (*op, a - b))
            .collect();
        assert!(
            sent.iter().map(|(_, n)| n).sum::<f64>() <= 4.0,
            "agent {i} sent ZooKeeper these reads over 200 health transitions of a steady cluster: {sent:?}"
        );
    }
    // ... and a change of membership is read at once: a host record written again (the
    // same bytes: the watch fires on any write) is read by every agent within 2 s.
    let admin = altair_zk::Zk::connect(&w.zk_config(), Some(&w.fleet.zk_auth()))
        .await
        .expect("altair's ZooKeeper session");
    let db3 = zk.layout().host(
        &altair_core::ClusterName::new(CLUSTER.to_owned()).expect("name"),
        &altair_core::HostName::new("db3").expect("name"),
    );
    let record = admin.get(&db3).await.expect("read").expect("db3's record");
    admin
        .put(&db3, &record)
        .await
        .expect("write db3's record again");
    let total = |v: &[(&str, f64)]| v.iter().map(|(_, n)| n).sum::<f64>();
    let started = Instant::now();
    loop {
        let now = agents_zookeeper_reads(&w).await;
        let waiting: Vec<usize> = (0..now.len())
            .filter(|i| total(&now[*i]) <= total(&agents_read[*i]))
            .collect();
        if waiting.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "agents {waiting:?} did not read the cluster's members again after a host record changed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And three episodes of the monitors cut from the primary's agent: each is verified
    // alive and audited (`primary_alive`), within the history retention of 2.
    let net = w.net.as_ref().expect("net");
    for _ in 0..3 {
        net.block_services(0, &altair_e2e::ops::monitor_endpoints(&w))
            .await
            .expect("block the monitors");
        w.wait_health("db1", "unreachable", Duration::from_secs(20))
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        net.heal(0).await.expect("heal");
        w.wait_health("db1", "healthy", Duration::from_secs(20))
            .await;
    }
    let after = znodes(&zk, "/altair").await;
    let history = zk
        .children(
            &zk.layout()
                .history(&altair_core::ClusterName::new(CLUSTER.to_owned()).expect("name")),
        )
        .await
        .expect("history");
    eprintln!(
        "{seen} replica transitions seen, 6 of the primary; znodes {before} -> {after}; history {history:?}"
    );
    assert!(
        seen >= 190,
        "only {seen} of 200 replica transitions were seen"
    );
    assert!(history.len() <= 2, "history kept {history:?}");
    // At most the two audit records the retention keeps are new.
    assert!(
        after <= before + 2,
        "ZooKeeper grew from {before} to {after} znodes"
    );
}
