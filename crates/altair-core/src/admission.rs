//! Failover admission control (DESIGN §8): when many primaries of one datacenter become
//! unreachable at once, the likelier story is that the observer (monitors, orchestrator)
//! lost that datacenter, not that every host in it died. Those failovers are held: a
//! cluster goes ahead only when a witness inside that datacenter — a replica there whose
//! agent still answers — says it cannot reach the primary, or when an operator releases
//! the hold. A replica outside the datacenter sees what the observer sees and proves
//! nothing here. `mysql_down` reported by a live agent is never held (its host answers).
//!
//! Pure: the leader feeds in what it saw and the time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[admission]` as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A hold is raised when more than this share (percent) of a datacenter's primaries…
    pub share_percent: u32,
    /// …and at least this many became unreachable within `window_ms`.
    pub min_primaries: u32,
    pub window_ms: u64,
    /// A failover of an unreachable primary starts no sooner than this after it was
    /// reported unreachable, so primaries lost together are counted together (it runs
    /// while verification does; ≥ the agents' liveness interval).
    pub settle_ms: u64,
}

/// What the leader last saw of one cluster's primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimarySeen {
    pub datacenter: String,
    /// Reported unreachable (its agent silent) since then; `None`: not unreachable.
    pub unreachable_since_ms: Option<u64>,
}

/// A datacenter's primaries as the leader sees them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub primaries: u32,
    /// Clusters whose primary became unreachable within the window, sorted.
    pub recent: Vec<String>,
    /// Clusters whose primary is unreachable now (however long), sorted.
    pub unreachable: Vec<String>,
}

/// Counts the primaries of `datacenter` among `seen` (cluster → primary).
pub fn census<'a>(
    seen: impl IntoIterator<Item = (&'a String, &'a PrimarySeen)>,
    datacenter: &str,
    now_ms: u64,
    window_ms: u64,
) -> Census {
    let mut c = Census::default();
    for (cluster, p) in seen {
        if p.datacenter != datacenter {
            continue;
        }
        c.primaries += 1;
        if let Some(since) = p.unreachable_since_ms {
            c.unreachable.push(cluster.clone());
            if since.saturating_add(window_ms) >= now_ms {
                c.recent.push(cluster.clone());
            }
        }
    }
    c.recent.sort();
    c.unreachable.sort();
    c
}

impl Policy {
    /// More than the share, and at least the minimum, became unreachable together.
    pub fn is_mass(&self, c: &Census) -> bool {
        let n = c.recent.len() as u64;
        n >= u64::from(self.min_primaries.max(1))
            && n * 100 > u64::from(self.share_percent) * u64::from(c.primaries)
    }

    /// Could more losses still make this a mass event? (No settling needed otherwise.)
    fn could_become_mass(&self, c: &Census) -> bool {
        c.primaries >= self.min_primaries.max(1)
    }
}

/// A hold on a datacenter's failovers, as stored in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub raised_at_ms: u64,
    /// The datacenter's primaries when it was raised.
    pub primaries: u32,
    /// The clusters whose primary had become unreachable within the window then.
    pub unreachable: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Release>,
}

/// An operator's release of a hold (`altairctl release DATACENTER`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The caller's identity (`operator/alice`).
    pub by: String,
    pub reason: String,
    pub at_ms: u64,
}

/// Every hold in force, by datacenter: one record, changed with a compare-and-set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holds {
    #[serde(default)]
    pub holds: BTreeMap<String, Hold>,
}

impl Hold {
    /// One line for logs, status and journal notes.
    pub fn describe(&self, datacenter: &str) -> String {
        let base = format!(
            "datacenter {datacenter}: {} of {} primaries unreachable together ({})",
            self.unreachable.len(),
            self.primaries,
            self.unreachable.join(", ")
        );
        match &self.released {
            Some(r) => format!("{base}; released by {}: {}", r.by, r.reason),
            None => base,
        }
    }
}

/// What to do with the failover of one unreachable primary, verified dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// No mass event: go ahead.
    Go,
    /// Wait until then (ms since the Unix epoch) and ask again: primaries lost together
    /// are not all reported yet.
    Settle { until_ms: u64 },
    /// Held: its datacenter is suspected to be cut off from the observer.
    Held,
    /// Held datacenter, but this cluster's witness inside it confirms the death.
    Witnessed { witness: String },
    /// The hold was released by an operator.
    Released { by: String },
}

