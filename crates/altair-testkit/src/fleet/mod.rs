//! Real altair agents and monitors for tests and the sandbox: one agent per MariaDB
//! instance (inside the host's namespace when there is one) and a fleet of monitors,
//! each the real binary with a config file written here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::mariadb::MariaDbCluster;
use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::{Error, Result, io_err, temp_dir};

mod logs;
pub use logs::LogMarks;

pub const AGENT_PORT: u16 = 7400;
/// The agents' Prometheus port in host namespaces.
pub const AGENT_METRICS_PORT: u16 = 9104;

/// Timing of the fleet (tests shorten the 10 s production heartbeat), and the agents'
/// durability mode.
#[derive(Debug, Clone)]
pub struct FleetTiming {
    pub heartbeat_ms: u64,
    pub probe_ms: u64,
    pub probe_timeout_ms: u64,
    pub zk_session_timeout_ms: u64,
    /// `agent.durability`: `async` or `semi_sync`.
    pub durability: &'static str,
    /// Mutual TLS on every service (on by default; off only to measure what it costs).
    pub tls: bool,
    /// `agent.self_fence_after_ms`; `None`: the agent's default (2 liveness pings).
    pub self_fence_after_ms: Option<u64>,
    /// `agent.liveness_interval_ms` (0: no pings).
    pub liveness_ms: u64,
    /// `agent.datacenter` of each host, by cluster name (in instance order); a host not
    /// listed gets the agent's default (`dc1`).
    pub datacenters: std::collections::BTreeMap<String, Vec<String>>,
    /// Each orchestrator serves the web console (`[console]`) this way; `None`: off.
    pub console: Option<ConsoleMode>,
    /// `agent.write_stall_after_ms`; `None`: the agent's default.
    pub write_stall_after_ms: Option<u64>,
    /// Every MySQL session of the control plane over TLS (`tls = "verify_identity"`),
    /// servers' certificates signed by this CA (a cluster started with TLS).
    pub mysql_tls_ca: Option<PathBuf>,
    /// Every service (and altairctl) dials ZooKeeper over TLS with this client
    /// certificate (see `ZooKeeper::client_tls`); the fleet's ZooKeeper servers are then
    /// the TLS ports.
    pub zk_client_tls: Option<crate::pki::TlsFiles>,
    /// Monitors and orchestrators hold ZooKeeper identities of their own
    /// (`zookeeper.orchestrator_id` / `monitor_id`; on by default). Off for a fleet
    /// without orchestrators: its monitors could not enrol a cluster or lay out the root.
    pub role_ids: bool,
}

impl FleetTiming {
    /// The `tls`/`tls_ca_file` lines of a MySQL account's section.
    fn mysql_tls_lines(&self) -> String {
        self.mysql_tls_ca.as_ref().map_or_else(String::new, |ca| {
            format!(
                "tls = \"verify_identity\"\ntls_ca_file = \"{}\"\n",
                ca.display()
            )
        })
    }
}

/// How the orchestrators' web console authenticates (`console.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleMode {
    /// HTTPS; browsers present an operator certificate of the fleet's CA.
    ClientCertificate,
    /// Plain HTTP behind a proxy on the control address that sets `X-Remote-User`.
    ProxyHeader,
}

impl FleetTiming {
    /// The shipped defaults of agents and monitors (10 s heartbeats, 1 s pings, 1 s
    /// probes): what an operator runs without tuning.
    pub fn shipped() -> Self {
        Self {
            heartbeat_ms: 10_000,
            probe_ms: 1_000,
            probe_timeout_ms: 800,
            liveness_ms: 1_000,
            ..Self::default()
        }
    }
}

impl Default for FleetTiming {
    fn default() -> Self {
        Self {
            heartbeat_ms: 1_000,
            probe_ms: 200,
            probe_timeout_ms: 150,
            zk_session_timeout_ms: 4_000,
            durability: "async",
            tls: true,
            self_fence_after_ms: None,
            liveness_ms: 1_000,
            datacenters: std::collections::BTreeMap::new(),
            console: None,
            write_stall_after_ms: None,
            mysql_tls_ca: None,
            zk_client_tls: None,
            role_ids: true,
        }
    }
}

