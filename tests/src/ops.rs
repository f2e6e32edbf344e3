//! What the end-to-end tests do with a running world: write through the DNS name,
//! read the ids back, map addresses to hosts, run altairctl.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_testkit::mariadb::sql::query_maps;
use mysql_async::prelude::Queryable;

use crate::world::{CLUSTER, World};

/// Creates table `w`, the one `workload` writes to, on the primary (instance 0).
pub async fn create_workload_table(w: &World) {
    let mut app = w.cluster.app_conn(0).await.expect("app on the primary");
    app.query_drop("CREATE TABLE w (id BIGINT PRIMARY KEY)")
        .await
        .expect("create the workload's table");
}

/// Waits (at most 10 s) for `cluster`'s failover journal to be gone — the record ends
/// it — then checks the epoch moved exactly once (it is 2) and one failover was
/// recorded; returns that record.
pub async fn one_failover_recorded(
    zk: &altair_zk::Zk,
    cluster: &altair_core::ClusterName,
) -> altair_core::registry::FailoverAudit {
    let l = zk.layout();
    let published = Instant::now();
    while zk
        .get(&l.failover_journal(cluster))
        .await
        .expect("read the journal")
        .is_some()
    {
        assert!(
            published.elapsed() < Duration::from_secs(10),
            "journal left behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state: altair_core::registry::ClusterState = zk
        .get_record("state", &l.cluster_state(cluster))
        .await
        .expect("read the state")
        .expect("state");
    assert_eq!(state.epoch, 2, "the epoch must move exactly once");
    let history = zk.children(&l.history(cluster)).await.expect("history");
    assert_eq!(history.len(), 1, "one failover, recorded once: {history:?}");
    zk.get_record("audit", &l.history_entry(cluster, &history[0]))
        .await
        .expect("read the record")
        .expect("the record")
}

/// Whether a client with `cfg` gets a ZooKeeper session and can read `/altair` (within
/// 12 s: a refused TLS handshake may surface only as the session timing out).
pub async fn zk_gets_a_session(cfg: &altair_core::config::ZkConfig) -> bool {
    let attempt = async {
        let zk = altair_zk::Zk::connect(cfg, None).await.ok()?;
        zk.get("/altair").await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(12), attempt).await,
        Ok(Some(_))
    )
}

/// The gRPC endpoint of the monitor that owns the cluster (what `altairctl status`
/// names), to keep it reachable in a partition; empty when no owner is known.
pub async fn owning_monitor_endpoint(w: &World) -> Vec<(Ipv4Addr, u16)> {
    let owner = w
        .status()
        .await
        .ok()
        .and_then(|s| s.clusters[0].monitor.clone());
    w.fleet
        .monitors
        .iter()
        .filter(|m| Some(&m.id) == owner.as_ref())
        .filter_map(|m| m.address.parse::<std::net::SocketAddrV4>().ok())
        .map(|a| (*a.ip(), a.port()))
        .collect()
}

/// Every monitor's gRPC endpoint (to cut them off with nft).
pub fn monitor_endpoints(w: &World) -> Vec<(Ipv4Addr, u16)> {
    w.fleet
        .monitors
        .iter()
        .filter_map(|m| m.address.parse::<std::net::SocketAddrV4>().ok())
        .map(|a| (*a.ip(), a.port()))
        .collect()
}

/// Writes unique ids through `primary.c1` until stopped; returns (acknowledged ids with
/// the address that acknowledged each).
pub async fn workload(w: &World, stop: Arc<AtomicBool>) -> Vec<(u64, Ipv4Addr, Instant)> {
    workload_from(w, stop, 1).await
}

/// `workload` with ids from `first` on (rounds of a chaos run do not collide).
pub async fn workload_from(
    w: &World,
    stop: Arc<AtomicBool>,
    first: u64,
) -> Vec<(u64, Ipv4Addr, Instant)> {
    let dns = w.dns.as_ref().expect("dns");
    let name = format!("primary.{CLUSTER}.{}", dns.zone());
    write_through(dns.addr(), &name, |ip| w.app_opts(ip), stop, first).await
}

/// `writers` concurrent `workload_from`s (each its own connection, ids a million apart
/// from `first` on), their acknowledgements merged in time order: a heavier load.
pub async fn workload_writers(
    w: &World,
    stop: Arc<AtomicBool>,
    first: u64,
    writers: u64,
) -> Vec<(u64, Ipv4Addr, Instant)> {
    let each = (0..writers.max(1)).map(|k| workload_from(w, stop.clone(), first + k * 1_000_000));
    let mut acked: Vec<_> = futures_util::future::join_all(each)
        .await
        .into_iter()
        .flatten()
        .collect();
    acked.sort_by_key(|(_, _, at)| *at);
    acked
}

/// Writes unique ids from `first` on into table `w` of whatever host DNS name `name`
/// (asked of `server`) answers, re-resolving after every failed write, until stopped;
/// the acknowledged ids with the address that acknowledged each.
pub async fn write_through(
    server: std::net::SocketAddr,
    name: &str,
    opts: impl Fn(Ipv4Addr) -> mysql_async::Opts,
    stop: Arc<AtomicBool>,
    first: u64,
) -> Vec<(u64, Ipv4Addr, Instant)> {
    let mut acked = Vec::new();
    let mut next = first;
    while !stop.load(Ordering::SeqCst) {
        let Ok(ips) = altair_dns::lookup_a(server, name, Duration::from_millis(500)).await else {
            continue;
        };
        let Some(ip) = ips.first().copied() else {
            continue;
        };
        let Ok(Ok(mut conn)) =
            tokio::time::timeout(Duration::from_secs(1), mysql_async::Conn::new(opts(ip))).await
        else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        while !stop.load(Ordering::SeqCst) {
            let r = tokio::time::timeout(
                Duration::from_secs(1),
                conn.query_drop(format!("INSERT INTO w (id) VALUES ({next})")),
            )
            .await;
            match r {
                Ok(Ok(())) => {
                    acked.push((next, ip, Instant::now()));
                    next += 1;
                }
                // Refused (read-only), broken or timed out: re-resolve and reconnect.
                _ => {
                    next += 1;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    acked
}

/// Waits until `primary.c1` names another host than `old` and that host accepts
/// `insert` as the application user; the time since `started`. Panics after 60 s.
pub async fn until_writable(w: &World, old: Ipv4Addr, started: Instant, insert: &str) -> Duration {
    until_writable_split(w, old, started, insert).await.1
}

/// [`until_writable`], also telling when the name first answered another host than `old`
/// (both since `started`): what the DNS move and the first write each cost.
pub async fn until_writable_split(
    w: &World,
    old: Ipv4Addr,
    started: Instant,
    insert: &str,
) -> (Duration, Duration) {
    let mut moved = None;
    loop {
        let ips = w.primary_dns().await;
        let new = ips.first().copied().filter(|ip| *ip != old);
        if new.is_some() && moved.is_none() {
            moved = Some(started.elapsed());
        }
        if let Some(ip) = new
            && let Ok(mut c) = mysql_async::Conn::new(w.app_opts(ip)).await
            && c.query_drop(insert).await.is_ok()
        {
            let done = started.elapsed();
            return (moved.unwrap_or(done), done);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failover within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `sig` to instance `i`'s mysqld (SIGKILL: a crash with the host up; SIGSTOP: a
/// freeze).
pub fn signal_mysqld(w: &World, i: usize, sig: nix::sys::signal::Signal) -> nix::Result<()> {
    let pid = w.cluster.instance(i).pid().expect("mysqld pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
}

/// `kill -9` of instance `i`'s mysqld.
pub fn kill_mysqld(w: &World, i: usize) {
    signal_mysqld(w, i, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
}

pub async fn ids_on(w: &World, i: usize) -> BTreeSet<u64> {
    let mut c = w.cluster.admin_conn(i).await.expect("admin");
    workload_ids(&mut c).await
}

/// The ids in the workload's table `app.w`, over connection `c`.
pub async fn workload_ids(c: &mut mysql_async::Conn) -> BTreeSet<u64> {
    query_maps(c, "SELECT id FROM app.w")
        .await
        .expect("select")
        .iter()
        .filter_map(|r| r["id"].as_deref().and_then(|v| v.parse().ok()))
        .collect()
}

/// Connection options for the application user `app` at `ip:3306` (database `app`).
pub fn app_opts(app: &altair_testkit::mariadb::Credentials, ip: Ipv4Addr) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(ip.to_string())
        .tcp_port(3306)
        .user(Some(app.user.clone()))
        .pass(Some(app.password.clone()))
        .db_name(Some("app"))
        .prefer_socket(false)
        .into()
}

/// Waits until `primary.c1` answers an address other than `from`.
pub async fn wait_dns_moved(w: &World, from: Ipv4Addr, timeout: Duration) -> (Ipv4Addr, Duration) {
    let started = Instant::now();
    loop {
        let ips = w.primary_dns().await;
        if let Some(ip) = ips.first().copied().filter(|ip| *ip != from) {
            return (ip, started.elapsed());
        }
        assert!(
            started.elapsed() < timeout,
            "primary.c1 still answers {from} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn host_index(w: &World, ip: Ipv4Addr) -> usize {
    w.net
        .as_ref()
        .expect("net")
        .hosts()
        .iter()
        .position(|h| h.ip == ip)
        .expect("a host of the cluster")
}

/// `altairctl history c1 --json` once it holds `succeeded` successful failovers: the
/// DNS name moves in "publish", the audit record is written by "record" right after.
pub async fn history_with(w: &World, succeeded: usize) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let out = ctl(w, &["--json", "history", "c1"]);
        assert!(out.status.success(), "{}", crate::stderr(&out));
        let json: serde_json::Value = serde_json::from_str(&crate::stdout(&out)).expect("JSON");
        let n = json.as_array().map_or(0, |a| {
            a.iter().filter(|r| r["outcome"] == "succeeded").count()
        });
        if n >= succeeded {
            return json;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "expected {succeeded} successful failovers: {json}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The newest audit record with `outcome`, waiting up to 10 s for it.
pub async fn history_with_outcome(w: &World, outcome: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let out = ctl(w, &["--json", "history", "c1"]);
        assert!(out.status.success(), "{}", crate::stderr(&out));
        let json: serde_json::Value = serde_json::from_str(&crate::stdout(&out)).expect("JSON");
        if let Some(r) = json
            .as_array()
            .and_then(|a| a.iter().find(|r| r["outcome"] == outcome))
        {
            return r.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {outcome} failover in the history: {json}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn ctl(w: &World, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::bin("altairctl"))
        .arg("--config")
        .arg(&w.ctl_config)
        .args(args)
        .output()
        .expect("altairctl")
}

/// `GET /metrics` from a service's Prometheus endpoint: (name with labels → value) for
/// every sample; panics on a line that is not valid exposition text.
pub async fn scrape(addr: &str) -> std::collections::BTreeMap<String, f64> {
    scrape_text(addr)
        .await
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {l:?}"));
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_owned(), v)
        })
        .collect()
}

/// The metric families a scrape declares (`# TYPE name kind`), samples or not.
pub fn declared(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The body of `GET /metrics`, after checking the answer is 200 text/plain.
pub async fn scrape_text(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to the metrics endpoint {addr}: {e}"));
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    let head_lc = head.to_ascii_lowercase();
    assert!(head_lc.contains("content-type: text/plain"), "{head}");
    body.to_owned()
}

/// altairctl's stdout as JSON; panics with both outputs when it is not.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&crate::stdout(out)).unwrap_or_else(|e| {
        panic!(
            "JSON from altairctl: {e}: {}{}",
            crate::stdout(out),
            crate::stderr(out)
        )
    })
}

/// Runs altairctl, checks it exits with `code`, and returns its JSON output.
pub fn ctl_json(w: &World, args: &[&str], code: i32) -> serde_json::Value {
    let out = ctl(w, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "altairctl {args:?}: {}{}",
        crate::stdout(&out),
        crate::stderr(&out)
    );
    json(&out)
}
