//! Failover admission control (issue "Operating a fleet"), with real components: four
//! clusters whose primaries are all in `dc1`; three of those primary hosts are cut off
//! at the same instant. That is a mass loss in one datacenter (3 of 4, with
//! `min_primaries = 2`): a hold is raised, its metric set and its hook run. c3 has a
//! replica in dc1 that still answers and cannot reach its primary — a witness — so c3
//! fails over at once; c1 and c2 (replicas only in dc2, on the observer's side) stay held
//! until `altairctl release dc1`, then fail over one at a time (a budget of one failover
//! per datacenter). c4's mysqld killed during the hold (its live agent reports
//! `mysql_down`) is not held. The hold ends by itself once no dc1 primary is unreachable.

use std::time::{Duration, Instant};

use altair_e2e::multi::{Fleetwide, name};
use altair_e2e::ops::scrape;
use altair_testkit::fleet::FleetTiming;

/// `altairctl --json history <cluster>`: the successful failover records.
fn succeeded(w: &Fleetwide, k: usize) -> Vec<serde_json::Value> {
    let out = w.ctl(&["--json", "history", &name(k)]);
    assert!(out.status.success(), "{}", altair_e2e::stderr(&out));
    let json: serde_json::Value =
        serde_json::from_str(&altair_e2e::stdout(&out)).expect("history JSON");
    json.as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["outcome"] == "succeeded")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The one successful failover of cluster `k`, once its record is written.
