//! Heartbeats to the monitor that owns the cluster: every interval, and at once when
//! the observed state changes. The owner is chosen by rendezvous hashing over the live
//! monitors (the same function the monitors use); when it stops answering the agent
//! re-resolves instead of going quiet. Between heartbeats a small liveness ping goes to
//! the same monitor every `liveness_interval_ms`: the monitor judges silence on it, and
//! an accepted answer renews the lease like a heartbeat's.

use std::sync::Arc;
use std::time::Duration;

use altair_core::registry::MonitorRecord;
use altair_core::rendezvous;
use altair_proto::v1::monitor_client::MonitorClient;
use altair_proto::v1::{
    HeartbeatReason, HeartbeatRequest, HostRegistration, MysqlSnapshot, PingRequest,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct Heartbeater {
    pub contact: Arc<crate::selffence::Contact>,
    pub cluster: String,
    pub registration: HostRegistration,
    pub interval: Duration,
    /// The liveness ping's interval; `None`: no pings.
    pub ping_every: Option<Duration>,
    pub snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    pub monitors: watch::Receiver<Vec<MonitorRecord>>,
    pub cancel: CancellationToken,
    pub tls: altair_svc::Tls,
}

struct Target {
    id: String,
    address: String,
    client: MonitorClient<Channel>,
}

impl Heartbeater {
    /// `run`, from the moment `registered` first turns true (the host's record is in
    /// ZooKeeper).
    pub async fn run_once_registered(self, mut registered: watch::Receiver<bool>) {
        tokio::select! {
            r = registered.wait_for(|r| *r) => if r.is_err() { return },
            () = self.cancel.cancelled() => return,
        }
        self.run().await;
    }

    pub async fn run(mut self) {
        let run_id = format!("{:016x}", rand::random::<u64>());
        let mut sequence = 0u64;
        let mut target: Option<Target> = None;
        let mut reason = HeartbeatReason::Hello;
        let mut last_state = self.snapshots.borrow().observed_state();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut pinger = tokio::time::interval(self.ping_every.unwrap_or(self.interval));
        pinger.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pinger.tick().await;
        loop {
            sequence += 1;
            let snapshot = self.snapshots.borrow().as_ref().clone();
            self.send(&mut target, sequence, &run_id, reason, snapshot)
                .await;
            reason = HeartbeatReason::Tick;
            // The next ping is a full interval after this heartbeat.
            pinger.reset();
            loop {
                tokio::select! {
                    _ = ticker.tick() => break,
                    _ = pinger.tick(), if self.ping_every.is_some() => {
                        sequence += 1;
                        if !self.ping(&mut target, sequence, &run_id).await {
                            // The monitor does not know this run (it restarted, or took
                            // the cluster over): a full heartbeat introduces it.
                            reason = HeartbeatReason::Hello;
                            break;
                        }
                    }
                    r = self.snapshots.changed() => {
                        if r.is_err() { return; }
                        let state = self.snapshots.borrow().observed_state();
                        if state != last_state {
                            last_state = state;
                            reason = HeartbeatReason::Change;
                            break;
                        }
                    }
                    r = self.monitors.changed() => {
                        if r.is_err() { return; }
                        // Membership changed: the owner may have; resolve at the next send.
                        target = None;
                        reason = HeartbeatReason::Hello;
                        break;
                    }
                    () = self.cancel.cancelled() => return,
                }
            }
        }
    }

    async fn send(
        &self,
        target: &mut Option<Target>,
        sequence: u64,
        run_id: &str,
        reason: HeartbeatReason,
        snapshot: MysqlSnapshot,
    ) {
        // Two attempts: the cached owner, then a freshly resolved one.
        for attempt in 0..2 {
            if target.is_none() {
                *target = self.resolve();
                if target.is_none() {
                    tracing::warn!(cluster = %self.cluster, "no live monitor registered in ZooKeeper; heartbeat not sent");
                    return;
                }
            }
            let Some(t) = target.as_mut() else { return };
            let request = HeartbeatRequest {
                registration: Some(self.registration.clone()),
                sequence,
                agent_run_id: run_id.to_owned(),
                reason: reason as i32,
                snapshot: Some(snapshot.clone()),
                interval_ms: self.interval.as_millis() as u32,
                liveness_interval_ms: self.ping_every.map_or(0, |p| p.as_millis() as u32),
            };
            // While pinging, a heartbeat in flight holds the next ping: bounded by it.
            let timeout = self
                .interval
                .min(Duration::from_secs(2))
                .min(self.ping_every.unwrap_or(Duration::MAX));
            // The lease runs from the send, not the answer: a slow answer must not
            // stretch it past what the monitor saw.
            let sent = self.contact.now();
            let answer = tokio::time::timeout(timeout, t.client.heartbeat(request)).await;
            // Only an accepted answer is the lease: a monitor that does not own the
            // cluster (or has no ZooKeeper session, so owns nothing) answers but does not
            // vouch for this primary.
            if let Ok(Ok(resp)) = &answer
                && resp.get_ref().accepted
            {
                self.contact.lease_renewed_at(sent);
            }
            let result = match &answer {
                Ok(Ok(resp)) if resp.get_ref().accepted => "accepted",
                Ok(Ok(_)) => "redirected",
                Ok(Err(_)) => "failed",
                Err(_) => "timeout",
            };
            crate::metrics::count(&crate::metrics::HEARTBEATS, "result", result);
            match answer {
                Ok(Ok(resp)) if resp.get_ref().accepted => return,
                Ok(Ok(resp)) => {
                    tracing::info!(monitor = %t.id, owner = %resp.get_ref().owner_address, "monitor does not own the cluster; re-resolving");
                }
                Ok(Err(status)) => {
                    tracing::warn!(monitor = %t.id, address = %t.address, attempt, error = %status.message(), "heartbeat failed");
                }
                Err(_) => {
                    tracing::warn!(monitor = %t.id, address = %t.address, attempt, "heartbeat timed out");
                }
            }
            *target = None;
        }
    }

    /// One liveness ping to the cached owner. False when it was not accepted (no owner
    /// known, a refusal, a timeout): the caller sends a full heartbeat, which resolves
    /// the owner again and registers this run.
    async fn ping(&self, target: &mut Option<Target>, sequence: u64, run_id: &str) -> bool {
        let (Some(every), Some(t)) = (self.ping_every, target.as_mut()) else {
            return false;
        };
        let Some(id) = self.registration.id.clone() else {
            return false;
        };
        let request = PingRequest {
            host: Some(id),
            agent_run_id: run_id.to_owned(),
            sequence,
            interval_ms: every.as_millis() as u32,
        };
        let sent = self.contact.now();
        let answer = tokio::time::timeout(every / 2, t.client.ping(request)).await;
        let accepted = matches!(&answer, Ok(Ok(r)) if r.get_ref().accepted);
        if accepted {
            self.contact.lease_renewed_at(sent);
        }
        let result = match &answer {
            Ok(Ok(_)) if accepted => "accepted",
            Ok(Ok(_)) => "redirected",
            Ok(Err(_)) => "failed",
            Err(_) => "timeout",
        };
        crate::metrics::count(&crate::metrics::PINGS, "result", result);
        if !accepted {
            tracing::debug!(monitor = %t.id, result, "liveness ping not accepted; sending a full heartbeat");
            if result != "redirected" {
                // A monitor that failed or did not answer: the heartbeat resolves afresh
                // rather than try it again first.
                *target = None;
            }
        }
        accepted
    }

    fn resolve(&self) -> Option<Target> {
        let monitors = self.monitors.borrow().clone();
        let ids: Vec<&str> = monitors.iter().map(|m| m.id.as_str()).collect();
        let owner = rendezvous::owner(&self.cluster, &ids)?;
        let record = monitors.iter().find(|m| m.id == owner)?;
        let endpoint = match self.tls.endpoint(
            &record.address,
            altair_core::authz_peer::Expected::Monitor(Some(record.id.clone())),
        ) {
            Ok(e) => e.connect_timeout(Duration::from_secs(1)),
            Err(e) => {
                tracing::warn!(monitor = %record.id, error = %e, "cannot address the monitor");
                return None;
            }
        };
        tracing::info!(monitor = %record.id, address = %record.address, "heartbeats go to this monitor");
        Some(Target {
            id: record.id.clone(),
            address: record.address.clone(),
            client: MonitorClient::new(endpoint.connect_lazy()),
        })
    }
}