#[derive(Debug)]
pub struct RunningService {
    pub id: String,
    /// `host:port` of its gRPC API.
    pub address: String,
    /// `host:port` of its Prometheus endpoint (`GET /metrics`).
    pub metrics: String,
    pub config: PathBuf,
    proc: Option<Proc>,
    /// How to start it again (agents): the program and its arguments, and its log.
    respawn: Option<(Vec<std::ffi::OsString>, PathBuf)>,
    /// `host:port` of its web console (orchestrators with `FleetTiming::console`).
    pub console: Option<String>,
    _port: Option<Port>,
    _metrics_port: Option<Port>,
    _console_port: Option<Port>,
}

impl RunningService {
    pub fn proc(&self) -> Option<&Proc> {
        self.proc.as_ref()
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Whether its process still runs (false once it exited on its own, or was killed).
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Starts a killed agent again with the same config, as an init system would.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let (argv, log) = self.respawn.clone().ok_or_else(|| Error::Command {
            what: format!("restart {}", self.id),
            detail: "only agents are restarted this way".into(),
        })?;
        let (program, args) = argv.split_first().ok_or_else(|| Error::Command {
            what: format!("restart {}", self.id),
            detail: "no command".into(),
        })?;
        let mut cmd = std::process::Command::new(program);
        cmd.args(args).env("RUST_LOG", "info");
        self.proc = Some(Proc::spawn(&self.id, &mut cmd, &log)?);
        Ok(())
    }

    pub fn pause(&self) -> Result<()> {
        self.running()?.pause()
    }

    pub fn resume(&self) -> Result<()> {
        self.running()?.resume()
    }

    fn running(&self) -> Result<&Proc> {
        self.proc.as_ref().ok_or_else(|| Error::Command {
            what: format!("signal {}", self.id),
            detail: "not running".into(),
        })
    }
}

/// Where the orchestrators publish the primary's DNS name.
#[derive(Debug, Clone)]
pub struct DnsTarget {
    pub server: std::net::SocketAddr,
    pub zone: String,
    pub tsig_key_name: String,
    pub tsig_secret_file: PathBuf,
}