/// The decision for one cluster whose primary (in the datacenter `census` counts) has
/// been unreachable since `since_ms` and was verified dead; `hold` is that datacenter's
/// hold, if any; `witness` a replica in the same datacenter whose agent answered and
/// could not reach the primary. Also says whether a hold must be raised now.
pub fn admit(
    policy: &Policy,
    hold: Option<&Hold>,
    census: &Census,
    since_ms: u64,
    now_ms: u64,
    witness: Option<&str>,
) -> (Admit, bool) {
    if let Some(h) = hold {
        if let Some(r) = &h.released {
            return (Admit::Released { by: r.by.clone() }, false);
        }
        return (held_unless(witness), false);
    }
    if policy.is_mass(census) {
        return (held_unless(witness), true);
    }
    let settled = since_ms.saturating_add(policy.settle_ms);
    if policy.could_become_mass(census) && now_ms < settled {
        return (Admit::Settle { until_ms: settled }, false);
    }
    (Admit::Go, false)
}

fn held_unless(witness: Option<&str>) -> Admit {
    match witness {
        Some(w) => Admit::Witnessed {
            witness: w.to_owned(),
        },
        None => Admit::Held,
    }
}

/// A hold ends once none of its datacenter's primaries is unreachable (they came back
/// or were replaced).
pub fn hold_over(c: &Census) -> bool {
    c.unreachable.is_empty()
}

/// Whether one more failover may start in a datacenter with `open` running, under a
/// budget of `max` (0: no budget).
pub fn within_budget(open: u32, max: u32) -> bool {
    max == 0 || open < max
}

/// Why a release request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("datacenter is required")]
    NoDatacenter,
    #[error("datacenter is longer than 63 characters or holds control characters")]
    BadDatacenter,
    #[error(
        "reason is required: say why the hold is released (it goes into the record and the failovers' notes)"
    )]
    NoReason,
    #[error("reason is longer than 1000 bytes")]
    ReasonTooLong,
}

