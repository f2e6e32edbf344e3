//! Hosts as network namespaces on a private test bridge, and network faults.
//!
//! A `TestNet` takes a free slot `S` (an advisory lock file, so parallel test processes
//! never share one), creates bridge `altSbr` with `10.231.S.1/24` in the root namespace,
//! and one namespace `altShI` per host with `eth0` at `10.231.S.(10+I)`. Everything in
//! the root namespace (ZooKeeper, monitors, orchestrators, the test itself) reaches
//! every host through the bridge. Faults are nft rules and link state inside a host's
//! namespace: the real network stack.
//!
//! Unix sockets are shared across namespaces: tests that mean to cross the network must
//! use TCP.

use std::fs::File;
use std::net::Ipv4Addr;

use tokio::process::Command;

use crate::process::run;
use crate::{Error, Result, io_err, is_root, require_tool};

const FAULT_TABLE: &str = "altair_fault";

/// One host: a network namespace with one address.
#[derive(Debug, Clone)]
pub struct NetHost {
    pub namespace: String,
    pub ip: Ipv4Addr,
    veth: String,
}

#[derive(Debug)]
pub struct TestNet {
    slot: u8,
    bridge: String,
    gateway: Ipv4Addr,
    hosts: Vec<NetHost>,
    _lock: File,
}

impl TestNet {
    /// Creates the bridge and `hosts` namespaces. Needs root.
    pub async fn create(hosts: usize) -> Result<Self> {
        if !is_root() {
            return Err(Error::NotRoot {
                what: "TestNet::create",
            });
        }
        require_tool("ip")?;
        require_tool("nft")?;
        if hosts > 200 {
            return Err(Error::Command {
                what: "create test network".into(),
                detail: format!("{hosts} hosts is more than a /24 slot holds"),
            });
        }
        let (slot, lock) = claim_slot()?;
        sweep_slot(slot).await;
        let mut net = Self {
            slot,
            bridge: format!("alt{slot}br"),
            gateway: Ipv4Addr::new(10, 231, slot, 1),
            hosts: Vec::new(),
            _lock: lock,
        };
        net.setup(hosts).await?;
        Ok(net)
    }

