//! Semi-synchronous replication (`agent.durability = "semi_sync"`, DESIGN §10): every
//! host acknowledges what it receives; the writable primary waits for an
//! acknowledgement (AFTER_SYNC: before the commit is visible or acknowledged) for at most
//! `semi_sync_timeout_ms`, longer than the self-fencing bound. The agent reads the state
//! on every probe and turns on what is off; actions that change a host's role (promote,
//! repoint, rejoin) set the primary side themselves, before the role changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use altair_core::gtid::Flavor;
use altair_proto::v1::{MysqlSnapshot, SemiSyncStatus};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use tonic::Status;

use crate::actions::{Actions, mysql_err};
use crate::mysql::{field, rows};

#[derive(Debug, Clone, Copy)]
pub struct SemiSync {
    pub timeout_ms: u64,
    pub ackers: u32,
}

/// The semi-sync variables and status counters of the server (both flavours' names).
pub async fn read(c: &mut Conn) -> Result<SemiSyncStatus, String> {
    let mut v = HashMap::new();
    for sql in [
        "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_%enabled'",
        "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'",
    ] {
        for r in rows(c, sql).await? {
            if let (Some(k), Some(val)) = (field(&r, "Variable_name"), field(&r, "Value")) {
                v.insert(k.to_ascii_lowercase(), val.to_owned());
            }
        }
    }
    let get = |a: &str, b: &str| v.get(a).or_else(|| v.get(b)).cloned().unwrap_or_default();
    let on = |a: &str, b: &str| matches!(get(a, b).as_str(), "ON" | "1");
    let num = |a: &str, b: &str| get(a, b).parse::<u64>().unwrap_or(0);
    Ok(SemiSyncStatus {
        master_enabled: on(
            "rpl_semi_sync_master_enabled",
            "rpl_semi_sync_source_enabled",
        ),
        master_active: on("rpl_semi_sync_master_status", "rpl_semi_sync_source_status"),
        slave_enabled: on(
            "rpl_semi_sync_slave_enabled",
            "rpl_semi_sync_replica_enabled",
        ),
        clients: num(
            "rpl_semi_sync_master_clients",
            "rpl_semi_sync_source_clients",
        ) as u32,
        acked_tx: num("rpl_semi_sync_master_yes_tx", "rpl_semi_sync_source_yes_tx"),
        unacked_tx: num("rpl_semi_sync_master_no_tx", "rpl_semi_sync_source_no_tx"),
        slave_active: on("rpl_semi_sync_slave_status", "rpl_semi_sync_replica_status"),
    })
}

impl Actions {
    /// Turns the primary side on (before the server is made writable) or off (before it
    /// starts replicating). No-op in async mode.
    pub(crate) async fn semi_sync_primary(&self, c: &mut Conn, on: bool) -> Result<(), Status> {
        let Some(s) = self.semi_sync else {
            return Ok(());
        };
        let mysql = self.flavor() == Flavor::Mysql;
        if mysql {
            // The plugins: installed once, an error when already there is fine.
            let _ = c
                .query_drop("INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'")
                .await;
            let _ = c
                .query_drop("INSTALL PLUGIN rpl_semi_sync_replica SONAME 'semisync_replica.so'")
                .await;
        }
        let p = if mysql {
            "rpl_semi_sync_source"
        } else {
            "rpl_semi_sync_master"
        };
        let stmts = if on {
            let mut v = vec![
                format!("SET GLOBAL {p}_wait_point = 'AFTER_SYNC'"),
                format!("SET GLOBAL {p}_timeout = {}", s.timeout_ms),
                format!(
                    "SET GLOBAL {p}_wait_no_{} = ON",
                    if mysql { "replica" } else { "slave" }
                ),
            ];
            if mysql {
                v.push(format!(
                    "SET GLOBAL {p}_wait_for_replica_count = {}",
                    s.ackers
                ));
            }
            v.push(format!("SET GLOBAL {p}_enabled = ON"));
            v
        } else {
            vec![format!("SET GLOBAL {p}_enabled = OFF")]
        };
        for sql in &stmts {
            c.query_drop(sql.as_str())
                .await
                .map_err(mysql_err("configure semi-synchronous replication"))?;
        }
        Ok(())
    }

