//! Agents and monitors end to end (DESIGN §3): real mariadbd, ZooKeeper and binaries.
//! Health is read the way an operator reads it: `altairctl status`.

use std::time::{Duration, Instant};

use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mysqld_shows_mysql_down_within_two_seconds() {
    let mut w = World::start(1, 3, 2).await;
    for (i, host) in [(2, "db3"), (0, "db1")] {
        w.cluster.instance_mut(i).kill();
        let took = w
            .wait_health(host, "mysql_down", Duration::from_secs(10))
            .await;
        eprintln!("{host}: mysql_down {took:?} after kill -9");
        assert!(
            took < Duration::from_secs(2),
            "{host} took {took:?} to show mysql_down"
        );
    }
    // The replicas of the dead primary lose their IO thread: replication_broken, from the report.
    w.wait_health("db2", "replication_broken", Duration::from_secs(20))
        .await;
    // mysqld back: healthy again (db3 reconnects to db1 once both run).
    w.cluster
        .instance_mut(0)
        .start()
        .await
        .expect("restart db1");
    w.wait_health("db1", "healthy", Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_agent_is_unreachable_after_three_missed_heartbeats_and_not_before() {
    let w = World::start(1, 2, 1).await;
    let interval = Duration::from_millis(w.timing.heartbeat_ms);
    w.fleet.agents[1].pause().expect("SIGSTOP the agent");
    let stopped = Instant::now();
    // The last heartbeat arrived at most one interval before the SIGSTOP, so for two
    // intervals after it the host cannot have missed three.
    while stopped.elapsed() < 2 * interval - Duration::from_millis(200) {
        let h = w.health("db2").await;
        assert_ne!(
            h.as_deref(),
            Some("unreachable"),
            "unreachable after only {:?}",
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.wait_health("db2", "unreachable", Duration::from_secs(10))
        .await;
    eprintln!(
        "unreachable {:?} after SIGSTOP (interval {interval:?})",
        stopped.elapsed()
    );

    // The monitor's own clock: from the last heartbeat it received to the transition.
    let s = w.status().await.expect("status");
    let db2 = s.clusters[0]
        .hosts
        .iter()
        .find(|h| h.name == "db2")
        .expect("db2");
    let last = db2
        .last_heartbeat_unix_ms
        .expect("a heartbeat was received");
    let since = db2.health_since_unix_ms.expect("transition time");
    let silence = Duration::from_millis(
        u64::try_from(since - last).expect("transition after the last heartbeat"),
    );
    eprintln!(
        "monitor: unreachable {silence:?} after the last heartbeat; {} misses",
        db2.missed_heartbeats.unwrap_or(0)
    );
    assert!(
        silence >= 3 * interval,
        "unreachable after only {silence:?} of silence"
    );
    assert!(
        silence < 3 * interval + Duration::from_millis(500),
        "unreachable only after {silence:?} of silence"
    );
    assert_eq!(w.health("db1").await.as_deref(), Some("healthy"));

    w.fleet.agents[1].resume().expect("SIGCONT");
    let back = w
        .wait_health("db2", "healthy", Duration::from_secs(10))
        .await;
    eprintln!("healthy {back:?} after SIGCONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_answers_status_and_checks_reachability_with_a_real_handshake() {
    use altair_proto::v1::{CheckReachabilityRequest, Endpoint, StatusRequest};

    let mut w = World::start(1, 2, 1).await;
    let mut agent = altair_e2e::grpc::agent(&w.fleet, 1).await;
    let status = agent
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    let reg = status.registration.expect("registration");
    assert_eq!(reg.id.expect("id").host, "db2");
    let snap = status.snapshot.expect("snapshot");
    assert!(
        snap.reachable && snap.read_only,
        "db2 is a reachable read-only replica: {snap:?}"
    );
    assert!(snap.replication.is_some());

    let primary = w.cluster.instance(0).addr();
    let target = |port: u16| {
        Some(Endpoint {
            host: primary.ip().to_string(),
            port: u32::from(port),
        })
    };
    let ok = agent
        .check_reachability(CheckReachabilityRequest {
            target: target(primary.port()),
            timeout_ms: 2_000,
            last_heard_only: false,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(
        ok.reachable,
        "db2's agent cannot reach the primary: {}",
        ok.error
    );

    // It logs in with the probe account, which has no privileges, never the admin one:
    // with that account refused, the primary still answers (reachable), and the answer
    // names the probe account.
    let probe = w.cluster.probe().user.clone();
    let mut admin = w.cluster.admin_conn(0).await.expect("admin");
    let grants: Vec<String> = admin
        .query(format!("SHOW GRANTS FOR '{probe}'@'%'"))
        .await
        .expect("grants");
    assert!(
        grants.iter().all(|g| g.starts_with("GRANT USAGE")),
        "the probe account has privileges: {grants:?}"
    );
    admin
        .query_drop(format!(
            "ALTER USER '{probe}'@'%' IDENTIFIED BY 'not-the-agents'"
        ))
        .await
        .expect("change the probe account's password");
    let refused = agent
        .check_reachability(CheckReachabilityRequest {
            target: target(primary.port()),
            timeout_ms: 2_000,
            last_heard_only: false,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(
        refused.reachable && refused.error.contains(&probe),
        "a mysqld that refuses the probe account answered: {refused:?}"
    );
    admin
        .query_drop(format!(
            "ALTER USER '{probe}'@'%' IDENTIFIED BY '{}'",
            w.cluster.probe().password
        ))
        .await
        .expect("restore the probe account's password");
    drop(admin);

    w.cluster.instance_mut(0).kill();
    let down = agent
        .check_reachability(CheckReachabilityRequest {
            target: target(primary.port()),
            timeout_ms: 2_000,
            last_heard_only: false,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(!down.reachable);
    assert!(!down.error.is_empty());
    assert!(down.elapsed_ms < 2_500);

    // Bad input is refused with a message naming the field.
    let err = agent
        .check_reachability(CheckReachabilityRequest {
            target: target(0),
            timeout_ms: 2_000,
            last_heard_only: false,
        })
        .await
        .expect_err("port 0");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("target.port"), "{}", err.message());
    let err = agent
        .check_reachability(CheckReachabilityRequest {
            target: None,
            timeout_ms: 2_000,
            last_heard_only: false,
        })
        .await
        .expect_err("no target");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}
