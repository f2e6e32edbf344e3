//! Storm figures (`make bench`, needs root): 10 clusters of 3 real mariadbd behind one
//! leader. Five primaries killed one at a time are the reference (median); then every
//! cluster's primary is killed at the same instant. Reported: kill → DNS moved for each
//! (every name polled at once every 5 ms), the last ÷ the one, each stage's p50 and max
//! alone and in the storm, and each failover's timeline. `ALTAIR_BENCH_CLUSTERS` (default
//! 10) sets the clusters, `ALTAIR_BENCH_SINGLES` (default 5) how many fail over alone.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use altair_e2e::multi::{FailoverTrace, Fleetwide, unix_ms};

/// The environment variable `name` as a count, `default` when unset or not a number.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Each stage's p50 and max over `failovers`, one line per stage.
fn print_stages(title: &str, failovers: &[FailoverTrace]) {
    let mut stages: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for st in failovers.iter().flat_map(|f| &f.audit.journal.stages) {
        stages
            .entry(st.name.as_str())
            .or_default()
            .push(st.duration_ms as f64);
    }
    println!("{title} (ms): p50 / max");
    for (name, mut v) in stages {
        v.sort_by(f64::total_cmp);
        println!(
            "  {name:<12} {:>7.0} {:>7.0}",
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clusters = knob("ALTAIR_BENCH_CLUSTERS", 10).max(1);
    let singles_n = knob("ALTAIR_BENCH_SINGLES", 5).clamp(1, clusters);
    let started = Instant::now();
    let w = Fleetwide::start(clusters, 3, 0, "").await;
    eprintln!("{clusters} clusters up in {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The reference: the first clusters failed over alone, one after another (median).
    let mut singles = Vec::new();
    let mut single_traces = Vec::new();
    for k in 0..singles_n {
        let old = w.primary_dns(k).await.expect("a primary");
        let killed_unix = unix_ms();
        let killed = Instant::now();
        w.kill_mysqld(k, old);
        let (_, moved) = w.wait_dns_moved(k, old, Duration::from_secs(60)).await;
        singles.push((moved - killed).as_secs_f64() * 1000.0);
        w.wait_until_all_writable(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(t) = w.last_failover(k).await {
            single_traces.push((t.timeline(killed_unix, *singles.last().unwrap_or(&0.0)), t));
        }
    }
    let mut sorted = singles.clone();
    sorted.sort_by(f64::total_cmp);
    let single = sorted[singles_n / 2];

    let mut olds = Vec::new();
    for k in 0..clusters {
        olds.push((k, w.primary_dns(k).await.expect("a primary")));
    }
    let killed_unix = unix_ms();
    let killed = Instant::now();
    for &(k, ip) in &olds {
        w.kill_mysqld(k, ip);
    }
    let moved: Vec<f64> = w
        .wait_all_dns_moved(&olds, Duration::from_secs(120))
        .await
        .into_iter()
        .map(|(_, moved)| (moved - killed).as_secs_f64() * 1000.0)
        .collect();
    let mut times = moved.clone();
    // Where the time went: each failover's stages, from its audit record (written
    // right after the DNS move).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut storm_traces = Vec::new();
    for (k, moved) in moved.iter().enumerate() {
        if let Some(t) = w.last_failover(k).await {
            storm_traces.push((t.timeline(killed_unix, *moved), t));
        }
    }
    times.sort_by(f64::total_cmp);
    let last = times[times.len() - 1];
    println!(
        "benchmark: storm, {clusters} clusters of 3 hosts, every primary's mysqld killed at once"
    );
    println!(
        "{:<40} {:>9.0} ms ({singles:.0?})",
        format!("one cluster alone, median of {singles_n}"),
        single
    );
    println!("{:<40} {:>9.0} ms", "storm: first DNS move", times[0]);
    println!("{:<40} {:>9.0} ms", "storm: median", times[times.len() / 2]);
    println!("{:<40} {:>9.0} ms", "storm: last DNS move", last);
    println!(
        "{:<40} {:>9.2}",
        "last ÷ one (goal ≤ 1.3, bound 2)",
        last / single
    );
    for (title, traces) in [
        (format!("the {singles_n} failovers alone"), &single_traces),
        (
            format!("the {clusters} failovers of the storm"),
            &storm_traces,
        ),
    ] {
        let failovers: Vec<FailoverTrace> = traces.iter().map(|(_, t)| t.clone()).collect();
        print_stages(&format!("stages of {title}"), &failovers);
        println!("{title}, ms after the kill:");
        for (line, _) in traces {
            println!("  {line}");
        }
    }
}
