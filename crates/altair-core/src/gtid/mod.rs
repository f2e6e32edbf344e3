//! GTID positions and sets for both server flavours.
//!
//! MariaDB tracks one position per replication domain (`domain-server-seq,...`); MySQL
//! tracks a set of intervals per source UUID (`uuid:1-5:7,...`, optionally tagged
//! `uuid:tag:1-3` since 8.3). Both answer the questions failover asks: has this replica
//! received everything that one has, which one has received the most, and how many
//! transactions does one have that another lacks.

mod errant;
mod mariadb;
mod mysql;

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use errant::{
    OwnWrites, PromotedWrites, RejoinJudgement, errant_for_rejoin, errant_gtids, local_writes,
};
pub use mariadb::{MariaGtid, MariaGtidPos};
pub use mysql::{MysqlGtidSet, SourceKey};

/// The MySQL-family server flavour, detected from `@@version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    MariaDb,
    Mysql,
}

impl Flavor {
    /// Detects the flavour from `SELECT @@version` (MariaDB says so in its version,
    /// e.g. `10.11.6-MariaDB-0+deb12u1-log`; MySQL never does).
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Self::MariaDb
        } else {
            Self::Mysql
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MariaDb => "mariadb",
            Self::Mysql => "mysql",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtidError {
    #[error("bad MariaDB GTID {entry:?} in {input:?}: {problem}")]
    MariaDb {
        input: String,
        entry: String,
        problem: &'static str,
    },
    #[error("bad MySQL GTID set {input:?} at {entry:?}: {problem}")]
    Mysql {
        input: String,
        entry: String,
        problem: &'static str,
    },
    #[error("cannot compare a {left} GTID state with a {right} one")]
    FlavorMismatch { left: Flavor, right: Flavor },
}

/// A server's GTID state in its own flavour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidState {
    MariaDb(MariaGtidPos),
    Mysql(MysqlGtidSet),
}

impl GtidState {
    pub fn parse(flavor: Flavor, text: &str) -> Result<Self, GtidError> {
        match flavor {
            Flavor::MariaDb => MariaGtidPos::parse(text).map(Self::MariaDb),
            Flavor::Mysql => MysqlGtidSet::parse(text).map(Self::Mysql),
        }
    }

    pub fn empty(flavor: Flavor) -> Self {
        match flavor {
            Flavor::MariaDb => Self::MariaDb(MariaGtidPos::default()),
            Flavor::Mysql => Self::Mysql(MysqlGtidSet::default()),
        }
    }

    pub fn flavor(&self) -> Flavor {
        match self {
            Self::MariaDb(_) => Flavor::MariaDb,
            Self::Mysql(_) => Flavor::Mysql,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Self::MariaDb(p) => p.is_empty(),
            Self::Mysql(s) => s.is_empty(),
        }
    }

    /// True when `self` has every transaction `other` has.
    pub fn contains(&self, other: &Self) -> Result<bool, GtidError> {
        match (self, other) {
            (Self::MariaDb(a), Self::MariaDb(b)) => Ok(a.contains(b)),
            (Self::Mysql(a), Self::Mysql(b)) => Ok(a.contains(b)),
            _ => Err(self.mismatch(other)),
        }
    }

    /// Partial order by containment: `None` when each has transactions the other lacks.
    pub fn compare(&self, other: &Self) -> Result<Option<Ordering>, GtidError> {
        let forward = self.contains(other)?;
        let backward = other.contains(self)?;
        Ok(match (forward, backward) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        })
    }

    /// Everything either has.
    pub fn union(&self, other: &Self) -> Result<Self, GtidError> {
        match (self, other) {
            (Self::MariaDb(a), Self::MariaDb(b)) => Ok(Self::MariaDb(a.union(b))),
            (Self::Mysql(a), Self::Mysql(b)) => Ok(Self::Mysql(a.union(b))),
            _ => Err(self.mismatch(other)),
        }
    }

    /// How many transactions `self` has that `other` lacks.
    pub fn count_missing_from(&self, other: &Self) -> Result<u64, GtidError> {
        match (self, other) {
            (Self::MariaDb(a), Self::MariaDb(b)) => Ok(a.count_ahead_of(b)),
            (Self::Mysql(a), Self::Mysql(b)) => Ok(a.subtract(b).count()),
            _ => Err(self.mismatch(other)),
        }
    }

    fn mismatch(&self, other: &Self) -> GtidError {
        GtidError::FlavorMismatch {
            left: self.flavor(),
            right: other.flavor(),
        }
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MariaDb(p) => p.fmt(f),
            Self::Mysql(s) => s.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_from_version() {
        assert_eq!(
            Flavor::from_version("10.11.6-MariaDB-0+deb12u1-log"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::from_version("8.0.36"), Flavor::Mysql);
        assert_eq!(Flavor::from_version("8.4.0-commercial"), Flavor::Mysql);
    }

    #[test]
    fn state_compares_within_a_flavor_only() {
        let a = GtidState::parse(Flavor::MariaDb, "0-1-10").expect("parse");
        let b = GtidState::parse(Flavor::MariaDb, "0-1-7").expect("parse");
        assert_eq!(a.compare(&b), Ok(Some(Ordering::Greater)));
        assert_eq!(a.count_missing_from(&b), Ok(3));
        let m = GtidState::parse(Flavor::Mysql, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-3")
            .expect("parse");
        assert!(matches!(
            a.contains(&m),
            Err(GtidError::FlavorMismatch { .. })
        ));
    }
}
