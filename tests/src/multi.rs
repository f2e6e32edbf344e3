//! A fleet of several clusters (`c1`, `c2`, …) behind one control plane: every host in
//! a network namespace of one test network, one BIND serving `primary.<cluster>` for
//! each, one ZooKeeper, shared monitors and orchestrators. Needs root.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use altair_core::config::ZkConfig;
use altair_core::registry::{FailoverAudit, HealthRecord};
use altair_testkit::bind::{Bind, BindOptions};
use altair_testkit::fleet::{Fleet, FleetTiming};
use altair_testkit::mariadb::{HostAddr, MariaDbCluster};
use altair_testkit::netns::TestNet;
use altair_testkit::zookeeper::ZooKeeper;
use altairctl::status::{Status, status};
use mysql_async::prelude::Queryable;

pub struct Fleetwide {
    pub net: TestNet,
    pub zk: ZooKeeper,
    pub dns: Bind,
    /// `clusters[k]` is cluster `c{k+1}`; its hosts are `hosts` consecutive hosts of `net`.
    pub clusters: Vec<MariaDbCluster>,
    pub fleet: Fleet,
    hosts: usize,
    viewer: altair_svc::Tls,
}

/// How often a wait for a DNS move asks BIND: small against a failover's ~40 ms, so
/// that a measured time is the failover's and not the poll's.
const DNS_POLL: Duration = Duration::from_millis(5);

pub fn name(k: usize) -> String {
    format!("c{}", k + 1)
}

impl Fleetwide {
    /// `clusters` clusters of `hosts` hosts, 2 monitors and one orchestrator with
    /// `orchestrator_sections` added to its config; returns once every host is healthy
    /// and every cluster has its table `w`.
    pub async fn start(
        clusters: usize,
        hosts: usize,
        block_period_s: u64,
        orchestrator_sections: &str,
    ) -> Self {
        Self::start_with(
            clusters,
            hosts,
            block_period_s,
            orchestrator_sections,
            FleetTiming::default(),
        )
        .await
    }

    /// As `start`, with the fleet's timing and options (datacenters among them).
    pub async fn start_with(
        clusters: usize,
        hosts: usize,
        block_period_s: u64,
        orchestrator_sections: &str,
        timing: FleetTiming,
    ) -> Self {
        let net = TestNet::create(clusters * hosts)
            .await
            .expect("host namespaces (run as root)");
        let control = IpAddr::V4(net.gateway());
        let zk = ZooKeeper::standalone(control)
            .await
            .expect("start ZooKeeper");
        let warm = std::time::Instant::now();
        warm_up_zookeeper(&ZkConfig::new(zk.servers())).await;
        eprintln!("ZooKeeper warmed up in {:?}", warm.elapsed());
        let mut dbs: Vec<MariaDbCluster> = Vec::new();
        let mut records = Vec::new();
        for k in 0..clusters {
            let addrs: Vec<HostAddr> = net.hosts()[k * hosts..(k + 1) * hosts]
                .iter()
                .map(|h| HostAddr {
                    ip: IpAddr::V4(h.ip),
                    namespace: Some(h.namespace.clone()),
                })
                .collect();
            let db = match dbs.first() {
                None => MariaDbCluster::start(addrs).await,
                Some(first) => MariaDbCluster::start_sharing_users(addrs, first).await,
            }
            .unwrap_or_else(|e| panic!("start MariaDB of {}: {e}", name(k)));
            records.push((format!("primary.{}", name(k)), net.host(k * hosts).ip));
            dbs.push(db);
        }
        let dns = Bind::start(BindOptions {
            records,
            ..BindOptions::default()
        })
        .await
        .expect("start BIND");
        let bin_dir = crate::bin_dir();
        let mut fleet = Fleet::start(
            &bin_dir,
            &name(0),
            &dbs[0],
            control,
            zk.servers(),
            2,
            timing,
        )
        .expect("start agents and monitors");
        for (k, db) in dbs.iter().enumerate().skip(1) {
            fleet
                .add_cluster(&name(k), db)
                .unwrap_or_else(|e| panic!("agents of {}: {e}", name(k)));
        }
        fleet
            .start_orchestrator_with(
                "o1",
                &dns.target(),
                block_period_s,
                &[],
                orchestrator_sections,
            )
            .expect("start orchestrator");
        for db in &dbs {
            let mut app = db.app_conn(0).await.expect("app on a primary");
            app.query_drop("CREATE TABLE w (id BIGINT PRIMARY KEY)")
                .await
                .expect("create the workload's table");
        }
        let viewer = crate::grpc::viewer(&fleet);
        let world = Self {
            viewer,
            net,
            zk,
            dns,
            clusters: dbs,
            fleet,
            hosts,
        };
        world.wait_all_healthy().await;
        world
    }

