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

impl From<&altair_core::registry::HostRecord> for v1::RegisterRequest {
    fn from(r: &altair_core::registry::HostRecord) -> Self {
        Self {
            id: Some(v1::HostRef {
                cluster: r.cluster.clone(),
                host: r.host.clone(),
            }),
            datacenter: r.datacenter.clone(),
            mysql_address: r.mysql.clone(),
            agent_address: r.agent.clone(),
            promotion_rule: v1::PromotionRule::from(r.promotion_rule) as i32,
            self_fence_after_ms: r.self_fence_after_ms.unwrap_or(0),
            probe_interval_ms: r.probe_interval_ms.unwrap_or(0),
            durability: r.durability.as_str().to_owned(),
        }
    }
}

impl v1::RegisterRequest {
    /// The host record it describes, checked as one read from ZooKeeper is
    /// (`HostRecord::check`); the error names the bad field.
    pub fn to_record(&self) -> Result<altair_core::registry::HostRecord, String> {
        use altair_core::config::Durability;
        let id = self.id.as_ref().ok_or("id is required")?;
        let promotion_rule = v1::PromotionRule::try_from(self.promotion_rule)
            .map_err(|_| format!("promotion_rule {} is unknown", self.promotion_rule))?
            .to_core();
        let durability = match self.durability.as_str() {
            "" | "async" => Durability::Async,
            "semi_sync" => Durability::SemiSync,
            other => return Err(format!("durability {other:?} is not async or semi_sync")),
        };
        let record = altair_core::registry::HostRecord {
            cluster: id.cluster.clone(),
            host: id.host.clone(),
            datacenter: self.datacenter.clone(),
            mysql: self.mysql_address.clone(),
            agent: self.agent_address.clone(),
            promotion_rule,
            self_fence_after_ms: (self.self_fence_after_ms > 0).then_some(self.self_fence_after_ms),
            probe_interval_ms: (self.probe_interval_ms > 0).then_some(self.probe_interval_ms),
            durability,
        };
        record.check(&id.cluster, &id.host)?;
        Ok(record)
    }
}

#[cfg(test)]
mod register_tests {
    use super::*;
    use altair_core::registry::HostRecord;

    fn record() -> HostRecord {
        HostRecord {
            cluster: "c1".into(),
            host: "db1".into(),
            datacenter: "dc1".into(),
            mysql: "10.0.0.1:3306".into(),
            agent: "10.0.0.1:7001".into(),
            promotion_rule: PromotionRule::Prefer,
            self_fence_after_ms: Some(4_000),
            probe_interval_ms: Some(500),
            durability: altair_core::config::Durability::SemiSync,
        }
    }

    #[test]
    fn a_record_survives_the_wire() {
        let r = record();
        assert_eq!(v1::RegisterRequest::from(&r).to_record(), Ok(r));
    }

    #[test]
    fn a_bad_field_is_named() {
        let mut w = v1::RegisterRequest::from(&record());
        w.agent_address = "nowhere".into();
        assert!(
            w.to_record()
                .expect_err("refused")
                .contains("agent address")
        );
        let mut w = v1::RegisterRequest::from(&record());
        w.durability = "sometimes".into();
        assert!(w.to_record().expect_err("refused").contains("durability"));
        let mut w = v1::RegisterRequest::from(&record());
        w.id = None;
        assert!(w.to_record().expect_err("refused").contains("id"));
        let mut w = v1::RegisterRequest::from(&record());
        w.self_fence_after_ms = 5;
        assert!(
            w.to_record()
                .expect_err("refused")
                .contains("self_fence_after_ms")
        );
        let mut w = v1::RegisterRequest::from(&record());
        w.id = Some(v1::HostRef {
            cluster: "../x".into(),
            host: "db1".into(),
        });
        assert!(w.to_record().expect_err("refused").contains("cluster"));
    }
}
