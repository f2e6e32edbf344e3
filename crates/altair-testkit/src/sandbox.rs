//! The local sandbox: ZooKeeper, BIND and one 3-host MariaDB cluster (or several:
//! `clusters`), with hosts in network namespaces when running as root (else on loopback
//! ports), described in a JSON file for scripts and people.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::bind::{Bind, BindOptions, TSIG_ALGORITHM, TSIG_KEY_NAME};
use crate::fleet::{Fleet, FleetTiming};
use crate::mariadb::{APP_DATABASE, Credentials, HostAddr, MariaDbCluster};
use crate::netns::TestNet;
use crate::ports::{Port, reserve};
use crate::zookeeper::ZooKeeper;
use crate::{Result, io_err, is_root};

pub const ZONE: &str = "db.altair.test.";
pub const ZK_ROOT: &str = "/altair";
pub const DESCRIPTION_FILE: &str = "sandbox.json";
pub const CTL_CONFIG_FILE: &str = "altairctl.toml";
/// Under the sandbox dir: the services' logs, copied there at `down`.
pub const KEPT_LOGS: &str = "logs";

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Where the description, configs and logs go (`target/sandbox`).
    pub dir: PathBuf,
    /// The first cluster's name; more clusters are `c2`, `c3`, ….
    pub cluster: String,
    /// How many clusters (each of `hosts` hosts, sharing one admin, replication and
    /// application user).
    pub clusters: usize,
    pub hosts: usize,
    /// Put hosts in network namespaces; `None` = when root.
    pub namespaces: Option<bool>,
    /// Where the altair binaries are; `None` = no agents, monitors or orchestrators.
    pub bin_dir: Option<PathBuf>,
    pub monitors: usize,
    pub orchestrators: usize,
    /// `agent.durability` of every host: `async` or `semi_sync`.
    pub durability: &'static str,
}

impl SandboxOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cluster: "c1".into(),
            clusters: 1,
            hosts: 3,
            namespaces: None,
            bin_dir: None,
            monitors: 2,
            orchestrators: 2,
            durability: "async",
        }
    }
}

/// A running sandbox. Dropping it stops everything (fields drop in this order:
/// databases, DNS, ZooKeeper, then the network).
#[derive(Debug)]
pub struct Sandbox {
    /// Dropped first: the proxy in front of the orchestrators' console.
    console: Option<crate::console_proxy::ConsoleProxy>,
    fleet: Option<Fleet>,
    /// `(name, cluster)`, the first `options.cluster`.
    clusters: Vec<(String, MariaDbCluster)>,
    dns: Bind,
    zk: ZooKeeper,
    /// The client certificate altair's processes and altairctl dial ZooKeeper's TLS
    /// port with.
    zk_client: crate::pki::TlsFiles,
    net: Option<TestNet>,
    orchestrator_ports: Vec<Port>,
    options: SandboxOptions,
    startup_ms: u64,
}

