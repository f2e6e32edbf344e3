//! The monitor's per-host health state machine (DESIGN §3). Time is passed in as
//! milliseconds, so every transition is unit-tested without a clock.
//!
//! ```text
//!            heartbeat: mysql up, replication ok
//!   ┌────────────────────────────────────────────────────────────┐
//!   ▼                                                            │
//! healthy ──1 miss──▶ suspect ──N misses──▶ unreachable ─────────┤
//!   │  ▲                                                         │
//!   │  └── heartbeat ─── mysql_down / replication_broken ◀── heartbeat reports it
//! ```
//! A miss is a heartbeat interval (the agent's own) passing without a heartbeat, judged
//! `grace_ms` late. `mysql_down` and `replication_broken` come straight from the agent's
//! report; silence only ever makes a host worse (suspect, unreachable), a heartbeat is
//! the only way back.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::observe::{ObservedState, ReplicationState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Suspect,
    Unreachable,
    MysqlDown,
    ReplicationBroken,
}

impl Health {
    pub const ALL: [Health; 5] = [
        Self::Healthy,
        Self::Suspect,
        Self::Unreachable,
        Self::MysqlDown,
        Self::ReplicationBroken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Suspect => "suspect",
            Self::Unreachable => "unreachable",
            Self::MysqlDown => "mysql_down",
            Self::ReplicationBroken => "replication_broken",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// What a heartbeat carrying `state` says about the host.
    pub fn judge(state: &ObservedState) -> Self {
        if !state.mysql_reachable {
            Self::MysqlDown
        } else if matches!(state.replication, ReplicationState::Broken { .. }) {
            Self::ReplicationBroken
        } else {
            Self::Healthy
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Consecutive misses before `unreachable` (default 3).
    pub unreachable_after_misses: u32,
    /// How late a heartbeat may be before it counts as missed.
    pub grace_ms: u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            unreachable_after_misses: 3,
            grace_ms: 50,
        }
    }
}

/// A change of a host's health. `from` is `None` the first time a host is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Option<Health>,
    pub to: Health,
    pub at_ms: u64,
}

#[derive(Debug, Clone)]
pub struct HostDetector {
    health: Option<Health>,
    since_ms: u64,
    last_heard_ms: u64,
    interval_ms: u64,
    heard_once: bool,
}

impl HostDetector {
    /// Starts watching a host at `now_ms` with the full detection window ahead: a monitor
    /// that takes a cluster over never declares a host dead for heartbeats that went to
    /// the previous owner. `known` is the health already published for it, if any.
    pub fn new(now_ms: u64, interval_ms: u64, known: Option<Health>) -> Self {
        Self {
            health: known,
            since_ms: now_ms,
            last_heard_ms: now_ms,
            interval_ms: interval_ms.max(1),
            heard_once: false,
        }
    }

    pub fn health(&self) -> Option<Health> {
        self.health
    }

    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    pub fn last_heard_ms(&self) -> u64 {
        self.last_heard_ms
    }

    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    pub fn heard_once(&self) -> bool {
        self.heard_once
    }

    /// Heartbeat intervals passed without a heartbeat, as of `now_ms`.
    pub fn misses(&self, now_ms: u64, cfg: &DetectorConfig) -> u32 {
        let elapsed = now_ms.saturating_sub(self.last_heard_ms);
        let late = elapsed.saturating_sub(cfg.grace_ms);
        u32::try_from(late / self.interval_ms).unwrap_or(u32::MAX)
    }

