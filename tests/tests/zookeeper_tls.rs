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
    let w = World::start_ha_zk_tls(3, 1, 1).await;
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (new, status) = primary_killed_fails_over(&w, "after_zk_tls_failover").await;
    let cluster = &status["clusters"][0];
    assert_eq!(
        cluster["primary"].as_str(),
        Some(w.cluster.instance(new).name()),
        "{cluster}"
    );
    assert_eq!(cluster["epoch"].as_u64(), Some(2), "{cluster}");
}

/// `kill -9` of the primary's mysqld (instance 0): waits for the DNS name to move, has
/// the new primary take a write (creating `app.<table>`), and reads `altairctl --json
/// status c1` — through ZooKeeper's TLS port. Returns the new primary and that status.
async fn primary_killed_fails_over(w: &World, table: &str) -> (usize, serde_json::Value) {
    let old_ip = w.net.as_ref().expect("net").host(0).ip;
    kill_mysqld(w, 0);
    let (new_ip, took) = wait_dns_moved(w, old_ip, Duration::from_secs(60)).await;
    eprintln!("DNS moved to {new_ip} {took:?} after kill -9");
    let new = host_index(w, new_ip);
    let mut c = w.cluster.admin_conn(new).await.expect("the new primary");
    c.query_drop(format!("CREATE TABLE app.{table} (id INT PRIMARY KEY)"))
        .await
        .expect("the new primary takes a write");
    let out = ctl(w, &["--json", "status", "c1"]);
    assert!(
        out.status.success(),
        "altairctl status: {}",
        altair_e2e::stderr(&out)
    );
    let status = serde_json::from_slice(&out.stdout).expect("altairctl status --json");
    (new, status)
}

/// Whether a TLS handshake with a client certificate of `files` (and trusting its CA)
/// completes at `addr`.
async fn tls_handshake(
    addr: std::net::SocketAddr,
    files: &altair_testkit::pki::TlsFiles,
) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&files.ca).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| e.to_string())?;
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    // Under TLS 1.3 the client's handshake completes before the server has judged the
    // client's certificate: a refusal then arrives as an alert on the first read. A
    // peer that took it waits for us to speak (the read times out).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(1_500), tls.read(&mut buf)).await {
        Ok(Ok(0)) => return Err("closed by the server right after the handshake".to_owned()),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(_)) | Err(_) => {}
    }
    let _ = tls.shutdown().await;
    Ok(())
}

/// A 3-server ensemble with TLS on every link: the client ports (every service and
/// altairctl) and the servers' own quorum and election links. The ensemble's leader is
/// killed, then the primary's mysqld: the ensemble elects another leader over TLS and
/// the failover goes through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_with_tls_between_its_servers_survives_its_leader_and_fails_over() {
    let mut w = World::start_ha_zk_tls(3, 2, 3).await;
    w.wait_until("cluster recorded", Duration::from_secs(30), |s| {
        s.clusters[0].epoch == Some(1)
    })
    .await;
    w.wait_all_healthy(3).await;
    // The servers' election ports speak TLS, taking a peer's certificate of the
    // ensemble's CA (one that names the address it connects from) …
    let probe = w.zk.peer_tls("quorum-probe").expect("a certificate");
    for i in 0..w.zk.len() {
        tls_handshake(w.zk.election_addr(i), &probe)
            .await
            .unwrap_or_else(|e| panic!("ZooKeeper server {i}'s election port: {e}"));
    }
    // … and refuse a client's certificate, which names no address: a client of the
    // ensemble cannot pose as a server.
    let client = w.zk.client_tls("quorum-intruder").expect("a certificate");
    assert!(
        tls_handshake(w.zk.election_addr(0), &client).await.is_err(),
        "a client certificate was taken on the election port"
    );
    let leader = {
        let mut found = None;
        for _ in 0..100 {
            for i in 0..w.zk.len() {
                if w.zk.mode(i).await.as_deref() == Some("leader") {
                    found = Some(i);
                }
            }
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        found.expect("the ensemble has a leader")
    };
    w.zk.kill(leader);
    // Another leader, elected over the TLS links.
    let mut elected = None;
    for _ in 0..150 {
        for i in (0..w.zk.len()).filter(|i| *i != leader) {
            if w.zk.mode(i).await.as_deref() == Some("leader") {
                elected = Some(i);
            }
        }
        if elected.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elected = elected.expect("a new ZooKeeper leader within 30 s");
    eprintln!("ZooKeeper leader {leader} killed; server {elected} elected");
    let (_, status) = primary_killed_fails_over(&w, "after_zk_ensemble_tls_failover").await;
    assert_eq!(status["clusters"][0]["epoch"].as_u64(), Some(2), "{status}");
    w.zk.restart(leader)
        .await
        .expect("restart the killed server");
}
