//! Heartbeats to the monitor that owns the cluster: every interval, and at once when
//! the observed state changes. The owner is chosen by rendezvous hashing over the live
//! monitors (the same function the monitors use); when it stops answering the agent
//! re-resolves instead of going quiet. Between heartbeats a small liveness ping goes to
//! the same monitor every `liveness_interval_ms`: the monitor judges silence on it, and
//! an accepted answer renews the lease like a heartbeat's. Pings go over one long-lived
//! `Liveness` stream per monitor (a message each, not a call: the monitor authorizes the
//! stream once); a monitor without it gets them as `Ping` calls.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use altair_core::registry::MonitorRecord;
use altair_core::rendezvous;
use altair_proto::v1::monitor_client::MonitorClient;
use altair_proto::v1::{
    HeartbeatReason, HeartbeatRequest, HeartbeatResponse, HostRegistration, MysqlSnapshot,
    PingRequest,
};
use tokio::sync::{mpsc, watch};
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
    liveness: Liveness,
}

/// The pings' stream to the target monitor.
enum Liveness {
    /// Opened at the next ping.
    Closed,
    Open {
        pings: mpsc::Sender<PingRequest>,
        answers: Box<tonic::Streaming<HeartbeatResponse>>,
    },
    /// The monitor does not have `Liveness` (an older one): `Ping` calls.
    Unsupported,
}

impl Target {
    /// One ping and its answer: over the stream (opened with this ping already queued
    /// on it, so opening costs no extra round trip), or as a call to a monitor without
    /// it. A stream that fails is closed (the next ping opens another); so is one whose
    /// ping is cut short by the caller's timeout, since its answer may still come and
    /// would be read as the next ping's.
    async fn ping(&mut self, request: PingRequest) -> Result<HeartbeatResponse, tonic::Status> {
        let answer = match &mut self.liveness {
            Liveness::Unsupported => {
                return self.client.ping(request).await.map(|r| r.into_inner());
            }
            Liveness::Closed => {
                let (pings, rx) = mpsc::channel(2);
                // Cannot fail: the channel is new and has room.
                let _ = pings.try_send(request.clone());
                match self
                    .client
                    .liveness(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                {
                    Ok(answers) => {
                        let mut answers = Box::new(answers.into_inner());
                        let first = answers.message().await;
                        self.liveness = Liveness::Open { pings, answers };
                        first
                    }
                    // A monitor from before the stream: one without the method answers
                    // Unimplemented, and one with mutual TLS refuses a method its
                    // policy does not name (PermissionDenied). Pings go as calls to it
                    // (a monitor that refuses this agent refuses those too).
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::Unimplemented | tonic::Code::PermissionDenied
                        ) =>
                    {
                        tracing::info!(monitor = %self.id, answer = ?s.code(), "the monitor takes no liveness stream: pinging it call by call");
                        self.liveness = Liveness::Unsupported;
                        return self.client.ping(request).await.map(|r| r.into_inner());
                    }
                    Err(s) => return Err(s),
                }
            }
            Liveness::Open { pings, answers } => match pings.send(request).await {
                Ok(()) => answers.message().await,
                Err(_) => Err(tonic::Status::unavailable("the liveness stream closed")),
            },
        };
        match answer {
            Ok(Some(a)) => Ok(a),
            Ok(None) => {
                self.liveness = Liveness::Closed;
                Err(tonic::Status::unavailable(
                    "the monitor ended the liveness stream",
                ))
            }
            Err(s) => {
                self.liveness = Liveness::Closed;
                Err(s)
            }
        }
    }
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
            let mut snapshot = self.snapshots.borrow().as_ref().clone();
            snapshot.self_fenced_at_unix_ms =
                self.contact.fenced_at_ms.load(Ordering::SeqCst) as i64;
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
        let answer = tokio::time::timeout(every / 2, t.ping(request)).await;
        if answer.is_err() && matches!(t.liveness, Liveness::Open { .. }) {
            t.liveness = Liveness::Closed;
        }
        let accepted = matches!(&answer, Ok(Ok(r)) if r.accepted);
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
            liveness: Liveness::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use altair_proto::v1::monitor_server::{Monitor, MonitorServer};
    use altair_proto::v1::*;
    use futures_util::StreamExt;
    use tonic::{Request, Response, Status};

    use super::*;

    /// A monitor on loopback that accepts every ping, counting calls and streamed pings;
    /// `streams: false` is a monitor from before `Liveness`.
    struct Counting {
        streams: bool,
        /// Each stream ends after this many pings.
        end_after: usize,
        /// How a monitor without the stream refuses it: Unimplemented (no such method)
        /// or PermissionDenied (an older monitor's authorization, before routing).
        refuse_with: tonic::Code,
        calls: Arc<AtomicUsize>,
        streamed: Arc<AtomicUsize>,
    }

