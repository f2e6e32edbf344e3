//! The write-liveness probe: on a writable primary, a row is written every probe
//! interval with that interval as its deadline. A primary that answers reads but cannot
//! commit (a full or stalled disk, a held lock) for `write_stall_after_ms` is reported
//! `write_stalled` in the snapshot, its heartbeat and the `altair_agent_write_stalled`
//! gauge. Whether a cluster fails over on it is the orchestrator's `[write_stall]`
//! policy (alert only by default); only commits that do not finish count there, never
//! an error the server answers with (see `Failure::stuck`).
//!
//! The row lives in `altair.write_probe` and is written with `sql_log_bin=0`: it never
//! enters the binlog, so it adds no GTID (a probe write racing a fence can never become
//! an errant transaction) and is not replicated (replicas never see the table). A write
//! that misses its deadline has its session killed, so no probe statement piles up
//! behind the stall.
//!
//! Because the row skips the binlog, a full disk under the binlog would not stop it (the
//! InnoDB redo log is preallocated; measured: application commits hung in "Waiting for
//! someone to free space" while the probe row committed in 20 ms). So each round also
//! asks whether any session waits for disk space; one that does makes the round fail
//! like a write that did not commit.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use altair_proto::v1::MysqlSnapshot;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;

#[cfg(test)]
mod tests;

/// What the probe loop puts into each snapshot.
#[derive(Debug, Default)]
pub struct WriteState {
    stalled: AtomicBool,
    /// The last round's server answered a query (the write or the disk-space check):
    /// mysqld runs, however stuck its commits are.
    answered: AtomicBool,
    /// The last failure was a commit that did not finish (see `Failure::stuck`).
    stuck: AtomicBool,
    error: Mutex<String>,
}

impl WriteState {
    /// Copies the write probe's state into `snap`. A snapshot whose probe got no answer
    /// (`reachable` false) is marked stalled only when the write probe has positive
    /// evidence that mysqld runs: a binlog write waiting for disk space holds the lock
    /// that `SHOW MASTER STATUS` needs, so the probe times out on a server that still
    /// answers. A frozen or dead mysqld answers no one and stays `mysql_down`.
    pub fn fill(&self, snap: &mut MysqlSnapshot) {
        let stalled = self.stalled.load(Ordering::SeqCst);
        let stuck = stalled && self.answered.load(Ordering::SeqCst);
        if !(snap.reachable || stuck) {
            return;
        }
        snap.write_stalled = stalled;
        snap.write_stall_commits_stuck = stalled && self.stuck.load(Ordering::SeqCst);
        snap.write_probe_error = self.error.lock().map(|e| e.clone()).unwrap_or_default();
    }

    fn set(&self, stalled: bool, failure: Option<&Failure>, wake: &Notify) {
        let (answered, stuck, error) = match failure {
            None => (true, false, String::new()),
            Some(f) => (f.answered, f.stuck, f.why.clone()),
        };
        self.answered.store(answered, Ordering::SeqCst);
        self.stuck.store(stuck, Ordering::SeqCst);
        let was = self.stalled.swap(stalled, Ordering::SeqCst);
        if let Ok(mut e) = self.error.lock() {
            *e = error;
        }
        crate::metrics::WRITE_STALLED.set(i64::from(stalled));
        if was != stalled {
            if stalled {
                tracing::error!(
                    "writes on this primary have not committed for the write-stall time: write_stalled"
                );
            } else {
                tracing::warn!("writes on this primary commit again");
            }
            wake.notify_one();
        }
    }
}

/// Why a round failed, and whether the server answered anything in it.
struct Failure {
    why: String,
    answered: bool,
    /// A commit that did not finish: a statement past its deadline, or sessions
    /// waiting for disk space. Not an error the server answered with (privileges, a
    /// missing table, too many connections): that is a fault to alert on, and failing
    /// over would not cure it (every primary would have it).
    stuck: bool,
}

impl Failure {
    /// The server answered with an error (or none could be reached).
    fn silent(why: String) -> Self {
        Self {
            why,
            answered: false,
            stuck: false,
        }
    }

    /// Past its deadline.
    fn late(why: String) -> Self {
        Self {
            stuck: true,
            ..Self::silent(why)
        }
    }
}

const SETUP: [&str; 3] = [
    "SET SESSION sql_log_bin = 0",
    "CREATE DATABASE IF NOT EXISTS altair",
    "CREATE TABLE IF NOT EXISTS altair.write_probe \
     (id TINYINT PRIMARY KEY, written_at_ms BIGINT NOT NULL) ENGINE=InnoDB",
];

/// One probe round's write, behind a trait so that the loop runs in process on a paused
/// clock in the tests (`tests.rs`).
trait ProbeWrite: Send {
    /// One probe write within `deadline` (see `write_once`).
    fn write(&mut self, deadline: Duration) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Drops the session: the next write opens a new one.
    fn reset(&mut self);
}

