//! Operator actions that must stop short, end to end: a failing pre-failover hook
//! refuses the failover, a switchover whose candidate cannot catch up is rolled back, and
//! altairctl without a reachable orchestrator says what to check.

use std::time::Duration;

use altair_e2e::ops::ctl_json;
use altair_e2e::stderr;
use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_failover_hook_aborts_the_failover_when_configured_so() {
    let w = World::start_ha(
        3,
        1,
        1,
        3600,
        &[
            (
                "ALTAIR_ORCHESTRATOR__HOOKS__PRE_FAILOVER",
                "[\"/bin/sh\", \"-c\", \"echo change freeze >&2; exit 3\"]",
            ),
            ("ALTAIR_ORCHESTRATOR__HOOKS__ABORT_ON_PRE_FAILURE", "true"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let net = w.net.as_ref().expect("net");

    // An operator's forced failover is refused, with the hook's reason; nothing moved.
    let record = ctl_json(&w, &["--json", "failover", "c1", "--force", "--yes"], 1);
    assert_eq!(record["outcome"], "refused", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|r| r.contains("change freeze")),
        "{record}"
    );
    assert_eq!(w.primary_dns().await, vec![net.host(0).ip]);
    let mut app = w.cluster.app_conn(0).await.expect("app");
    app.query_drop("CREATE TABLE h (id INT PRIMARY KEY)")
        .await
        .expect("the primary still takes writes");

    // An automatic one too, and automatic failover is then held (status says why).
    let pid = w.cluster.instance(0).pid().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    w.wait_until("failover held by the hook", Duration::from_secs(20), |s| {
        s.clusters[0]
            .failover_blocked
            .as_deref()
            .is_some_and(|b| b.contains("pre-failover hook"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.primary_dns().await,
        vec![net.host(0).ip],
        "no failover while held"
    );
    let status = w.status().await.expect("status");
    assert_eq!(
        status.clusters[0].epoch,
        Some(3),
        "two refused attempts, nothing else: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_whose_candidate_cannot_catch_up_is_rolled_back() {
    let w = World::start_ha(
        3,
        1,
        1,
        3600,
        &[(
            "ALTAIR_ORCHESTRATOR__ORCHESTRATOR__SWITCHOVER_CATCH_UP_TIMEOUT_MS",
            "1000",
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let net = w.net.as_ref().expect("net");
    let db2 = w.cluster.instance(1).name().to_owned();
    // db2 applies what it receives a minute late: it cannot catch up within 1 s.
    let mut c = w.cluster.admin_conn(1).await.expect("admin");
    for sql in [
        "STOP SLAVE",
        "CHANGE MASTER TO MASTER_DELAY=60",
        "START SLAVE",
    ] {
        c.query_drop(sql).await.expect(sql);
    }
    let mut app = w.cluster.app_conn(0).await.expect("app");
    app.query_drop("CREATE TABLE r (id INT PRIMARY KEY)")
        .await
        .expect("create");
    app.query_drop("INSERT INTO r VALUES (1)")
        .await
        .expect("insert");
    drop(app);
    // Its IO thread reconnects after the CHANGE MASTER: a switchover asked in that instant
    // would be refused for a replication_broken candidate, not rolled back.
    w.wait_health(&db2, "healthy", Duration::from_secs(10))
        .await;

    let record = ctl_json(&w, &["--json", "switchover", "c1", "--to", &db2], 1);
    assert_eq!(record["outcome"], "failed", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|r| r.contains("rolled back")),
        "{record}"
    );
    // The old primary is the primary again and takes writes; DNS never moved.
    assert_eq!(w.primary_dns().await, vec![net.host(0).ip]);
    let mut app = w.cluster.app_conn(0).await.expect("app");
    app.query_drop("INSERT INTO r VALUES (2)")
        .await
        .expect("the old primary takes writes again");
    let status = w.status().await.expect("status");
    assert_eq!(
        status.clusters[0].primary.as_deref(),
        Some(w.cluster.instance(0).name())
    );
}

#[test]
fn altairctl_without_a_reachable_orchestrator_exits_3_and_says_what_to_check() {
    let dir = altair_e2e::ConfigDir::new();
    let tls = dir.tls("operator", "altair://operator/t?role=operator");
    let cfg = dir.path().join("altairctl.toml");
    std::fs::write(
        &cfg,
        format!(
            "orchestrators = [\"127.0.0.1:1\"]\ntimeout_ms = 500\n{}",
            tls.section()
        ),
    )
    .expect("write");
    for args in [
        vec!["switchover", "c1"],
        vec!["failover", "c1", "--yes"],
        vec!["rejoin", "db1", "--cluster", "c1"],
        vec!["topology", "c1"],
    ] {
        let out = std::process::Command::new(altair_e2e::bin("altairctl"))
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .output()
            .expect("altairctl");
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no orchestrator answered")
                && stderr(&out).contains("altairctl.toml"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
