//! ZooKeeper over TLS: a real ZooKeeper 3.8 serving a TLS client port (Netty, PEM
//! stores, `ssl.clientAuth=need`) with a CA of its own; every agent, monitor,
//! orchestrator and altairctl is configured with that port only and a client
//! certificate of that CA. Real mariadbd in network namespaces, BIND, one orchestrator.

use std::time::Duration;

use altair_core::config::ZkConfig;
use altair_e2e::ops::{ctl, host_index, kill_mysqld, wait_dns_moved, zk_gets_a_session};
use altair_e2e::world::World;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_talks_to_zookeeper_over_tls_and_the_port_refuses_other_clients() {
    // Every host turned healthy: agents registered, monitors published their health and
    // altairctl read it, all through the TLS port.
    let w = World::start_ha_zk_tls(3, 1).await;
    let fleet_cfg = w.fleet.zk_config();
    assert!(fleet_cfg.tls(), "the fleet is not configured for TLS");
    assert_ne!(
        fleet_cfg.servers,
        w.zk.servers(),
        "the services were given the plaintext port"
    );

    // The port itself: a client with the fleet's certificate gets in (the control) …
    let mut cfg = fleet_cfg.clone();
    cfg.session_timeout_ms = 4_000;
    assert!(
        zk_gets_a_session(&cfg).await,
        "a client with a certificate of the CA was refused"
    );
    // … one speaking plaintext to it does not …
    let plain = ZkConfig {
        tls_ca_file: None,
        tls_cert_file: None,
        tls_key_file: None,
        ..cfg.clone()
    };
    assert!(
        !zk_gets_a_session(&plain).await,
        "plaintext was served on the TLS port"
    );
    // … nor one without a client certificate …
    let anonymous = ZkConfig {
        tls_cert_file: None,
        tls_key_file: None,
        ..cfg.clone()
    };
    assert!(
        !zk_gets_a_session(&anonymous).await,
        "a client without a certificate got in"
    );
    // … nor one whose certificate comes from another CA (the gRPC fleet's) …
    let foreign = w
        .fleet
        .client_tls("zk-foreign", "altair://operator/mallory?role=operator")
        .expect("a certificate of another CA");
    let stranger = ZkConfig {
        tls_cert_file: Some(foreign.cert.clone()),
        tls_key_file: Some(foreign.key.clone()),
        ..cfg.clone()
    };
    assert!(
        !zk_gets_a_session(&stranger).await,
        "a certificate of another CA got in"
    );
    // … nor one that does not trust the server's certificate.
    let trusting_another = ZkConfig {
        tls_ca_file: Some(foreign.ca.clone()),
        ..cfg.clone()
    };
    assert!(
        !zk_gets_a_session(&trusting_another).await,
        "the client accepted a server certificate its CA did not sign"
    );

    // A failover end to end: detection, the journal, the epoch and the record all go
    // through ZooKeeper over TLS.
    let net = w.net.as_ref().expect("net");
    let old_ip = net.host(0).ip;
    tokio::time::sleep(Duration::from_secs(2)).await;
    kill_mysqld(&w, 0);
    let (new_ip, took) = wait_dns_moved(&w, old_ip, Duration::from_secs(60)).await;
    eprintln!("DNS moved to {new_ip} {took:?} after kill -9");
    let new = host_index(&w, new_ip);
    let mut c = w.cluster.admin_conn(new).await.expect("the new primary");
    c.query_drop("CREATE TABLE app.after_zk_tls_failover (id INT PRIMARY KEY)")
        .await
        .expect("the new primary takes a write");
    // altairctl reads the cluster's state through the TLS port.
    let out = ctl(&w, &["--json", "status", "c1"]);
    assert!(
        out.status.success(),
        "altairctl status: {}",
        altair_e2e::stderr(&out)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("altairctl status --json");
    let cluster = &status["clusters"][0];
    assert_eq!(
        cluster["primary"].as_str(),
        Some(w.cluster.instance(new).name()),
        "{cluster}"
    );
    assert_eq!(cluster["epoch"].as_u64(), Some(2), "{cluster}");
}
