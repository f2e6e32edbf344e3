//! MariaDB clusters with GTID replication: one primary, N-1 replicas.
//!
//! Users (made at bootstrap, so on every instance and in no binlog):
//! - admin `altair` (ALL, WITH GRANT OPTION) for probing and acting;
//! - replication `repl` (REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR);
//! - application `app` (DML and DDL on database `app` only): `read_only` stops it, so
//!   tests write as this user.

mod instance;
mod small_fs;
pub mod sql;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;

pub use instance::{HostAddr, Instance};
pub use small_fs::SmallFs;
use sql::query_maps;

use crate::netns::TestNet;
use crate::{
    Error, Result, io_err, is_root, mysql_err, random_secret, require_tool, temp_dir, wait_for,
};

pub const APP_DATABASE: &str = "app";

/// Every host of `net`, in its namespace.
fn hosts_of(net: &TestNet) -> Vec<HostAddr> {
    net.hosts()
        .iter()
        .map(|h| HostAddr {
            ip: IpAddr::V4(h.ip),
            namespace: Some(h.namespace.clone()),
        })
        .collect()
}

/// A MySQL user and password. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    fn generate(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: random_secret(20),
        }
    }
}

#[derive(Debug)]
pub struct MariaDbCluster {
    instances: Vec<Instance>,
    admin: Credentials,
    repl: Credentials,
    app: Credentials,
    /// An account with no privileges (USAGE): what agents log in with to check that a
    /// mysqld of their cluster answers.
    probe: Credentials,
    /// Size-limited binlog filesystems, by instance (empty unless asked for); unmounted
    /// before the cluster's directory is removed.
    binlog_fs: Vec<SmallFs>,
    _dir: tempfile::TempDir,
}

impl MariaDbCluster {
    /// `n` instances on 127.0.0.1, each on its own free port.
    pub async fn start_loopback(n: usize) -> Result<Self> {
        let hosts = (0..n)
            .map(|_| HostAddr {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                namespace: None,
            })
            .collect();
        Self::start(hosts).await
    }

    /// One instance per host of `net`, each in its host's namespace on port 3306.
    pub async fn start_in(net: &TestNet) -> Result<Self> {
        Self::start(hosts_of(net)).await
    }

    /// `start_in`, with each instance's binlog directory on a filesystem of `mb` MiB of
    /// its own (see [`MariaDbCluster::binlog_fs`]): a disk that a test can fill up.
    pub async fn start_in_with_small_binlogs(net: &TestNet, mb: u32) -> Result<Self> {
        Self::start_with_users(hosts_of(net), Self::new_users(), Some(mb), false).await
    }

    /// `start_in`, every server with a certificate of a CA of its own
    /// ([`MariaDbCluster::tls_ca`]) and taking TCP sessions over TLS only
    /// (`require_secure_transport`); replication runs over TLS, the certificate checked.
    pub async fn start_in_with_tls(net: &TestNet) -> Result<Self> {
        Self::start_with_users(hosts_of(net), Self::new_users(), None, true).await
    }

