//! Planned switchover figures (`make bench`, needs root for network namespaces): 20
//! switchovers back and forth on one cluster while a client writes continuously through
//! the DNS name (resolved from the authoritative server on every reconnect, so the DNS
//! TTL is left aside). Reported: the write pause the client saw (largest gap between two
//! acknowledged writes around each switchover), altairctl's wall time, per-stage times.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_e2e::ops::{create_workload_table, ctl, workload};
use altair_e2e::world::World;

const RUNS: usize = 20;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let w = World::start_ha(3, 1, 1, 3600, &[]).await;
    create_workload_table(&w).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, w) = (stop.clone(), &w);
        async move { workload(w, stop).await }
    };
    let operator = async {
        let mut runs = Vec::new();
        for run in 0..RUNS {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let started = Instant::now();
            let out = tokio::task::block_in_place(|| ctl(&w, &["--json", "switchover", "c1"]));
            let took = started.elapsed();
            assert!(
                out.status.success(),
                "switchover {run}: {}",
                altair_e2e::stderr(&out)
            );
            let record: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("JSON record");
            runs.push((started, took, record));
            eprintln!("switchover {}/{RUNS}: altairctl {took:?}", run + 1);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::SeqCst);
        runs
    };
    let (acked, runs) = tokio::join!(writer, operator);
    let mut pauses = Vec::new();
    let mut walls = Vec::new();
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (started, took, record) in &runs {
        let window_end = *started + *took + Duration::from_secs(1);
        let pause = acked
            .windows(2)
            .filter(|p| p[1].2 > *started && p[0].2 < window_end)
            .map(|p| p[1].2 - p[0].2)
            .max()
            .unwrap_or_default();
        pauses.push(pause.as_secs_f64() * 1000.0);
        walls.push(took.as_secs_f64() * 1000.0);
        for s in record["stages"].as_array().into_iter().flatten() {
            if let (Some(n), Some(d)) = (s["name"].as_str(), s["duration_ms"].as_f64()) {
                stages.entry(n.to_owned()).or_default().push(d);
            }
        }
    }
    println!(
        "benchmark: planned switchover, {RUNS} runs (3 hosts in namespaces), {} writes acknowledged",
        acked.len()
    );
    println!("{:<36} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    println!(
        "{:<36} {:>9.0} {:>9.0}",
        "client write pause (DNS TTL aside)",
        pct(&mut pauses, 0.5),
        pct(&mut pauses, 0.99)
    );
    println!(
        "{:<36} {:>9.0} {:>9.0}",
        "altairctl switchover wall time",
        pct(&mut walls, 0.5),
        pct(&mut walls, 0.99)
    );
    for name in [
        "fence", "choose", "catch_up", "salvage", "promote", "repoint", "publish", "record",
    ] {
        if let Some(v) = stages.get_mut(name) {
            println!(
                "{:<36} {:>9.0} {:>9.0}",
                format!("stage {name}"),
                pct(v, 0.5),
                pct(v, 0.99)
            );
        }
    }
}
