//! Probing the local mysqld every `probe_interval_ms`, bounded by `probe_timeout_ms`.
//!
//! A second, "sentinel" connection sits in a long `SLEEP()`; when mysqld dies the
//! kernel closes that socket and the sentinel's query fails at once, which triggers a
//! probe immediately instead of at the next tick. A connection whose query timed out is
//! dropped, never reused.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use altair_core::gtid::Flavor;
use altair_proto::v1::{ConnectedReplica, Endpoint, MysqlSnapshot, ReplicationStatus};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::binlog_files::Checkpoint;
use crate::mysql::{connect, field, rows};

/// Facts about the local server that outlive it: where its binlog is (salvage reads the
/// files after mysqld died) and its flavour.
#[derive(Debug, Default)]
pub struct ServerFacts {
    pub binlog_basename: Option<String>,
    /// mysqld's pid file: the agent kills a mysqld that no longer answers before anything
    /// is promoted around it.
    pub pid_file: Option<String>,
    pub flavor: Option<Flavor>,
    /// Recent binlog positions with the GTID state at each (MariaDB), oldest first: a
    /// salvage starts reading at the newest one the candidate has, so its cost follows
    /// the missing tail, not the binlog's history.
    pub checkpoints: std::collections::VecDeque<Checkpoint>,
}

/// Checkpoints kept: 15 minutes at the default 1 s probe.
const CHECKPOINTS: usize = 900;

impl ServerFacts {
    /// Records a checkpoint with its file's opening GTID list (read once per file: a few
    /// hundred bytes).
    fn checkpoint(&mut self, mut c: Checkpoint) {
        c.opening = match self.checkpoints.back() {
            Some(prev) if prev.file_name == c.file_name => prev.opening.clone(),
            _ => self.binlog_basename.as_deref().and_then(|base| {
                let dir = std::path::Path::new(base).parent()?;
                crate::binlog_files::opening_gtid_list(&dir.join(&c.file_name))
                    .ok()
                    .flatten()
            }),
        };
        if self.checkpoints.back() == Some(&c) {
            return;
        }
        if self.checkpoints.len() == CHECKPOINTS {
            self.checkpoints.pop_front();
        }
        self.checkpoints.push_back(c);
    }
}

/// `Debug` by hand: `opts` holds the admin password (mysql_async's `Opts` prints it).
#[derive(Clone)]
pub struct ProbeSettings {
    pub facts: Arc<std::sync::Mutex<ServerFacts>>,
    pub opts: Opts,
    pub interval: Duration,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Notified to probe at once (the sentinel lost its connection, an action changed
    /// the server).
    pub wake: Arc<Notify>,
    /// The cluster runs semi-synchronously: read its state on every probe.
    pub semi_sync: bool,
    /// The write probe's verdict, copied into every snapshot.
    pub write: Arc<crate::write_probe::WriteState>,
}

impl std::fmt::Debug for ProbeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSettings")
            .field(
                "mysql",
                &format_args!("{}:{}", self.opts.ip_or_hostname(), self.opts.tcp_port()),
            )
            .field("user", &self.opts.user())
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("semi_sync", &self.semi_sync)
            .finish_non_exhaustive()
    }
}

/// Runs the probe loop, publishing every snapshot on `tx`, until `cancel`.
pub async fn run(
    settings: ProbeSettings,
    tx: watch::Sender<Arc<MysqlSnapshot>>,
    cancel: CancellationToken,
) {
    let wake = settings.wake.clone();
    tokio::spawn(sentinel(settings.clone(), wake.clone(), cancel.clone()));
    let mut conn = Prober::default();
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = wake.notified() => tracing::debug!("woken: probing now"),
            () = cancel.cancelled() => return,
        }
        let had_connection = conn.conn.is_some();
        let mut snapshot = probe_once(&settings, &mut conn).await;
        if !snapshot.reachable && had_connection {
            // One retry on a fresh connection, so a broken old connection never reads
            // as "mysqld down".
            snapshot = probe_once(&settings, &mut conn).await;
        }
        settings.write.fill(&mut snapshot);
        crate::metrics::count(
            &crate::metrics::PROBES,
            "result",
            if snapshot.reachable { "ok" } else { "failed" },
        );
        crate::metrics::MYSQL_UP.set(i64::from(snapshot.reachable));
        crate::metrics::SEMI_SYNC_DEGRADED.set(i64::from(snapshot.semi_sync_degraded()));
        let changed = tx.borrow().observed_state() != snapshot.observed_state();
        if changed {
            tracing::info!(
                reachable = snapshot.reachable,
                read_only = snapshot.read_only,
                error = %snapshot.probe_error,
                "mysqld state changed"
            );
        }
        tx.send_replace(Arc::new(snapshot));
    }
}

/// Where the server keeps its binlog and its pid.
#[derive(Debug, Default)]
struct Files {
    binlog_basename: Option<String>,
    pid_file: Option<String>,
}

