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

/// What readiness judges one cluster by, copied out of the monitor's state (so the
/// judgement itself runs without the state lock).
pub struct Inputs {
    primary: Option<String>,
    observed: Vec<Observed>,
    /// Hosts tracked but not heard from yet (after a takeover or a restart).
    silent: Vec<String>,
    datacenter: String,
}

/// Copies what `judge` needs from one cluster's hosts (under the state lock).
pub fn inputs(hosts: &BTreeMap<String, HostState>) -> Inputs {
    let primary = primary_of(hosts);
    let observed = hosts
        .iter()
        .filter_map(|(name, h)| observe(name, h, primary.as_deref() == Some(name.as_str())))
        .collect();
    let silent = hosts
        .iter()
        .filter(|(_, h)| h.snapshot.is_none())
        .map(|(name, _)| name.clone())
        .collect();
    let datacenter = primary
        .as_ref()
        .and_then(|p| hosts.get(p))
        .and_then(|h| h.registration.as_ref())
        .map(|r| r.datacenter.clone())
        .unwrap_or_default();
    Inputs {
        primary,
        observed,
        silent,
        datacenter,
    }
}

/// The readiness of one cluster. No lag limit: when a primary dies its replicas report
/// no lag (their IO threads lost it), and the orchestrator applies its limit only to a
/// replica that still reports one, so a lagging replica is still promoted after its
/// catch-up. The lag is reported.
pub fn judge(i: Inputs) -> Readiness {
    let rules = CandidateRules {
        max_lag_s: u64::MAX,
        primary_datacenter: i.datacenter,
    };
    let mut r = assess(i.primary.as_deref(), &i.observed, &rules);
    r.unasked.extend(i.silent);
    r.unasked.sort();
    r
}

/// The host that replicates from no one and takes writes; when none does (its mysqld
/// is down), the one host that replicated from no one when its mysqld last answered.
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
    let roots: Vec<&str> = hosts
        .iter()
        .filter(|(_, h)| h.last_answer.as_ref().is_some_and(|a| !a.replicating))
        .map(|(name, _)| name.as_str())
        .collect();
    match roots.as_slice() {
        [only] => Some((*only).to_owned()),
        _ => None,
    }
}

fn observe(name: &str, h: &HostState, is_primary: bool) -> Option<Observed> {
    let snap = h.snapshot.as_ref()?;
    let reg = h.registration.as_ref()?;
    let heard = h.detector.heard_once() && h.detector.health() != Some(Health::Unreachable);
    // A host whose mysqld is down is judged by what it said when it last answered.
    let last = h.last_answer.as_ref().filter(|_| !snap.reachable);
    let (executed, at) = match h.earlier.back() {
        Some((at, g)) if !snap.reachable => (g.clone(), *at),
        _ => (
            snap.gtid_executed.clone(),
            snap.observed_at_unix_ms.max(0) as u64,
        ),
    };
    let flavor = last.map_or(snap.flavor, |l| l.flavor);
    Some(Observed {
        name: name.to_owned(),
        heard,
        healthy: heard && snap.reachable,
        replica: last.map_or(snap.replication.is_some(), |l| l.replicating),
        promotion_rule: altair_proto::v1::PromotionRule::try_from(reg.promotion_rule)
            .unwrap_or_default()
            .to_core(),
        datacenter: reg.datacenter.clone(),
        server_id: last.map_or(snap.server_id, |l| l.server_id),
        flavor: if flavor == altair_proto::v1::Flavor::Mysql as i32 {
            altair_core::gtid::Flavor::Mysql
        } else {
            altair_core::gtid::Flavor::MariaDb
        },
        executed,
        received: snap.gtid_received.clone(),
        binlog_state: last.map_or_else(
            || snap.gtid_binlog_state.clone(),
            |l| l.binlog_state.clone(),
        ),
        server_uuid: last.map_or_else(|| snap.server_uuid.clone(), |l| l.server_uuid.clone()),
        lag_s: snap.replication.as_ref().and_then(|r| r.seconds_behind),
        observed_at_ms: at,
        // Only the primary's history is compared against.
        earlier: if is_primary {
            h.earlier.iter().cloned().collect()
        } else {
            Vec::new()
        },
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

/// How often series of hosts no longer tracked are removed when readiness is not judged
/// (`monitor.readiness_interval_ms = 0`).
const TIDY_EVERY: Duration = Duration::from_secs(5);

/// Keeps the readiness metrics of the owned clusters current (`every`; zero: never) and
/// removes the series of clusters and hosts this monitor stops tracking. A panic in one
/// round is logged and the loop restarts.
pub async fn export(state: Arc<Mutex<State>>, every: Duration, cancel: CancellationToken) {
    let judge = !every.is_zero();
    let every = if judge { every } else { TIDY_EVERY };
    loop {
        let round = tokio::spawn(export_loop(state.clone(), every, judge, cancel.clone()));
        match round.await {
            Err(e) if e.is_panic() => {
                tracing::error!(error = %e, "the readiness exporter panicked; restarting it");
                tokio::time::sleep(every).await;
            }
            _ => return,
        }
    }
}

async fn export_loop(
    state: Arc<Mutex<State>>,
    every: Duration,
    judge_readiness: bool,
    cancel: CancellationToken,
) {
    let mut every = tokio::time::interval(every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut exported: BTreeSet<String> = BTreeSet::new();
    let mut lags: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => return,
        }
        // No end-to-end lag series left for a host or cluster no longer tracked (each
        // heartbeat sets its host's).
        let seen: BTreeSet<(String, String)> = lock(&state)
            .clusters
            .iter()
            .flat_map(|(c, hosts)| hosts.keys().map(move |h| (c.clone(), h.clone())))
            .collect();
        for (c, h) in lags.difference(&seen) {
            crate::metrics::replication_lag(c, h, None);
        }
        lags = seen;
        if !judge_readiness {
            continue;
        }
        let names: Vec<String> = lock(&state).clusters.keys().cloned().collect();
        for name in &names {
            // Copied under the lock one cluster at a time; judged without it.
            let Some(i) = lock(&state).clusters.get(name).map(inputs) else {
                continue;
            };
            crate::metrics::readiness(name, Some(&judge(i)));
        }
        let now: BTreeSet<String> = names.into_iter().collect();
        for gone in exported.difference(&now) {
            crate::metrics::readiness(gone, None);
        }
        exported = now;
    }
}
