//! Fleet scale with real components (issue "Fleet scale"): several clusters behind one
//! leader. A storm of primaries killed at the same instant fails every cluster over
//! with nothing lost, about as fast as one; a failover stuck on one cluster (its
//! pre-failover hook hangs) does not delay another cluster's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_e2e::multi::{Fleetwide, name, unix_ms};

/// Every id a writer had acknowledged is on its cluster's primary now.
async fn nothing_lost(w: &Fleetwide, k: usize, acked: &[(u64, std::net::Ipv4Addr, Instant)]) {
    let primary = w.primary_dns(k).await.expect("a primary in DNS");
    let on_primary = w.ids_at(k, primary).await;
    let lost: Vec<u64> = acked
        .iter()
        .map(|(id, _, _)| *id)
        .filter(|id| !on_primary.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{}: {} of {} acknowledged writes are not on the primary {primary}: {:?}",
        name(k),
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_dead_primaries_fails_every_cluster_over_about_as_fast_as_one() {
    let _heavy = altair_e2e::heavy().await;
    const CLUSTERS: usize = 3;
    // No anti-flapping: every cluster fails over twice.
    let w = Fleetwide::start(CLUSTERS, 3, 0, "").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..CLUSTERS)
        .map(|k| tokio::spawn(w.writer(k, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The reference: each cluster alone, one after another (the median of the three:
    // one sample carries the agent's probe phase, 0–200 ms, as noise).
    let mut singles = Vec::new();
    for k in 0..CLUSTERS {
        let old = w.primary_dns(k).await.expect("a primary");
        let killed = Instant::now();
        w.kill_mysqld(k, old);
        let (_, moved) = w.wait_dns_moved(k, old, Duration::from_secs(60)).await;
        singles.push(moved - killed);
        w.wait_until_all_writable(Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut sorted = singles.clone();
    sorted.sort();
    let single = sorted[CLUSTERS / 2];
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The storm: every cluster's primary at the same instant.
    let mut olds = Vec::new();
    for k in 0..CLUSTERS {
        olds.push((k, w.primary_dns(k).await.expect("a primary")));
    }
    let killed_unix = unix_ms();
    let killed = Instant::now();
    for &(k, ip) in &olds {
        w.kill_mysqld(k, ip);
    }
    // Every name polled at once, every 5 ms: no cluster's time waits on another's poll.
    let times: Vec<Duration> = w
        .wait_all_dns_moved(&olds, Duration::from_secs(90))
        .await
        .into_iter()
        .map(|(_, moved)| moved - killed)
        .collect();
    w.wait_until_all_writable(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for h in writers {
        acked.push(h.await.expect("writer"));
    }
    // Where each failover of the storm spent its time (printed whether or not the
    // checks below hold).
    let mut lines = Vec::new();
    for (k, t) in times.iter().enumerate() {
        if let Some(f) = w.last_failover(k).await {
            lines.push(f.timeline(killed_unix, t.as_secs_f64() * 1000.0));
        }
    }
    eprintln!(
        "each failover of the storm, ms after the kill:\n{}",
        lines.join("\n")
    );
    for (k, a) in acked.iter().enumerate() {
        assert!(
            a.len() > 50,
            "{}: only {} writes acknowledged",
            name(k),
            a.len()
        );
        nothing_lost(&w, k, a).await;
    }
    let last = times.iter().max().copied().unwrap_or_default();
    eprintln!(
        "storm of {CLUSTERS}: kill -> DNS moved {:?}; last {last:?}; each alone {singles:?}, median {single:?} ({:.2}x); acked {:?}",
        times,
        last.as_secs_f64() / single.as_secs_f64(),
        acked.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        last <= single * 2,
        "the last of {CLUSTERS} simultaneous failovers took {last:?}, more than 2 x one cluster's (median of {singles:?}); each, ms after the kill:\n{}\n{}",
        lines.join("\n"),
        w.fleet.warnings(5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_stuck_on_one_cluster_does_not_delay_another() {
    let _heavy = altair_e2e::heavy().await;
    let marker = tempfile::tempdir().expect("temp dir");
    let started_file = marker.path().join("c2-hook-started");
    // c2's pre-failover hook hangs for 40 s (a paging system that does not answer);
    // everyone else's returns at once.
    let hook = format!(
        "[hooks]\ntimeout_ms = 60000\npre_failover = [\"sh\", \"-c\", \"if grep -q '\\\"cluster\\\":\\\"c2\\\"'; then touch {}; sleep 40; fi; exit 0\"]\n",
        started_file.display()
    );
    let w = Fleetwide::start(2, 2, 3600, &hook).await;
    let old2 = w.primary_dns(1).await.expect("c2's primary");
    w.kill_mysqld(1, old2);
    let waited = Instant::now();
    while !started_file.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "c2's failover never reached its pre-failover hook\n{}",
            w.fleet.warnings(5)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // c2's failover is stuck in its hook now: c1's primary dies.
    let old1 = w.primary_dns(0).await.expect("c1's primary");
    let killed = Instant::now();
    w.kill_mysqld(0, old1);
    let (_, moved) = w.wait_dns_moved(0, old1, Duration::from_secs(25)).await;
    let c1_took = moved - killed;
    assert_eq!(
        w.primary_dns(1).await,
        Some(old2),
        "c2 was expected to be still stuck in its hook"
    );
    // Once the hook returns, c2 finishes too.
    let (_, c2_moved) = w.wait_dns_moved(1, old2, Duration::from_secs(60)).await;
    eprintln!(
        "c1 failed over in {c1_took:?} while c2 was stuck; c2 finished {:?} after its kill",
        c2_moved - waited
    );
}