/// A snapshot, the server's files and (MariaDB) a binlog checkpoint.
type ProbeResult = Result<(MysqlSnapshot, Files, Option<Checkpoint>), String>;
/// A probe query running on its own task: it gives the connection back when done.
type InFlight = JoinHandle<(Conn, Flavor, ProbeResult)>;

/// The probe's connection, and a probe query that outlived its timeout. Never more than
/// one probe query is in flight: a server stuck on a lock must not collect a new
/// blocked connection every probe interval.
#[derive(Default)]
struct Prober {
    conn: Option<(Conn, Flavor)>,
    pending: Option<(std::time::Instant, InFlight)>,
}

async fn probe_once(s: &ProbeSettings, p: &mut Prober) -> MysqlSnapshot {
    let observed_at_unix_ms = now_ms();
    if let Some((since, handle)) = p.pending.take() {
        if !handle.is_finished() {
            let waited = since.elapsed().as_millis();
            p.pending = Some((since, handle));
            return down(
                format!("the previous probe has not answered for {waited} ms"),
                observed_at_unix_ms,
            );
        }
        // It answered late: its snapshot is stale, its connection good again.
        if let Ok((c, f, Ok(_))) = handle.await {
            p.conn = Some((c, f));
        }
    }
    if p.conn.is_none() {
        match connect(s.opts.clone(), s.connect_timeout).await {
            Ok(mut c) => match flavor(&mut c).await {
                Ok(f) => p.conn = Some((c, f)),
                Err(e) => return down(e, observed_at_unix_ms),
            },
            Err(e) => return down(e, observed_at_unix_ms),
        }
    }
    let Some((mut c, flavor)) = p.conn.take() else {
        return down("no connection".into(), observed_at_unix_ms);
    };
    let semi_sync = s.semi_sync;
    let mut handle = tokio::spawn(async move {
        let mut r = collect(&mut c, flavor).await;
        if semi_sync && let Ok((snap, _, _)) = &mut r {
            match crate::semisync::read(&mut c).await {
                Ok(st) => snap.semi_sync = Some(st),
                Err(e) => r = Err(e),
            }
        }
        (c, flavor, r)
    });
    match tokio::time::timeout(s.timeout, &mut handle).await {
        Ok(Ok((c, flavor, Ok((mut snap, files, checkpoint))))) => {
            p.conn = Some((c, flavor));
            snap.observed_at_unix_ms = observed_at_unix_ms;
            if let Ok(mut facts) = s.facts.lock() {
                facts.flavor = Some(flavor);
                if files.binlog_basename.is_some() {
                    facts.binlog_basename = files.binlog_basename;
                }
                if files.pid_file.is_some() {
                    facts.pid_file = files.pid_file;
                }
                if let Some(c) = checkpoint {
                    facts.checkpoint(c);
                }
            }
            snap
        }
        Ok(Ok((_, _, Err(e)))) => down(e, observed_at_unix_ms),
        Ok(Err(e)) => down(format!("probe task failed: {e}"), observed_at_unix_ms),
        Err(_) => {
            p.pending = Some((std::time::Instant::now(), handle));
            down(
                format!("probe took longer than {} ms", s.timeout.as_millis()),
                observed_at_unix_ms,
            )
        }
    }
}

