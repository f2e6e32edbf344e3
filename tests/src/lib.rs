//! Helpers for the end-to-end tests: find the built binaries, write configs.
//!
//! The binaries are built by `cargo build --workspace --bins` (`make test` does it
//! first). A missing binary fails the test with that instruction.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod grpc;
pub mod multi;
pub mod ops;
pub mod scripted;
pub mod sim_fleet;
pub mod sim_heartbeats;
pub mod soak;
pub mod sysbench;

/// Held by the tests of one test binary that load the disk or the network heavily or
/// measure commit latency: `cargo test` runs a binary's tests two at a time, and two such
/// tests side by side on a 2-core machine measure each other, not altair.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// Where the workspace binaries are (the test executable's target directory).
pub fn bin_dir() -> PathBuf {
    bin("altair-agent").parent().expect("bin dir").to_owned()
}

/// The path of a workspace binary next to this test executable's target directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (`make test` does)",
        path.display()
    );
    path
}

/// Runs `name` with `args` to completion.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory of configs and secret files for one test.
pub struct ConfigDir {
    dir: tempfile::TempDir,
    pki: altair_testkit::pki::Pki,
}

impl ConfigDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = altair_testkit::pki::Pki::new(&dir.path().join("pki"), "altair test")
            .expect("a test CA");
        Self { dir, pki }
    }

    /// A certificate of this directory's CA for `uri`, serving on 127.0.0.1.
    pub fn tls(&self, file: &str, uri: &str) -> altair_testkit::pki::TlsFiles {
        self.pki
            .issue(
                file,
                uri,
                &[std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
            )
            .expect("a test certificate")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` and returns its path as a string.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write config file");
        p.display().to_string()
    }
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A valid agent config listening on `listen`, with password files in `dir`.
pub fn agent_config(dir: &ConfigDir, listen: &str) -> String {
    let pw = dir.write("mysql.password", "agent-mysql-pw\n");
    let repl = dir.write("repl.password", "agent-repl-pw\n");
    format!(
        "[agent]\ncluster = \"c1\"\nhost = \"db1\"\nlisten = \"{listen}\"\n\
         [mysql]\nhost = \"127.0.0.1\"\nuser = \"altair\"\npassword_file = \"{pw}\"\n\
         [replication]\nuser = \"repl\"\npassword_file = \"{repl}\"\n\
         [zookeeper]\nservers = [\"127.0.0.1:2181\"]\n{tls}",
        tls = dir.tls("agent", "altair://agent/c1/db1").section()
    )
}

pub fn monitor_config(dir: &ConfigDir, listen: &str) -> String {
    format!(
        "[monitor]\nid = \"m1\"\nlisten = \"{listen}\"\n\
         [zookeeper]\nservers = [\"127.0.0.1:2181\"]\n{tls}",
        tls = dir.tls("monitor", "altair://monitor/m1").section()
    )
}

/// A valid orchestrator config; `tsig_secret` is written to the secret file.
pub fn orchestrator_config(dir: &ConfigDir, listen: &str, tsig_secret: &str) -> String {
    let pw = dir.write("mysql.password", "orch-mysql-pw\n");
    let repl = dir.write("repl.password", "orch-repl-pw\n");
    let tsig = dir.write("tsig.secret", tsig_secret);
    format!(
        "[orchestrator]\nid = \"o1\"\nlisten = \"{listen}\"\n\
         [mysql]\nuser = \"altair\"\npassword_file = \"{pw}\"\n\
         [replication]\nuser = \"repl\"\npassword_file = \"{repl}\"\n\
         [dns]\nserver = \"127.0.0.1:53\"\nzone = \"db.altair.test.\"\n\
         tsig_key_name = \"altair-update\"\ntsig_secret_file = \"{tsig}\"\n\
         [zookeeper]\nservers = [\"127.0.0.1:2181\"]\n{tls}",
        tls = dir
            .tls("orchestrator", "altair://orchestrator/o1")
            .section()
    )
}

/// A cluster with its agents and monitors, all real: ZooKeeper, MariaDB, the binaries.
pub mod world {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use altair_core::config::ZkConfig;
    use altair_testkit::fleet::{Fleet, FleetTiming};
    use altair_testkit::mariadb::MariaDbCluster;
    use altair_testkit::zookeeper::ZooKeeper;
    use altairctl::status::{Status, status};

    pub const CLUSTER: &str = "c1";
    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// The ZooKeeper a world runs.
    #[derive(Clone, Copy)]
    enum ZkServers {
        /// A standalone server (1) or an ensemble, plaintext.
        Nodes(usize),
        /// A standalone server (1) or an ensemble every service dials over TLS with a
        /// client certificate (an ensemble's servers speak TLS to each other too).
        Tls(usize),
    }

    /// How a world's MariaDB servers run.
    enum Servers {
        Plain,
        /// Each host's binlogs on a filesystem of this many MiB.
        SmallBinlogs(u32),
        /// TCP sessions over TLS only.
        Tls,
    }

    pub struct World {
        pub fleet: Fleet,
        pub cluster: MariaDbCluster,
        pub zk: ZooKeeper,
        pub ctl_config: PathBuf,
        pub timing: FleetTiming,
        pub dns: Option<altair_testkit::bind::Bind>,
        pub net: Option<altair_testkit::netns::TestNet>,
        /// What the test's status reads dial monitors with (a viewer's certificate).
        pub viewer: altair_svc::Tls,
    }

    impl World {
        /// `zk_nodes` ZooKeeper servers, `hosts` MariaDB hosts with agents, `monitors` monitors.
        pub async fn start(zk_nodes: usize, hosts: usize, monitors: usize) -> Self {
            let zk = if zk_nodes == 1 {
                ZooKeeper::standalone(LOCAL).await
            } else {
                ZooKeeper::ensemble(LOCAL, zk_nodes).await
            }
            .expect("start ZooKeeper");
            let cluster = MariaDbCluster::start_loopback(hosts)
                .await
                .expect("start MariaDB");
            // No orchestrator: monitors share its credential (alone, one with its own
            // could not lay out the root or enrol the cluster).
            let timing = FleetTiming {
                role_ids: false,
                ..FleetTiming::default()
            };
            let bin_dir = crate::bin_dir();
            let fleet = Fleet::start(
                &bin_dir,
                CLUSTER,
                &cluster,
                LOCAL,
                zk.servers(),
                monitors,
                timing.clone(),
            )
            .expect("start agents and monitors");
            let ctl_config = fleet.ctl_config().expect("altairctl config");
            let viewer = crate::grpc::viewer(&fleet);
            let world = Self {
                viewer,
                fleet,
                cluster,
                zk,
                ctl_config,
                timing,
                dns: None,
                net: None,
            };
            world.wait_all_healthy(hosts).await;
            world
        }

        /// Hosts in network namespaces (distinct addresses, so DNS can point at one), BIND
        /// for `primary.c1`, agents, `monitors` monitors and `orchestrators` orchestrators
        /// (with `env` for their processes). Needs root.
        pub async fn start_ha(
            hosts: usize,
            monitors: usize,
            orchestrators: usize,
            block_period_s: u64,
            env: &[(&str, &str)],
        ) -> Self {
            Self::start_ha_with(
                hosts,
                monitors,
                orchestrators,
                block_period_s,
                env,
                FleetTiming::default(),
            )
            .await
        }

        /// `start_ha` with the fleet's timing and durability mode given.
        pub async fn start_ha_with(
            hosts: usize,
            monitors: usize,
            orchestrators: usize,
            block_period_s: u64,
            env: &[(&str, &str)],
            timing: FleetTiming,
        ) -> Self {
            Self::start_ha_configured(
                hosts,
                monitors,
                orchestrators,
                block_period_s,
                env,
                timing,
                "",
            )
            .await
        }

        /// `start_ha_with`, with `sections` (whole TOML sections: `[fence]`, `[hooks]`)
        /// added to every orchestrator's config.
        pub async fn start_ha_configured(
            hosts: usize,
            monitors: usize,
            orchestrators: usize,
            block_period_s: u64,
            env: &[(&str, &str)],
            timing: FleetTiming,
            sections: &str,
        ) -> Self {
            Self::start_ha_on(
                (hosts, Servers::Plain, ZkServers::Nodes(1)),
                monitors,
                orchestrators,
                block_period_s,
                env,
                timing,
                sections,
            )
            .await
        }

        /// `start_ha_with`, each host's binlogs on a filesystem of `binlog_mb` MiB of its
        /// own (`cluster.binlog_fs(i)`): a disk a test can fill up; `sections` added to
        /// every orchestrator's config.
        pub async fn start_ha_small_binlogs(
            hosts: usize,
            orchestrators: usize,
            timing: FleetTiming,
            binlog_mb: u32,
            sections: &str,
        ) -> Self {
            Self::start_ha_on(
                (hosts, Servers::SmallBinlogs(binlog_mb), ZkServers::Nodes(1)),
                1,
                orchestrators,
                3600,
                &[],
                timing,
                sections,
            )
            .await
        }

        /// `start_ha` on a ZooKeeper ensemble of `zk_nodes` servers (3: a quorum a test
        /// can lose, a leader it can kill) instead of a standalone server.
        pub async fn start_ha_ensemble(
            hosts: usize,
            monitors: usize,
            orchestrators: usize,
            block_period_s: u64,
            zk_nodes: usize,
            timing: FleetTiming,
        ) -> Self {
            Self::start_ha_on(
                (hosts, Servers::Plain, ZkServers::Nodes(zk_nodes)),
                monitors,
                orchestrators,
                block_period_s,
                &[],
                timing,
                "",
            )
            .await
        }

        /// The chaos world: 3 hosts, 2 monitors, 2 orchestrators without anti-flapping,
        /// a 3-server ZooKeeper ensemble; each host's binlogs on a filesystem of
        /// `binlog_mb` MiB (a disk to fill up); `sections` added to every orchestrator's
        /// config.
        pub async fn start_chaos(timing: FleetTiming, binlog_mb: u32, sections: &str) -> Self {
            Self::start_ha_on(
                (3, Servers::SmallBinlogs(binlog_mb), ZkServers::Nodes(3)),
                2,
                2,
                0,
                &[],
                timing,
                sections,
            )
            .await
        }

        /// `start_ha` with every MariaDB server taking TCP sessions over TLS only, and
        /// every MySQL session of the control plane (admin, replication, probe) over TLS
        /// with the servers' certificates checked (`tls = "verify_identity"`).
        pub async fn start_ha_mysql_tls(hosts: usize, orchestrators: usize) -> Self {
            Self::start_ha_on(
                (hosts, Servers::Tls, ZkServers::Nodes(1)),
                1,
                orchestrators,
                3600,
                &[],
                FleetTiming::default(),
                "",
            )
            .await
        }

        /// `start_ha` with ZooKeeper (`zk_nodes` servers: 1, or an ensemble whose servers
        /// speak TLS to each other) serving a TLS client port that requires a client
        /// certificate: every service and altairctl dial it over TLS only (its
        /// plaintext port stays open for the test's own reads).
        pub async fn start_ha_zk_tls(hosts: usize, orchestrators: usize, zk_nodes: usize) -> Self {
            Self::start_ha_on(
                (hosts, Servers::Plain, ZkServers::Tls(zk_nodes)),
                1,
                orchestrators,
                3600,
                &[],
                FleetTiming::default(),
                "",
            )
            .await
        }

        async fn start_ha_on(
            (hosts, servers, zk_servers): (usize, Servers, ZkServers),
            monitors: usize,
            orchestrators: usize,
            block_period_s: u64,
            env: &[(&str, &str)],
            mut timing: FleetTiming,
            sections: &str,
        ) -> Self {
            use altair_testkit::bind::{Bind, BindOptions};
            timing.role_ids &= orchestrators > 0;
            use altair_testkit::netns::TestNet;
            let net = TestNet::create(hosts)
                .await
                .expect("host namespaces (run as root)");
            let control = IpAddr::V4(net.gateway());
            let zk = match zk_servers {
                ZkServers::Nodes(n) if n > 1 => ZooKeeper::ensemble(control, n).await,
                ZkServers::Nodes(_) => ZooKeeper::standalone(control).await,
                ZkServers::Tls(1) => ZooKeeper::standalone_tls(control).await,
                ZkServers::Tls(n) => ZooKeeper::ensemble_tls(control, n).await,
            }
            .expect("start ZooKeeper");
            if matches!(zk_servers, ZkServers::Tls(_)) {
                timing.zk_client_tls =
                    Some(zk.client_tls("zk-client").expect("a client certificate"));
            }
            let cluster = match servers {
                Servers::Plain => MariaDbCluster::start_in(&net).await,
                Servers::SmallBinlogs(mb) => {
                    MariaDbCluster::start_in_with_small_binlogs(&net, mb).await
                }
                Servers::Tls => MariaDbCluster::start_in_with_tls(&net).await,
            }
            .expect("start MariaDB");
            timing.mysql_tls_ca = cluster.tls_ca().map(std::path::Path::to_owned);
            let mut records = vec![(format!("primary.{CLUSTER}"), net.host(0).ip)];
            for h in &net.hosts()[1..] {
                records.push((format!("replicas.{CLUSTER}"), h.ip));
            }
            let dns = Bind::start(BindOptions {
                records,
                ..BindOptions::default()
            })
            .await
            .expect("start BIND");
            let bin_dir = crate::bin_dir();
            let fleet_zk_servers = if matches!(zk_servers, ZkServers::Tls(_)) {
                zk.secure_servers()
            } else {
                zk.servers()
            };
            let mut fleet = Fleet::start(
                &bin_dir,
                CLUSTER,
                &cluster,
                control,
                fleet_zk_servers,
                monitors,
                timing.clone(),
            )
            .expect("start agents and monitors");
            let target = dns.target();
            for i in 0..orchestrators {
                fleet
                    .start_orchestrator_with(
                        &format!("o{}", i + 1),
                        &target,
                        block_period_s,
                        env,
                        sections,
                    )
                    .expect("start orchestrator");
            }
            let ctl_config = fleet.ctl_config().expect("altairctl config");
            let viewer = crate::grpc::viewer(&fleet);
            let world = Self {
                viewer,
                fleet,
                cluster,
                zk,
                ctl_config,
                timing,
                dns: Some(dns),
                net: Some(net),
            };
            world.wait_all_healthy(hosts).await;
            world
        }

        /// Connection options for the application user at `ip:3306` (a host namespace's
        /// address, e.g. what `primary.c1` answers).
        pub fn app_opts(&self, ip: std::net::Ipv4Addr) -> mysql_async::Opts {
            crate::ops::app_opts(self.cluster.app(), ip)
        }

        /// What the authoritative DNS server answers for `primary.c1` now.
        pub async fn primary_dns(&self) -> Vec<std::net::Ipv4Addr> {
            let dns = self.dns.as_ref().expect("world has DNS");
            altair_dns::lookup_a(
                dns.addr(),
                &format!("primary.{CLUSTER}.{}", dns.zone()),
                Duration::from_secs(1),
            )
            .await
            .unwrap_or_default()
        }

        /// Waits until `altairctl status` shows `hosts` hosts, all healthy.
        pub async fn wait_all_healthy(&self, hosts: usize) {
            self.wait_until("every host healthy", Duration::from_secs(30), |s| {
                s.clusters.first().is_some_and(|c| {
                    c.hosts.len() == hosts
                        && c.hosts
                            .iter()
                            .all(|h| h.health.as_deref() == Some("healthy"))
                })
            })
            .await;
        }

        pub fn zk_config(&self) -> ZkConfig {
            ZkConfig {
                session_timeout_ms: 6_000,
                connect_timeout_ms: 2_000,
                ..ZkConfig::new(self.zk.servers())
            }
        }

        /// Acting as the orchestrator before it drives agents by hand: writes the
        /// cluster's state with `epoch` (primary db1) to ZooKeeper. Agents accept no
        /// epoch ahead of the cluster's.
        pub async fn set_epoch(&self, epoch: u64) {
            use altair_core::registry::{ClusterState, to_json};
            let zk = altair_zk::Zk::connect(&self.zk_config(), Some(&self.fleet.zk_auth()))
                .await
                .expect("ZooKeeper");
            let c = altair_core::ClusterName::new(CLUSTER).expect("cluster");
            let state = ClusterState {
                epoch,
                primary: Some(self.cluster.instance(0).name().to_owned()),
                ..ClusterState::default()
            };
            zk.put(&zk.layout().cluster_state(&c), &to_json(&state))
                .await
                .expect("write the cluster state");
        }

        /// What `altairctl status` reports now.
        pub async fn status(&self) -> Result<Status, String> {
            status(
                &self.zk_config(),
                Some(CLUSTER),
                Duration::from_secs(2),
                &self.viewer,
            )
            .await
            .map_err(|e| e.to_string())
        }

        /// The health `altairctl status` reports for `host`.
        pub async fn health(&self, host: &str) -> Option<String> {
            let s = self.status().await.ok()?;
            s.clusters
                .first()?
                .hosts
                .iter()
                .find(|h| h.name == host)?
                .health
                .clone()
        }

        /// Polls status until `ok`, returning how long it took; panics after `timeout`.
        pub async fn wait_until(
            &self,
            what: &str,
            timeout: Duration,
            ok: impl Fn(&Status) -> bool,
        ) -> Duration {
            let started = Instant::now();
            loop {
                let last = match self.status().await {
                    Ok(s) if ok(&s) => return started.elapsed(),
                    Ok(s) => format!("{s:?}"),
                    Err(e) => e,
                };
                assert!(
                    started.elapsed() < timeout,
                    "{what}: not reached after {timeout:?}; last status: {last}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        pub async fn wait_health(&self, host: &str, health: &str, timeout: Duration) -> Duration {
            self.wait_until(&format!("{host} {health}"), timeout, |s| {
                s.clusters
                    .first()
                    .and_then(|c| c.hosts.iter().find(|h| h.name == host))
                    .and_then(|h| h.health.as_deref())
                    == Some(health)
            })
            .await
        }
    }
}
