//! `altairctl topology CLUSTER`: the replication tree as the agents report it now.

use std::time::Duration;

use altair_proto::v1::*;
use serde::Serialize;

use crate::admin::{AdminError, each_within};

pub async fn topology(
    orchestrators: &[String],
    cluster: &str,
    timeout: Duration,
) -> Result<Topology, AdminError> {
    // Every agent is asked (bounded at 0.8 s each, in parallel): allow for it.
    let call = timeout.max(Duration::from_secs(5));
    each_within(orchestrators, timeout, call, |mut c| {
        let req = GetTopologyRequest {
            cluster: cluster.to_owned(),
        };
        async move { c.get_topology(req).await }
    })
    .await
}

/// One host, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Node {
    pub host: String,
    pub role: String,
    pub health: String,
    pub read_only: bool,
    pub replicates_from: String,
    pub seconds_behind: Option<i64>,
    pub gtid_executed: String,
    pub needs_rejoin: bool,
    pub errant_gtids: String,
    pub problem: String,
    pub mysql: String,
    pub datacenter: String,
}

#[derive(Debug, Serialize)]
pub struct Tree {
    pub cluster: String,
    pub primary: String,
    pub epoch: u64,
    pub dns_name: String,
    pub dns_answer: String,
    pub failover_blocked: String,
    pub failover_in_progress: String,
    pub hosts: Vec<Node>,
}

fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

impl From<&Topology> for Tree {
    fn from(t: &Topology) -> Self {
        let c = t.cluster.clone().unwrap_or_default();
        let hosts = t
            .hosts
            .iter()
            .map(|h| {
                let reg = h.registration.clone().unwrap_or_default();
                Node {
                    host: reg.id.map(|i| i.host).unwrap_or_default(),
                    role: Role::try_from(h.role)
                        .map_or("unknown".into(), |r| short(r.as_str_name(), "ROLE_")),
                    health: Health::try_from(h.health)
                        .map_or("unknown".into(), |r| short(r.as_str_name(), "HEALTH_")),
                    read_only: h.read_only,
                    replicates_from: h.replicates_from.clone(),
                    seconds_behind: h.seconds_behind,
                    gtid_executed: h.gtid_executed.clone(),
                    needs_rejoin: h.needs_rejoin,
                    errant_gtids: h.errant_gtids.clone(),
                    problem: h.problem.clone(),
                    mysql: reg
                        .mysql
                        .map(|e| format!("{}:{}", e.host, e.port))
                        .unwrap_or_default(),
                    datacenter: reg.datacenter,
                }
            })
            .collect();
        Self {
            cluster: c.name,
            primary: c.primary,
            epoch: c.epoch,
            dns_name: t.primary_dns_name.clone(),
            dns_answer: t.primary_dns_address.clone(),
            failover_blocked: c.failover_blocked_reason,
            failover_in_progress: c.failover_in_progress,
            hosts,
        }
    }
}

fn line(n: &Node) -> String {
    let mut s = format!(
        "{} [{}] {} {} {}",
        n.host,
        n.mysql,
        n.health,
        if n.read_only { "read-only" } else { "WRITABLE" },
        n.gtid_executed
    );
    if let Some(lag) = n.seconds_behind {
        s.push_str(&format!(" lag {lag}s"));
    }
    if n.needs_rejoin {
        s.push_str("  (old primary: waits for rejoin)");
    }
    if !n.errant_gtids.is_empty() {
        s.push_str(&format!("  ERRANT {}", n.errant_gtids));
    }
    if !n.problem.is_empty() {
        s.push_str(&format!("  ! {}", n.problem));
    }
    s
}

/// The tree: the primary, its replicas under it (and theirs under them), then hosts that
/// replicate from no one known.
pub fn render(t: &Tree) -> String {
    let mut out = format!(
        "cluster {}  epoch {}  {} -> {}\n",
        t.cluster, t.epoch, t.dns_name, t.dns_answer
    );
    if !t.failover_blocked.is_empty() {
        out.push_str(&format!(
            "  automatic failover blocked: {}\n",
            t.failover_blocked
        ));
    }
    if !t.failover_in_progress.is_empty() {
        out.push_str(&format!(
            "  failover in progress: {}\n",
            t.failover_in_progress
        ));
    }
    let mut shown = Vec::new();
    if let Some(p) = t.hosts.iter().find(|h| h.host == t.primary) {
        out.push_str(&format!("{} (primary)\n", line(p)));
        shown.push(p.host.clone());
        children(t, &p.host, "", &mut out, &mut shown);
    }
    for h in t.hosts.iter().filter(|h| !shown.contains(&h.host)) {
        out.push_str(&format!("{} (detached)\n", line(h)));
    }
    out
}

fn children(t: &Tree, parent: &str, indent: &str, out: &mut String, shown: &mut Vec<String>) {
    let kids: Vec<&Node> = t
        .hosts
        .iter()
        .filter(|h| h.replicates_from == parent && !shown.contains(&h.host))
        .collect();
    for (i, k) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        out.push_str(&format!(
            "{indent}{} {}\n",
            if last { "└─" } else { "├─" },
            line(k)
        ));
        shown.push(k.host.clone());
        let next = format!("{indent}{}", if last { "   " } else { "│  " });
        children(t, &k.host, &next, out, shown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, from: &str) -> Node {
        Node {
            host: host.into(),
            role: "replica".into(),
            health: "healthy".into(),
            read_only: true,
            replicates_from: from.into(),
            seconds_behind: Some(0),
            gtid_executed: "0-1-5".into(),
            needs_rejoin: false,
            errant_gtids: String::new(),
            problem: String::new(),
            mysql: format!("{host}:3306"),
            datacenter: "dc1".into(),
        }
    }

    #[test]
    fn renders_a_tree_and_detached_hosts() {
        let mut p = node("db1", "");
        p.read_only = false;
        p.seconds_behind = None;
        let mut old = node("db0", "");
        old.needs_rejoin = true;
        let t = Tree {
            cluster: "c1".into(),
            primary: "db1".into(),
            epoch: 3,
            dns_name: "primary.c1.db.test.".into(),
            dns_answer: "10.0.0.1".into(),
            failover_blocked: String::new(),
            failover_in_progress: String::new(),
            hosts: vec![
                old,
                p,
                node("db2", "db1"),
                node("db3", "db1"),
                node("db4", "db3"),
            ],
        };
        let text = render(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("db1 [db1:3306] healthy WRITABLE"),
            "{text}"
        );
        assert!(lines[2].starts_with("├─ db2"), "{text}");
        assert!(lines[3].starts_with("└─ db3"), "{text}");
        assert!(lines[4].starts_with("   └─ db4"), "{text}");
        assert!(
            lines[5].contains("db0") && lines[5].contains("waits for rejoin"),
            "{text}"
        );
    }
}