impl Sandbox {
    pub async fn start(options: SandboxOptions) -> Result<Self> {
        let started = Instant::now();
        let use_ns = options.namespaces.unwrap_or_else(is_root);
        let (n, hosts) = (options.clusters.max(1), options.hosts);
        let net = if use_ns {
            Some(TestNet::create(n * hosts).await?)
        } else {
            None
        };
        // Hosts in namespaces reach the control plane through the bridge address.
        let control_ip = net
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |n| IpAddr::V4(n.gateway()));
        // Secure by default, ZooKeeper too: altair dials only its TLS port, with a
        // client certificate. The plaintext port stays open (the test kit's `ruok`
        // health check uses it); altair's nodes are writable by its digest user only.
        let zk = ZooKeeper::standalone_tls(control_ip).await?;
        let zk_client = zk.client_tls("altair")?;
        let mut clusters: Vec<(String, MariaDbCluster)> = Vec::with_capacity(n);
        for k in 0..n {
            let addrs: Vec<HostAddr> = match &net {
                Some(net) => net.hosts()[k * hosts..(k + 1) * hosts]
                    .iter()
                    .map(|h| HostAddr {
                        ip: IpAddr::V4(h.ip),
                        namespace: Some(h.namespace.clone()),
                    })
                    .collect(),
                None => (0..hosts)
                    .map(|_| HostAddr {
                        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                        namespace: None,
                    })
                    .collect(),
            };
            let cluster = match clusters.first() {
                None => MariaDbCluster::start(addrs).await?,
                Some((_, first)) => MariaDbCluster::start_sharing_users(addrs, first).await?,
            };
            let name = if k == 0 {
                options.cluster.clone()
            } else {
                format!("c{}", k + 1)
            };
            clusters.push((name, cluster));
        }
        let ipv4 = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
        };
        let mut records = Vec::new();
        for (name, cluster) in &clusters {
            records.push((format!("primary.{name}"), ipv4(cluster.instance(0).ip())));
            for inst in &cluster.instances()[1..] {
                records.push((format!("replicas.{name}"), ipv4(inst.ip())));
            }
        }
        let dns = Bind::start(BindOptions {
            zone: ZONE.into(),
            records,
            ..BindOptions::default()
        })
        .await?;
        let orchestrator_ports = vec![reserve(control_ip)?, reserve(control_ip)?];
        let fleet = match &options.bin_dir {
            Some(bin_dir) => {
                let (first_name, first) = &clusters[0];
                let mut f = Fleet::start(
                    bin_dir,
                    first_name,
                    first,
                    control_ip,
                    zk.secure_servers(),
                    options.monitors,
                    FleetTiming {
                        durability: options.durability,
                        console: Some(crate::fleet::ConsoleMode::ProxyHeader),
                        zk_client_tls: Some(zk_client.clone()),
                        // An identity per role needs a leader to create clusters.
                        role_ids: options.orchestrators > 0,
                        ..FleetTiming::default()
                    },
                )?;
                for (name, cluster) in &clusters[1..] {
                    f.add_cluster(name, cluster)?;
                }
                let target = crate::fleet::DnsTarget {
                    server: dns.addr(),
                    zone: ZONE.into(),
                    tsig_key_name: TSIG_KEY_NAME.into(),
                    tsig_secret_file: dns.tsig_secret_file().to_owned(),
                };
                for i in 0..options.orchestrators {
                    f.start_orchestrator(&format!("o{}", i + 1), &target, 3600, &[])?;
                }
                Some(f)
            }
            None => None,
        };
        if let Some(f) = &fleet {
            for (name, cluster) in &clusters {
                let names: Vec<String> = cluster
                    .instances()
                    .iter()
                    .map(|i| i.name().to_owned())
                    .collect();
                f.wait_healthy(name, &names, std::time::Duration::from_secs(60))
                    .await?;
            }
        }
        let consoles: Vec<String> = fleet
            .iter()
            .flat_map(|f| &f.orchestrators)
            .filter_map(|o| o.console.clone())
            .collect();
        let console = if consoles.is_empty() {
            None
        } else {
            Some(
                crate::console_proxy::ConsoleProxy::start(
                    &crate::console_proxy::shipped_config(),
                    control_ip,
                    &consoles,
                )
                .await?,
            )
        };
        Ok(Self {
            console,
            fleet,
            clusters,
            dns,
            zk,
            zk_client,
            net,
            orchestrator_ports,
            options,
            startup_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The first cluster.
    pub fn cluster(&self) -> &MariaDbCluster {
        &self.clusters[0].1
    }

    pub fn cluster_mut(&mut self) -> &mut MariaDbCluster {
        &mut self.clusters[0].1
    }

    /// Every cluster with its name, the first first.
    pub fn clusters(&self) -> &[(String, MariaDbCluster)] {
        &self.clusters
    }

    pub fn dns(&self) -> &Bind {
        &self.dns
    }

    pub fn zookeeper(&self) -> &ZooKeeper {
        &self.zk
    }

    /// The proxy in front of the web console (when orchestrators run).
    pub fn console(&self) -> Option<&crate::console_proxy::ConsoleProxy> {
        self.console.as_ref()
    }

    pub fn fleet(&self) -> Option<&Fleet> {
        self.fleet.as_ref()
    }

    pub fn net(&self) -> Option<&TestNet> {
        self.net.as_ref()
    }

    pub fn startup_ms(&self) -> u64 {
        self.startup_ms
    }

    /// The description written to `sandbox.json`.
    pub fn describe(&self) -> Description {
        let dir = &self.options.dir;
        let orchestrator_ip = self
            .net
            .as_ref()
            .map_or_else(|| "127.0.0.1".to_owned(), |n| n.gateway().to_string());
        Description {
            version: 1,
            supervisor_pid: std::process::id(),
            startup_ms: self.startup_ms,
            network: self.net.as_ref().map(|n| NetworkDesc {
                slot: n.slot(),
                bridge: n.bridge().to_owned(),
                subnet: n.subnet(),
                gateway: n.gateway().to_string(),
            }),
            zookeeper: ZkDesc {
                servers: self.zk.secure_servers(),
                plaintext_servers: self.zk.servers(),
                root: ZK_ROOT.into(),
                pids: (0..self.zk.len()).filter_map(|i| self.zk.pid(i)).collect(),
                tls: Some(ZkTlsDesc {
                    ca_file: self.zk_client.ca.display().to_string(),
                    cert_file: self.zk_client.cert.display().to_string(),
                    key_file: self.zk_client.key.display().to_string(),
                }),
            },
            dns: DnsDesc {
                server: self.dns.addr().to_string(),
                zone: ZONE.into(),
                tsig_key_name: TSIG_KEY_NAME.into(),
                tsig_algorithm: TSIG_ALGORITHM.into(),
                tsig_secret_file: self.dns.tsig_secret_file().display().to_string(),
                pid: self.dns.pid(),
            },
            clusters: self
                .clusters
                .iter()
                .enumerate()
                .map(|(k, (name, cluster))| self.describe_cluster(k, name, cluster))
                .collect(),
            monitors: self
                .fleet
                .iter()
                .flat_map(|f| &f.monitors)
                .map(|m| ServiceDesc {
                    id: m.id.clone(),
                    pid: m.pid().unwrap_or(0),
                    grpc: m.address.clone(),
                    metrics: Some(m.metrics.clone()),
                })
                .collect(),
            orchestrators: self
                .fleet
                .iter()
                .flat_map(|f| &f.orchestrators)
                .map(|o| ServiceDesc {
                    id: o.id.clone(),
                    pid: o.pid().unwrap_or(0),
                    grpc: o.address.clone(),
                    metrics: Some(o.metrics.clone()),
                })
                .collect(),
            planned_orchestrator_addresses: self.orchestrator_addresses(&orchestrator_ip),
            altairctl_config: dir.join(CTL_CONFIG_FILE).display().to_string(),
            tls: None,
            logs: self.fleet.as_ref().map(|f| f.dir().display().to_string()),
            kept_logs: dir.join(KEPT_LOGS).display().to_string(),
            console: self.console.as_ref().map(|c| ConsoleDesc {
                url: c.url(),
                user: c.user().to_owned(),
                password: c.password().to_owned(),
                orchestrators: self
                    .fleet
                    .iter()
                    .flat_map(|f| &f.orchestrators)
                    .filter_map(|o| o.console.clone())
                    .collect(),
            }),
        }
    }

    fn describe_cluster(&self, k: usize, name: &str, cluster: &MariaDbCluster) -> ClusterDesc {
        // The fleet's agents are the clusters' hosts in order.
        let agent = |i: usize| {
            self.fleet
                .as_ref()
                .and_then(|f| f.agents.get(k * self.options.hosts + i))
        };
        ClusterDesc {
            name: name.to_owned(),
            primary_dns: format!("primary.{name}.{ZONE}"),
            replicas_dns: format!("replicas.{name}.{ZONE}"),
            durability: self.options.durability.to_owned(),
            app_user: UserDesc::new(cluster.app(), Some(APP_DATABASE)),
            admin_user: UserDesc::new(cluster.admin(), None),
            hosts: cluster
                .instances()
                .iter()
                .enumerate()
                .map(|(i, inst)| HostDesc {
                    name: inst.name().to_owned(),
                    namespace: inst.namespace().map(str::to_owned),
                    mysql: inst.addr().to_string(),
                    mysqld_pid: inst.pid(),
                    agent_pid: agent(i).and_then(|a| a.pid()),
                    agent_grpc: agent(i).map(|a| a.address.clone()),
                    agent_metrics: agent(i).map(|a| a.metrics.clone()),
                    initial_role: if i == 0 { "primary" } else { "replica" }.into(),
                })
                .collect(),
        }
    }

    fn orchestrator_addresses(&self, ip: &str) -> Vec<String> {
        match self.fleet.as_ref().filter(|f| !f.orchestrators.is_empty()) {
            Some(f) => f.orchestrators.iter().map(|o| o.address.clone()).collect(),
            None => self
                .orchestrator_ports
                .iter()
                .map(|p| format!("{ip}:{}", p.get()))
                .collect(),
        }
    }

    /// Copies the services' logs to `<dir>/logs/` (replacing an earlier run's), so they
    /// outlive the sandbox; returns that directory.
    pub fn keep_logs(&self) -> Result<PathBuf> {
        let to = self.options.dir.join(KEPT_LOGS);
        let _ = std::fs::remove_dir_all(&to);
        std::fs::create_dir_all(&to).map_err(io_err(format!("create {}", to.display())))?;
        let Some(fleet) = &self.fleet else {
            return Ok(to);
        };
        let entries = std::fs::read_dir(fleet.dir())
            .map_err(io_err(format!("read {}", fleet.dir().display())))?;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if let (Some(name), Some("log")) =
                (path.file_name(), path.extension().and_then(|x| x.to_str()))
            {
                std::fs::copy(&path, to.join(name))
                    .map_err(io_err(format!("copy {}", path.display())))?;
            }
        }
        Ok(to)
    }

    /// Writes `altairctl.toml` and then `sandbox.json` (last, atomically: its presence
    /// means the sandbox is up).
    pub fn write_files(&self) -> Result<Description> {
        let mut desc = self.describe();
        let dir = &self.options.dir;
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        // Certificates for people: altairctl acts as an operator; a viewer certificate
        // is there for read-only tools.
        let (operator, viewer) = match &self.fleet {
            Some(f) => (
                Some(f.client_tls("operator", "altair://operator/sandbox?role=operator")?),
                Some(f.client_tls("viewer", "altair://operator/viewer?role=viewer")?),
            ),
            None => (None, None),
        };
        if let (Some(o), Some(v)) = (&operator, &viewer) {
            desc.tls = Some(TlsDesc {
                ca_file: o.ca.display().to_string(),
                operator_cert_file: o.cert.display().to_string(),
                operator_key_file: o.key.display().to_string(),
                viewer_cert_file: v.cert.display().to_string(),
                viewer_key_file: v.key.display().to_string(),
            });
        }
        let zk_tls = format!(
            "tls_ca_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
            self.zk_client.ca.display().to_string(),
            self.zk_client.cert.display().to_string(),
            self.zk_client.key.display().to_string(),
        );
        let ctl = format!(
            "# altairctl config for the sandbox (written by altair-sandbox).\n\
             orchestrators = {orchs:?}\ntimeout_ms = 5000\n\n\
             [zookeeper]\nservers = {zk:?}\nroot = \"{ZK_ROOT}\"\n{zk_tls}\n{tls}",
            orchs = desc.planned_orchestrator_addresses,
            zk = desc.zookeeper.servers,
            tls = operator.map(|o| o.section()).unwrap_or_default(),
        );
        write_private(&dir.join(CTL_CONFIG_FILE), &ctl)?;
        let json = serde_json::to_string_pretty(&desc).map_err(|e| crate::Error::Command {
            what: "serialize the sandbox description".into(),
            detail: e.to_string(),
        })?;
        let tmp = dir.join(format!("{DESCRIPTION_FILE}.tmp"));
        write_private(&tmp, &json)?;
        std::fs::rename(&tmp, dir.join(DESCRIPTION_FILE))
            .map_err(io_err("publish sandbox.json"))?;
        Ok(desc)
    }
}

