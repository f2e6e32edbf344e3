//! Names of clusters and hosts, roles and promotion rules.
//!
//! Names become DNS labels (`primary.<cluster>.<zone>`) and ZooKeeper path segments, so
//! they are restricted to what is safe in both: lowercase letters, digits and `-`,
//! 1 to 63 characters, not starting or ending with `-`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} name is empty")]
    Empty { kind: &'static str },
    #[error("{kind} name {value:?} is longer than 63 characters")]
    TooLong { kind: &'static str, value: String },
    #[error(
        "{kind} name {value:?} may only contain lowercase letters, digits and '-', and may not start or end with '-'"
    )]
    BadCharacters { kind: &'static str, value: String },
    #[error("unknown {kind} {value:?} (expected one of: {expected})")]
    UnknownVariant {
        kind: &'static str,
        value: String,
        expected: &'static str,
    },
}

fn check_label(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > 63 {
        return Err(IdError::TooLong {
            kind,
            value: value.to_owned(),
        });
    }
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok_chars || value.starts_with('-') || value.ends_with('-') {
        return Err(IdError::BadCharacters {
            kind,
            value: value.to_owned(),
        });
    }
    Ok(())
}

macro_rules! label_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_label($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_type!(
    /// The name of a cluster (one primary and its replicas), e.g. `orders`.
    ClusterName,
    "cluster"
);
label_type!(
    /// The name of a MySQL host within the fleet, e.g. `db-17`.
    HostName,
    "host"
);

/// A host's role in its cluster's topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Replica,
}

/// The operator's promotion preference for a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionRule {
    /// Wins among equally up-to-date candidates.
    Prefer,
    #[default]
    Neutral,
    /// Never promoted (a backup or delayed replica).
    Never,
}

impl FromStr for PromotionRule {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        match s {
            "prefer" => Ok(Self::Prefer),
            "neutral" => Ok(Self::Neutral),
            "never" => Ok(Self::Never),
            other => Err(IdError::UnknownVariant {
                kind: "promotion rule",
                value: other.to_owned(),
                expected: "prefer, neutral, never",
            }),
        }
    }
}

impl fmt::Display for PromotionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prefer => "prefer",
            Self::Neutral => "neutral",
            Self::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_safe_names() {
        for ok in ["c1", "orders", "db-17", "a", &"x".repeat(63)] {
            assert!(ClusterName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_unsafe_names_with_a_reason() {
        assert_eq!(HostName::new(""), Err(IdError::Empty { kind: "host" }));
        for bad in ["Db1", "db_1", "-db", "db-", "a/b", "a.b", "ä"] {
            let err = HostName::new(bad).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(matches!(
            ClusterName::new("x".repeat(64)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn promotion_rule_parses_and_names_bad_values() {
        assert_eq!("never".parse::<PromotionRule>(), Ok(PromotionRule::Never));
        let err = "always".parse::<PromotionRule>().expect_err("bad");
        assert!(err.to_string().contains("always"));
        assert!(err.to_string().contains("prefer, neutral, never"));
    }
}
