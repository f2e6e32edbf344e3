//! The chaos run's faults and what each must do to the primary.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Row 3: the primary cut from its replicas only.
    PrimaryCutFromReplicas,
    /// Row 4a: the monitors cut from the primary's agent.
    MonitorsCutFromPrimaryAgent,
    /// Row 4b: the control plane cut from the primary; replicas reach it.
    ControlPlaneCutFromPrimary,
    /// Row 4c: the primary's host isolated from everyone.
    PrimaryIsolated,
    /// Row 2: `kill -9` of the primary's mysqld, host up.
    PrimaryMysqldKilled,
    /// A replica's mysqld killed.
    ReplicaMysqldKilled,
    /// Row 5: a monitor dies (restarted later).
    MonitorKilled,
    /// An orchestrator dies (the leader or not; restarted later).
    OrchestratorKilled,
    /// The primary's agent frozen (SIGSTOP) for a few seconds.
    PrimaryAgentFrozen,
    /// The primary's mysqld frozen (SIGSTOP, a VM pause or a stalled host): its agent kills
    /// it before anything is promoted; SIGCONT at the heal finds nothing to resume.
    PrimaryMysqldFrozen,
    /// Row 4a, then the primary's mysqld killed: re-verification must fail it over.
    MonitorsCutThenPrimaryKilled,
    /// {the primary + one replica} cut from {the other replica + the control plane}: the
    /// primary still reaches a replica, yet must fence itself before the other is promoted.
    PrimaryCutWithOneReplica,
    /// A host restart: the primary's mysqld killed and started again at once, as an init
    /// system would. It comes back read-only; whether it is failed over first is a race.
    /// Either way the cluster must end with a writable primary and never two.
    PrimaryRestarted,
    /// The primary's mysqld killed right after the leader orchestrator died.
    PrimaryKilledWithLeader,
    /// The primary's mysqld killed right after its cluster's owning monitor died.
    PrimaryKilledWithMonitor,
    /// The primary's and a replica's mysqld killed together: the other replica is promoted.
    PrimaryKilledWithReplica,
    /// BIND frozen (SIGSTOP), then the primary's mysqld killed; BIND resumes later: DNS
    /// moves once it answers again.
    PrimaryKilledWhileDnsHung,
    /// 10–40 % of the primary host's packets dropped at random, both ways. May fail over
    /// (a heavily lossy primary can look dead); never splits the brain.
    PrimaryLinkLossy,
    /// A monitor frozen (SIGSTOP) for the hold, then resumed.
    MonitorFrozen,
    /// The leader orchestrator frozen for the hold, then resumed: another one leads
    /// meanwhile; the resumed one must not act on what it saw before.
    LeaderFrozen,
    /// The leader orchestrator frozen, then the primary's mysqld killed: the next leader
    /// fails it over; the frozen one resumes after the failover.
    LeaderFrozenThenPrimaryKilled,
    /// Everything the primary's host sends is dropped (one way): it still hears its
    /// peers, they hear nothing from it.
    PrimaryOutboundDropped,
    /// One replica's binlog stream slowed to a trickle (`tc` on the primary) under the
    /// writes, then the primary's mysqld killed: the replica in step is promoted, never
    /// the lagging one.
    ReplicaLaggingThenPrimaryKilled,
    /// The ZooKeeper ensemble's leader killed, then the primary's mysqld: the ensemble
    /// elects another leader and the failover goes through it.
    ZkLeaderKilledThenPrimaryKilled,
    /// Two of the three ZooKeeper servers killed (quorum lost) for the hold, then started
    /// again: no fencing, no failover; the primary keeps taking writes.
    ZkQuorumLost,
    /// The filesystem under the primary's binlog filled up under the writes: it answers
    /// reads but cannot commit. The run's `[write_stall]` policy is `failover`: it is
    /// failed over once reported `write_stalled` for `failover_after_ms`.
    PrimaryDiskFull,
    /// {the primary + the monitor that owns its cluster} cut from {the replicas, the other
    /// monitors, the orchestrators, ZooKeeper, the clients} (row 4e): the owning monitor
    /// keeps its ZooKeeper session and the primary's lease. Either outcome, never two
    /// writable.
    PrimaryCutWithOwningMonitor,
}