/// Written with mode 0600: the file holds the sandbox's generated passwords.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("write {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(io_err(format!("write {}", path.display())))
}

/// `sandbox.json`. Documented in the README; add fields, never rename them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Description {
    pub version: u32,
    pub supervisor_pid: u32,
    pub startup_ms: u64,
    pub network: Option<NetworkDesc>,
    pub zookeeper: ZkDesc,
    pub dns: DnsDesc,
    pub clusters: Vec<ClusterDesc>,
    pub monitors: Vec<ServiceDesc>,
    pub orchestrators: Vec<ServiceDesc>,
    /// Where the sandbox's orchestrators will listen (they join with the orchestrator).
    pub planned_orchestrator_addresses: Vec<String>,
    pub altairctl_config: String,
    /// The CA and the client certificates people and tools dial with (mutual TLS is on
    /// everywhere in the sandbox).
    #[serde(default)]
    pub tls: Option<TlsDesc>,
    /// Where the services' logs are written while the sandbox runs (`<id>.log`).
    #[serde(default)]
    pub logs: Option<String>,
    /// Where `down` copies them (they outlive the sandbox there).
    #[serde(default)]
    pub kept_logs: String,
    /// The web console, through its authenticating proxy (null without orchestrators).
    #[serde(default)]
    pub console: Option<ConsoleDesc>,
}

