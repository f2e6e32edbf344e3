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
    AgentClient::connect(format!("http://{}", w.fleet.agents[i].address))
        .await
        .expect("agent")
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
    let mut old = agent(&w, 0).await;
    let mut cand = agent(&w, 1).await;
    let mut other = agent(&w, 2).await;

    // The crashed primary's agent: fencing a dead mysqld succeeds (nothing to do).
    old.fence(FenceRequest {
        epoch,
        mode: FenceMode::ReadOnly as i32,
        failover_id: "t".into(),
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
    let salvage = old
        .salvage_binlog(SalvageBinlogRequest {
            epoch,
            after_gtid: caught.gtid_executed.clone(),
            failover_id: "t".into(),
        })
        .await
        .expect("salvage")
        .into_inner();
    assert_eq!(
        salvage.transaction_count, 5,
        "five transactions only the primary had"
    );
    let applied = cand
        .apply_salvage(ApplySalvageRequest {
            epoch,
            events: salvage.events,
            gtids: salvage.gtids.clone(),
            failover_id: "t".into(),
        })
        .await
        .expect("apply")
        .into_inner();
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
    // The other agent has not seen epoch 7 yet, so 6 passes its check but has no source:
    assert_eq!(
        stale.expect_err("no source").code(),
        tonic::Code::InvalidArgument
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