    async fn setup(&mut self, hosts: usize) -> Result<()> {
        let br = self.bridge.clone();
        ip(&["link", "add", &br, "type", "bridge"]).await?;
        ip(&["addr", "add", &format!("{}/24", self.gateway), "dev", &br]).await?;
        ip(&["link", "set", &br, "up"]).await?;
        for i in 0..hosts {
            let host = NetHost {
                namespace: format!("alt{}h{i}", self.slot),
                ip: Ipv4Addr::new(10, 231, self.slot, 10 + i as u8),
                veth: format!("alt{}v{i}", self.slot),
            };
            let ns = host.namespace.as_str();
            ip(&["netns", "add", ns]).await?;
            // Registered at once so Drop removes it even if a later step fails.
            self.hosts.push(host.clone());
            ip(&[
                "link", "add", &host.veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ])
            .await?;
            ip(&["link", "set", &host.veth, "master", &br, "up"]).await?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", host.ip),
                "dev",
                "eth0",
            ])
            .await?;
            ip(&["-n", ns, "link", "set", "eth0", "up"]).await?;
            ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
        }
        Ok(())
    }

    pub fn slot(&self) -> u8 {
        self.slot
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The root namespace's address on the bridge: where hosts reach the control plane.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    pub fn subnet(&self) -> String {
        format!("10.231.{}.0/24", self.slot)
    }

    pub fn hosts(&self) -> &[NetHost] {
        &self.hosts
    }

    pub fn host(&self, i: usize) -> &NetHost {
        &self.hosts[i]
    }

    /// Drops all traffic between host `i` and `peers` (both directions), inside host
    /// `i`'s namespace. Replaces any earlier partition of that host.
    pub async fn partition(&self, i: usize, peers: &[Ipv4Addr]) -> Result<()> {
        self.partition_except(i, peers, &[]).await
    }

    /// Drops all traffic between host `i` and `peers` like [`Self::partition`], except TCP
    /// with the given `(address, port)` services on those peers (e.g. one monitor in the
    /// root namespace, whose address the orchestrators and ZooKeeper share). Replaces any
    /// earlier fault of that host.
    pub async fn partition_except(
        &self,
        i: usize,
        peers: &[Ipv4Addr],
        keep: &[(Ipv4Addr, u16)],
    ) -> Result<()> {
        let ns = &self.host(i).namespace;
        let _ = nft(ns, &format!("delete table inet {FAULT_TABLE}")).await;
        if peers.is_empty() {
            return Ok(());
        }
        let set = peers
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut input = String::new();
        let mut output = String::new();
        for (ip, port) in keep {
            input.push_str(&format!("ip saddr {ip} tcp sport {port} accept; "));
            output.push_str(&format!("ip daddr {ip} tcp dport {port} accept; "));
        }
        let rules = format!(
            "table inet {FAULT_TABLE} {{
               chain input {{ type filter hook input priority 0; policy accept; {input}ip saddr {{ {set} }} drop; }}
               chain output {{ type filter hook output priority 0; policy accept; {output}ip daddr {{ {set} }} drop; }}
             }}"
        );
        nft(ns, &rules).await
    }

    /// Drops TCP traffic between host `i` and the given `(address, port)` services only
    /// (both directions), e.g. to cut an agent from the monitors but not from ZooKeeper
    /// or the orchestrators that share the root namespace's address. Replaces any earlier
    /// fault of that host.
    pub async fn block_services(&self, i: usize, services: &[(Ipv4Addr, u16)]) -> Result<()> {
        let ns = &self.host(i).namespace;
        let _ = nft(ns, &format!("delete table inet {FAULT_TABLE}")).await;
        if services.is_empty() {
            return Ok(());
        }
        let mut input = String::new();
        let mut output = String::new();
        for (ip, port) in services {
            input.push_str(&format!("ip saddr {ip} tcp sport {port} drop; "));
            output.push_str(&format!("ip daddr {ip} tcp dport {port} drop; "));
        }
        let rules = format!(
            "table inet {FAULT_TABLE} {{
               chain input {{ type filter hook input priority 0; policy accept; {input}}}
               chain output {{ type filter hook output priority 0; policy accept; {output}}}
             }}"
        );
        nft(ns, &rules).await
    }

    /// Drops `percent` % of host `i`'s packets at random, both ways (a degraded link:
    /// every peer, every service). `tc netem` would add latency too, but the kernels
    /// seen here ship without `sch_netem`; nft's random number generator needs nothing
    /// more than the fault tables. Replaces any earlier fault of that host.
    pub async fn lossy(&self, i: usize, percent: u8) -> Result<()> {
        let ns = &self.host(i).namespace;
        let _ = nft(ns, &format!("delete table inet {FAULT_TABLE}")).await;
        let p = percent.min(100);
        let rules = format!(
            "table inet {FAULT_TABLE} {{
               chain input {{ type filter hook input priority 0; policy accept; numgen random mod 100 < {p} drop; }}
               chain output {{ type filter hook output priority 0; policy accept; numgen random mod 100 < {p} drop; }}
             }}"
        );
        nft(ns, &rules).await
    }

    /// Drops everything host `i` sends out of its link (one way): it still hears its
    /// peers, they hear nothing from it. Replaces any earlier fault of that host.
    pub async fn drop_outbound(&self, i: usize) -> Result<()> {
        let ns = &self.host(i).namespace;
        let _ = nft(ns, &format!("delete table inet {FAULT_TABLE}")).await;
        let rules = format!(
            "table inet {FAULT_TABLE} {{
               chain output {{ type filter hook output priority 0; policy accept; oifname \"eth0\" drop; }}
             }}"
        );
        nft(ns, &rules).await
    }

    /// Cuts host `i` from everyone (its link goes down).
    pub async fn isolate(&self, i: usize) -> Result<()> {
        ip(&["-n", &self.host(i).namespace, "link", "set", "eth0", "down"]).await
    }

    /// Slows what host `i`'s mysqld sends to `peers` (its replicas' binlog stream: TCP
    /// from port 3306) to `kbit` kbit/s in all, with `tc` in its namespace; everything
    /// else it sends (client answers, its agent's traffic) keeps full speed.
    pub async fn slow_replication(&self, i: usize, peers: &[Ipv4Addr], kbit: u32) -> Result<()> {
        let ns = &self.host(i).namespace;
        let _ = tc(ns, &["qdisc", "del", "dev", "eth0", "root"]).await;
        tc(
            ns,
            &[
                "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10",
            ],
        )
        .await?;
        tc(
            ns,
            &[
                "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate",
                "10gbit",
            ],
        )
        .await?;
        let rate = format!("{kbit}kbit");
        tc(
            ns,
            &[
                "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate",
                &rate, "ceil", &rate,
            ],
        )
        .await?;
        for peer in peers {
            let dst = format!("{peer}/32");
            tc(
                ns,
                &[
                    "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "u32",
                    "match", "ip", "sport", "3306", "0xffff", "match", "ip", "dst", &dst, "flowid",
                    "1:20",
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// Removes every fault of host `i`.
    pub async fn heal(&self, i: usize) -> Result<()> {
        let ns = &self.host(i).namespace;
        let _ = nft(ns, &format!("delete table inet {FAULT_TABLE}")).await;
        let _ = tc(ns, &["qdisc", "del", "dev", "eth0", "root"]).await;
        ip(&["-n", ns, "link", "set", "eth0", "up"]).await
    }

    /// A `Command` that runs `program` inside host `i`'s namespace.
    pub fn command_in(&self, i: usize, program: &std::path::Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.host(i).namespace])
            .arg(program);
        cmd
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop may run during a panic, outside any runtime.
        for host in &self.hosts {
            // Deleting the veth first: orphaned TCP sockets of killed daemons can keep
            // a namespace (and so its interfaces) alive for minutes after `netns del`.
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &host.veth])
                .output();
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &host.namespace])
                .output();
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

