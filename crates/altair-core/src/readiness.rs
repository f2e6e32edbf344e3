//! Failover readiness: what a failover would do if the primary failed now — the
//! candidate, the transactions it lacks, its lag, whether salvage could run, errant
//! transactions on replicas, hosts that could not be asked — and a verdict. Judged from
//! the heartbeats a monitor already has, so it costs mysqld nothing.
//!
//! Heartbeat snapshots of different hosts are taken at different times. Each replica is
//! compared with the newest position of the primary observed at least `SLACK_MS` before
//! its own snapshot: what it lacked then, it really lacked (clock skew between hosts
//! within the slack included). The candidate is the eligible replica with the smallest
//! such shortfall (then the promotion rule, the datacenter, the name: the orchestrator's
//! ties), so a fresher snapshot never wins by its age. Transactions committed within the
//! slack are not counted (asynchronous replication always risks the last instant's;
//! `semi_sync` does not): `lossy` means a candidate more than a second behind.

use std::collections::BTreeMap;

use crate::failover::{Candidate, CandidateRules, eligible, rank};
use crate::gtid::{Flavor, GtidState, OwnWrites, errant_gtids, local_writes};

/// A replica is compared with the primary as it was this long before its own snapshot.
pub const SLACK_MS: u64 = 1_000;
use crate::ids::PromotionRule;

/// One host as its latest heartbeats describe it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub name: String,
    /// Its agent is heard (heartbeats within the detection window).
    pub heard: bool,
    /// Its mysqld answers and its agent is heard — what a failover asks of a candidate
    /// (replication may be stopped: catch-up applies what it received).
    pub healthy: bool,
    /// Replication is configured on it. A host that is neither the primary nor a
    /// replica (an old primary waiting for rejoin) is no candidate.
    pub replica: bool,
    pub promotion_rule: PromotionRule,
    pub datacenter: String,
    pub server_id: u32,
    pub flavor: Flavor,
    /// `gtid_executed` and what the IO thread received, in the server's notation.
    pub executed: String,
    pub received: String,
    /// MariaDB `@@gtid_binlog_state`, MySQL `@@server_uuid` (empty when unknown).
    pub binlog_state: String,
    pub server_uuid: String,
    pub lag_s: Option<i64>,
    /// When the snapshot was taken (agent clock, ms since the Unix epoch).
    pub observed_at_ms: u64,
    /// Its earlier positions (observed at, executed), oldest first.
    pub earlier: Vec<(u64, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The best candidate has everything the primary had.
    Lossless,
    /// The best candidate lacks transactions the primary had (listed).
    Lossy,
    /// No failover could promote anyone: why.
    Blocked(String),
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Lossless => "lossless",
            Self::Lossy => "lossy",
            Self::Blocked(_) => "blocked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub primary: Option<String>,
    pub verdict: Verdict,
    pub candidate: Option<String>,
    /// Transactions the candidate lacks, and which.
    pub missing: u64,
    pub missing_gtids: String,
    pub candidate_lag_s: Option<i64>,
    /// The primary's agent is heard: if only mysqld failed, salvage could read its binlog.
    pub salvage_possible: bool,
    /// Replica → transactions it wrote itself.
    pub errant: BTreeMap<String, String>,
    /// Hosts whose agent is not heard.
    pub unasked: Vec<String>,
}

