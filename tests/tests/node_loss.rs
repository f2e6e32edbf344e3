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
    // Each agent pings over its one liveness stream, not call by call (a stream being
    // replaced may count twice for a moment).
    let streams_since = Instant::now();
    let monitor = loop {
        let m = altair_e2e::ops::scrape(&w.fleet.monitors[0].metrics).await;
        if m.get("altair_monitor_liveness_streams") == Some(&3.0)
            || streams_since.elapsed() > Duration::from_secs(5)
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        monitor.get("altair_monitor_liveness_streams"),
        Some(&3.0),
        "{monitor:?}"
    );
    assert!(
        monitor
            .get("altair_monitor_pings_total")
            .is_some_and(|n| *n >= 3.0),
        "{monitor:?}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_host_that_resumes_after_its_failover_is_read_only() {
    frozen_host_resumes_read_only(Duration::ZERO).await;
}

/// A mysqld that hangs (a stalled disk) and, ~2 s later, its whole host freezes: the
/// agent's last probe before its freeze got no answer, yet on resume the primary is made
/// read-only (not killed) — the unanswered probe is retried by the fence itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_mysqld_whose_host_then_freezes_resumes_read_only_not_killed() {
    frozen_host_resumes_read_only(Duration::from_millis(1_900)).await;
}

/// Freezes the primary's mysqld, after `hung_first` its agent, until DNS moves; then
/// resumes both and checks the old primary is read-only, fenced by its own agent, and
/// the new primary takes writes.
async fn frozen_host_resumes_read_only(hung_first: Duration) {
    let w = World::start_ha_with(3, 1, 1, 3600, &[], FleetTiming::shipped()).await;
    w.wait_until("cluster recorded", Duration::from_secs(30), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    // The whole host freezes (a VM stun): its mysqld, and (at once or later) its agent.
    altair_e2e::ops::signal_mysqld(&w, 0, nix::sys::signal::Signal::SIGSTOP)
        .expect("SIGSTOP mysqld");
    tokio::time::sleep(hung_first).await;
    w.fleet.agents[0].pause().expect("SIGSTOP the agent");
    let (new_ip, moved) = wait_dns_moved(&w, old_ip, Duration::from_secs(30)).await;
    eprintln!("frozen host: DNS moved {moved:?} after the freeze");
    // The orchestrator held still across the resume: its own re-fence of the old
    // primary could otherwise come first (the agent then finds it read-only already and
    // has nothing to fence), and the test is about the agent fencing by itself.
    w.fleet.orchestrators[0]
        .pause()
        .expect("SIGSTOP the orchestrator");
    let resumed = Instant::now();
    altair_e2e::ops::signal_mysqld(&w, 0, nix::sys::signal::Signal::SIGCONT)
        .expect("SIGCONT mysqld");
    w.fleet.agents[0].resume().expect("SIGCONT the agent");
    // Resumed, it learns that a failover happened meanwhile and fences itself.
    loop {
        let mut admin = match w.cluster.admin_conn(0).await {
            Ok(c) => c,
            Err(e) => panic!(
                "the resumed old primary does not answer ({e}): stopped instead of made read-only?\n{}",
                w.fleet.warnings(5)
            ),
        };
        let ro = query_value(&mut admin, "SELECT @@global.read_only")
            .await
            .expect("read_only");
        if ro.as_deref() == Some("1") {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(5),
            "the resumed old primary is still writable {:?} after it resumed\n{}",
            resumed.elapsed(),
            w.fleet.warnings(5)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "frozen host: read-only {:?} after it resumed",
        resumed.elapsed()
    );
    // Its own agent did it (not only the leader's re-fencing). The agent counts its
    // self-fence once the fence is done (clients killed, position read), a few ms after
    // read_only is visible: the count is waited for, within 3 s.
    let counted = Instant::now();
    let self_fences = loop {
        let m = altair_e2e::ops::scrape(&w.fleet.agents[0].metrics).await;
        let n = m.get("altair_agent_self_fences_total").copied();
        if n.unwrap_or(0.0) >= 1.0 || counted.elapsed() > Duration::from_secs(3) {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    w.fleet.orchestrators[0]
        .resume()
        .expect("SIGCONT the orchestrator");
    assert!(
        self_fences.unwrap_or(0.0) >= 1.0,
        "the resumed agent did not fence its primary itself: {self_fences:?}"
    );
    let mut app = w
        .cluster
        .app_conn(host_index(&w, new_ip))
        .await
        .expect("app on the new primary");
    app.query_drop("CREATE TABLE after_freeze (id INT)")
        .await
        .expect("the new primary takes writes");
}
