//! Choosing the replica to promote (DESIGN §5 step 3).

use std::cmp::Ordering;

use crate::gtid::GtidState;
use crate::ids::PromotionRule;

#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    /// Judged healthy by its monitor (and its agent answered just now).
    pub healthy: bool,
    pub promotion_rule: PromotionRule,
    pub datacenter: String,
    /// Everything it has received (MariaDB `Gtid_IO_Pos` ∪ executed; MySQL received ∪ executed).
    pub received: GtidState,
    pub lag_s: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct CandidateRules {
    pub max_lag_s: u64,
    /// The old primary's datacenter: same-datacenter candidates win among equals.
    pub primary_datacenter: String,
}

/// Why no candidate could be chosen; names every replica and why it was excluded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no replica can be promoted: {}", reasons.join("; "))]
pub struct Refusal {
    pub reasons: Vec<String>,
}

/// The healthy, eligible replica that received the most; `prefer` then same datacenter
/// then name break ties among equally up-to-date ones.
pub fn choose(candidates: &[Candidate], rules: &CandidateRules) -> Result<String, Refusal> {
    let eligible = eligible(candidates, rules)?;
    let most = |a: &Candidate, b: &Candidate| -> Ordering {
        match a.received.compare(&b.received) {
            Ok(Some(o)) => o,
            // Divergent or mixed flavours: fall back to how many each has beyond the other.
            _ => {
                let ab = a.received.count_missing_from(&b.received).unwrap_or(0);
                let ba = b.received.count_missing_from(&a.received).unwrap_or(0);
                ab.cmp(&ba)
            }
        }
    };
    let best = eligible
        .iter()
        .copied()
        .max_by(|a, b| {
            most(a, b)
                .then_with(|| rank(a, rules).cmp(&rank(b, rules)))
                .then_with(|| b.name.cmp(&a.name))
        })
        .map(|c| c.name.clone());
    best.ok_or(Refusal {
        reasons: vec!["the cluster has no replica".into()],
    })
}

/// How the rules rank a candidate among equally up-to-date ones (greater is better).
pub fn rank(c: &Candidate, rules: &CandidateRules) -> (bool, bool) {
    (
        c.promotion_rule == PromotionRule::Prefer,
        c.datacenter == rules.primary_datacenter,
    )
}

/// The candidates a failover may promote at all, or why there is none (every replica
/// named with its reason).
pub fn eligible<'a>(
    candidates: &'a [Candidate],
    rules: &CandidateRules,
) -> Result<Vec<&'a Candidate>, Refusal> {
    let mut reasons = Vec::new();
    let eligible: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| {
            let why = if !c.healthy {
                Some("not healthy")
            } else if c.promotion_rule == PromotionRule::Never {
                Some("promotion rule is never")
            } else if c
                .lag_s
                .is_some_and(|l| u64::try_from(l).is_ok_and(|l| l > rules.max_lag_s))
            {
                Some("lags more than the configured maximum")
            } else {
                None
            };
            if let Some(why) = why {
                reasons.push(format!("{}: {why}", c.name));
            }
            why.is_none()
        })
        .collect();
    if eligible.is_empty() {
        if reasons.is_empty() {
            reasons.push("the cluster has no replica".into());
        }
        return Err(Refusal { reasons });
    }
    Ok(eligible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtid::Flavor;

    fn c(name: &str, pos: &str) -> Candidate {
        Candidate {
            name: name.into(),
            healthy: true,
            promotion_rule: PromotionRule::Neutral,
            datacenter: "dc1".into(),
            received: GtidState::parse(Flavor::MariaDb, pos).expect("gtid"),
            lag_s: Some(0),
        }
    }

    fn rules() -> CandidateRules {
        CandidateRules {
            max_lag_s: 300,
            primary_datacenter: "dc1".into(),
        }
    }

    #[test]
    fn most_received_wins() {
        let cs = [c("db2", "0-1-10"), c("db3", "0-1-12")];
        assert_eq!(choose(&cs, &rules()), Ok("db3".into()));
    }

    #[test]
    fn prefer_then_datacenter_break_ties() {
        let mut a = c("db2", "0-1-10");
        let mut b = c("db3", "0-1-10");
        b.datacenter = "dc2".into();
        assert_eq!(choose(&[a.clone(), b.clone()], &rules()), Ok("db2".into()));
        b.promotion_rule = PromotionRule::Prefer;
        assert_eq!(choose(&[a.clone(), b.clone()], &rules()), Ok("db3".into()));
        a.promotion_rule = PromotionRule::Never;
        b.promotion_rule = PromotionRule::Neutral;
        assert_eq!(choose(&[a, b], &rules()), Ok("db3".into()));
    }

    #[test]
    fn refuses_and_says_why() {
        let mut a = c("db2", "0-1-10");
        a.lag_s = Some(900);
        let mut b = c("db3", "0-1-12");
        b.healthy = false;
        let err = choose(&[a, b], &rules()).expect_err("nobody");
        assert!(err.to_string().contains("db2: lags more"), "{err}");
        assert!(err.to_string().contains("db3: not healthy"), "{err}");
        assert!(
            choose(&[], &rules())
                .expect_err("empty")
                .to_string()
                .contains("no replica")
        );
    }
}
