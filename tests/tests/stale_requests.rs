//! A request that waited in a frozen agent's socket (SIGSTOP, a VM stun) longer than its
//! caller's deadline is refused when the agent resumes: the caller gave up on it long
//! ago and may have promoted another host since. Real agents and MariaDB.

use std::time::Duration;

use altair_e2e::world::World;
use altair_proto::v1::agent_client::AgentClient;
use altair_proto::v1::*;
use altair_testkit::mariadb::sql::query_value;
use tonic::transport::Channel;

async fn agent(w: &World, i: usize) -> AgentClient<Channel> {
    altair_e2e::grpc::agent(&w.fleet, i).await
}

/// `message` as the orchestrator sends it: with its deadline and the time it was sent.
fn sent<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    altair_proto::sent_at::stamp(request.metadata_mut());
    request
}

/// The newest epoch the agent has accepted.
async fn epoch_seen(agent: &mut AgentClient<Channel>) -> u64 {
    agent
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .epoch
}

/// Stamps `request` as sent `age_ms` ago.
fn stamp_aged<T>(request: &mut tonic::Request<T>, age_ms: u64) {
    let sent = altair_proto::sent_at::now_ms() - age_ms;
    request.metadata_mut().insert(
        altair_proto::sent_at::HEADER,
        sent.to_string().parse().expect("ascii"),
    );
}

/// Host `i`'s `@@global.read_only` and whether it still replicates.
async fn read_only_and_replicating(w: &World, i: usize) -> (String, bool) {
    use mysql_async::prelude::Queryable;
    let mut c = w.cluster.admin_conn(i).await.expect("admin session");
    let ro = query_value(&mut c, "SELECT @@global.read_only")
        .await
        .expect("read_only")
        .unwrap_or_default();
    let rows: Vec<mysql_async::Row> = c.query("SHOW SLAVE STATUS").await.expect("status");
    let io_running = rows.first().is_some_and(|r| {
        r.get::<String, _>("Slave_IO_Running")
            .is_some_and(|v| v == "Yes")
    });
    (ro, io_running)
}

/// Freezes db2's agent, sends it a promotion over `cand` (whose connection was opened
/// before) with a `timeout` deadline, waits until the caller has long given up, resumes
/// the agent and checks that db2 is still a read-only replica.
async fn a_promotion_sent_to_a_frozen_agent(
    w: &World,
    mut cand: AgentClient<Channel>,
    epoch: u64,
    timeout: Duration,
) {
    cand.status(StatusRequest {}).await.expect("status");
    w.fleet.agents[1].pause().expect("SIGSTOP db2's agent");
    let promote = PromoteRequest {
        epoch,
        failover_id: "t".into(),
    };
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(
        timeout + Duration::from_secs(2),
        cand.promote(sent(promote, timeout)),
    )
    .await;
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "a frozen agent answered a promotion"
    );
    // The caller has given up; the request still waits in the frozen agent's socket.
    tokio::time::sleep((timeout + Duration::from_secs(2)).saturating_sub(started.elapsed())).await;
    w.fleet.agents[1].resume().expect("SIGCONT db2's agent");

    // A request sent now is carried out (retried while the resumed agent gets its
    // ZooKeeper session back to check the epoch): the agent refuses only what waited.
    let mut fresh = agent(w, 1).await;
    let set = SetReadOnlyRequest {
        epoch,
        read_only: true,
    };
    let resumed = std::time::Instant::now();
    while let Err(e) = fresh.set_read_only(sent(set, Duration::from_secs(3))).await {
        assert!(
            resumed.elapsed() < Duration::from_secs(15),
            "a request sent after the resume is not carried out: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        read_only_and_replicating(w, 1).await,
        ("1".to_owned(), true),
        "the promotion its caller gave up on was carried out when the agent resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_that_waited_in_a_frozen_agents_socket_is_refused_when_it_resumes() {
    let w = World::start(1, 2, 1).await;
    let epoch = 5;
    w.set_epoch(epoch).await;
    assert_eq!(
        read_only_and_replicating(&w, 1).await,
        ("1".to_owned(), true),
        "db2 starts as a read-only replica"
    );
    // A promotion that waited 10 s somewhere (its stamp says so) with a 3 s deadline, and
    // no reset behind it (its caller died, say): refused before it touches mysqld or the
    // epoch the agent has seen.
    let mut cand = agent(&w, 1).await;
    let seen = epoch_seen(&mut cand).await;
    // So is one read just after its caller gave up (3.1 s after it was sent).
    for age_ms in [10_000, 3_100] {
        let mut late = tonic::Request::new(PromoteRequest {
            epoch: epoch + 1,
            failover_id: "t".into(),
        });
        late.set_timeout(Duration::from_secs(3));
        stamp_aged(&mut late, age_ms);
        let refused = cand
            .promote(late)
            .await
            .expect_err("a stale promotion is refused");
        assert_eq!(
            refused.code(),
            tonic::Code::DeadlineExceeded,
            "{age_ms} ms: {refused:?}"
        );
    }
    // One that waited 1 s of its 3 s is carried out (a harmless one: read-only).
    let mut waited = tonic::Request::new(SetReadOnlyRequest {
        epoch,
        read_only: true,
    });
    waited.set_timeout(Duration::from_secs(3));
    stamp_aged(&mut waited, 1_000);
    cand.set_read_only(waited)
        .await
        .expect("a request with time left is carried out");
    assert_eq!(
        read_only_and_replicating(&w, 1).await,
        ("1".to_owned(), true),
        "a stale promotion touched mysqld"
    );
    let after = epoch_seen(&mut cand).await;
    assert!(
        after <= epoch && after >= seen,
        "a stale request moved the epoch the agent has seen to its own: {seen} → {after}"
    );

    // The caller times the request out on a connection that stays up: the stream's
    // reset follows the request into the socket.
    let cand = agent(&w, 1).await;
    a_promotion_sent_to_a_frozen_agent(&w, cand, epoch, Duration::from_secs(1)).await;
    // The caller's keep-alive gives up on the connection first (as the orchestrator's
    // does, 1 s pings answered within 2 s, before a 3 s promotion's deadline): the
    // connection is closed with the request in the socket and no reset behind it.
    let cand = altair_e2e::grpc::agent_kept_alive(
        &w.fleet,
        1,
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
    .await;
    a_promotion_sent_to_a_frozen_agent(&w, cand, epoch, Duration::from_secs(3)).await;
}
