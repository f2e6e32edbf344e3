//! Failover readiness of the clusters this monitor owns, judged from the heartbeats it
//! already has (`altair_core::readiness`): served in `ClusterHealth` and exported as
//! metrics every few seconds, so an alert fires before the incident.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use altair_core::HostName;
use altair_core::failover::CandidateRules;
use altair_core::health::Health;
use altair_core::readiness::{Observed, Readiness, Verdict, assess};
use altair_core::topology::{HostView, infer_roles};
use tokio_util::sync::CancellationToken;

use crate::reconcile::lock;
use crate::state::{HostState, State};

/// The readiness of one cluster's hosts.
pub fn of_cluster(hosts: &BTreeMap<String, HostState>, max_lag_s: u64) -> Readiness {
    let observed: Vec<Observed> = hosts
        .iter()
        .filter_map(|(name, h)| observe(name, h))
        .collect();
    let primary = primary_of(hosts);
    let datacenter = primary
        .as_ref()
        .and_then(|p| hosts.get(p))
        .and_then(|h| h.registration.as_ref())
        .map(|r| r.datacenter.clone())
        .unwrap_or_default();
    let rules = CandidateRules {
        max_lag_s,
        primary_datacenter: datacenter,
    };
    assess(primary.as_deref(), &observed, &rules)
}

/// The host that replicates from no one and takes writes; when none does (its mysqld
/// is down), the one host that replicates from no one and did not when it last answered.
fn primary_of(hosts: &BTreeMap<String, HostState>) -> Option<String> {
    let views: Vec<HostView> = hosts
        .iter()
        .filter_map(|(name, h)| {
            let snap = h.snapshot.as_ref()?;
            let mysql = h.registration.as_ref()?.mysql.as_ref()?;
            Some(HostView {
                name: HostName::new(name.clone()).ok()?,
                mysql: format!("{}:{}", mysql.host, mysql.port),
                source: snap.source_address(),
                reachable: snap.reachable && !snap.read_only,
            })
        })
        .collect();
    if let (Some(p), _) = infer_roles(&views) {
        return Some(p.to_string());
    }
    let roots: Vec<&HostView> = views
        .iter()
        .filter(|v| {
            v.source.is_none() && !hosts.get(v.name.as_str()).is_some_and(|h| h.replicating)
        })
        .collect();
    match roots.as_slice() {
        [only] => Some(only.name.to_string()),
        _ => None,
    }
}

fn observe(name: &str, h: &HostState) -> Option<Observed> {
    let snap = h.snapshot.as_ref()?;
    let reg = h.registration.as_ref()?;
    let heard = h.detector.heard_once() && h.detector.health() != Some(Health::Unreachable);
    // A host whose mysqld is down is judged by its last position.
    let (executed, at) = match h.earlier.back() {
        Some((at, g)) if !snap.reachable => (g.clone(), *at),
        _ => (
            snap.gtid_executed.clone(),
            snap.observed_at_unix_ms.max(0) as u64,
        ),
    };
    Some(Observed {
        name: name.to_owned(),
        heard,
        healthy: heard && snap.reachable,
        // A host whose mysqld is down is judged by what it was when it last answered.
        replica: if snap.reachable {
            snap.replication.is_some()
        } else {
            h.replicating
        },
        promotion_rule: altair_proto::v1::PromotionRule::try_from(reg.promotion_rule)
            .unwrap_or_default()
            .to_core(),
        datacenter: reg.datacenter.clone(),
        server_id: snap.server_id,
        flavor: snap.core_flavor(),
        executed,
        received: snap.gtid_received.clone(),
        lag_s: snap.replication.as_ref().and_then(|r| r.seconds_behind),
        observed_at_ms: at,
        earlier: h.earlier.iter().cloned().collect(),
    })
}

/// As the API sends it.
pub fn to_proto(r: &Readiness) -> altair_proto::v1::Readiness {
    altair_proto::v1::Readiness {
        verdict: r.verdict.as_str().to_owned(),
        blocked_reason: match &r.verdict {
            Verdict::Blocked(why) => why.clone(),
            _ => String::new(),
        },
        primary: r.primary.clone().unwrap_or_default(),
        candidate: r.candidate.clone().unwrap_or_default(),
        missing_transactions: r.missing,
        missing_gtids: r.missing_gtids.clone(),
        candidate_lag_s: r.candidate_lag_s,
        salvage_possible: r.salvage_possible,
        errant: r.errant.clone().into_iter().collect(),
        unasked: r.unasked.clone(),
    }
}

/// Keeps the readiness metrics of the owned clusters current; a cluster this monitor
/// stops owning loses its series.
pub async fn export(
    state: Arc<Mutex<State>>,
    max_lag_s: u64,
    every: Duration,
    cancel: CancellationToken,
) {
    if every.is_zero() {
        return;
    }
    let mut every = tokio::time::interval(every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut exported: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => return,
        }
        let names: Vec<String> = lock(&state).clusters.keys().cloned().collect();
        for name in &names {
            // One cluster at a time under the lock: heartbeats are not held up.
            let r = {
                let st = lock(&state);
                let Some(hosts) = st.clusters.get(name) else {
                    continue;
                };
                of_cluster(hosts, max_lag_s)
            };
            crate::metrics::readiness(name, Some(&r));
        }
        let now: BTreeSet<String> = names.into_iter().collect();
        for gone in exported.difference(&now) {
            crate::metrics::readiness(gone, None);
        }
        exported = now;
    }
}
