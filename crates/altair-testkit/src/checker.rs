//! The split-brain checker: samples every instance's `read_only` every 25 ms over its unix
//! socket (which reaches a host even when its network is cut), and judges a workload's
//! acknowledged writes. After a scenario it asserts what DESIGN §1 promises: never two
//! writable instances at once, no write acknowledged by the old primary after the new one
//! acknowledged one, every acknowledged write on the final primary (or listed as lost).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use crate::mariadb::MariaDbCluster;

const SAMPLE_EVERY: Duration = Duration::from_millis(25);

/// One sampling round: for each instance, `Some(writable)` or `None` (unreachable).
#[derive(Debug, Clone)]
pub struct Round {
    pub at: Instant,
    pub writable: Vec<Option<bool>>,
}

/// Samples until dropped or stopped.
pub struct ReadOnlySampler {
    rounds: Arc<Mutex<Vec<Round>>>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ReadOnlySampler {
    pub fn start(cluster: &MariaDbCluster) -> Self {
        let opts: Vec<mysql_async::Opts> = cluster
            .instances()
            .iter()
            .map(|i| i.socket_opts())
            .collect();
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let (r, c) = (rounds.clone(), cancel.clone());
        let task = tokio::spawn(async move {
            let mut conns: Vec<Option<mysql_async::Conn>> = opts.iter().map(|_| None).collect();
            let mut ticker = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = c.cancelled() => return,
                }
                let mut writable = Vec::with_capacity(opts.len());
                for (i, o) in opts.iter().enumerate() {
                    writable.push(sample(&mut conns[i], o).await);
                }
                if let Ok(mut v) = r.lock() {
                    v.push(Round {
                        at: Instant::now(),
                        writable,
                    });
                }
            }
        });
        Self {
            rounds,
            cancel,
            task: Some(task),
        }
    }

    /// Stops sampling and returns the rounds.
    pub async fn stop(mut self) -> Vec<Round> {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.rounds.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for ReadOnlySampler {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn sample(conn: &mut Option<mysql_async::Conn>, opts: &mysql_async::Opts) -> Option<bool> {
    if conn.is_none() {
        *conn = tokio::time::timeout(
            Duration::from_millis(200),
            mysql_async::Conn::new(opts.clone()),
        )
        .await
        .ok()
        .and_then(Result::ok);
    }
    let c = conn.as_mut()?;
    match tokio::time::timeout(
        Duration::from_millis(200),
        c.query_first::<i64, _>("SELECT @@read_only"),
    )
    .await
    {
        Ok(Ok(Some(ro))) => Some(ro == 0),
        _ => {
            // Never reuse a connection after a failed or timed-out query.
            *conn = None;
            None
        }
    }
}

/// One acknowledged write: its id, the instance index that acknowledged it, and when.
#[derive(Debug, Clone)]
pub struct Ack {
    pub id: u64,
    pub instance: usize,
    pub at: Instant,
}

/// The verdict of one scenario.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Rounds in which two or more instances were writable.
    pub two_writable: Vec<String>,
    /// Writes acknowledged by an old primary after the new primary acknowledged one.
    pub late_old_acks: Vec<u64>,
    /// Acknowledged ids missing from the final primary.
    pub lost: Vec<u64>,
    pub rounds: usize,
    pub max_gap_ms: u128,
}

impl Verdict {
    /// Panics on split brain, on lost acknowledged writes (unless `allow_loss`), or when
    /// the sampler fell behind (rounds more than 250 ms apart prove nothing).
    pub fn assert_clean(&self, allow_loss: bool) {
        eprintln!(
            "split-brain checker: {} rounds, largest gap {} ms",
            self.rounds, self.max_gap_ms
        );
        assert!(
            self.max_gap_ms <= 250,
            "the sampler fell behind: {} ms between rounds",
            self.max_gap_ms
        );
        assert!(
            self.two_writable.is_empty(),
            "split brain: two writable instances at once: {:?}",
            self.two_writable
        );
        assert!(
            self.late_old_acks.is_empty(),
            "split brain: the old primary acknowledged writes after the new one did: {:?}",
            self.late_old_acks
        );
        if !allow_loss {
            assert!(
                self.lost.is_empty(),
                "acknowledged writes lost: {:?}",
                self.lost
            );
        }
    }
}

/// Judges a scenario: `rounds` from the sampler, `acks` from the workload, `old` and
/// `new` primary indexes, and the ids present on the final primary.
pub fn judge(
    rounds: &[Round],
    acks: &[Ack],
    old: usize,
    new: usize,
    on_final: &std::collections::BTreeSet<u64>,
) -> Verdict {
    let mut v = Verdict {
        rounds: rounds.len(),
        ..Verdict::default()
    };
    for w in rounds.windows(2) {
        v.max_gap_ms = v
            .max_gap_ms
            .max(w[1].at.duration_since(w[0].at).as_millis());
    }
    for r in rounds {
        let writable: Vec<usize> = r
            .writable
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == Some(true))
            .map(|(i, _)| i)
            .collect();
        if writable.len() > 1 {
            v.two_writable.push(format!(
                "{writable:?} at +{:?}",
                r.at.duration_since(rounds[0].at)
            ));
        }
    }
    // With no change of primary there is no "old" one to catch acknowledging late.
    if let Some(first_new) = acks
        .iter()
        .filter(|a| a.instance == new && old != new)
        .map(|a| a.at)
        .min()
    {
        v.late_old_acks = acks
            .iter()
            .filter(|a| a.instance == old && a.at > first_new)
            .map(|a| a.id)
            .collect();
    }
    v.lost = acks
        .iter()
        .filter(|a| !on_final.contains(&a.id))
        .map(|a| a.id)
        .collect();
    v
}
