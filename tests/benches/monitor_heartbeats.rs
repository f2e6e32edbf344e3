//! One real altair-monitor against 10,000 simulated agents at a 10 s interval
//! (1,000 heartbeats/s) through the same gRPC path real agents use. Reports the monitor's
//! CPU, heartbeat latency (p50/p99 as the agents see it), ZooKeeper writes/s at steady
//! state (from the server's zxid), and how long after its last heartbeat a silent agent
//! turns unreachable (goal: 3 intervals + under 100 ms). Run with `make bench`.
//! It runs twice — failover readiness off (`monitor.readiness_interval_ms = 0`) and at
//! its default (every 5 s over every owned cluster) — and reports the CPU delta (goal
//! ≤ 5 % of a core). The simulated agents send what real ones do for readiness to judge:
//! registrations with a mysqld endpoint, replicas replicating from their primary, and
//! GTID positions that advance with every heartbeat.
//! A third run turns mutual TLS on (readiness at its default): each simulated agent has
//! a certificate of its own naming its cluster and host (a heartbeat must come from the
//! agent of the host it reports), the monitor checks it on every call, and the report
//! gives the CPU delta against the plaintext run (goal: ≤ +30 %). Every simulated agent
//! holds its own connection in all three runs, as real agents do.
//! A fourth run is the shipped defaults: mutual TLS, readiness every 5 s, and a liveness
//! ping every second between heartbeats (the agent's `liveness_interval_ms = 1000`: nine
//! pings per 10 s interval, 9,000 pings/s here) over each agent's `Liveness` stream, as
//! agents send them, with the ping latency agents see.
//! `ALTAIR_BENCH_PINGS_ONLY=1` runs only pings: plaintext as `Ping` calls (what agents
//! sent before the stream) and over the stream, then mutual TLS over the stream (and as
//! calls too with `ALTAIR_BENCH_PINGS_ONLY=2`).

#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_core::config::TlsConfig;
use altair_proto::v1::monitor_client::MonitorClient;
use altair_proto::v1::{
    ClusterHealthRequest, Endpoint, HeartbeatRequest, HostRef, HostRegistration, PingRequest,
};
use altair_testkit::pki::Pki;
use altair_testkit::ports::reserve;
use altair_testkit::process::Proc;
use altair_testkit::zookeeper::{ZooKeeper, four_letter};
use tokio::sync::Mutex;
use tonic::transport::Channel;

const AGENTS: usize = 10_000;
const HOSTS_PER_CLUSTER: usize = 4;
const INTERVAL: Duration = Duration::from_secs(10);
const WARMUP: Duration = Duration::from_secs(25);
const MEASURE: Duration = Duration::from_secs(30);
const SILENT: usize = 20;

/// Heartbeats refused or failed while measured (a run's figures count only those
/// accepted; this says whether that left any out).
static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 0, utime 11, stime 12.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn zxid(srvr: &str) -> u64 {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

#[tokio::main]
async fn main() {
    altair_svc::crypto::use_ring();
    if let Ok(v) = std::env::var("ALTAIR_BENCH_PINGS_ONLY") {
        let calls = run(5_000, false, Some(Pings::Calls)).await;
        let stream = run(5_000, false, Some(Pings::Stream)).await;
        let tls = run(5_000, true, Some(Pings::Stream)).await;
        println!(
            "with 1 s pings, plaintext: monitor CPU {calls:.1} % as calls, {stream:.1} % over the stream (x{:.2})",
            stream / calls
        );
        println!("with 1 s pings over the stream, mutual TLS: {tls:.1} % (goal < 25 %)");
        if v == "2" {
            let tls_calls = run(5_000, true, Some(Pings::Calls)).await;
            println!(
                "with 1 s pings, mutual TLS: {tls_calls:.1} % as calls, {tls:.1} % over the stream (x{:.2})",
                tls / tls_calls
            );
        }
        return;
    }
    let off = run(0, false, None).await;
    let on = run(5_000, false, None).await;
    let tls = run(5_000, true, None).await;
    let shipped = run(5_000, true, Some(Pings::Stream)).await;
    println!(
        "shipped defaults (1 s pings)        {shipped:.1} % of one core with mutual TLS ({:+.1} % over heartbeats alone: x{:.2}; goal < 25 %)",
        shipped - tls,
        shipped / tls
    );
    println!(
        "failover readiness cost             {:.1} % of one core ({:.1} % with it every 5 s vs {:.1} % off; goal <= 5 %)",
        on - off,
        on,
        off
    );
    println!(
        "mutual TLS cost                     {:+.1} % of one core ({:.1} % with TLS vs {:.1} % plaintext: x{:.2}; goal <= x1.30)",
        tls - on,
        tls,
        on,
        tls / on
    );
}

/// The shipped liveness ping interval (`agent.liveness_interval_ms`).
const PING: Duration = Duration::from_secs(1);

/// How the simulated agents send their pings.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pings {
    /// One `Ping` call each.
    Calls,
    /// Messages on one `Liveness` stream per agent (what agents do).
    Stream,
}

