//! The agent's host-side actions against real MariaDB, driven by hand the way the
//! orchestrator drives them: writes that reached only the primary survive its crash
//! through binlog salvage, keep their GTIDs, and the stale epoch is refused.

use std::time::Duration;

use altair_e2e::world::World;
use altair_proto::v1::agent_client::AgentClient;
use altair_proto::v1::*;
use altair_testkit::mariadb::sql::query_value;
use mysql_async::prelude::Queryable;
use tonic::transport::Channel;

async fn agent(w: &World, i: usize) -> AgentClient<Channel> {
    altair_e2e::grpc::agent(&w.fleet, i).await
}

/// Fences host `i` through its agent at `epoch` (`mode`, `allow_kill`, the RPC deadline
/// `timeout`): the answer and how long it took.
async fn fence(
    w: &World,
    i: usize,
    epoch: u64,
    (mode, allow_kill): (FenceMode, bool),
    timeout: Duration,
) -> (Result<FenceResponse, tonic::Status>, Duration) {
    let mut a = agent(w, i).await;
    let mut request = tonic::Request::new(FenceRequest {
        epoch,
        mode: mode as i32,
        failover_id: "t".into(),
        allow_kill,
    });
    request.set_timeout(timeout);
    let started = std::time::Instant::now();
    let answer = a.fence(request).await.map(tonic::Response::into_inner);
    (answer, started.elapsed())
}

/// The fence answered within `bound` that host `i`'s mysqld is not running, and it is not.
async fn assert_stopped(
    w: &World,
    i: usize,
    (answer, took): (Result<FenceResponse, tonic::Status>, Duration),
    bound: Duration,
) {
    let fenced = answer.expect("fenced by stopping mysqld");
    assert_eq!(
        fenced.outcome,
        FenceOutcome::NotRunning as i32,
        "{fenced:?}"
    );
    assert!(took < bound, "answered after {took:?}");
    assert!(
        w.cluster.admin_conn(i).await.is_err(),
        "mysqld still answers after a not-running fence"
    );
}

/// The old agent's salvage stream: its plan and every event chunk (each at most 1 MiB).
async fn salvage_of(
    old: &mut AgentClient<Channel>,
    epoch: u64,
    after: &str,
) -> Result<(SalvagePlan, Vec<Vec<u8>>), tonic::Status> {
    let mut stream = old
        .salvage_binlog(SalvageBinlogRequest {
            epoch,
            after_gtid: after.to_owned(),
            failover_id: "t".into(),
            timeout_ms: 20_000,
        })
        .await?
        .into_inner();
    let first = stream.message().await?.expect("a first message");
    let plan = first.plan.expect("the first message is the plan");
    let mut chunks = Vec::new();
    while let Some(c) = stream.message().await? {
        assert!(c.events.len() <= 1 << 20, "a chunk over 1 MiB");
        chunks.push(c.events);
    }
    Ok((plan, chunks))
}

/// Applies `chunks` on `cand` as one apply stream.
async fn apply(
    cand: &mut AgentClient<Channel>,
    epoch: u64,
    chunks: Vec<Vec<u8>>,
    after: &str,
) -> Result<ApplySalvageResponse, tonic::Status> {
    apply_within(cand, epoch, chunks, after, 20_000).await
}

