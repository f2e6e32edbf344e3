//! A client checks who answered (issue "Security"), in process over real TLS: a server
//! whose certificate the fleet's CA signed for the address dialled, but naming another
//! identity than the one the client meant to reach, is refused during the handshake —
//! another host's agent cannot answer for this host, a monitor or an orchestrator for an
//! agent. The address check stays: the right identity on a certificate for another
//! address is refused too.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use altair_core::authz::Server;
use altair_core::authz_peer::Expected;
use altair_core::{ClusterName, HostName};
use altair_testkit::pki::Pki;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Serves gRPC health on 127.0.0.1 with a certificate naming `uri` for `ips`.
async fn server(pki: &Pki, file: &str, uri: &str, ips: &[IpAddr]) -> (String, CancellationToken) {
    let files = pki.issue(file, uri, ips).expect("server certificate");
    let tls = altair_e2e::grpc::tls_of(&files);
    let listener = altair_svc::bind_listener("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let address = listener.local_addr().expect("local address").to_string();
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        let _ = altair_svc::serve_grpc(listener, &tls, Server::Orchestrator, |r| r, cancel).await;
    });
    (address, stop)
}

/// A health check through `Tls::dial(address, expected)`; `Err` is the whole error chain.
async fn check(client: &altair_svc::Tls, address: &str, expected: Expected) -> Result<(), String> {
    let channel = client
        .endpoint(address, expected)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| altair_svc::dial::describe(&e))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
        .map_err(|s| altair_svc::dial::describe(&s))
}

fn host(c: &str, h: &str) -> (ClusterName, HostName) {
    (
        ClusterName::new(c).expect("cluster"),
        HostName::new(h).expect("host"),
    )
}

#[tokio::test]
async fn a_server_is_accepted_only_when_its_certificate_names_who_was_meant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path(), "dial").expect("CA");
    let client = altair_e2e::grpc::tls_of(
        &pki.issue("o1", "altair://orchestrator/o1", &[])
            .expect("client certificate"),
    );
    // db3's agent certificate, served at an address where db2's agent is expected.
    let (db3, _stop) = server(&pki, "db3", "altair://agent/c1/db3", &[LOCAL]).await;

    check(&client, &db3, Expected::Agent(vec![host("c1", "db3")]))
        .await
        .expect("db3's agent, meant as db3's");
    assert!(
        check(&client, &db3, Expected::Agent(vec![])).await.is_err(),
        "an address no host is registered at"
    );
    check(&client, &db3, Expected::Any)
        .await
        .expect("any identity");

    let other = check(&client, &db3, Expected::Agent(vec![host("c1", "db2")]))
        .await
        .expect_err("db3's agent answering for db2");
    assert!(
        other.contains("names agent/c1/db3, not agent/c1/db2"),
        "the refusal says who answered and who was meant: {other}"
    );
    let same_name = check(&client, &db3, Expected::Agent(vec![host("c2", "db3")])).await;
    assert!(same_name.is_err(), "db3 of another cluster");
    let role = check(&client, &db3, Expected::Monitor(None))
        .await
        .expect_err("an agent as a monitor");
    assert!(role.contains("not a monitor"), "{role}");

    // A monitor's certificate does not answer for an agent.
    let (m1, _stop_m1) = server(&pki, "m1", "altair://monitor/m1", &[LOCAL]).await;
    check(&client, &m1, Expected::Monitor(Some("m1".into())))
        .await
        .expect("a monitor");
    assert!(check(&client, &m1, Expected::Agent(vec![])).await.is_err());
    assert!(check(&client, &m1, Expected::Orchestrator).await.is_err());
    // An agent sends heartbeats to the monitor it chose by id: another monitor's
    // certificate at that address will not do.
    let m2 = check(&client, &m1, Expected::Monitor(Some("m2".into())))
        .await
        .expect_err("m1 answering for m2");
    assert!(m2.contains("names monitor/m1, not monitor/m2"), "{m2}");

    // The right identity on a certificate for another address.
    let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let (moved, _stop_moved) =
        server(&pki, "db3-moved", "altair://agent/c1/db3", &[elsewhere]).await;
    let wrong_address = check(&client, &moved, Expected::Agent(vec![host("c1", "db3")]))
        .await
        .expect_err("a certificate for another address");
    assert!(
        wrong_address.to_lowercase().contains("not valid for name")
            || wrong_address.to_lowercase().contains("notvalidforname"),
        "{wrong_address}"
    );
}
