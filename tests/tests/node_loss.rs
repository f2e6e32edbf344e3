//! Node loss in seconds at the shipped defaults (issue "Operating a fleet"): 10 s full
//! heartbeats, a liveness ping every second, 1 s probes, the agent's default
//! self-fencing bound (2 pings) and the orchestrator's default verification. The
//! primary's host is isolated (its namespace cut from everything, as a power cut looks
//! from outside): DNS moves to a new primary that takes writes within 5 s, and the old
//! primary, healed, is read-only. Rows 3, 4a and 4b at the same defaults are in
//! `partitions.rs`. Real mariadbd, agents, monitor, orchestrator, ZooKeeper, BIND.

use std::time::{Duration, Instant};

use altair_e2e::ops::{host_index, wait_dns_moved};
use altair_e2e::world::World;
use altair_testkit::fleet::FleetTiming;
use altair_testkit::mariadb::sql::query_value;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_primary_host_is_replaced_within_five_seconds_at_shipped_defaults() {
    let w = World::start_ha_with(3, 1, 1, 3600, &[], FleetTiming::shipped()).await;
    w.wait_until("cluster recorded", Duration::from_secs(30), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    // Past the first heartbeats, so the pings set the pace.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let net = w.net.as_ref().expect("net");
    let old_ip = net.host(0).ip;
    let cut = Instant::now();
    net.isolate(0).await.expect("isolate the primary's host");
    let (new_ip, _) = wait_dns_moved(&w, old_ip, Duration::from_secs(30)).await;
    let moved = cut.elapsed();
    let mut app = w
        .cluster
        .app_conn(host_index(&w, new_ip))
        .await
        .expect("app on the new primary");
    app.query_drop("CREATE TABLE after_loss (id INT)")
        .await
        .expect("the new primary takes writes");
    let writable = cut.elapsed();
    let record = altair_e2e::ops::history_with(&w, 1).await;
    let stages: Vec<String> = record[0]["stages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    format!(
                        "{} {} ms",
                        s["name"].as_str().unwrap_or("?"),
                        s["duration_ms"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    eprintln!(
        "node loss at shipped defaults: DNS moved {moved:?} after the cut, a write on the new primary {writable:?}; stages {}",
        stages.join(", ")
    );
    assert!(
        moved <= Duration::from_secs(5),
        "DNS moved {moved:?} after the primary's host was cut off (goal 5 s)\n{}",
        w.fleet.warnings(5)
    );
    // The old primary fenced itself while cut off: healed, it refuses writes.
    net.heal(0).await.expect("heal");
    let mut admin = w.cluster.admin_conn(0).await.expect("admin on db1");
    let ro = query_value(&mut admin, "SELECT @@global.read_only")
        .await
        .expect("read_only");
    assert_eq!(
        ro.as_deref(),
        Some("1"),
        "the healed old primary is writable"
    );
}
