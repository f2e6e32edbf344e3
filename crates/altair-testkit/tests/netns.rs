//! Hosts in network namespaces and real network faults. These tests need root: as any
//! other user they fail with a message saying so (they never skip).

use std::time::{Duration, Instant};

use altair_testkit::mariadb::MariaDbCluster;
use altair_testkit::mariadb::sql::query_value;
use altair_testkit::netns::TestNet;
use mysql_async::prelude::Queryable;

#[tokio::test]
async fn partitioned_replica_stops_replicating_and_resumes_after_healing() {
    let started = Instant::now();
    let net = TestNet::create(3)
        .await
        .expect("create 3 host namespaces (run as root)");
    let cluster = MariaDbCluster::start_in(&net)
        .await
        .expect("start MariaDB in the namespaces");
    eprintln!(
        "3 namespaces + replicated MariaDB ready in {:?}",
        started.elapsed()
    );
    assert_eq!(
        cluster.instance(1).namespace(),
        Some(net.host(1).namespace.as_str())
    );

    let mut app = cluster
        .app_conn(0)
        .await
        .expect("app user across the bridge");
    app.query_drop("CREATE TABLE p (id INT PRIMARY KEY)")
        .await
        .expect("create");
    app.query_drop("INSERT INTO p VALUES (1)")
        .await
        .expect("insert");
    let pos = cluster.gtid_current_pos(0).await.expect("gtid");
    cluster
        .wait_for_gtid(2, &pos, Duration::from_secs(20))
        .await
        .expect("replicated");

    // Cut replica 2 from the primary only: the root namespace still reaches it.
    net.partition(2, &[net.host(0).ip])
        .await
        .expect("partition");
    let cut_at = Instant::now();
    let deadline = cut_at + Duration::from_secs(30);
    loop {
        let s = cluster
            .slave_status(2)
            .await
            .expect("root namespace still reaches the replica")
            .expect("replica");
        if s["Slave_IO_Running"].as_deref() != Some("Yes") {
            eprintln!(
                "IO thread noticed the partition after {:?}",
                cut_at.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "IO thread never noticed the partition"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.query_drop("INSERT INTO p VALUES (2)")
        .await
        .expect("primary still takes writes");
    let mut on_replica = cluster.app_conn(2).await.expect("app on replica");
    let n = query_value(&mut on_replica, "SELECT COUNT(*) FROM p")
        .await
        .expect("count");
    assert_eq!(n.as_deref(), Some("1"), "a partitioned replica got a row");

    net.heal(2).await.expect("heal");
    let healed_at = Instant::now();
    cluster
        .wait_replicating(2, Duration::from_secs(30))
        .await
        .expect("IO thread back");
    let pos = cluster.gtid_current_pos(0).await.expect("gtid");
    cluster
        .wait_for_gtid(2, &pos, Duration::from_secs(30))
        .await
        .expect("caught up");
    eprintln!("replica caught up {:?} after healing", healed_at.elapsed());
    let n = query_value(&mut on_replica, "SELECT COUNT(*) FROM p")
        .await
        .expect("count");
    assert_eq!(n.as_deref(), Some("2"));
}

#[tokio::test]
async fn isolated_host_is_unreachable_until_healed_and_sigstop_freezes() {
    let net = TestNet::create(2)
        .await
        .expect("create namespaces (run as root)");
    let cluster = MariaDbCluster::start_in(&net).await.expect("start");
    net.isolate(0).await.expect("isolate");
    assert!(
        cluster.admin_conn(0).await.is_err(),
        "an isolated host answered"
    );
    net.heal(0).await.expect("heal");
    let mut conn = cluster
        .admin_conn(0)
        .await
        .expect("reachable after healing");
    conn.query_drop("SELECT 1").await.expect("query");

    cluster.instance(1).pause().expect("SIGSTOP");
    let frozen = tokio::time::timeout(Duration::from_secs(2), cluster.admin_conn(1)).await;
    assert!(
        !matches!(frozen, Ok(Ok(_))),
        "a SIGSTOPped mysqld completed a handshake"
    );
    cluster.instance(1).resume().expect("SIGCONT");
    cluster.admin_conn(1).await.expect("answers after SIGCONT");
}
