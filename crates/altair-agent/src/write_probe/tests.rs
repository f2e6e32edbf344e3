//! The write-liveness probe's loop in process on a paused clock (STYLE §8.2), over a
//! scripted mysqld whose commits go through, hang until the round's deadline, fail with
//! an error the server answers, or wait for disk space. The bound the README states:
//! `write_stalled` within the configured stall time + 2 probe intervals of the last
//! commit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use altair_proto::v1::{MysqlSnapshot, ReplicationStatus};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::{Failure, ProbeWrite, WriteState, probe_loop};

const EVERY: Duration = Duration::from_millis(1_000);
const STALL_AFTER: Duration = Duration::from_millis(5_000);

#[derive(Clone, Copy, Debug)]
enum Commits {
    Yes,
    /// The commit never finishes: the round's deadline ends it.
    Hang,
    /// The server answers with an error (privileges, a missing table).
    Refused,
    /// Sessions wait for disk space.
    DiskFull,
}

#[derive(Clone)]
struct Mysqld {
    mode: Arc<Mutex<Commits>>,
    writes: Arc<AtomicU32>,
}

impl ProbeWrite for Mysqld {
    async fn write(&mut self, deadline: Duration) -> Result<(), Failure> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().expect("not poisoned");
        match mode {
            Commits::Yes => Ok(()),
            Commits::Hang => {
                sleep(deadline).await;
                Err(Failure::late("the probe write took too long".into()))
            }
            Commits::Refused => Err(Failure::silent("ERROR 1142: command denied".into())),
            Commits::DiskFull => Err(Failure {
                why: "1 session(s) wait for disk space".into(),
                answered: true,
                stuck: true,
            }),
        }
    }

    fn reset(&mut self) {}
}

struct Probe {
    t0: Instant,
    mysqld: Mysqld,
    state: Arc<WriteState>,
    snapshots: watch::Sender<Arc<MysqlSnapshot>>,
    cancel: CancellationToken,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn primary() -> MysqlSnapshot {
    MysqlSnapshot {
        reachable: true,
        ..Default::default()
    }
}

fn replica() -> MysqlSnapshot {
    MysqlSnapshot {
        reachable: true,
        read_only: true,
        replication: Some(ReplicationStatus::default()),
        ..Default::default()
    }
}

impl Probe {
    fn start(snapshot: MysqlSnapshot) -> Self {
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        let mysqld = Mysqld {
            mode: Arc::new(Mutex::new(Commits::Yes)),
            writes: Arc::new(AtomicU32::new(0)),
        };
        let state = Arc::new(WriteState::default());
        let cancel = CancellationToken::new();
        tokio::spawn(probe_loop(
            mysqld.clone(),
            Arc::new(Notify::new()),
            state.clone(),
            rx,
            (EVERY, STALL_AFTER),
            cancel.clone(),
        ));
        Self {
            t0: Instant::now(),
            mysqld,
            state,
            snapshots: tx,
            cancel,
        }
    }

    fn set(&self, m: Commits) {
        *self.mysqld.mode.lock().expect("not poisoned") = m;
    }

    fn at(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn stalled(&self) -> bool {
        self.state.stalled.load(Ordering::SeqCst)
    }

    /// Waits (up to `within`) until the probe reports `stalled`; when, in ms after start.
    async fn when_stalled(&self, stalled: bool, within: Duration) -> Option<u64> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.stalled() == stalled {
                return Some(self.at());
            }
            sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// What the snapshot shows once the probe's state is copied into it.
    fn filled(&self) -> MysqlSnapshot {
        let mut s = primary();
        self.state.fill(&mut s);
        s
    }
}

fn bound_ms() -> u64 {
    (STALL_AFTER + 2 * EVERY).as_millis() as u64
}

#[tokio::test(start_paused = true)]
async fn commits_that_hang_are_reported_stalled_within_the_stall_time_and_two_intervals() {
    let p = Probe::start(primary());
    sleep(Duration::from_millis(10_200)).await;
    assert!(!p.stalled());
    // The last commit went through at 10 s.
    p.set(Commits::Hang);
    let at = p
        .when_stalled(true, Duration::from_secs(30))
        .await
        .expect("reported stalled");
    assert!(
        at >= 10_000 + STALL_AFTER.as_millis() as u64,
        "stalled at {at} ms, before the stall time"
    );
    assert!(
        at <= 10_000 + bound_ms(),
        "stalled at {at} ms, past the bound"
    );
    let s = p.filled();
    assert!(s.write_stalled && s.write_stall_commits_stuck, "{s:?}");
    assert!(s.write_probe_error.contains("took too long"), "{s:?}");
    // Commits again: cleared at the next round.
    p.set(Commits::Yes);
    let back = p.at();
    let cleared = p
        .when_stalled(false, Duration::from_secs(5))
        .await
        .expect("cleared");
    assert!(
        cleared <= back + 2 * EVERY.as_millis() as u64,
        "cleared at {cleared} ms"
    );
    assert!(!p.filled().write_stalled);
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_is_a_stall_with_commits_stuck() {
    let p = Probe::start(primary());
    sleep(Duration::from_millis(3_200)).await;
    p.set(Commits::DiskFull);
    let at = p
        .when_stalled(true, Duration::from_secs(30))
        .await
        .expect("reported stalled");
    assert!(at <= 3_000 + bound_ms(), "stalled at {at} ms");
    let s = p.filled();
    assert!(s.write_stalled && s.write_stall_commits_stuck, "{s:?}");
    // A probe that times out meanwhile (SHOW MASTER STATUS behind the binlog's lock)
    // still shows the stall: mysqld answered the write probe.
    let mut timed_out = primary();
    timed_out.reachable = false;
    p.state.fill(&mut timed_out);
    assert!(timed_out.write_stalled, "{timed_out:?}");
}

#[tokio::test(start_paused = true)]
async fn an_error_the_server_answers_is_reported_but_not_as_stuck_commits() {
    // Failing over would not cure a revoked privilege: the policy acts on stuck commits.
    let p = Probe::start(primary());
    sleep(Duration::from_millis(2_200)).await;
    p.set(Commits::Refused);
    p.when_stalled(true, Duration::from_secs(30))
        .await
        .expect("reported stalled");
    let s = p.filled();
    assert!(s.write_stalled && !s.write_stall_commits_stuck, "{s:?}");
    assert!(s.write_probe_error.contains("denied"), "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_shorter_than_the_stall_time_is_not_a_stall() {
    let p = Probe::start(primary());
    sleep(Duration::from_millis(2_200)).await;
    p.set(Commits::Hang);
    sleep(Duration::from_secs(3)).await;
    p.set(Commits::Yes);
    assert_eq!(p.when_stalled(true, Duration::from_secs(30)).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_replica_is_never_probed_and_a_new_primary_starts_its_stall_clock_when_promoted() {
    let p = Probe::start(replica());
    p.set(Commits::Hang);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(
        p.mysqld.writes.load(Ordering::SeqCst),
        0,
        "a replica is not written to"
    );
    assert!(!p.stalled());
    // Promoted: probed from now on, and not stalled before the stall time has passed.
    let promoted = p.at();
    p.snapshots.send_replace(Arc::new(primary()));
    let at = p
        .when_stalled(true, Duration::from_secs(30))
        .await
        .expect("reported stalled");
    assert!(
        at >= promoted + STALL_AFTER.as_millis() as u64,
        "stalled at {at} ms, promoted at {promoted} ms"
    );
    assert!(at <= promoted + bound_ms(), "stalled at {at} ms");
    assert!(p.mysqld.writes.load(Ordering::SeqCst) > 0);
}