    fn zk_config(&self) -> ZkConfig {
        ZkConfig {
            session_timeout_ms: 6_000,
            connect_timeout_ms: 2_000,
            ..ZkConfig::new(self.zk.servers())
        }
    }

    pub async fn status(&self) -> Result<Status, String> {
        status(
            &self.zk_config(),
            None,
            Duration::from_secs(2),
            &self.viewer,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Runs altairctl (as an operator of this fleet) with `args`.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        let config = self.fleet.ctl_config().expect("altairctl config");
        std::process::Command::new(crate::bin("altairctl"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("altairctl")
    }

    /// Waits until every cluster has a primary and all its hosts healthy.
    pub async fn wait_all_healthy(&self) {
        let started = Instant::now();
        loop {
            let last = match self.status().await {
                Ok(s)
                    if s.clusters.len() == self.clusters.len()
                        && s.clusters.iter().all(|c| {
                            c.primary.is_some()
                                && c.hosts.len() == self.hosts
                                && c.hosts
                                    .iter()
                                    .all(|h| h.health.as_deref() == Some("healthy"))
                        }) =>
                {
                    return;
                }
                Ok(s) => format!("{s:?}"),
                Err(e) => e,
            };
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not every host of every cluster is healthy after 60 s; last status: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What BIND answers for `primary.<cluster k>` now.
    pub async fn primary_dns(&self, k: usize) -> Option<Ipv4Addr> {
        altair_dns::lookup_a(
            self.dns.addr(),
            &format!("primary.{}.{}", name(k), self.dns.zone()),
            Duration::from_secs(1),
        )
        .await
        .ok()?
        .first()
        .copied()
    }

    /// Waits until `primary.<cluster k>` answers an address other than `from`; the new
    /// address and when it was first seen.
    pub async fn wait_dns_moved(
        &self,
        k: usize,
        from: Ipv4Addr,
        timeout: Duration,
    ) -> (Ipv4Addr, Instant) {
        let started = Instant::now();
        loop {
            if let Some(ip) = self.primary_dns(k).await.filter(|ip| *ip != from) {
                return (ip, Instant::now());
            }
            assert!(
                started.elapsed() < timeout,
                "primary.{} still answers {from} after {timeout:?}",
                name(k)
            );
            tokio::time::sleep(DNS_POLL).await;
        }
    }

    /// `wait_dns_moved` for several clusters at once (`(k, from)` each), every name
    /// polled at the same time so that no cluster's time waits on another's poll.
    pub async fn wait_all_dns_moved(
        &self,
        olds: &[(usize, Ipv4Addr)],
        timeout: Duration,
    ) -> Vec<(Ipv4Addr, Instant)> {
        futures_util::future::join_all(
            olds.iter()
                .map(|&(k, from)| self.wait_dns_moved(k, from, timeout)),
        )
        .await
    }

    /// Cluster `k`'s latest failover record and its old primary's health record; `None`
    /// when it has none yet or ZooKeeper could not be read (a diagnostic: it never
    /// panics in place of the assertion it explains).
    pub async fn last_failover(&self, k: usize) -> Option<FailoverTrace> {
        let zk = altair_zk::Zk::connect(&self.zk_config(), None).await.ok()?;
        let c = altair_core::ClusterName::new(name(k)).ok()?;
        let l = zk.layout().clone();
        let mut ids = zk.children(&l.history(&c)).await.ok()?;
        ids.sort();
        let id = ids.last()?;
        let audit: FailoverAudit = zk
            .get_record("audit", &l.history_entry(&c, id))
            .await
            .ok()??;
        let old = altair_core::HostName::new(audit.journal.old_primary.clone()).ok()?;
        let death = zk
            .get_record("health", &l.host_health(&c, &old))
            .await
            .ok()?;
        Some(FailoverTrace { k, audit, death })
    }

    /// Waits until the host every `primary.<cluster>` names accepts writes.
    pub async fn wait_until_all_writable(&self, timeout: Duration) {
        let started = Instant::now();
        for k in 0..self.clusters.len() {
            loop {
                if let Some(ip) = self.primary_dns(k).await
                    && let Ok(mut c) = mysql_async::Conn::new(self.app_opts(k, ip)).await
                    && c.query_first::<u8, _>("SELECT @@global.read_only")
                        .await
                        .ok()
                        .flatten()
                        == Some(0)
                {
                    break;
                }
                assert!(
                    started.elapsed() < timeout,
                    "primary.{} does not name a writable host after {timeout:?}",
                    name(k)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Connection options for the application user at `ip:3306` (cluster `k`).
    pub fn app_opts(&self, k: usize, ip: Ipv4Addr) -> mysql_async::Opts {
        crate::ops::app_opts(self.clusters[k].app(), ip)
    }

    /// The instance of cluster `k` at `ip`.
    pub fn instance_at(&self, k: usize, ip: Ipv4Addr) -> usize {
        self.clusters[k]
            .instances()
            .iter()
            .position(|i| i.ip() == IpAddr::V4(ip))
            .unwrap_or_else(|| panic!("{ip} is not a host of {}", name(k)))
    }

    /// `kill -9` of the mysqld at `ip` (a host of cluster `k`; the host stays up).
    pub fn kill_mysqld(&self, k: usize, ip: Ipv4Addr) {
        let i = self.instance_at(k, ip);
        let pid = self.clusters[k].instance(i).pid().expect("mysqld pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9");
    }

    /// Writes through `primary.<cluster k>` until stopped (see `ops::write_through`).
    pub fn writer(
        &self,
        k: usize,
        stop: Arc<AtomicBool>,
    ) -> impl std::future::Future<Output = Vec<(u64, Ipv4Addr, Instant)>> + Send + 'static {
        let server = self.dns.addr();
        let dns_name = format!("primary.{}.{}", name(k), self.dns.zone());
        let app = self.clusters[k].app().clone();
        async move {
            crate::ops::write_through(
                server,
                &dns_name,
                |ip| crate::ops::app_opts(&app, ip),
                stop,
                1,
            )
            .await
        }
    }

    /// The ids in table `w` of the mysqld at `ip` (cluster `k`).
    pub async fn ids_at(&self, k: usize, ip: Ipv4Addr) -> BTreeSet<u64> {
        let i = self.instance_at(k, ip);
        let mut c = self.clusters[k].admin_conn(i).await.expect("admin");
        crate::ops::workload_ids(&mut c).await
    }
}

/// Milliseconds since the Unix epoch (the clock of the audit records' stage times).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One cluster's latest failover, as recorded: what its stages took and when its old
/// primary's death was published.
#[derive(Debug, Clone)]
pub struct FailoverTrace {
    /// The cluster (`c{k+1}`).
    pub k: usize,
    pub audit: FailoverAudit,
    /// The old primary's health record (its `since` is when the monitor judged it).
    pub death: Option<HealthRecord>,
}

impl FailoverTrace {
    /// The failover on a line, in ms after its kill (`killed_unix`): the death published,
    /// each stage's start and end, and the DNS move (`moved_ms`).
    pub fn timeline(&self, killed_unix: u64, moved_ms: f64) -> String {
        let at = |unix: u64| unix as i64 - killed_unix as i64;
        let mut line = format!("{}:", name(self.k));
        if let Some(h) = &self.death {
            line += &format!(" {} {}", h.health.as_str(), at(h.since_unix_ms));
        }
        for st in &self.audit.journal.stages {
            line += &format!(
                " | {} {}–{}",
                st.name,
                at(st.started_at_ms),
                at(st.started_at_ms + st.duration_ms)
            );
        }
        line + &format!(" | DNS {moved_ms:.0}")
    }
}

/// Warm-up clients working at once, and the rounds each runs (6 requests a round, 3 of
/// them writes).
const WARM_UP_TASKS: usize = 16;
const WARM_UP_ROUNDS: u32 = 150;

/// Runs the requests a failover makes of ZooKeeper (creates, sets, fenced multi-ops,
/// batched reads, lists, watch events, deletes), ~14,000 of them, under `/warm-up`,
/// then removes it: a test server is seconds old, and its JVM would otherwise compile
/// these paths during the first failovers measured, on the cores they run on.
pub async fn warm_up_zookeeper(cfg: &ZkConfig) {
    let zk = Arc::new(
        altair_zk::Zk::connect(cfg, None)
            .await
            .expect("zookeeper for the warm-up"),
    );
    let root = "/warm-up";
    zk.put(root, b"").await.expect("warm-up root");
    let _watch = zk.watch_tree(root).await.expect("warm-up watch");
    let tasks = (0..WARM_UP_TASKS).map(|t| {
        let zk = zk.clone();
        async move {
            let (a, b) = (format!("{root}/a{t}"), format!("{root}/b{t}"));
            for i in 0..WARM_UP_ROUNDS {
                let data = i.to_string().into_bytes();
                zk.put(&a, &data).await.expect("warm-up set");
                zk.fenced_write(
                    root,
                    &[
                        altair_zk::Op::Set {
                            path: a.clone(),
                            data: data.clone(),
                            version: None,
                        },
                        altair_zk::Op::Create {
                            path: b.clone(),
                            data: data.clone(),
                        },
                    ],
                )
                .await
                .expect("warm-up multi");
                zk.read_all(&[altair_zk::Read::Data(&a), altair_zk::Read::Data(&b)])
                    .await
                    .expect("warm-up read");
                zk.children(root).await.expect("warm-up list");
                zk.get(&b).await.expect("warm-up get");
                zk.delete(&b).await.expect("warm-up delete");
            }
            zk.delete(&a).await.expect("warm-up delete");
        }
    });
    futures_util::future::join_all(tasks).await;
    zk.delete(root).await.expect("warm-up root delete");
}
