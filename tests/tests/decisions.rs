//! The failover decisions on the hard path (issue "A failover that can neither split the
//! brain nor get stuck"): a partition that leaves the primary one replica, one that
//! leaves it its owning monitor, a monitor partition followed by a crash, and a frozen
//! primary that resumes. Real mariadbd in
//! namespaces, nft rules, SIGSTOP/SIGCONT, the real control plane.

use std::time::{Duration, Instant};

use altair_e2e::ops::{
    create_workload_table, host_index, monitor_endpoints, owning_monitor_endpoint, signal_mysqld,
    wait_dns_moved,
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

/// Cuts {db1 (the primary), db2} off from {db3, the control plane} — db1 still reaches
/// db2 — and checks what a user would: the DNS name moves to db3, at no sampled instant
/// (every 25 ms over unix sockets) are two instances writable, and the old primary is
/// read-only 2 s after the move (`sampler` may have been started earlier: its whole run
/// is judged). Returns with the partition still in place.
async fn cut_primary_with_one_replica(w: &World, sampler: ReadOnlySampler, what: &str) {
    let net = w.net.as_ref().expect("net");
    let (old_ip, lone) = (net.host(0).ip, net.host(2).ip);
    let rest = [lone, net.gateway()];
    net.partition(0, &rest).await.expect("partition db1");
    net.partition(1, &rest).await.expect("partition db2");
    let started = Instant::now();
    let (new_ip, took) = dns_moved_or_logs(w, old_ip, Duration::from_secs(40)).await;
    eprintln!("{what}: DNS moved to {new_ip} after {took:?}");
    assert_eq!(new_ip, lone, "only db3 is on the control plane's side");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rounds = sampler.stop().await;
    let verdict = judge(&rounds, &[], 0, 2, &Default::default());
    verdict.assert_clean(true);
    let last = rounds.last().expect("a sampling round");
    assert_eq!(
        last.writable[0],
        Some(false),
        "the old primary is still writable {:?} after the cut ({what})",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_cut_off_with_one_replica_fences_before_the_majority_promotes() {
    let w = start().await;
    let sampler = ReadOnlySampler::start(&w.cluster);
    cut_primary_with_one_replica(&w, sampler, "{primary + one replica} cut off").await;
    let net = w.net.as_ref().expect("net");
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

/// The monitors lose the primary's agent first (row 4a: no failover, the primary stays
/// writable because it reaches every replica), then the primary is cut off with one
/// replica. Its last lease is seconds old by then, but its failsafe rounds reached every
/// replica until the second cut: promotion must wait from that round, not from the
/// lease (the replicas say when they last heard from the primary's host). Dated from
/// the lease, the majority promoted right after verifying while the primary stayed
/// writable for its whole bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_lost_its_monitors_first_then_a_replica_fences_before_the_majority_promotes()
{
    // Re-verified often, so the verification that finds it cut off comes right after
    // the second cut, well inside the primary's bound.
    let w = World::start_ha(
        3,
        2,
        2,
        3600,
        &[(
            "ALTAIR_ORCHESTRATOR__ORCHESTRATOR__REVERIFY_INTERVAL_MS",
            "300",
        )],
    )
    .await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let net = w.net.as_ref().expect("net");
    let old_ip = net.host(0).ip;
    let sampler = ReadOnlySampler::start(&w.cluster);
    net.block_services(0, &monitor_endpoints(&w))
        .await
        .expect("block the monitors");
    w.wait_health("db1", "unreachable", Duration::from_secs(20))
        .await;
    // Verified alive (every replica reaches it), its lease long gone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        w.primary_dns().await,
        vec![old_ip],
        "row 4a must not fail over"
    );
    cut_primary_with_one_replica(
        &w,
        sampler,
        "monitors cut, then {primary + one replica} cut off",
    )
    .await;
    net.heal(0).await.expect("heal");
    net.heal(1).await.expect("heal");
}

/// {the primary + the monitor that owns the cluster} cut from {the replicas, the other
/// monitor, the orchestrators, ZooKeeper}: the owning monitor still holds its ZooKeeper
/// session and accepts the primary's heartbeats, so the primary keeps its lease. Whatever
/// the control plane then does, at no instant are two instances writable, and after the
/// heal the cluster has one primary that every other host replicates from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_cut_off_with_its_owning_monitor_never_splits_the_brain() {
    let w = start().await;
    let net = w.net.as_ref().expect("net");
    let old_ip = net.host(0).ip;
    let keep = owning_monitor_endpoint(&w).await;
    assert_eq!(keep.len(), 1, "the cluster has an owning monitor: {keep:?}");
    let sampler = ReadOnlySampler::start(&w.cluster);
    let rest = [net.host(1).ip, net.host(2).ip, net.gateway()];
    net.partition_except(0, &rest, &keep)
        .await
        .expect("partition db1");
    // Long enough for detection, verification and a self-fence bound to play out.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let dns = w.primary_dns().await;
    let failed_over = dns.first() != Some(&old_ip);
    eprintln!(
        "{{primary + owning monitor {keep:?}}} cut off for 20 s: {}",
        if failed_over {
            format!("failed over, DNS names {dns:?}")
        } else {
            "no failover (the owning monitor keeps the primary's lease)".to_owned()
        }
    );
    net.heal(0).await.expect("heal");
    w.wait_until(
        "one primary, every other host replicating from it",
        Duration::from_secs(60),
        |s| {
            let c = &s.clusters[0];
            let Some(p) = c.primary.clone() else {
                return false;
            };
            c.needs_rejoin.is_empty()
                && c.hosts.iter().all(|h| {
                    h.health.as_deref() == Some("healthy")
                        && (h.name == p || h.replicates_from.as_deref() == Some(p.as_str()))
                })
        },
    )
    .await;
    let rounds = sampler.stop().await;
    let new = host_index(&w, w.primary_dns().await[0]);
    let verdict = judge(&rounds, &[], 0, new, &Default::default());
    verdict.assert_clean(true);
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

/// The chosen candidate is lost mid-failover (its agent dies after `choose`, and the
/// leader with it): the next leader resumes, finds the candidate gone, chooses the other
/// replica and promotes it; the lost one is never promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_lost_after_choose_is_replaced_by_the_next_best() {
    use altair_core::failover::{Journal, Step};
    // o1 holds every failover right after `choose`; o2 (started second, so a follower)
    // does not.
    let mut w = World::start_ha(3, 1, 1, 3600, &[("ALTAIR_TEST_PAUSE_AFTER_STEP", "choose")]).await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let target = w.dns.as_ref().expect("dns").target();
    w.fleet
        .start_orchestrator("o2", &target, 3600, &[])
        .expect("start o2");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("zk");
    let cluster = altair_core::ClusterName::new("c1").expect("name");
    let journal_path = zk.layout().failover_journal(&cluster);
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    altair_e2e::ops::kill_mysqld(&w, 0);

    let started = Instant::now();
    let chosen = loop {
        let j: Option<Journal> = zk
            .get_record("journal", &journal_path)
            .await
            .expect("read journal");
        if let Some(j) = j
            && j.step == Step::CatchUp
            && let Some(c) = j.candidate
        {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the failover never reached its pause point"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lost = (0..3)
        .find(|i| w.cluster.instance(*i).name() == chosen)
        .expect("the candidate is a host");
    let other = 3 - lost;
    w.fleet.agents[lost].kill();
    w.fleet.orchestrators[0].kill();
    eprintln!("candidate {chosen} lost (its agent killed) with the leader o1");

    let (new_ip, took) = wait_dns_moved(&w, old_ip, Duration::from_secs(90)).await;
    eprintln!("o2 finished the failover: DNS moved {took:?} after the primary's kill");
    assert_eq!(
        new_ip,
        w.net.as_ref().expect("net").host(other).ip,
        "the lost candidate {chosen} was promoted"
    );
    // The lost candidate's mysqld was never made writable.
    let mut c = w.cluster.admin_conn(lost).await.expect("admin");
    let ro: Option<String> = c
        .query_first("SELECT @@read_only")
        .await
        .expect("read_only");
    assert_eq!(ro.as_deref(), Some("1"), "the lost candidate is writable");
    // The audit record (read from ZooKeeper: altairctl's config names only o1).
    let l = zk.layout().clone();
    let started = Instant::now();
    let audit = loop {
        let ids = zk.children(&l.history(&cluster)).await.expect("history");
        if let Some(id) = ids.first() {
            let a: Option<altair_core::registry::FailoverAudit> = zk
                .get_record("audit", &l.history_entry(&cluster, id))
                .await
                .expect("read audit");
            if let Some(a) = a {
                break a;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no audit record"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(audit.outcome, "succeeded");
    assert_eq!(audit.journal.lost_candidates, vec![chosen.clone()]);
    assert!(
        audit.detail.contains("choosing another candidate"),
        "the record does not say the candidate was replaced: {}",
        audit.detail
    );
}
