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
