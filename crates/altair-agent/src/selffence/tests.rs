//! The self-fencing loop in process, on a paused clock (STYLE §8.2), over a scripted
//! world: replicas' agents that answer, refuse or hang; a fence that works or fails; a
//! ZooKeeper that shows a failover or not. Each test is minutes of the agent's time in
//! milliseconds of the test's, and checks the inequality the orchestrator's promotion
//! wait relies on (`altair_core::selffence`): the fence starts no earlier than the bound
//! after the last contact and no later than one probe interval past it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use altair_proto::v1::{ConnectedReplica, Endpoint, MysqlSnapshot, ReplicationStatus};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::{Contact, FenceIo, run};
use crate::actions::Fenced;

const EVERY: Duration = Duration::from_millis(1_000);
const BOUND: u64 = 5_000;
const ME: &str = "db1";

#[derive(Clone, Copy)]
enum Peer {
    Answers,
    Refuses,
    /// A frozen agent or a black-holed link: the connection never completes.
    Hangs,
}

struct World {
    t0: Instant,
    peers: Mutex<HashMap<String, Peer>>,
    snapshots: watch::Sender<Arc<MysqlSnapshot>>,
    fence_fails: AtomicBool,
    failover_started: AtomicBool,
    /// When each fence and stop began, ms after the start.
    fences: Mutex<Vec<u64>>,
    stops: Mutex<Vec<u64>>,
    stop_fails: AtomicBool,
    dials: AtomicU32,
    asked: Mutex<Vec<u64>>,
}

impl World {
    fn at(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }
    fn set(&self, addr: &str, p: Peer) {
        self.peers
            .lock()
            .expect("not poisoned")
            .insert(addr.to_owned(), p);
    }
    fn fences(&self) -> Vec<u64> {
        self.fences.lock().expect("not poisoned").clone()
    }
    fn stops(&self) -> Vec<u64> {
        self.stops.lock().expect("not poisoned").clone()
    }
    fn asked(&self) -> Vec<u64> {
        self.asked.lock().expect("not poisoned").clone()
    }
    /// What the probe shows after a fence: the primary read-only.
    fn show_read_only(&self) {
        let mut s = (**self.snapshots.borrow()).clone();
        s.read_only = true;
        self.snapshots.send_replace(Arc::new(s));
    }
}

impl FenceIo for World {
    async fn reach(&self, addr: &str) -> bool {
        self.dials.fetch_add(1, Ordering::SeqCst);
        let p = self.peers.lock().expect("not poisoned").get(addr).copied();
        match p {
            Some(Peer::Answers) => true,
            Some(Peer::Refuses) | None => false,
            Some(Peer::Hangs) => std::future::pending().await,
        }
    }

    async fn fence_read_only(&self, _deadline: Instant) -> Result<Fenced, Status> {
        self.fences.lock().expect("not poisoned").push(self.at());
        if self.fence_fails.load(Ordering::SeqCst) {
            return Err(Status::unavailable("too many connections"));
        }
        self.show_read_only();
        Ok(Fenced {
            killed: 3,
            gtid: "0-1-100".into(),
            not_running: false,
        })
    }

    async fn stop_mysqld(&self) -> Result<(), Status> {
        self.stops.lock().expect("not poisoned").push(self.at());
        if self.stop_fails.load(Ordering::SeqCst) {
            return Err(Status::internal("no pid file"));
        }
        let mut s = (**self.snapshots.borrow()).clone();
        s.reachable = false;
        self.snapshots.send_replace(Arc::new(s));
        Ok(())
    }

    async fn failover_may_have_started(&self, _me: &str) -> bool {
        self.asked.lock().expect("not poisoned").push(self.at());
        self.failover_started.load(Ordering::SeqCst)
    }
}