    fn accepted() -> HeartbeatResponse {
        HeartbeatResponse {
            accepted: true,
            owner_address: String::new(),
        }
    }

    #[tonic::async_trait]
    impl Monitor for Counting {
        async fn heartbeat(
            &self,
            _: Request<HeartbeatRequest>,
        ) -> Result<Response<HeartbeatResponse>, Status> {
            Ok(Response::new(accepted()))
        }
        async fn ping(
            &self,
            _: Request<PingRequest>,
        ) -> Result<Response<HeartbeatResponse>, Status> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(accepted()))
        }
        type LivenessStream = tonic::codegen::BoxStream<HeartbeatResponse>;
        async fn liveness(
            &self,
            request: Request<tonic::Streaming<PingRequest>>,
        ) -> Result<Response<Self::LivenessStream>, Status> {
            if !self.streams {
                return Err(match self.refuse_with {
                    tonic::Code::PermissionDenied => Status::permission_denied("not in policy"),
                    _ => Status::unimplemented("no Liveness here"),
                });
            }
            let streamed = self.streamed.clone();
            Ok(Response::new(Box::pin(
                request.into_inner().take(self.end_after).map(move |p| {
                    streamed.fetch_add(1, Ordering::SeqCst);
                    p.map(|_| accepted())
                }),
            )))
        }
        async fn register(
            &self,
            _: Request<RegisterRequest>,
        ) -> Result<Response<RegisterResponse>, Status> {
            Err(Status::unimplemented("not here"))
        }
        async fn cluster_health(
            &self,
            _: Request<ClusterHealthRequest>,
        ) -> Result<Response<ClusterHealthResponse>, Status> {
            Err(Status::unimplemented("not here"))
        }
    }

    /// A target for a counting monitor on loopback; its call and stream counters.
    async fn target(
        streams: bool,
        end_after: usize,
    ) -> (Target, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        target_refusing(streams, end_after, tonic::Code::Unimplemented).await
    }

    async fn target_refusing(
        streams: bool,
        end_after: usize,
        refuse_with: tonic::Code,
    ) -> (Target, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let (calls, streamed) = (Arc::default(), Arc::default());
        let monitor = Counting {
            streams,
            end_after,
            refuse_with,
            calls: Arc::clone(&calls),
            streamed: Arc::clone(&streamed),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(MonitorServer::new(monitor))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect_lazy();
        let t = Target {
            id: "m1".into(),
            address,
            client: MonitorClient::new(channel),
            liveness: Liveness::Closed,
        };
        (t, calls, streamed)
    }

    fn ping(sequence: u64) -> PingRequest {
        PingRequest {
            host: Some(HostRef {
                cluster: "c1".into(),
                host: "db1".into(),
            }),
            agent_run_id: "r".into(),
            sequence,
            interval_ms: 1000,
        }
    }

    #[tokio::test]
    async fn pings_go_over_one_stream_and_each_gets_its_answer() {
        let (mut t, calls, streamed) = target(true, usize::MAX).await;
        for seq in 1..=5 {
            let a = t.ping(ping(seq)).await.expect("answered");
            assert!(a.accepted);
        }
        assert_eq!(streamed.load(Ordering::SeqCst), 5);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no ping sent as a call");
        assert!(matches!(t.liveness, Liveness::Open { .. }));
    }

    /// An older monitor refuses the stream: without the method (Unimplemented) or, under
    /// mutual TLS, by its policy before routing (PermissionDenied). It gets calls.
    #[tokio::test]
    async fn a_monitor_without_the_stream_gets_calls() {
        for refusal in [tonic::Code::Unimplemented, tonic::Code::PermissionDenied] {
            let (mut t, calls, streamed) = target_refusing(false, usize::MAX, refusal).await;
            for seq in 1..=3 {
                assert!(t.ping(ping(seq)).await.expect("answered").accepted);
            }
            assert_eq!(calls.load(Ordering::SeqCst), 3, "{refusal:?}");
            assert_eq!(streamed.load(Ordering::SeqCst), 0, "{refusal:?}");
            assert!(matches!(t.liveness, Liveness::Unsupported), "{refusal:?}");
        }
    }

    #[tokio::test]
    async fn a_stream_the_monitor_ended_is_closed_and_the_next_ping_opens_another() {
        let (mut t, calls, streamed) = target(true, 2).await;
        assert!(t.ping(ping(1)).await.expect("answered").accepted);
        assert!(t.ping(ping(2)).await.expect("answered").accepted);
        // The monitor ended the stream: this ping is not answered (the caller then sends
        // a full heartbeat), and the stream is closed.
        assert!(t.ping(ping(3)).await.is_err());
        assert!(matches!(t.liveness, Liveness::Closed));
        assert!(t.ping(ping(4)).await.expect("answered").accepted);
        assert!(matches!(t.liveness, Liveness::Open { .. }));
        assert_eq!(streamed.load(Ordering::SeqCst), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
