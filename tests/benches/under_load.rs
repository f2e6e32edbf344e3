//! Figures under a real write load (`make bench`, root): sysbench `oltp_write_only` at
//! ~1,000 tx/s (4 threads, back-to-back 1 s runs that follow `primary.c1`) plus an id
//! writer that checks no acknowledged write is lost.
//! - semi_sync vs async: throughput and write latency of the same sysbench run;
//! - kill -9 of the primary's mysqld → new primary writable and DNS moved, replicas in
//!   step, and with a lagging replica (catch-up and salvage reported apart);
//! - planned switchover: the client's write pause.

#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_e2e::ops::{
    create_workload_table, ctl, history_with, host_index, ids_on, kill_mysqld, until_writable,
    workload,
};
use altair_e2e::sysbench::Target;
use altair_e2e::world::World;
use altair_testkit::fleet::FleetTiming;

const CRASH_RUNS: usize = 10;
const LAG_RUNS: usize = 3;
const SWITCHOVERS: usize = 10;
const RATE: u32 = 1_000;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn world(durability: &'static str, orchestrators: usize) -> World {
    let w = World::start_ha_with(
        3,
        1,
        orchestrators,
        3600,
        &[],
        FleetTiming {
            durability,
            ..FleetTiming::default()
        },
    )
    .await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
            && (durability == "async"
                || s.clusters[0].hosts.iter().any(|h| {
                    h.semi_sync.as_deref() == Some("waiting") && h.semi_sync_clients == Some(2)
                }))
    })
    .await;
    create_workload_table(&w).await;
    Target::of(&w)
        .prepare(w.net.as_ref().expect("net").host(0).ip)
        .await;
    w
}

struct Crash {
    total_ms: f64,
    catch_up_ms: f64,
    salvage_ms: f64,
    salvaged: u64,
    lost: usize,
    acked: usize,
    tps: f64,
}