/// The probe over a session to the local mysqld.
struct OnMysqld {
    actions: Arc<Actions>,
    conn: Option<Conn>,
}

impl ProbeWrite for OnMysqld {
    async fn write(&mut self, deadline: Duration) -> Result<(), Failure> {
        write_once(&self.actions, &mut self.conn, deadline).await
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}

/// Runs until `cancel`: probes writes every `every` while the snapshot shows a writable
/// primary; `stall_after` without a commit is a stall.
pub async fn run(
    actions: Arc<Actions>,
    state: Arc<WriteState>,
    snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    timing: (Duration, Duration),
    cancel: CancellationToken,
) {
    let wake = actions.reprobe.clone();
    let probe = OnMysqld {
        actions,
        conn: None,
    };
    probe_loop(probe, wake, state, snapshots, timing, cancel).await
}

async fn probe_loop(
    mut probe: impl ProbeWrite,
    wake: Arc<Notify>,
    state: Arc<WriteState>,
    mut snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    (every, stall_after): (Duration, Duration),
    cancel: CancellationToken,
) {
    let mut last_ok = Instant::now();
    let mut was_primary = false;
    // A writable primary, as the last snapshot that got an answer showed it: a probe that
    // times out (its SHOW MASTER STATUS stuck behind a binlog write) keeps the role.
    let mut writable_primary = false;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => return,
        }
        let snap = snapshots.borrow_and_update().clone();
        if snap.reachable {
            writable_primary = !snap.read_only && snap.replication.is_none();
        }
        if !writable_primary {
            // Not a primary taking writes: nothing to judge; the stall clock starts
            // again when it is one.
            probe.reset();
            was_primary = false;
            state.set(false, None, &wake);
            continue;
        }
        if !was_primary {
            // Its stall clock starts now, not at the last round that saw it a replica (up
            // to one interval earlier: a new primary would be called stalled that early).
            was_primary = true;
            last_ok = Instant::now();
        }
        match probe.write(every).await {
            Ok(()) => {
                last_ok = Instant::now();
                state.set(false, None, &wake);
            }
            Err(f) => {
                probe.reset();
                let stalled = last_ok.elapsed() >= stall_after;
                tracing::debug!(error = %f.why, stalled, "write probe did not commit");
                state.set(stalled, Some(&f), &wake);
            }
        }
    }
}

/// Sessions that wait for disk space: MariaDB's and MySQL 8's thread states while a
/// write hit a full filesystem and waits for space to be freed.
const DISK_WAITS: &str = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
     WHERE STATE LIKE 'Waiting for someone to free space%' OR STATE LIKE 'Waiting for disk space%'";

/// One probe write within `deadline`, on `conn` (opened and set up when there is none),
/// then the check that no session waits for disk space.
async fn write_once(
    actions: &Actions,
    conn: &mut Option<Conn>,
    deadline: Duration,
) -> Result<(), Failure> {
    let by = Instant::now() + deadline;
    let late = |what: &str| Failure::late(format!("{what} took over {} ms", deadline.as_millis()));
    if conn.is_none() {
        let mut c = tokio::time::timeout_at(by, actions.conn())
            .await
            .map_err(|_| late("a session to the local mysqld"))?
            .map_err(|e| Failure::silent(e.message().to_owned()))?;
        for sql in SETUP {
            match tokio::time::timeout_at(by, c.query_drop(sql)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Failure::silent(crate::mysql::describe(&e))),
                Err(_) => {
                    let _ = actions.kill_session(c.id()).await;
                    return Err(late("setting the write probe up"));
                }
            }
        }
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        return Err(Failure::silent("no session".into()));
    };
    let id = c.id();
    let write = format!(
        "REPLACE INTO altair.write_probe VALUES (1, {})",
        crate::probe::now_ms()
    );
    match tokio::time::timeout_at(by, c.query_drop(write)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Failure::silent(crate::mysql::describe(&e))),
        Err(_) => {
            let _ = actions.kill_session(id).await;
            return Err(late("the probe write"));
        }
    }
    match tokio::time::timeout_at(by, c.query_first::<u64, _>(DISK_WAITS)).await {
        Ok(Ok(Some(0) | None)) => Ok(()),
        Ok(Ok(Some(n))) => Err(Failure {
            why: format!(
                "{n} session(s) wait for disk space: a full filesystem under the binlog or the data"
            ),
            answered: true,
            stuck: true,
        }),
        Ok(Err(e)) => Err(Failure::silent(crate::mysql::describe(&e))),
        Err(_) => {
            let _ = actions.kill_session(id).await;
            Err(late("the disk-space check"))
        }
    }
}
