//! The application integration kit (issue "Operating a fleet"): a client writing through
//! a real HAProxy running the shipped `deploy/haproxy/haproxy.cfg` (Debian's `haproxy`,
//! following `primary.c1` and `replicas.c1` in a real BIND) writes again within 1 s of
//! the new primary taking writes, and reads through the replicas' name stop reaching a
//! dead replica. Real mariadbd, agents, monitor, orchestrator, ZooKeeper, namespaces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use altair_e2e::ops::kill_mysqld;
use altair_e2e::world::World;
use altair_testkit::haproxy::{HaProxy, HaProxyOptions};
use mysql_async::prelude::Queryable;

fn through(w: &World, addr: SocketAddr) -> mysql_async::Opts {
    let app = w.cluster.app();
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(app.user.clone()))
        .pass(Some(app.password.clone()))
        .db_name(Some("app"))
        .prefer_socket(false)
        .into()
}

/// A pool's connect attempt: given up after 300 ms (a client tier tuned for failover, as
/// deploy/pools.md advises: a short connect timeout and a retry).
async fn connect(opts: &mysql_async::Opts) -> Option<mysql_async::Conn> {
    tokio::time::timeout(
        Duration::from_millis(300),
        mysql_async::Conn::new(opts.clone()),
    )
    .await
    .ok()?
    .ok()
}

async fn server_id(opts: &mysql_async::Opts) -> Option<u32> {
    let mut c = connect(opts).await?;
    c.query_first("SELECT @@server_id").await.ok()?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_through_haproxy_follows_the_failover_and_leaves_a_dead_replica_out() {
    let w = World::start_ha(3, 1, 1, 3600, &[]).await;
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy/haproxy.cfg");
    let proxy = HaProxy::start(
        &config,
        HaProxyOptions {
            dns: w.dns.as_ref().expect("dns").addr(),
            primary: "primary.c1.db.altair.test".into(),
            replicas: "replicas.c1.db.altair.test".into(),
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        },
    )
    .await
    .expect("HAProxy with the shipped config");
    let write = through(&w, proxy.write_addr());
    let read = through(&w, proxy.read_addr());
    let ids = |i: usize| w.cluster.instance(i).server_id();

    // Writes reach the primary; reads reach both replicas.
    let started = Instant::now();
    let mut c = loop {
        if let Some(c) = connect(&write).await {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no connection through HAProxy's write frontend\n{}",
            proxy.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    c.query_drop("CREATE TABLE h (id INT PRIMARY KEY)")
        .await
        .expect("create through HAProxy");
    let sid: Option<u32> = c
        .query_first("SELECT @@server_id")
        .await
        .expect("server id");
    assert_eq!(sid, Some(ids(0)), "writes go to db1");
    drop(c);
    let mut seen = std::collections::BTreeSet::new();
    let started = Instant::now();
    while seen.len() < 2 {
        if let Some(id) = server_id(&read).await {
            assert_ne!(id, ids(0), "a read went to the primary");
            seen.insert(id);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "reads reached only {seen:?}\n{}",
            proxy.log_tail(20)
        );
    }

    // db3's mysqld dies: reads stop reaching it.
    let killed = Instant::now();
    kill_mysqld(&w, 2);
    let mut clean = 0;
    while clean < 20 {
        match server_id(&read).await {
            Some(id) if id != ids(2) => clean += 1,
            _ => clean = 0,
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "reads through replicas.c1 still reach the dead db3 10 s after its mysqld died\n{}",
            proxy.log_tail(20)
        );
    }
    let left_rotation = killed.elapsed();

    // A writer through HAProxy, and a probe straight at db2 (the only candidate left).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (write, stop) = (write.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ok: Vec<Instant> = Vec::new();
            let mut conn = None;
            let mut id = 0;
            while !stop.load(Ordering::SeqCst) {
                if conn.is_none() {
                    conn = connect(&write).await;
                }
                let Some(c) = conn.as_mut() else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                id += 1;
                match c.query_drop(format!("INSERT INTO h VALUES ({id})")).await {
                    Ok(()) => ok.push(Instant::now()),
                    Err(_) => conn = None,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ok
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kill = Instant::now();
    kill_mysqld(&w, 0);
    let direct = w.app_opts(w.net.as_ref().expect("net").host(1).ip);
    let writable = loop {
        if let Some(mut c) = connect(&direct).await
            && c.query_drop("DO 1").await.is_ok()
            && c.query_first::<u8, _>("SELECT @@global.read_only")
                .await
                .ok()
                .flatten()
                == Some(0)
        {
            break Instant::now();
        }
        assert!(
            kill.elapsed() < Duration::from_secs(60),
            "db2 never took writes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let ok = writer.await.expect("writer");
    let resumed = ok.iter().copied().find(|t| *t > kill).unwrap_or_else(|| {
        panic!(
            "no write through HAProxy after the failover\n{}",
            proxy.log_tail(30)
        )
    });
    let behind = resumed.saturating_duration_since(writable);
    eprintln!(
        "haproxy: a dead replica left the read rotation {left_rotation:?} after its mysqld died; db2 writable {:?} after the kill, a write through HAProxy {:?} after the kill ({behind:?} after db2 took writes)",
        writable - kill,
        resumed - kill
    );
    assert!(
        behind <= Duration::from_secs(1),
        "the client wrote through HAProxy {behind:?} after the new primary took writes (bound 1 s)\n{}",
        proxy.log_tail(30)
    );
    // The rows written through HAProxy after the failover are on db2.
    let mut c = w.cluster.admin_conn(1).await.expect("admin on db2");
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM app.h")
        .await
        .expect("count");
    assert!(n.unwrap_or(0) > 0);
}
