//! While a candidate applies salvaged transactions it is read-only, serves nobody, and the
//! old primary's host still holds every one of them: flushing the redo log and the binlog
//! at each of their commits buys nothing, and on a disk with slow syncs it is what makes a
//! large salvage miss its deadline (the apply is one client, so group commit never helps).
//! So the apply runs with `innodb_flush_log_at_trx_commit = 2` and `sync_binlog = 0`, and
//! afterwards the server's own settings come back and what was applied is synced before
//! the candidate can be promoted. The settings are saved in the agent's state dir first,
//! so an agent that dies mid-apply puts them back when it starts again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tonic::Status;

use crate::actions::mysql_err;

/// The file, in the agent's state dir, holding the settings to put back.
const SAVED: &str = "salvage-durability";

/// A server's commit-time flushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flushing {
    pub flush_log_at_trx_commit: u64,
    pub sync_binlog: u64,
}

impl Flushing {
    /// What to run the apply with, or `None` when the server already flushes no more
    /// than that (nothing to change, nothing to put back).
    pub(crate) fn relaxed(self) -> Option<Flushing> {
        let relaxed = Flushing {
            flush_log_at_trx_commit: if self.flush_log_at_trx_commit == 1 {
                2
            } else {
                self.flush_log_at_trx_commit
            },
            sync_binlog: 0,
        };
        (relaxed != self).then_some(relaxed)
    }

    fn to_text(self) -> String {
        format!(
            "innodb_flush_log_at_trx_commit={}\nsync_binlog={}\n",
            self.flush_log_at_trx_commit, self.sync_binlog
        )
    }

    fn from_text(text: &str) -> Option<Flushing> {
        let mut flush = None;
        let mut sync = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("innodb_flush_log_at_trx_commit", v)) => flush = v.trim().parse().ok(),
                Some(("sync_binlog", v)) => sync = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(Flushing {
            flush_log_at_trx_commit: flush?,
            sync_binlog: sync?,
        })
    }
}

/// Relaxing costs about five syncs (the saved settings, the redo log and the binlog put
/// back) and five round trips; a commit under the server's own settings costs up to two
/// syncs. So a tail known to hold at most this many transactions is applied as it is.
const SMALL_TAIL: u32 = 2;

/// Whether an apply of `transactions` (0: not counted) relaxes the commit flushing.
pub(crate) fn worth_relaxing(transactions: u32) -> bool {
    transactions == 0 || transactions > SMALL_TAIL
}

async fn read(c: &mut Conn) -> Result<Flushing, Status> {
    let row: Option<(u64, u64)> = c
        .query_first("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.sync_binlog")
        .await
        .map_err(mysql_err("read the commit flushing settings"))?;
    let (flush_log_at_trx_commit, sync_binlog) =
        row.ok_or_else(|| Status::internal("the commit flushing settings read as no row"))?;
    Ok(Flushing {
        flush_log_at_trx_commit,
        sync_binlog,
    })
}

async fn set(c: &mut Conn, f: Flushing) -> Result<(), Status> {
    c.query_drop(format!(
        "SET GLOBAL innodb_flush_log_at_trx_commit={}, GLOBAL sync_binlog={}",
        f.flush_log_at_trx_commit, f.sync_binlog
    ))
    .await
    .map_err(mysql_err("set the commit flushing settings"))
}

/// Puts `saved` back and flushes InnoDB's redo log, so what was applied while relaxed is
/// durable too. NO_WRITE_TO_BINLOG: a FLUSH is binlogged otherwise, an errant GTID.
async fn put_back(c: &mut Conn, saved: Flushing) -> Result<(), Status> {
    set(c, saved).await?;
    c.query_drop("FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS")
        .await
        .map_err(mysql_err("flush the redo log"))
}

/// The server's settings, saved (durably) before the apply changes them.
#[derive(Debug, Clone)]
pub(crate) struct Relaxed {
    saved: Flushing,
    relaxed: Flushing,
    file: PathBuf,
}

/// Reads and saves the settings an apply will relax; `None` when there is nothing to
/// relax. The caller keeps the result (so it is put back whatever happens) before it
/// calls [`Relaxed::apply`].
pub(crate) async fn prepare(c: &mut Conn, state_dir: &Path) -> Result<Option<Relaxed>, Status> {
    let saved = read(c).await?;
    let Some(relaxed) = saved.relaxed() else {
        return Ok(None);
    };
    let file = state_dir.join(SAVED);
    write_durably(&file, &saved.to_text()).map_err(|e| {
        Status::internal(format!(
            "save the commit flushing settings to {}: {e}",
            file.display()
        ))
    })?;
    Ok(Some(Relaxed {
        saved,
        relaxed,
        file,
    }))
}

impl Relaxed {
    pub(crate) async fn apply(&self, c: &mut Conn) -> Result<(), Status> {
        set(c, self.relaxed).await
    }
}

