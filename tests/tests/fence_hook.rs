//! The fence hook (issue "Operating a fleet", DESIGN §5 step 2): when the old primary's
//! agent does not answer, the leader runs `[fence] command` (IPMI, a cloud "stop
//! instance") with the host as JSON on stdin. A zero exit means "the host is off" and
//! promotion goes ahead without waiting for the self-fencing bound; a failing or hanging
//! hook leaves that wait in force. Agents here self-fence after 15 s, so the bound is
//! far beyond detection (~3 s) and the difference is plain to see.
//! Real mariadbd, agents, monitor, orchestrator, ZooKeeper, BIND and namespaces.

use std::time::{Duration, Instant};

use altair_e2e::ops::{history_with, host_index, scrape, wait_dns_moved};
use altair_e2e::world::World;
use altair_testkit::fleet::FleetTiming;

/// What the isolated primary's agent waits before it makes itself read-only.
const SELF_FENCE_MS: u64 = 15_000;

async fn world(fence: &str) -> World {
    let timing = FleetTiming {
        self_fence_after_ms: Some(SELF_FENCE_MS),
        ..FleetTiming::default()
    };
    World::start_ha_configured(3, 1, 1, 3600, &[], timing, fence).await
}

/// Isolates the primary's host; returns its address, when DNS moved after the cut, and
/// the failover's audit record.
async fn isolate_primary(w: &World, bound: Duration) -> (std::net::Ipv4Addr, Duration, String) {
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    let net = w.net.as_ref().expect("net");
    let old_ip = net.host(0).ip;
    let cut = Instant::now();
    net.isolate(0).await.expect("isolate the primary's host");
    let (new_ip, _) = wait_dns_moved(w, old_ip, bound).await;
    let took = cut.elapsed();
    // The application writes on the new primary.
    let mut app = w
        .cluster
        .app_conn(host_index(w, new_ip))
        .await
        .expect("app on the new primary");
    mysql_async::prelude::Queryable::query_drop(&mut app, "CREATE TABLE after (id INT)")
        .await
        .expect("the new primary takes writes");
    let json = history_with(w, 1).await;
    let record = json
        .as_array()
        .and_then(|a| a.iter().find(|r| r["outcome"] == "succeeded"))
        .expect("a succeeded record");
    (
        old_ip,
        took,
        record["reason"].as_str().unwrap_or("").to_owned(),
    )
}

async fn hook_runs(w: &World, outcome: &str) -> f64 {
    let m = scrape(&w.fleet.orchestrators[0].metrics).await;
    m.get(&format!(
        "altair_hooks_total{{hook=\"fence\",outcome=\"{outcome}\"}}"
    ))
    .copied()
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_hook_that_powers_the_host_off_shortens_the_failover() {
    let scratch = tempfile::tempdir().expect("dir");
    let event = scratch.path().join("event.json");
    // "Powering off" the host here: its mysqld and agent killed, as a power cut would.
    let marker = scratch.path().join("pids");
    let hook = format!(
        "[fence]\ntimeout_ms = 10000\ncommand = [\"sh\", \"-c\", \"cat > {ev}; kill -9 $(cat {pids})\"]\n",
        ev = event.display(),
        pids = marker.display()
    );
    let w = world(&hook).await;
    let pids = [
        w.cluster.instance(0).pid().expect("mysqld pid"),
        w.fleet.agents[0].pid().expect("agent pid"),
    ];
    std::fs::write(
        &marker,
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    )
    .expect("write pids");
    let (old_ip, took, reason) = isolate_primary(&w, Duration::from_secs(30)).await;
    eprintln!(
        "fence hook ok: DNS moved {took:?} after the cut (self-fencing bound {SELF_FENCE_MS} ms)"
    );
    assert!(
        took < Duration::from_millis(SELF_FENCE_MS - 3_000),
        "DNS moved {took:?} after the cut: the hook's success did not spare the self-fencing wait\n{}",
        w.fleet.warnings(5)
    );
    assert!(reason.contains("fence hook powered db1 off"), "{reason}");
    // The hook got the host, its cluster, the new epoch and its addresses.
    let ev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&event).expect("the hook ran"))
            .expect("JSON on stdin");
    assert_eq!(ev["event"], "fence", "{ev}");
    assert_eq!(ev["host"], "db1", "{ev}");
    assert_eq!(ev["cluster"], "c1", "{ev}");
    assert_eq!(ev["epoch"], 2, "{ev}");
    assert_eq!(ev["mysql"], format!("{old_ip}:3306"), "{ev}");
    assert!(hook_runs(&w, "ok").await >= 1.0);
    // The host really is off (its mysqld, a child of this test, dead or a zombie).
    let state = std::fs::read_to_string(format!("/proc/{}/stat", pids[0]))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        });
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "the old primary's mysqld still runs (state {state:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fence_hook_leaves_the_self_fencing_wait_in_force() {
    let hook = "[fence]\ntimeout_ms = 10000\ncommand = [\"sh\", \"-c\", \"echo 'BMC unreachable' >&2; exit 3\"]\n";
    let w = world(hook).await;
    let (_, took, reason) = isolate_primary(&w, Duration::from_secs(60)).await;
    eprintln!("fence hook failed: DNS moved {took:?} after the cut");
    // The bound counts from the last heartbeat (at most one interval before the cut).
    let floor = Duration::from_millis(SELF_FENCE_MS - w.timing.heartbeat_ms);
    assert!(
        took >= floor,
        "promoted {took:?} after the cut, before the self-fencing bound ({floor:?})"
    );
    assert!(reason.contains("fence hook failed"), "{reason}");
    assert!(reason.contains("BMC unreachable"), "{reason}");
    assert!(hook_runs(&w, "failed").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_fence_hook_is_killed_at_the_self_fencing_bound() {
    let hook = "[fence]\ntimeout_ms = 120000\ncommand = [\"sleep\", \"300\"]\n";
    let w = world(hook).await;
    let (_, took, reason) = isolate_primary(&w, Duration::from_secs(60)).await;
    eprintln!("fence hook hung: DNS moved {took:?} after the cut");
    let floor = Duration::from_millis(SELF_FENCE_MS - w.timing.heartbeat_ms);
    assert!(
        took >= floor,
        "promoted {took:?} after the cut, before {floor:?}"
    );
    // Killed at the bound, not at its own two-minute timeout.
    assert!(
        took < Duration::from_millis(SELF_FENCE_MS + 15_000),
        "DNS moved {took:?} after the cut: the hanging hook held the failover"
    );
    assert!(reason.contains("fence hook failed"), "{reason}");
    assert!(reason.contains("no exit within"), "{reason}");
}