/// Judges `hosts`, of which `primary` is the primary.
pub fn assess(primary: Option<&str>, hosts: &[Observed], rules: &CandidateRules) -> Readiness {
    let unasked: Vec<String> = hosts
        .iter()
        .filter(|h| !h.heard)
        .map(|h| h.name.clone())
        .collect();
    let mut out = Readiness {
        primary: primary.map(str::to_owned),
        verdict: Verdict::Blocked(String::new()),
        candidate: None,
        missing: 0,
        missing_gtids: String::new(),
        candidate_lag_s: None,
        salvage_possible: false,
        errant: BTreeMap::new(),
        unasked,
    };
    let Some(p) = primary.and_then(|name| hosts.iter().find(|h| h.name == name)) else {
        out.verdict = Verdict::Blocked(
            "the primary is not known (no reachable host replicates from no one)".into(),
        );
        return out;
    };
    out.salvage_possible = p.heard;
    let Ok(primary_now) = GtidState::parse(p.flavor, &p.executed) else {
        out.verdict = Verdict::Blocked(format!(
            "the primary's GTID position {:?} does not parse",
            p.executed
        ));
        return out;
    };
    let replicas: Vec<&Observed> = hosts
        .iter()
        .filter(|h| h.name != p.name && h.replica)
        .collect();
    let primary_own = OwnWrites {
        executed: &primary_now,
        server_id: p.server_id,
        binlog_state: &p.binlog_state,
        server_uuid: &p.server_uuid,
    };
    for r in replicas.iter().filter(|r| r.heard) {
        let Ok(executed) = GtidState::parse(r.flavor, &r.executed) else {
            continue;
        };
        let replica_own = OwnWrites {
            executed: &executed,
            server_id: r.server_id,
            binlog_state: &r.binlog_state,
            server_uuid: &r.server_uuid,
        };
        if let Ok(own) = local_writes(replica_own, primary_own)
            && !own.is_empty()
        {
            out.errant.insert(r.name.clone(), own);
        }
    }
    let mut received = BTreeMap::new();
    let candidates: Vec<Candidate> = replicas
        .iter()
        .map(|r| {
            let got = received_set(r);
            let parsed = got.is_some();
            if let Some(g) = got {
                received.insert(r.name.clone(), g);
            }
            Candidate {
                name: r.name.clone(),
                healthy: r.healthy && parsed,
                promotion_rule: r.promotion_rule,
                datacenter: r.datacenter.clone(),
                received: received
                    .get(&r.name)
                    .cloned()
                    .unwrap_or_else(|| GtidState::empty(r.flavor)),
                lag_s: r.lag_s,
            }
        })
        .collect();
    let eligible = match eligible(&candidates, rules) {
        Ok(e) => e,
        Err(refusal) => {
            out.verdict = Verdict::Blocked(refusal.to_string());
            return out;
        }
    };
    // Each eligible replica's shortfall against the primary as of its own snapshot.
    let judged: Vec<(&Candidate, &Observed, GtidState, u64)> = eligible
        .iter()
        .filter_map(|c| {
            let r = replicas.iter().find(|r| r.name == c.name)?;
            let then = position_at(p, r.observed_at_ms.saturating_sub(SLACK_MS))
                .unwrap_or_else(|| primary_now.clone());
            let short = then.count_missing_from(&c.received).unwrap_or(u64::MAX);
            Some((*c, *r, then, short))
        })
        .collect();
    let Some((best, b, then, short)) = judged.into_iter().min_by(|x, y| {
        x.3.cmp(&y.3)
            .then_with(|| rank(y.0, rules).cmp(&rank(x.0, rules)))
            .then_with(|| x.0.name.cmp(&y.0.name))
    }) else {
        out.verdict = Verdict::Blocked("no eligible replica could be judged".into());
        return out;
    };
    out.missing = short;
    out.missing_gtids = errant_gtids(&then, &best.received).unwrap_or_default();
    out.candidate_lag_s = b.lag_s;
    out.candidate = Some(best.name.clone());
    out.verdict = if out.missing == 0 {
        Verdict::Lossless
    } else {
        Verdict::Lossy
    };
    out
}

/// Everything a replica has: executed ∪ received.
fn received_set(r: &Observed) -> Option<GtidState> {
    let executed = GtidState::parse(r.flavor, &r.executed).ok()?;
    match GtidState::parse(r.flavor, &r.received) {
        Ok(got) => executed.union(&got).ok(),
        Err(_) => Some(executed),
    }
}

