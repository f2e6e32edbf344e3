//! MySQL sessions over TLS: every MariaDB server takes TCP sessions over TLS only
//! (`require_secure_transport`, certificates of a CA of the test's own), and the control
//! plane runs with `tls = "verify_identity"` for its admin, replication and probe
//! accounts. Real mariadbd in network namespaces, ZooKeeper, BIND, agents, a monitor
//! and an orchestrator.

use std::time::Duration;

use altair_e2e::ops::{host_index, kill_mysqld, wait_dns_moved};
use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

/// `SHOW SLAVE STATUS` of host `i`, a replica.
async fn slave_status(w: &World, i: usize) -> altair_testkit::mariadb::sql::RowMap {
    w.cluster
        .slave_status(i)
        .await
        .expect("SHOW SLAVE STATUS")
        .expect("a replica")
}

/// Host `i`'s replication: (IO thread running, TLS on, certificate checked).
async fn replication_tls(w: &World, i: usize) -> (bool, bool, bool) {
    let status = slave_status(w, i).await;
    let yes = |k: &str| status.get(k).and_then(Clone::clone).as_deref() == Some("Yes");
    (
        yes("Slave_IO_Running"),
        yes("Master_SSL_Allowed"),
        yes("Master_SSL_Verify_Server_Cert"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_takes_only_tls_sessions_is_watched_and_failed_over_over_tls() {
    // Every host turned healthy: the agents' probes log in over TLS.
    let mut w = World::start_ha_mysql_tls(3, 1).await;
    let old_ip = w.net.as_ref().expect("net").host(0).ip;

    // The servers really refuse plaintext over TCP.
    let plain: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(old_ip.to_string())
        .tcp_port(3306)
        .user(Some(w.cluster.admin().user.clone()))
        .pass(Some(w.cluster.admin().password.clone()))
        .prefer_socket(false)
        .into();
    let refused = tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(plain))
        .await
        .expect("an answer");
    // (MariaDB answers "access denied"; the same account over TLS gets in.)
    assert!(
        matches!(refused, Err(mysql_async::Error::Server(_))),
        "a plaintext session was not refused by the server ({:?}): the test would prove nothing",
        refused.map(|_| "let in")
    );
    w.cluster
        .admin_conn(0)
        .await
        .expect("the same account over TLS gets in");

    // Let the leader record the cluster, then crash the primary's mysqld.
    tokio::time::sleep(Duration::from_secs(2)).await;
    kill_mysqld(&w, 0);
    let (new_ip, took) = wait_dns_moved(&w, old_ip, Duration::from_secs(60)).await;
    eprintln!("DNS moved to {new_ip} {took:?} after kill -9");
    let new = host_index(&w, new_ip);
    let mut c = w
        .cluster
        .admin_conn(new)
        .await
        .expect("a TLS session to the new primary");
    c.query_drop("CREATE TABLE app.after_tls_failover (id INT PRIMARY KEY)")
        .await
        .expect("the new primary takes a write");

    // The other replica was repointed by its agent (`[replication] tls`): replication
    // runs over TLS with the new primary's certificate checked.
    let other = (1..3).find(|i| *i != new).expect("the other replica");
    let started = std::time::Instant::now();
    loop {
        let (io, ssl, verified) = replication_tls(&w, other).await;
        if io && ssl && verified {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "db{} replicates from the new primary with io {io}, ssl {ssl}, verified {verified}",
            other + 1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = slave_status(&w, other).await;
    assert_eq!(
        status.get("Master_Host").and_then(Clone::clone),
        Some(new_ip.to_string()),
        "{status:?}"
    );
    // The old primary comes back and rejoins: it never replicated before, so its TLS
    // settings are the ones its agent's CHANGE MASTER gave it.
    w.cluster.instance_mut(0).kill();
    w.cluster
        .instance_mut(0)
        .start()
        .await
        .expect("start the old primary's mysqld again");
    let started = std::time::Instant::now();
    loop {
        let rejoined = match w.cluster.slave_status(0).await {
            Ok(Some(_)) => replication_tls(&w, 0).await,
            _ => (false, false, false),
        };
        if rejoined == (true, true, true) {
            let status = slave_status(&w, 0).await;
            let ca = w.cluster.tls_ca().expect("a CA").display().to_string();
            assert_eq!(
                status.get("Master_SSL_CA_File").and_then(Clone::clone),
                Some(ca),
                "{status:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the old primary did not rejoin over TLS with the certificate checked: {rejoined:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // What the new primary took reaches it.
    let mut r = w.cluster.admin_conn(other).await.expect("admin");
    let started = std::time::Instant::now();
    while r
        .query_drop("SELECT 1 FROM app.after_tls_failover")
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the write never replicated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
