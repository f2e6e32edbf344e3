//! What the self-fencing loop does to the world, behind one trait: dial a replica's
//! agent, fence mysqld read-only, stop it, ask ZooKeeper whether a failover started.
//! The agent runs the loop over its `Actions`; the in-process tests (`tests.rs`) run the
//! same loop over a scripted world on a paused clock.

use std::future::Future;
use std::time::Duration;

use tonic::Status;

use crate::actions::{Actions, Fenced};

pub trait FenceIo: Send + Sync + 'static {
    /// Whether the agent at `addr` (`host:port`) accepts a connection. The loop bounds
    /// the wait; an answer that does not come in time counts as "not reached".
    fn reach(&self, addr: &str) -> impl Future<Output = bool> + Send;

    /// Clients killed and mysqld made read-only before `deadline`.
    fn fence_read_only(
        &self,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Fenced, Status>> + Send;

    /// mysqld stopped (killed) at once: what is left when it cannot be made read-only.
    fn stop_mysqld(&self) -> impl Future<Output = Result<(), Status>> + Send;

    /// Whether ZooKeeper shows a failover of this cluster started or done (a journal,
    /// or a primary other than `me`). No answer counts as yes.
    fn failover_may_have_started(&self, me: &str) -> impl Future<Output = bool> + Send;
}

impl FenceIo for Actions {
    async fn reach(&self, addr: &str) -> bool {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    }

    async fn fence_read_only(&self, deadline: tokio::time::Instant) -> Result<Fenced, Status> {
        Actions::fence_read_only(self, true, deadline).await
    }

    async fn stop_mysqld(&self) -> Result<(), Status> {
        self.make_not_running(Duration::ZERO).await
    }

    /// A journal, or a primary other than `me`. No answer (no session, a timeout)
    /// counts as yes: this primary cannot show it still is one.
    async fn failover_may_have_started(&self, me: &str) -> bool {
        let Some(zk) = self.zk.borrow().clone() else {
            return true;
        };
        let l = zk.layout().clone();
        let read = async {
            let journal = zk
                .get_record::<altair_core::failover::Journal>(
                    "failover journal",
                    &l.failover_journal(&self.cluster),
                )
                .await
                .ok()?;
            // The failover that promoted this very host (its candidate, at the epoch this
            // agent accepted) is not one against it: until it records the new topology
            // the state still names the old primary. Any other journal, or a later
            // epoch, is.
            let mine = journal
                .as_ref()
                .is_some_and(|j| j.candidate.as_deref() == Some(me) && j.epoch == self.epoch());
            if mine {
                return Some(false);
            }
            let state = zk
                .get_record::<altair_core::registry::ClusterState>(
                    "cluster state",
                    &l.cluster_state(&self.cluster),
                )
                .await
                .ok()?;
            Some(journal.is_some() || state.and_then(|s| s.primary).is_some_and(|p| p != me))
        };
        tokio::time::timeout(Duration::from_secs(1), read)
            .await
            .ok()
            .flatten()
            .unwrap_or(true)
    }
}
