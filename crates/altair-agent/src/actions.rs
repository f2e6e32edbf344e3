//! Host-side actions the orchestrator asks for: fence, read-only, catch up, salvage,
//! promote, repoint. Each is idempotent and checks the cluster epoch that authorised
//! it: an action from an older epoch than the newest this agent has seen is refused, so
//! a deposed orchestrator cannot act.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use altair_core::gtid::Flavor;
use altair_svc::Secret;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tonic::Status;

use crate::mysql::{connect, describe, field, rows};
use crate::probe::ServerFacts;

pub struct Actions {
    pub opts: Opts,
    pub host: String,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: Secret,
    pub repl_user: String,
    pub repl_password: Secret,
    /// TLS of the admin's sessions (the salvage client's too).
    pub admin_tls: altair_svc::mysql_tls::MysqlTlsLoaded,
    /// TLS of replication (`CHANGE MASTER … MASTER_SSL…`).
    pub repl_tls: altair_svc::mysql_tls::MysqlTlsLoaded,
    pub facts: Arc<Mutex<ServerFacts>>,
    /// The newest epoch accepted (kept in `<state_dir>/epoch` across restarts).
    pub epoch: AtomicU64,
    /// The cluster's epoch as last read from ZooKeeper (0 before the first read).
    pub cluster_epoch: AtomicU64,
    pub cluster: altair_core::ClusterName,
    /// The current ZooKeeper session, for a fresh read of the cluster's epoch.
    pub zk: tokio::sync::watch::Receiver<Option<altair_zk::Zk>>,
    /// Serializes writes of the epoch file.
    pub epoch_file: Mutex<()>,
    pub state_dir: PathBuf,
    /// Wakes the prober: after an action the next snapshot shows its effect at once.
    pub reprobe: Arc<tokio::sync::Notify>,
    /// Set when the cluster runs semi-synchronously.
    pub semi_sync: Option<crate::semisync::SemiSync>,
    /// Held by a salvage apply from its start until its flushing settings are back, and by
    /// a promotion: nothing is made writable while an apply (or its clean-up) still runs.
    pub apply_lock: tokio::sync::Mutex<()>,
    /// The session that kills an action's session when it runs past its deadline.
    pub killer: Arc<crate::killer::Killer>,
}

/// Kept from a fence's deadline, when it may kill, to stop mysqld if read_only could not
/// be set in time (SIGKILL and the process gone: well under a second).
const KILL_RESERVE: Duration = Duration::from_millis(1_000);

/// What a fence achieved: the server is read-only (clients killed) or not running.
#[derive(Debug, Clone, Default)]
pub struct Fenced {
    pub killed: u32,
    /// GTIDs executed when writes stopped (empty when not running).
    pub gtid: String,
    pub not_running: bool,
}

pub(crate) fn mysql_err(what: &str) -> impl Fn(mysql_async::Error) -> Status + '_ {
    move |e| Status::unavailable(format!("{what}: {}", describe(&e)))
}

impl Actions {
    /// Accepts `epoch` when it is not older than the newest accepted and not ahead of the
    /// cluster's epoch in ZooKeeper (`altair_core::epoch::accept`); only then remembers
    /// it, in memory and in `<state_dir>/epoch`.
    pub async fn check_epoch(&self, epoch: u64) -> Result<(), Status> {
        use altair_core::epoch::{EpochRefusal, accept};
        let seen = self.epoch();
        let mut verdict = accept(epoch, seen, self.cluster_epoch.load(Ordering::SeqCst));
        if matches!(verdict, Err(EpochRefusal::Ahead { .. })) {
            // The copy of the cluster state may be older than this call: read it afresh.
            if let Some(fresh) = self.read_cluster_epoch().await {
                verdict = accept(epoch, seen, fresh);
            }
        }
        verdict.map_err(|r| match r {
            EpochRefusal::Missing => Status::invalid_argument(r.to_string()),
            _ => {
                tracing::warn!(epoch, seen, reason = %r, "action refused for its epoch");
                Status::failed_precondition(r.to_string())
            }
        })?;
        let before = self.epoch.fetch_max(epoch, Ordering::SeqCst);
        if epoch < before {
            // A newer epoch was accepted meanwhile.
            return Err(Status::failed_precondition(
                EpochRefusal::Stale {
                    requested: epoch,
                    seen: before,
                }
                .to_string(),
            ));
        }
        if epoch > before {
            self.persist_epoch();
        }
        Ok(())
    }

