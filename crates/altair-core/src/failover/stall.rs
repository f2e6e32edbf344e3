//! A primary reported `write_stalled` in a cluster whose `[write_stall]` policy is
//! `failover`: when its failover may start, and what the primary's agent must still say
//! for it to go ahead.

/// What the leader does now with a primary reported `write_stalled` in a cluster whose
/// policy is `failover` (an `alert` cluster never gets here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallAction {
    /// Not stalled long enough yet: look again at this time (ms since the Unix epoch).
    WaitUntil(u64),
    /// Ask the primary's agent whether it is still stalled.
    Confirm,
}

/// `since_ms`: when the primary was reported `write_stalled`.
pub fn stall_action(since_ms: u64, now_ms: u64, failover_after_ms: u64) -> StallAction {
    let due = since_ms.saturating_add(failover_after_ms);
    if now_ms < due {
        StallAction::WaitUntil(due)
    } else {
        StallAction::Confirm
    }
}

/// What the primary's agent said when asked just before the failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallCheck {
    /// Writable and still not committing: fail over.
    Stalled { why: String },
    /// It commits again, or it is no longer writable: no failover.
    Cleared { why: String },
    /// Its write probe fails with an error the server answered with (privileges, a
    /// missing table, too many connections), not a commit that does not finish: alert
    /// only — every primary would have it.
    NotStuck { why: String },
    /// Its agent did not answer: not this path's call (if the host is lost, its health
    /// turns `unreachable` and that path verifies it).
    NoAnswer { error: String },
}

/// What the primary's agent reported in its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StallAnswer {
    /// Its probe of mysqld answered (when it did not — a binlog write waiting for disk
    /// space holds the lock the probe needs — `read_only` is not known).
    pub reachable: bool,
    pub read_only: bool,
    pub write_stalled: bool,
    /// The stall is commits that do not finish (a probe past its deadline, sessions
    /// waiting for disk space), not an error the server answered with.
    pub commits_stuck: bool,
    pub probe_error: String,
}

/// `answer`: the primary's snapshot, or why its agent did not answer. The agent's write
/// probe runs on a writable primary only, so a stall it still reports is one of a
/// writable primary unless its probe now reads it read-only.
pub fn stall_check(answer: Result<StallAnswer, String>) -> StallCheck {
    match answer {
        Err(error) => StallCheck::NoAnswer { error },
        Ok(a) if !a.write_stalled => StallCheck::Cleared {
            why: "its write probe commits again".into(),
        },
        Ok(a) if a.reachable && a.read_only => StallCheck::Cleared {
            why: "it is read-only now".into(),
        },
        Ok(a) if !a.commits_stuck => StallCheck::NotStuck { why: a.probe_error },
        Ok(a) => StallCheck::Stalled {
            why: if a.probe_error.is_empty() {
                "its write probe has not committed".into()
            } else {
                a.probe_error
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_waits_for_the_report_to_stand_then_confirms() {
        assert_eq!(
            stall_action(1_000, 5_000, 10_000),
            StallAction::WaitUntil(11_000)
        );
        assert_eq!(stall_action(1_000, 11_000, 10_000), StallAction::Confirm);
        assert_eq!(stall_action(1_000, 1_000, 0), StallAction::Confirm);
        assert_eq!(
            stall_action(u64::MAX, 0, 10_000),
            StallAction::WaitUntil(u64::MAX)
        );
    }

    #[test]
    fn only_a_writable_primary_still_stalled_is_failed_over() {
        let stalled = StallAnswer {
            reachable: true,
            read_only: false,
            write_stalled: true,
            commits_stuck: true,
            probe_error: "Waiting for someone to free space".into(),
        };
        assert!(matches!(
            stall_check(Ok(stalled.clone())),
            StallCheck::Stalled { why } if why.contains("free space")
        ));
        // Its probe of mysqld hangs behind the stalled binlog write: read_only unknown.
        let probe_hangs = StallAnswer {
            reachable: false,
            read_only: true,
            probe_error: String::new(),
            ..stalled.clone()
        };
        assert!(matches!(
            stall_check(Ok(probe_hangs)),
            StallCheck::Stalled { why } if why.contains("not committed")
        ));
        let commits = StallAnswer {
            write_stalled: false,
            ..stalled.clone()
        };
        assert!(matches!(
            stall_check(Ok(commits)),
            StallCheck::Cleared { .. }
        ));
        let read_only = StallAnswer {
            read_only: true,
            ..stalled.clone()
        };
        assert!(matches!(
            stall_check(Ok(read_only)),
            StallCheck::Cleared { .. }
        ));
        assert!(matches!(
            stall_check(Err("deadline".into())),
            StallCheck::NoAnswer { .. }
        ));
        // A grant missing fleet-wide must not fail every primary over.
        let denied = StallAnswer {
            commits_stuck: false,
            probe_error: "Access denied for user 'altair'".into(),
            ..stalled
        };
        assert!(matches!(
            stall_check(Ok(denied)),
            StallCheck::NotStuck { why } if why.contains("denied")
        ));
    }
}
