//! A ZooKeeper blip (issue 16): the ensemble loses its quorum for a moment and regains
//! it before any session expires. Every client reconnects with its session — and the
//! server forgets the watches of the old connection. The leader orchestrator's workers
//! are woken by one persistent watch on `clusters/`, which zookeeper-client 0.11 does not
//! send again on a reconnection: before the fix, an idle cluster's worker was never woken
//! again, and a primary that died after the blip was not failed over (found by the soak,
//! `SEED=20261207` round 23; the 300 s resync would have been the next look).
//!
//! Real ZooKeeper (a 3-server ensemble), real mariadbd in namespaces, the real services;
//! asserted as a user would: the dead primary is replaced and DNS names the new one.

use std::time::{Duration, Instant};

use altair_e2e::world::World;
use altair_testkit::fleet::FleetTiming;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_dies_after_a_zookeeper_blip_is_failed_over() {
    // Sessions of 20 s: however slowly the servers come back on a loaded machine, every
    // client keeps its session (it gives up on it only after 7/5 of the timeout) — the
    // case the fix is for; a new session would set a new watch anyway.
    let timing = FleetTiming {
        zk_session_timeout_ms: 20_000,
        ..FleetTiming::default()
    };
    let mut w = World::start_ha_ensemble(3, 2, 1, 3600, 3, timing).await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let net = w.net.as_ref().expect("net");
    let old_ip = net.host(0).ip;
    // Quorum lost (two of three servers down) for well under the session timeout: the
    // sessions survive, every connection is new.
    w.zk.kill(0);
    w.zk.kill(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.zk.restart(0).await.expect("ZooKeeper server back");
    w.zk.restart(1).await.expect("ZooKeeper server back");
    w.wait_all_healthy(3).await;
    // Everything idle again (no event pending, no worker looking by itself).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = w.status().await.expect("status");
    assert_eq!(s.clusters[0].epoch, Some(1), "the blip caused a failover");
    w.cluster.instance_mut(0).kill();
    let killed = Instant::now();
    let started = Instant::now();
    loop {
        let dns = w.primary_dns().await;
        if dns.first().is_some_and(|ip| *ip != old_ip) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the dead primary was not failed over 30 s after its mysqld died (DNS {dns:?}); status: {:?}",
            w.status().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "after a ZooKeeper blip: DNS moved {:?} after the primary's mysqld died",
        killed.elapsed()
    );
    let s = w.status().await.expect("status");
    assert_eq!(s.clusters[0].epoch, Some(2));
    assert_ne!(s.clusters[0].primary.as_deref(), Some("db1"));
}