/// Puts the server's settings back, then makes what was applied durable: InnoDB's redo
/// log is flushed (`FLUSH ENGINE LOGS`, not binlogged) and, when the server syncs its binlog, the
/// current binlog file is synced by this agent (on the same host).
pub(crate) async fn restore(
    c: &mut Conn,
    r: Relaxed,
    binlog_dir: Option<&Path>,
) -> Result<(), Status> {
    put_back(c, r.saved).await?;
    if r.saved.sync_binlog != 0
        && let Some(dir) = binlog_dir
    {
        let file: Option<String> = c
            .query_first::<mysql_async::Row, _>("SHOW MASTER STATUS")
            .await
            .ok()
            .flatten()
            .and_then(|row| row.get_opt(0).and_then(Result::ok));
        if let Some(name) = file {
            let path = dir.join(name);
            let synced = tokio::task::spawn_blocking(move || {
                std::fs::File::open(&path).and_then(|f| f.sync_all())
            })
            .await;
            if !matches!(synced, Ok(Ok(()))) {
                tracing::warn!("could not sync the binlog after a salvage; the next commit will");
            }
        }
    }
    let _ = std::fs::remove_file(&r.file);
    Ok(())
}

/// Before a promotion: settings an apply relaxed and could not put back (its restore
/// failed, or the agent died mid-apply and has not restored them yet) are put back now;
/// an error stops the promotion.
pub(crate) async fn restore_saved(c: &mut Conn, state_dir: &Path) -> Result<(), Status> {
    let file = state_dir.join(SAVED);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(());
    };
    if let Some(saved) = Flushing::from_text(&text) {
        put_back(c, saved).await?;
        tracing::warn!(
            innodb_flush_log_at_trx_commit = saved.flush_log_at_trx_commit,
            sync_binlog = saved.sync_binlog,
            "commit flushing settings a salvage apply relaxed put back before promotion"
        );
    }
    let _ = std::fs::remove_file(&file);
    Ok(())
}

/// At agent start: settings an earlier run relaxed and never put back are restored (unless
/// mysqld restarted since, which read them from its configuration again). Retries until
/// mysqld answers or the agent stops.
pub(crate) async fn restore_leftover(
    opts: mysql_async::Opts,
    state_dir: PathBuf,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let file = state_dir.join(SAVED);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return;
    };
    let Some(saved) = Flushing::from_text(&text) else {
        tracing::warn!(file = %file.display(), "unreadable saved commit flushing settings: removed");
        let _ = std::fs::remove_file(&file);
        return;
    };
    let age = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    loop {
        if let Ok(mut c) = crate::mysql::connect(opts.clone(), Duration::from_secs(2)).await {
            let uptime: Option<(String, u64)> = c
                .query_first("SHOW GLOBAL STATUS LIKE 'Uptime'")
                .await
                .ok()
                .flatten();
            let restarted = uptime.is_some_and(|(_, s)| Duration::from_secs(s) < age);
            if restarted || put_back(&mut c, saved).await.is_ok() {
                tracing::warn!(
                    innodb_flush_log_at_trx_commit = saved.flush_log_at_trx_commit,
                    sync_binlog = saved.sync_binlog,
                    restarted,
                    "commit flushing settings left relaxed by an interrupted salvage apply are back"
                );
                let _ = std::fs::remove_file(&file);
                return;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(flush: u64, sync: u64) -> Flushing {
        Flushing {
            flush_log_at_trx_commit: flush,
            sync_binlog: sync,
        }
    }

    #[test]
    fn a_fully_durable_server_is_relaxed_for_the_apply() {
        assert_eq!(f(1, 1).relaxed(), Some(f(2, 0)));
        assert_eq!(f(1, 0).relaxed(), Some(f(2, 0)));
        assert_eq!(f(2, 1).relaxed(), Some(f(2, 0)));
    }

    #[test]
    fn a_server_flushing_less_than_that_is_left_alone() {
        assert_eq!(f(2, 0).relaxed(), None);
        assert_eq!(f(0, 0).relaxed(), None);
        // 0 flushes less than 2 (not even to the OS): kept.
        assert_eq!(f(0, 1).relaxed(), Some(f(0, 0)));
    }

    #[test]
    fn only_a_tail_of_more_than_two_transactions_or_of_unknown_size_relaxes() {
        assert!(worth_relaxing(0), "not counted (MySQL's plan)");
        assert!(!worth_relaxing(1));
        assert!(!worth_relaxing(2));
        assert!(worth_relaxing(3));
        assert!(worth_relaxing(u32::MAX));
    }

    #[test]
    fn saved_settings_read_back_as_written() {
        for s in [f(1, 1), f(2, 0), f(0, 100)] {
            assert_eq!(Flushing::from_text(&s.to_text()), Some(s));
        }
        assert_eq!(Flushing::from_text("sync_binlog=1\n"), None);
        assert_eq!(Flushing::from_text("garbage"), None);
    }
}
