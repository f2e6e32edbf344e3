//! Storm figures (`make bench`, needs root): 10 clusters of 3 real mariadbd behind one
//! leader. Five primaries killed one at a time are the reference (median); then every cluster's primary is
//! killed at the same instant. Reported: kill → DNS moved for each, the last ÷ the one.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use altair_e2e::multi::Fleetwide;

const CLUSTERS: usize = 10;
const SINGLES: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let w = Fleetwide::start(CLUSTERS, 3, 0, "").await;
    eprintln!("{CLUSTERS} clusters up in {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The reference: SINGLES clusters failed over alone, one after another (median).
    let mut singles = Vec::new();
    for k in 0..SINGLES {
        let old = w.primary_dns(k).await.expect("a primary");
        let killed = Instant::now();
        w.kill_mysqld(k, old);
        let (_, moved) = w.wait_dns_moved(k, old, Duration::from_secs(60)).await;
        singles.push((moved - killed).as_secs_f64() * 1000.0);
        w.wait_until_all_writable(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    singles.sort_by(f64::total_cmp);
    let single = singles[SINGLES / 2];

    let mut olds = Vec::new();
    for k in 0..CLUSTERS {
        olds.push(w.primary_dns(k).await.expect("a primary"));
    }
    let killed = Instant::now();
    for (k, ip) in olds.iter().enumerate() {
        w.kill_mysqld(k, *ip);
    }
    let mut times = Vec::new();
    for (k, ip) in olds.iter().enumerate() {
        let (_, moved) = w.wait_dns_moved(k, *ip, Duration::from_secs(120)).await;
        times.push((moved - killed).as_secs_f64() * 1000.0);
    }
    // Where the time went: each storm failover's stages, from its audit record (written
    // right after the DNS move).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let zk = altair_zk::Zk::connect(
        &altair_core::config::ZkConfig {
            session_timeout_ms: 6_000,
            connect_timeout_ms: 2_000,
            ..altair_core::config::ZkConfig::new(w.zk.servers())
        },
        None,
    )
    .await
    .expect("zookeeper");
    let mut stages: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for k in 0..CLUSTERS {
        let c = altair_core::ClusterName::new(altair_e2e::multi::name(k)).expect("name");
        let l = zk.layout().clone();
        let mut ids = zk.children(&l.history(&c)).await.expect("history");
        ids.sort();
        let Some(id) = ids.last() else { continue };
        let a: Option<altair_core::registry::FailoverAudit> = zk
            .get_record("audit", &l.history_entry(&c, id))
            .await
            .expect("audit");
        for st in a.map(|a| a.journal.stages).unwrap_or_default() {
            stages
                .entry(st.name)
                .or_default()
                .push(st.duration_ms as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    let last = times[times.len() - 1];
    println!(
        "benchmark: storm, {CLUSTERS} clusters of 3 hosts, every primary's mysqld killed at once"
    );
    println!(
        "{:<40} {:>9.0} ms",
        format!("one cluster alone, median of {SINGLES}"),
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
    println!("storm stages (ms, over the {CLUSTERS} failovers): p50 / max");
    for (name, mut v) in stages {
        v.sort_by(f64::total_cmp);
        println!(
            "  {name:<12} {:>7.0} {:>7.0}",
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
}
