//! `altair-sandbox status`: what each host of the sandbox says about itself.

use std::path::Path;
use std::time::Duration;

use altair_testkit::mariadb::sql::{query_maps, query_value};
use altair_testkit::sandbox::{DESCRIPTION_FILE, Description, HostDesc, UserDesc};

use crate::read_description;

/// Reads sandbox.json or says that no sandbox runs.
pub(crate) fn running(dir: &Path) -> Result<Description, String> {
    read_description(dir)?.ok_or_else(|| {
        format!(
            "no sandbox is running (no {}); start one with `make sandbox`",
            dir.join(DESCRIPTION_FILE).display()
        )
    })
}

/// Admin connection options for a host of the sandbox (TCP, never the unix socket).
pub(crate) fn host_opts(h: &HostDesc, user: &UserDesc) -> Result<mysql_async::Opts, String> {
    let addr: std::net::SocketAddr = h
        .mysql
        .parse()
        .map_err(|e| format!("host {}: bad mysql address {:?}: {e}", h.name, h.mysql))?;
    Ok(mysql_async::OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(user.user.clone()))
        .pass(Some(user.password.clone()))
        .db_name(user.database.clone())
        .prefer_socket(false)
        .into())
}

pub(crate) async fn connect(h: &HostDesc, user: &UserDesc) -> Result<mysql_async::Conn, String> {
    let opts = host_opts(h, user)?;
    match tokio::time::timeout(Duration::from_secs(2), mysql_async::Conn::new(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(altair_testkit::mariadb::sql::error_text(&e)),
        Err(_) => Err("connect timed out".into()),
    }
}

#[allow(clippy::print_stdout)]
pub(crate) async fn status(dir: &Path, json: bool) -> Result<(), String> {
    let Some(desc) = read_description(dir)? else {
        return Err(format!(
            "no sandbox is running (no {})",
            dir.join(DESCRIPTION_FILE).display()
        ));
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&desc).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "ZooKeeper  {}{}",
        desc.zookeeper.servers.join(","),
        if desc.zookeeper.tls.is_some() {
            " (TLS port, client certificate required; plaintext port open for ruok)"
        } else {
            ""
        }
    );
    println!("DNS        {} zone {}", desc.dns.server, desc.dns.zone);
    if let Some(n) = &desc.network {
        println!("network    bridge {} subnet {}", n.bridge, n.subnet);
    }
    let metrics: Vec<String> = desc
        .orchestrators
        .iter()
        .chain(&desc.monitors)
        .filter_map(|s| Some(format!("{} http://{}/metrics", s.id, s.metrics.as_ref()?)))
        .collect();
    if !metrics.is_empty() {
        println!("metrics    {} (agents: sandbox.json)", metrics.join(", "));
    }
    if let Some(logs) = &desc.logs {
        println!(
            "logs       {logs}/*.log (copied to {} at down)",
            desc.kept_logs
        );
    }
    let dns_server: std::net::SocketAddr = desc
        .dns
        .server
        .parse()
        .map_err(|e| format!("dns.server: {e}"))?;
    for c in &desc.clusters {
        let primary = altair_dns::lookup_a(dns_server, &c.primary_dns, Duration::from_secs(2))
            .await
            .map(|ips| {
                ips.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|e| format!("error: {e}"));
        println!("\ncluster {}   {} -> {}", c.name, c.primary_dns, primary);
        println!(
            "{:<5} {:<10} {:<20} {:<9} {:<10} {:<22} replication",
            "host", "namespace", "mysql", "reachable", "read_only", "gtid_current_pos"
        );
        for h in &c.hosts {
            let row = probe(h, &c.admin_user).await;
            println!(
                "{:<5} {:<10} {:<20} {:<9} {:<10} {:<22} {}",
                h.name,
                h.namespace.as_deref().unwrap_or("-"),
                h.mysql,
                row.reachable,
                row.read_only,
                row.gtid,
                row.replication
            );
        }
    }
    Ok(())
}

struct ProbeRow {
    reachable: &'static str,
    read_only: String,
    gtid: String,
    replication: String,
}

async fn probe(
    h: &altair_testkit::sandbox::HostDesc,
    admin: &altair_testkit::sandbox::UserDesc,
) -> ProbeRow {
    let down = |why: String| ProbeRow {
        reachable: "no",
        read_only: "-".into(),
        gtid: "-".into(),
        replication: why,
    };
    let mut conn = match connect(h, admin).await {
        Ok(c) => c,
        Err(e) => return down(e),
    };
    let read_only = query_value(&mut conn, "SELECT @@read_only")
        .await
        .ok()
        .flatten()
        .map_or("?".into(), |v| {
            if v == "1" { "ON".into() } else { "OFF".into() }
        });
    let gtid = query_value(&mut conn, "SELECT @@gtid_current_pos")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let replication = match query_maps(&mut conn, "SHOW SLAVE STATUS").await {
        Ok(rows) => match rows.first() {
            None => "- (primary)".into(),
            Some(s) => format!(
                "from {}:{} IO={} SQL={} behind={}s",
                s["Master_Host"].as_deref().unwrap_or("?"),
                s["Master_Port"].as_deref().unwrap_or("?"),
                s["Slave_IO_Running"].as_deref().unwrap_or("?"),
                s["Slave_SQL_Running"].as_deref().unwrap_or("?"),
                s["Seconds_Behind_Master"].as_deref().unwrap_or("NULL"),
            ),
        },
        Err(e) => format!("error: {e}"),
    };
    ProbeRow {
        reachable: "yes",
        read_only,
        gtid,
        replication,
    }
}