/// The faults `make test` runs once each, before its random rounds (without
/// `ALTAIR_CHAOS_ROUNDS`): each newer kind is covered by every CI run.
pub const COVERED: [Fault; 15] = [
    Fault::PrimaryCutWithOwningMonitor,
    Fault::PrimaryDiskFull,
    Fault::ZkLeaderKilledThenPrimaryKilled,
    Fault::ZkQuorumLost,
    Fault::MonitorFrozen,
    Fault::LeaderFrozen,
    Fault::LeaderFrozenThenPrimaryKilled,
    Fault::PrimaryOutboundDropped,
    Fault::ReplicaLaggingThenPrimaryKilled,
    Fault::PrimaryRestarted,
    Fault::PrimaryKilledWithLeader,
    Fault::PrimaryKilledWithMonitor,
    Fault::PrimaryKilledWithReplica,
    Fault::PrimaryKilledWhileDnsHung,
    Fault::PrimaryLinkLossy,
];

pub const FAULTS: [Fault; 27] = [
    Fault::PrimaryCutFromReplicas,
    Fault::MonitorsCutFromPrimaryAgent,
    Fault::ControlPlaneCutFromPrimary,
    Fault::PrimaryIsolated,
    Fault::PrimaryMysqldKilled,
    Fault::ReplicaMysqldKilled,
    Fault::MonitorKilled,
    Fault::OrchestratorKilled,
    Fault::PrimaryAgentFrozen,
    Fault::PrimaryMysqldFrozen,
    Fault::MonitorsCutThenPrimaryKilled,
    Fault::PrimaryCutWithOneReplica,
    Fault::PrimaryRestarted,
    Fault::PrimaryKilledWithLeader,
    Fault::PrimaryKilledWithMonitor,
    Fault::PrimaryKilledWithReplica,
    Fault::PrimaryKilledWhileDnsHung,
    Fault::PrimaryLinkLossy,
    Fault::MonitorFrozen,
    Fault::LeaderFrozen,
    Fault::LeaderFrozenThenPrimaryKilled,
    Fault::PrimaryOutboundDropped,
    Fault::ReplicaLaggingThenPrimaryKilled,
    Fault::ZkLeaderKilledThenPrimaryKilled,
    Fault::ZkQuorumLost,
    Fault::PrimaryDiskFull,
    Fault::PrimaryCutWithOwningMonitor,
];

/// What a fault must do to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    FailOver,
    Stay,
    /// Either, once at most.
    Either,
}

impl Fault {
    pub fn expect(self) -> Expect {
        match self {
            Fault::PrimaryIsolated
            | Fault::PrimaryMysqldKilled
            | Fault::PrimaryMysqldFrozen
            | Fault::MonitorsCutThenPrimaryKilled
            | Fault::PrimaryCutWithOneReplica
            | Fault::PrimaryKilledWithLeader
            | Fault::PrimaryKilledWithMonitor
            | Fault::PrimaryKilledWithReplica
            | Fault::PrimaryKilledWhileDnsHung
            | Fault::LeaderFrozenThenPrimaryKilled
            | Fault::PrimaryOutboundDropped
            | Fault::ReplicaLaggingThenPrimaryKilled
            | Fault::ZkLeaderKilledThenPrimaryKilled
            | Fault::PrimaryDiskFull => Expect::FailOver,
            Fault::PrimaryRestarted
            | Fault::PrimaryLinkLossy
            | Fault::PrimaryCutWithOwningMonitor => Expect::Either,
            _ => Expect::Stay,
        }
    }

    pub fn fails_over(self) -> bool {
        self.expect() == Expect::FailOver
    }

    /// Acknowledged writes may be lost: the old primary's host could not be asked (its
    /// writes between the cut and its self-fence reached no survivor the control plane
    /// could reach), as in row 4c asynchronously.
    pub fn may_lose(self) -> bool {
        matches!(
            self,
            Fault::PrimaryIsolated
                | Fault::PrimaryCutWithOneReplica
                | Fault::PrimaryLinkLossy
                | Fault::PrimaryOutboundDropped
                | Fault::PrimaryCutWithOwningMonitor
        )
    }
}
