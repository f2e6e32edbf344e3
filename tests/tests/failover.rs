//! Unplanned failover end to end (DESIGN §4–7): real mariadbd in network namespaces,
//! real ZooKeeper, BIND, agents, monitors and orchestrators. A client writes through the
//! DNS name as the application user the whole time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_e2e::ops::{
    create_workload_table, ctl, history_with, host_index, ids_on, one_failover_recorded,
    wait_dns_moved, workload,
};
use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysqld_crash_fails_over_with_zero_lost_writes() {
    let mut w = World::start_ha(3, 2, 2, 3600, &[]).await;
    create_workload_table(&w).await;
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    assert_eq!(w.primary_dns().await, vec![old_ip]);
    // Let the leader record the cluster's state before the crash.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sampler = altair_testkit::checker::ReadOnlySampler::start(&w.cluster);
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
    let rounds = sampler.stop().await;
    let after: Vec<_> = acked.iter().filter(|(_, ip, _)| *ip == new_ip).collect();
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
    let on_new = ids_on(&w, new).await;
    let acks: Vec<altair_testkit::checker::Ack> = acked
        .iter()
        .map(|(id, ip, at)| altair_testkit::checker::Ack {
            id: *id,
            instance: host_index(&w, *ip),
            at: *at,
        })
        .collect();
    let verdict = altair_testkit::checker::judge(&rounds, &acks, 0, new, &on_new);
    verdict.assert_clean(false);
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
    // Everything it had was salvaged, so it has no errant transaction: altair re-attaches
    // it as a replica of the new primary on its own, and it catches up.
    w.wait_until(
        "the old primary rejoined (no longer listed as waiting)",
        Duration::from_secs(30),
        |s| s.clusters[0].needs_rejoin.is_empty(),
    )
    .await;
    let mut app = w
        .cluster
        .app_conn(new)
        .await
        .expect("app on the new primary");
    app.query_drop("INSERT INTO w (id) VALUES (888888888)")
        .await
        .expect("write on the new primary");
    let gtid = w.cluster.gtid_current_pos(new).await.expect("gtid");
    w.cluster
        .wait_for_gtid(0, &gtid, Duration::from_secs(30))
        .await
        .expect("the old primary replicates from the new one");
    assert_eq!(ids_on(&w, 0).await, ids_on(&w, new).await);
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_failure_within_the_block_period_waits_for_ack() {
    let mut w = World::start_ha(3, 1, 1, 3600, &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = w.net.as_ref().expect("net").host(0).ip;
    kill9(w.cluster.instance(0).pid().expect("pid"));
    let (second, _) = wait_dns_moved(&w, first, Duration::from_secs(60)).await;
    let i = host_index(&w, second);
    w.cluster.instance_mut(i).kill();
    // Refused, with the reason in status; the DNS name does not move.
    w.wait_until("failover blocked", Duration::from_secs(30), |s| {
        s.clusters[0].failover_blocked.is_some()
    })
    .await;
    let out = ctl(&w, &["status", "c1"]);
    assert!(
        altair_e2e::stdout(&out).contains("AUTOMATIC FAILOVER BLOCKED"),
        "{}",
        altair_e2e::stdout(&out)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.primary_dns().await,
        vec![second],
        "a second automatic failover happened within the block period"
    );

    let out = ctl(&w, &["ack", "c1"]);
    assert!(
        out.status.success(),
        "ack failed: {}",
        altair_e2e::stderr(&out)
    );
    let (third, took) = wait_dns_moved(&w, second, Duration::from_secs(60)).await;
    eprintln!("after ack, failed over to {third} in {took:?}");
    assert_ne!(third, first);

    let json = history_with(&w, 2).await;
    let succeeded = json
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .count();
    assert_eq!(succeeded, 2, "exactly two failovers: {json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_loss_fails_over_and_the_healed_old_primary_is_fenced() {
    let w = World::start_ha(3, 2, 2, 3600, &[]).await;
    let mut app = w.cluster.app_conn(0).await.expect("app");
    app.query_drop("CREATE TABLE n (id INT PRIMARY KEY)")
        .await
        .expect("create");
    drop(app);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    w.net
        .as_ref()
        .expect("net")
        .isolate(0)
        .await
        .expect("isolate the primary's host");
    let (new_ip, took) = wait_dns_moved(&w, old_ip, Duration::from_secs(60)).await;
    eprintln!(
        "node loss: DNS moved {took:?} after isolating the primary (heartbeat {} ms)",
        w.timing.heartbeat_ms
    );

    // The application user writes through the DNS name to the new primary.
    let new = host_index(&w, new_ip);
    let mut app = w
        .cluster
        .app_conn(new)
        .await
        .expect("app on the new primary");
    app.query_drop("INSERT INTO n VALUES (1)")
        .await
        .expect("the new primary takes writes");

    let json = history_with(&w, 1).await;
    assert_eq!(json[0]["outcome"], "succeeded", "{json}");
    assert!(
        json[0]["gtids_lost"]
            .as_str()
            .is_some_and(|s| s.contains("unreachable")),
        "{json}"
    );

    // Healed: the old primary is fenced again and refuses the application user.
    w.net.as_ref().expect("net").heal(0).await.expect("heal");
    let healed = Instant::now();
    loop {
        let mut c = w
            .cluster
            .admin_conn(0)
            .await
            .expect("old primary reachable after healing");
        let ro = altair_testkit::mariadb::sql::query_value(&mut c, "SELECT @@read_only")
            .await
            .expect("read_only");
        if ro.as_deref() == Some("1") {
            eprintln!(
                "healed old primary fenced {:?} after healing",
                healed.elapsed()
            );
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(15),
            "the healed old primary stayed writable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut old = w.cluster.app_conn(0).await.expect("app on the old primary");
    let err = old
        .query_drop("INSERT INTO n VALUES (2)")
        .await
        .expect_err("old primary must refuse");
    assert!(
        matches!(err, mysql_async::Error::Server(ref e) if e.code == 1290),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_finishes_a_failover_its_predecessor_started() {
    use altair_core::failover::{Journal, Step};
    use altair_core::registry::MonitorRecord;

    // Every orchestrator holds the failover for 120 s right after fencing.
    let mut w = World::start_ha(3, 1, 2, 3600, &[("ALTAIR_TEST_PAUSE_AFTER_STEP", "fence")]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("zk");
    let cluster = altair_core::ClusterName::new("c1").expect("name");
    let l = zk.layout().clone();
    let first = w.net.as_ref().expect("net").host(0).ip;
    kill9(w.cluster.instance(0).pid().expect("pid"));

    // Wait until the leader has fenced and journaled "choose" next, then kill it.
    let started = Instant::now();
    loop {
        let j: Option<Journal> = zk
            .get_record("journal", &l.failover_journal(&cluster))
            .await
            .expect("read journal");
        if j.as_ref().is_some_and(|j| j.step == Step::Choose) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the failover never reached its pause point"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader: MonitorRecord = zk
        .get_record("leader", &l.leader())
        .await
        .expect("read")
        .expect("a leader");
    let i = w
        .fleet
        .orchestrators
        .iter()
        .position(|o| o.id == leader.id)
        .expect("leader runs");
    w.fleet.orchestrators[i].kill();
    eprintln!("killed leader {} mid-failover", leader.id);

    let (new_ip, took) = wait_dns_moved(&w, first, Duration::from_secs(60)).await;
    eprintln!(
        "the new leader finished the failover to {new_ip}: DNS moved {took:?} after the kill of the leader's predecessor's primary"
    );
    // DNS moves in "publish"; "record" ends the journal right after it.
    let audit = one_failover_recorded(&zk, &cluster).await;
    let names: Vec<&str> = audit
        .journal
        .stages
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for step in [
        "fence", "choose", "catch_up", "salvage", "promote", "repoint", "publish",
    ] {
        assert_eq!(
            names.iter().filter(|n| **n == step).count(),
            1,
            "{step} not done exactly once: {names:?}"
        );
    }
}