    /// The cluster's epoch from ZooKeeper now (at most 1 s); `None` without a session.
    async fn read_cluster_epoch(&self) -> Option<u64> {
        let zk = self.zk.borrow().clone()?;
        let path = zk.layout().cluster_state(&self.cluster);
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            zk.get_record::<altair_core::registry::ClusterState>("cluster state", &path),
        )
        .await;
        let epoch = read.ok()?.ok()??.epoch;
        self.cluster_epoch.fetch_max(epoch, Ordering::SeqCst);
        Some(self.cluster_epoch.load(Ordering::SeqCst))
    }

    /// The mysqld addresses of the hosts registered in this cluster, read from ZooKeeper
    /// now (at most 1 s); `None` without a session or on an error.
    pub async fn registered_mysql(&self) -> Option<Vec<String>> {
        let zk = self.zk.borrow().clone()?;
        let l = zk.layout().clone();
        let read = async {
            let mut out = Vec::new();
            for name in zk.children(&l.hosts(&self.cluster)).await.ok()? {
                let Ok(h) = altair_core::HostName::new(name) else {
                    continue;
                };
                let r = zk
                    .get_record::<altair_core::registry::HostRecord>(
                        "host",
                        &l.host(&self.cluster, &h),
                    )
                    .await
                    .ok()?;
                if let Some(r) = r.filter(|r| r.check(self.cluster.as_str(), h.as_str()).is_ok()) {
                    out.push(r.mysql);
                }
            }
            out.sort();
            Some(out)
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), read)
            .await
            .ok()
            .flatten()
    }

    /// Writes the accepted epoch to `<state_dir>/epoch` (a temp file renamed over it).
    fn persist_epoch(&self) {
        let _held = self.epoch_file.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.state_dir.join("epoch");
        let tmp = self.state_dir.join("epoch.tmp");
        let text = altair_core::epoch::to_file(self.epoch());
        // Written, synced, renamed and the directory synced: a crash leaves the old file
        // or the new one, never an empty one.
        let written = std::fs::create_dir_all(&self.state_dir)
            .and_then(|()| {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path))
            .and_then(|()| std::fs::File::open(&self.state_dir)?.sync_all());
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "cannot keep the accepted epoch on disk: after a restart, until ZooKeeper is read, the bound on epochs is lower than it should be");
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub(crate) fn flavor(&self) -> Flavor {
        self.facts
            .lock()
            .ok()
            .and_then(|f| f.flavor)
            .unwrap_or(Flavor::MariaDb)
    }

    pub(crate) async fn conn(&self) -> Result<Conn, Status> {
        connect(self.opts.clone(), Duration::from_secs(2))
            .await
            .map_err(|e| Status::unavailable(format!("cannot connect to the local mysqld: {e}")))
    }

    pub(crate) async fn gtid_executed(&self, c: &mut Conn) -> Result<String, Status> {
        let sql = match self.flavor() {
            Flavor::MariaDb => "SELECT @@gtid_binlog_pos",
            Flavor::Mysql => "SELECT @@gtid_executed",
        };
        let v: Option<String> = c.query_first(sql).await.map_err(mysql_err("read GTIDs"))?;
        Ok(v.unwrap_or_default())
    }

    async fn set_read_only_on(&self, c: &mut Conn) -> Result<(), Status> {
        c.query_drop("SET GLOBAL read_only=ON")
            .await
            .map_err(mysql_err("set read_only"))?;
        if self.flavor() == Flavor::Mysql {
            c.query_drop("SET GLOBAL super_read_only=ON")
                .await
                .map_err(mysql_err("set super_read_only"))?;
        }
        Ok(())
    }

    /// read_only=ON and kill every client connection but altair's own and replication.
    /// A mysqld that is down is already fenced (it restarts read-only from its config).
    ///
    /// Clients are killed first: `SET GLOBAL read_only` waits for commits in progress,
    /// and a commit waiting for a semi-sync acknowledgement would hold it until the ack
    /// timeout — then be acknowledged without any replica. A killed session's wait ends
    /// at once and its client never gets an acknowledgement. The read_only wait is bounded
    /// and retried, killing again in between; clients that connected meanwhile are killed
    /// once it is set.
    pub async fn fence_read_only(
        &self,
        allow_kill: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Fenced, Status> {
        let mut c = match self.conn_by("fence", deadline).await {
            Ok(c) => c,
            Err(e) if allow_kill && crate::deadline::overslept(deadline) => {
                return Err(stalled_past(&e));
            }
            Err(e) if allow_kill => return self.not_running_after(e).await,
            Err(e) => {
                return Err(Status::unavailable(format!(
                    "not fenced: {} (a planned switchover never kills mysqld)",
                    e.message()
                )));
            }
        };
        let id = c.id();
        // With leave to kill, the SQL gets the budget less the time stopping mysqld takes:
        // a server that cannot be made read-only in time is stopped instead.
        let sql_deadline = if allow_kill {
            deadline
                .checked_sub(KILL_RESERVE)
                .filter(|d| *d > tokio::time::Instant::now())
                .unwrap_or(deadline)
        } else {
            deadline
        };
        let mut fenced = self
            .bounded("fence", id, sql_deadline, self.fence_on(&mut c))
            .await;
        // The session itself failed (the server closed it; seen as a host resumed from a
        // freeze): once more on a fresh one while time remains, before stopping mysqld.
        if let Err(e) | Ok(Err(e)) = &fenced
            && e.code() == tonic::Code::Unavailable
            && tokio::time::Instant::now() < sql_deadline
        {
            tracing::warn!(error = %e.message(), "fence: the session to mysqld failed; trying once more on a fresh one");
            let read_only = matches!(fenced, Ok(Err(_)));
            fenced = match self.conn_by("fence", sql_deadline).await {
                Ok(mut fresh) => {
                    let id = fresh.id();
                    self.bounded("fence", id, sql_deadline, self.fence_on(&mut fresh))
                        .await
                }
                Err(e) => Err(e),
            };
            // Made read-only the first time: a failed second try does not undo that.
            if read_only && let Err(e) = fenced {
                fenced = Ok(Err(e));
            }
        }
        match fenced {
            Ok(done) => done,
            // With leave to kill, a server that could not be made read-only — out of
            // time, or `SET GLOBAL read_only` refused at every try with time to spare (a
            // session the fence spares holds a write open) — is stopped: a fence that
            // failed is no fence, and a failover would otherwise retry it for ever. (One
            // made read-only whose last reads failed is not: `Ok(Err)`, retried.)
            Err(e) if allow_kill && crate::deadline::overslept(deadline) => Err(stalled_past(&e)),
            Err(e) if allow_kill => {
                drop(c);
                tracing::error!(error = %e.message(), "mysqld could not be made read-only: stopping it");
                self.not_running_after(e).await
            }
            Err(e) => Err(e),
        }
    }

    /// The fence on session `c`: `Err` while the server may still be writable, `Ok(Err)`
    /// when it was made read-only but what follows (the last kill of clients, the GTID
    /// read) failed.
    async fn fence_on(&self, c: &mut Conn) -> Result<Result<Fenced, Status>, Status> {
        let c = &mut *c;
        let mut killed = self.kill_clients(c).await?;
        c.query_drop("SET SESSION lock_wait_timeout = 1")
            .await
            .map_err(mysql_err("bound the read_only wait"))?;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.set_read_only_on(c).await {
                Ok(()) => break,
                Err(e) if tries >= 5 => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e.message(), "read_only not set yet: killing clients again");
                    killed += self.kill_clients(c).await?;
                }
            }
        }
        Ok(async {
            killed += self.kill_clients(c).await?;
            let gtid = self.gtid_executed(c).await?;
            Ok(Fenced {
                killed,
                gtid,
                not_running: false,
            })
        }
        .await)
    }

    /// mysqld did not answer: fenced only once it is provably not running.
    async fn not_running_after(&self, connect_error: Status) -> Result<Fenced, Status> {
        match self.make_not_running(std::time::Duration::ZERO).await {
            Ok(()) => Ok(Fenced {
                not_running: true,
                ..Fenced::default()
            }),
            Err(e) => Err(Status::unavailable(format!(
                "not fenced: {}; {}",
                connect_error.message(),
                e.message()
            ))),
        }
    }

    /// Kills every client connection but altair's own, replication, the server's and
    /// those still logging in (see [`crate::fence_targets`]).
    async fn kill_clients(&self, c: &mut Conn) -> Result<u32, Status> {
        let list = rows(
            c,
            "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
        )
        .await
        .map_err(|e| Status::unavailable(format!("list connections: {e}")))?;
        let mut killed = 0;
        for r in &list {
            let user = field(r, "USER").unwrap_or_default();
            let command = field(r, "COMMAND").unwrap_or_default();
            if !crate::fence_targets::is_writing_client(
                user,
                command,
                &self.admin_user,
                &self.repl_user,
            ) {
                continue;
            }
            if let Some(id) = field(r, "ID") {
                // The connection may already be gone: not an error.
                if c.query_drop(format!("KILL CONNECTION {id}")).await.is_ok() {
                    killed += 1;
                }
            }
        }
        Ok(killed)
    }

    /// Read-only, then a clean shutdown, within `deadline`: what cannot be done by then
    /// less [`KILL_RESERVE`] ends with mysqld killed (a fence that runs out is no fence).
    pub async fn stop_mysqld(&self, deadline: tokio::time::Instant) -> Result<Fenced, Status> {
        let clean_by = deadline
            .checked_sub(KILL_RESERVE)
            .filter(|d| *d > tokio::time::Instant::now())
            .unwrap_or(deadline);
        let mut c = match self.conn_by("fence (stop mysqld)", clean_by).await {
            Ok(c) => c,
            Err(e) => return self.not_running_after(e).await,
        };
        let id = c.id();
        let asked = self
            .bounded("fence (stop mysqld)", id, clean_by, async {
                self.set_read_only_on(&mut c).await?;
                let gtid = self.gtid_executed(&mut c).await?;
                c.query_drop("SHUTDOWN")
                    .await
                    .map_err(mysql_err("shut mysqld down"))?;
                Ok(gtid)
            })
            .await;
        drop(c);
        let gtid = match asked {
            Ok(gtid) => gtid,
            Err(e) => {
                tracing::error!(error = %e.message(), "mysqld could not be shut down cleanly in time: killing it");
                return self.not_running_after(e).await;
            }
        };
        // Fenced once it is gone, not when it was asked to go: a clean shutdown gets what
        // is left of the clean part of the deadline before it is killed.
        self.make_not_running(clean_by.saturating_duration_since(tokio::time::Instant::now()))
            .await?;
        Ok(Fenced {
            killed: 0,
            gtid,
            not_running: true,
        })
    }

    pub async fn set_read_only(
        &self,
        read_only: bool,
        deadline: tokio::time::Instant,
    ) -> Result<bool, Status> {
        let mut c = self.conn_by("set read_only", deadline).await?;
        let id = c.id();
        let work = async {
            if read_only {
                self.set_read_only_on(&mut c).await?;
            } else {
                // Semi-sync: commits wait for a replica from the first one on (a restarted
                // mysqld comes back with the primary side off).
                self.semi_sync_primary(&mut c, true).await?;
                if self.flavor() == Flavor::Mysql {
                    c.query_drop("SET GLOBAL super_read_only=OFF")
                        .await
                        .map_err(mysql_err("clear super_read_only"))?;
                }
                c.query_drop("SET GLOBAL read_only=OFF")
                    .await
                    .map_err(mysql_err("clear read_only"))?;
            }
            Ok(read_only)
        };
        self.bounded("set read_only", id, deadline, work).await
    }

    /// Waits until the local replica applied `gtid` (or, when empty, all it received).
    /// Replication is not stopped first: stopping discards unapplied relay logs.
    pub async fn catch_up(&self, gtid: &str, timeout: Duration) -> Result<(bool, String), Status> {
        let mut c = self.conn().await?;
        let flavor = self.flavor();
        let (status_sql, received_key, sql_key) = match flavor {
            Flavor::MariaDb => ("SHOW SLAVE STATUS", "Gtid_IO_Pos", "Slave_SQL_Running"),
            Flavor::Mysql => (
                "SHOW REPLICA STATUS",
                "Retrieved_Gtid_Set",
                "Replica_SQL_Running",
            ),
        };
        let status = tokio::time::timeout(Duration::from_secs(5), rows(&mut c, status_sql))
            .await
            .map_err(|_| Status::unavailable("SHOW SLAVE STATUS did not answer in 5 s"))?
            .map_err(Status::unavailable)?;
        let row = status.first();
        let target = if gtid.is_empty() {
            row.and_then(|r| field(r, received_key))
                .unwrap_or_default()
                .to_owned()
        } else {
            gtid.to_owned()
        };
        if target.is_empty() {
            let executed = self.gtid_executed(&mut c).await?;
            return Ok((true, executed));
        }
        // Nothing applies what is received while the SQL thread is stopped (a salvage
        // apply stopped it, or an error did): waiting would only run out the timeout.
        if row.and_then(|r| field(r, sql_key)) != Some("Yes") {
            let executed = self.gtid_executed(&mut c).await?;
            let reached = matches!(
                (
                    altair_core::gtid::GtidState::parse(flavor, &executed),
                    altair_core::gtid::GtidState::parse(flavor, &target),
                ),
                (Ok(have), Ok(want)) if have.contains(&want).unwrap_or(false)
            );
            return Ok((reached, executed));
        }
        let secs = timeout.as_secs_f64();
        let (sql, ok) = match flavor {
            Flavor::MariaDb => ("SELECT MASTER_GTID_WAIT(?, ?)", 0i64),
            Flavor::Mysql => ("SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)", 0i64),
        };
        let bound = timeout + Duration::from_secs(2);
        let waited: Option<i64> =
            tokio::time::timeout(bound, c.exec_first(sql, (target.clone(), secs)))
                .await
                .map_err(|_| Status::deadline_exceeded("catch-up did not answer in time"))?
                .map_err(mysql_err("wait for the relay log"))?;
        let executed = self.gtid_executed(&mut c).await?;
        Ok((waited == Some(ok), executed))
    }

    /// Stop and clear replication, make the server writable.
    pub async fn promote(
        &self,
        epoch: u64,
        deadline: tokio::time::Instant,
    ) -> Result<String, Status> {
        let _apply = tokio::time::timeout_at(deadline, self.apply_lock.lock())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(
                    "promote: a salvage apply still runs on this host at the deadline",
                )
            })?;
        let mut c = self.conn_by("promote", deadline).await?;
        let id = c.id();
        self.bounded(
            "promote",
            id,
            deadline,
            self.promote_on(&mut c, epoch, deadline),
        )
        .await
    }

    async fn promote_on(
        &self,
        c: &mut Conn,
        epoch: u64,
        deadline: tokio::time::Instant,
    ) -> Result<String, Status> {
        // A retry of this epoch's promotion that already made the server writable: the
        // fork point is the one read before, not today's position (writes may be in it).
        if let Some(fork) = crate::promoted::saved_for(&self.state_dir, epoch) {
            let read_only: Option<u8> = c
                .query_first("SELECT @@global.read_only")
                .await
                .map_err(mysql_err("read read_only"))?;
            if read_only == Some(0) {
                tracing::warn!(epoch, fork = %fork, "promotion retried after it made the server writable: answering its saved fork point");
                return Ok(fork);
            }
        }
        // Flushing an interrupted apply relaxed comes back before any write is taken.
        crate::apply_durability::restore_saved(c, &self.state_dir).await?;
        // Semi-sync: commits wait for a replica from the first one on.
        self.semi_sync_primary(c, true).await?;
        let (stop, writable): (&[&str], &[&str]) = match self.flavor() {
            Flavor::MariaDb => (
                &["STOP SLAVE", "RESET SLAVE ALL"],
                &["SET GLOBAL read_only=OFF"],
            ),
            Flavor::Mysql => (
                &["STOP REPLICA", "RESET REPLICA ALL"],
                &["SET GLOBAL super_read_only=OFF", "SET GLOBAL read_only=OFF"],
            ),
        };
        for sql in stop {
            c.query_drop(*sql).await.map_err(mysql_err(sql))?;
        }
        // The fork point is the position before the first write this server takes as the
        // primary: read while it is still read-only.
        let fork = self.gtid_executed(c).await?;
        crate::promoted::save(&self.state_dir, epoch, &fork).map_err(|e| {
            Status::internal(format!(
                "promote: cannot keep the fork point in {}: {e}",
                self.state_dir.display()
            ))
        })?;
        // The one step that cannot be taken back is taken only inside the deadline: a
        // process frozen since the statements above (its timer not yet fired when it
        // resumes) must not make the server writable after its caller gave up.
        if tokio::time::Instant::now() >= deadline {
            return Err(Status::deadline_exceeded(
                "promote: the deadline passed before the server was made writable (it stays read-only, replication stopped)",
            ));
        }
        for sql in writable {
            c.query_drop(*sql).await.map_err(mysql_err(sql))?;
        }
        Ok(fork)
    }

    /// Replicate from `host:port` with GTID auto-positioning.
    pub async fn repoint(
        &self,
        host: &str,
        port: u16,
        use_current_pos: bool,
        deadline: tokio::time::Instant,
    ) -> Result<(), Status> {
        if !altair_core::config::is_host(host) || port == 0 {
            return Err(Status::invalid_argument(format!(
                "source {host}:{port} is not a valid address"
            )));
        }
        let mut c = self.conn_by("repoint", deadline).await?;
        let id = c.id();
        self.bounded(
            "repoint",
            id,
            deadline,
            self.repoint_on(&mut c, host, port, use_current_pos),
        )
        .await
    }

    async fn repoint_on(
        &self,
        c: &mut Conn,
        host: &str,
        port: u16,
        use_current_pos: bool,
    ) -> Result<(), Status> {
        // CHANGE MASTER takes no placeholders: literals, escaped. The statement holds the
        // password, so it is never logged and errors carry only the server's code.
        let user = sql_literal(&self.repl_user);
        let pw = sql_literal(self.repl_password.expose());
        let (stop, change, start) = match self.flavor() {
            Flavor::MariaDb => (
                "STOP SLAVE",
                format!(
                    "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER={user}, MASTER_PASSWORD={pw}, \
                     MASTER_USE_GTID={}, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1{}",
                    if use_current_pos {
                        "current_pos"
                    } else {
                        "slave_pos"
                    },
                    replication_tls(&self.repl_tls, "MASTER")
                ),
                "START SLAVE",
            ),
            Flavor::Mysql => (
                "STOP REPLICA",
                format!(
                    "CHANGE REPLICATION SOURCE TO SOURCE_HOST='{host}', SOURCE_PORT={port}, SOURCE_USER={user}, \
                     SOURCE_PASSWORD={pw}, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1{}",
                    replication_tls(&self.repl_tls, "SOURCE")
                ),
                "START REPLICA",
            ),
        };
        c.query_drop(stop)
            .await
            .map_err(mysql_err("stop replication"))?;
        // A replica never waits for acknowledgements of its own.
        self.semi_sync_primary(c, false).await?;
        c.query_drop(change).await.map_err(|e| match e {
            mysql_async::Error::Server(s) => {
                Status::unavailable(format!("change source: server error {}", s.code))
            }
            other => Status::unavailable(format!("change source: {}", describe(&other))),
        })?;
        c.query_drop(start)
            .await
            .map_err(mysql_err("start replication"))?;
        Ok(())
    }

    /// Every transaction after `after` as a replayable stream, or (`flashback`, MariaDB)
    /// as the stream that undoes them, newest first.
    pub(crate) async fn read_binlog(
        &self,
        after: &str,
        flashback: bool,
    ) -> Result<(Vec<u8>, String, u32), Status> {
        let basename = self.binlog_basename()?;
        let files = crate::binlog_files::list(&basename)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        if files.is_empty() {
            return Ok((Vec::new(), String::new(), 0));
        }
        if self.flavor() == Flavor::MariaDb {
            // The tool refuses a start position at the binlog's very end: decide "nothing
            // after it" natively first.
            let nothing = self.prepare_salvage(after).await?.plan.transaction_count == 0;
            if nothing {
                return Ok((Vec::new(), String::new(), 0));
            }
        }
        let (tool, args): (&str, Vec<String>) = match self.flavor() {
            Flavor::MariaDb if flashback => (
                "mariadb-binlog",
                vec![format!("--start-position={after}"), "--flashback".into()],
            ),
            Flavor::MariaDb => ("mariadb-binlog", vec![format!("--start-position={after}")]),
            Flavor::Mysql => ("mysqlbinlog", vec![format!("--exclude-gtids={after}")]),
        };
        let out = tokio::process::Command::new(tool)
            .args(&args)
            .args(&files)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| Status::failed_precondition(format!("run {tool}: {e}")))?;
        if !out.status.success() {
            return Err(Status::internal(format!(
                "{tool} failed: {}",
                crate::salvage::last_line(&out.stderr)
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let gtids: Vec<&str> = text.lines().filter_map(gtid_of_line).collect();
        let count = gtids.len() as u32;
        let last = gtids.last().map(|s| (*s).to_owned()).unwrap_or_default();
        Ok((
            // A flashback stream names no GTIDs (its transactions are new): keep it whole.
            if count == 0 && !flashback {
                Vec::new()
            } else {
                out.stdout
            },
            last,
            count,
        ))
    }

    /// Feeds `prefix` then `events` to the command-line client (sandbox mode), as the
    /// admin user.
    pub(crate) async fn pipe_to_client(
        &self,
        prefix: &[u8],
        events: &[u8],
        what: &'static str,
    ) -> Result<(), Status> {
        if events.is_empty() {
            return Ok(());
        }
        let mut client = self.client(what)?;
        if let Some(mut out) = client.child.stdout.take() {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
            });
        }
        if let Some(mut stdin) = client.child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let feed = |e: std::io::Error| Status::internal(format!("feed the client: {e}"));
            stdin.write_all(prefix).await.map_err(feed)?;
            stdin.write_all(events).await.map_err(feed)?;
        }
        client.finish().await
    }
}