    /// The CA of the servers' certificates, when the cluster runs with TLS.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.instances.first().and_then(Instance::tls_ca)
    }

    /// Initializes and starts one instance per host, the first as the writable primary
    /// and the rest replicating from it with GTIDs.
    pub async fn start(hosts: Vec<HostAddr>) -> Result<Self> {
        Self::start_with_users(hosts, Self::new_users(), None, false).await
    }

    fn new_users() -> (Credentials, Credentials, Credentials, Credentials) {
        (
            Credentials::generate("altair"),
            Credentials::generate("repl"),
            Credentials::generate("app"),
            Credentials::generate("altair_probe"),
        )
    }

    /// `start` with the users (and passwords) of `other`: one more cluster of a fleet
    /// whose control plane uses one admin and one replication account.
    pub async fn start_sharing_users(hosts: Vec<HostAddr>, other: &MariaDbCluster) -> Result<Self> {
        let users = (
            other.admin.clone(),
            other.repl.clone(),
            other.app.clone(),
            other.probe.clone(),
        );
        Self::start_with_users(hosts, users, None, false).await
    }

    async fn start_with_users(
        hosts: Vec<HostAddr>,
        (admin, repl, app, probe): (Credentials, Credentials, Credentials, Credentials),
        binlog_fs_mb: Option<u32>,
        tls: bool,
    ) -> Result<Self> {
        if hosts.is_empty() {
            return Err(Error::Command {
                what: "start a MariaDB cluster".into(),
                detail: "no hosts given".into(),
            });
        }
        require_tool("mariadbd")?;
        require_tool("mariadb-install-db")?;
        let dir = temp_dir("altair-mariadb-")?;
        let users_sql = dir.path().join("users.sql");
        std::fs::write(&users_sql, users_sql_text(&admin, &repl, &app, &probe))
            .map_err(io_err("write users.sql"))?;
        let pki = match tls {
            true => Some(crate::pki::Pki::new(
                &dir.path().join("tls"),
                "altair test MySQL",
            )?),
            false => None,
        };
        let mut instances = Vec::with_capacity(hosts.len());
        for (i, host) in hosts.into_iter().enumerate() {
            let name = format!("db{}", i + 1);
            instances.push(Instance::prepare(
                dir.path(),
                &name,
                i as u32 + 1,
                host,
                admin.clone(),
                pki.as_ref(),
            )?);
        }
        let mut binlog_fs = Vec::new();
        if let Some(mb) = binlog_fs_mb {
            for inst in &instances {
                binlog_fs.push(SmallFs::mount(&inst.binlog_dir(), mb)?);
            }
        }
        install_all(&instances, &users_sql).await?;
        let mut cluster = Self {
            instances,
            admin,
            repl,
            app,
            probe,
            binlog_fs,
            _dir: dir,
        };
        for inst in &mut cluster.instances {
            inst.start().await?;
        }
        let mut primary = cluster.instances[0].admin_conn().await?;
        primary
            .query_drop("SET GLOBAL read_only=OFF")
            .await
            .map_err(mysql_err("make the initial primary writable"))?;
        for i in 1..cluster.instances.len() {
            cluster.replicate(i, 0).await?;
        }
        for i in 1..cluster.instances.len() {
            cluster.wait_replicating(i, Duration::from_secs(30)).await?;
        }
        Ok(cluster)
    }

    /// The size-limited filesystem under instance `i`'s binlogs, when the cluster was
    /// started with them.
    pub fn binlog_fs(&self, i: usize) -> Option<&SmallFs> {
        self.binlog_fs.get(i)
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn instance(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    pub fn instance_mut(&mut self, i: usize) -> &mut Instance {
        &mut self.instances[i]
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    pub fn admin(&self) -> &Credentials {
        &self.admin
    }

    pub fn repl(&self) -> &Credentials {
        &self.repl
    }

    pub fn app(&self) -> &Credentials {
        &self.app
    }

    pub fn probe(&self) -> &Credentials {
        &self.probe
    }

    /// A connection to instance `i` as the DML-only application user, database `app`.
    pub async fn app_conn(&self, i: usize) -> Result<mysql_async::Conn> {
        let inst = &self.instances[i];
        instance::connect(
            inst.opts(&self.app, Some(APP_DATABASE)),
            &format!("connect to {} as the application user", inst.name()),
        )
        .await
    }

    pub async fn admin_conn(&self, i: usize) -> Result<mysql_async::Conn> {
        self.instances[i].admin_conn().await
    }

    /// Points instance `replica` at instance `source` (GTID `slave_pos`) and starts it.
    pub async fn replicate(&self, replica: usize, source: usize) -> Result<()> {
        let src = &self.instances[source];
        let sql = format!(
            "CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='{}', \
             MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
             MASTER_HEARTBEAT_PERIOD=1{}",
            src.ip(),
            src.port(),
            self.repl.user,
            self.repl.password,
            src.tls_ca().map_or_else(String::new, |ca| format!(
                ", MASTER_SSL=1, MASTER_SSL_CA='{}', MASTER_SSL_VERIFY_SERVER_CERT=1",
                ca.display()
            ))
        );
        let mut conn = self.admin_conn(replica).await?;
        let what = format!("point {} at {}", self.instances[replica].name(), src.name());
        conn.query_drop("STOP SLAVE")
            .await
            .map_err(mysql_err(what.clone()))?;
        // The error (if any) carries the statement text: never let the password into it.
        conn.query_drop(sql).await.map_err(|e| Error::Command {
            what: what.clone(),
            detail: format!(
                "CHANGE MASTER failed (server error code {:?})",
                mysql_code(&e)
            ),
        })?;
        conn.query_drop("START SLAVE")
            .await
            .map_err(mysql_err(what))?;
        Ok(())
    }

    /// `SHOW SLAVE STATUS` of instance `i` (`None` when it is not a replica).
    pub async fn slave_status(&self, i: usize) -> Result<Option<sql::RowMap>> {
        let mut conn = self.admin_conn(i).await?;
        Ok(query_maps(&mut conn, "SHOW SLAVE STATUS")
            .await?
            .into_iter()
            .next())
    }

    /// Waits until both replication threads of instance `i` run.
    pub async fn wait_replicating(&self, i: usize, timeout: Duration) -> Result<()> {
        let name = self.instances[i].name().to_owned();
        wait_for(
            &format!("replication on {name}"),
            timeout,
            Duration::from_millis(50),
            || async move {
                let status = self.slave_status(i).await.map_err(|e| e.to_string())?;
                let Some(s) = status else {
                    return Err("not configured as a replica".into());
                };
                let yes = |k: &str| s.get(k).cloned().flatten().as_deref() == Some("Yes");
                if yes("Slave_IO_Running") && yes("Slave_SQL_Running") {
                    Ok(Some(()))
                } else {
                    Err(format!(
                        "IO={:?} SQL={:?} last IO error={:?}",
                        s.get("Slave_IO_Running").cloned().flatten(),
                        s.get("Slave_SQL_Running").cloned().flatten(),
                        s.get("Last_IO_Error").cloned().flatten(),
                    ))
                }
            },
        )
        .await
    }

    /// `@@gtid_current_pos` of instance `i`.
    pub async fn gtid_current_pos(&self, i: usize) -> Result<String> {
        let mut conn = self.admin_conn(i).await?;
        Ok(sql::query_value(&mut conn, "SELECT @@gtid_current_pos")
            .await?
            .unwrap_or_default())
    }

    /// Waits until instance `i` has applied everything up to `gtid_pos` (MASTER_GTID_WAIT).
    pub async fn wait_for_gtid(&self, i: usize, gtid_pos: &str, timeout: Duration) -> Result<()> {
        let mut conn = self.admin_conn(i).await?;
        let sql = format!(
            "SELECT MASTER_GTID_WAIT('{}', {})",
            gtid_pos.replace('\'', ""),
            timeout.as_secs_f64()
        );
        match sql::query_value(&mut conn, &sql).await?.as_deref() {
            Some("0") => Ok(()),
            other => Err(Error::NotReady {
                what: format!("{} applying GTID {gtid_pos}", self.instances[i].name()),
                waited: timeout,
                detail: format!("MASTER_GTID_WAIT returned {other:?}"),
            }),
        }
    }
}

fn mysql_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

fn users_sql_text(
    admin: &Credentials,
    repl: &Credentials,
    app: &Credentials,
    probe: &Credentials,
) -> String {
    // Bootstrap runs without the grant tables loaded: FLUSH PRIVILEGES first, or CREATE USER fails.
    format!(
        "FLUSH PRIVILEGES;\n\
         CREATE USER '{au}'@'%' IDENTIFIED BY '{ap}';\n\
         GRANT ALL PRIVILEGES ON *.* TO '{au}'@'%' WITH GRANT OPTION;\n\
         CREATE USER '{ru}'@'%' IDENTIFIED BY '{rp}';\n\
         GRANT REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '{ru}'@'%';\n\
         CREATE DATABASE {db};\n\
         CREATE USER '{pu}'@'%' IDENTIFIED BY '{pp}';\n\
         GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON {db}.* TO '{pu}'@'%';\n\
         CREATE USER '{qu}'@'%' IDENTIFIED BY '{qp}';\n",
        au = admin.user,
        ap = admin.password,
        ru = repl.user,
        rp = repl.password,
        pu = app.user,
        pp = app.password,
        qu = probe.user,
        qp = probe.password,
        db = APP_DATABASE,
    )
}

/// Runs `mariadb-install-db` for every instance in parallel; an instance whose bootstrap
/// fails (it very rarely segfaults when run in parallel) is wiped and retried.
async fn install_all(instances: &[Instance], users_sql: &Path) -> Result<()> {
    let install_db = require_tool("mariadb-install-db")?;
    let mut pending: Vec<&Instance> = instances.iter().collect();
    for attempt in 1..=3 {
        let mut running = Vec::new();
        for inst in &pending {
            let mut cmd = tokio::process::Command::new(&install_db);
            cmd.arg(format!("--defaults-file={}", inst.cnf_path().display()))
                .args(["--skip-test-db", "--skip-name-resolve"])
                .arg(format!("--extra-file={}", users_sql.display()))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            if is_root() {
                cmd.arg("--user=root");
            }
            let child = cmd.spawn().map_err(io_err("run mariadb-install-db"))?;
            running.push((*inst, child));
        }
        let mut failed = Vec::new();
        let mut last_error = String::new();
        for (inst, child) in running {
            let out = child
                .wait_with_output()
                .await
                .map_err(io_err("wait for mariadb-install-db"))?;
            if !out.status.success() {
                last_error = format!(
                    "{}: {}: {}",
                    inst.name(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .rev()
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                let data = inst.dir().join("data");
                let _ = std::fs::remove_dir_all(&data);
                std::fs::create_dir_all(&data)
                    .map_err(io_err(format!("recreate {}", data.display())))?;
                failed.push(inst);
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        tracing::warn!(attempt, error = %last_error, "mariadb-install-db failed; retrying");
        pending = failed;
        if attempt == 3 {
            return Err(Error::Command {
                what: "initialize MariaDB data directories".into(),
                detail: last_error,
            });
        }
    }
    Ok(())
}