/// Where a browser opens the console and the login it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleDesc {
    /// The proxy (deploy/console/haproxy.cfg): open this in a browser.
    pub url: String,
    pub user: String,
    pub password: String,
    /// Each orchestrator's own console address (it believes X-Remote-User only from the
    /// proxy's address).
    pub orchestrators: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsDesc {
    pub ca_file: String,
    /// `altair://operator/sandbox?role=operator`: what altairctl uses.
    pub operator_cert_file: String,
    pub operator_key_file: String,
    /// `altair://operator/viewer?role=viewer`: read-only.
    pub viewer_cert_file: String,
    pub viewer_key_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDesc {
    pub slot: u8,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZkDesc {
    /// The TLS client ports: what altair's processes and altairctl dial.
    pub servers: Vec<String>,
    /// The plaintext client ports (four-letter health words such as `ruok`; every node
    /// altair creates is writable by altair's digest user only).
    #[serde(default)]
    pub plaintext_servers: Vec<String>,
    pub root: String,
    pub pids: Vec<u32>,
    /// The client certificate for the TLS ports (the `[zookeeper] tls_*` keys).
    #[serde(default)]
    pub tls: Option<ZkTlsDesc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZkTlsDesc {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsDesc {
    pub server: String,
    pub zone: String,
    pub tsig_key_name: String,
    pub tsig_algorithm: String,
    pub tsig_secret_file: String,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterDesc {
    pub name: String,
    pub primary_dns: String,
    pub replicas_dns: String,
    /// `async` or `semi_sync` (absent in descriptions written before it existed).
    #[serde(default)]
    pub durability: String,
    pub app_user: UserDesc,
    pub admin_user: UserDesc,
    pub hosts: Vec<HostDesc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDesc {
    pub user: String,
    pub password: String,
    pub database: Option<String>,
}

impl UserDesc {
    fn new(c: &Credentials, database: Option<&str>) -> Self {
        Self {
            user: c.user.clone(),
            password: c.password.clone(),
            database: database.map(str::to_owned),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostDesc {
    pub name: String,
    pub namespace: Option<String>,
    /// `ip:port` of mysqld.
    pub mysql: String,
    pub mysqld_pid: Option<u32>,
    pub agent_pid: Option<u32>,
    pub agent_grpc: Option<String>,
    pub initial_role: String,
    /// `ip:port` of the agent's Prometheus endpoint (`GET /metrics`).
    #[serde(default)]
    pub agent_metrics: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceDesc {
    pub id: String,
    pub pid: u32,
    pub grpc: String,
    /// `ip:port` of its Prometheus endpoint (`GET /metrics`).
    #[serde(default)]
    pub metrics: Option<String>,
}

/// Removes what a sandbox whose supervisor died left behind: its network slot.
pub async fn sweep(desc: &Description) {
    if let Some(net) = &desc.network {
        crate::netns::sweep_slot(net.slot).await;
    }
}
