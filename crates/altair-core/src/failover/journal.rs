//! The failover journal: a persisted step machine. Each step's journal is written to
//! ZooKeeper (promotion and the record wait for it; the steps before promotion need
//! not) and every step is idempotent, so a new leader resumes an interrupted failover
//! from the journal — redoing at most the idempotent steps since the last write — and
//! nothing is done twice or left half-done.

use serde::{Deserialize, Serialize};

/// The steps of a failover, in order (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Fence,
    Choose,
    CatchUp,
    Salvage,
    Promote,
    Repoint,
    Publish,
    Record,
    Done,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Fence,
        Step::Choose,
        Step::CatchUp,
        Step::Salvage,
        Step::Promote,
        Step::Repoint,
        Step::Publish,
        Step::Record,
        Step::Done,
    ];

    pub fn next(self) -> Step {
        let i = Self::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or(Self::ALL.len() - 1);
        Self::ALL[(i + 1).min(Self::ALL.len() - 1)]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fence => "fence",
            Self::Choose => "choose",
            Self::CatchUp => "catch_up",
            Self::Salvage => "salvage",
            Self::Promote => "promote",
            Self::Repoint => "repoint",
            Self::Publish => "publish",
            Self::Record => "record",
            Self::Done => "done",
        }
    }
}

/// Timing of one stage, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub error: String,
}

impl Stage {
    pub fn new(name: &str, started_at_ms: u64, finished_at_ms: u64) -> Self {
        Self {
            name: name.into(),
            started_at_ms,
            duration_ms: finished_at_ms.saturating_sub(started_at_ms),
            error: String::new(),
        }
    }
}

/// `<root>/clusters/<cluster>/failover`: the failover in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub id: String,
    pub cluster: String,
    pub epoch: u64,
    pub old_primary: String,
    /// The step to run next.
    pub step: Step,
    pub candidate: Option<String>,
    /// What triggered it (the health transition or an operator).
    pub trigger: String,
    pub started_at_ms: u64,
    /// Detection and verification happen before the journal exists; their times are
    /// carried in here for the audit record.
    pub stages: Vec<Stage>,
    pub gtids_salvaged: String,
    /// The acknowledged-or-not transactions the new primary lacks: an exact GTID set
    /// whenever the old host answered (empty: nothing lost); `unknown: …` only when it
    /// could not be asked, saying what the candidate had and when the host was last heard.
    pub gtids_lost: String,
    /// The old primary's binlog end state, as its agent read it (empty when not read).
    #[serde(default)]
    pub old_binlog_end: String,
    pub transactions_salvaged: u32,
    /// What an operator should know (an agent that did not answer, a replica left out).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The old primary's agent did not answer when fencing: its host is gone or cut off,
    /// so later steps do not wait for it again.
    #[serde(default)]
    pub old_host_unreachable: bool,
    /// Started while the old primary still answered (it was reported `write_stalled`,
    /// under a `failover` policy). For the record: the fence step decides from the old
    /// primary's health as read when its fence fails (an agent a monitor still hears
    /// holds its lease and is never left to self-fencing).
    #[serde(default)]
    pub old_primary_answered: bool,
    /// Automatic, forced by an operator, or a planned switchover.
    #[serde(default)]
    pub kind: Kind,
    /// The host an operator asked for (`--to`); `None` lets altair choose.
    #[serde(default)]
    pub target: Option<String>,
    /// The old primary's GTID position when it was fenced (a switchover waits for it).
    #[serde(default)]
    pub fenced_gtid: String,
    /// The new primary's position when it was promoted: the old primary's history past
    /// it is errant (see `gtid::errant_gtids`).
    #[serde(default)]
    pub fork_gtid: String,
    /// A switchover that failed before promotion is being rolled back (the old primary
    /// made writable again); the reason.
    #[serde(default)]
    pub aborting: Option<String>,
    /// A switchover re-attached the old primary as a replica.
    #[serde(default)]
    pub old_primary_rejoined: bool,
    /// A switchover's candidate, drained while writes still flowed; choose prefers it.
    #[serde(default)]
    pub drained: Option<String>,
    /// The pre-failover hook ran (and allowed it): a retried fence does not run it again.
    #[serde(default)]
    pub hook_ran: bool,
    /// Failures of the current step so far (reset when it succeeds).
    #[serde(default)]
    pub attempts: u32,
    /// The current step failed; it is tried again at this time (ms since the epoch).
    #[serde(default)]
    pub retry_at_ms: Option<u64>,
    /// The current step's last error.
    #[serde(default)]
    pub last_error: String,
    /// The old primary's agent did not answer the fence: nothing is promoted before its
    /// self-fence has surely fired (ms since the epoch). Choose and catch-up run meanwhile.
    #[serde(default)]
    pub promote_not_before_ms: Option<u64>,
    /// The latest time a replica's agent accepted a connection from the old primary's
    /// host, as the verification heard (the primary's self-fencing failsafe rounds end
    /// no later): what its self-fencing is dated from besides its last heartbeat.
    /// `None`: no replica said (the fence's own time is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_heard_until_ms: Option<u64>,
    /// Candidates lost before their promotion (their agent stopped answering during
    /// catch-up or salvage): read-only, not chosen again.
    #[serde(default)]
    pub lost_candidates: Vec<String>,
    /// Candidates lost during their promotion and powered off by the fence hook: they
    /// may have been writable, so they wait for a rejoin like the old primary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fenced_candidates: Vec<String>,
}

