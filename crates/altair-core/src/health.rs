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
//!
//! An agent may also send liveness pings between its full heartbeats (a small message
//! every second, say; its heartbeats declare the interval). Then silence is judged on
//! the ping interval — with a
//! quarter of it as grace, so ordinary jitter never reads as a miss — and a ping brings
//! a suspect or unreachable host back to what its last heartbeat reported (a change of
//! state always comes as a heartbeat at once, so that report is current).

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
    /// Reads answer, writes do not commit: alert only, unless the orchestrator's
    /// `[write_stall]` policy for the cluster is `failover` (see `failover::stall`).
    WriteStalled,
}

impl Health {
    pub const ALL: [Health; 6] = [
        Self::Healthy,
        Self::Suspect,
        Self::Unreachable,
        Self::MysqlDown,
        Self::ReplicationBroken,
        Self::WriteStalled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Suspect => "suspect",
            Self::Unreachable => "unreachable",
            Self::MysqlDown => "mysql_down",
            Self::ReplicationBroken => "replication_broken",
            Self::WriteStalled => "write_stalled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// What a heartbeat carrying `state` says about the host.
    pub fn judge(state: &ObservedState) -> Self {
        if !state.mysql_reachable {
            // Unanswered probes with evidence that mysqld runs (its agent's write probe
            // saw sessions waiting for disk space): stuck, not down.
            if state.write_stalled {
                Self::WriteStalled
            } else {
                Self::MysqlDown
            }
        } else if matches!(state.replication, ReplicationState::Broken { .. }) {
            Self::ReplicationBroken
        } else if state.write_stalled {
            Self::WriteStalled
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
    /// What the last heartbeat reported (a ping restores it).
    reported: Option<Health>,
    /// The agent's ping interval, once it pings.
    ping_ms: Option<u64>,
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
            reported: None,
            ping_ms: None,
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

    /// The agent's ping interval, when it pings.
    pub fn ping_ms(&self) -> Option<u64> {
        self.ping_ms
    }

    /// How late a message may be before it counts as missed.
    fn grace_ms(&self, cfg: &DetectorConfig) -> u64 {
        match self.ping_ms {
            Some(p) => cfg.grace_ms.max(p / 4),
            None => cfg.grace_ms,
        }
    }

    /// Intervals (ping intervals once the agent pings) passed without a word from the
    /// agent, as of `now_ms`.
    pub fn misses(&self, now_ms: u64, cfg: &DetectorConfig) -> u32 {
        let elapsed = now_ms.saturating_sub(self.last_heard_ms);
        let late = elapsed.saturating_sub(self.grace_ms(cfg));
        u32::try_from(late / self.interval_ms).unwrap_or(u32::MAX)
    }

    /// What the agent's heartbeat declares about its pings (`None`: it sends none), so
    /// silence is judged on the ping interval from its first heartbeat on — not only
    /// once a ping has arrived.
    pub fn declare_pings(&mut self, ping_ms: Option<u64>) {
        self.ping_ms = ping_ms.map(|p| p.max(1));
    }

    /// This monitor was not watching for a while (its process did not run, so its
    /// session may have expired and another monitor owned the cluster meanwhile): the
    /// heartbeats of that time may have gone to the other owner, and what this monitor
    /// heard before says nothing about them. The detection window starts again at
    /// `now_ms`, and nothing heard before is reported as the host's last heartbeat (an
    /// orchestrator dates the old primary's self-fencing from it).
    pub fn restart_window(&mut self, now_ms: u64) {
        self.last_heard_ms = now_ms;
        self.heard_once = false;
    }

    /// The agent was heard (a late duplicate this monitor still answers as accepted: the
    /// agent counts its lease from it, so silence must too).
    pub fn touch(&mut self, now_ms: u64) {
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
    }

    /// A liveness ping arrived, with the agent's ping interval. It says the agent runs,
    /// nothing about mysqld: a host silence made suspect or unreachable goes back to what
    /// its last heartbeat reported; a host not yet judged stays unjudged.
    pub fn ping(&mut self, now_ms: u64, ping_ms: u64) -> Option<Transition> {
        self.last_heard_ms = now_ms;
        self.ping_ms = Some(ping_ms.max(1));
        self.interval_ms = ping_ms.max(1);
        match (self.health, self.reported) {
            (Some(Health::Suspect | Health::Unreachable), Some(r)) => self.set(r, now_ms),
            _ => None,
        }
    }

    /// A heartbeat arrived, reporting `state`, with the agent's `interval_ms`.
    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        interval_ms: u64,
        state: &ObservedState,
    ) -> Option<Transition> {
        self.last_heard_ms = now_ms;
        // Silence is judged on the ping interval while the agent pings.
        self.interval_ms = self.ping_ms.unwrap_or(interval_ms).max(1);
        self.heard_once = true;
        let h = Health::judge(state);
        self.reported = Some(h);
        self.set(h, now_ms)
    }

    /// Time passed: judge silence.
    pub fn tick(&mut self, now_ms: u64, cfg: &DetectorConfig) -> Option<Transition> {
        let misses = self.misses(now_ms, cfg);
        if misses >= cfg.unreachable_after_misses {
            return self.set(Health::Unreachable, now_ms);
        }
        let can_suspect = matches!(
            self.health,
            None | Some(Health::Healthy | Health::ReplicationBroken | Health::WriteStalled)
        );
        if misses >= 1 && can_suspect {
            return self.set(Health::Suspect, now_ms);
        }
        None
    }

    /// The earliest time at which `tick` could change something, if any.
    pub fn next_deadline_ms(&self, cfg: &DetectorConfig) -> Option<u64> {
        let grace = self.grace_ms(cfg);
        let after = |misses: u64| {
            self.last_heard_ms
                .saturating_add(misses.saturating_mul(self.interval_ms))
                .saturating_add(grace)
        };
        match self.health {
            Some(Health::Unreachable) => None,
            None | Some(Health::Healthy | Health::ReplicationBroken | Health::WriteStalled) => {
                Some(after(1))
            }
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
            write_stalled: false,
        }
    }

    #[test]
    fn a_primary_whose_writes_stall_is_write_stalled_and_comes_back() {
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(100, I, &up());
        let stalled = ObservedState {
            write_stalled: true,
            ..up()
        };
        let t = d.heartbeat(200, I, &stalled).expect("a transition");
        assert_eq!(t.to, Health::WriteStalled);
        // Silence still makes it suspect, then unreachable, as for a healthy host.
        assert_eq!(
            d.tick(200 + I + cfg().grace_ms + 1, &cfg()).map(|t| t.to),
            Some(Health::Suspect)
        );
        d.heartbeat(I + 300, I, &stalled);
        assert_eq!(d.health(), Some(Health::WriteStalled));
        assert_eq!(
            d.heartbeat(I + 400, I, &up()).map(|t| t.to),
            Some(Health::Healthy)
        );
        // Unanswered probes are mysql_down, unless the agent saw mysqld answer while its
        // commits wait for disk space.
        let down = ObservedState::mysql_down();
        assert_eq!(Health::judge(&down), Health::MysqlDown);
        let stuck = ObservedState {
            write_stalled: true,
            ..down
        };
        assert_eq!(Health::judge(&stuck), Health::WriteStalled);
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

    #[test]
    fn pings_judge_silence_on_their_own_interval() {
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(0, I, &up());
        for t in (1_000..=5_000).step_by(1_000) {
            assert_eq!(d.ping(t, 1_000), None, "steady pings change nothing");
        }
        assert_eq!(d.interval_ms(), 1_000);
        // A full heartbeat keeps the ping interval.
        d.heartbeat(5_500, I, &up());
        assert_eq!(d.interval_ms(), 1_000);
        // Silence after the last ping at 6 s: unreachable 3 pings + a quarter later.
        d.ping(6_000, 1_000);
        let ts = run(&mut d, 6_000, 12_000);
        assert_eq!(
            ts.last().map(|t| (t.to, t.at_ms)),
            Some((Health::Unreachable, 9_250)),
            "{ts:?}"
        );
        // Jitter within a quarter interval is no miss.
        let mut d = HostDetector::new(0, I, None);
        d.heartbeat(0, I, &up());
        d.ping(1_000, 1_000);
        assert_eq!(d.tick(2_240, &cfg()), None);
    }

    #[test]
    fn a_ping_restores_what_the_last_heartbeat_said_and_never_judges_alone() {
        let mut d = HostDetector::new(0, I, None);
        assert_eq!(d.ping(10, 1_000), None, "a ping alone judges nothing");
        assert_eq!(d.health(), None);
        let down = ObservedState {
            mysql_reachable: false,
            ..up()
        };
        d.heartbeat(100, I, &down);
        assert_eq!(d.health(), Some(Health::MysqlDown));
        let ts = run(&mut d, 100, 5_000);
        assert_eq!(d.health(), Some(Health::Unreachable), "{ts:?}");
        let t = d.ping(5_100, 1_000).expect("back");
        assert_eq!(
            t.to,
            Health::MysqlDown,
            "not healthy: mysqld was reported down"
        );
    }

    #[test]
    fn declared_pings_count_from_the_first_heartbeat() {
        let mut d = HostDetector::new(0, I, None);
        d.declare_pings(Some(1_000));
        d.heartbeat(0, I, &up());
        let ts = run(&mut d, 0, 5_000);
        assert_eq!(
            ts.last().map(|t| (t.to, t.at_ms)),
            Some((Health::Unreachable, 3_250)),
            "{ts:?}"
        );
        // An agent that says it no longer pings is judged on its heartbeats again.
        d.declare_pings(None);
        d.heartbeat(6_000, I, &up());
        assert_eq!(d.interval_ms(), I);
    }
}
