//! How long the real components take to come up on this machine: a 3-host replicated
//! MariaDB set + ZooKeeper + BIND (the sandbox), and a 3-node ZooKeeper ensemble.
//! Run with `make bench`.

#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use altair_testkit::sandbox::{Sandbox, SandboxOptions};
use altair_testkit::zookeeper::ZooKeeper;

const RUNS: usize = 5;

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<52} n={:<3} p50={:>7.0} ms  max={:>7.0} ms",
        samples.len(),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let work = tempfile::tempdir().expect("tempdir");
    let mode = if altair_testkit::is_root() {
        "network namespaces"
    } else {
        "loopback"
    };
    let mut sandbox = Vec::new();
    let mut stop = Vec::new();
    for i in 0..RUNS {
        let started = Instant::now();
        let s = Sandbox::start(SandboxOptions::new(work.path().join(format!("run{i}"))))
            .await
            .expect("sandbox starts");
        sandbox.push(started.elapsed());
        let started = Instant::now();
        drop(s);
        stop.push(started.elapsed());
    }
    let mut ensemble = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let zk = ZooKeeper::ensemble(IpAddr::V4(Ipv4Addr::LOCALHOST), 3)
            .await
            .expect("ensemble");
        ensemble.push(started.elapsed());
        drop(zk);
    }
    println!("benchmark                                            result");
    summary(
        &format!("sandbox start: 3 MariaDB ({mode}) + ZK + BIND"),
        sandbox,
    );
    summary("sandbox stop (kill, reap, remove)", stop);
    summary("ZooKeeper 3-node ensemble start (all serving)", ensemble);
}