/// A checked release by `by` now.
pub fn release(
    datacenter: &str,
    by: &str,
    reason: &str,
    now_ms: u64,
) -> Result<Release, ReleaseError> {
    if datacenter.is_empty() {
        return Err(ReleaseError::NoDatacenter);
    }
    if datacenter.len() > 63 || datacenter.chars().any(char::is_control) {
        return Err(ReleaseError::BadDatacenter);
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ReleaseError::NoReason);
    }
    if reason.len() > 1000 {
        return Err(ReleaseError::ReasonTooLong);
    }
    Ok(Release {
        by: by.to_owned(),
        reason: reason.to_owned(),
        at_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        share_percent: 30,
        min_primaries: 3,
        window_ms: 30_000,
        settle_ms: 1_000,
    };

    fn seen(entries: &[(&str, &str, Option<u64>)]) -> BTreeMap<String, PrimarySeen> {
        entries
            .iter()
            .map(|(c, dc, since)| {
                (
                    (*c).to_owned(),
                    PrimarySeen {
                        datacenter: (*dc).to_owned(),
                        unreachable_since_ms: *since,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_census_counts_one_datacenter_and_the_window() {
        let s = seen(&[
            ("c1", "dc1", Some(100_000)),
            ("c2", "dc1", Some(50_000)),
            ("c3", "dc1", None),
            ("c4", "dc2", Some(100_000)),
        ]);
        let c = census(&s, "dc1", 100_500, 30_000);
        assert_eq!(c.primaries, 3);
        assert_eq!(c.recent, vec!["c1".to_owned()]);
        assert_eq!(c.unreachable, vec!["c1".to_owned(), "c2".to_owned()]);
    }

    #[test]
    fn mass_needs_both_the_share_and_the_minimum() {
        let c = |recent: usize, primaries: u32| Census {
            primaries,
            recent: (0..recent).map(|i| format!("c{i}")).collect(),
            unreachable: Vec::new(),
        };
        // 3 of 10 is 30 %: not more than the share.
        assert!(!P.is_mass(&c(3, 10)));
        assert!(P.is_mass(&c(4, 10)));
        // 2 of 3 is 67 % but fewer than the minimum.
        assert!(!P.is_mass(&c(2, 3)));
        assert!(P.is_mass(&c(3, 3)));
        let two = Policy {
            min_primaries: 2,
            ..P
        };
        assert!(two.is_mass(&c(2, 3)));
        assert!(!two.is_mass(&c(1, 3)));
        // 40 of 1000: the share rules.
        assert!(!P.is_mass(&c(40, 1000)));
        assert!(P.is_mass(&c(301, 1000)));
    }

    #[test]
    fn a_lone_loss_settles_then_goes() {
        let s = seen(&[
            ("c1", "dc1", Some(10_000)),
            ("c2", "dc1", None),
            ("c3", "dc1", None),
        ]);
        let c = census(&s, "dc1", 10_400, P.window_ms);
        assert_eq!(
            admit(&P, None, &c, 10_000, 10_400, None),
            (Admit::Settle { until_ms: 11_000 }, false)
        );
        let c = census(&s, "dc1", 11_000, P.window_ms);
        assert_eq!(
            admit(&P, None, &c, 10_000, 11_000, None),
            (Admit::Go, false)
        );
    }

    #[test]
    fn a_datacenter_too_small_for_a_mass_event_never_settles() {
        let s = seen(&[("c1", "dc1", Some(10_000)), ("c2", "dc2", Some(10_000))]);
        let c = census(&s, "dc1", 10_001, P.window_ms);
        assert_eq!(
            admit(&P, None, &c, 10_000, 10_001, None),
            (Admit::Go, false)
        );
    }

    #[test]
    fn a_mass_loss_raises_a_hold_that_a_witness_or_a_release_passes() {
        let s = seen(&[
            ("c1", "dc1", Some(10_000)),
            ("c2", "dc1", Some(10_300)),
            ("c3", "dc1", Some(10_600)),
        ]);
        let c = census(&s, "dc1", 11_000, P.window_ms);
        assert_eq!(
            admit(&P, None, &c, 10_000, 11_000, None),
            (Admit::Held, true)
        );
        // The cluster with a witness goes ahead, and still raises the hold for the others.
        assert_eq!(
            admit(&P, None, &c, 10_000, 11_000, Some("db2")),
            (
                Admit::Witnessed {
                    witness: "db2".into()
                },
                true
            )
        );
        let mut hold = Hold {
            raised_at_ms: 11_000,
            primaries: 3,
            unreachable: c.recent.clone(),
            released: None,
        };
        // Held while the hold stands, even once the window has passed.
        let later = census(&s, "dc1", 99_000, P.window_ms);
        assert_eq!(
            admit(&P, Some(&hold), &later, 10_000, 99_000, None),
            (Admit::Held, false)
        );
        hold.released =
            Some(release("dc1", "operator/alice", " rack is gone ", 99_500).expect("valid"));
        assert_eq!(
            hold.released.as_ref().expect("released").reason,
            "rack is gone"
        );
        assert_eq!(
            admit(&P, Some(&hold), &later, 10_000, 99_600, None),
            (
                Admit::Released {
                    by: "operator/alice".into()
                },
                false
            )
        );
        assert!(hold.describe("dc1").contains("3 of 3 primaries"));
        assert!(hold.describe("dc1").contains("released by operator/alice"));
    }

    #[test]
    fn a_hold_ends_when_no_primary_is_unreachable() {
        let s = seen(&[("c1", "dc1", None), ("c2", "dc1", Some(1))]);
        assert!(!hold_over(&census(&s, "dc1", 100_000, 1_000)));
        let s = seen(&[("c1", "dc1", None), ("c2", "dc2", Some(1))]);
        assert!(hold_over(&census(&s, "dc1", 100_000, 1_000)));
    }

    #[test]
    fn budget_and_release_checks() {
        assert!(within_budget(5, 0));
        assert!(within_budget(1, 2));
        assert!(!within_budget(2, 2));
        assert_eq!(release("", "o", "r", 0), Err(ReleaseError::NoDatacenter));
        assert_eq!(
            release("dc\n1", "o", "r", 0),
            Err(ReleaseError::BadDatacenter)
        );
        assert_eq!(release("dc1", "o", "  ", 0), Err(ReleaseError::NoReason));
        assert_eq!(
            release("dc1", "o", &"x".repeat(1001), 0),
            Err(ReleaseError::ReasonTooLong)
        );
    }

    #[test]
    fn holds_round_trip_as_json() {
        let mut h = Holds::default();
        h.holds.insert(
            "dc1".into(),
            Hold {
                raised_at_ms: 1,
                primaries: 3,
                unreachable: vec!["c1".into()],
                released: None,
            },
        );
        let text = serde_json::to_string(&h).expect("JSON");
        assert!(!text.contains("released"));
        assert_eq!(serde_json::from_str::<Holds>(&text).expect("parses"), h);
    }
}