/// Why a failover runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The primary was detected and verified down.
    #[default]
    Automatic,
    /// An operator forced it (`altairctl failover`).
    Forced,
    /// A planned switchover: read-only first, nothing lost, the old primary replicates.
    Switchover,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Forced => "forced",
            Self::Switchover => "switchover",
        }
    }
}

impl Journal {
    /// A journal at the first step (`Fence`) with the stages that ran before it.
    pub fn new(
        id: String,
        cluster: String,
        epoch: u64,
        old_primary: String,
        trigger: String,
        started_at_ms: u64,
        stages: Vec<Stage>,
    ) -> Self {
        Self {
            id,
            cluster,
            epoch,
            old_primary,
            step: Step::Fence,
            candidate: None,
            trigger,
            started_at_ms,
            stages,
            gtids_salvaged: String::new(),
            gtids_lost: String::new(),
            old_binlog_end: String::new(),
            transactions_salvaged: 0,
            notes: Vec::new(),
            old_host_unreachable: false,
            old_primary_answered: false,
            kind: Kind::Automatic,
            target: None,
            fenced_gtid: String::new(),
            fork_gtid: String::new(),
            aborting: None,
            drained: None,
            old_primary_rejoined: false,
            hook_ran: false,
            attempts: 0,
            retry_at_ms: None,
            last_error: String::new(),
            promote_not_before_ms: None,
            failsafe_heard_until_ms: None,
            lost_candidates: Vec::new(),
            fenced_candidates: Vec::new(),
        }
    }

    /// Records that `step` finished (with its timing) and moves to the next.
    pub fn advance(&mut self, step: Step, started_at_ms: u64, finished_at_ms: u64) {
        self.stages
            .push(Stage::new(step.as_str(), started_at_ms, finished_at_ms));
        self.step = step.next();
        self.attempts = 0;
        self.retry_at_ms = None;
        self.last_error.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_in_order_and_end_at_done() {
        let mut s = Step::Fence;
        let mut seen = vec![s];
        while s != Step::Done {
            s = s.next();
            seen.push(s);
        }
        assert_eq!(seen, Step::ALL.to_vec());
        assert_eq!(Step::Done.next(), Step::Done);
    }

    #[test]
    fn journal_round_trips_and_records_stages() {
        let mut j = Journal::new(
            "f1".into(),
            "c1".into(),
            2,
            "db1".into(),
            "mysql_down".into(),
            100,
            Vec::new(),
        );
        j.advance(Step::Fence, 100, 130);
        assert_eq!(j.step, Step::Choose);
        assert_eq!(j.stages[0].duration_ms, 30);
        let back: Journal =
            serde_json::from_slice(&serde_json::to_vec(&j).expect("ser")).expect("de");
        assert_eq!(back, j);
    }
}