/// `apply` with the deadline `timeout_ms`.
async fn apply_within(
    cand: &mut AgentClient<Channel>,
    epoch: u64,
    chunks: Vec<Vec<u8>>,
    after: &str,
    timeout_ms: u32,
) -> Result<ApplySalvageResponse, tonic::Status> {
    let mut msgs = vec![ApplySalvageChunk {
        epoch,
        failover_id: "t".into(),
        gtids: String::new(),
        timeout_ms,
        after_gtid: after.to_owned(),
        transaction_count: 0,
        events: Vec::new(),
    }];
    msgs.extend(chunks.into_iter().map(|events| ApplySalvageChunk {
        events,
        ..ApplySalvageChunk::default()
    }));
    cand.apply_salvage(tokio_stream::iter(msgs))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvage_promote_and_repoint_through_the_agents_lose_nothing() {
    let mut w = World::start(1, 3, 1).await;
    let mut app = w.cluster.app_conn(0).await.expect("app on primary");
    app.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .expect("create");
    app.query_drop("INSERT INTO t VALUES (1)")
        .await
        .expect("insert");
    let pos = w.cluster.gtid_current_pos(0).await.expect("gtid");
    for r in 1..3 {
        w.cluster
            .wait_for_gtid(r, &pos, Duration::from_secs(20))
            .await
            .expect("replicated");
        let mut c = w.cluster.admin_conn(r).await.expect("admin");
        c.query_drop("STOP SLAVE IO_THREAD").await.expect("stop io");
    }
    // Acknowledged on the primary, never received by a replica.
    for id in 2..=6 {
        app.query_drop(format!("INSERT INTO t VALUES ({id})"))
            .await
            .expect("insert");
    }
    drop(app);
    let primary_gtid = w.cluster.gtid_current_pos(0).await.expect("gtid");
    w.cluster.instance_mut(0).kill();
    for r in 1..3 {
        let mut c = w.cluster.admin_conn(r).await.expect("admin");
        c.query_drop("START SLAVE IO_THREAD")
            .await
            .expect("start io");
    }

    let epoch = 7;
    w.set_epoch(epoch).await;
    let mut old = agent(&w, 0).await;
    let mut cand = agent(&w, 1).await;
    let mut other = agent(&w, 2).await;

    // The crashed primary's agent: fencing a dead mysqld succeeds (nothing to do).
    old.fence(FenceRequest {
        epoch,
        mode: FenceMode::ReadOnly as i32,
        failover_id: "t".into(),
        allow_kill: true,
    })
    .await
    .expect("fence a dead mysqld");

    let caught = cand
        .catch_up(CatchUpRequest {
            epoch,
            gtid: String::new(),
            timeout_ms: 5_000,
        })
        .await
        .expect("catch up")
        .into_inner();
    assert!(caught.caught_up);
    let (plan, chunks) = salvage_of(&mut old, epoch, &caught.gtid_executed)
        .await
        .expect("salvage");
    assert_eq!(
        plan.transaction_count, 5,
        "five transactions only the primary had"
    );
    assert!(plan.scanned);
    assert_eq!(
        plan.end_gtid, primary_gtid,
        "the plan names the binlog's end"
    );
    assert!(plan.torn_gtid.is_empty());
    let applied = apply(&mut cand, epoch, chunks, &caught.gtid_executed)
        .await
        .expect("apply");
    assert_eq!(
        applied.gtid_executed, primary_gtid,
        "the candidate now has exactly the primary's GTIDs"
    );
    cand.promote(PromoteRequest {
        epoch,
        failover_id: "t".into(),
    })
    .await
    .expect("promote");

    // A stale orchestrator (older epoch) is refused.
    let stale = other
        .repoint(RepointRequest {
            epoch: epoch - 1,
            source: None,
            use_current_pos: false,
        })
        .await;
    // The other agent has not been called with epoch 7 yet, but ZooKeeper says the
    // cluster is at 7: 6 is a deposed orchestrator's, refused before anything else.
    let stale = stale.expect_err("a deposed orchestrator's epoch");
    assert_eq!(
        stale.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        stale.message()
    );
    let new = w.cluster.instance(1).addr();
    let source = Some(Endpoint {
        host: new.ip().to_string(),
        port: u32::from(new.port()),
    });
    other
        .repoint(RepointRequest {
            epoch,
            source: source.clone(),
            use_current_pos: false,
        })
        .await
        .expect("repoint");
    let refused = other
        .repoint(RepointRequest {
            epoch: epoch - 1,
            source,
            use_current_pos: false,
        })
        .await
        .expect_err("stale epoch");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        refused.message()
    );

    // Every acknowledged row is on the new primary and reaches the other replica.
    let mut app = w.cluster.app_conn(1).await.expect("app on new primary");
    app.query_drop("INSERT INTO t VALUES (7)")
        .await
        .expect("the new primary takes writes");
    let n = query_value(&mut app, "SELECT COUNT(*) FROM t")
        .await
        .expect("count");
    assert_eq!(n.as_deref(), Some("7"));
    let pos = w.cluster.gtid_current_pos(1).await.expect("gtid");
    w.cluster
        .wait_for_gtid(2, &pos, Duration::from_secs(20))
        .await
        .expect("db3 follows db2");
    let mut c = w.cluster.app_conn(2).await.expect("app on db3");
    assert_eq!(
        query_value(&mut c, "SELECT COUNT(*) FROM t")
            .await
            .expect("count")
            .as_deref(),
        Some("7")
    );
}

