//! What the monitor knows: the live monitors, and a health detector for every host of
//! the clusters it owns. Heartbeats and ticks change it; transitions come out.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use altair_core::gtid::GtidState;
use altair_core::health::{DetectorConfig, Health, HostDetector, Transition};
use altair_core::lag::PositionHistory;
use altair_core::registry::{HealthRecord, MonitorRecord};
use altair_core::rendezvous;
use altair_proto::v1::{HostRegistration, MysqlSnapshot};

/// Milliseconds on a monotonic clock that reads as Unix time at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix_ms: u64,
}

impl Clock {
    pub fn new() -> Self {
        let start_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            start: Instant::now(),
            start_unix_ms,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.start_unix_ms + self.start.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
pub struct HostState {
    pub detector: HostDetector,
    pub registration: Option<HostRegistration>,
    pub snapshot: Option<MysqlSnapshot>,
    pub agent_run_id: String,
    pub last_sequence: u64,
    /// Its positions before the current snapshot (observed at, gtid_executed), oldest
    /// first: readiness compares a replica with the primary as of the replica's snapshot.
    pub earlier: std::collections::VecDeque<(u64, String)>,
    /// What its mysqld said when it last answered (judging a host whose mysqld is down).
    pub last_answer: Option<LastAnswer>,
    /// Its positions while it is a writable primary, with when they arrived (this
    /// monitor's clock): what its replicas' end-to-end lag is measured against.
    pub positions: PositionHistory,
    /// A replica's end-to-end lag at its last heartbeat (`altair_core::lag`), ms.
    pub lag_ms: Option<u64>,
}

/// The parts of a host's last reachable snapshot readiness needs once mysqld is down.
#[derive(Debug, Clone)]
pub struct LastAnswer {
    pub flavor: i32,
    pub server_id: u32,
    pub replicating: bool,
    pub binlog_state: String,
    pub server_uuid: String,
}

/// Earlier positions are kept for this many of the host's heartbeat intervals (and at
/// most `EARLIER_MAX` of them): enough to pair every replica's snapshot with an older
/// one of the primary even when their intervals differ.
const EARLIER_INTERVALS: u64 = 3;
const EARLIER_MAX: usize = 32;

/// A health change to publish.
#[derive(Debug, Clone)]
pub struct Published {
    pub cluster: String,
    pub host: String,
    pub record: HealthRecord,
}

#[derive(Debug)]
pub struct State {
    pub me: String,
    pub detector: DetectorConfig,
    pub default_interval_ms: u64,
    pub monitors: Vec<MonitorRecord>,
    /// Owned clusters → host → state.
    pub clusters: HashMap<String, BTreeMap<String, HostState>>,
    /// A gap this long between two ticks means this monitor did not run (frozen, a VM
    /// stall): long enough for its ZooKeeper session to have expired and another
    /// monitor to have owned its clusters. 0: never.
    pub stall_ms: u64,
    /// When `tick` last ran.
    last_tick_ms: u64,
    /// No host's silence can change its health before this (the earliest detection
    /// deadline of any host, or earlier): `tick` scans the hosts only from then on.
    /// Whatever may bring a host's deadline earlier lowers it.
    next_due_ms: u64,
}

pub enum Ownership<'a> {
    Mine,
    Other(&'a MonitorRecord),
    Nobody,
}

impl State {
    pub fn new(me: String, detector: DetectorConfig, default_interval_ms: u64) -> Self {
        Self {
            me,
            detector,
            default_interval_ms,
            monitors: Vec::new(),
            clusters: HashMap::new(),
            stall_ms: 0,
            last_tick_ms: 0,
            next_due_ms: 0,
        }
    }

    /// A host's detector changed: its deadline `due` may be the earliest.
    fn due_at(&mut self, due: Option<u64>) {
        if let Some(due) = due {
            self.next_due_ms = self.next_due_ms.min(due);
        }
    }

    pub fn ownership(&self, cluster: &str) -> Ownership<'_> {
        let ids: Vec<&str> = self.monitors.iter().map(|m| m.id.as_str()).collect();
        match rendezvous::owner(cluster, &ids) {
            None => Ownership::Nobody,
            Some(id) if id == self.me => Ownership::Mine,
            Some(id) => self
                .monitors
                .iter()
                .find(|m| m.id == id)
                .map_or(Ownership::Nobody, Ownership::Other),
        }
    }

    /// Starts tracking `host` (a takeover or a newly registered host) with a full
    /// detection window; `known` is its published health.
    pub fn adopt(&mut self, now_ms: u64, cluster: &str, host: &str, known: Option<Health>) {
        let interval = self.default_interval_ms;
        let mut added = None;
        self.clusters
            .entry(cluster.to_owned())
            .or_default()
            .entry(host.to_owned())
            .or_insert_with(|| {
                let detector = HostDetector::new(now_ms, interval, known);
                added = Some(detector.next_deadline_ms(&self.detector));
                HostState {
                    detector,
                    registration: None,
                    snapshot: None,
                    agent_run_id: String::new(),
                    last_sequence: 0,
                    earlier: std::collections::VecDeque::new(),
                    last_answer: None,
                    positions: PositionHistory::default(),
                    lag_ms: None,
                }
            });
        if let Some(due) = added {
            self.due_at(due);
        }
    }

    /// Applies a heartbeat of an owned cluster: its heartbeat interval and the ping
    /// interval it declares (`None`: no pings).
    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        registration: HostRegistration,
        snapshot: MysqlSnapshot,
        (interval_ms, ping_ms): (u64, Option<u64>),
        run_id: &str,
        sequence: u64,
    ) -> Option<Published> {
        let (cluster, host) = registration
            .id
            .as_ref()
            .map(|id| (id.cluster.clone(), id.host.clone()))?;
        self.adopt(now_ms, &cluster, &host, None);
        let me = self.me.clone();
        let h = self.clusters.get_mut(&cluster)?.get_mut(&host)?;
        if h.agent_run_id == run_id && sequence <= h.last_sequence {
            // A late duplicate (a retry whose first try landed): answered as accepted,
            // so it counts as heard.
            h.detector.touch(now_ms);
            return None;
        }
        h.detector.declare_pings(ping_ms);
        h.agent_run_id = run_id.to_owned();
        h.last_sequence = sequence;
        let state = snapshot.observed_state();
        let transition = h.detector.heartbeat(now_ms, interval_ms, &state);
        // Its interval may have shortened, or its health changed to one judged sooner.
        let due = h.detector.next_deadline_ms(&self.detector);
        let reason = if snapshot.reachable {
            match &state.replication {
                altair_core::observe::ReplicationState::Broken { error, .. } => {
                    format!("replication broken: {error}")
                }
                _ => "heartbeat".to_owned(),
            }
        } else {
            format!("agent reports mysqld unreachable: {}", snapshot.probe_error)
        };
        h.registration = Some(registration);
        // Its agent fenced mysqld itself since its last heartbeat: the health it keeps.
        // A host this monitor has just adopted has no earlier snapshot: its fence is news
        // while it still shows (read-only, replicating from no one), not at every takeover
        // once it rejoined as a replica.
        let fenced_now = snapshot.self_fenced_at_unix_ms;
        let new_fence = match h.snapshot.as_ref() {
            Some(before) => fenced_now != before.self_fenced_at_unix_ms,
            None => snapshot.reachable && snapshot.read_only && snapshot.replication.is_none(),
        };
        let fenced_in = (fenced_now > 0 && new_fence)
            .then(|| h.detector.health().map(|at| (at, h.detector.since_ms())))
            .flatten();
        if let Some(prev) = h.snapshot.take().filter(|p| p.reachable) {
            let at = prev.observed_at_unix_ms.max(0) as u64;
            let keep_from = at.saturating_sub(EARLIER_INTERVALS * interval_ms.max(1));
            while h.earlier.len() >= EARLIER_MAX
                || h.earlier.front().is_some_and(|(t, _)| *t < keep_from)
            {
                h.earlier.pop_front();
            }
            h.earlier.push_back((at, prev.gtid_executed));
        }
        if snapshot.reachable {
            h.last_answer = Some(LastAnswer {
                flavor: snapshot.flavor,
                server_id: snapshot.server_id,
                replicating: snapshot.replication.is_some(),
                binlog_state: snapshot.gtid_binlog_state.clone(),
                server_uuid: snapshot.server_uuid.clone(),
            });
        }
        // A writable primary's positions are kept; a host that answers as anything else
        // has none (a demoted primary's history would say nothing of the new one).
        if is_writable(&snapshot) {
            h.positions.record(now_ms, &snapshot.gtid_executed);
        } else if snapshot.reachable {
            h.positions.clear();
        }
        let replica = replica_position(&snapshot);
        h.snapshot = Some(snapshot);
        self.due_at(due);
        let last = Some(now_ms);
        let published = transition
            .map(|t| published(&me, &cluster, &host, t, reason, last))
            .or_else(|| {
                // Its agent fenced mysqld itself in a lapse too short to change its
                // health: the record is written again (same health, same since) so the
                // leader looks at the cluster and reopens a primary whose lease is back.
                let (health, since) = fenced_in?;
                let t = Transition {
                    from: Some(health),
                    to: health,
                    at_ms: since,
                };
                let why = "its agent fenced mysqld itself".to_owned();
                let mut p = published(&me, &cluster, &host, t, why, last);
                p.record.self_fenced_at_unix_ms = u64::try_from(fenced_now).ok();
                Some(p)
            });
        if let Some(hosts) = self.clusters.get_mut(&cluster) {
            // Measured against the host it replicates from, while that one is a writable
            // primary still heard (a dead primary's last positions say nothing of the
            // one the replica follows after a failover).
            // A source named otherwise than its registration (a DNS name, another
            // address) falls back to the one writable primary still heard, if exactly one.
            let yardstick = |p: &&HostState| {
                p.snapshot.as_ref().is_some_and(is_writable)
                    && p.detector.health() != Some(Health::Unreachable)
            };
            let lag = replica.and_then(|(source, have)| {
                let named = hosts.values().find(|p| {
                    p.registration
                        .as_ref()
                        .and_then(|r| r.mysql.as_ref())
                        .is_some_and(|m| m.host == source.host && m.port == source.port)
                });
                let from = match named {
                    Some(p) => Some(p).filter(yardstick),
                    None => {
                        let mut writable = hosts.values().filter(yardstick);
                        writable.next().filter(|_| writable.next().is_none())
                    }
                };
                from.and_then(|p| p.positions.lag(&have, now_ms).ms())
            });
            if let Some(h) = hosts.get_mut(&host) {
                h.lag_ms = lag;
            }
        }
        published
    }