/// Agents for every instance of a cluster, monitors and orchestrators.
#[derive(Debug)]
pub struct Fleet {
    pub agents: Vec<RunningService>,
    pub monitors: Vec<RunningService>,
    pub orchestrators: Vec<RunningService>,
    /// The extra config sections each orchestrator was last started with, by id: a
    /// restart through `start_orchestrator` keeps them (a restarted leader without the
    /// test's `[write_stall]` policy once made a chaos round fail).
    orchestrator_sections: std::collections::HashMap<String, String>,
    admin: (String, PathBuf),
    repl: (String, PathBuf),
    bin_dir: PathBuf,
    control_ip: IpAddr,
    zk_servers: Vec<String>,
    timing: FleetTiming,
    /// The CA every service's certificate comes from (mutual TLS is on in every test).
    pki: crate::pki::Pki,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// The `user:password` every service of the fleet authenticates to ZooKeeper with
    /// (digest): what a test needs to write where altair's ACL lets only altair write.
    pub fn zk_auth(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("zk.auth"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// The `[tls]` section of a service's config: a certificate for `uri` serving on
    /// `ips`, or `insecure = true` when the fleet runs without TLS.
    fn tls_section(&self, file: &str, uri: &str, ips: &[IpAddr]) -> Result<String> {
        if self.timing.tls {
            Ok(self.pki.issue(file, uri, ips)?.section())
        } else {
            Ok("\n[tls]\ninsecure = true\n".to_owned())
        }
    }

    /// A certificate of this fleet's CA for `uri` serving on `ips`, written over the
    /// files `file` names (a renewed certificate: the service reads it on SIGHUP).
    pub fn issue(&self, file: &str, uri: &str, ips: &[IpAddr]) -> Result<crate::pki::TlsFiles> {
        self.pki.issue(file, uri, ips)
    }

    /// The files a service named `file` (`monitor-m1`) serves with, and the CA.
    pub fn tls_files(&self, file: &str) -> crate::pki::TlsFiles {
        self.pki.files(file)
    }

    /// The address the monitors and orchestrators serve on.
    pub fn control_ip(&self) -> IpAddr {
        self.control_ip
    }

    /// A certificate of this fleet's CA for `uri` (`altair://orchestrator/t`,
    /// `altair://operator/alice?role=viewer`): what a test's own client dials with.
    pub fn client_tls(&self, file: &str, uri: &str) -> Result<crate::pki::TlsFiles> {
        self.pki.issue(file, uri, &[])
    }

    /// Starts an agent per instance of `cluster` (named `cluster_name`) and `monitors`
    /// monitors on `control_ip` (the bridge address when hosts are namespaces).
    pub fn start(
        bin_dir: &Path,
        cluster_name: &str,
        cluster: &MariaDbCluster,
        control_ip: IpAddr,
        zk_servers: Vec<String>,
        monitors: usize,
        timing: FleetTiming,
    ) -> Result<Self> {
        let dir = temp_dir("altair-fleet-")?;
        let pw_dir = dir.path().to_owned();
        let pki = crate::pki::Pki::new(&dir.path().join("pki"), "altair test fleet")?;
        let mut fleet = Self {
            agents: Vec::new(),
            monitors: Vec::new(),
            orchestrators: Vec::new(),
            orchestrator_sections: std::collections::HashMap::new(),
            admin: (cluster.admin().user.clone(), pw_dir.join("mysql.password")),
            repl: (cluster.repl().user.clone(), pw_dir.join("repl.password")),
            bin_dir: bin_dir.to_owned(),
            control_ip,
            zk_servers,
            timing,
            pki,
            dir,
        };
        let zk_password: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..24)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        fleet.write("zk.auth", &format!("altair:{zk_password}\n"))?;
        let monitor_password: String = zk_password.chars().rev().collect();
        fleet.write("zk-monitor.auth", &format!("monitor:{monitor_password}\n"))?;
        for i in 0..monitors {
            fleet.start_monitor(&format!("m{}", i + 1))?;
        }
        let pw = fleet.write("mysql.password", &cluster.admin().password)?;
        fleet.write("repl.password", &cluster.repl().password)?;
        fleet.write("probe.password", &cluster.probe().password)?;
        fleet.start_agents(cluster_name, cluster, "", &pw)?;
        Ok(fleet)
    }

    /// Starts an agent per instance of one more cluster, `cluster_name`, whose users are
    /// those of the first (see `MariaDbCluster::start_sharing_users`). Its agents are
    /// `agent-<cluster_name>-<host>`.
    pub fn add_cluster(&mut self, cluster_name: &str, cluster: &MariaDbCluster) -> Result<()> {
        let same = std::fs::read_to_string(&self.admin.1).ok().as_deref()
            == Some(cluster.admin().password.as_str())
            && self.admin.0 == cluster.admin().user
            && self.repl.0 == cluster.repl().user;
        if !same {
            return Err(Error::Command {
                what: format!("add cluster {cluster_name}"),
                detail: "its users differ from the fleet's (start it with start_sharing_users)"
                    .into(),
            });
        }
        let pw = self.admin.1.clone();
        self.start_agents(cluster_name, cluster, &format!("{cluster_name}-"), &pw)
    }

    fn start_agents(
        &mut self,
        cluster_name: &str,
        cluster: &MariaDbCluster,
        prefix: &str,
        pw: &Path,
    ) -> Result<()> {
        let fleet = self;
        let repl = fleet.repl.1.clone();
        for (n, inst) in cluster.instances().iter().enumerate() {
            let datacenter = fleet
                .timing
                .datacenters
                .get(cluster_name)
                .and_then(|dcs| dcs.get(n))
                .map_or_else(String::new, |dc| format!("datacenter = \"{dc}\"\n"));
            let (listen_ip, port) = match inst.namespace() {
                Some(_) => (inst.ip(), None),
                None => {
                    let p = reserve(inst.ip())?;
                    (inst.ip(), Some(p))
                }
            };
            let agent_port = port.as_ref().map_or(AGENT_PORT, Port::get);
            let address = format!("{listen_ip}:{agent_port}");
            let metrics_port = match inst.namespace() {
                Some(_) => None,
                None => Some(reserve(inst.ip())?),
            };
            let metrics = format!(
                "{listen_ip}:{}",
                metrics_port.as_ref().map_or(AGENT_METRICS_PORT, Port::get)
            );
            let t = &fleet.timing;
            let config = format!(
                "[agent]\ncluster = \"{cluster_name}\"\nhost = \"{host}\"\nlisten = \"{address}\"\n\
                 probe_interval_ms = {probe}\nprobe_timeout_ms = {probe_timeout}\nheartbeat_interval_ms = {hb}\nliveness_interval_ms = {liveness}\n\
                 state_dir = \"{state}\"\ndurability = \"{durability}\"\n{self_fence}{write_stall}{datacenter}\
                 [mysql]\nhost = \"{mip}\"\nport = {mport}\nuser = \"{user}\"\npassword_file = \"{pw}\"\n{mtls}\
                 [replication]\nuser = \"{ruser}\"\npassword_file = \"{repl}\"\n{mtls}\
                 [probe]\nuser = \"{quser}\"\npassword_file = \"{qpw}\"\n{mtls}{zk}\n\
                 [metrics]\nlisten = \"{metrics}\"\n",
                host = inst.name(),
                state = fleet
                    .dir
                    .path()
                    .join(format!("state-{prefix}{}", inst.name()))
                    .display(),
                probe = t.probe_ms,
                probe_timeout = t.probe_timeout_ms,
                hb = t.heartbeat_ms,
                liveness = t.liveness_ms,
                durability = t.durability,
                self_fence = t
                    .self_fence_after_ms
                    .map_or_else(String::new, |ms| format!("self_fence_after_ms = {ms}\n")),
                write_stall = t
                    .write_stall_after_ms
                    .map_or_else(String::new, |ms| format!("write_stall_after_ms = {ms}\n")),
                mip = inst.ip(),
                mport = inst.port(),
                mtls = t.mysql_tls_lines(),
                user = cluster.admin().user,
                pw = pw.display(),
                ruser = cluster.repl().user,
                repl = repl.display(),
                quser = cluster.probe().user,
                qpw = fleet.dir.path().join("probe.password").display(),
                // An agent holds no ZooKeeper credential: its monitor registers it.
                zk = fleet.zk_section_without_auth(),
            );
            let id = format!("agent-{prefix}{}", inst.name());
            let tls = fleet.tls_section(
                &id,
                &format!("altair://agent/{cluster_name}/{}", inst.name()),
                &[listen_ip],
            )?;
            let config = format!("{config}{tls}");
            let cfg = fleet.write(&format!("{id}.toml"), &config)?;
            let bin = fleet.bin("altair-agent")?;
            let mut cmd = match inst.namespace() {
                Some(ns) => {
                    let mut c = std::process::Command::new("ip");
                    c.args(["netns", "exec", ns]).arg(bin);
                    c
                }
                None => std::process::Command::new(bin),
            };
            cmd.arg("--config").arg(&cfg).env("RUST_LOG", "info");
            let log = fleet.dir.path().join(format!("{id}.log"));
            let argv: Vec<std::ffi::OsString> = std::iter::once(cmd.get_program().to_owned())
                .chain(cmd.get_args().map(ToOwned::to_owned))
                .collect();
            let proc = Proc::spawn(&id, &mut cmd, &log)?;
            fleet.agents.push(RunningService {
                id,
                address,
                metrics,
                config: cfg,
                proc: Some(proc),
                respawn: Some((argv, log)),
                _port: port,
                _metrics_port: metrics_port,
                console: None,
                _console_port: None,
            });
        }
        Ok(())
    }

    /// Starts one more monitor (or restarts a killed one) with id `id`.
    pub fn start_monitor(&mut self, id: &str) -> Result<()> {
        self.start_monitor_env(id, &[])
    }

    /// `start_monitor` with `env` passed to its process (config overrides such as
    /// `ALTAIR_MONITOR__TLS__RELOAD_INTERVAL_MS`).
    pub fn start_monitor_env(&mut self, id: &str, env: &[(&str, &str)]) -> Result<()> {
        let (port, metrics_port, _) = match take_ports(&mut self.monitors, id) {
            Some(p) => p,
            None => (reserve(self.control_ip)?, reserve(self.control_ip)?, None),
        };
        let address = format!("{}:{}", self.control_ip, port.get());
        let tls = self.tls_section(
            &format!("monitor-{id}"),
            &format!("altair://monitor/{id}"),
            &[self.control_ip],
        )?;
        let config = format!(
            "[monitor]\nid = \"{id}\"\nlisten = \"{address}\"\nheartbeat_interval_ms = {hb}\n{zk}{tls}",
            hb = self.timing.heartbeat_ms,
            zk = self.zk_section_of_monitor(),
            tls = tls,
        );
        let service = self.spawn("monitor", id, address, (port, metrics_port), &config, env)?;
        self.monitors.push(service);
        Ok(())
    }

    /// Starts an orchestrator `id`; `env` is passed to its process (test pause points).
    /// Restarted, it gets the sections it was last started with.
    pub fn start_orchestrator(
        &mut self,
        id: &str,
        dns: &DnsTarget,
        block_period_s: u64,
        env: &[(&str, &str)],
    ) -> Result<()> {
        let sections = self
            .orchestrator_sections
            .get(id)
            .cloned()
            .unwrap_or_default();
        self.start_orchestrator_with(id, dns, block_period_s, env, &sections)
    }

    /// `start_orchestrator` with `sections` (whole TOML sections, e.g. `[hooks]`)
    /// added to its config.
    pub fn start_orchestrator_with(
        &mut self,
        id: &str,
        dns: &DnsTarget,
        block_period_s: u64,
        env: &[(&str, &str)],
        sections: &str,
    ) -> Result<()> {
        self.orchestrator_sections
            .insert(id.to_owned(), sections.to_owned());
        // A restarted orchestrator keeps its addresses, as on a real host (altairctl's
        // config lists them).
        let (port, metrics_port, console_port) = match take_ports(&mut self.orchestrators, id) {
            Some(p) => p,
            None => (reserve(self.control_ip)?, reserve(self.control_ip)?, None),
        };
        let console_port = match (self.timing.console, console_port) {
            (None, _) => None,
            (Some(_), Some(p)) => Some(p),
            (Some(_), None) => Some(reserve(self.control_ip)?),
        };
        let console_address = console_port
            .as_ref()
            .map(|p| format!("{}:{}", self.control_ip, p.get()));
        let console_section = match (self.timing.console, &console_address) {
            (Some(ConsoleMode::ClientCertificate), Some(a)) => {
                format!("[console]\nlisten = \"{a}\"\nauth = \"client_certificate\"\n")
            }
            (Some(ConsoleMode::ProxyHeader), Some(a)) => format!(
                "[console]\nlisten = \"{a}\"\nauth = \"proxy_header\"\ntrusted_proxies = [\"{}\"]\n",
                self.control_ip
            ),
            _ => String::new(),
        };
        let sections = format!("{sections}{console_section}");
        let address = format!("{}:{}", self.control_ip, port.get());
        let tls = self.tls_section(
            &format!("orchestrator-{id}"),
            &format!("altair://orchestrator/{id}"),
            &[self.control_ip],
        )?;
        let config = format!(
            "[orchestrator]\nid = \"{id}\"\nlisten = \"{address}\"\nverify_timeout_ms = 1000\nfailover_block_period_s = {block_period_s}\n\
             [mysql]\nuser = \"{au}\"\npassword_file = \"{ap}\"\n{mtls}\
             [replication]\nuser = \"{ru}\"\npassword_file = \"{rp}\"\n\
             [dns]\nserver = \"{server}\"\nzone = \"{zone}\"\nttl_s = 1\ntsig_key_name = \"{key}\"\ntsig_secret_file = \"{secret}\"\n{zk}\n{sections}{tls}",
            au = self.admin.0,
            ap = self.admin.1.display(),
            mtls = self.timing.mysql_tls_lines(),
            ru = self.repl.0,
            rp = self.repl.1.display(),
            server = dns.server,
            zone = dns.zone,
            key = dns.tsig_key_name,
            secret = dns.tsig_secret_file.display(),
            zk = self.zk_section(),
            tls = tls,
        );
        let mut service = self.spawn(
            "orchestrator",
            id,
            address,
            (port, metrics_port),
            &config,
            env,
        )?;
        service.console = console_address;
        service._console_port = console_port;
        self.orchestrators.push(service);
        Ok(())
    }

    /// Writes `kind-id.toml` and starts `altair-<kind>` with it.
    fn spawn(
        &self,
        kind: &'static str,
        id: &str,
        address: String,
        (port, metrics_port): (Port, Port),
        config: &str,
        env: &[(&str, &str)],
    ) -> Result<RunningService> {
        let metrics = format!("{}:{}", self.control_ip, metrics_port.get());
        let config = format!("{config}\n[metrics]\nlisten = \"{metrics}\"\n");
        let cfg = self.write(&format!("{kind}-{id}.toml"), &config)?;
        let bin = match kind {
            "monitor" => self.bin("altair-monitor")?,
            _ => self.bin("altair-orchestrator")?,
        };
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("--config").arg(&cfg).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = self.dir.path().join(format!("{kind}-{id}.log"));
        let proc = Proc::spawn(format!("{kind} {id}"), &mut cmd, &log)?;
        Ok(RunningService {
            id: id.to_owned(),
            address,
            metrics,
            config: cfg,
            proc: Some(proc),
            respawn: None,
            _port: Some(port),
            _metrics_port: Some(metrics_port),
            console: None,
            _console_port: None,
        })
    }

    /// Writes an `altairctl` config for this fleet and returns its path.
    pub fn ctl_config(&self) -> Result<PathBuf> {
        let orchestrators: Vec<&str> = if self.orchestrators.is_empty() {
            vec!["127.0.0.1:1"]
        } else {
            self.orchestrators
                .iter()
                .map(|o| o.address.as_str())
                .collect()
        };
        let tls = self.tls_section(
            "altairctl",
            "altair://operator/altairctl?role=operator",
            &[],
        )?;
        let text = format!(
            "orchestrators = {orchestrators:?}\ntimeout_ms = 3000\n{}{}",
            self.zk_section(),
            tls
        );
        self.write("altairctl.toml", &text)
    }

    /// Waits until the monitors have published every host of `cluster` as healthy.
    pub async fn wait_healthy(
        &self,
        cluster: &str,
        hosts: &[String],
        timeout: std::time::Duration,
    ) -> Result<()> {
        use altair_core::registry::{HealthRecord, from_json};
        let zk = altair_zk::Zk::connect(&self.zk_config(), None)
            .await
            .map_err(|e| Error::Command {
                what: "connect to ZooKeeper".into(),
                detail: e.to_string(),
            })?;
        let cluster_name =
            altair_core::ClusterName::new(cluster.to_owned()).map_err(|e| Error::Command {
                what: "wait for the fleet".into(),
                detail: e.to_string(),
            })?;
        crate::wait_for(
            &format!("every host of {cluster} published healthy"),
            timeout,
            std::time::Duration::from_millis(100),
            || {
                let (zk, cluster_name) = (&zk, &cluster_name);
                async move {
                    for host in hosts {
                        let Ok(h) = altair_core::HostName::new(host.clone()) else {
                            return Err(format!("bad host name {host}"));
                        };
                        let path = zk.layout().host_health(cluster_name, &h);
                        let record = zk.get(&path).await.map_err(|e| e.to_string())?;
                        let health = record
                            .and_then(|b| from_json::<HealthRecord>("health", &b).ok())
                            .map(|r| r.health);
                        if health != Some(altair_core::health::Health::Healthy) {
                            return Err(format!("{host} is {health:?}"));
                        }
                    }
                    Ok(Some(()))
                }
            },
        )
        .await
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `[zookeeper]` section of an orchestrator or altairctl: the orchestrators'
    /// digest credential included.
    fn zk_section(&self) -> String {
        format!(
            "{}auth_file = \"{}\"\n",
            self.zk_section_without_auth(),
            self.dir.path().join("zk.auth").display()
        )
    }

    /// The `[zookeeper]` section of a monitor: the monitors' own credential when roles
    /// have identities of their own, else the shared one.
    fn zk_section_of_monitor(&self) -> String {
        if !self.timing.role_ids {
            return self.zk_section();
        }
        format!(
            "{}auth_file = \"{}\"\n",
            self.zk_section_without_auth(),
            self.dir.path().join("zk-monitor.auth").display()
        )
    }

    /// The monitors' `user:password` (the orchestrators' when roles share one).
    pub fn zk_monitor_auth(&self) -> String {
        if !self.timing.role_ids {
            return self.zk_auth();
        }
        std::fs::read_to_string(self.dir.path().join("zk-monitor.auth"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// `orchestrator_id` / `monitor_id` lines (no secret: digest ids), or nothing.
    fn role_id_lines(&self) -> String {
        if !self.timing.role_ids {
            return String::new();
        }
        format!(
            "orchestrator_id = \"{}\"\nmonitor_id = \"{}\"\n",
            altair_zk::digest_id(&self.zk_auth()),
            altair_zk::digest_id(&self.zk_monitor_auth())
        )
    }

    /// The `[zookeeper]` section of an agent: servers and TLS, no credential.
    fn zk_section_without_auth(&self) -> String {
        let tls = self
            .timing
            .zk_client_tls
            .as_ref()
            .map_or_else(String::new, |f| {
                format!(
                    "tls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                    f.ca.display(),
                    f.cert.display(),
                    f.key.display()
                )
            });
        format!(
            "[zookeeper]\nservers = {:?}\nsession_timeout_ms = {}\n{tls}{}",
            self.zk_servers,
            self.timing.zk_session_timeout_ms,
            self.role_id_lines(),
        )
    }

    /// How the fleet's services reach ZooKeeper (TLS included), without their auth.
    pub fn zk_config(&self) -> altair_core::config::ZkConfig {
        let tls = self.timing.zk_client_tls.as_ref();
        altair_core::config::ZkConfig {
            session_timeout_ms: 6_000,
            connect_timeout_ms: 2_000,
            tls_ca_file: tls.map(|f| f.ca.clone()),
            tls_cert_file: tls.map(|f| f.cert.clone()),
            tls_key_file: tls.map(|f| f.key.clone()),
            ..altair_core::config::ZkConfig::new(self.zk_servers.clone())
        }
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).map_err(io_err(format!("write {}", path.display())))?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        Ok(path)
    }

    fn bin(&self, name: &'static str) -> Result<PathBuf> {
        let path = self.bin_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Command {
                what: format!("start {name}"),
                detail: format!(
                    "{} is not built: run `cargo build --workspace --bins` (make test does)",
                    path.display()
                ),
            })
        }
    }
}

/// The ports of service `id` in `list`, taking it out (killed first if it still runs).
fn take_ports(list: &mut Vec<RunningService>, id: &str) -> Option<(Port, Port, Option<Port>)> {
    let i = list.iter().position(|s| s.id == id)?;
    let mut old = list.remove(i);
    old.kill();
    Some((
        old._port.take()?,
        old._metrics_port.take()?,
        old._console_port.take(),
    ))
}
