//! The journal written behind the steps: every step's journal is sent to ZooKeeper, but
//! the next step waits for it only where it must not run without it — promotion (the
//! candidate, its catch-up and the salvage accounting must survive this leader before a
//! host becomes writable), the record, and every way out of the pass (a retry, a
//! roll-back, an abort, a wait). One write is in flight at a time, so they land in order;
//! journals submitted meanwhile coalesce into the newest. A failover's awaited
//! ZooKeeper round trips fall from one per step to three (start, promotion, record); in
//! a storm, where each round trip waits for ZooKeeper's fsync behind everyone else's,
//! that is most of the time between steps. A leader that dies in between leaves an
//! older step in the journal: its successor redoes the steps after it, which are
//! idempotent (fence, choose, catch-up, salvage; promotion is never passed unwritten).

use altair_core::failover::Journal;
use altair_core::registry::to_json;
use altair_zk::{Op, ZkError};
use tokio::task::JoinHandle;

use crate::ctx::Ctx;

pub(super) struct JournalWriter {
    ctx: Ctx,
    path: String,
    in_flight: Option<JoinHandle<Result<(), ZkError>>>,
    queued: Option<Journal>,
}

impl JournalWriter {
    pub(super) fn new(ctx: &Ctx, path: String) -> Self {
        Self {
            ctx: ctx.clone(),
            path,
            in_flight: None,
            queued: None,
        }
    }

    /// Sends `j` now if no write is in flight, else keeps it as the next one (replacing
    /// an older one kept). An earlier write's failure comes back here or at `flush`.
    pub(super) fn submit(&mut self, j: &Journal) -> Result<(), ZkError> {
        if let Some(h) = &self.in_flight
            && h.is_finished()
        {
            let h = self.in_flight.take().expect("checked");
            // Finished: polling it does not wait.
            if let Some(r) = futures_util::FutureExt::now_or_never(h) {
                joined(r)?;
            }
        }
        if self.in_flight.is_some() {
            self.queued = Some(j.clone());
        } else {
            self.send(j.clone());
        }
        Ok(())
    }

    fn send(&mut self, j: Journal) {
        let (ctx, path) = (self.ctx.clone(), self.path.clone());
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
        loop {
            if let Some(h) = self.in_flight.take() {
                joined(h.await)?;
            }
            match self.queued.take() {
                Some(j) => self.send(j),
                None => return Ok(()),
            }
        }
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
