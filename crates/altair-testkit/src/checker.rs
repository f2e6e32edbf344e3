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
    /// Writes acknowledged by an old primary after the new primary acknowledged one and
    /// missing from the final primary: committed on the old one after the promotion.
    pub late_old_acks: Vec<u64>,
    /// Writes whose acknowledgement from the old primary reached its client after the
    /// new primary acknowledged one, but which the final primary holds: committed before
    /// the promotion (nothing flows from an old primary to the new one after it), their
    /// acknowledgement delayed on the way (a lossy link retransmits). Not a split brain.
    pub late_delivered_acks: Vec<u64>,
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
        if !self.late_delivered_acks.is_empty() {
            eprintln!(
                "split-brain checker: {} acknowledgement(s) from the old primary reached their client after the new primary's first, for writes the new primary holds (committed before the promotion, delivered late): {:?}",
                self.late_delivered_acks.len(),
                self.late_delivered_acks
            );
        }
        assert!(
            self.late_old_acks.is_empty(),
            "split brain: the old primary acknowledged writes after the new one did, and the new one lacks them (committed after the promotion): {:?}",
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
/// `new` primary indexes, and the ids present on the new primary at the end (the final
/// one).
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
    // With no change of primary there is no "old" one to catch acknowledging late. An
    // acknowledgement's time is when its client got it, which a lossy link can delay by
    // seconds: a late one the final primary holds was committed before the promotion
    // (the new primary stopped replicating when it was promoted, and an old primary only
    // ever rejoins as its replica), so only late ones it lacks were committed after.
    if let Some(first_new) = acks
        .iter()
        .filter(|a| a.instance == new && old != new)
        .map(|a| a.at)
        .min()
    {
        let (delivered, late): (Vec<&Ack>, Vec<&Ack>) = acks
            .iter()
            .filter(|a| a.instance == old && a.at > first_new)
            .partition(|a| on_final.contains(&a.id));
        v.late_old_acks = late.iter().map(|a| a.id).collect();
        v.late_delivered_acks = delivered.iter().map(|a| a.id).collect();
    }
    v.lost = acks
        .iter()
        .filter(|a| !on_final.contains(&a.id))
        .map(|a| a.id)
        .collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: u64, instance: usize, at: Instant) -> Ack {
        Ack { id, instance, at }
    }

    #[test]
    fn a_late_acknowledgement_of_a_write_the_new_primary_holds_is_not_a_split_brain() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let acks = [
            ack(1, 0, t),
            ack(2, 1, t + ms(100)),
            // Committed on the old primary before the promotion, its OK retransmitted
            // over a lossy link: the new primary holds it.
            ack(3, 0, t + ms(300)),
            // Committed on the old primary after the promotion: the new one lacks it.
            ack(4, 0, t + ms(400)),
        ];
        let on_new = [1, 2, 3].into_iter().collect();
        let v = judge(&[], &acks, 0, 1, &on_new);
        assert_eq!(v.late_old_acks, vec![4]);
        assert_eq!(v.late_delivered_acks, vec![3]);
        assert_eq!(v.lost, vec![4]);
        // Without a change of primary nothing is late.
        let v = judge(&[], &acks, 0, 0, &on_new);
        assert!(v.late_old_acks.is_empty() && v.late_delivered_acks.is_empty());
    }
}
