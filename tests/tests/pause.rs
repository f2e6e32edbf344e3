//! Maintenance pause (issue "Operating a fleet"): while a cluster is paused a dead
//! primary is not failed over; resume fails it over at once; a pause with a duration
//! ends by itself; an operator's forced failover still works and says the cluster was
//! paused; status, JSON, metrics and the audit trail show who paused, why, until when.
//! Real mariadbd, agents, monitor, orchestrator, ZooKeeper and BIND.

use std::time::{Duration, Instant};

use altair_e2e::ops::{ctl, ctl_json, host_index, kill_mysqld, scrape, wait_dns_moved};
use altair_e2e::world::World;
use altair_e2e::{stderr, stdout};

/// The audit records of c1 with `outcome`, newest first.
fn records(w: &World, outcome: &str) -> Vec<serde_json::Value> {
    let json = ctl_json(w, &["--json", "history", "c1", "--limit", "50"], 0);
    json.as_array()
        .expect("history is a list")
        .iter()
        .filter(|r| r["outcome"] == outcome)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_cluster_is_not_failed_over_until_resumed() {
    let w = World::start_ha(3, 1, 1, 3600, &[]).await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;

    // Bad requests are refused with the reason, and change nothing.
    let out = ctl(&w, &["pause", "c1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = ctl(
        &w,
        &["pause", "c1", "--for", "ten minutes", "--reason", "x"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ten minutes"), "{}", stderr(&out));
    let out = ctl(&w, &["pause", "c1", "--for", "9d", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("week"), "{}", stderr(&out));
    let out = ctl(&w, &["pause", "nosuch", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        w.status().await.expect("status").clusters[0]
            .paused
            .is_none()
    );

    let out = ctl(&w, &["pause", "c1", "--reason", "kernel upgrade on db1"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let s = ctl_json(&w, &["--json", "status"], 0);
    let p = &s["clusters"][0]["paused"];
    assert_eq!(p["reason"], "kernel upgrade on db1", "{s}");
    assert!(p["by"].as_str().unwrap_or("").contains("operator"), "{s}");
    assert!(p["until_unix_ms"].is_null(), "{s}");
    let text = stdout(&ctl(&w, &["status"]));
    assert!(text.contains("PAUSED by"), "{text}");
    let metrics = w.fleet.orchestrators[0].metrics.clone();
    let paused_metric = |m: &std::collections::BTreeMap<String, f64>| {
        m.iter()
            .find(|(k, _)| k.starts_with("altair_cluster_paused{") && k.contains("cluster=\"c1\""))
            .map(|(k, v)| (k.clone(), *v))
    };
    let started = Instant::now();
    loop {
        if let Some((k, v)) = paused_metric(&scrape(&metrics).await) {
            assert_eq!(v, 1.0);
            assert!(k.contains("reason=\"kernel upgrade on db1\""), "{k}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no altair_cluster_paused series for c1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The primary's mysqld dies: detected, but nothing automatic happens for 20 s.
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    kill_mysqld(&w, 0);
    w.wait_health("db1", "mysql_down", Duration::from_secs(20))
        .await;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(20) {
        let s = w.status().await.expect("status");
        assert_eq!(s.clusters[0].epoch, Some(1), "failed over while paused");
        assert!(s.clusters[0].failover_in_progress.is_none());
        assert_eq!(
            w.primary_dns().await,
            vec![old_ip],
            "DNS moved while paused"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Resume: it fails over now, within the usual time.
    let resumed = Instant::now();
    let out = ctl(&w, &["resume", "c1"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (new_ip, took) = wait_dns_moved(&w, old_ip, Duration::from_secs(30)).await;
    eprintln!(
        "pause: DNS moved {took:?} after resume ({:?} with the call)",
        resumed.elapsed()
    );
    let mut app = w
        .cluster
        .app_conn(host_index(&w, new_ip))
        .await
        .expect("app on the new primary");
    mysql_async::prelude::Queryable::query_drop(&mut app, "CREATE TABLE after_resume (id INT)")
        .await
        .expect("the new primary takes writes");
    assert!(paused_metric(&scrape(&metrics).await).is_none());
    let paused = records(&w, "paused");
    assert!(
        paused[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("kernel upgrade on db1"),
        "{paused:?}"
    );
    let resumed = records(&w, "resumed");
    assert!(
        resumed[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("resumed by operator"),
        "{resumed:?}"
    );

    // Paused again: an operator's forced failover still works and says so; the fenced
    // old primary is not rejoined while the pause lasts.
    let out = ctl(&w, &["pause", "--all", "c1", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = ctl(
        &w,
        &["pause", "c1", "--for", "1h", "--reason", "network work"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&ctl(&w, &["status"]));
    assert!(
        text.contains("PAUSED by") && text.contains("more"),
        "{text}"
    );
    let out = ctl(&w, &["--json", "failover", "c1", "--force", "--yes"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let record = altair_e2e::ops::json(&out);
    assert_eq!(record["outcome"], "succeeded", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .unwrap_or("")
            .contains("paused by"),
        "{record}"
    );
    let fenced = record["old_primary"]
        .as_str()
        .expect("old primary")
        .to_owned();
    let third_ip = {
        let (ip, _) = wait_dns_moved(&w, new_ip, Duration::from_secs(10)).await;
        ip
    };
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(5) {
        let s = w.status().await.expect("status");
        assert!(
            s.clusters[0].needs_rejoin.contains(&fenced),
            "{fenced} was rejoined while the cluster was paused: {:?}",
            s.clusters[0].needs_rejoin
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Resuming every cluster: the fenced old primary rejoins by itself; a second resume
    // has nothing to do.
    let out = ctl_json(&w, &["--json", "resume", "--all"], 0);
    assert_eq!(out["clusters"], serde_json::json!(["c1"]), "{out}");
    w.wait_until("the old primary rejoined", Duration::from_secs(20), |s| {
        !s.clusters[0].needs_rejoin.contains(&fenced)
    })
    .await;
    let out = ctl_json(&w, &["--json", "resume", "c1"], 0);
    assert_eq!(out["clusters"], serde_json::json!([]), "{out}");

    // A timed pause holds an automatic failover until it ends, then the failover runs
    // by itself and the audit says the pause ran out.
    let out = ctl(&w, &["ack", "c1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let paused_at = Instant::now();
    let out = ctl_json(
        &w,
        &[
            "--json", "pause", "--all", "--for", "8s", "--reason", "short",
        ],
        0,
    );
    assert_eq!(out["clusters"], serde_json::json!(["c1"]), "{out}");
    assert_eq!(out["for_seconds"], 8, "{out}");
    let epoch = w.status().await.expect("status").clusters[0].epoch;
    kill_mysqld(&w, host_index(&w, third_ip));
    while paused_at.elapsed() < Duration::from_secs(7) {
        let s = w.status().await.expect("status");
        assert_eq!(
            s.clusters[0].epoch, epoch,
            "failed over during the timed pause"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, _) = wait_dns_moved(&w, third_ip, Duration::from_secs(30)).await;
    eprintln!(
        "pause: the timed pause ended and the failover ran {:?} after it began",
        paused_at.elapsed()
    );
    assert!(
        records(&w, "resumed")
            .iter()
            .any(|r| r["reason"].as_str().unwrap_or("").contains("ran out")),
        "no audit record of the pause running out"
    );
    let maintenance = records(&w, "paused");
    assert!(
        maintenance.iter().all(|r| r["kind"] == "maintenance"),
        "{maintenance:?}"
    );
}
