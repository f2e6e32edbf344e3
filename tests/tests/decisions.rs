//! The failover decisions on the hard path (issue "A failover that can neither split the
//! brain nor get stuck"): a partition that leaves the primary one replica, a monitor
//! partition followed by a crash, and a frozen primary that resumes. Real mariadbd in
//! namespaces, nft rules, SIGSTOP/SIGCONT, the real control plane.

use std::time::{Duration, Instant};

use altair_e2e::ops::{
    create_workload_table, host_index, monitor_endpoints, signal_mysqld, wait_dns_moved,
};
use altair_e2e::world::World;
use altair_testkit::checker::{ReadOnlySampler, judge};
use mysql_async::prelude::Queryable;

async fn start() -> World {
    let w = World::start_ha(3, 2, 2, 3600, &[]).await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    w
}

/// Waits for the DNS name to move; on timeout prints the control plane's logs and panics.
async fn dns_moved_or_logs(
    w: &World,
    from: std::net::Ipv4Addr,
    timeout: Duration,
) -> (std::net::Ipv4Addr, Duration) {
    let started = Instant::now();
    loop {
        if let Some(ip) = w
            .primary_dns()
            .await
            .first()
            .copied()
            .filter(|ip| *ip != from)
        {
            return (ip, started.elapsed());
        }
        if started.elapsed() > timeout {
            for entry in std::fs::read_dir(w.fleet.dir())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".log") {
                    continue;
                }
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                eprintln!("==== {name}");
                for l in text
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .filter(|l| !l.contains("heartbeat not sent"))
                    .take(40)
                {
                    eprintln!("{l}");
                }
            }
            panic!("primary.c1 still answers {from} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_cut_off_with_one_replica_fences_before_the_majority_promotes() {
    let w = start().await;
    let net = w.net.as_ref().expect("net");
    let (old_ip, lone) = (net.host(0).ip, net.host(2).ip);
    let sampler = ReadOnlySampler::start(&w.cluster);
    // {db1 (primary), db2} cut from {db3, the control plane}: db1 still reaches db2.
    let rest = [lone, net.gateway()];
    net.partition(0, &rest).await.expect("partition db1");
    net.partition(1, &rest).await.expect("partition db2");
    let started = Instant::now();
    let (new_ip, took) = dns_moved_or_logs(&w, old_ip, Duration::from_secs(40)).await;
    eprintln!("{{primary + one replica}} cut off: DNS moved to {new_ip} after {took:?}");
    assert_eq!(new_ip, lone, "only db3 is on the control plane's side");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rounds = sampler.stop().await;
    // Never two writable instances at once, sampled every 25 ms over unix sockets.
    let verdict = judge(&rounds, &[], 0, 2, &Default::default());
    verdict.assert_clean(true);
    let last = rounds.last().expect("a sampling round");
    assert_eq!(
        last.writable[0],
        Some(false),
        "the old primary is still writable {:?} after the cut",
        started.elapsed()
    );
    net.heal(0).await.expect("heal");
    net.heal(1).await.expect("heal");
    // After the heal both the old primary and the replica cut off with it (still fed by
    // it) replicate from the new primary: nothing is left diverging.
    w.wait_until(
        "db1 and db2 replicate from db3",
        Duration::from_secs(60),
        |s| {
            let c = &s.clusters[0];
            c.needs_rejoin.is_empty()
                && ["db1", "db2"].iter().all(|n| {
                    c.hosts
                        .iter()
                        .any(|h| h.name == *n && h.replicates_from.as_deref() == Some("db3"))
                })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_cut_from_the_primary_then_its_mysqld_killed_fails_over() {
    let w = start().await;
    let net = w.net.as_ref().expect("net");
    let old_ip = net.host(0).ip;
    // Row 4a: the monitors cannot reach the primary's agent; the orchestrator can.
    net.block_services(0, &monitor_endpoints(&w))
        .await
        .expect("block the monitors");
    w.wait_health("db1", "unreachable", Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.primary_dns().await,
        vec![old_ip],
        "row 4a must not fail over"
    );
    assert_eq!(w.status().await.expect("status").clusters[0].epoch, Some(1));
    // Now the primary really dies; its agent cannot tell the monitors.
    let killed = Instant::now();
    signal_mysqld(&w, 0, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    let interval = Duration::from_millis(2_000);
    let (_, took) = wait_dns_moved(&w, old_ip, 3 * interval + Duration::from_secs(2)).await;
    eprintln!(
        "row 4a then kill -9: DNS moved {took:?} after the kill ({:?})",
        killed.elapsed()
    );
    net.heal(0).await.expect("heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_that_resumes_acknowledges_no_write() {
    let w = start().await;
    create_workload_table(&w).await;
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    // A client's pooled connection to the primary, open before the freeze.
    let mut pooled = w.cluster.app_conn(0).await.expect("app on the primary");
    pooled
        .query_drop("INSERT INTO w (id) VALUES (1)")
        .await
        .expect("write before the freeze");
    signal_mysqld(&w, 0, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let (new_ip, took) = dns_moved_or_logs(&w, old_ip, Duration::from_secs(40)).await;
    eprintln!("frozen primary: DNS moved after {took:?}");
    let new = host_index(&w, new_ip);
    let mut app = w
        .cluster
        .app_conn(new)
        .await
        .expect("app on the new primary");
    app.query_drop("INSERT INTO w (id) VALUES (2)")
        .await
        .expect("the new primary takes a write");
    // The old one resumes (if it still exists): its pooled connection must not commit.
    let _ = signal_mysqld(&w, 0, nix::sys::signal::Signal::SIGCONT);
    let late = tokio::time::timeout(
        Duration::from_secs(5),
        pooled.query_drop("INSERT INTO w (id) VALUES (3)"),
    )
    .await;
    assert!(
        !matches!(late, Ok(Ok(()))),
        "the resumed old primary acknowledged a write after the new primary took one"
    );
    let mut app = w
        .cluster
        .app_conn(new)
        .await
        .expect("app on the new primary");
    let n: Option<u64> = app
        .query_first("SELECT COUNT(*) FROM w WHERE id = 3")
        .await
        .expect("count");
    assert_eq!(n, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_out_of_connections_keeps_serving_and_is_not_failed_over() {
    let w = start().await;
    create_workload_table(&w).await;
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    // Fill max_connections (300) with the application's connections; a new one is
    // refused ("Too many connections"), the open ones keep working.
    let mut held = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_secs(2),
            mysql_async::Conn::new(w.app_opts(old_ip)),
        )
        .await
        {
            Ok(Ok(c)) => held.push(c),
            _ => break,
        }
        assert!(held.len() <= 400, "max_connections never reached");
    }
    eprintln!(
        "{} application connections open; the next one was refused",
        held.len()
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    // No failover: the primary still serves its clients, the DNS name and epoch stay.
    assert_eq!(w.primary_dns().await, vec![old_ip]);
    assert_eq!(w.status().await.expect("status").clusters[0].epoch, Some(1));
    held[0]
        .query_drop("INSERT INTO w (id) VALUES (1)")
        .await
        .expect("an open connection still writes");
    drop(held);
}