/// The primary's newest position observed no later than `at_ms` (its current one
/// included); the oldest known when every one is later.
fn position_at(p: &Observed, at_ms: u64) -> Option<GtidState> {
    let all = p
        .earlier
        .iter()
        .map(|(t, g)| (*t, g.as_str()))
        .chain(std::iter::once((p.observed_at_ms, p.executed.as_str())));
    let mut oldest = None;
    let mut best: Option<(u64, &str)> = None;
    for (t, g) in all {
        if oldest.is_none_or(|(ot, _)| t < ot) {
            oldest = Some((t, g));
        }
        if t <= at_ms && best.is_none_or(|(bt, _)| t >= bt) {
            best = Some((t, g));
        }
    }
    let (_, text) = best.or(oldest)?;
    GtidState::parse(p.flavor, text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, server_id: u32, executed: &str, at: u64) -> Observed {
        Observed {
            name: name.into(),
            heard: true,
            healthy: true,
            replica: true,
            promotion_rule: PromotionRule::Neutral,
            datacenter: "dc1".into(),
            server_id,
            flavor: Flavor::MariaDb,
            executed: executed.into(),
            received: executed.into(),
            binlog_state: String::new(),
            server_uuid: String::new(),
            lag_s: Some(0),
            observed_at_ms: at,
            earlier: Vec::new(),
        }
    }

    fn rules() -> CandidateRules {
        CandidateRules {
            max_lag_s: 30,
            primary_datacenter: "dc1".into(),
        }
    }

    #[test]
    fn a_caught_up_replica_is_lossless() {
        let hosts = [
            host("db1", 1, "0-1-10", 100),
            host("db2", 2, "0-1-10", 100),
            host("db3", 3, "0-1-9", 100),
        ];
        let r = assess(Some("db1"), &hosts, &rules());
        assert_eq!(r.verdict, Verdict::Lossless);
        assert_eq!(r.candidate.as_deref(), Some("db2"));
        assert!(r.salvage_possible);
        assert!(r.errant.is_empty() && r.unasked.is_empty());
    }

    #[test]
    fn replicas_behind_are_lossy_with_the_missing_gtids() {
        let mut db2 = host("db2", 2, "0-1-5", 200);
        db2.received = "0-1-7".into();
        let hosts = [
            host("db1", 1, "0-1-10", 100),
            db2,
            host("db3", 3, "0-1-4", 200),
        ];
        let r = assess(Some("db1"), &hosts, &rules());
        assert_eq!(r.verdict, Verdict::Lossy);
        assert_eq!(r.candidate.as_deref(), Some("db2"), "received counts");
        assert_eq!(r.missing, 3);
        assert_eq!(r.missing_gtids, "0-1-8..10 (3 transactions)");
    }

    #[test]
    fn a_replica_is_compared_with_the_primary_as_of_its_own_snapshot() {
        // The primary's snapshot is newer than the replica's: compared with the
        // primary's earlier one, the replica lacks nothing.
        let mut db1 = host("db1", 1, "0-1-50", 2_000);
        db1.earlier = vec![(500, "0-1-20".into()), (1_000, "0-1-30".into())];
        let hosts = [db1, host("db2", 2, "0-1-30", 1_500)];
        let r = assess(Some("db1"), &hosts, &rules());
        assert_eq!(r.verdict, Verdict::Lossless, "{r:?}");
        // Really behind the earlier position: lossy by what it lacked then.
        let mut db1 = host("db1", 1, "0-1-50", 2_000);
        db1.earlier = vec![(1_000, "0-1-30".into())];
        let hosts = [db1, host("db2", 2, "0-1-28", 1_500)];
        let r = assess(Some("db1"), &hosts, &rules());
        assert_eq!((r.verdict, r.missing), (Verdict::Lossy, 2));
    }

    #[test]
    fn no_qualifying_candidate_is_blocked_and_says_why() {
        let mut db2 = host("db2", 2, "0-1-10", 100);
        db2.healthy = false;
        let mut db3 = host("db3", 3, "0-1-10", 100);
        db3.promotion_rule = PromotionRule::Never;
        let hosts = [host("db1", 1, "0-1-10", 100), db2, db3];
        let r = assess(Some("db1"), &hosts, &rules());
        let Verdict::Blocked(why) = &r.verdict else {
            panic!("{r:?}")
        };
        assert!(
            why.contains("db2: not healthy") && why.contains("db3"),
            "{why}"
        );
        let r = assess(None, &hosts, &rules());
        assert!(matches!(r.verdict, Verdict::Blocked(_)));
    }

    #[test]
    fn errant_replicas_and_silent_hosts_are_listed() {
        let mut db3 = host("db3", 3, "0-3-11", 100);
        db3.heard = false;
        db3.healthy = false;
        let hosts = [
            host("db1", 1, "0-1-10", 100),
            host("db2", 2, "0-2-11", 100),
            db3,
        ];
        let r = assess(Some("db1"), &hosts, &rules());
        assert_eq!(r.errant.get("db2").map(String::as_str), Some("0-2-11"));
        assert!(!r.errant.contains_key("db3"), "a silent host is not judged");
        assert_eq!(r.unasked, vec!["db3".to_owned()]);
        let mut silent = host("db1", 1, "0-1-10", 100);
        silent.heard = false;
        let r = assess(
            Some("db1"),
            &[silent, host("db2", 2, "0-1-10", 100)],
            &rules(),
        );
        assert!(!r.salvage_possible);
    }

    #[test]
    fn bad_positions_never_panic() {
        let hosts = [
            host("db1", 1, "garbage", 100),
            host("db2", 2, "also bad", 100),
        ];
        let r = assess(Some("db1"), &hosts, &rules());
        assert!(matches!(r.verdict, Verdict::Blocked(_)));
        let hosts = [host("db1", 1, "0-1-3", 100), host("db2", 2, "bad", 100)];
        let r = assess(Some("db1"), &hosts, &rules());
        assert!(matches!(r.verdict, Verdict::Blocked(_)), "{r:?}");
    }

    #[test]
    fn a_fresher_snapshot_does_not_win_by_its_age() {
        // db3 is caught up as of its (older) snapshot; db2 lags 7 s but reported later.
        let mut db1 = host("db1", 1, "0-1-1030", 103_000);
        db1.earlier = vec![(95_000, "0-1-950".into()), (99_000, "0-1-990".into())];
        let hosts = [
            db1,
            host("db2", 2, "0-1-1020", 109_000),
            host("db3", 3, "0-1-995", 100_000),
        ];
        let r = assess(Some("db1"), &hosts, &rules());
        assert_eq!(r.candidate.as_deref(), Some("db3"), "{r:?}");
        assert_eq!(r.verdict, Verdict::Lossless, "{r:?}");
    }

    #[test]
    fn equally_caught_up_replicas_are_ranked_by_the_orchestrator_s_rules() {
        let mut db3 = host("db3", 3, "0-1-10", 5_000);
        db3.promotion_rule = PromotionRule::Prefer;
        let hosts = [
            host("db1", 1, "0-1-10", 1_000),
            host("db2", 2, "0-1-10", 5_000),
            db3,
        ];
        let r = assess(Some("db1"), &hosts, &rules());
        assert_eq!(r.candidate.as_deref(), Some("db3"), "prefer wins a tie");
    }

    #[test]
    fn no_lag_limit_means_none() {
        let mut db2 = host("db2", 2, "0-1-10", 100);
        db2.lag_s = Some(400);
        let rules = CandidateRules {
            max_lag_s: u64::MAX,
            primary_datacenter: "dc1".into(),
        };
        let r = assess(Some("db1"), &[host("db1", 1, "0-1-10", 100), db2], &rules);
        assert_eq!(r.verdict, Verdict::Lossless, "{r:?}");
        assert_eq!(r.candidate_lag_s, Some(400));
    }
}