    /// A heartbeat arrived, reporting `state`, with the agent's `interval_ms`.
    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        interval_ms: u64,
        state: &ObservedState,
    ) -> Option<Transition> {
        self.last_heard_ms = now_ms;
        self.interval_ms = interval_ms.max(1);
        self.heard_once = true;
        self.set(Health::judge(state), now_ms)
    }

    /// Time passed: judge silence.
    pub fn tick(&mut self, now_ms: u64, cfg: &DetectorConfig) -> Option<Transition> {
        let misses = self.misses(now_ms, cfg);
        if misses >= cfg.unreachable_after_misses {
            return self.set(Health::Unreachable, now_ms);
        }
        let can_suspect = matches!(
            self.health,
            None | Some(Health::Healthy | Health::ReplicationBroken)
        );
        if misses >= 1 && can_suspect {
            return self.set(Health::Suspect, now_ms);
        }
        None
    }

    /// The earliest time at which `tick` could change something, if any.
    pub fn next_deadline_ms(&self, cfg: &DetectorConfig) -> Option<u64> {
        let after = |misses: u64| self.last_heard_ms + misses * self.interval_ms + cfg.grace_ms;
        match self.health {
            Some(Health::Unreachable) => None,
            None | Some(Health::Healthy | Health::ReplicationBroken) => Some(after(1)),
            Some(Health::Suspect | Health::MysqlDown) => {
                Some(after(u64::from(cfg.unreachable_after_misses)))
            }
        }
    }

    fn set(&mut self, to: Health, now_ms: u64) -> Option<Transition> {
        if self.health == Some(to) {
            return None;
        }
        let from = self.health.replace(to);
        self.since_ms = now_ms;
        Some(Transition {
            from,
            to,
            at_ms: now_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: u64 = 10_000;

    fn up() -> ObservedState {
        ObservedState {
            mysql_reachable: true,
            read_only: false,
            replication: ReplicationState::NotReplica,
        }
    }

    fn cfg() -> DetectorConfig {
        DetectorConfig::default()
    }

    /// Ticks every 10 ms from `from` to `to`, collecting transitions.
    fn run(d: &mut HostDetector, from: u64, to: u64) -> Vec<Transition> {
        (from..=to)
            .step_by(10)
            .filter_map(|t| d.tick(t, &cfg()))
            .collect()
    }

    #[test]
    fn first_heartbeat_judges_the_host() {
        let mut d = HostDetector::new(0, I, None);
        let t = d.heartbeat(5, I, &up()).expect("first judgement");
        assert_eq!((t.from, t.to), (None, Health::Healthy));
        assert_eq!(
            d.heartbeat(I, I, &up()),
            None,
            "steady heartbeats change nothing"
        );
    }

    #[test]
    fn silence_goes_suspect_then_unreachable_after_exactly_three_intervals() {
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(0, I, &up());
        let ts = run(&mut d, 0, 40_000);
        assert_eq!(ts.len(), 2, "{ts:?}");
        assert_eq!(ts[0].to, Health::Suspect);
        assert_eq!(ts[0].at_ms, I + 50);
        assert_eq!(ts[1].to, Health::Unreachable);
        assert_eq!(ts[1].at_ms, 3 * I + 50, "3 intervals + grace");
        assert_eq!(d.next_deadline_ms(&cfg()), None);
    }

    #[test]
    fn never_unreachable_before_the_third_miss() {
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(0, I, &up());
        let ts = run(&mut d, 0, 3 * I + 40);
        assert!(ts.iter().all(|t| t.to != Health::Unreachable), "{ts:?}");
    }

    #[test]
    fn a_heartbeat_brings_an_unreachable_host_back() {
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(0, I, &up());
        run(&mut d, 0, 40_000);
        let t = d.heartbeat(41_000, I, &up()).expect("recovers");
        assert_eq!((t.from, t.to), (Some(Health::Unreachable), Health::Healthy));
    }

    #[test]
    fn mysql_down_and_broken_replication_come_from_the_report() {
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(0, I, &up());
        let t = d
            .heartbeat(100, I, &ObservedState::mysql_down())
            .expect("down");
        assert_eq!(t.to, Health::MysqlDown);
        // A mysql_down host that also goes silent is not "suspect": it stays down until
        // its agent is unreachable.
        let ts = run(&mut d, 100, 40_000);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].to, Health::Unreachable);
        let broken = ObservedState {
            replication: ReplicationState::Broken {
                source: "db1:3306".into(),
                io_running: false,
                sql_running: true,
                error: "x".into(),
            },
            ..up()
        };
        assert_eq!(
            d.heartbeat(41_000, I, &broken).map(|t| t.to),
            Some(Health::ReplicationBroken)
        );
    }

    #[test]
    fn takeover_grants_a_full_window_and_keeps_known_health() {
        // The old owner last heard the agent long ago; the new owner starts at 100_000.
        let mut d = HostDetector::new(100_000, I, Some(Health::Healthy));
        assert!(
            run(&mut d, 100_000, 100_000 + 3 * I)
                .iter()
                .all(|t| t.to != Health::Unreachable)
        );
        let mut known_down = HostDetector::new(0, I, Some(Health::Unreachable));
        assert_eq!(
            known_down.tick(5 * I, &cfg()),
            None,
            "stays unreachable, no new transition"
        );
    }

    #[test]
    fn the_agents_interval_is_used() {
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(0, 1_000, &up());
        let ts = run(&mut d, 0, 4_000);
        assert_eq!(
            ts.last().map(|t| (t.to, t.at_ms)),
            Some((Health::Unreachable, 3_050))
        );
    }
}
