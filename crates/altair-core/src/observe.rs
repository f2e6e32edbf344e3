//! What an agent saw of its mysqld, reduced to what health and change detection need.

use serde::{Deserialize, Serialize};

/// Replication as the host's own mysqld reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicationState {
    /// No replication configured: a primary, or a stand-alone server.
    NotReplica,
    /// Both threads run.
    Running { source: String },
    /// Configured, but a thread is stopped or reconnecting.
    Broken {
        source: String,
        io_running: bool,
        sql_running: bool,
        error: String,
    },
}

/// The part of a probe that counts as "state": a change here is reported to the monitor
/// at once; GTID positions and lag move constantly and are not state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedState {
    pub mysql_reachable: bool,
    pub read_only: bool,
    pub replication: ReplicationState,
    /// A writable primary whose writes do not commit (the agent's write probe).
    pub write_stalled: bool,
}

impl ObservedState {
    pub fn mysql_down() -> Self {
        Self {
            mysql_reachable: false,
            read_only: true,
            replication: ReplicationState::NotReplica,
            write_stalled: false,
        }
    }
}

/// Classifies replication from `SHOW REPLICA STATUS` fields. `io_state` is
/// `Slave_IO_Running` / `Replica_IO_Running` (`Yes`, `No`, `Connecting`).
pub fn classify_replication(
    source: String,
    io_state: &str,
    sql_state: &str,
    last_io_error: &str,
    last_sql_error: &str,
) -> ReplicationState {
    let io_running = io_state.eq_ignore_ascii_case("yes");
    let sql_running = sql_state.eq_ignore_ascii_case("yes");
    if io_running && sql_running {
        return ReplicationState::Running { source };
    }
    let error = [last_sql_error, last_io_error]
        .into_iter()
        .find(|e| !e.is_empty())
        .map_or_else(
            || format!("IO thread {io_state}, SQL thread {sql_state}"),
            str::to_owned,
        );
    ReplicationState::Broken {
        source,
        io_running,
        sql_running,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_threads() {
        assert!(matches!(
            classify_replication("a:1".into(), "Yes", "Yes", "", ""),
            ReplicationState::Running { .. }
        ));
        let ReplicationState::Broken {
            error, io_running, ..
        } = classify_replication("a:1".into(), "Connecting", "Yes", "error reconnecting", "")
        else {
            panic!("a reconnecting IO thread is broken replication");
        };
        assert!(!io_running);
        assert_eq!(error, "error reconnecting");
        let ReplicationState::Broken { error, .. } =
            classify_replication("a:1".into(), "No", "No", "", "")
        else {
            panic!("stopped threads are broken replication");
        };
        assert_eq!(error, "IO thread No, SQL thread No");
    }
}