fn primary() -> MysqlSnapshot {
    MysqlSnapshot {
        reachable: true,
        read_only: false,
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

fn replica_at(host: &str) -> ConnectedReplica {
    ConnectedReplica {
        server_id: 2,
        endpoint: Some(Endpoint {
            host: host.into(),
            port: 7000,
        }),
    }
}

struct Agent {
    world: Arc<World>,
    contact: Arc<Contact>,
    cancel: CancellationToken,
    looping: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// The loop over `world`, with `peers` registered; mysqld shows `snapshot`.
    fn start(snapshot: MysqlSnapshot, peers: &[(&str, Peer)]) -> Self {
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        let world = Arc::new(World {
            t0: Instant::now(),
            peers: Mutex::new(HashMap::new()),
            snapshots: tx,
            fence_fails: AtomicBool::new(false),
            failover_started: AtomicBool::new(false),
            fences: Mutex::default(),
            stops: Mutex::default(),
            stop_fails: AtomicBool::new(false),
            dials: AtomicU32::new(0),
            asked: Mutex::default(),
        });
        for (addr, p) in peers {
            world.set(addr, *p);
        }
        let contact = Arc::new(Contact::new());
        contact.set_peers(peers.iter().map(|(a, _)| a.to_string()).collect());
        let cancel = CancellationToken::new();
        let looping = tokio::spawn(run(
            contact.clone(),
            rx,
            world.clone(),
            (ME.to_owned(), BOUND),
            EVERY,
            cancel.clone(),
        ));
        Self {
            world,
            contact,
            cancel,
            looping,
        }
    }

    /// The loop still runs (a test that checks nothing happened is not fooled by a loop
    /// that died).
    fn assert_running(&self) {
        assert!(!self.looping.is_finished(), "the self-fencing loop ended");
    }

    /// Accepted heartbeats every 500 ms for `d`; returns when the last was sent.
    async fn renew_lease_for(&self, d: Duration) -> u64 {
        let until = Instant::now() + d;
        let mut last = 0;
        while Instant::now() < until {
            last = self.contact.now();
            self.contact.lease_renewed_at(last);
            sleep(Duration::from_millis(500)).await;
        }
        last
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The fence began within [last contact + bound, last contact + bound + one interval].
fn fenced_in_bound(at: u64, last_contact: u64) {
    assert!(
        at >= last_contact + BOUND,
        "fenced at {at} ms, before the bound after the last contact at {last_contact} ms"
    );
    assert!(
        at <= last_contact + BOUND + EVERY.as_millis() as u64,
        "fenced at {at} ms, later than the bound + one interval after {last_contact} ms: the orchestrator may already have promoted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_primary_holding_its_lease_stays_writable_though_no_replica_answers() {
    // Row 3: cut from its replicas, the control plane still hears it.
    let a = Agent::start(
        primary(),
        &[("db2:7000", Peer::Hangs), ("db3:7000", Peer::Refuses)],
    );
    a.renew_lease_for(Duration::from_secs(120)).await;
    assert!(
        a.world.fences().is_empty(),
        "fenced: {:?}",
        a.world.fences()
    );
    assert!(a.world.stops().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_primary_without_lease_stays_writable_while_it_reaches_every_replica() {
    // Row 4a: the monitors lost it, every replica's agent still answers (failsafe).
    let a = Agent::start(
        primary(),
        &[("db2:7000", Peer::Answers), ("db3:7000", Peer::Answers)],
    );
    sleep(Duration::from_secs(120)).await;
    assert!(
        a.world.fences().is_empty(),
        "fenced: {:?}",
        a.world.fences()
    );
    // Every round dialled both, once a second.
    assert!(a.world.dials.load(Ordering::SeqCst) >= 2 * 119);
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_loses_its_lease_and_one_replica_fences_within_the_bound() {
    // {primary + one replica} cut from the rest: the other replica's link black-holed.
    let a = Agent::start(
        primary(),
        &[("db2:7000", Peer::Answers), ("db3:7000", Peer::Hangs)],
    );
    let last = a.renew_lease_for(Duration::from_secs(10)).await;
    sleep(Duration::from_secs(20)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 1, "fenced once, then read-only: {f:?}");
    fenced_in_bound(f[0], last);
    assert!(a.world.stops().is_empty(), "read_only worked: mysqld kept");
}

#[tokio::test(start_paused = true)]
async fn hung_replicas_do_not_hold_the_rounds_back() {
    // Every replica black-holed: each round's dials end at one deadline, in parallel.
    let peers: Vec<(String, Peer)> = (2..12)
        .map(|i| (format!("db{i}:7000"), Peer::Hangs))
        .collect();
    let refs: Vec<(&str, Peer)> = peers.iter().map(|(a, p)| (a.as_str(), *p)).collect();
    let a = Agent::start(primary(), &refs);
    let last = a.renew_lease_for(Duration::from_secs(3)).await;
    sleep(Duration::from_secs(15)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 1, "{f:?}");
    fenced_in_bound(f[0], last);
}

#[tokio::test(start_paused = true)]
async fn losing_one_replica_after_the_failsafe_held_fences_from_the_last_full_round() {
    let a = Agent::start(
        primary(),
        &[("db2:7000", Peer::Answers), ("db3:7000", Peer::Answers)],
    );
    sleep(Duration::from_millis(30_200)).await;
    // The last round that reached both started at 30 s.
    a.world.set("db3:7000", Peer::Refuses);
    sleep(Duration::from_secs(20)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 1, "{f:?}");
    fenced_in_bound(f[0], 30_000);
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_knows_no_replica_cannot_claim_the_failsafe() {
    let a = Agent::start(primary(), &[]);
    sleep(Duration::from_secs(20)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 1, "{f:?}");
    // Starting counts as contact.
    fenced_in_bound(f[0], 0);
}

#[tokio::test(start_paused = true)]
async fn a_replica_the_server_reports_but_nobody_registered_counts_and_is_remembered() {
    let mut s = primary();
    s.replicas = vec![replica_at("db9")];
    let a = Agent::start(s, &[("db2:7000", Peer::Answers)]);
    a.world.set("db9:7000", Peer::Answers);
    // The last round that reached both starts at 3 s.
    sleep(Duration::from_millis(3_200)).await;
    // It drops out of SHOW SLAVE HOSTS (cut), and cannot be reached.
    a.world.snapshots.send_replace(Arc::new(primary()));
    a.world.set("db9:7000", Peer::Hangs);
    sleep(Duration::from_secs(15)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 1, "the unregistered replica still counts: {f:?}");
    fenced_in_bound(f[0], 3_000);
}

/// The loop's own fallback (the agent's fence already stops mysqld when it cannot set
/// read_only; this is the second line).
#[tokio::test(start_paused = true)]
async fn a_fence_that_cannot_make_mysqld_read_only_stops_it_in_the_same_round() {
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    a.world.fence_fails.store(true, Ordering::SeqCst);
    sleep(Duration::from_secs(20)).await;
    let f = a.world.fences();
    let s = a.world.stops();
    assert_eq!((f.len(), s.len()), (1, 1), "fences {f:?}, stops {s:?}");
    fenced_in_bound(f[0], 0);
    assert_eq!(s[0], f[0], "stopped at once, not a round later");
}

#[tokio::test(start_paused = true)]
async fn a_replica_dials_nobody_and_never_fences() {
    let a = Agent::start(replica(), &[("db2:7000", Peer::Refuses)]);
    sleep(Duration::from_secs(60)).await;
    a.assert_running();
    assert!(a.world.fences().is_empty());
    assert_eq!(a.world.dials.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_frozen_primary_whose_mysqld_stopped_answering_is_still_fenced() {
    // The last answering probe showed it writable; then mysqld hung (no answer). It may
    // resume writable, so it stays under the rule.
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    sleep(Duration::from_secs(2)).await;
    let mut s = primary();
    s.reachable = false;
    s.probe_error = "timed out".into();
    a.world.snapshots.send_replace(Arc::new(s));
    sleep(Duration::from_secs(10)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 1, "{f:?}");
    fenced_in_bound(f[0], 0);
}

/// A renewal that ended a lapse past the bound (the agent or its host frozen): what
/// the heartbeat task leaves when it runs first on resume.
fn lapse_ended_now(c: &Contact, lapse_ms: u64) {
    c.note_lapse(lapse_ms, c.now());
    c.lease_renewed_at(c.now());
}

#[tokio::test(start_paused = true)]
async fn after_a_lapse_a_failover_under_way_fences_though_the_lease_is_back() {
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    a.renew_lease_for(Duration::from_secs(10)).await;
    a.world.failover_started.store(true, Ordering::SeqCst);
    lapse_ended_now(&a.contact, 6_000);
    let back = a.world.at();
    a.renew_lease_for(Duration::from_secs(5)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0] <= back + EVERY.as_millis() as u64,
        "fenced at {} ms, contact back at {back} ms",
        f[0]
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_lapse_with_no_failover_the_primary_stays_writable_and_the_watch_ends() {
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    a.renew_lease_for(Duration::from_secs(10)).await;
    lapse_ended_now(&a.contact, 6_000);
    let back = a.world.at();
    a.renew_lease_for(Duration::from_secs(60)).await;
    a.assert_running();
    assert!(a.world.fences().is_empty(), "{:?}", a.world.fences());
    let asked = a.world.asked();
    assert!(
        !asked.is_empty(),
        "ZooKeeper was never asked after the lapse"
    );
    // Asked each round until the orchestrator could have finished, then no more.
    let window =
        BOUND + EVERY.as_millis() as u64 + altair_core::selffence::SELF_FENCE_MARGIN_MS + 5_000;
    let last = *asked.last().expect("asked");
    assert!(
        last <= back + window + EVERY.as_millis() as u64,
        "still asking at {last} ms, the lapse ended at {back} ms"
    );
    assert!(asked.len() >= 10, "asked only {} times", asked.len());
}

#[tokio::test(start_paused = true)]
async fn a_replicas_lapse_that_ended_before_its_promotion_asks_nobody() {
    let a = Agent::start(replica(), &[("db2:7000", Peer::Refuses)]);
    a.renew_lease_for(Duration::from_secs(10)).await;
    // Its monitor gone for 6 s while a replica; contact back, then promoted before the
    // loop's next round; ZooKeeper then out of reach (it would answer "maybe").
    // The heartbeat that ends the lapse is sent before the promotion and answered after.
    sleep(Duration::from_millis(6_300)).await;
    let sent = a.contact.now();
    sleep(Duration::from_millis(100)).await;
    a.contact.made_writable();
    a.world.snapshots.send_replace(Arc::new(primary()));
    a.contact.lease_renewed_at(sent);
    a.world.failover_started.store(true, Ordering::SeqCst);
    a.renew_lease_for(Duration::from_secs(20)).await;
    a.assert_running();
    assert!(a.world.asked().is_empty(), "asked at {:?}", a.world.asked());
    assert!(
        a.world.fences().is_empty(),
        "fenced at {:?}",
        a.world.fences()
    );
}

/// The other order: promoted while its lapse is still under way, then frozen with its
/// host before the bound; on resume its replica answers and a heartbeat lands first. The
/// lapse counts from the last contact, as the orchestrator's promotion wait does.
#[tokio::test(start_paused = true)]
async fn a_host_promoted_during_its_lapse_then_frozen_asks_on_resume() {
    let a = Agent::start(replica(), &[("db2:7000", Peer::Refuses)]);
    a.renew_lease_for(Duration::from_secs(10)).await;
    sleep(Duration::from_millis(1_300)).await;
    a.contact.made_writable();
    a.world.snapshots.send_replace(Arc::new(primary()));
    sleep(Duration::from_millis(1_200)).await;
    assert!(a.world.fences().is_empty(), "fenced inside the bound");
    // Frozen: its loop does not run for 30 s.
    a.cancel.cancel();
    sleep(Duration::from_secs(30)).await;
    a.world.set("db2:7000", Peer::Answers);
    a.world.failover_started.store(true, Ordering::SeqCst);
    a.contact.lease_renewed_at(a.contact.now());
    let resumed = CancellationToken::new();
    let _looping = tokio::spawn(run(
        a.contact.clone(),
        a.world.snapshots.subscribe(),
        a.world.clone(),
        (ME.to_owned(), BOUND),
        EVERY,
        resumed.clone(),
    ));
    sleep(Duration::from_secs(3)).await;
    resumed.cancel();
    assert!(
        !a.world.asked().is_empty(),
        "ZooKeeper was not asked after the lapse"
    );
    assert_eq!(a.world.fences().len(), 1, "{:?}", a.world.fences());
}

#[tokio::test(start_paused = true)]
async fn a_lapse_shorter_than_the_bound_asks_nobody() {
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    a.renew_lease_for(Duration::from_secs(10)).await;
    a.world.failover_started.store(true, Ordering::SeqCst);
    lapse_ended_now(&a.contact, BOUND - 1);
    a.renew_lease_for(Duration::from_secs(20)).await;
    a.assert_running();
    assert!(a.world.asked().is_empty());
    assert!(a.world.fences().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_could_be_neither_fenced_nor_stopped_is_tried_again_every_round() {
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    a.world.fence_fails.store(true, Ordering::SeqCst);
    a.world.stop_fails.store(true, Ordering::SeqCst);
    sleep(Duration::from_millis(10_200)).await;
    let f = a.world.fences();
    fenced_in_bound(f[0], 0);
    // Once due, every round tries again: it stays writable only while nothing works.
    assert!(f.len() >= 4, "tried {} times: {f:?}", f.len());
    assert_eq!(a.world.stops().len(), f.len());
    for w in f.windows(2) {
        assert_eq!(w[1] - w[0], EVERY.as_millis() as u64, "{f:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_lapse_of_exactly_the_bound_asks_zookeeper() {
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    a.renew_lease_for(Duration::from_secs(10)).await;
    a.world.failover_started.store(true, Ordering::SeqCst);
    lapse_ended_now(&a.contact, BOUND);
    a.renew_lease_for(Duration::from_secs(3)).await;
    assert!(!a.world.asked().is_empty());
    assert_eq!(a.world.fences().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_primary_made_writable_again_is_under_the_rule_again() {
    let a = Agent::start(primary(), &[("db2:7000", Peer::Refuses)]);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(a.world.fences().len(), 1);
    // Contact back; the orchestrator lifts read_only (the probe shows it writable).
    let back = a.renew_lease_for(Duration::from_secs(5)).await;
    a.world.snapshots.send_replace(Arc::new(primary()));
    assert_eq!(
        a.world.fences().len(),
        1,
        "not fenced again while the lease holds"
    );
    // The lease stops again: fenced again, within the bound of the last one.
    sleep(Duration::from_secs(10)).await;
    let f = a.world.fences();
    assert_eq!(f.len(), 2, "{f:?}");
    fenced_in_bound(f[1], back);
}
