//! Failover readiness (issue "Operating a fleet"): what a failover would do now, judged
//! by the owning monitor from the heartbeats — `lossless` on a healthy cluster, `lossy`
//! with the replicas held back (their IO threads stopped while the primary takes
//! writes) listing the missing GTIDs, errant transactions on a replica named, `blocked`
//! when no candidate qualifies. Read as a user does: `altairctl readiness --json`,
//! `altairctl status` and the monitor's metrics. Real mariadbd, agents, monitor,
//! orchestrator, ZooKeeper.

use std::time::{Duration, Instant};

use altair_e2e::ops::{ctl, ctl_json, kill_mysqld, scrape};
use altair_e2e::stdout;
use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

/// Polls `altairctl --json readiness c1` until `done` holds for c1's readiness.
async fn until(
    w: &World,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let json = ctl_json(w, &["--json", "readiness", "c1"], 0);
        let r = &json["c1"];
        if done(r) {
            return r.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "readiness never became {what}: {json}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The monitor's readiness metric for c1 until it shows `verdict`.
async fn metric_shows(w: &World, verdict: &str) -> std::collections::BTreeMap<String, f64> {
    let started = Instant::now();
    let key = format!("altair_failover_readiness{{cluster=\"c1\",verdict=\"{verdict}\"}}");
    loop {
        let m = scrape(&w.fleet.monitors[0].metrics).await;
        if m.get(&key) == Some(&1.0) {
            return m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{key} never 1: {:?}",
            m.iter()
                .filter(|(k, _)| k.contains("readiness"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_lossless_then_lossy_then_blocked_as_the_cluster_degrades() {
    let w = World::start_ha(3, 1, 1, 3600, &[]).await;

    // Healthy: lossless, with a candidate, salvage possible, nothing errant or unheard.
    let r = until(&w, "lossless", |r| r["verdict"] == "lossless").await;
    assert!(r["candidate"].is_string(), "{r}");
    assert_eq!(r["primary"], "db1", "{r}");
    assert_eq!(r["salvage_possible"], true, "{r}");
    assert_eq!(r["errant"], serde_json::json!({}), "{r}");
    assert_eq!(r["unasked"], serde_json::json!([]), "{r}");
    metric_shows(&w, "lossless").await;

    // Both replicas stop receiving; the primary commits 5 transactions.
    for i in [1, 2] {
        let mut admin = w.cluster.admin_conn(i).await.expect("admin");
        admin
            .query_drop("STOP SLAVE IO_THREAD")
            .await
            .expect("stop IO");
    }
    let mut app = w.cluster.app_conn(0).await.expect("app on db1");
    app.query_drop("CREATE TABLE r (id INT PRIMARY KEY)")
        .await
        .expect("create");
    for id in 1..=4 {
        app.query_drop(format!("INSERT INTO r VALUES ({id})"))
            .await
            .expect("insert");
    }
    let r = until(&w, "lossy by 5", |r| {
        r["verdict"] == "lossy" && r["missing_transactions"] == 5
    })
    .await;
    let missing = r["missing_gtids"].as_str().unwrap_or("");
    assert!(
        missing.contains("0-1-") && missing.contains("5 transactions"),
        "{r}"
    );
    let text = stdout(&ctl(&w, &["status", "c1"]));
    assert!(text.contains("failover readiness: LOSSY"), "{text}");
    let m = metric_shows(&w, "lossy").await;
    assert_eq!(
        m.get("altair_failover_readiness_missing_transactions{cluster=\"c1\"}"),
        Some(&5.0)
    );

    // Receiving again: lossless again.
    for i in [1, 2] {
        let mut admin = w.cluster.admin_conn(i).await.expect("admin");
        admin
            .query_drop("START SLAVE IO_THREAD")
            .await
            .expect("start IO");
    }
    until(&w, "lossless again", |r| r["verdict"] == "lossless").await;

    // A write on a replica (an operator's mistake): errant, named.
    let mut admin = w.cluster.admin_conn(2).await.expect("admin on db3");
    admin
        .query_drop("CREATE DATABASE errant_probe")
        .await
        .expect("a write on db3");
    let r = until(&w, "errant on db3", |r| r["errant"]["db3"].is_string()).await;
    let seen = Instant::now();
    let errant = r["errant"]["db3"].as_str().unwrap_or("").to_owned();
    assert!(errant.starts_with("0-3-"), "{r}");
    // The primary writes on and db3 replicates it: its own write stays visible (its
    // binlog state keeps it), and no one else is called errant.
    for id in 5..=6 {
        app.query_drop(format!("INSERT INTO r VALUES ({id})"))
            .await
            .expect("insert");
    }
    let settled = Instant::now();
    while settled.elapsed() < Duration::from_secs(4) {
        let json = ctl_json(&w, &["--json", "readiness", "c1"], 0);
        assert_eq!(
            json["c1"]["errant"],
            serde_json::json!({ "db3": errant }),
            "{json}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The metric is recomputed every readiness interval (5 s): it shows the errant
    // replica within one interval and a heartbeat of the on-demand answer showing it.
    let key = "altair_failover_readiness_errant_replicas{cluster=\"c1\"}";
    loop {
        let m = scrape(&w.fleet.monitors[0].metrics).await;
        if m.get(key) == Some(&1.0) {
            break;
        }
        assert!(
            seen.elapsed() < Duration::from_secs(7),
            "{key} is {:?} {:?} after readiness named db3 errant",
            m.get(key),
            seen.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Neither replica's mysqld runs: no failover could promote anyone.
    kill_mysqld(&w, 1);
    kill_mysqld(&w, 2);
    let r = until(&w, "blocked", |r| r["verdict"] == "blocked").await;
    let why = r["blocked_reason"].as_str().unwrap_or("");
    assert!(why.contains("db2") && why.contains("db3"), "{r}");
    metric_shows(&w, "blocked").await;
    let text = stdout(&ctl(&w, &["readiness"]));
    assert!(text.contains("cluster c1  BLOCKED"), "{text}");
}

/// The end-to-end replication lag (`altair_core::lag`): the binlog stream to db3 slowed
/// to a trickle with `tc` under a steady write load — db3's lag grows in `altairctl
/// status` and the monitor's metric while db2 stays in step (whatever mysqld's own
/// `Seconds_Behind_Master` says, printed beside it); healed, db3 catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_stream_is_slowed_shows_its_end_to_end_lag() {
    let w = World::start_ha(3, 1, 1, 3600, &[]).await;
    until(&w, "lossless", |r| r["verdict"] == "lossless").await;
    let mut app = w.cluster.app_conn(0).await.expect("app on db1");
    app.query_drop("CREATE TABLE lagging (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)")
        .await
        .expect("create");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if app
                    .query_drop("INSERT INTO lagging (v) VALUES (REPEAT('x', 2000))")
                    .await
                    .is_err()
                {
                    return; // the world is going down
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let net = w.net.as_ref().expect("net");
    net.slow_replication(0, &[net.host(2).ip], 16)
        .await
        .expect("slow db3's stream");

    // db3 falls behind, db2 keeps up.
    let lag_of = |s: &altair_status::Status, host: &str| {
        s.clusters[0]
            .hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| (h.replication_lag_ms, h.seconds_behind))
    };
    let took = w
        .wait_until(
            "db3's end-to-end lag reaches 3 s",
            Duration::from_secs(30),
            |s| {
                lag_of(s, "db3")
                    .and_then(|l| l.0)
                    .is_some_and(|ms| ms >= 3_000)
            },
        )
        .await;
    let s = w.status().await.expect("status");
    let (db3, db2) = (lag_of(&s, "db3"), lag_of(&s, "db2"));
    eprintln!(
        "slowed stream: db3 e2e {:?} ms (Seconds_Behind_Master {:?}), db2 e2e {:?} ms, {:?} after the slowdown",
        db3.and_then(|l| l.0),
        db3.and_then(|l| l.1),
        db2.and_then(|l| l.0),
        took
    );
    assert!(
        db2.and_then(|l| l.0).is_some_and(|ms| ms <= 2_000),
        "db2 is in step, yet its lag reads {db2:?}"
    );
    let m = scrape(&w.fleet.monitors[0].metrics).await;
    let key = "altair_replication_lag_milliseconds{cluster=\"c1\",host=\"db3\"}";
    assert!(
        m.get(key).is_some_and(|v| *v >= 3_000.0),
        "{key} = {:?}",
        m.get(key)
    );
    let text = stdout(&ctl(&w, &["status", "c1"]));
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("db3 ") && l.contains(" e2e ")),
        "status shows no end-to-end lag for db3:\n{text}"
    );

    // The stream at full speed again: db3 catches up.
    net.heal(0).await.expect("heal");
    let healed = w
        .wait_until("db3 in step again", Duration::from_secs(60), |s| {
            lag_of(s, "db3")
                .and_then(|l| l.0)
                .is_some_and(|ms| ms <= 2_000)
        })
        .await;
    eprintln!("healed: db3 in step again {healed:?} later");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.expect("writer");
}
