//! Unplanned failover end to end (DESIGN §4–7): real mariadbd in network namespaces,
//! real ZooKeeper, BIND, agents, monitors and orchestrators. A client writes through the
//! DNS name as the application user the whole time.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_e2e::world::{CLUSTER, World};
use altair_testkit::mariadb::sql::query_maps;
use mysql_async::prelude::Queryable;

/// Writes unique ids through `primary.c1` until stopped; returns (acknowledged ids with
/// the address that acknowledged each).
async fn workload(w: &World, stop: Arc<AtomicBool>) -> Vec<(u64, Ipv4Addr)> {
    let dns = w.dns.as_ref().expect("dns");
    let (server, name) = (dns.addr(), format!("primary.{CLUSTER}.{}", dns.zone()));
    let app = w.cluster.app().clone();
    let mut acked = Vec::new();
    let mut next = 1u64;
    {
        while !stop.load(Ordering::SeqCst) {
            let Ok(ips) = altair_dns::lookup_a(server, &name, Duration::from_millis(500)).await
            else {
                continue;
            };
            let Some(ip) = ips.first().copied() else {
                continue;
            };
            let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(ip.to_string())
                .tcp_port(3306)
                .user(Some(app.user.clone()))
                .pass(Some(app.password.clone()))
                .db_name(Some("app"))
                .prefer_socket(false)
                .into();
            let Ok(Ok(mut conn)) =
                tokio::time::timeout(Duration::from_secs(1), mysql_async::Conn::new(opts)).await
            else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            while !stop.load(Ordering::SeqCst) {
                let r = tokio::time::timeout(
                    Duration::from_secs(1),
                    conn.query_drop(format!("INSERT INTO w (id) VALUES ({next})")),
                )
                .await;
                match r {
                    Ok(Ok(())) => {
                        acked.push((next, ip));
                        next += 1;
                    }
                    // Refused (read-only), broken or timed out: re-resolve and reconnect.
                    _ => {
                        next += 1;
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    acked
}

async fn ids_on(w: &World, i: usize) -> BTreeSet<u64> {
    let mut c = w.cluster.admin_conn(i).await.expect("admin");
    query_maps(&mut c, "SELECT id FROM app.w")
        .await
        .expect("select")
        .iter()
        .filter_map(|r| r["id"].as_deref().and_then(|v| v.parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysqld_crash_fails_over_with_zero_lost_writes() {
    let mut w = World::start_ha(3, 2, 2, 3600, &[]).await;
    let mut app = w.cluster.app_conn(0).await.expect("app");
    app.query_drop("CREATE TABLE w (id BIGINT PRIMARY KEY)")
        .await
        .expect("create");
    drop(app);
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    assert_eq!(w.primary_dns().await, vec![old_ip]);
    // Let the leader record the cluster's state before the crash.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let w = &w;
        async move { workload(w, stop).await }
    };
    let killer = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let killed_at = Instant::now();
        // SAFETY of the test's intent: the host stays up; only mysqld dies.
        let pid = w.cluster.instance(0).pid().expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9");
        let deadline = killed_at + Duration::from_secs(60);
        loop {
            let ips = w.primary_dns().await;
            if !ips.is_empty() && ips != vec![old_ip] {
                eprintln!(
                    "DNS moved to {ips:?} {:?} after kill -9",
                    killed_at.elapsed()
                );
                break;
            }
            assert!(Instant::now() < deadline, "DNS never moved");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Keep writing on the new primary for a while.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::SeqCst);
    };
    let (acked, ()) = tokio::join!(writer, killer);
    let new_ip = w.primary_dns().await[0];
    let new = w
        .net
        .as_ref()
        .expect("net")
        .hosts()
        .iter()
        .position(|h| h.ip == new_ip)
        .expect("new primary is a host");
    assert_ne!(new, 0);
    let after: Vec<_> = acked.iter().filter(|(_, ip)| *ip == new_ip).collect();
    assert!(
        !after.is_empty(),
        "no write was acknowledged by the new primary"
    );
    eprintln!(
        "{} writes acknowledged, {} by the new primary",
        acked.len(),
        after.len()
    );

    // Zero lost acknowledged writes; identical data on every survivor.
    let expected: BTreeSet<u64> = acked.iter().map(|(id, _)| *id).collect();
    let on_new = ids_on(&w, new).await;
    let lost: Vec<_> = expected.difference(&on_new).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let gtid = w.cluster.gtid_current_pos(new).await.expect("gtid");
    for i in 1..3 {
        if i != new {
            w.cluster
                .wait_for_gtid(i, &gtid, Duration::from_secs(20))
                .await
                .expect("the other replica follows the new primary");
            assert_eq!(
                ids_on(&w, i).await,
                on_new,
                "replica {i} differs from the new primary"
            );
            assert_eq!(
                w.cluster.gtid_current_pos(i).await.expect("gtid"),
                gtid,
                "GTIDs differ on replica {i}"
            );
        }
    }
    // The old primary comes back read-only (never writable on its own).
    w.cluster
        .instance_mut(0)
        .start()
        .await
        .expect("restart the old mysqld");
    let mut old = w.cluster.app_conn(0).await.expect("app on old primary");
    let err = old
        .query_drop("INSERT INTO w (id) VALUES (999999999)")
        .await
        .expect_err("old primary must refuse");
    assert!(
        matches!(err, mysql_async::Error::Server(ref e) if e.code == 1290),
        "{err}"
    );
}