/// Ping latencies and refusals while measured (heartbeats have theirs apart).
static PINGS_FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What the simulated agents record while measured.
#[derive(Clone, Default)]
struct Recorded {
    heartbeats: Arc<Mutex<Vec<Duration>>>,
    pings: Arc<Mutex<Vec<Duration>>>,
}

/// One run with `monitor.readiness_interval_ms = readiness_ms`, mutual TLS on or off,
/// liveness pings every `ping` between heartbeats (or none); returns the monitor's CPU
/// (% of one core) while measured.
async fn run(readiness_ms: u64, tls: bool, pings: Option<Pings>) -> f64 {
    let ping = pings.map(|_| PING);
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let zk = ZooKeeper::standalone(local).await.expect("zookeeper");
    let work = tempfile::tempdir().expect("tempdir");
    let port = reserve(local).expect("port");
    let address = format!("127.0.0.1:{}", port.get());
    let cfg = work.path().join("monitor.toml");
    let pki = tls.then(|| Pki::new(&work.path().join("pki"), "bench").expect("a CA"));
    let tls_section = match &pki {
        Some(pki) => pki
            .issue("monitor", "altair://monitor/bench", &[local])
            .expect("the monitor's certificate")
            .section(),
        None => "[tls]\ninsecure = true\n".to_owned(),
    };
    std::fs::write(
        &cfg,
        format!(
            "[monitor]\nid = \"bench\"\nlisten = \"{address}\"\nreadiness_interval_ms = {readiness_ms}\n[zookeeper]\nservers = {:?}\n[log]\nlevel = \"warn\"\n{tls_section}",
            zk.servers()
        ),
    )
    .expect("config");
    drop(port);
    let mut cmd = std::process::Command::new(altair_e2e::bin("altair-monitor"));
    cmd.arg("--config").arg(&cfg);
    let monitor =
        Proc::spawn("altair-monitor", &mut cmd, &work.path().join("monitor.log")).expect("monitor");
    let pid = monitor.pid().expect("pid");

    // One connection per simulated agent (with its own certificate under TLS), made
    // at its first heartbeat: the handshakes spread over the first interval.
    let cert_started = Instant::now();
    let endpoints: Vec<tonic::transport::Endpoint> = (0..AGENTS)
        .map(|i| match &pki {
            Some(pki) => {
                let uri = format!("altair://agent/c{}/h{i}", i / HOSTS_PER_CLUSTER);
                let files = pki
                    .issue(&format!("a{i}"), &uri, &[])
                    .expect("a certificate");
                tls_endpoint(files, &address)
            }
            None => tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                .expect("endpoint"),
        })
        .collect();
    if tls {
        println!(
            "{AGENTS} agent certificates issued and loaded in {:.1} s",
            cert_started.elapsed().as_secs_f64()
        );
    }
    let mut channels: Vec<Channel> = Vec::with_capacity(AGENTS);
    for (i, e) in endpoints.iter().enumerate() {
        if i == 0 {
            // The first one waits for the monitor to listen.
            loop {
                match e.connect().await {
                    Ok(c) => break channels.push(c),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        } else {
            channels.push(e.connect_lazy());
        }
    }
    // Wait until the monitor registered and owns clusters (first accepted heartbeat).
    let probe = MonitorClient::new(channels[0].clone());
    let recorded = Recorded::default();
    let measuring = Arc::new(AtomicBool::new(false));
    let silent_after = Instant::now() + INTERVAL + WARMUP + MEASURE;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let client = MonitorClient::new(channel.clone());
        let (rec, measuring) = (recorded.clone(), measuring.clone());
        let silent = i < SILENT;
        tasks.push(tokio::spawn(agent(
            i,
            client,
            rec,
            measuring,
            silent.then_some(silent_after),
            pings,
        )));
    }
    let _ = probe;
    tokio::time::sleep(INTERVAL + Duration::from_secs(1)).await;
    // Every agent has sent its first heartbeat: wait for the monitor to finish publishing
    // their first judgements (zxid stable for 2 s), and report how long that took.
    let mut last = zxid(&four_letter(zk.client_addr(0), "srvr").await.expect("srvr"));
    let first_zx = last;
    let flush_started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = zxid(&four_letter(zk.client_addr(0), "srvr").await.expect("srvr"));
        if now == last || flush_started.elapsed() > WARMUP {
            break;
        }
        last = now;
    }
    let flushed_in = started.elapsed().saturating_sub(Duration::from_secs(2));
    let _ = first_zx;
    let ticks0 = cpu_ticks(pid);
    let zx0 = zxid(&four_letter(zk.client_addr(0), "srvr").await.expect("srvr"));
    measuring.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    tokio::time::sleep(MEASURE).await;
    measuring.store(false, Ordering::SeqCst);
    let secs = t0.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pid) - ticks0;
    let zx1 = zxid(&four_letter(zk.client_addr(0), "srvr").await.expect("srvr"));
    let hz = 100.0; // USER_HZ on Linux
    let mut lat = recorded.heartbeats.lock().await.clone();
    lat.sort();
    let mut ping_lat = recorded.pings.lock().await.clone();
    ping_lat.sort();

    // Silent agents stop at `silent_after`; wait for their unreachable transitions.
    tokio::time::sleep(
        silent_after.saturating_duration_since(Instant::now())
            + 3 * INTERVAL
            + Duration::from_secs(2),
    )
    .await;
    let mut detect = Vec::new();
    // Asked as an operator (an agent's certificate may only send heartbeats).
    let viewer = match &pki {
        Some(pki) => {
            let files = pki
                .issue("viewer", "altair://operator/bench?role=viewer", &[])
                .expect("a viewer certificate");
            tls_endpoint(files, &address)
                .connect()
                .await
                .expect("connect as a viewer")
        }
        None => channels[0].clone(),
    };
    let mut client = MonitorClient::new(viewer);
    for i in 0..SILENT {
        let cluster = format!("c{}", i / HOSTS_PER_CLUSTER);
        let resp = client
            .cluster_health(ClusterHealthRequest { cluster })
            .await
            .expect("cluster health")
            .into_inner();
        let host = format!("h{i}");
        let unreachable = resp.hosts.iter().find(|h| {
            h.health == altair_proto::v1::Health::Unreachable as i32
                && h.registration
                    .as_ref()
                    .and_then(|r| r.id.as_ref())
                    .is_some_and(|id| id.host == host)
        });
        if let Some(h) = unreachable {
            detect.push(Duration::from_millis(
                (h.health_since_unix_ms - h.last_heartbeat_unix_ms) as u64,
            ));
        }
    }
    detect.sort();
    for t in tasks {
        t.abort();
    }
    let cpu = ticks as f64 / hz / secs * 100.0;
    println!(
        "benchmark: one monitor, {AGENTS} simulated agents, interval {INTERVAL:?} ({:.0} heartbeats/s), {}, {:.0} s measured, {}, readiness {}",
        AGENTS as f64 / INTERVAL.as_secs_f64(),
        match pings {
            Some(Pings::Calls) => format!("a liveness ping every {PING:?} between them, as calls"),
            Some(Pings::Stream) =>
                format!("a liveness ping every {PING:?} between them, over a stream per agent"),
            None => "no pings".to_owned(),
        },
        secs,
        if tls { "mutual TLS" } else { "plaintext" },
        if readiness_ms == 0 {
            "off".to_owned()
        } else {
            format!("every {readiness_ms} ms")
        }
    );
    println!(
        "first judgement of all hosts published within {:.1} s of start",
        flushed_in.as_secs_f64()
    );
    println!(
        "heartbeats measured                 {} accepted, {} failed",
        lat.len(),
        FAILED.swap(0, Ordering::Relaxed)
    );
    println!("monitor CPU                         {cpu:.1} % of one core");
    println!(
        "heartbeat latency p50 / p99         {:.2} ms / {:.2} ms",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3
    );
    if ping.is_some() {
        println!(
            "pings measured                      {} accepted ({:.0}/s), {} failed",
            ping_lat.len(),
            ping_lat.len() as f64 / secs,
            PINGS_FAILED.swap(0, Ordering::Relaxed)
        );
        if !ping_lat.is_empty() {
            println!(
                "ping latency p50 / p99              {:.2} ms / {:.2} ms",
                pct(&ping_lat, 0.5).as_secs_f64() * 1e3,
                pct(&ping_lat, 0.99).as_secs_f64() * 1e3
            );
        }
    }
    println!(
        "ZooKeeper writes/s (steady)         {:.2}  (zxid {zx0:#x} -> {zx1:#x})",
        (zx1 - zx0) as f64 / secs
    );
    if detect.is_empty() {
        println!("silence -> unreachable              not observed");
    } else {
        println!(
            "silence -> unreachable (n={})       min {} ms, max {} ms  (3 {} = {} ms)",
            detect.len(),
            detect[0].as_millis(),
            detect[detect.len() - 1].as_millis(),
            if ping.is_some() { "pings" } else { "intervals" },
            (3 * ping.unwrap_or(INTERVAL)).as_millis()
        );
    }
    println!(
        "total run                           {:.0} s",
        started.elapsed().as_secs_f64()
    );
    drop(monitor);
    cpu
}