    /// Turns the replica side on; a running IO thread reconnects to start acknowledging.
    async fn semi_sync_replica(&self, c: &mut Conn, io_running: bool) -> Result<(), Status> {
        let mysql = self.flavor() == Flavor::Mysql;
        let var = if mysql {
            "rpl_semi_sync_replica_enabled"
        } else {
            "rpl_semi_sync_slave_enabled"
        };
        c.query_drop(format!("SET GLOBAL {var} = ON"))
            .await
            .map_err(mysql_err("enable the semi-synchronous replica side"))?;
        if io_running {
            let (stop, start) = if mysql {
                ("STOP REPLICA IO_THREAD", "START REPLICA IO_THREAD")
            } else {
                ("STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD")
            };
            c.query_drop(stop)
                .await
                .map_err(mysql_err("restart the IO thread"))?;
            c.query_drop(start)
                .await
                .map_err(mysql_err("restart the IO thread"))?;
        }
        Ok(())
    }
}

/// What the reconcile loop turns on after one probe.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fixes {
    enable_replica: bool,
    /// Reconnect the IO thread: one that connected before the replica side was on (a
    /// restarted server starts replicating before its agent turns the side on, or while
    /// it was still connecting) never acknowledges until it reconnects.
    restart_io: bool,
    enable_primary: bool,
}

fn fixes(s: &SemiSyncStatus, primary: bool, io_running: bool) -> Fixes {
    Fixes {
        enable_replica: !s.slave_enabled,
        restart_io: !primary && io_running && !(s.slave_enabled && s.slave_active),
        enable_primary: primary && !s.master_enabled,
    }
}

/// An IO thread is reconnected at most this often: its acknowledging status can read
/// off for a moment after it connects.
const IO_RESTART_EVERY: Duration = Duration::from_secs(10);

/// Turns on, after every probe, whatever semi-sync side should be on and is not. It
/// never turns anything off: only role-changing actions do, so it cannot race them
/// into an unsafe state.
pub async fn reconcile(
    actions: Arc<Actions>,
    mut snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    cancel: CancellationToken,
) {
    let mut last_restart: Option<Instant> = None;
    loop {
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { return },
            () = cancel.cancelled() => return,
        }
        let snap = snapshots.borrow_and_update().clone();
        let Some(s) = snap.semi_sync else {
            continue;
        };
        if !snap.reachable {
            continue;
        }
        let primary = !snap.read_only && snap.replication.is_none();
        let io_running = snap.replication.as_ref().is_some_and(|r| r.io_running);
        let mut f = fixes(&s, primary, io_running);
        if f.restart_io && last_restart.is_some_and(|t| t.elapsed() < IO_RESTART_EVERY) {
            f.restart_io = false;
        }
        if f == Fixes::default() {
            continue;
        }
        let Ok(mut c) = actions.conn().await else {
            continue;
        };
        if f.enable_replica || f.restart_io {
            if f.restart_io {
                last_restart = Some(Instant::now());
            }
            match actions.semi_sync_replica(&mut c, f.restart_io).await {
                Ok(()) if f.enable_replica => {
                    tracing::info!("semi-synchronous replica side enabled")
                }
                Ok(()) => tracing::info!(
                    "IO thread reconnected: it had connected without acknowledging (semi-synchronous replica side off at its start)"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not enable the semi-synchronous replica side")
                }
            }
        }
        if f.enable_primary {
            match actions.semi_sync_primary(&mut c, true).await {
                Ok(()) => {
                    tracing::warn!("writable primary without semi-synchronous waits: enabled")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not enable semi-synchronous waits on the primary")
                }
            }
        }
        actions.reprobe.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(slave_enabled: bool, slave_active: bool, master_enabled: bool) -> SemiSyncStatus {
        SemiSyncStatus {
            slave_enabled,
            slave_active,
            master_enabled,
            ..Default::default()
        }
    }

    #[test]
    fn a_healthy_replica_and_primary_need_nothing() {
        assert_eq!(fixes(&st(true, true, false), false, true), Fixes::default());
        assert_eq!(fixes(&st(true, false, true), true, false), Fixes::default());
    }

    #[test]
    fn a_replica_connected_before_its_side_was_on_reconnects() {
        let f = fixes(&st(true, false, false), false, true);
        assert!(f.restart_io && !f.enable_replica && !f.enable_primary);
        let f = fixes(&st(false, false, false), false, true);
        assert!(f.restart_io && f.enable_replica);
    }

    #[test]
    fn a_replica_not_connected_only_turns_its_side_on() {
        let f = fixes(&st(false, false, false), false, false);
        assert!(f.enable_replica && !f.restart_io);
    }

    #[test]
    fn a_writable_primary_turns_its_waits_on_and_never_touches_an_io_thread() {
        let f = fixes(&st(true, false, false), true, true);
        assert!(f.enable_primary && !f.restart_io);
    }
}