    /// Applies a liveness ping of an owned cluster's tracked host; `None` when the host
    /// is not tracked yet (its first heartbeat registers it) or the ping is stale.
    pub fn ping(
        &mut self,
        now_ms: u64,
        cluster: &str,
        host: &str,
        interval_ms: u64,
        run_id: &str,
        sequence: u64,
    ) -> Option<Option<Published>> {
        let me = self.me.clone();
        let h = self.clusters.get_mut(cluster)?.get_mut(host)?;
        if run_id.is_empty() || h.agent_run_id != run_id {
            return None; // a ping from a run whose first heartbeat has not come yet
        }
        if sequence <= h.last_sequence {
            h.detector.touch(now_ms);
            return Some(None); // late: a newer message was heard
        }
        h.last_sequence = sequence;
        let transition = h.detector.ping(now_ms, interval_ms);
        let due = h.detector.next_deadline_ms(&self.detector);
        self.due_at(due);
        Some(transition.map(|t| {
            published(
                &me,
                cluster,
                host,
                t,
                "liveness ping".to_owned(),
                Some(now_ms),
            )
        }))
    }

    /// Judges silence everywhere.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Published> {
        let gap = now_ms.saturating_sub(self.last_tick_ms);
        let stalled = self.stall_ms > 0 && self.last_tick_ms > 0 && gap >= self.stall_ms;
        self.last_tick_ms = now_ms;
        if stalled {
            // Silence while this monitor did not run is not the hosts': their heartbeats
            // may have gone to another owner (whose leases this monitor cannot date).
            tracing::warn!(
                stalled_ms = gap,
                "this monitor did not run for a while (frozen?): every host's detection window starts again, silence during the stall is not judged"
            );
            for h in self
                .clusters
                .values_mut()
                .flat_map(|hosts| hosts.values_mut())
            {
                h.detector.restart_window(now_ms);
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        // Nothing can be due yet: no scan (10,000 hosts every 20 ms cost ~a tenth of a core).
        if now_ms < self.next_due_ms {
            return out;
        }
        let mut next_due = u64::MAX;
        for (cluster, hosts) in &mut self.clusters {
            for (host, h) in hosts.iter_mut() {
                let misses = h.detector.misses(now_ms, &self.detector);
                if let Some(t) = h.detector.tick(now_ms, &self.detector) {
                    let reason = format!(
                        "{misses} heartbeat(s) missed (interval {} ms)",
                        h.detector.interval_ms()
                    );
                    let last = h.detector.heard_once().then(|| h.detector.last_heard_ms());
                    out.push(published(&self.me, cluster, host, t, reason, last));
                }
                if let Some(due) = h.detector.next_deadline_ms(&self.detector) {
                    next_due = next_due.min(due);
                }
            }
        }
        self.next_due_ms = next_due;
        out
    }

    /// Drops the clusters this monitor no longer owns; returns their names.
    /// Stops tracking the hosts of `cluster` that ZooKeeper no longer lists (an operator
    /// forgot them) and that have not been heard for 3 heartbeat intervals (a new host's
    /// first heartbeat may come before its registration). Returns them.
    pub fn drop_unlisted(&mut self, now_ms: u64, cluster: &str, listed: &[String]) -> Vec<String> {
        let Some(hosts) = self.clusters.get_mut(cluster) else {
            return Vec::new();
        };
        let gone: Vec<String> = hosts
            .iter()
            .filter(|(name, h)| {
                !listed.contains(name)
                    && now_ms.saturating_sub(h.detector.last_heard_ms())
                        > 3 * h.detector.interval_ms()
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            hosts.remove(name);
        }
        gone
    }

    pub fn release_foreign(&mut self) -> Vec<String> {
        let foreign: Vec<String> = self
            .clusters
            .keys()
            .filter(|c| !matches!(self.ownership(c), Ownership::Mine))
            .cloned()
            .collect();
        for c in &foreign {
            self.clusters.remove(c);
        }
        foreign
    }
}

/// A replica's source and everything it holds (executed or applied: a replica restored
/// from a backup may lack idle domains in its binlog position but not in its applied
/// one); `None` for a host that is no replica or whose position does not parse.
fn replica_position(s: &MysqlSnapshot) -> Option<(altair_proto::v1::Endpoint, GtidState)> {
    if !s.reachable {
        return None;
    }
    let source = s.replication.as_ref()?.source.clone()?;
    let flavor = s.core_flavor();
    let executed = GtidState::parse(flavor, &s.gtid_executed).ok()?;
    let have = match GtidState::parse(flavor, &s.gtid_applied) {
        Ok(applied) => executed.union(&applied).unwrap_or(executed),
        Err(_) => executed,
    };
    Some((source, have))
}

/// A primary taking writes, as its agent last saw it.
fn is_writable(s: &MysqlSnapshot) -> bool {
    s.reachable && !s.read_only && s.replication.is_none()
}

fn published(
    me: &str,
    cluster: &str,
    host: &str,
    t: Transition,
    reason: String,
    last_heartbeat: Option<u64>,
) -> Published {
    Published {
        cluster: cluster.to_owned(),
        host: host.to_owned(),
        record: HealthRecord {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
            health: t.to,
            previous: t.from,
            since_unix_ms: t.at_ms,
            monitor: me.to_owned(),
            reason,
            last_heartbeat_unix_ms: last_heartbeat,
            self_fenced_at_unix_ms: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use altair_proto::v1::{Endpoint, HostRef, ReplicationStatus};

    fn endpoint(host: &str) -> Endpoint {
        Endpoint {
            host: format!("{host}.example"),
            port: 3306,
        }
    }

    fn registration(host: &str) -> HostRegistration {
        HostRegistration {
            id: Some(HostRef {
                cluster: "c1".into(),
                host: host.into(),
            }),
            mysql: Some(endpoint(host)),
            ..HostRegistration::default()
        }
    }

    fn snapshot(gtid: &str, replica: bool) -> MysqlSnapshot {
        MysqlSnapshot {
            reachable: true,
            read_only: replica,
            gtid_executed: gtid.into(),
            replication: replica.then(|| ReplicationStatus {
                source: Some(endpoint("db1")),
                io_running: true,
                sql_running: true,
                seconds_behind: Some(0),
                ..ReplicationStatus::default()
            }),
            ..MysqlSnapshot::default()
        }
    }

    fn beat(s: &mut State, now: u64, host: &str, gtid: &str, replica: bool, seq: u64) {
        s.heartbeat(
            now,
            registration(host),
            snapshot(gtid, replica),
            (1_000, None),
            "run",
            seq,
        );
    }

    /// Ticks skipped before the next deadline judge exactly as a scan on every tick
    /// would: two states fed the same random heartbeats (intervals changing, pings
    /// declared or not, hosts going silent), pings and adoptions; the reference scans
    /// every tick.
    #[test]
    fn ticks_skipped_until_a_deadline_judge_as_scanning_every_tick() {
        let mut fast = State::new("m1".into(), DetectorConfig::default(), 5_000);
        let mut slow = State::new("m1".into(), DetectorConfig::default(), 5_000);
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let hosts = ["db1", "db2", "db3", "db4", "db5"];
        let mut seq = 0;
        let (mut now, mut transitions) = (1_000, 0);
        for _ in 0..100_000 {
            now += 20;
            seq += 1;
            let host = hosts[rand(hosts.len() as u64) as usize];
            match rand(200) {
                0..=3 => {
                    let interval = [200, 1_000, 5_000][rand(3) as usize];
                    let pings = [None, Some(100), Some(300)][rand(3) as usize];
                    let snap = match rand(4) {
                        0 => MysqlSnapshot::default(), // mysqld unreachable
                        1 => snapshot("0-1-1", true),
                        _ => snapshot("0-1-1", false),
                    };
                    for s in [&mut fast, &mut slow] {
                        s.heartbeat(
                            now,
                            registration(host),
                            snap.clone(),
                            (interval, pings),
                            "run",
                            seq,
                        );
                    }
                }
                4..=6 => {
                    let interval = [100, 300][rand(2) as usize];
                    for s in [&mut fast, &mut slow] {
                        s.ping(now, "c1", host, interval, "run", seq);
                    }
                }
                7 => {
                    let known =
                        [None, Some(Health::Healthy), Some(Health::Suspect)][rand(3) as usize];
                    for s in [&mut fast, &mut slow] {
                        s.adopt(now, "c2", host, known);
                    }
                }
                _ => {}
            }
            slow.next_due_ms = 0;
            let key = |p: &Published| (p.cluster.clone(), p.host.clone(), p.record.health.as_str());
            // (Clusters are a HashMap: the order of one tick's transitions is not kept.)
            let (a, b) = (fast.tick(now), slow.tick(now));
            let (a, b): (Vec<_>, Vec<_>) =
                (a.iter().map(key).collect(), b.iter().map(key).collect());
            let (mut a, mut b) = (a, b);
            a.sort();
            b.sort();
            assert_eq!(a, b, "at {now} ms");
            transitions += a.len();
        }
        assert!(transitions > 100, "silence judged {transitions} times only");
    }

    #[test]
    fn a_host_adopted_while_nothing_was_due_is_judged_on_time() {
        let mut s = State::new("m1".into(), DetectorConfig::default(), 1_000);
        assert!(s.tick(100).is_empty(), "no host: nothing ever due");
        s.adopt(200, "c1", "db1", Some(Health::Healthy));
        assert!(s.tick(1_240).is_empty(), "within its window");
        let t = s.tick(1_260);
        assert_eq!(t.len(), 1, "one interval + grace after adoption");
        assert_eq!(t[0].record.health, Health::Suspect);
    }

    fn lag(s: &State, host: &str) -> Option<u64> {
        s.clusters["c1"][host].lag_ms
    }

    #[test]
    fn a_replica_lags_by_the_age_of_the_primarys_oldest_position_it_lacks() {
        let mut s = State::new("m1".into(), DetectorConfig::default(), 1_000);
        beat(&mut s, 1_000, "db1", "0-1-10", false, 1);
        beat(&mut s, 1_100, "db2", "0-1-10", true, 1);
        assert_eq!(lag(&s, "db2"), Some(0), "caught up");
        beat(&mut s, 2_000, "db1", "0-1-20", false, 2);
        beat(&mut s, 3_000, "db1", "0-1-30", false, 3);
        beat(&mut s, 6_000, "db2", "0-1-15", true, 2);
        assert_eq!(lag(&s, "db2"), Some(4_000), "lacks 0-1-20, seen at 2,000");
        assert_eq!(lag(&s, "db1"), None, "the primary has no lag");
    }

    #[test]
    fn a_replica_is_measured_against_its_own_source_only() {
        let mut s = State::new("m1".into(), DetectorConfig::default(), 1_000);
        // db1 was the primary and fell silent; db2 took over (writable, its own
        // positions); db3 replicates from db1 still (its snapshot says so).
        beat(&mut s, 1_000, "db1", "0-1-10", false, 1);
        let mut db2 = snapshot("0-2-50", false);
        db2.gtid_executed = "0-2-50".into();
        s.heartbeat(2_000, registration("db2"), db2, (1_000, None), "run", 1);
        beat(&mut s, 2_100, "db3", "0-1-10", true, 1);
        assert_eq!(lag(&s, "db3"), Some(0), "in step with db1, its source");
        // db1 unheard long enough to be unreachable: its positions are no yardstick.
        let _ = s.tick(10_000);
        beat(&mut s, 10_100, "db3", "0-1-10", true, 2);
        assert_eq!(lag(&s, "db3"), None, "its source is unreachable");
    }

    #[test]
    fn a_demoted_primary_keeps_no_positions() {
        let mut s = State::new("m1".into(), DetectorConfig::default(), 1_000);
        beat(&mut s, 1_000, "db1", "0-1-10", false, 1);
        beat(&mut s, 2_000, "db1", "0-1-10", true, 2);
        assert!(
            s.clusters["c1"]["db1"].positions.is_empty(),
            "db1's positions kept"
        );
        beat(&mut s, 2_100, "db2", "0-1-5", true, 1);
        assert_eq!(lag(&s, "db2"), None, "no writable primary known");
    }

    #[test]
    fn silence_while_this_monitor_did_not_run_is_not_judged() {
        let mut s = State::new("m1".into(), DetectorConfig::default(), 1_000);
        s.stall_ms = 2_000;
        beat(&mut s, 1_000, "db1", "0-1-10", false, 1);
        assert!(s.tick(1_020).is_empty());
        // Frozen for 6 s: its session expired and another monitor owned the cluster,
        // taking db1's heartbeats (and granting its lease) meanwhile.
        assert!(
            s.tick(7_000).is_empty(),
            "judged a silence it did not watch"
        );
        // The window starts again: a miss a full interval after the stall, unreachable
        // after three, and no heartbeat from before the stall reported as the last.
        let suspect = s.tick(8_100);
        assert_eq!(suspect.len(), 1);
        assert_eq!(suspect[0].record.health, Health::Suspect);
        let down: Vec<_> = (8_120..=10_200)
            .step_by(20)
            .flat_map(|t| s.tick(t))
            .collect();
        assert_eq!(down.len(), 1, "{down:?}");
        assert_eq!(down[0].record.health, Health::Unreachable);
        assert!(down[0].record.since_unix_ms >= 10_000);
        assert_eq!(
            down[0].record.last_heartbeat_unix_ms, None,
            "a heartbeat heard before the stall dates the self-fencing too early"
        );

        // Without the stall rule the stale silence is judged at once.
        let mut old = State::new("m1".into(), DetectorConfig::default(), 1_000);
        beat(&mut old, 1_000, "db1", "0-1-10", false, 1);
        let _ = old.tick(1_020);
        let stale = old.tick(7_000);
        assert_eq!(stale[0].record.health, Health::Unreachable);
        assert_eq!(stale[0].record.last_heartbeat_unix_ms, Some(1_000));
    }

    /// A primary whose agent fenced mysqld itself in a lapse too short to change its
    /// health is published again (same health, same since): the leader's only cue to
    /// reopen it. Once per fence, not at every heartbeat after it.
    #[test]
    fn a_self_fence_its_monitor_never_judged_is_published_once() {
        let mut s = State::new("m1".into(), DetectorConfig::default(), 1_000);
        let first = s.heartbeat(
            1_000,
            registration("db1"),
            snapshot("0-1-10", false),
            (1_000, None),
            "run",
            1,
        );
        let healthy = first.expect("first health").record;
        let mut fenced = snapshot("0-1-10", true);
        fenced.replication = None;
        fenced.self_fenced_at_unix_ms = 1_500;
        let again = s
            .heartbeat(
                2_000,
                registration("db1"),
                fenced.clone(),
                (1_000, None),
                "run",
                2,
            )
            .expect("the self-fence published");
        assert_eq!(again.record.health, Health::Healthy);
        assert_eq!(again.record.since_unix_ms, healthy.since_unix_ms);
        assert!(
            again.record.reason.contains("fenced mysqld itself"),
            "{}",
            again.record.reason
        );
        assert!(
            s.heartbeat(
                3_000,
                registration("db1"),
                fenced.clone(),
                (1_000, None),
                "run",
                3
            )
            .is_none(),
            "published again for the same fence"
        );
        fenced.self_fenced_at_unix_ms = 9_000;
        assert!(
            s.heartbeat(4_000, registration("db1"), fenced, (1_000, None), "run", 4)
                .is_some(),
            "a second fence not published"
        );
        // A monitor taking the cluster over hears of a fence whose host has rejoined as a
        // replica since: not news.
        let mut took_over = State::new("m2".into(), DetectorConfig::default(), 1_000);
        took_over.adopt(100_000, "c1", "db1", Some(Health::Healthy));
        let mut old = snapshot("0-1-10", true);
        old.self_fenced_at_unix_ms = 1_500;
        assert!(
            took_over
                .heartbeat(
                    100_500,
                    registration("db1"),
                    old.clone(),
                    (1_000, None),
                    "run",
                    7
                )
                .is_none(),
            "an old fence published at a takeover"
        );
        // One whose host is still fenced (read-only, replicating from no one) is.
        let mut other = State::new("m2".into(), DetectorConfig::default(), 1_000);
        other.adopt(100_000, "c1", "db1", Some(Health::Healthy));
        old.replication = None;
        assert!(
            other
                .heartbeat(100_500, registration("db1"), old, (1_000, None), "run", 7)
                .is_some(),
            "a recent fence not published at a takeover"
        );
    }
}