/// The newest binlog file of instance `i` (from its index).
fn newest_binlog(w: &World, i: usize) -> std::path::PathBuf {
    let dir = w.cluster.instance(i).binlog_dir();
    let index = std::fs::read_to_string(dir.join("mysql-bin.index")).expect("index");
    let last = index
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .expect("a file");
    let p = std::path::PathBuf::from(last.trim());
    if p.is_absolute() {
        p
    } else {
        dir.join(p.file_name().expect("name"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvage_reports_bad_binlogs_clearly_and_never_runs_client_commands() {
    let mut w = World::start(1, 2, 1).await;
    let mut app = w.cluster.app_conn(0).await.expect("app on primary");
    app.query_drop("CREATE TABLE t (id INT PRIMARY KEY, pad TEXT)")
        .await
        .expect("create");
    let pos = w.cluster.gtid_current_pos(0).await.expect("gtid");
    w.cluster
        .wait_for_gtid(1, &pos, Duration::from_secs(20))
        .await
        .expect("replicated");
    let mut c = w.cluster.admin_conn(1).await.expect("admin");
    c.query_drop("STOP SLAVE IO_THREAD").await.expect("stop io");
    for id in 1..=5 {
        app.query_drop(format!("INSERT INTO t VALUES ({id}, REPEAT('x', 2000))"))
            .await
            .expect("insert");
    }
    drop(app);
    w.cluster.instance_mut(0).kill();
    let epoch = 3;
    w.set_epoch(epoch).await;
    let mut old = agent(&w, 0).await;
    let mut cand = agent(&w, 1).await;
    let (plan, _) = salvage_of(&mut old, epoch, &pos).await.expect("salvage");
    assert_eq!(plan.transaction_count, 5);

    // A missing binlog index: a clear error naming it.
    let dir = w.cluster.instance(0).binlog_dir();
    let index = dir.join("mysql-bin.index");
    std::fs::rename(&index, dir.join("moved")).expect("move the index");
    let e = salvage_of(&mut old, epoch, &pos)
        .await
        .expect_err("no index");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert!(e.message().contains("mysql-bin.index"), "{}", e.message());
    std::fs::rename(dir.join("moved"), &index).expect("restore the index");

    // A corrupted byte inside the tail: the checksum finds it, the error names the file
    // and the offset, and no event is sent.
    let file = newest_binlog(&w, 0);
    let good = std::fs::read(&file).expect("read binlog");
    let mut bad = good.clone();
    let at = good.len() - 1500;
    bad[at] ^= 0x5a;
    std::fs::write(&file, &bad).expect("corrupt");
    let e = salvage_of(&mut old, epoch, &pos)
        .await
        .expect_err("corrupt");
    assert_eq!(e.code(), tonic::Code::DataLoss, "{}", e.message());
    assert!(
        e.message().contains("mysql-bin.") && e.message().contains("offset"),
        "{}",
        e.message()
    );

    // A file cut inside its last transaction (a torn write): the four complete ones are
    // salvaged, the torn one is named and left out.
    std::fs::write(&file, &good[..good.len() - 40]).expect("truncate");
    let (plan, _) = salvage_of(&mut old, epoch, &pos)
        .await
        .expect("salvage torn");
    assert_eq!(plan.transaction_count, 4, "{plan:?}");
    assert!(!plan.torn_gtid.is_empty(), "{plan:?}");
    // The crashed mysqld restarted (read-only) and went on in a new binlog file: the torn
    // file is no longer the last one, and the same four are salvaged.
    w.cluster
        .instance_mut(0)
        .start()
        .await
        .expect("restart the old primary");
    let (again, chunks) = salvage_of(&mut old, epoch, &pos)
        .await
        .expect("salvage after a restart");
    assert_eq!(again.transaction_count, 4, "{again:?}");
    assert_eq!(again.torn_gtid, plan.torn_gtid, "{again:?}");

    // Client commands inside a salvage stream are never run: the client is sandboxed.
    let marker = w.cluster.instance(1).dir().join("pwned");
    for evil in [
        format!("\\! touch {}\n", marker.display()),
        format!("system touch {}\n", marker.display()),
        "source /etc/passwd\n".to_owned(),
    ] {
        let r = apply(&mut cand, epoch, vec![evil.clone().into_bytes()], &pos).await;
        assert!(r.is_err(), "{evil:?} was accepted");
        assert!(!marker.exists(), "{evil:?} ran a shell command");
    }
    // A plan made after another position than the candidate's is refused.
    let e = apply(&mut cand, epoch, chunks.clone(), "0-1-999")
        .await
        .expect_err("stale plan");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    // An apply past its deadline leaves nothing running on the candidate: the session
    // its client named as it started is killed.
    let slow = b"SELECT SLEEP(30);\n".to_vec();
    let e = apply_within(&mut cand, epoch, vec![slow], &pos, 2_000)
        .await
        .expect_err("an apply past its deadline");
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{}", e.message());
    let mut admin = w.cluster.admin_conn(1).await.expect("admin on candidate");
    let running = query_value(
        &mut admin,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%'",
    )
    .await
    .expect("processlist");
    assert_eq!(
        running.as_deref(),
        Some("0"),
        "the timed-out apply's statement still runs on the candidate"
    );
    // The real tail still applies afterwards.
    let applied = apply(&mut cand, epoch, chunks, &pos).await.expect("apply");
    let mut c = w.cluster.app_conn(1).await.expect("app on candidate");
    let n = query_value(&mut c, "SELECT COUNT(*) FROM t")
        .await
        .expect("count");
    assert_eq!(n.as_deref(), Some("4"), "after {}", applied.gtid_executed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_past_its_deadline_is_cut_or_stops_mysqld_and_leaves_nothing_running() {
    let w = World::start(1, 2, 1).await;
    let mut admin = w.cluster.admin_conn(0).await.expect("admin");
    admin
        .query_drop("CREATE TABLE app.slow (id INT PRIMARY KEY)")
        .await
        .expect("create");
    // A write that runs 8 s in a session the fence does not kill (altair's own account):
    // `SET GLOBAL read_only` waits for it.
    let holder = tokio::spawn(async move {
        admin
            .query_drop("INSERT INTO app.slow SELECT SLEEP(8)")
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let epoch = 3;
    w.set_epoch(epoch).await;
    let mut a = agent(&w, 0).await;
    let mut request = tonic::Request::new(FenceRequest {
        epoch,
        mode: FenceMode::ReadOnly as i32,
        failover_id: "t".into(),
        allow_kill: false,
    });
    request.set_timeout(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let answer = a.fence(request).await;
    let took = started.elapsed();
    let status = answer.expect_err("a fence that could not finish is not a fence");
    assert_eq!(
        status.code(),
        tonic::Code::DeadlineExceeded,
        "the agent says it ran out of time: {status:?}"
    );
    assert!(
        took < Duration::from_millis(2_500),
        "answered after {took:?}"
    );
    let mut c = w.cluster.admin_conn(0).await.expect("admin");
    let left: Vec<String> = c
        .query(
            "SELECT INFO FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE 'SET GLOBAL read_only%' OR STATE LIKE '%read lock%'",
        )
        .await
        .expect("processlist");
    assert!(
        left.is_empty(),
        "the fence left statements running: {left:?}"
    );
    let read_only = query_value(&mut c, "SELECT @@read_only")
        .await
        .expect("read_only");
    assert_eq!(
        read_only.as_deref(),
        Some("0"),
        "nothing half-done: the server is as it was"
    );
    drop(c);

    // A failover's fence may kill: the server that cannot be made read-only in time is
    // stopped within the same deadline, and only then reported fenced.
    let three = Duration::from_secs(3);
    let answer = fence(&w, 0, epoch, (FenceMode::ReadOnly, true), three).await;
    assert_stopped(&w, 0, answer, three).await;
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_promotion_keeps_its_fork_point_and_a_stop_mysqld_fence_keeps_its_deadline() {
    let w = World::start(1, 2, 1).await;
    let epoch = 5;
    w.set_epoch(epoch).await;
    // A promotion whose answer was lost is retried after the server took writes: the
    // retry answers the fork point read while it was still read-only.
    let mut cand = agent(&w, 1).await;
    let promote = || PromoteRequest {
        epoch,
        failover_id: "t".into(),
    };
    let first = cand
        .promote(promote())
        .await
        .expect("promote")
        .into_inner()
        .gtid_executed;
    let mut new = w
        .cluster
        .admin_conn(1)
        .await
        .expect("admin on the new primary");
    new.query_drop("CREATE TABLE app.after_promote (id INT)")
        .await
        .expect("the promoted host takes a write");
    let now = query_value(&mut new, "SELECT @@gtid_binlog_pos")
        .await
        .expect("position")
        .unwrap_or_default();
    assert_ne!(now, first, "the write moved the position");
    let retried = cand
        .promote(promote())
        .await
        .expect("the retried promotion")
        .into_inner()
        .gtid_executed;
    assert_eq!(
        retried, first,
        "a retried promotion answers the fork point of the first, not a position holding its writes"
    );

    // A fence that stops mysqld, blocked behind an 8 s write: killed within its deadline.
    let mut admin = w.cluster.admin_conn(0).await.expect("admin");
    admin
        .query_drop("CREATE TABLE app.slow (id INT PRIMARY KEY)")
        .await
        .expect("create");
    let holder = tokio::spawn(async move {
        admin
            .query_drop("INSERT INTO app.slow SELECT SLEEP(8)")
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let three = Duration::from_secs(3);
    let answer = fence(&w, 0, epoch, (FenceMode::StopMysqld, true), three).await;
    assert_stopped(&w, 0, answer, three).await;
    holder.abort();
}

/// A fence kills the application's sessions but not one still logging in: that may be a
/// second fence (the agent's self-fence and the leader's, on a host resumed from a
/// freeze) or an operator's admin session, and cutting its login failed it with
/// "connection closed" (seen in node_loss.rs). A login finished after the fence meets a
/// read-only server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_kills_the_applications_sessions_but_not_one_still_logging_in() {
    use tokio::io::AsyncReadExt;
    let w = World::start(1, 2, 1).await;
    let db1 = w.cluster.instance(0);
    // A login held half-way: the server's greeting read, no answer sent yet.
    let mut logging_in = tokio::net::TcpStream::connect((db1.ip(), db1.port()))
        .await
        .expect("tcp to db1");
    let mut greeting = [0u8; 512];
    let n = logging_in.read(&mut greeting).await.expect("greeting");
    assert!(n > 4, "no greeting from mysqld");
    let mut app = w.cluster.app_conn(0).await.expect("an application session");
    let mut admin = w.cluster.admin_conn(0).await.expect("admin");
    let before: Vec<String> = admin
        .query(
            "SELECT USER FROM information_schema.PROCESSLIST \
             WHERE COMMAND = 'Connect' AND USER = 'unauthenticated user'",
        )
        .await
        .expect("processlist");
    assert!(
        !before.is_empty(),
        "the held login is not in the processlist"
    );

    let epoch = 3;
    w.set_epoch(epoch).await;
    let (answer, _) = fence(
        &w,
        0,
        epoch,
        (FenceMode::ReadOnly, false),
        Duration::from_secs(3),
    )
    .await;
    let fenced = answer.expect("fenced");
    assert_eq!(fenced.outcome, FenceOutcome::ReadOnly as i32, "{fenced:?}");

    assert!(
        app.query_drop("SELECT 1").await.is_err(),
        "the application's session survived the fence"
    );
    // The held login is still open: the server has not closed it (a read would end at
    // once with 0 bytes if it had).
    let mut buf = [0u8; 16];
    match tokio::time::timeout(Duration::from_millis(500), logging_in.read(&mut buf)).await {
        Err(_) => {}
        Ok(r) => panic!("the fence cut a session still logging in: read gave {r:?}"),
    }
    let ro = query_value(&mut admin, "SELECT @@global.read_only")
        .await
        .expect("read_only");
    assert_eq!(ro.as_deref(), Some("1"), "not read-only after the fence");
}

/// A failover's fence with time to spare: `SET GLOBAL read_only` waits at each of its
/// tries for a write held open by a session the fence spares (altair's own account), so
/// every try fails well before the deadline. Allowed to kill, the fence stops mysqld
/// instead of answering "not fenced" (the failover retried that for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_whose_read_only_keeps_failing_stops_mysqld_when_it_may() {
    let w = World::start(1, 2, 1).await;
    let mut admin = w.cluster.admin_conn(0).await.expect("admin");
    admin
        .query_drop("CREATE TABLE app.held (id INT PRIMARY KEY)")
        .await
        .expect("create");
    let holder = tokio::spawn(async move {
        admin
            .query_drop("INSERT INTO app.held SELECT SLEEP(30)")
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let epoch = 3;
    w.set_epoch(epoch).await;
    // Five tries of `SET GLOBAL read_only` (each waits up to 1 s per lock: ~10 s here)
    // and the stop, well before the 19 s left for SQL: not the out-of-time path.
    let twenty = Duration::from_secs(20);
    let answer = fence(&w, 0, epoch, (FenceMode::ReadOnly, true), twenty).await;
    assert_stopped(&w, 0, answer, Duration::from_secs(16)).await;
    holder.abort();
}
