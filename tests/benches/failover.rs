//! Failover figures (`make bench`, needs root for network namespaces): the mysqld-crash
//! failover over 20 runs, p50 and p99 per stage and in total (kill -9 → the DNS name
//! answers the new primary and it accepts the application user's write), and node loss
//! (the primary's namespace isolated) at the shipped defaults (10 s heartbeats, 1 s
//! liveness pings; goal p99 ≤ 5 s), against the previous design (no pings) in the same
//! run. In the same run, the floor:
//! the same cluster with no orchestrator, the same steps done by hand over warm
//! connections (notice the death, drain the candidate's relay log, promote it, one
//! TSIG-signed DNS update), reported as altair ÷ floor for kill → first write through
//! the DNS name.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use altair_core::registry::{FailoverAudit, HealthRecord};
use altair_e2e::ops::{until_writable, until_writable_split};
use altair_e2e::world::{CLUSTER, World};
use mysql_async::prelude::Queryable;

const CRASH_RUNS: usize = 20;
const NODE_LOSS_RUNS: usize = 10;
/// Node-loss runs of the previous design (no liveness pings: silence judged on 10 s
/// heartbeats), for the ratio in the same run.
const NODE_LOSS_OLD_RUNS: usize = 2;
const FLOOR_RUNS: usize = 10;
/// Crash runs with mutual TLS off, for the cost of TLS in the same run.
const PLAIN_RUNS: usize = 10;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A pseudo-random delay below `max_ms` (where in a heartbeat interval a fault lands).
fn rand_ms(max_ms: u64) -> u64 {
    u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % max_ms
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn audit(w: &World) -> (FailoverAudit, Option<HealthRecord>) {
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("zk");
    let c = altair_core::ClusterName::new(CLUSTER).expect("name");
    let l = zk.layout().clone();
    let started = Instant::now();
    loop {
        let ids = zk.children(&l.history(&c)).await.expect("history");
        if let Some(id) = ids.first() {
            let a: FailoverAudit = zk
                .get_record("audit", &l.history_entry(&c, id))
                .await
                .expect("read")
                .expect("audit");
            let h = altair_core::HostName::new(a.journal.old_primary.clone()).expect("name");
            let health: Option<HealthRecord> = zk
                .get_record("health", &l.host_health(&c, &h))
                .await
                .expect("read");
            return (a, health);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no audit record"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn prepare() -> (World, Ipv4Addr) {
    prepare_with(2, true).await
}

/// The cluster with its benchmark table, `orchestrators` orchestrators and one monitor;
/// `tls` off only to measure what mutual TLS costs.
async fn prepare_with(orchestrators: usize, tls: bool) -> (World, Ipv4Addr) {
    let timing = altair_testkit::fleet::FleetTiming {
        tls,
        ..Default::default()
    };
    let w = World::start_ha_with(3, 1, orchestrators, 3600, &[], timing).await;
    let mut app = w.cluster.app_conn(0).await.expect("app");
    app.query_drop("CREATE TABLE b (id BIGINT AUTO_INCREMENT PRIMARY KEY)")
        .await
        .expect("create");
    drop(app);
    // Let the leader record the cluster before the fault.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old = w.net.as_ref().expect("net").host(0).ip;
    (w, old)
}

/// `kill -9` of the primary's mysqld; when it was sent.
fn kill_primary(w: &World) -> Instant {
    let pid = w.cluster.instance(0).pid().expect("pid");
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    started
}

/// One node loss: the primary's namespace isolated 2 s + a random part of `spread_ms`
/// after the cluster is recorded (anywhere in a heartbeat interval); milliseconds until
/// the DNS name answers a writable new primary.
async fn node_loss_run(timing: altair_testkit::fleet::FleetTiming, spread_ms: u64) -> f64 {
    let w = World::start_ha_with(3, 1, 2, 3600, &[], timing).await;
    w.wait_until("cluster recorded", Duration::from_secs(30), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    // Past the first heartbeats; the cut lands anywhere in a heartbeat interval.
    tokio::time::sleep(Duration::from_millis(2_000 + rand_ms(spread_ms))).await;
    let old = w.net.as_ref().expect("net").host(0).ip;
    eprintln!("isolating the primary at unix ms {}", unix_ms());
    let started = Instant::now();
    w.net
        .as_ref()
        .expect("net")
        .isolate(0)
        .await
        .expect("isolate");
    let total = until_writable(&w, old, started, "CREATE TABLE IF NOT EXISTS nl (id INT)").await;
    total.as_secs_f64() * 1000.0
}

/// `ALTAIR_BENCH_CUT_SPREAD_MS` (default 10,000) narrows when the cut lands: 1,000
/// cuts within 3 s of the cluster being recorded (agents just started).
async fn node_loss_only(runs: usize) {
    let spread = std::env::var("ALTAIR_BENCH_CUT_SPREAD_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(10_000)
        .max(1);
    let mut all = Vec::new();
    for run in 0..runs {
        let ms = node_loss_run(altair_testkit::fleet::FleetTiming::shipped(), spread).await;
        all.push(ms);
        eprintln!(
            "node-loss run {}/{runs} (shipped defaults): {ms:.0} ms",
            run + 1
        );
    }
    let (n50, n99) = (pct(&mut all, 0.5), pct(&mut all, 0.99));
    println!("node loss, {runs} runs: p50 {n50:.0} ms, p99 {n99:.0} ms (goal p99 <= 5000)");
}

/// One crash failover: kill -9 of the primary's mysqld → the DNS name answers a new
/// primary that accepts a write, in milliseconds.
async fn crash_run(tls: bool) -> f64 {
    crash_run_split(tls).await.1
}

/// [`crash_run`]: kill → the name answers the new primary, kill → its first write (ms).
async fn crash_run_split(tls: bool) -> (f64, f64) {
    let (w, old) = prepare_with(2, tls).await;
    eprintln!("killing the primary's mysqld at unix ms {}", unix_ms());
    let started = kill_primary(&w);
    let (moved, done) = until_writable_split(&w, old, started, "INSERT INTO b VALUES (NULL)").await;
    (ms(moved), ms(done))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `ALTAIR_BENCH_TIMELINE=N`: N floor runs and N crash failovers alternated, each split
/// into kill → DNS moved and kill → first write (with `ALTAIR_TESTKIT_KEEP=1`, the kill's
/// time is printed to line the logs up against).
async fn timeline(runs: usize) {
    let (mut fm, mut fw, mut am, mut aw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let (m, w) = floor_run_split().await;
        fm.push(m);
        fw.push(w);
        let (m2, w2) = crash_run_split(true).await;
        am.push(m2);
        aw.push(w2);
        eprintln!(
            "run {}/{runs}: floor DNS {m:.1} write {w:.1} ms; altair DNS {m2:.1} write {w2:.1} ms",
            run + 1
        );
    }
    for (what, v) in [
        ("floor: kill → DNS moved", &mut fm),
        ("floor: kill → first write", &mut fw),
        ("altair: kill → DNS moved", &mut am),
        ("altair: kill → first write", &mut aw),
    ] {
        println!(
            "{what:<32} p50 {:>6.1} ms  p99 {:>6.1} ms",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "altair ÷ floor, first write: {:.2} × at p50",
        pct(&mut aw, 0.5) / pct(&mut fw, 0.5)
    );
}

/// `ALTAIR_BENCH_TAIL=N`: N crash failovers where the primary holds one committed
/// transaction no replica received (their IO threads stopped before it), alternated with
/// N without one: what a small salvage adds, with the machine's drift shared by both.
async fn tail_pairs(pairs: usize) {
    let (mut plain, mut tail, mut salvage) = (Vec::new(), Vec::new(), Vec::new());
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for pair in 0..pairs {
        plain.push(crash_run(true).await);
        let (w, old) = prepare().await;
        for r in 1..3 {
            let mut c = w.cluster.admin_conn(r).await.expect("admin");
            c.query_drop("STOP SLAVE IO_THREAD").await.expect("stop io");
        }
        let mut app = w.cluster.app_conn(0).await.expect("app");
        app.query_drop("INSERT INTO b VALUES (NULL)")
            .await
            .expect("the tail");
        drop(app);
        let started = kill_primary(&w);
        let total = until_writable(&w, old, started, "INSERT INTO b VALUES (NULL)").await;
        let (a, _) = audit(&w).await;
        assert_eq!(
            a.journal.transactions_salvaged, 1,
            "one transaction salvaged"
        );
        for s in &a.journal.stages {
            stages
                .entry(s.name.clone())
                .or_default()
                .push(s.duration_ms as f64);
        }
        let stage = a
            .journal
            .stages
            .iter()
            .find(|s| s.name == "salvage")
            .map_or(0.0, |s| s.duration_ms as f64);
        tail.push(ms(total));
        salvage.push(stage);
        eprintln!(
            "pair {}/{pairs}: no tail {:.0} ms; one-transaction tail {:.0} ms (salvage {stage:.0} ms)",
            pair + 1,
            plain[pair],
            tail[pair],
        );
    }
    let (p50, t50, s50) = (
        pct(&mut plain, 0.5),
        pct(&mut tail, 0.5),
        pct(&mut salvage, 0.5),
    );
    println!(
        "crash failover, {pairs} pairs alternated, kill → DNS + write: no tail p50 {p50:.0} ms, one-transaction tail p50 {t50:.0} ms (salvage stage {s50:.0} ms); tail ÷ none {:.2}",
        t50 / p50
    );
    let each: Vec<String> = stages
        .iter_mut()
        .map(|(name, v)| format!("{name} {:.0}", pct(v, 0.5)))
        .collect();
    println!("stages of the tail runs, p50 ms: {}", each.join(", "));
}

async fn tls_pairs(pairs: usize) {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        on.push(crash_run(true).await);
        off.push(crash_run(false).await);
        eprintln!(
            "pair {}/{pairs}: TLS on {:.0} ms, off {:.0} ms",
            pair + 1,
            on[pair],
            off[pair]
        );
    }
    let (on50, on99) = (pct(&mut on, 0.5), pct(&mut on, 0.99));
    let (off50, off99) = (pct(&mut off, 0.5), pct(&mut off, 0.99));
    println!(
        "crash failover, {pairs} pairs alternated: TLS on p50 {on50:.0} p99 {on99:.0} ms, off p50 {off50:.0} p99 {off99:.0} ms; on ÷ off {:.2} / {:.2} (goal ≤ 1.10)",
        on50 / off50,
        on99 / off99
    );
}

/// One failover by hand, no control plane: what a perfect operator script would cost.
async fn floor_run() -> f64 {
    floor_run_split().await.1
}

/// [`floor_run`], split like [`crash_run_split`].
async fn floor_run_split() -> (f64, f64) {
    // One monitor (status needs it to report the hosts healthy), no orchestrator.
    let (w, _) = prepare_with(0, true).await;
    let net = w.net.as_ref().expect("net");
    let (old, new) = (net.host(0).ip, net.host(1).ip);
    let bind = w.dns.as_ref().expect("dns");
    let dns = altair_dns::DnsClient::new(bind.addr(), bind.zone(), Some(bind.tsig_key()))
        .expect("dns client");
    // Warm connections, opened before the fault.
    let mut watch = w.cluster.admin_conn(0).await.expect("admin on the primary");
    let mut cand = w
        .cluster
        .admin_conn(1)
        .await
        .expect("admin on the candidate");
    let started = kill_primary(&w);
    // Notice the death: a ping every 5 ms over the warm connection.
    while tokio::time::timeout(Duration::from_millis(50), watch.ping())
        .await
        .is_ok_and(|r| r.is_ok())
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Drain: the candidate applies everything it received.
    let io_pos: Option<String> = cand
        .query_first("SELECT @@gtid_slave_pos")
        .await
        .expect("gtid_slave_pos");
    let status: Option<mysql_async::Row> = cand
        .query_first("SHOW SLAVE STATUS")
        .await
        .expect("slave status");
    let received: String = status
        .and_then(|r| r.get::<Option<String>, _>("Gtid_IO_Pos").flatten())
        .or(io_pos)
        .unwrap_or_default();
    cand.exec_drop("SELECT MASTER_GTID_WAIT(?, 10)", (received,))
        .await
        .expect("drain");
    // Promote.
    cand.query_drop("STOP SLAVE").await.expect("stop slave");
    cand.query_drop("RESET SLAVE ALL")
        .await
        .expect("reset slave");
    cand.query_drop("SET GLOBAL read_only = OFF")
        .await
        .expect("writable");
    // One DNS update.
    dns.compare_and_swap_a(&format!("primary.{CLUSTER}"), &[old], &[new], 1)
        .await
        .expect("nsupdate");
    let (moved, done) = until_writable_split(&w, old, started, "INSERT INTO b VALUES (NULL)").await;
    (ms(moved), ms(done))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `ALTAIR_BENCH_NODE_LOSS_ONLY=N`: only N node-loss runs at the shipped defaults
    // (with `ALTAIR_TESTKIT_KEEP=1`, to look into a slow one's logs).
    if let Some(runs) = std::env::var("ALTAIR_BENCH_NODE_LOSS_ONLY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        node_loss_only(runs.max(1)).await;
        return;
    }
    // `ALTAIR_BENCH_TLS_PAIRS=N`: only N crash failovers with mutual TLS on and N with it
    // off, alternated (on, off, on, …), for what TLS costs with the machine's drift
    // shared by both.
    if let Some(pairs) = std::env::var("ALTAIR_BENCH_TLS_PAIRS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        tls_pairs(pairs.max(1)).await;
        return;
    }
    if let Some(pairs) = std::env::var("ALTAIR_BENCH_TAIL")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        tail_pairs(pairs.max(1)).await;
        return;
    }
    if let Some(runs) = std::env::var("ALTAIR_BENCH_TIMELINE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        timeline(runs.max(1)).await;
        return;
    }
    let mut floor = Vec::new();
    for run in 0..FLOOR_RUNS {
        let ms = floor_run().await;
        floor.push(ms);
        eprintln!("floor run {}/{FLOOR_RUNS}: {ms:.0} ms", run + 1);
    }
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut totals = Vec::new();
    for run in 0..CRASH_RUNS {
        let (w, old) = prepare().await;
        let killed_unix = unix_ms();
        let started = kill_primary(&w);
        let total = until_writable(&w, old, started, "INSERT INTO b VALUES (NULL)").await;
        let (a, health) = audit(&w).await;
        if let Some(h) = health {
            stages
                .entry("detect (kill → mysql_down)".into())
                .or_default()
                .push(h.since_unix_ms.saturating_sub(killed_unix) as f64);
        }
        for s in &a.journal.stages {
            let name = if s.name == "detect" {
                "pickup (transition → verify)".to_owned()
            } else {
                s.name.clone()
            };
            stages.entry(name).or_default().push(s.duration_ms as f64);
        }
        totals.push(total.as_secs_f64() * 1000.0);
        eprintln!(
            "crash run {}/{CRASH_RUNS}: {:.0} ms",
            run + 1,
            total.as_secs_f64() * 1000.0
        );
    }
    let mut plain = Vec::new();
    for run in 0..PLAIN_RUNS {
        let ms = crash_run(false).await;
        plain.push(ms);
        eprintln!("crash run without TLS {}/{PLAIN_RUNS}: {ms:.0} ms", run + 1);
    }
    let mut node_loss = Vec::new();
    for run in 0..NODE_LOSS_RUNS {
        let ms = node_loss_run(altair_testkit::fleet::FleetTiming::shipped(), 10_000).await;
        node_loss.push(ms);
        eprintln!(
            "node-loss run {}/{NODE_LOSS_RUNS} (shipped defaults): {ms:.0} ms",
            run + 1
        );
    }
    let mut node_loss_old = Vec::new();
    for run in 0..NODE_LOSS_OLD_RUNS {
        let timing = altair_testkit::fleet::FleetTiming {
            liveness_ms: 0,
            ..altair_testkit::fleet::FleetTiming::shipped()
        };
        let ms = node_loss_run(timing, 10_000).await;
        node_loss_old.push(ms);
        eprintln!(
            "node-loss run {}/{NODE_LOSS_OLD_RUNS} (no pings): {ms:.0} ms",
            run + 1
        );
    }
    println!(
        "benchmark: mysqld kill -9 failover, {CRASH_RUNS} runs (3 hosts in namespaces, 1 s heartbeat, 200 ms probe)"
    );
    println!("{:<32} {:>9} {:>9}", "stage", "p50 ms", "p99 ms");
    let order = [
        "detect (kill → mysql_down)",
        "pickup (transition → verify)",
        "verify",
        "fence",
        "choose",
        "catch_up",
        "salvage",
        "promote",
        "repoint",
        "publish",
        "record",
    ];
    for name in order {
        if let Some(v) = stages.get_mut(name) {
            println!("{name:<32} {:>9.0} {:>9.0}", pct(v, 0.5), pct(v, 0.99));
        }
    }
    let (t50, t99) = (pct(&mut totals, 0.5), pct(&mut totals, 0.99));
    println!(
        "{:<32} {:>9.0} {:>9.0}",
        "total (kill → DNS + write ok)", t50, t99
    );
    let (f50, f99) = (pct(&mut floor, 0.5), pct(&mut floor, 0.99));
    println!(
        "{:<32} {:>9.0} {:>9.0}",
        format!("floor by hand, {FLOOR_RUNS} runs"),
        f50,
        f99
    );
    println!(
        "{:<32} {:>9.2} {:>9.2}",
        "altair ÷ floor",
        t50 / f50,
        t99 / f99
    );
    let (p50, p99) = (pct(&mut plain, 0.5), pct(&mut plain, 0.99));
    println!(
        "{:<32} {:>9.0} {:>9.0}",
        format!("total, TLS off, {PLAIN_RUNS} runs"),
        p50,
        p99
    );
    println!(
        "{:<32} {:>9.2} {:>9.2}",
        "TLS on ÷ off (goal ≤ 1.10)",
        t50 / p50,
        t99 / p99
    );
    println!();
    println!(
        "benchmark: node loss (primary's namespace isolated) at the shipped defaults (10 s heartbeats, 1 s pings), {NODE_LOSS_RUNS} runs"
    );
    let (n50, n99) = (pct(&mut node_loss, 0.5), pct(&mut node_loss, 0.99));
    println!(
        "{:<32} {:>9.0} {:>9.0}   (goal p99 <= 5000)",
        "total (isolate → DNS + write ok)", n50, n99
    );
    let o50 = pct(&mut node_loss_old, 0.5);
    println!(
        "{:<32} {:>9.0}             previous design (no pings), {NODE_LOSS_OLD_RUNS} runs: {:.1} × slower at p50",
        "total without pings",
        o50,
        o50 / n50
    );
}