async fn ip(args: &[&str]) -> Result<()> {
    run(
        &format!("ip {}", args.join(" ")),
        Command::new("ip").args(args),
    )
    .await?;
    Ok(())
}

async fn tc(ns: &str, args: &[&str]) -> Result<()> {
    run(
        &format!("tc in {ns}: {}", args.join(" ")),
        Command::new("ip")
            .args(["netns", "exec", ns, "tc"])
            .args(args),
    )
    .await?;
    Ok(())
}

async fn nft(ns: &str, rules: &str) -> Result<()> {
    run(
        &format!("nft in {ns}"),
        Command::new("ip").args(["netns", "exec", ns, "nft", rules]),
    )
    .await?;
    Ok(())
}

fn claim_slot() -> Result<(u8, File)> {
    let dir = std::env::temp_dir().join("altair-testkit-net");
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let start: u8 = rand::random::<u8>() % 250;
    for k in 0..250u16 {
        let slot = ((u16::from(start) + k) % 250) as u8;
        let path = dir.join(format!("slot-{slot}.lock"));
        let file = File::create(&path).map_err(io_err(format!("create {}", path.display())))?;
        if file.try_lock().is_ok() {
            return Ok((slot, file));
        }
    }
    Err(Error::Command {
        what: "claim a test network slot".into(),
        detail: "all 250 slots are in use".into(),
    })
}

/// Removes what a crashed earlier holder of `slot` left behind (we hold its lock now).
pub(crate) async fn sweep_slot(slot: u8) {
    let prefix = format!("alt{slot}h");
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output().await {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(&prefix) && name[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
            {
                let _ = Command::new("ip")
                    .args(["netns", "del", name])
                    .output()
                    .await;
            }
        }
    }
    let veth = format!("alt{slot}v");
    if let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .await
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "12: alt3v0@if2: <...>"
            let Some(name) = line.split(": ").nth(1).and_then(|n| n.split('@').next()) else {
                continue;
            };
            if name.starts_with(&veth) && name[veth.len()..].bytes().all(|b| b.is_ascii_digit()) {
                let _ = Command::new("ip")
                    .args(["link", "del", name])
                    .output()
                    .await;
            }
        }
    }
    let _ = Command::new("ip")
        .args(["link", "del", &format!("alt{slot}br")])
        .output()
        .await;
}