async fn the_failover(w: &Fleetwide, k: usize) -> serde_json::Value {
    let started = Instant::now();
    loop {
        if let Some(r) = succeeded(w, k).into_iter().next() {
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{}: no successful failover recorded",
            name(k)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the first sample whose name and labels contain every part.
fn sample(metrics: &std::collections::BTreeMap<String, f64>, parts: &[&str]) -> Option<f64> {
    metrics
        .iter()
        .find(|(k, _)| parts.iter().all(|p| k.contains(p)))
        .map(|(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_loss_in_one_datacenter_is_held_until_a_witness_confirms_or_an_operator_releases() {
    let _heavy = altair_e2e::heavy().await;
    let marker = tempfile::tempdir().expect("temp dir");
    let hook_file = marker.path().join("hold.json");
    let sections = format!(
        "[admission]\nmin_primaries = 2\nmax_failovers_per_datacenter = 1\nhook = [\"sh\", \"-c\", \"cat > {}\"]\n",
        hook_file.display()
    );
    let mut timing = FleetTiming::default();
    for (cluster, dcs) in [
        ("c1", ["dc1", "dc2"]),
        ("c2", ["dc1", "dc2"]),
        ("c3", ["dc1", "dc1"]),
        ("c4", ["dc1", "dc2"]),
    ] {
        timing.datacenters.insert(
            cluster.to_owned(),
            dcs.iter().map(|d| (*d).to_owned()).collect(),
        );
    }
    let w = Fleetwide::start_with(4, 2, 3600, &sections, timing).await;
    let metrics_addr = w.fleet.orchestrators[0].metrics.clone();
    // Host 2k is cluster k's primary (its first host).
    let olds: Vec<_> = (0..3).map(|k| w.net.host(2 * k).ip).collect();
    for (k, ip) in olds.iter().enumerate() {
        assert_eq!(w.primary_dns(k).await, Some(*ip), "{}'s primary", name(k));
    }

    // The three primaries' hosts go dark at once.
    let cut = Instant::now();
    for k in 0..3 {
        w.net
            .isolate(2 * k)
            .await
            .expect("isolate a primary's host");
    }

    // c3's replica beside its primary confirms the death: it fails over, hold or not.
    let (_, c3_moved) = w.wait_dns_moved(2, olds[2], Duration::from_secs(30)).await;
    let c3_took = c3_moved - cut;

    // c1 and c2 are held, and everyone can see it.
    let started = Instant::now();
    let status = loop {
        let s = w.status().await.expect("status");
        let held: Vec<&str> = s
            .clusters
            .iter()
            .filter(|c| c.failover_held_in.as_deref() == Some("dc1"))
            .map(|c| c.name.as_str())
            .collect();
        if held == ["c1", "c2"] {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "c1 and c2 were expected to be held in dc1; held: {held:?}; holds: {:?}\n{}",
            s.holds,
            w.fleet.warnings(5)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let hold = status
        .holds
        .iter()
        .find(|h| h.datacenter == "dc1")
        .expect("a hold on dc1 in status");
    assert!(hold.released_by.is_none(), "{hold:?}");
    assert!(
        hold.unreachable.len() >= 2 && hold.primaries == 4,
        "the hold counts the lost primaries of dc1: {hold:?}"
    );
    let m = scrape(&metrics_addr).await;
    assert_eq!(
        sample(&m, &["altair_admission_hold{", "dc1", "released=\"no\""]),
        Some(1.0),
        "the hold metric: {m:?}"
    );
    assert_eq!(
        sample(&m, &["altair_admission_held_failovers{", "dc1"]),
        Some(2.0),
        "held failovers metric"
    );
    let hook = std::fs::read_to_string(&hook_file).unwrap_or_default();
    assert!(
        hook.contains("\"admission_hold\"") && hook.contains("\"dc1\""),
        "the admission hook got the hold on stdin: {hook:?}"
    );
    let c3 = the_failover(&w, 2).await;
    let c3_notes = c3["notes"].to_string();
    assert!(
        c3_notes.contains("could not reach the primary"),
        "c3's record says a witness confirmed: {c3_notes}"
    );

    // A mysqld that dies under a live agent is not held (its host answers).
    let old4 = w.primary_dns(3).await.expect("c4's primary");
    let killed = Instant::now();
    w.kill_mysqld(3, old4);
    let (_, c4_moved) = w.wait_dns_moved(3, old4, Duration::from_secs(30)).await;
    let c4_took = c4_moved - killed;

    // Held means held: nothing moved for c1 and c2, at least 10 s after c3 failed over.
    let quiet_until = c3_moved + Duration::from_secs(10);
    while Instant::now() < quiet_until {
        for (k, old) in olds.iter().enumerate().take(2) {
            assert_eq!(
                w.primary_dns(k).await,
                Some(*old),
                "{} failed over while held",
                name(k)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(succeeded(&w, 0).is_empty() && succeeded(&w, 1).is_empty());

    // The operator knows dc1 lost power: release.
    let released = Instant::now();
    let out = w.ctl(&[
        "--json",
        "release",
        "dc1",
        "--reason",
        "rack power lost in dc1",
    ]);
    assert!(
        out.status.success(),
        "altairctl release: {}{}",
        altair_e2e::stdout(&out),
        altair_e2e::stderr(&out)
    );
    let answer: serde_json::Value =
        serde_json::from_str(&altair_e2e::stdout(&out)).expect("release JSON");
    assert_eq!(
        answer["clusters"],
        serde_json::json!(["c1", "c2"]),
        "{answer}"
    );
    let mut after_release = Vec::new();
    for (k, old) in olds.iter().enumerate().take(2) {
        let (_, moved) = w.wait_dns_moved(k, *old, Duration::from_secs(60)).await;
        after_release.push(moved - released);
    }
    w.wait_until_all_writable(Duration::from_secs(30)).await;
    let (r1, r2) = (the_failover(&w, 0).await, the_failover(&w, 1).await);
    for r in [&r1, &r2] {
        let notes = r["notes"].to_string();
        assert!(
            notes.contains("released by operator/altairctl") && notes.contains("rack power lost"),
            "a released failover's record says who released it and why: {notes}"
        );
    }
    // One failover per datacenter at a time: the two released ones did not overlap.
    let span = |r: &serde_json::Value| {
        (
            r["started_at_unix_ms"].as_i64().unwrap_or(0),
            r["finished_at_unix_ms"].as_i64().unwrap_or(0),
        )
    };
    let (a, b) = (span(&r1), span(&r2));
    let recorded = |r: &serde_json::Value| {
        r["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "fence"))
            .is_some()
    };
    assert!(recorded(&r1) && recorded(&r2));
    // Each failover's journal starts after detection and verification (its "fence"
    // stage); its record is written when it ends.
    let start = |r: &serde_json::Value| {
        let stages = r["stages"].as_array().cloned().unwrap_or_default();
        let before: i64 = stages
            .iter()
            .take_while(|s| s["name"] != "fence")
            .map(|s| s["duration_ms"].as_i64().unwrap_or(0))
            .sum();
        r["started_at_unix_ms"].as_i64().unwrap_or(0) + before
    };
    let (sa, sb) = (start(&r1), start(&r2));
    assert!(
        a.1 <= sb || b.1 <= sa,
        "with max_failovers_per_datacenter = 1 the released failovers overlapped: c1 {a:?} (journal from {sa}), c2 {b:?} (journal from {sb})"
    );

    // No dc1 primary is unreachable any more: the hold ends by itself.
    let started = Instant::now();
    loop {
        let s = w.status().await.expect("status");
        if s.holds.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hold did not end once every dc1 primary was replaced: {:?}",
            s.holds
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "admission: c3 (witness) DNS moved {c3_took:?} after the cut; c4 (mysql_down) {c4_took:?} after its kill; c1, c2 moved {after_release:?} after the release"
    );
}
