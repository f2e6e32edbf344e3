//! The salvage step's decisions: what was lost, stated exactly whenever the old host
//! answered, and whether a failed salvage holds the promotion (`on_salvage_timeout`).

use crate::config::OnSalvageTimeout;
use crate::gtid::{Flavor, GtidState, errant_gtids};

/// The flavour a GTID text is written in: MySQL sets name a source UUID (`uuid:1-5`),
/// MariaDB positions are `domain-server-seq`.
pub fn flavor_of(gtid: &str) -> Flavor {
    if gtid.contains(':') {
        Flavor::Mysql
    } else {
        Flavor::MariaDb
    }
}

/// The transactions the old primary's binlog ends with that the new primary lacks: the
/// exact lost set (empty: nothing lost).
pub fn lost_gtids(old_binlog_end: &str, new_primary: &str) -> Result<String, String> {
    let flavor = flavor_of(old_binlog_end);
    let end = GtidState::parse(flavor, old_binlog_end).map_err(|e| e.to_string())?;
    let have = GtidState::parse(flavor, new_primary).map_err(|e| e.to_string())?;
    errant_gtids(&end, &have).map_err(|e| e.to_string())
}

/// The loss when the old host could not be asked: what the candidate had and when the
/// host was last heard, since the lost set itself cannot be known.
pub fn unknown_loss(candidate: &str, last_heard_ms: Option<u64>) -> String {
    format!(
        "unknown: the old primary's host is unreachable; the candidate had {}; the host was last heard {}",
        if candidate.is_empty() {
            "no GTID position"
        } else {
            candidate
        },
        last_heard_ms.map_or_else(
            || "never".to_owned(),
            |ms| format!("at {ms} ms since the Unix epoch")
        )
    )
}

/// What a failed salvage from a host that answers does to the failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterSalvageFailure {
    /// Promote anyway; the journal lists what was lost.
    Promote,
    /// Keep the cluster without a primary: the step fails and is retried.
    Hold(String),
}

pub fn after_salvage_failure(policy: OnSalvageTimeout, error: &str) -> AfterSalvageFailure {
    match policy {
        OnSalvageTimeout::Promote => AfterSalvageFailure::Promote,
        OnSalvageTimeout::Wait => AfterSalvageFailure::Hold(format!(
            "{error} (on_salvage_timeout = \"wait\": no promotion until the salvage succeeds or an operator acts)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lost_set_is_exact() {
        assert_eq!(lost_gtids("0-1-500", "0-1-500").as_deref(), Ok(""));
        assert_eq!(
            lost_gtids("0-1-500", "0-1-480").as_deref(),
            Ok("0-1-481..500 (20 transactions)")
        );
        assert_eq!(lost_gtids("0-1-500", "0-1-499").as_deref(), Ok("0-1-500"));
        // The candidate ahead (salvage applied and more): nothing lost.
        assert_eq!(lost_gtids("0-1-5", "0-1-5,1-2-3").as_deref(), Ok(""));
        assert!(lost_gtids("0-1-x", "0-1-1").is_err());
    }

    #[test]
    fn unknown_says_what_is_known() {
        let u = unknown_loss("0-1-9", Some(1234));
        assert!(
            u.starts_with("unknown:") && u.contains("0-1-9") && u.contains("1234"),
            "{u}"
        );
        assert!(unknown_loss("", None).contains("never"));
    }

    #[test]
    fn policy() {
        assert_eq!(
            after_salvage_failure(OnSalvageTimeout::Promote, "x"),
            AfterSalvageFailure::Promote
        );
        let AfterSalvageFailure::Hold(why) =
            after_salvage_failure(OnSalvageTimeout::Wait, "timed out")
        else {
            panic!("wait holds");
        };
        assert!(why.contains("timed out") && why.contains("wait"), "{why}");
        assert_eq!(
            flavor_of("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"),
            Flavor::Mysql
        );
    }
}
