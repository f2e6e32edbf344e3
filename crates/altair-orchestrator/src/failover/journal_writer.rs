//! The journal written behind the steps. A step's journal is kept, not sent: the next
//! write waits for a point where the failover must not go on without it — promotion
//! (the candidate, its catch-up and the salvage accounting must survive this leader
//! before a host becomes writable) and every way out of the pass (a retry, a roll-back,
//! an abort, a wait) — or for a step that runs longer than [`WRITE_BEHIND`], so that
//! `altairctl status` and a successor never see a journal staler than that. The record
//! deletes the journal in its own write, so a journal kept at the record is dropped. The
//! journal of a done promotion (its fork point) is sent at once but not waited for. A
//! fast failover thus writes four times and waits for three (start, before promotion,
//! record): in a storm, where each write waits for ZooKeeper's fsync behind everyone
//! else's (and a session's reads wait behind its writes), that is most of the time
//! between steps. A leader that dies
//! in between leaves an older step in the journal: its successor redoes the steps after
//! it, which are idempotent (fence, choose, catch-up, salvage; promotion is never passed
//! unwritten; a promotion redone for the same epoch answers the fork point it read
//! first).

use std::time::Duration;

use altair_core::failover::Journal;
use altair_core::registry::to_json;
use altair_zk::{Op, ZkError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ctx::Ctx;

/// The longest a step runs on a journal older than its own.
pub(super) const WRITE_BEHIND: Duration = Duration::from_millis(500);

pub(super) struct JournalWriter {
    ctx: Ctx,
    path: String,
    in_flight: Option<JoinHandle<Result<(), ZkError>>>,
    /// A write that failed while a step ran (reported at the next `submit` or `flush`).
    failed: Option<ZkError>,
    kept: Option<Journal>,
    /// When the journal in ZooKeeper was last brought up to date (or read).
    sent_at: Instant,
}

impl JournalWriter {
    /// `path` holds the journal as the failover starts (just written, or just read).
    pub(super) fn new(ctx: &Ctx, path: String) -> Self {
        Self {
            ctx: ctx.clone(),
            path,
            in_flight: None,
            failed: None,
            kept: None,
            sent_at: Instant::now(),
        }
    }

    /// Keeps `j` as the journal to write next (replacing an older one kept). An earlier
    /// write's failure comes back here, at `during` or at `flush`.
    pub(super) fn submit(&mut self, j: &Journal) -> Result<(), ZkError> {
        self.reap()?;
        self.kept = Some(j.clone());
        Ok(())
    }

    /// Keeps `j` and sends it at once unless a write is in flight (then it goes when
    /// the next one does): a journal worth having soon but not worth waiting for.
    pub(super) fn submit_now(&mut self, j: &Journal) -> Result<(), ZkError> {
        self.submit(j)?;
        if self.in_flight.is_none()
            && let Some(j) = self.kept.take()
        {
            self.send(j);
        }
        Ok(())
    }

    /// Runs `step`; while it runs, the journal kept is written once the journal in
    /// ZooKeeper is [`WRITE_BEHIND`] old (after a write in flight has landed). A
    /// failed write is reported by the next `submit` or `flush`.
    pub(super) async fn during<F: Future>(&mut self, step: F) -> F::Output {
        let mut step = std::pin::pin!(step);
        loop {
            if self.kept.is_none() {
                return step.await;
            }
            if let Some(h) = self.in_flight.as_mut() {
                tokio::select! {
                    biased;
                    out = &mut step => return out,
                    r = h => {
                        self.in_flight = None;
                        self.failed = joined(r).err().or(self.failed.take());
                    }
                }
                continue;
            }
            tokio::select! {
                biased;
                out = &mut step => return out,
                () = tokio::time::sleep_until(self.sent_at + WRITE_BEHIND) => {}
            }
            if let Some(j) = self.kept.take() {
                self.send(j);
            }
        }
    }

    /// Takes the result of a write that has finished, if any, and a failure `during`
    /// saw.
    fn reap(&mut self) -> Result<(), ZkError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if let Some(h) = &self.in_flight
            && h.is_finished()
        {
            let h = self.in_flight.take().expect("checked");
            // Finished: polling it does not wait.
            if let Some(r) = futures_util::FutureExt::now_or_never(h) {
                joined(r)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, j: Journal) {
        let (ctx, path) = (self.ctx.clone(), self.path.clone());
        self.sent_at = Instant::now();
        self.in_flight = Some(tokio::spawn(async move {
            ctx.write(&[Op::Set {
                path,
                data: to_json(&j),
                version: None,
            }])
            .await
        }));
    }

    /// Waits until every journal submitted is written.
    pub(super) async fn flush(&mut self) -> Result<(), ZkError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        loop {
            if let Some(h) = self.in_flight.take() {
                joined(h.await)?;
            }
            match self.kept.take() {
                Some(j) => self.send(j),
                None => return Ok(()),
            }
        }
    }

    /// Before the record, which deletes the journal: the journal kept is dropped, a
    /// write in flight is waited for (its failure ends the pass as any other would).
    pub(super) async fn settle(&mut self) -> Result<(), ZkError> {
        self.kept = None;
        self.flush().await
    }
}

fn joined(r: Result<Result<(), ZkError>, tokio::task::JoinError>) -> Result<(), ZkError> {
    r.unwrap_or_else(|e| {
        Err(ZkError::ConnectionLoss {
            op: "write the failover journal",
            path: format!("(the write task ended: {e})"),
        })
    })
}