/// One kill -9 under load; `lag_kbit` slows the binlog stream to the replicas first.
async fn crash_run(lag_kbit: Option<u32>) -> Crash {
    let w = world("async", 2).await;
    let net = w.net.as_ref().expect("net");
    let old = net.host(0).ip;
    if let Some(kbit) = lag_kbit {
        net.slow_replication(0, &[net.host(1).ip, net.host(2).ip], kbit)
            .await
            .expect("tc");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = Target::of(&w).keep_running(4, RATE, stop.clone());
    let load_started = Instant::now();
    let (acked, total) = tokio::join!(workload(&w, stop.clone()), async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let started = Instant::now();
        kill_mysqld(&w, 0);
        let total = until_writable(&w, old, started, "INSERT INTO w (id) VALUES (0)").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        total
    });
    let runs = load.await.expect("sysbench loop");
    let tps = runs.iter().map(|r| r.transactions).sum::<u64>() as f64
        / load_started.elapsed().as_secs_f64();
    let record = history_with(&w, 1).await;
    let stage = |name: &str| {
        record[0]["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name))
            .and_then(|s| s["duration_ms"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let new = host_index(&w, w.primary_dns().await[0]);
    let on_new: BTreeSet<u64> = ids_on(&w, new).await;
    let lost = acked
        .iter()
        .filter(|(id, _, _)| !on_new.contains(id))
        .count();
    Crash {
        total_ms: total.as_secs_f64() * 1000.0,
        catch_up_ms: stage("catch_up"),
        salvage_ms: stage("salvage"),
        salvaged: record[0]["transactions_salvaged"].as_u64().unwrap_or(0),
        lost,
        acked: acked.len(),
        tps,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // semi_sync vs async, the same sysbench run against the primary.
    let mut modes = Vec::new();
    for mode in ["async", "semi_sync"] {
        let w = world(mode, 1).await;
        let t = Target::of(&w);
        let ip = w.net.as_ref().expect("net").host(0).ip;
        let free50 = t.run(ip, 10, 4, 0, 50).await;
        let free99 = t.run(ip, 10, 4, 0, 99).await;
        let rate50 = t.run(ip, 10, 4, RATE, 50).await;
        let rate99 = t.run(ip, 10, 4, RATE, 99).await;
        eprintln!("{mode}: {free50:?} {free99:?} {rate50:?} {rate99:?}");
        modes.push((mode, free50, free99, rate50, rate99));
    }

    let mut crashes = Vec::new();
    for run in 0..CRASH_RUNS {
        let c = crash_run(None).await;
        eprintln!(
            "crash run {}/{CRASH_RUNS}: {:.0} ms, {:.0} tx/s, {} lost of {}",
            run + 1,
            c.total_ms,
            c.tps,
            c.lost,
            c.acked
        );
        crashes.push(c);
    }
    let mut lagging = Vec::new();
    for run in 0..LAG_RUNS {
        let c = crash_run(Some(2_000)).await;
        eprintln!(
            "lagging run {}/{LAG_RUNS}: {:.0} ms, catch-up {:.0} ms, salvage {:.0} ms ({} tx), {} lost",
            run + 1,
            c.total_ms,
            c.catch_up_ms,
            c.salvage_ms,
            c.salvaged,
            c.lost
        );
        lagging.push(c);
    }

    // Switchovers back and forth under the load; the pause is the largest gap between two
    // of the id writer's acknowledgements around each.
    let w = world("async", 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = Target::of(&w).keep_running(4, RATE, stop.clone());
    let mut windows = Vec::new();
    let (acked, ()) = tokio::join!(workload(&w, stop.clone()), async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for i in 0..SWITCHOVERS {
            let started = Instant::now();
            let out = ctl(&w, &["switchover", "c1"]);
            assert!(
                out.status.success(),
                "switchover {i}: {}",
                altair_e2e::stderr(&out)
            );
            windows.push((started, Instant::now()));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        stop.store(true, Ordering::SeqCst);
    });
    let runs = load.await.expect("sysbench loop");
    let mut pauses: Vec<f64> = windows
        .iter()
        .map(|(from, to)| {
            let times: Vec<Instant> = acked
                .iter()
                .map(|(_, _, at)| *at)
                .filter(|at| {
                    *at >= *from - Duration::from_secs(1) && *at <= *to + Duration::from_secs(1)
                })
                .collect();
            times
                .windows(2)
                .map(|p| (p[1] - p[0]).as_secs_f64() * 1000.0)
                .fold(0.0, f64::max)
        })
        .collect();
    history_with(&w, SWITCHOVERS).await;
    let mut lost_switch = 0;
    let final_new = host_index(&w, w.primary_dns().await[0]);
    let on_final = ids_on(&w, final_new).await;
    for (id, _, _) in &acked {
        if !on_final.contains(id) {
            lost_switch += 1;
        }
    }
    let sw_tps =
        runs.iter().map(|r| r.transactions).sum::<u64>() as f64 / (runs.len().max(1) as f64);

    println!(
        "benchmark: semi_sync vs async, sysbench oltp_write_only, 4 threads, 10 s each (3 hosts in namespaces, release build)"
    );
    println!(
        "{:<10} {:>12} {:>10} {:>10} {:>16} {:>10} {:>10}",
        "mode", "max tx/s", "p50 ms", "p99 ms", "at 1000/s: tx/s", "p50 ms", "p99 ms"
    );
    for (mode, f50, f99, r50, r99) in &modes {
        println!(
            "{mode:<10} {:>12.0} {:>10.2} {:>10.2} {:>16.0} {:>10.2} {:>10.2}",
            f50.tps,
            f50.percentile_ms,
            f99.percentile_ms,
            r50.tps,
            r50.percentile_ms,
            r99.percentile_ms
        );
    }
    if let [(_, a50, a99, ar50, ar99), (_, s50, s99, sr50, sr99)] = modes.as_slice() {
        println!(
            "semi_sync ÷ async: max tx/s {:.2}, p50 {:.2}, p99 {:.2}; at 1000/s: p50 {:.2}, p99 {:.2}",
            s50.tps / a50.tps,
            s50.percentile_ms / a50.percentile_ms,
            s99.percentile_ms / a99.percentile_ms,
            sr50.percentile_ms / ar50.percentile_ms,
            sr99.percentile_ms / ar99.percentile_ms
        );
    }
    println!();
    let mut totals: Vec<f64> = crashes.iter().map(|c| c.total_ms).collect();
    let mut tps: Vec<f64> = crashes.iter().map(|c| c.tps).collect();
    println!(
        "benchmark: kill -9 of the primary's mysqld under sysbench at {RATE} tx/s target, replicas in step, {CRASH_RUNS} runs"
    );
    println!(
        "kill → new primary writable and DNS moved: p50 {:.0} ms, p99 {:.0} ms; load achieved p50 {:.0} tx/s; acknowledged writes lost: {} of {}",
        pct(&mut totals.clone(), 0.5),
        pct(&mut totals, 0.99),
        pct(&mut tps, 0.5),
        crashes.iter().map(|c| c.lost).sum::<usize>(),
        crashes.iter().map(|c| c.acked).sum::<usize>()
    );
    let mut cu: Vec<f64> = crashes.iter().map(|c| c.catch_up_ms).collect();
    let mut sv: Vec<f64> = crashes.iter().map(|c| c.salvage_ms).collect();
    println!(
        "  catch-up p50 {:.0} ms, salvage p50 {:.0} ms",
        pct(&mut cu, 0.5),
        pct(&mut sv, 0.5)
    );
    println!();
    println!(
        "benchmark: the same with replication slowed to 2 Mbit/s (a lagging replica), {LAG_RUNS} runs"
    );
    for (i, c) in lagging.iter().enumerate() {
        println!(
            "  run {}: total {:.0} ms = … catch-up {:.0} ms (relay log the candidate had) + salvage {:.0} ms ({} transactions from the old binlog); lost {} of {}",
            i + 1,
            c.total_ms,
            c.catch_up_ms,
            c.salvage_ms,
            c.salvaged,
            c.lost,
            c.acked
        );
    }
    println!();
    println!(
        "benchmark: {SWITCHOVERS} planned switchovers under sysbench ({sw_tps:.0} tx per 1 s run), drain before fencing"
    );
    println!(
        "client write pause: p50 {:.0} ms, p99 {:.0} ms; acknowledged writes lost: {lost_switch} of {}",
        pct(&mut pauses.clone(), 0.5),
        pct(&mut pauses, 0.99),
        acked.len()
    );
}