/// An endpoint for `address` dialling with `files` (mutual TLS).
fn tls_endpoint(files: altair_testkit::pki::TlsFiles, address: &str) -> tonic::transport::Endpoint {
    altair_svc::Tls::load(&TlsConfig {
        ca_file: Some(files.ca),
        cert_file: Some(files.cert),
        key_file: Some(files.key),
        ..TlsConfig::default()
    })
    .expect("TLS files load")
    .endpoint(address, altair_core::authz_peer::Expected::Monitor(None))
    .expect("endpoint")
}

/// One simulated agent: a heartbeat every `INTERVAL` (from a spread start) and, with
/// `ping`, a liveness ping every `ping` between them (a real agent's pinger restarts at
/// every heartbeat: interval ÷ ping − 1 pings per interval); silent from `silent_after`.
async fn agent(
    i: usize,
    mut client: MonitorClient<Channel>,
    recorded: Recorded,
    measuring: Arc<AtomicBool>,
    silent_after: Option<Instant>,
    pings: Option<Pings>,
) {
    let ping = pings.map(|_| PING);
    let mut stream: Option<(
        tokio::sync::mpsc::Sender<PingRequest>,
        tonic::Streaming<altair_proto::v1::HeartbeatResponse>,
    )> = None;
    // Spread agents evenly over the interval.
    tokio::time::sleep(INTERVAL.mul_f64(i as f64 / AGENTS as f64)).await;
    let endpoint = |k: usize| Endpoint {
        host: format!("10.{}.{}.{}", k >> 16 & 255, k >> 8 & 255, k & 255),
        port: 3306,
    };
    let primary = i - i % HOSTS_PER_CLUSTER;
    let is_primary = i == primary;
    let id = HostRef {
        cluster: format!("c{}", i / HOSTS_PER_CLUSTER),
        host: format!("h{i}"),
    };
    let registration = HostRegistration {
        id: Some(id.clone()),
        datacenter: "dc1".into(),
        mysql: Some(endpoint(i)),
        ..HostRegistration::default()
    };
    let mut snapshot = altair_e2e::sim_heartbeats::healthy_snapshot(
        i as u32 + 1,
        (!is_primary).then(|| endpoint(primary)),
    );
    let run_id = format!("sim{i}");
    // Ticks of `ping` (or of the interval without pings); a heartbeat every
    // `per_interval` ticks, pings at the others.
    let tick = ping.unwrap_or(INTERVAL);
    let per_interval = (INTERVAL.as_millis() / tick.as_millis()).max(1) as u64;
    // As a real agent: a late tick is not caught up in a burst, and a ping not answered
    // within half its interval counts as failed (its stream dropped).
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seq, mut beats) = (0u64, 0u64);
    // A ping not accepted is followed by a full heartbeat, as a real agent does.
    let mut hello = false;
    for n in 0u64.. {
        ticker.tick().await;
        if silent_after.is_some_and(|t| Instant::now() >= t) {
            return;
        }
        seq += 1;
        let t = Instant::now();
        if n % per_interval != 0 && !hello {
            let request = PingRequest {
                host: Some(id.clone()),
                agent_run_id: run_id.clone(),
                sequence: seq,
                interval_ms: tick.as_millis() as u32,
            };
            let answered = tokio::time::timeout(tick / 2, async {
                if pings != Some(Pings::Stream) {
                    return client
                        .ping(request)
                        .await
                        .is_ok_and(|r| r.get_ref().accepted);
                }
                if stream.is_none() {
                    let (tx, rx) = tokio::sync::mpsc::channel(2);
                    if let Ok(answers) = client
                        .liveness(tokio_stream::wrappers::ReceiverStream::new(rx))
                        .await
                    {
                        stream = Some((tx, answers.into_inner()));
                    }
                }
                let mut ok = false;
                if let Some((tx, answers)) = stream.as_mut()
                    && tx.send(request).await.is_ok()
                {
                    ok = matches!(answers.message().await, Ok(Some(a)) if a.accepted);
                }
                ok
            })
            .await;
            let ok = answered.unwrap_or(false);
            if !ok {
                stream = None;
                hello = true;
            }
            if measuring.load(Ordering::Relaxed) {
                if ok {
                    recorded.pings.lock().await.push(t.elapsed());
                } else {
                    PINGS_FAILED.fetch_add(1, Ordering::Relaxed);
                }
            }
            continue;
        }
        hello = false;
        beats += 1;
        // The primary commits ~100 transactions per interval; replicas trail a little.
        let pos = beats * 100 - if is_primary { 0 } else { 3 };
        snapshot.gtid_executed = format!("0-{}-{pos}", primary + 1);
        snapshot.gtid_received = snapshot.gtid_executed.clone();
        snapshot.observed_at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let req = HeartbeatRequest {
            registration: Some(registration.clone()),
            sequence: seq,
            agent_run_id: run_id.clone(),
            reason: 1,
            snapshot: Some(snapshot.clone()),
            interval_ms: INTERVAL.as_millis() as u32,
            liveness_interval_ms: ping.map_or(0, |p| p.as_millis() as u32),
        };
        let ok = client
            .heartbeat(req)
            .await
            .is_ok_and(|r| r.get_ref().accepted);
        if measuring.load(Ordering::Relaxed) {
            if ok {
                recorded.heartbeats.lock().await.push(t.elapsed());
            } else {
                FAILED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
