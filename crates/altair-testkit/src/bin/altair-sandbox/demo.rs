//! `altair-sandbox demo`: show a person that the sandbox is real — a write through the
//! primary's DNS name lands on the primary, replicates to every replica by GTID, and the
//! replicas refuse the application user's writes.

use std::path::Path;
use std::time::{Duration, Instant};

use altair_testkit::mariadb::sql::query_value;
use mysql_async::prelude::Queryable;

use crate::status::{connect, running, status};

#[allow(clippy::print_stdout)]
pub(crate) async fn demo(dir: &Path) -> Result<(), String> {
    let desc = running(dir)?;
    status(dir, false).await?;
    let dns: std::net::SocketAddr = desc
        .dns
        .server
        .parse()
        .map_err(|e| format!("dns.server: {e}"))?;
    for c in &desc.clusters {
        println!(
            "\n== cluster {}: write through {} as the application user",
            c.name, c.primary_dns
        );
        let ips = altair_dns::lookup_a(dns, &c.primary_dns, Duration::from_secs(2))
            .await
            .map_err(|e| format!("resolve {}: {e}", c.primary_dns))?;
        let ip = ips
            .first()
            .ok_or_else(|| format!("{} has no address", c.primary_dns))?;
        let primary = c
            .hosts
            .iter()
            .find(|h| h.mysql.starts_with(&format!("{ip}:")))
            .ok_or_else(|| format!("{ip} is not a sandbox host"))?;
        println!("{} -> {ip} ({})", c.primary_dns, primary.name);
        let mut app = connect(primary, &c.app_user).await?;
        app.query_drop("CREATE TABLE IF NOT EXISTS greetings (id INT AUTO_INCREMENT PRIMARY KEY, said_at DATETIME(3), note VARCHAR(64))")
            .await
            .map_err(|e| format!("create table on {}: {e}", primary.name))?;
        app.query_drop(
            "INSERT INTO greetings (said_at, note) VALUES (NOW(3), 'hello from make demo')",
        )
        .await
        .map_err(|e| format!("insert on {}: {e}", primary.name))?;
        let id = query_value(&mut app, "SELECT LAST_INSERT_ID()")
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let mut admin = connect(primary, &c.admin_user).await?;
        let gtid = query_value(&mut admin, "SELECT @@gtid_binlog_pos")
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        println!("inserted row id={id} on {} at GTID {gtid}", primary.name);

        for h in c.hosts.iter().filter(|h| h.name != primary.name) {
            let started = Instant::now();
            let mut admin = match connect(h, &c.admin_user).await {
                Ok(conn) => conn,
                Err(e) => {
                    println!("{}: mysqld unreachable ({e})", h.name);
                    continue;
                }
            };
            let waited = query_value(
                &mut admin,
                &format!("SELECT MASTER_GTID_WAIT('{gtid}', 10)"),
            )
            .await
            .map_err(|e| e.to_string())?;
            let mut app = connect(h, &c.app_user).await?;
            let seen = query_value(
                &mut app,
                &format!("SELECT note FROM greetings WHERE id = {id}"),
            )
            .await
            .map_err(|e| e.to_string())?;
            let refused = match app
                .query_drop("INSERT INTO greetings (note) VALUES ('should be refused')")
                .await
            {
                Err(mysql_async::Error::Server(e)) if e.code == 1290 => {
                    "refuses the app user's write (read_only)".to_owned()
                }
                Err(e) => format!("write failed unexpectedly: {e}"),
                Ok(()) => "ACCEPTED the app user's write: not read-only!".to_owned(),
            };
            println!(
                "{}: row id={id} {} after {} ms; {refused}",
                h.name,
                if waited.as_deref() == Some("0") && seen.is_some() {
                    "replicated"
                } else {
                    "NOT replicated"
                },
                started.elapsed().as_millis()
            );
        }
    }
    println!();
    status(dir, false).await
}
