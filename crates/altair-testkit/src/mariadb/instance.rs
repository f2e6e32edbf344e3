//! One `mariadbd` instance: its files, its process, its address.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::Credentials;
use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::{Error, Result, io_err, is_root, require_tool};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where an instance listens: an address on loopback, or a host namespace's address.
#[derive(Debug, Clone)]
pub struct HostAddr {
    pub ip: IpAddr,
    /// The network namespace to run `mariadbd` in, if any.
    pub namespace: Option<String>,
}

#[derive(Debug)]
pub struct Instance {
    name: String,
    server_id: u32,
    host: HostAddr,
    port: u16,
    dir: PathBuf,
    admin: Credentials,
    proc: Option<Proc>,
    _port: Option<Port>,
    /// With TLS: the server's certificate files; TCP sessions are TLS only
    /// (`require_secure_transport`; the unix socket stays open to the kit).
    tls: Option<crate::pki::TlsFiles>,
}

impl Instance {
    /// Lays out the instance's directories and `my.cnf` (nothing runs yet).
    pub(super) fn prepare(
        cluster_dir: &Path,
        name: &str,
        server_id: u32,
        host: HostAddr,
        admin: Credentials,
        tls: Option<&crate::pki::Pki>,
    ) -> Result<Self> {
        // In a namespace the instance owns the address: the standard port is free.
        let (port, reservation) = match host.namespace {
            Some(_) => (3306, None),
            None => {
                let p = reserve(host.ip)?;
                (p.get(), Some(p))
            }
        };
        let dir = cluster_dir.join(name);
        for sub in ["data", "tmp", "binlog"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err(format!("create {}", d.display())))?;
        }
        let tls = match tls {
            Some(pki) => Some(pki.issue(
                &format!("mysqld-{name}"),
                &format!("altair://mysqld/{name}"),
                &[host.ip],
            )?),
            None => None,
        };
        let inst = Self {
            name: name.to_owned(),
            server_id,
            host,
            port,
            dir,
            admin,
            proc: None,
            _port: reservation,
            tls,
        };
        let cnf = inst.cnf_path();
        std::fs::write(&cnf, inst.my_cnf()).map_err(io_err(format!("write {}", cnf.display())))?;
        Ok(inst)
    }

    fn my_cnf(&self) -> String {
        let d = self.dir.display();
        let user = if is_root() { "user=root\n" } else { "" };
        format!(
            "[mysqld]\n{user}\
             datadir={d}/data\ntmpdir={d}/tmp\nsocket={d}/mysqld.sock\npid-file={d}/mysqld.pid\n\
             log_error={d}/error.log\nport={port}\nbind-address={ip}\n\
             report_host={ip}\nreport_port={port}\n\
             server_id={id}\nlog_bin={d}/binlog/mysql-bin\nrelay_log={d}/data/relay-bin\n\
             binlog_format=ROW\nlog_slave_updates=ON\ngtid_strict_mode=ON\n\
             # Every mysqld starts read-only; only altair (or the kit's initial setup) lifts it.\n\
             read_only=ON\n\
             skip-name-resolve\nperformance_schema=OFF\n\
             innodb_buffer_pool_size=32M\ninnodb_buffer_pool_size_max=64M\n\
             innodb_log_file_size=16M\ninnodb_log_buffer_size=2M\ninnodb_use_native_aio=0\n\
             slave_net_timeout=5\nmax_connections=300\n",
            port = self.port,
            ip = self.host.ip,
            id = self.server_id,
        ) + &self.tls.as_ref().map_or_else(String::new, |t| {
            format!(
                "ssl_ca={}\nssl_cert={}\nssl_key={}\nrequire_secure_transport=ON\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            )
        })
    }

    /// The CA that signed this server's certificate, when it runs with TLS.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    pub fn ip(&self) -> IpAddr {
        self.host.ip
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host.ip, self.port)
    }

    pub fn namespace(&self) -> Option<&str> {
        self.host.namespace.as_deref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unix socket: shared across network namespaces, so it reaches an isolated host
    /// (the split-brain checker samples through it; tests that mean the network use TCP).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    /// Admin connection options over the unix socket.
    pub fn socket_opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .socket(Some(self.socket_path().display().to_string()))
            .user(Some(self.admin.user.clone()))
            .pass(Some(self.admin.password.clone()))
            .into()
    }

    pub fn cnf_path(&self) -> PathBuf {
        self.dir.join("my.cnf")
    }

    pub fn binlog_dir(&self) -> PathBuf {
        self.dir.join("binlog")
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Connection options over TCP (never the shared unix socket) as `creds`.
    pub fn opts(&self, creds: &Credentials, db: Option<&str>) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.ip.to_string())
            .tcp_port(self.port)
            .user(Some(creds.user.clone()))
            .pass(Some(creds.password.clone()))
            .db_name(db.map(str::to_owned))
            .prefer_socket(false)
            .ssl_opts(self.tls.as_ref().map(|t| {
                // The driver asks rustls for the process's crypto provider.
                altair_svc::crypto::use_ring();
                mysql_async::SslOpts::default()
                    .with_root_certs(vec![t.ca.clone().into()])
                    .with_disable_built_in_roots(true)
            }))
            .into()
    }

    /// A fresh admin connection (bounded by 5 s).
    pub async fn admin_conn(&self) -> Result<mysql_async::Conn> {
        connect(
            self.opts(&self.admin, None),
            &format!("connect to {} as admin", self.name),
        )
        .await
    }

    /// Starts `mariadbd` and waits until it answers `SELECT 1` over TCP. A mariadbd
    /// that exits while starting (a crash in recovery) is reported at once as
    /// `Error::Exited`, with the errors and crash lines of its log.
    pub async fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let mariadbd = require_tool("mariadbd")?;
        let mut cmd = match &self.host.namespace {
            Some(ns) => {
                let mut c = std::process::Command::new(require_tool("ip")?);
                c.args(["netns", "exec", ns]).arg(mariadbd);
                c
            }
            None => std::process::Command::new(mariadbd),
        };
        cmd.arg(format!("--defaults-file={}", self.cnf_path().display()));
        self.proc = Some(Proc::spawn(
            format!("mariadbd {}", self.name),
            &mut cmd,
            &self.dir.join("mariadbd.out"),
        )?);
        let what = format!("mariadbd {} at {}", self.name, self.addr());
        let opts = self.opts(&self.admin, None);
        let started = std::time::Instant::now();
        loop {
            let last = match connect(opts.clone(), "probe").await {
                Ok(mut c) => match c.query_drop("SELECT 1").await {
                    Ok(()) => return Ok(()),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            if !self.is_running() {
                self.proc = None;
                return Err(Error::Exited {
                    what,
                    detail: startup_errors(&self.error_log()),
                });
            }
            if started.elapsed() >= READY_TIMEOUT {
                return Err(Error::NotReady {
                    what,
                    waited: READY_TIMEOUT,
                    detail: format!("{last}; log:\n{}", startup_errors(&self.error_log())),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts mariadbd as an init system does after a host restart (systemd's
    /// `mariadb.service` has `Restart=on-abort`): one that exits while starting is
    /// started again, up to `retries` times. Returns what each exit said (empty: it
    /// came up at once).
    pub async fn start_restarting_on_abort(&mut self, retries: u32) -> Result<Vec<String>> {
        let mut exits = Vec::new();
        loop {
            match self.start().await {
                Ok(()) => return Ok(exits),
                Err(Error::Exited { detail, .. }) if exits.len() < retries as usize => {
                    exits.push(detail);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `kill -9` mysqld (the host stays up).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(30));
        }
    }

    /// Kill if running, then start again with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.start().await
    }

    /// SIGSTOP / SIGCONT mysqld.
    pub fn pause(&self) -> Result<()> {
        self.running_proc()?.pause()
    }

    pub fn resume(&self) -> Result<()> {
        self.running_proc()?.resume()
    }

    fn running_proc(&self) -> Result<&Proc> {
        self.proc.as_ref().ok_or_else(|| Error::Command {
            what: format!("signal mariadbd {}", self.name),
            detail: "it is not running".into(),
        })
    }
}

/// Connects with a 5 s bound.
pub(crate) async fn connect(opts: mysql_async::Opts, what: &str) -> Result<mysql_async::Conn> {
    match tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(opts)).await {
        Ok(result) => result.map_err(crate::mysql_err(what.to_owned())),
        Err(_) => Err(Error::Command {
            what: what.to_owned(),
            detail: "no answer within 5 s".into(),
        }),
    }
}

/// What a mysqld that did not come up said: the errors, warnings and crash lines of the
/// last 400 lines of its error log (a crash report ends in resource limits, which alone
/// say nothing), then its last 10 lines.
fn startup_errors(log: &Path) -> String {
    let recent = crate::process::log_tail(log, 400);
    let notable: Vec<&str> = recent
        .lines()
        .filter(|l| {
            [
                "[ERROR]",
                "[Warning]",
                "signal",
                "Assertion",
                "Fatal",
                "Aborting",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect();
    let notable = &notable[notable.len().saturating_sub(40)..];
    format!(
        "{}\n--- last lines:\n{}",
        notable.join("\n"),
        crate::process::log_tail(log, 10)
    )
}
