//! Killing a session that ran past its caller's deadline, from a session kept open for
//! that: a fresh login costs a TCP and MySQL handshake, which on a loaded host outlasts
//! the ~200 ms a caller's deadline leaves the agent to answer in (seen in CI: a fence's
//! `SET GLOBAL read_only` still running after the agent had answered). The kept session
//! also means a kill still finds a session when the server is out of connections.
//!
//! A kill is done when the session is gone from the processlist, not when `KILL` returns:
//! `KILL` only flags the session, which ends at its next check (or after rolling back).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use crate::mysql::connect;

/// A login for the kill session, when the kept one is missing or dead.
const CONNECT: Duration = Duration::from_secs(1);
/// How long a kill waits for its session to leave the processlist: inside the caller's
/// 2 s bound, so the kept session is never dropped with a timed-out kill.
const GONE_WAIT: Duration = Duration::from_millis(1_000);
/// How often the processlist is read while a killed session winds down.
const POLL: Duration = Duration::from_millis(5);

/// "Unknown thread id": the session ended by itself.
const UNKNOWN_THREAD: u16 = 1094;

/// The kept session (none before the first login or after it broke).
#[derive(Default)]
pub struct Killer {
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl Killer {
    /// Opens the kept session ahead of the first kill, if there is none yet.
    pub async fn warm(&self, opts: Opts) {
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            *slot = login(opts).await;
        }
    }

    /// Kills session `id` and waits until it is gone: whether it is. Uses the kept
    /// session unless another kill holds it (a kill never queues behind one waiting for a
    /// session that is slow to die): then a fresh one. A kept session that fails (mysqld
    /// restarted, an idle timeout) is replaced once. Bounded by a login of [`CONNECT`] and the
    /// wait of [`GONE_WAIT`]; the caller bounds it as a whole too.
    pub async fn kill(&self, opts: Opts, id: u32) -> bool {
        let Ok(mut slot) = self.conn.try_lock() else {
            let Some(mut c) = login(opts).await else {
                return false;
            };
            let done = kill_with(&mut c, id).await.unwrap_or(false);
            let _ = c.disconnect().await;
            return done;
        };
        let mut kept = slot.take();
        for _ in 0..2 {
            let fresh = kept.is_none();
            let Some(mut c) = (match kept.take() {
                Some(c) => Some(c),
                None => login(opts.clone()).await,
            }) else {
                return false;
            };
            match kill_with(&mut c, id).await {
                Ok(done) => {
                    *slot = Some(c);
                    return done;
                }
                // A fresh session failing too: the server refuses (it is not this one).
                Err(_) if fresh => return false,
                Err(_) => {}
            }
        }
        false
    }
}

/// A session for kills, never timed out by the server while kept idle.
async fn login(opts: Opts) -> Option<Conn> {
    let mut c = connect(opts, CONNECT).await.ok()?;
    c.query_drop("SET SESSION wait_timeout = 31536000")
        .await
        .ok()?;
    Some(c)
}

/// `KILL CONNECTION id` over `c`, then waits for the session to leave the processlist:
/// whether it did; an error when `c` itself failed.
async fn kill_with(c: &mut Conn, id: u32) -> Result<bool, mysql_async::Error> {
    match c.query_drop(format!("KILL CONNECTION {id}")).await {
        Ok(()) => gone(c, id).await,
        Err(mysql_async::Error::Server(e)) if e.code == UNKNOWN_THREAD => Ok(true),
        Err(e) => Err(e),
    }
}

/// Waits until session `id` has left the processlist, at most [`GONE_WAIT`] (then false:
/// a session rolling a large write back stays a while; the kill session is kept either
/// way); an error when this session broke.
async fn gone(c: &mut Conn, id: u32) -> Result<bool, mysql_async::Error> {
    let sql = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id}");
    let until = tokio::time::Instant::now() + GONE_WAIT;
    loop {
        let n: Option<u64> = c.query_first(sql.as_str()).await?;
        if n.unwrap_or(0) == 0 {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}
