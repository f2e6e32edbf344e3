//! A stuck failover (issue "A failover that can neither split the brain nor get stuck"):
//! a forced failover with every replica's mysqld down can never choose a candidate; it
//! retries with backoff (not every 100 ms), the journal-age metric shows it, and
//! `altairctl abort` ends it without a new primary, audited with the reason, automatic
//! failover held until `ack`. Real mariadbd, agents, monitors, orchestrator, ZooKeeper.

use std::time::{Duration, Instant};

use altair_e2e::ops::{ctl, history_with_outcome, kill_mysqld, scrape};
use altair_e2e::world::World;
use altair_e2e::{stderr, stdout};
use altair_testkit::mariadb::sql::query_value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_failover_backs_off_and_an_operator_aborts_it_before_promotion() {
    let w = World::start_ha(3, 1, 1, 3600, &[]).await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    // No candidate can ever be promoted: both replicas' mysqld are down.
    kill_mysqld(&w, 1);
    kill_mysqld(&w, 2);
    let forced = std::process::Command::new(altair_e2e::bin("altairctl"))
        .arg("--config")
        .arg(&w.ctl_config)
        .args(["failover", "c1", "--force", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("altairctl failover");

    // The choose step fails and is retried with growing waits, not in a tight loop.
    let metrics = w.fleet.orchestrators[0].metrics.clone();
    let started = Instant::now();
    let choose_errors = "altair_failover_step_errors_total{step=\"choose\"}";
    loop {
        let m = scrape(&metrics).await;
        if m.get(choose_errors).copied().unwrap_or(0.0) >= 3.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "choose did not fail 3 times in 30 s: {:?}",
            m.get(choose_errors)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // 200 + 400 ms of backoff before the third try: not 100 ms apart.
    let tries_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = scrape(&metrics).await;
    let errors = m.get(choose_errors).copied().unwrap_or(0.0);
    assert!(
        errors <= 8.0,
        "{errors} choose failures within {:?}: no backoff",
        tries_in + Duration::from_secs(2)
    );
    let age = m
        .get("altair_failover_journal_age_seconds{cluster=\"c1\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(
        age >= 1.0,
        "the journal-age metric shows no stuck failover: {age}"
    );

    // An abort needs a reason; then it ends the failover.
    let out = ctl(&w, &["abort", "c1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = ctl(&w, &["abort", "c1", "--reason", "both replicas are down"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("aborted"), "{}", stdout(&out));

    // The forced failover's caller learns it ended without a new primary.
    let forced = forced.wait_with_output().expect("altairctl failover ends");
    assert_eq!(forced.status.code(), Some(1), "{}", stderr(&forced));

    let record = history_with_outcome(&w, "aborted").await;
    let detail = record["reason"].as_str().unwrap_or("");
    assert!(detail.contains("both replicas are down"), "{record}");
    assert!(
        record["new_primary"].is_null() || record["new_primary"] == "",
        "{record}"
    );
    // Nothing was promoted around the old primary; it stays fenced (read-only).
    let mut c = w.cluster.admin_conn(0).await.expect("admin on db1");
    let ro = query_value(&mut c, "SELECT @@read_only")
        .await
        .expect("read_only");
    assert_eq!(
        ro.as_deref(),
        Some("1"),
        "the fenced primary was made writable"
    );
    // Automatic failover is held until an operator acknowledges; no failover runs.
    let s = w.status().await.expect("status");
    assert!(
        s.clusters[0].failover_blocked.is_some(),
        "automatic failover is not held after an abort"
    );
    // The leader's next pass sees no journal any more.
    let started = Instant::now();
    let m = loop {
        let m = scrape(&metrics).await;
        let age = m
            .get("altair_failover_journal_age_seconds{cluster=\"c1\"}")
            .copied();
        if age == Some(0.0) {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the journal-age metric still says {age:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        m.get("altair_failovers_total{cluster=\"c1\",kind=\"forced\",outcome=\"aborted\"}")
            .copied(),
        Some(1.0)
    );
    // Nothing left to abort.
    let out = ctl(&w, &["abort", "c1", "--reason", "again"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no failover is in progress"),
        "{}",
        stderr(&out)
    );
}
