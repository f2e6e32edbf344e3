//! Operator actions end to end (issue 6): planned switchover under a write workload,
//! forced failover, rejoin of an old primary with errant transactions (refused, then
//! forced), hooks, metrics scraped from every service, and altairctl's errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_e2e::ops::{
    create_workload_table, ctl, ctl_json, declared, host_index, ids_on, json, scrape, scrape_text,
    workload,
};
use altair_e2e::world::World;
use altair_e2e::{stderr, stdout};
use altair_testkit::mariadb::sql::query_maps;
use mysql_async::prelude::Queryable;

/// Who `i` replicates from, per SHOW SLAVE STATUS (host, IO and SQL threads running).
async fn source_of(w: &World, i: usize) -> Option<(String, bool)> {
    let mut c = w.cluster.admin_conn(i).await.expect("admin");
    let rows = query_maps(&mut c, "SHOW SLAVE STATUS")
        .await
        .expect("status");
    let r = rows.first()?;
    let running = r["Slave_IO_Running"].as_deref() == Some("Yes")
        && r["Slave_SQL_Running"].as_deref() == Some("Yes");
    Some((r["Master_Host"].clone().unwrap_or_default(), running))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_a_write_workload_loses_nothing_and_the_old_primary_replicates() {
    let w = World::start_ha(3, 1, 1, 3600, &[]).await;
    create_workload_table(&w).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let net = w.net.as_ref().expect("net");
    let target = w.cluster.instance(1).name().to_owned();

    let sampler = altair_testkit::checker::ReadOnlySampler::start(&w.cluster);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let w = &w;
        async move { workload(w, stop).await }
    };
    let operator = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        let out = tokio::task::block_in_place(|| {
            ctl(&w, &["--json", "switchover", "c1", "--to", &target])
        });
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::SeqCst);
        (out, started, took)
    };
    let (acked, (out, started, took)) = tokio::join!(writer, operator);
    assert!(
        out.status.success(),
        "switchover failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let record = json(&out);
    assert_eq!(record["kind"], "switchover", "{record}");
    assert_eq!(record["outcome"], "succeeded", "{record}");
    assert_eq!(record["new_primary"], target.as_str(), "{record}");
    assert_eq!(
        w.primary_dns().await,
        vec![net.host(1).ip],
        "DNS moved to the target"
    );

    // The pause the client saw: the largest gap between two acknowledged writes.
    let pause = acked
        .windows(2)
        .filter(|p| p[1].2 > started)
        .map(|p| p[1].2 - p[0].2)
        .max()
        .expect("writes around the switchover");
    eprintln!(
        "switchover: altairctl returned after {took:?}; {} writes acknowledged; largest write pause {pause:?} (DNS TTL 1 s included)",
        acked.len()
    );
    assert!(
        acked.iter().any(|(_, ip, _)| *ip == net.host(1).ip),
        "no write was acknowledged by the new primary"
    );

    // Zero lost writes, never two writable, no late ack from the old primary.
    let rounds = sampler.stop().await;
    let on_new = ids_on(&w, 1).await;
    let acks: Vec<altair_testkit::checker::Ack> = acked
        .iter()
        .map(|(id, ip, at)| altair_testkit::checker::Ack {
            id: *id,
            instance: host_index(&w, *ip),
            at: *at,
        })
        .collect();
    altair_testkit::checker::judge(&rounds, &acks, 0, 1, &on_new).assert_clean(false);

    // The old primary replicates from the new one, read-only, with the same data.
    let (src, running) = source_of(&w, 0).await.expect("old primary is a replica");
    assert_eq!(src, net.host(1).ip.to_string());
    assert!(running, "the old primary's replication threads run");
    let gtid = w.cluster.gtid_current_pos(1).await.expect("gtid");
    for i in [0, 2] {
        w.cluster
            .wait_for_gtid(i, &gtid, Duration::from_secs(20))
            .await
            .expect("replica follows the new primary");
        assert_eq!(
            ids_on(&w, i).await,
            on_new,
            "host {i} differs from the new primary"
        );
    }
    let status = w.status().await.expect("status");
    assert!(status.clusters[0].needs_rejoin.is_empty(), "{status:?}");

    // And back, altair choosing the candidate: the old primary is a valid one again.
    let out = ctl(&w, &["--json", "switchover", "c1"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_ne!(w.primary_dns().await, vec![net.host(1).ip]);

    // Metrics: every service answers /metrics; the orchestrator counted both switchovers
    // and timed their stages.
    let o = &w.fleet.orchestrators[0];
    let m = scrape(&o.metrics).await;
    assert_eq!(
        m.get("altair_failovers_total{cluster=\"c1\",kind=\"switchover\",outcome=\"succeeded\"}"),
        Some(&2.0),
        "{m:?}"
    );
    assert_eq!(m.get("altair_orchestrator_leader"), Some(&1.0), "{m:?}");
    assert!(
        m.get("altair_failover_stage_seconds_count{stage=\"promote\"}")
            .is_some_and(|n| *n >= 2.0),
        "{m:?}"
    );
    let monitor = scrape(&w.fleet.monitors[0].metrics).await;
    assert!(
        monitor
            .get("altair_monitor_heartbeats_total")
            .is_some_and(|n| *n > 0.0),
        "{monitor:?}"
    );
    let agent = scrape(&w.fleet.agents[0].metrics).await;
    // Every metric the Grafana dashboard charts is one the services declare.
    let mut names = std::collections::BTreeSet::new();
    for addr in [
        &o.metrics,
        &w.fleet.monitors[0].metrics,
        &w.fleet.agents[0].metrics,
    ] {
        names.extend(declared(&scrape_text(addr).await));
    }
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/grafana/altair-dashboard.json"),
    )
    .expect("dashboard");
    for name in dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("altair_"))
    {
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            names.contains(family),
            "the dashboard charts {name}, which no service declares: {names:?}"
        );
    }
    assert_eq!(agent.get("altair_agent_mysql_up"), Some(&1.0), "{agent:?}");
    assert!(
        agent
            .get("altair_agent_probes_total{result=\"ok\"}")
            .is_some_and(|n| *n > 0.0),
        "{agent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_primary_with_an_errant_transaction_is_refused_until_forced() {
    let hooks = tempfile::tempdir().expect("dir");
    let pre = hooks.path().join("pre.json");
    let post = hooks.path().join("post.json");
    let pre_env = hooks.path().join("pre.env");
    let pre_cmd = format!(
        "[\"/bin/sh\", \"-c\", \"env > {}; cat > {}\"]",
        pre_env.display(),
        pre.display()
    );
    let post_cmd = format!("[\"/bin/sh\", \"-c\", \"cat > {}\"]", post.display());
    let w = World::start_ha(
        3,
        1,
        1,
        3600,
        &[
            ("ALTAIR_ORCHESTRATOR__ORCHESTRATOR__AUTO_REJOIN", "false"),
            ("ALTAIR_ORCHESTRATOR__HOOKS__PRE_FAILOVER", &pre_cmd),
            ("ALTAIR_ORCHESTRATOR__HOOKS__POST_FAILOVER", &post_cmd),
        ],
    )
    .await;
    let mut app = w.cluster.app_conn(0).await.expect("app");
    app.query_drop("CREATE TABLE e (id INT PRIMARY KEY)")
        .await
        .expect("create");
    app.query_drop("INSERT INTO e VALUES (1)")
        .await
        .expect("insert");
    drop(app);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let net = w.net.as_ref().expect("net");
    let (db1, db2, db3) = (
        w.cluster.instance(0).name().to_owned(),
        w.cluster.instance(1).name().to_owned(),
        w.cluster.instance(2).name().to_owned(),
    );

    // altairctl refuses what it cannot do, saying why, with exit codes scripts rely on.
    let out = ctl(&w, &["failover", "c1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --yes and no terminal: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let out = ctl(&w, &["failover", "c1", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("alive"),
        "a live primary needs --force: {}",
        stderr(&out)
    );
    let out = ctl(&w, &["switchover", "c1", "--to", "nosuchhost"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nosuchhost"), "{}", stderr(&out));
    let out = ctl(&w, &["switchover", "c1", "--to", "Bad_Name!"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = ctl(&w, &["rejoin", &db3, "--cluster", "c1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not waiting for rejoin"),
        "{}",
        stderr(&out)
    );
    let out = ctl(&w, &["topology", "nosuchcluster"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = ctl(&w, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(w.primary_dns().await, vec![net.host(0).ip], "nothing moved");

    // Forced failover of a live primary.
    let out = ctl(
        &w,
        &["--json", "failover", "c1", "--to", &db2, "--force", "--yes"],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let record = json(&out);
    assert_eq!(record["kind"], "forced", "{record}");
    assert_eq!(w.primary_dns().await, vec![net.host(1).ip]);
    let pre_event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&pre).expect("the pre-failover hook ran"))
            .expect("JSON");
    assert_eq!(pre_event["event"], "pre_failover");
    assert_eq!(pre_event["old_primary"], db1.as_str());
    // The hook's environment is cleared: none of the orchestrator's variables (which
    // may hold secrets given by password_env) reaches it.
    let env = std::fs::read_to_string(&pre_env).expect("the hook's environment");
    assert!(env.contains("ALTAIR_HOOK=pre_failover"), "{env}");
    assert!(!env.contains("ALTAIR_ORCHESTRATOR__"), "{env}");
    // The hook writes its file while the test waits: it exists before it is whole.
    let deadline = Instant::now() + Duration::from_secs(5);
    let post_event: serde_json::Value = loop {
        let read = std::fs::read(&post).ok();
        if let Some(v) = read
            .as_deref()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the post-failover hook wrote no JSON within 5 s: {:?}",
            read.map(|b| String::from_utf8_lossy(&b).into_owned())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(post_event["new_primary"], db2.as_str(), "{post_event}");

    // The topology tree: db2 primary, db3 under it, db1 detached and waiting (agents
    // re-probe right after each action; allow a probe round).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ctl(&w, &["--json", "topology", "c1"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let t = json(&out);
        let host = |n: &str| {
            t["hosts"]
                .as_array()
                .and_then(|a| a.iter().find(|h| h["host"] == n))
                .cloned()
                .expect("host")
        };
        let as_expected = t["primary"] == db2.as_str()
            && host(&db2)["read_only"] == false
            && host(&db3)["replicates_from"] == db2.as_str()
            && host(&db1)["needs_rejoin"] == true
            && host(&db1)["read_only"] == true;
        if as_expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "topology after the failover: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = ctl(&w, &["topology", "c1"]);
    assert!(
        stdout(&out).contains("waits for rejoin"),
        "{}",
        stdout(&out)
    );

    // Someone with privileges writes on the fenced old primary: an errant transaction.
    let mut admin = w.cluster.admin_conn(0).await.expect("admin");
    admin
        .query_drop("INSERT INTO app.e VALUES (42)")
        .await
        .expect("admin write");
    let errant_pos = w.cluster.gtid_current_pos(0).await.expect("gtid");

    let r = ctl_json(&w, &["--json", "rejoin", &db1], 1);
    assert_eq!(r["rejoined"], false, "{r}");
    let errant = r["errant_gtids"].as_str().expect("errant").to_owned();
    assert!(
        errant_pos.contains(&errant) || errant.starts_with("0-"),
        "{errant} vs {errant_pos}"
    );
    let status = w.status().await.expect("status");
    assert!(status.clusters[0].errant.contains_key(&db1), "{status:?}");
    assert!(
        source_of(&w, 0).await.is_none(),
        "a refused host is left alone"
    );

    // Forced: the errant transaction is saved on the host, reverted, and db1 replicates.
    let out = ctl(&w, &["--json", "rejoin", &db1, "--force"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let r = json(&out);
    assert_eq!(r["rejoined"], true, "{r}");
    let saved = std::fs::read_to_string(r["saved_to"].as_str().expect("path")).expect("saved file");
    assert!(
        saved.contains(&format!("GTID {errant}")),
        "the saved events hold {errant}"
    );
    let mut app = w.cluster.app_conn(1).await.expect("app on db2");
    app.query_drop("INSERT INTO e VALUES (2)")
        .await
        .expect("write on db2");
    let gtid = w.cluster.gtid_current_pos(1).await.expect("gtid");
    w.cluster
        .wait_for_gtid(0, &gtid, Duration::from_secs(20))
        .await
        .expect("db1 replicates from db2");
    let mut c = w.cluster.admin_conn(0).await.expect("admin");
    let rows = query_maps(&mut c, "SELECT id FROM app.e ORDER BY id")
        .await
        .expect("rows");
    let got: Vec<String> = rows.iter().filter_map(|r| r["id"].clone()).collect();
    assert_eq!(
        got,
        vec!["1", "2"],
        "the errant row is reverted, db2's rows arrived"
    );
    w.wait_until("db1 no longer waiting", Duration::from_secs(10), |s| {
        s.clusters[0].needs_rejoin.is_empty() && s.clusters[0].errant.is_empty()
    })
    .await;
}

/// History has a retention: with `history_keep = 2`, three switchovers leave the newest
/// two audit records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_keeps_only_the_newest_records() {
    let w = World::start_ha(
        3,
        1,
        1,
        3600,
        &[("ALTAIR_ORCHESTRATOR__ORCHESTRATOR__HISTORY_KEEP", "2")],
    )
    .await;
    let mut ids = Vec::new();
    for round in 0..3 {
        w.wait_until("every host healthy", Duration::from_secs(30), |s| {
            let c = &s.clusters[0];
            c.epoch.is_some()
                && c.needs_rejoin.is_empty()
                && c.hosts
                    .iter()
                    .all(|h| h.health.as_deref() == Some("healthy"))
        })
        .await;
        let out = ctl(&w, &["--json", "switchover", "c1"]);
        assert!(out.status.success(), "switchover {round}: {}", stderr(&out));
        ids.push(json(&out)["id"].as_str().expect("id").to_owned());
    }
    let out = ctl(&w, &["--json", "history", "c1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kept: Vec<String> = json(&out)
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(kept, vec![ids[2].clone(), ids[1].clone()], "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommissioned_host_is_forgotten_and_stays_forgotten() {
    let mut w = World::start_ha(3, 1, 1, 3600, &[]).await;
    w.wait_until("cluster recorded", Duration::from_secs(20), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    // db3 is decommissioned: its agent and mysqld stop.
    w.fleet.agents[2].kill();
    w.cluster.instance_mut(2).kill();

    let out = ctl(&w, &["forget", "c1", "db1"]);
    assert!(!out.status.success(), "the primary was forgotten");
    assert!(stderr(&out).contains("primary"), "{}", stderr(&out));
    let out = ctl(&w, &["forget", "c1", "db2"]);
    assert!(
        !out.status.success(),
        "a host whose agent runs was forgotten"
    );
    assert!(stderr(&out).contains("still answers"), "{}", stderr(&out));
    let out = ctl(&w, &["forget", "c1", "nosuch"]);
    assert!(!out.status.success(), "an unknown host was forgotten");
    assert!(stderr(&out).contains("not registered"), "{}", stderr(&out));

    let out = ctl(&w, &["--json", "forget", "c1", "db3"]);
    assert!(out.status.success(), "forget db3: {}", stderr(&out));
    assert_eq!(json(&out)["forgotten"], true);
    let hosts = |s: &altairctl::status::Status| -> Vec<String> {
        s.clusters[0].hosts.iter().map(|h| h.name.clone()).collect()
    };
    w.wait_until("db3 gone", Duration::from_secs(10), |s| {
        hosts(s) == ["db1", "db2"]
    })
    .await;
    // Past the monitor's reconciliation and its detection window: nothing brings it back.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let s = w.status().await.expect("status");
    assert_eq!(hosts(&s), ["db1", "db2"]);
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("zookeeper");
    let c = altair_core::ClusterName::new("c1".to_owned()).expect("name");
    let h = altair_core::HostName::new("db3".to_owned()).expect("name");
    for path in [zk.layout().host(&c, &h), zk.layout().host_health(&c, &h)] {
        assert!(
            !zk.exists(&path).await.expect("exists"),
            "{path} still exists"
        );
    }
    assert!(
        s.clusters[0]
            .hosts
            .iter()
            .all(|h| h.health.as_deref() == Some("healthy")),
        "{s:?}"
    );
}