fn down(error: String, observed_at_unix_ms: i64) -> MysqlSnapshot {
    MysqlSnapshot {
        reachable: false,
        probe_error: error,
        read_only: true,
        observed_at_unix_ms,
        ..MysqlSnapshot::default()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn flavor(c: &mut Conn) -> Result<Flavor, String> {
    let v: Option<String> = c
        .query_first("SELECT @@version")
        .await
        .map_err(|e| crate::mysql::describe(&e))?;
    Ok(Flavor::from_version(&v.unwrap_or_default()))
}

async fn collect(c: &mut Conn, flavor: Flavor) -> ProbeResult {
    // The binlog position first, the GTID state after it: the state then holds at least
    // every transaction before the position, which is what a checkpoint promises.
    let master = if flavor == Flavor::MariaDb {
        rows(c, "SHOW MASTER STATUS").await?
    } else {
        Vec::new()
    };
    let (vars_sql, status_sql, replicas_sql) = match flavor {
        Flavor::MariaDb => (
            "SELECT @@version AS version, @@server_id AS server_id, @@read_only AS read_only, \
             0 AS super_read_only, @@gtid_binlog_pos AS executed, @@gtid_slave_pos AS applied, \
             @@gtid_binlog_state AS binlog_state, '' AS server_uuid, \
             @@log_bin_basename AS binlog_basename, @@pid_file AS pid_file",
            "SHOW ALL SLAVES STATUS",
            "SHOW SLAVE HOSTS",
        ),
        Flavor::Mysql => (
            "SELECT @@version AS version, @@server_id AS server_id, @@read_only AS read_only, \
             @@super_read_only AS super_read_only, @@gtid_executed AS executed, @@gtid_executed AS applied, \
             '' AS binlog_state, @@server_uuid AS server_uuid, \
             @@log_bin_basename AS binlog_basename, @@pid_file AS pid_file",
            "SHOW REPLICA STATUS",
            "SHOW REPLICAS",
        ),
    };
    let vars = rows(c, vars_sql).await?;
    let v = vars.first().ok_or("no answer to the variables query")?;
    let files = Files {
        binlog_basename: field(v, "binlog_basename").map(str::to_owned),
        pid_file: field(v, "pid_file").map(str::to_owned),
    };
    let num = |name: &str| {
        field(v, name)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut snap = MysqlSnapshot {
        reachable: true,
        flavor: match flavor {
            Flavor::MariaDb => altair_proto::v1::Flavor::Mariadb,
            Flavor::Mysql => altair_proto::v1::Flavor::Mysql,
        } as i32,
        version: field(v, "version").unwrap_or_default().to_owned(),
        server_id: num("server_id") as u32,
        read_only: num("read_only") != 0,
        super_read_only: num("super_read_only") != 0,
        gtid_executed: field(v, "executed").unwrap_or_default().to_owned(),
        gtid_applied: field(v, "applied").unwrap_or_default().to_owned(),
        gtid_binlog_state: field(v, "binlog_state").unwrap_or_default().to_owned(),
        server_uuid: field(v, "server_uuid").unwrap_or_default().to_owned(),
        ..MysqlSnapshot::default()
    };
    let status = rows(c, status_sql).await?;
    // MariaDB: the default (unnamed) connection only.
    let row = status
        .iter()
        .find(|r| field(r, "Connection_name").is_none_or(str::is_empty));
    if let Some(r) = row {
        let pick = |maria: &str, mysql: &str| {
            field(
                r,
                if flavor == Flavor::MariaDb {
                    maria
                } else {
                    mysql
                },
            )
            .unwrap_or_default()
            .to_owned()
        };
        snap.gtid_received = pick("Gtid_IO_Pos", "Retrieved_Gtid_Set");
        snap.replication = Some(ReplicationStatus {
            source: Some(Endpoint {
                host: pick("Master_Host", "Source_Host"),
                port: pick("Master_Port", "Source_Port").parse().unwrap_or(0),
            }),
            io_running: pick("Slave_IO_Running", "Replica_IO_Running") == "Yes",
            sql_running: pick("Slave_SQL_Running", "Replica_SQL_Running") == "Yes",
            using_gtid: match flavor {
                Flavor::MariaDb => !matches!(pick("Using_Gtid", "").as_str(), "" | "No"),
                Flavor::Mysql => pick("", "Auto_Position") == "1",
            },
            last_io_error: pick("Last_IO_Error", "Last_IO_Error"),
            last_sql_error: pick("Last_SQL_Error", "Last_SQL_Error"),
            seconds_behind: pick("Seconds_Behind_Master", "Seconds_Behind_Source")
                .parse()
                .ok(),
        });
    }
    snap.replicas = rows(c, replicas_sql)
        .await?
        .iter()
        .map(|r| ConnectedReplica {
            server_id: field(r, "Server_id")
                .and_then(|x| x.parse().ok())
                .unwrap_or(0),
            endpoint: Some(Endpoint {
                host: field(r, "Host").unwrap_or_default().to_owned(),
                port: field(r, "Port").and_then(|x| x.parse().ok()).unwrap_or(0),
            }),
        })
        .collect();
    let checkpoint = master.first().and_then(|m| {
        Some(Checkpoint {
            file_name: field(m, "File")?.to_owned(),
            offset: field(m, "Position")?.parse().ok()?,
            state: altair_core::gtid::MariaGtidPos::parse(&snap.gtid_executed).ok()?,
            opening: None,
        })
    });
    Ok((snap, files, checkpoint))
}

/// Holds a connection in `SELECT SLEEP(...)`; wakes the prober when it breaks.
async fn sentinel(s: ProbeSettings, wake: Arc<Notify>, cancel: CancellationToken) {
    loop {
        if let Ok(mut conn) = connect(s.opts.clone(), s.connect_timeout).await {
            tokio::select! {
                _ = conn.query_drop("SELECT SLEEP(86400)") => wake.notify_one(),
                () = cancel.cancelled() => return,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(s.interval) => {}
            () = cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_password() {
        let opts: Opts = mysql_async::OptsBuilder::default()
            .user(Some("altair"))
            .pass(Some("s3cret-pw"))
            .into();
        let s = ProbeSettings {
            facts: Arc::default(),
            opts,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            wake: Arc::new(Notify::new()),
            semi_sync: false,
            write: Arc::default(),
        };
        let text = format!("{s:?}");
        assert!(!text.contains("s3cret-pw"), "{text}");
        assert!(text.contains("altair"), "{text}");
    }
}
