//! Agents and monitors end to end (DESIGN §3): real mariadbd, ZooKeeper and binaries.
//! Health is read the way an operator reads it: `altairctl status`.

use std::time::{Duration, Instant};

use altair_e2e::world::World;

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
    // Before 3 intervals: never unreachable.
    while stopped.elapsed() < 3 * interval - Duration::from_millis(300) {
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
    let took = stopped.elapsed();
    eprintln!("unreachable {took:?} after SIGSTOP (interval {interval:?})");
    assert!(took >= 3 * interval, "unreachable after {took:?}");
    assert!(
        took < 3 * interval + Duration::from_secs(2),
        "unreachable only after {took:?}"
    );
    assert_eq!(w.health("db1").await.as_deref(), Some("healthy"));

    w.fleet.agents[1].resume().expect("SIGCONT");
    let back = w
        .wait_health("db2", "healthy", Duration::from_secs(10))
        .await;
    eprintln!("healthy {back:?} after SIGCONT");
}
