//! Rejoin: a fenced old primary becomes a replica of the new one. Its transactions past
//! the fork point (errant: no survivor has them) refuse the rejoin unless an operator
//! forces it; then they are saved to a file first and reverted (MariaDB flashback), so
//! nothing is lost and the host's data matches the cluster's history again.

use altair_core::gtid::{Flavor, GtidState, PromotedWrites, errant_for_rejoin};
use mysql_async::prelude::Queryable;
use tonic::Status;

use crate::actions::{Actions, mysql_err, sql_literal};

const SET_POS_BOUND: std::time::Duration = std::time::Duration::from_secs(2);
/// The least time left of a rejoin's deadline for a revert of errant transactions to
/// start (the orchestrator gives a forced rejoin a minute).
const REVERT_NEEDS: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Rejoined {
    /// False when errant transactions stopped it (without `revert`).
    pub rejoined: bool,
    pub errant: String,
    pub saved_to: String,
    pub reverted: u32,
}

impl Actions {
    pub async fn rejoin(
        &self,
        host: &str,
        port: u16,
        fork: &str,
        fork_primary_server_id: u32,
        revert: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Rejoined, Status> {
        let flavor = self.flavor();
        let mut c = self.conn_by("rejoin", deadline).await?;
        let id = c.id();
        // MariaDB: replication stops before the position is read, so the position judged
        // is the one the host resumes from (a replica fed by an old primary applies until
        // then). A host refused stays stopped: it would only diverge further.
        let (own, own_state) = match flavor {
            Flavor::MariaDb => self
                .bounded("rejoin", id, deadline, async {
                    c.query_drop("STOP SLAVE")
                        .await
                        .map_err(mysql_err("stop replication"))?;
                    c.query_first::<(String, String), _>(
                        "SELECT @@gtid_binlog_pos, @@gtid_binlog_state",
                    )
                    .await
                    .map_err(mysql_err("read GTIDs"))
                })
                .await?
                .unwrap_or_default(),
            Flavor::Mysql => (
                self.bounded("rejoin", id, deadline, self.gtid_executed(&mut c))
                    .await?,
                String::new(),
            ),
        };
        let fork = if fork.is_empty() { own.as_str() } else { fork };
        let parse = |what: &str, text: &str| {
            GtidState::parse(flavor, text)
                .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
        };
        // What the primary promoted at the fork wrote since is not errant (the
        // orchestrator bounded it by the primary's position moments before).
        let promoted = (fork_primary_server_id != 0).then_some(PromotedWrites {
            host_state: &own_state,
            primary_server_id: fork_primary_server_id,
            primary_pos: None,
        });
        let errant = errant_for_rejoin(
            &parse("own position", &own)?,
            &parse("fork_gtid", fork)?,
            promoted,
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .errant;
        let mut done = Rejoined {
            rejoined: false,
            errant: errant.clone(),
            saved_to: String::new(),
            reverted: 0,
        };
        if !errant.is_empty() {
            if !revert {
                return Ok(done);
            }
            if flavor == Flavor::Mysql {
                return Err(Status::failed_precondition(format!(
                    "reverting errant transactions is MariaDB-only; on MySQL inject empty transactions for {errant} on the primary, or re-clone this host"
                )));
            }
            // A revert is never cut midway (half a flashback is worse than a late answer):
            // it starts only with time for it, then runs to its end.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left < REVERT_NEEDS {
                return Err(Status::deadline_exceeded(format!(
                    "rejoin: {} ms left of its deadline, a revert of errant transactions needs {} s: not started",
                    left.as_millis(),
                    REVERT_NEEDS.as_secs()
                )));
            }
            let (saved_to, reverted) = self.save_and_revert(fork).await?;
            done.saved_to = saved_to;
            done.reverted = reverted;
            // The reverted history must not stay in this host's binlog (strict mode
            // would refuse the new primary's sequence numbers).
            c.query_drop("RESET MASTER")
                .await
                .map_err(mysql_err("reset the binlog"))?;
            // The old files' names come back with other contents: their checkpoints go.
            if let Ok(mut f) = self.facts.lock() {
                f.checkpoints.clear();
            }
        }
        if flavor == Flavor::MariaDb {
            let start = if errant.is_empty() {
                own.as_str()
            } else {
                fork
            };
            self.set_slave_pos(c, start, deadline).await?;
        } else {
            drop(c);
        }
        self.repoint(host, port, false, deadline).await?;
        done.rejoined = true;
        Ok(done)
    }

    /// `SET GLOBAL gtid_slave_pos` (skipped when already there). MariaDB holds it — and
    /// every `SHOW SLAVE STATUS` behind it — while any session waits in
    /// `MASTER_GTID_WAIT()`: bounded, and killed on expiry so the server is not left
    /// blocked.
    async fn set_slave_pos(
        &self,
        mut c: mysql_async::Conn,
        start: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), Status> {
        let current: Option<String> = c
            .query_first("SELECT @@gtid_slave_pos")
            .await
            .map_err(mysql_err("read gtid_slave_pos"))?;
        if current.as_deref() == Some(start) {
            return Ok(());
        }
        let id = c.id();
        let set = format!("SET GLOBAL gtid_slave_pos={}", sql_literal(start));
        let bound = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(SET_POS_BOUND);
        let by = tokio::time::Instant::now() + bound;
        match tokio::time::timeout_at(by, c.query_drop(set)).await {
            Ok(r) => r.map_err(mysql_err("set gtid_slave_pos")),
            Err(_) => {
                drop(c);
                if let Ok(mut k) = self.conn().await {
                    let _ = k.query_drop(format!("KILL QUERY {id}")).await;
                }
                Err(Status::unavailable(format!(
                    "SET GLOBAL gtid_slave_pos did not finish in {} ms: a session on this server waits in MASTER_GTID_WAIT(), or the rejoin's deadline was near; retried later",
                    bound.as_millis()
                )))
            }
        }
    }

    /// Saves the transactions past `fork` to a file in the state directory, then applies
    /// their flashback without binlogging it.
    async fn save_and_revert(&self, fork: &str) -> Result<(String, u32), Status> {
        let (events, _, count) = self.read_binlog(fork, false).await?;
        let (undo, _, _) = self.read_binlog(fork, true).await?;
        if count == 0 || undo.is_empty() {
            return Err(Status::failed_precondition(format!(
                "the binlog holds no transactions past {fork}: cannot save or revert them (purged?)"
            )));
        }
        let dir = &self.state_dir;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Status::internal(format!("create {}: {e}", dir.display())))?;
        let path = dir.join(format!(
            "errant-epoch{}-{}.binlog.sql",
            self.epoch(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ));
        tokio::fs::write(&path, &events).await.map_err(|e| {
            Status::internal(format!(
                "save errant transactions to {}: {e}",
                path.display()
            ))
        })?;
        self.pipe_to_client(
            b"SET SESSION sql_log_bin=0;\n",
            &undo,
            "reverting errant transactions",
        )
        .await?;
        tracing::warn!(saved_to = %path.display(), transactions = count, "errant transactions saved and reverted");
        Ok((path.display().to_string(), count))
    }
}
