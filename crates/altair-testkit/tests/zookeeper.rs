//! The kit's ZooKeeper is real: sessions, ephemeral nodes, an ensemble that survives a node.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use altair_testkit::zookeeper::ZooKeeper;
use zookeeper_client as zk;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn client(zk: &ZooKeeper, session_timeout: Duration) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(session_timeout)
        .connect(&zk.connect_string())
        .await
        .expect("connect to the kit's zookeeper")
}

#[tokio::test]
async fn ephemeral_znode_vanishes_with_its_session() {
    let started = Instant::now();
    let server = ZooKeeper::standalone(LOCAL).await.expect("start zookeeper");
    eprintln!("standalone zookeeper ready in {:?}", started.elapsed());
    assert_eq!(server.mode(0).await.as_deref(), Some("standalone"));

    let owner = client(&server, Duration::from_secs(2)).await;
    let observer = client(&server, Duration::from_secs(10)).await;
    owner
        .create(
            "/ephemeral",
            b"agent-1",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .expect("create ephemeral znode");
    let (data, _) = observer.get_data("/ephemeral").await.expect("read it back");
    assert_eq!(data, b"agent-1");

    drop(owner); // closes the session
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = observer.check_stat("/ephemeral").await.expect("check_stat");
        if stat.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ephemeral znode outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ensemble_keeps_serving_when_one_node_dies() {
    let started = Instant::now();
    let mut ensemble = ZooKeeper::ensemble(LOCAL, 3).await.expect("start ensemble");
    eprintln!("3-node ensemble ready in {:?}", started.elapsed());
    let mut modes = Vec::new();
    for i in 0..3 {
        modes.push(ensemble.mode(i).await.expect("every node serves"));
    }
    assert_eq!(
        modes.iter().filter(|m| *m == "leader").count(),
        1,
        "{modes:?}"
    );

    let c = client(&ensemble, Duration::from_secs(6)).await;
    c.create(
        "/before",
        b"1",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .expect("write");

    let leader = modes.iter().position(|m| m == "leader").expect("a leader");
    ensemble.kill(leader);
    assert!(
        ensemble.mode(leader).await.is_none(),
        "killed node still answers"
    );

    // A new leader is elected and writes go on.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = c
            .create(
                "/after",
                b"2",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
            )
            .await;
        match res {
            Ok(_) | Err(zk::Error::NodeExists) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no write after losing one node: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let (data, _) = c.get_data("/before").await.expect("data survived");
    assert_eq!(data, b"1");

    ensemble
        .restart(leader)
        .await
        .expect("restart the killed node");
    assert!(ensemble.mode(leader).await.is_some());
}

/// `Zk::read_all` against a real server: one `multiRead` per 256 reads, answers in the
/// order asked, a missing znode an answer (not an error), and so is a read the server
/// refuses (no altair record: read as missing).
#[tokio::test]
async fn many_reads_go_in_one_request_and_answer_in_order() {
    use altair_zk::{Answer, Read, Zk};

    let server = ZooKeeper::standalone(LOCAL).await.expect("start zookeeper");
    let cfg = altair_core::config::ZkConfig::new(server.servers());
    let zk = Zk::connect(&cfg, None).await.expect("connect");
    let raw = client(&server, Duration::from_secs(10)).await;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.create("/r", b"", &open).await.expect("create /r");
    for i in 0..150 {
        raw.create(&format!("/r/n{i:03}"), format!("v{i}").as_bytes(), &open)
            .await
            .expect("create a child");
    }
    raw.set_data("/r/n007", b"changed", None)
        .await
        .expect("set data");

    // 150 present, 150 missing, interleaved, plus two listings: 302 reads, two requests.
    let paths: Vec<String> = (0..300)
        .map(|i| {
            if i % 2 == 0 {
                format!("/r/n{:03}", i / 2)
            } else {
                format!("/r/missing{i}")
            }
        })
        .collect();
    let mut reads: Vec<Read<'_>> = paths.iter().map(|p| Read::Data(p)).collect();
    reads.push(Read::Children("/r"));
    reads.push(Read::Children("/nowhere"));
    let (before, gets) = (altair_zk::sent("multi_read"), altair_zk::sent("get"));
    let answers = zk.read_all(&reads).await.expect("read_all");
    assert_eq!(
        altair_zk::sent("multi_read") - before,
        2,
        "302 reads in 2 requests"
    );
    assert_eq!(altair_zk::sent("get"), gets, "no read sent alone");
    assert_eq!(answers.len(), 302);
    for (i, answer) in answers.iter().take(300).enumerate() {
        if i % 2 == 0 {
            let k = i / 2;
            let (data, version) = answer.clone().into_versioned().expect("present");
            if k == 7 {
                assert_eq!((data.as_slice(), version), (&b"changed"[..], 1));
            } else {
                assert_eq!((data, version), (format!("v{k}").into_bytes(), 0));
            }
        } else {
            assert_eq!(answer, &Answer::Data(None), "{} is missing", paths[i]);
        }
    }
    let mut children = answers[300].clone().into_children();
    children.sort();
    assert_eq!(children.len(), 150);
    assert_eq!(children[0], "n000");
    assert_eq!(answers[301], Answer::Children(Vec::new()));
    assert!(zk.read_all(&[]).await.expect("nothing").is_empty());

    // A znode only its creator may read is no altair record (altair's nodes are all
    // world-readable): it reads as missing, and the rest of the batch is answered (one
    // planted node must not make a whole cluster unreadable).
    let owner = zk::Client::connector()
        .with_auth("digest", b"owner:secret")
        .connect(&server.connect_string())
        .await
        .expect("connect as owner");
    owner
        .create(
            "/r/private",
            b"x",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all()),
        )
        .await
        .expect("create a private node");
    let answers = zk
        .read_all(&[Read::Data("/r/n001"), Read::Data("/r/private")])
        .await
        .expect("a refused read is an answer");
    assert_eq!(answers[1], Answer::Data(None), "{answers:?}");
    assert!(matches!(&answers[0], Answer::Data(Some(_))), "{answers:?}");
    assert_eq!(zk.get("/r/private").await.expect("a plain get"), None);
}

/// Rotating altair's ZooKeeper credential: processes given the new one in `auth_file`
/// and the old one in `previous_auth_file` keep writing nodes the old one owns; the
/// leader's `restrict_acls` gives every node the new id; afterwards the old credential
/// (say, a copy left on a database host) changes nothing, and a node nobody lets altair
/// change is reported without stopping the walk.
#[tokio::test]
async fn a_rotated_credential_takes_every_node_and_the_old_one_changes_nothing() {
    use altair_zk::Zk;

    let server = ZooKeeper::standalone(LOCAL).await.expect("start zookeeper");
    let cfg = altair_core::config::ZkConfig::new(server.servers());
    let (old, new) = ("altair:old-secret", "altair:new-secret");
    // The root left open by someone, with a node under it that someone else may write
    // and altair may not touch.
    let stranger = zk::Client::connector()
        .with_auth("digest", b"stranger:pw")
        .connect(&server.connect_string())
        .await
        .expect("a stranger's session");
    let theirs = [
        zk::Acl::new_const(zk::Permission::ALL, "auth", ""),
        zk::Acl::new_const(zk::Permission::READ, "world", "anyone"),
    ];
    for (path, acls) in [
        ("/altair", zk::Acls::anyone_all()),
        ("/altair/planted", zk::Acls::new(&theirs)),
    ] {
        stranger
            .create(path, b"", &zk::CreateMode::Persistent.with_acls(acls))
            .await
            .expect(path);
    }
    let before = Zk::connect(&cfg, Some(old)).await.expect("old credential");
    before.ensure_layout().await.expect("layout");
    for path in ["/altair/clusters/c1/state", "/altair/clusters/c1/hosts/db1"] {
        before
            .put(path, b"{}")
            .await
            .expect("a node of the old credential");
    }

    let rotating = Zk::connect_rotating(&cfg, Some(new), Some(old))
        .await
        .expect("new + previous");
    // Still writable during the rotation ...
    rotating
        .put("/altair/clusters/c1/state", b"{\"rotating\":1}")
        .await
        .expect("a node the old credential owns stays writable");
    // ... and the leader moves every node to the new id, reporting the stranger's.
    let report = rotating.restrict_acls().await.expect("restrict");
    assert!(report.changed >= 8, "{report:?}");
    assert_eq!(report.refused_total, 1, "{report:?}");
    assert!(report.refused[0].contains("/altair/planted"), "{report:?}");
    let again = rotating.restrict_acls().await.expect("again");
    assert_eq!(again.changed, 0, "{again:?}");

    let leaked = zk::Client::connector()
        .with_auth("digest", old.as_bytes())
        .connect(&server.connect_string())
        .await
        .expect("a session with the old credential");
    for path in [
        "/altair",
        "/altair/clusters",
        "/altair/clusters/c1",
        "/altair/clusters/c1/state",
        "/altair/clusters/c1/hosts/db1",
    ] {
        assert_eq!(
            leaked
                .set_data(path, b"forged", None)
                .await
                .expect_err(path),
            zk::Error::NoAuth,
            "the old credential still changes {path}"
        );
    }
    // The new credential alone does everything.
    let after = Zk::connect(&cfg, Some(new)).await.expect("new credential");
    after
        .put("/altair/clusters/c1/hosts/db1", b"{\"new\":1}")
        .await
        .expect("written with the new credential alone");
}

/// An identity per role against a real ZooKeeper: the orchestrators' session lays out the
/// root and a cluster; the monitors' session writes host and health records and enrolment
/// requests, nothing else (not a cluster's node, state or journal); a record left in the
/// monitors' zone under the orchestrators' ACL (a monitor not yet moved to its own
/// credential wrote it) is replaced with the zone's ACL on the monitors' next write; and
/// the leader's `restrict_acls` finds nothing to change afterwards.
#[tokio::test]
async fn with_an_identity_per_role_a_monitor_writes_its_zone_and_nothing_else() {
    use altair_zk::{Zk, ZkError, digest_id};

    let server = ZooKeeper::standalone(LOCAL).await.expect("start zookeeper");
    let (o, m) = ("altair:orchestrators-secret", "monitor:monitors-secret");
    let cfg = altair_core::config::ZkConfig {
        orchestrator_id: Some(digest_id(o)),
        monitor_id: Some(digest_id(m)),
        ..altair_core::config::ZkConfig::new(server.servers())
    };
    let orchestrator = Zk::connect(&cfg, Some(o)).await.expect("orchestrators");
    assert_eq!(orchestrator.role(), Some(altair_zk::Role::Orchestrator));
    let monitor = Zk::connect(&cfg, Some(m)).await.expect("monitors");
    assert!(!monitor.creates_clusters());
    let err = Zk::connect(&cfg, Some("someone:else"))
        .await
        .expect_err("neither");
    assert!(matches!(err, ZkError::Identity { .. }), "{err}");

    orchestrator.ensure_layout().await.expect("layout");
    let l = orchestrator.layout().clone();
    let c1 = altair_core::ClusterName::new("c1").expect("name");
    let db1 = altair_core::HostName::new("db1").expect("name");
    for parent in l.cluster_parents(&c1) {
        orchestrator.ensure_path(&parent).await.expect(&parent);
    }
    orchestrator
        .put(&l.cluster_state(&c1), b"{}")
        .await
        .expect("state");

    // The monitors' zone.
    monitor
        .put(&l.host(&c1, &db1), b"{\"h\":1}")
        .await
        .expect("host record");
    assert!(
        monitor
            .put_while(&l.host(&c1, &db1), &l.host_health(&c1, &db1), b"{}")
            .await
            .expect("health")
    );
    let c2 = altair_core::ClusterName::new("c2").expect("name");
    monitor
        .create_once(&l.enrol_request(&c2))
        .await
        .expect("an enrolment request");
    // ensure_path passes prefixes that exist though it may not create them.
    monitor
        .ensure_path(&l.hosts(&c1))
        .await
        .expect("existing prefixes");
    // Nothing else.
    for (what, result) in [
        (
            "state",
            monitor.put(&l.cluster_state(&c1), b"{\"forged\":1}").await,
        ),
        (
            "journal",
            monitor.put(&l.failover_journal(&c1), b"{}").await,
        ),
        ("cluster", monitor.ensure_path(&l.hosts(&c2)).await),
        (
            "history",
            monitor.put(&l.history_entry(&c1, "1-x"), b"{}").await,
        ),
    ] {
        let e = result.expect_err(what);
        assert!(e.to_string().contains("not authorized"), "{what}: {e}");
    }
    assert_eq!(
        orchestrator.get(&l.cluster_state(&c1)).await.expect("read"),
        Some(b"{}".to_vec())
    );

    // A record an orchestrators'-credential session left in the zone: the monitors'
    // next write replaces it, with the zone's ACL.
    let db2 = altair_core::HostName::new("db2").expect("name");
    let shared = altair_core::config::ZkConfig::new(server.servers());
    let old_monitor = Zk::connect(&shared, Some(o))
        .await
        .expect("a shared-credential monitor");
    old_monitor
        .put(&l.host(&c1, &db2), b"{\"h\":2}")
        .await
        .expect("a record under the orchestrators' ACL only");
    monitor
        .put(&l.host(&c1, &db2), b"{\"h\":3}")
        .await
        .expect("replaced");
    assert_eq!(
        orchestrator.get(&l.host(&c1, &db2)).await.expect("read"),
        Some(b"{\"h\":3}".to_vec())
    );
    let report = orchestrator.restrict_acls().await.expect("restrict");
    assert_eq!((report.changed, report.refused_total), (0, 0), "{report:?}");
}