/// The TLS options of a `CHANGE MASTER` (`prefix` `MASTER`) or `CHANGE REPLICATION
/// SOURCE` (`SOURCE`) for `[replication] tls`: empty when disabled (the server's own
/// default then stands). The replica checks the primary's certificate against the CA,
/// and with `verify_identity` its name too (MariaDB checks the chain only together with
/// the name: there `verify_ca` encrypts without checking).
pub(crate) fn replication_tls(tls: &altair_svc::mysql_tls::MysqlTlsLoaded, prefix: &str) -> String {
    use altair_core::config::MysqlTlsMode;
    let mut out = String::new();
    if tls.mode == MysqlTlsMode::Disabled {
        return out;
    }
    out.push_str(&format!(", {prefix}_SSL=1"));
    // A CA left from an earlier setting would still be checked against: cleared unless
    // this mode verifies.
    let ca = match (tls.mode.verifies(), &tls.ca_file) {
        (true, Some(ca)) => ca.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    out.push_str(&format!(", {prefix}_SSL_CA={}", sql_literal(&ca)));
    out.push_str(&format!(
        ", {prefix}_SSL_VERIFY_SERVER_CERT={}",
        u8::from(tls.mode == MysqlTlsMode::VerifyIdentity)
    ));
    out
}

/// A single-quoted SQL string literal with quotes and backslashes escaped.
pub(crate) fn sql_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for ch in value.chars() {
        match ch {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The GTID a line of binlog-tool output starts a transaction with: MariaDB prints
/// `#... server id 1 ... <TAB>GTID 0-1-5 trans`, MySQL `SET @@SESSION.GTID_NEXT= 'uuid:5'`.
fn gtid_of_line(line: &str) -> Option<&str> {
    if line.starts_with('#') {
        let mut tokens = line.split_whitespace();
        tokens.find(|t| *t == "GTID")?;
        return tokens
            .next()
            .filter(|g| g.starts_with(|c: char| c.is_ascii_digit()));
    }
    let rest = line.strip_prefix("SET @@SESSION.GTID_NEXT=")?;
    let quoted = rest.trim_start().strip_prefix('\'')?;
    let gtid = &quoted[..quoted.find('\'')?];
    (gtid != "AUTOMATIC").then_some(gtid)
}

/// A 0600 temp file holding `text` (client options with the password: never argv).
pub(crate) fn tempfile_with(text: &str) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new()?;
    f.write_all(text.as_bytes())?;
    f.flush()?;
    Ok(f)
}

/// The answer of a fence this agent was frozen through (see `deadline::overslept`):
/// nothing more done; the caller, past its deadline, no longer waits for it.
fn stalled_past(e: &Status) -> Status {
    tracing::warn!(error = %e.message(), "the fence ran out while this agent was stalled: mysqld not stopped on its behalf (the self-fencing loop judges the primary now)");
    Status::deadline_exceeded(format!(
        "not fenced: this agent was stalled past the fence's deadline ({}); mysqld not stopped",
        e.message()
    ))
}

#[cfg(test)]
mod tests {
    use super::gtid_of_line;

    #[test]
    fn literals_are_escaped() {
        assert_eq!(super::sql_literal("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(super::sql_literal("plain"), "'plain'");
    }

    #[test]
    fn finds_transaction_gtids_in_binlog_tool_output() {
        assert_eq!(
            gtid_of_line(
                "#261127 19:22:12 server id 1  end_log_pos 598 CRC32 0xe66190b8 \tGTID 0-1-2 trans"
            ),
            Some("0-1-2")
        );
        assert_eq!(
            gtid_of_line("/*!100001 SET @@SESSION.GTID_DOMAIN_ID=@@GLOBAL.GTID_DOMAIN_ID */;"),
            None
        );
        assert_eq!(
            gtid_of_line("SET @@SESSION.GTID_NEXT= '3e11fa47-71ca-11e1-9e33-c80aa9429562:5'/*!*/;"),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:5")
        );
        assert_eq!(
            gtid_of_line("SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by mysqlbinlog */ /*!*/;"),
            None
        );
    }
}
