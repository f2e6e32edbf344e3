//! A leader that dies while ZooKeeper's journal is behind the work it has done (the
//! journal of a step is kept and written only before promotion, at every way out of a
//! pass, or when a step runs long): its successor resumes from the older step and redoes
//! the idempotent ones. Real mariadbd in network namespaces, ZooKeeper, BIND, agents, a
//! monitor and two orchestrators, the first of which ends its process right after the
//! catch-up step, its journal unwritten.

use std::time::{Duration, Instant};

use altair_core::failover::{Journal, Step};
use altair_e2e::ops::{
    create_workload_table, host_index, ids_on, kill_mysqld, one_failover_recorded, wait_dns_moved,
};
use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_dies_before_its_journal_caught_up_is_resumed_with_nothing_lost() {
    // o1 (started first: the leader) ends right after catch-up; o2 has no exit point.
    let mut w = World::start_ha(
        3,
        1,
        1,
        3600,
        &[("ALTAIR_TEST_EXIT_AFTER_STEP", "catch_up")],
    )
    .await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let target = w.dns.as_ref().expect("BIND").target();
    w.fleet
        .start_orchestrator("o2", &target, 3600, &[])
        .expect("a second orchestrator");
    create_workload_table(&w).await;
    let mut app = w.cluster.app_conn(0).await.expect("app on the primary");
    for id in 1..=50u64 {
        app.exec_drop("INSERT INTO w (id) VALUES (?)", (id,))
            .await
            .expect("an acknowledged write");
    }
    drop(app);
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    // Connected before the kill: the journal is read the moment o1 ends.
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("zk");
    let cluster = altair_core::ClusterName::new("c1").expect("name");
    let l = zk.layout().clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    kill_mysqld(&w, 0);

    // o1 fences, chooses, catches up, then ends with its journal kept, not written.
    let started = Instant::now();
    while w.fleet.orchestrators[0].is_running() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the leader never reached its exit point"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Journal = zk
        .get_record("journal", &l.failover_journal(&cluster))
        .await
        .expect("read the journal")
        .expect("the dead leader's journal");
    assert!(
        left.step <= Step::CatchUp,
        "the journal caught up with the dead leader (step {}): the window was missed",
        left.step.as_str()
    );
    eprintln!(
        "leader o1 ended after catch-up {:?} after the kill; ZooKeeper's journal says step {}",
        started.elapsed(),
        left.step.as_str()
    );

    // o2 leads once o1's session expires and finishes from that older step.
    let (new_ip, took) = wait_dns_moved(&w, old_ip, Duration::from_secs(60)).await;
    eprintln!("o2 finished the failover: DNS moved to {new_ip} {took:?} after o1 ended");
    one_failover_recorded(&zk, &cluster).await;
    let new = host_index(&w, new_ip);
    let ids = ids_on(&w, new).await;
    let missing: Vec<u64> = (1..=50).filter(|id| !ids.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes missing on the new primary: {missing:?}"
    );
    let mut c = w.cluster.admin_conn(new).await.expect("the new primary");
    c.query_drop("INSERT INTO app.w (id) VALUES (1000)")
        .await
        .expect("the new primary takes a write");
    let other = (0..3)
        .find(|i| *i != 0 && *i != new)
        .expect("the other replica");
    w.wait_until(
        "the other replica replicates from the new primary",
        Duration::from_secs(30),
        |s| {
            s.clusters[0].hosts.iter().any(|h| {
                h.name == w.cluster.instance(other).name()
                    && h.replicates_from.as_deref() == Some(w.cluster.instance(new).name())
            })
        },
    )
    .await;
}
