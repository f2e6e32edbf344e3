//! The kit's MariaDB is real: GTID replication carries a row to every replica, replicas
//! refuse the application user's writes, and instances die and come back.

use std::time::{Duration, Instant};

use altair_testkit::mariadb::MariaDbCluster;
use altair_testkit::mariadb::sql::query_value;
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_row_written_on_the_primary_is_read_on_both_replicas() {
    let started = Instant::now();
    let cluster = MariaDbCluster::start_loopback(3)
        .await
        .expect("start 3 instances");
    eprintln!(
        "3-node replicated MariaDB on loopback ready in {:?}",
        started.elapsed()
    );

    let mut app = cluster.app_conn(0).await.expect("app user on the primary");
    app.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(32))")
        .await
        .expect("create table as the app user");
    app.query_drop("INSERT INTO t VALUES (1, 'hello')")
        .await
        .expect("insert");

    let primary_pos = cluster.gtid_current_pos(0).await.expect("gtid");
    assert!(!primary_pos.is_empty(), "the primary logged GTIDs");
    for replica in 1..3 {
        cluster
            .wait_for_gtid(replica, &primary_pos, WAIT)
            .await
            .expect("replicated");
        let mut conn = cluster
            .app_conn(replica)
            .await
            .expect("app user on a replica");
        let v = query_value(&mut conn, "SELECT v FROM t WHERE id = 1")
            .await
            .expect("select");
        assert_eq!(
            v.as_deref(),
            Some("hello"),
            "row missing on replica {replica}"
        );

        // read_only stops the DML-only application user on replicas (error 1290).
        let err = conn
            .query_drop("INSERT INTO t VALUES (2, 'nope')")
            .await
            .expect_err("a replica must refuse the application user's write");
        match err {
            mysql_async::Error::Server(e) => assert_eq!(e.code, 1290, "{e}"),
            other => panic!("unexpected error {other}"),
        }
        let status = cluster
            .slave_status(replica)
            .await
            .expect("status")
            .expect("is a replica");
        assert_eq!(status["Using_Gtid"].as_deref(), Some("Slave_Pos"));
    }
}

#[tokio::test]
async fn killed_instance_restarts_read_only_with_its_data() {
    let mut cluster = MariaDbCluster::start_loopback(2).await.expect("start");
    let mut app = cluster.app_conn(0).await.expect("app");
    app.query_drop("CREATE TABLE k (id INT PRIMARY KEY)")
        .await
        .expect("create");
    app.query_drop("INSERT INTO k VALUES (7)")
        .await
        .expect("insert");
    drop(app);

    let pid = cluster.instance(0).pid().expect("running");
    cluster.instance_mut(0).kill();
    assert!(
        cluster.app_conn(0).await.is_err(),
        "killed mysqld still answers"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains(") Z ")
        }
    );

    cluster.instance_mut(0).start().await.expect("restart");
    let mut admin = cluster.admin_conn(0).await.expect("admin");
    let ro = query_value(&mut admin, "SELECT @@read_only")
        .await
        .expect("read_only");
    assert_eq!(
        ro.as_deref(),
        Some("1"),
        "a restarted primary must come back read-only"
    );
    let mut app = cluster.app_conn(0).await.expect("app");
    let v = query_value(&mut app, "SELECT id FROM k")
        .await
        .expect("select");
    assert_eq!(v.as_deref(), Some("7"));
}
