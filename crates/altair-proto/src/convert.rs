//! Conversions between the wire types and altair-core's domain types.

use altair_core::health::Health;
use altair_core::ids::PromotionRule;
use altair_core::observe::{ObservedState, ReplicationState, classify_replication};

use crate::v1;

impl v1::MysqlSnapshot {
    /// `host:port` this server replicates from, when it is a replica.
    pub fn source_address(&self) -> Option<String> {
        self.replication
            .as_ref()
            .and_then(|r| r.source.as_ref())
            .map(|e| format!("{}:{}", e.host, e.port))
    }

    /// A writable primary of a semi-synchronous cluster that is not waiting for replica
    /// acknowledgements now (degraded to asynchronous: an ack timeout expired).
    pub fn semi_sync_degraded(&self) -> bool {
        self.reachable
            && !self.read_only
            && self.replication.is_none()
            && self.semi_sync.as_ref().is_some_and(|s| !s.master_active)
    }

    /// The part of the snapshot that is "state" (see `ObservedState`).
    pub fn observed_state(&self) -> ObservedState {
        if !self.reachable {
            // The probe got no answer, yet the write probe saw mysqld answer while its
            // commits wait for disk space: stuck, not down.
            return ObservedState {
                write_stalled: self.write_stalled,
                ..ObservedState::mysql_down()
            };
        }
        let replication = match &self.replication {
            None => ReplicationState::NotReplica,
            Some(r) => classify_replication(
                self.source_address().unwrap_or_default(),
                if r.io_running { "Yes" } else { "No" },
                if r.sql_running { "Yes" } else { "No" },
                &r.last_io_error,
                &r.last_sql_error,
            ),
        };
        ObservedState {
            mysql_reachable: true,
            read_only: self.read_only,
            replication,
            write_stalled: self.write_stalled,
        }
    }
}

impl From<Health> for v1::Health {
    fn from(h: Health) -> Self {
        match h {
            Health::Healthy => Self::Healthy,
            Health::Suspect => Self::Suspect,
            Health::Unreachable => Self::Unreachable,
            Health::MysqlDown => Self::MysqlDown,
            Health::ReplicationBroken => Self::ReplicationBroken,
            Health::WriteStalled => Self::WriteStalled,
        }
    }
}

impl v1::Health {
    pub fn to_core(self) -> Option<Health> {
        match self {
            Self::Unspecified => None,
            Self::Healthy => Some(Health::Healthy),
            Self::Suspect => Some(Health::Suspect),
            Self::Unreachable => Some(Health::Unreachable),
            Self::MysqlDown => Some(Health::MysqlDown),
            Self::ReplicationBroken => Some(Health::ReplicationBroken),
            Self::WriteStalled => Some(Health::WriteStalled),
        }
    }
}

impl From<PromotionRule> for v1::PromotionRule {
    fn from(r: PromotionRule) -> Self {
        match r {
            PromotionRule::Prefer => Self::Prefer,
            PromotionRule::Neutral => Self::Neutral,
            PromotionRule::Never => Self::Never,
        }
    }
}

impl v1::PromotionRule {
    /// Unset (an older agent) reads as `neutral`.
    pub fn to_core(self) -> PromotionRule {
        match self {
            Self::Prefer => PromotionRule::Prefer,
            Self::Never => PromotionRule::Never,
            Self::Unspecified | Self::Neutral => PromotionRule::Neutral,
        }
    }
}

impl v1::MysqlSnapshot {
    /// The server's flavour; unset reads as MariaDB (what the GTID text then says).
    pub fn core_flavor(&self) -> altair_core::gtid::Flavor {
        match v1::Flavor::try_from(self.flavor) {
            Ok(v1::Flavor::Mysql) => altair_core::gtid::Flavor::Mysql,
            _ => altair_core::gtid::Flavor::MariaDb,
        }
    }
}
