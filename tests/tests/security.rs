//! Security (issue "Security"), end to end with the real binaries: every RPC of the
//! agent, the monitor and the orchestrator refuses a caller without a certificate, one
//! whose certificate comes from another CA, and one whose identity the policy does not
//! allow — and nothing changes on the hosts. A heartbeat signed by another host's
//! certificate cannot keep a dead host healthy.

use std::time::Duration;

use altair_e2e::world::{CLUSTER, World};
use altair_proto::v1::agent_client::AgentClient;
use altair_proto::v1::monitor_client::MonitorClient;
use altair_proto::v1::orchestrator_client::OrchestratorClient;
use altair_proto::v1::*;
use altair_testkit::mariadb::sql::query_value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// What a refused caller could have changed: per host, read_only and its source; the
/// cluster's epoch; every agent's accepted epoch.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    hosts: Vec<(Option<String>, Option<String>)>,
    epoch: Option<u64>,
    agent_epochs: Vec<u64>,
    /// A forged `Pause` would set this.
    paused: bool,
}

async fn observe(w: &World) -> Observed {
    let mut hosts = Vec::new();
    for i in 0..w.cluster.len() {
        let mut c = w.cluster.admin_conn(i).await.expect("admin");
        let ro = query_value(&mut c, "SELECT @@global.read_only")
            .await
            .expect("read_only");
        let src = altair_testkit::mariadb::sql::query_maps(&mut c, "SHOW SLAVE STATUS")
            .await
            .expect("slave status")
            .first()
            .and_then(|r| r.get("Master_Host").cloned().flatten());
        hosts.push((ro, src));
    }
    let mut agent_epochs = Vec::new();
    for i in 0..w.fleet.agents.len() {
        let s = altair_e2e::grpc::agent(&w.fleet, i)
            .await
            .status(StatusRequest {})
            .await
            .expect("the orchestrator's identity may read an agent's status")
            .into_inner();
        agent_epochs.push(s.epoch);
    }
    let status = w.status().await.expect("status");
    Observed {
        hosts,
        epoch: status.clusters[0].epoch,
        agent_epochs,
        paused: status.clusters[0].paused.is_some(),
    }
}

/// A TLS client of the fleet's CA that presents no certificate.
async fn without_certificate(w: &World, address: &str) -> Result<Channel, String> {
    let ca = std::fs::read(
        w.fleet
            .client_tls("ca-probe", "altair://operator/x")
            .expect("ca")
            .ca,
    )
    .expect("read the CA");
    Endpoint::from_shared(format!("https://{address}"))
        .map_err(|e| e.to_string())?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// A client whose certificate (an orchestrator's, on paper) another CA signed.
async fn foreign(address: &str, dir: &std::path::Path, w: &World) -> Result<Channel, String> {
    let pki = altair_testkit::pki::Pki::new(&dir.join("foreign"), "someone else").expect("CA");
    let mut files = pki
        .issue("forged", "altair://orchestrator/o1", &[])
        .expect("cert");
    // It trusts the fleet's CA (so only its own certificate is wrong).
    files.ca = w
        .fleet
        .client_tls("ca-probe2", "altair://operator/y")
        .expect("ca")
        .ca;
    altair_e2e::grpc::tls_of(&files)
        .endpoint(address, altair_core::authz_peer::Expected::Any)?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

type Refusals = Vec<(&'static str, Result<(), tonic::Status>)>;

fn ok<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<(), tonic::Status> {
    r.map(|_| ())
}

/// Every agent RPC, each with a request that would do harm if it ran.
async fn agent_calls(ch: Channel) -> Refusals {
    let mut a = AgentClient::new(ch);
    let here = Some(Endpoint_ {
        host: "127.0.0.1".into(),
        port: 1,
    });
    let evil = ApplySalvageChunk {
        epoch: u64::MAX,
        events: b"\\! touch /tmp/altair-security-pwned\n".to_vec(),
        ..ApplySalvageChunk::default()
    };
    vec![
        ("Status", ok(a.status(StatusRequest {}).await)),
        (
            "CheckReachability",
            ok(a.check_reachability(CheckReachabilityRequest {
                target: here.clone(),
                timeout_ms: 100,
                last_heard_only: false,
            })
            .await),
        ),
        (
            "Fence",
            ok(a.fence(FenceRequest {
                epoch: u64::MAX,
                ..FenceRequest::default()
            })
            .await),
        ),
        (
            "SetReadOnly",
            ok(a.set_read_only(SetReadOnlyRequest {
                epoch: u64::MAX,
                read_only: false,
            })
            .await),
        ),
        (
            "SalvageBinlog",
            ok(a.salvage_binlog(SalvageBinlogRequest {
                epoch: u64::MAX,
                ..SalvageBinlogRequest::default()
            })
            .await),
        ),
        (
            "ApplySalvage",
            ok(a.apply_salvage(tokio_stream::iter(vec![evil])).await),
        ),
        (
            "CatchUp",
            ok(a.catch_up(CatchUpRequest {
                epoch: u64::MAX,
                ..CatchUpRequest::default()
            })
            .await),
        ),
        (
            "Promote",
            ok(a.promote(PromoteRequest {
                epoch: u64::MAX,
                failover_id: "forged".into(),
            })
            .await),
        ),
        (
            "Repoint",
            ok(a.repoint(RepointRequest {
                epoch: u64::MAX,
                source: here.clone(),
                ..RepointRequest::default()
            })
            .await),
        ),
        (
            "Rejoin",
            ok(a.rejoin(AgentRejoinRequest {
                epoch: u64::MAX,
                source: here,
                ..AgentRejoinRequest::default()
            })
            .await),
        ),
    ]
}

use altair_proto::v1::Endpoint as Endpoint_;

async fn monitor_calls(ch: Channel) -> Refusals {
    let mut m = MonitorClient::new(ch);
    vec![
        ("Heartbeat", ok(m.heartbeat(forged_heartbeat("db1")).await)),
        ("Register", ok(m.register(forged_registration("db1")).await)),
        (
            "ClusterHealth",
            ok(m.cluster_health(ClusterHealthRequest {
                cluster: "c1".into(),
            })
            .await),
        ),
    ]
}

async fn orchestrator_calls(ch: Channel) -> Refusals {
    let mut o = OrchestratorClient::new(ch);
    let c = || "c1".to_owned();
    vec![
        (
            "ListClusters",
            ok(o.list_clusters(ListClustersRequest {}).await),
        ),
        (
            "GetTopology",
            ok(o.get_topology(GetTopologyRequest { cluster: c() }).await),
        ),
        (
            "History",
            ok(o.history(HistoryRequest {
                cluster: c(),
                limit: 5,
            })
            .await),
        ),
        (
            "Switchover",
            ok(o.switchover(SwitchoverRequest {
                cluster: c(),
                to_host: String::new(),
            })
            .await),
        ),
        (
            "Failover",
            ok(o.failover(FailoverRequest {
                cluster: c(),
                to_host: String::new(),
                force: true,
            })
            .await),
        ),
        (
            "Acknowledge",
            ok(o.acknowledge(AcknowledgeRequest { cluster: c() }).await),
        ),
        (
            "Abort",
            ok(o.abort(AbortRequest {
                cluster: c(),
                reason: "forged".into(),
            })
            .await),
        ),
        (
            "Forget",
            ok(o.forget(ForgetRequest {
                cluster: c(),
                host: "db2".into(),
            })
            .await),
        ),
        (
            "Pause",
            ok(o.pause(PauseRequest {
                cluster: c(),
                reason: "forged".into(),
                ..PauseRequest::default()
            })
            .await),
        ),
        (
            "Resume",
            ok(o.resume(ResumeRequest {
                all: true,
                ..ResumeRequest::default()
            })
            .await),
        ),
        (
            "Release",
            ok(o.release(ReleaseRequest {
                datacenter: "dc1".into(),
                reason: "forged".into(),
            })
            .await),
        ),
        (
            "Rejoin",
            ok(o.rejoin(RejoinRequest {
                cluster: c(),
                host: "db1".into(),
                force: true,
            })
            .await),
        ),
    ]
}

/// A heartbeat claiming `host` is a healthy, reachable replica.
fn forged_heartbeat(host: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        registration: Some(HostRegistration {
            id: Some(HostRef {
                cluster: "c1".into(),
                host: host.into(),
            }),
            ..HostRegistration::default()
        }),
        sequence: u64::MAX / 2,
        agent_run_id: "forged".into(),
        reason: 1,
        snapshot: Some(MysqlSnapshot {
            reachable: true,
            read_only: true,
            ..MysqlSnapshot::default()
        }),
        interval_ms: 300_000,
        liveness_interval_ms: 0,
    }
}

/// A registration pointing `host`'s record at an address of the forger's choosing.
fn forged_registration(host: &str) -> RegisterRequest {
    RegisterRequest {
        id: Some(HostRef {
            cluster: "c1".into(),
            host: host.into(),
        }),
        datacenter: "dc1".into(),
        mysql_address: "192.0.2.66:3306".into(),
        agent_address: "192.0.2.66:7001".into(),
        promotion_rule: PromotionRule::Prefer as i32,
        self_fence_after_ms: 0,
        probe_interval_ms: 0,
        durability: "async".into(),
    }
}

/// Every call refused with `code`; `who` says which caller.
fn all_refused(
    who: &str,
    service: &str,
    calls: &[(&'static str, Result<(), tonic::Status>)],
    codes: &[tonic::Code],
) {
    for (rpc, r) in calls {
        match r {
            Ok(()) => panic!("{who}: {service}/{rpc} was accepted"),
            Err(s) => assert!(
                codes.contains(&s.code()),
                "{who}: {service}/{rpc} answered {:?} {:?}, expected one of {codes:?}",
                s.code(),
                s.message()
            ),
        }
    }
    assert!(!calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_a_caller_without_the_right_certificate_and_nothing_changes() {
    let _heavy = altair_e2e::heavy().await;
    let w = World::start_ha(2, 1, 1, 3600, &[]).await;
    let scratch = tempfile::tempdir().expect("dir");
    let before = observe(&w).await;
    let agent = w.fleet.agents[1].address.clone();
    let monitor = w.fleet.monitors[0].address.clone();
    let orchestrator = w.fleet.orchestrators[0].address.clone();
    use tonic::Code::{PermissionDenied, Unauthenticated};

    // No certificate: every call is UNAUTHENTICATED.
    for (service, address) in [
        ("agent", &agent),
        ("monitor", &monitor),
        ("orchestrator", &orchestrator),
    ] {
        let ch = without_certificate(&w, address)
            .await
            .expect("a TLS client without a certificate completes the handshake");
        let calls = match service {
            "agent" => agent_calls(ch).await,
            "monitor" => monitor_calls(ch).await,
            _ => orchestrator_calls(ch).await,
        };
        all_refused("no certificate", service, &calls, &[Unauthenticated]);
    }

    // A certificate of another CA: the handshake itself fails, or (if a server ever let
    // it through) every call is refused.
    for (service, address) in [
        ("agent", &agent),
        ("monitor", &monitor),
        ("orchestrator", &orchestrator),
    ] {
        if let Ok(ch) = foreign(address, scratch.path(), &w).await {
            let calls = match service {
                "agent" => agent_calls(ch).await,
                "monitor" => monitor_calls(ch).await,
                _ => orchestrator_calls(ch).await,
            };
            for (rpc, r) in &calls {
                assert!(
                    r.is_err(),
                    "another CA's certificate: {service}/{rpc} was accepted"
                );
            }
        }
    }

    // Valid certificates of the wrong role: PERMISSION_DENIED.
    let as_ = |uri: &'static str, address: String| {
        let fleet = &w.fleet;
        async move {
            altair_e2e::grpc::dial_as(fleet, &address, uri)
                .await
                .expect("a valid certificate connects")
        }
    };
    // A monitor may call no agent RPC; an agent of another cluster neither.
    for uri in ["altair://monitor/m1", "altair://agent/c9/db1"] {
        let calls = agent_calls(as_(uri, agent.clone()).await).await;
        all_refused(uri, "agent", &calls, &[PermissionDenied]);
    }
    // An operator may read an agent's status, never act on it.
    let calls = agent_calls(as_("altair://operator/eve?role=operator", agent.clone()).await).await;
    assert!(
        calls[0].1.is_ok(),
        "an operator reads an agent's status: {:?}",
        calls[0]
    );
    all_refused("an operator", "agent", &calls[1..], &[PermissionDenied]);
    // Heartbeats and registrations only from agents, health only for the control plane
    // and people.
    let calls = monitor_calls(as_("altair://orchestrator/o1", monitor.clone()).await).await;
    all_refused(
        "an orchestrator",
        "monitor",
        &calls[..2],
        &[PermissionDenied],
    );
    let calls = monitor_calls(as_("altair://agent/c1/db2", monitor.clone()).await).await;
    all_refused("an agent", "monitor", &calls[1..], &[PermissionDenied]);
    // The admin API: nothing for an agent; no action for a viewer.
    let calls = orchestrator_calls(as_("altair://agent/c1/db1", orchestrator.clone()).await).await;
    all_refused("an agent", "orchestrator", &calls, &[PermissionDenied]);
    let calls =
        orchestrator_calls(as_("altair://operator/v?role=viewer", orchestrator.clone()).await)
            .await;
    assert!(
        calls[..3].iter().all(|(_, r)| r.is_ok()),
        "a viewer reads: {calls:?}"
    );
    all_refused("a viewer", "orchestrator", &calls[3..], &[PermissionDenied]);

    assert!(
        !std::path::Path::new("/tmp/altair-security-pwned").exists(),
        "a refused salvage ran a shell command"
    );
    let after = observe(&w).await;
    assert_eq!(before, after, "a refused call changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_signed_by_another_hosts_certificate_cannot_keep_a_dead_host_healthy() {
    let _heavy = altair_e2e::heavy().await;
    let mut w = World::start(1, 3, 1).await;
    w.cluster.instance_mut(2).kill();
    w.wait_health("db3", "mysql_down", Duration::from_secs(15))
        .await;
    let monitor = w.fleet.monitors[0].address.clone();
    // db1's certificate (the fleet's CA, a real agent identity) speaking for db3.
    let mut m = MonitorClient::new(
        altair_e2e::grpc::dial_as(&w.fleet, &monitor, "altair://agent/c1/db1")
            .await
            .expect("connect as db1's agent"),
    );
    for _ in 0..5 {
        let e = m
            .heartbeat(forged_heartbeat("db3"))
            .await
            .expect_err("a heartbeat for another host");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Nor can its pings, called or sent over a liveness stream.
    let forged_ping = || altair_proto::v1::PingRequest {
        host: Some(altair_proto::v1::HostRef {
            cluster: "c1".into(),
            host: "db3".into(),
        }),
        agent_run_id: "forged".into(),
        sequence: u64::MAX,
        interval_ms: 1000,
    };
    let e = m
        .ping(forged_ping())
        .await
        .expect_err("a ping for another host");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = m
        .liveness(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("a liveness stream opens for an agent's certificate")
        .into_inner();
    tx.send(forged_ping()).await.expect("send");
    let e = answers
        .message()
        .await
        .expect_err("a streamed ping for another host");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.health("db3").await.as_deref(), Some("mysql_down"));
    // Its own host's heartbeat from the same certificate is accepted.
    let r = m
        .heartbeat(forged_heartbeat("db1"))
        .await
        .expect("db1's own heartbeat")
        .into_inner();
    assert!(r.accepted || !r.owner_address.is_empty(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_accepts_no_epoch_ahead_of_zookeeper_and_remembers_the_one_it_accepted() {
    let _heavy = altair_e2e::heavy().await;
    let mut w = World::start(1, 2, 1).await;
    w.set_epoch(4).await;
    let read_only = |epoch| SetReadOnlyRequest {
        epoch,
        read_only: true,
    };
    let mut a = altair_e2e::grpc::agent(&w.fleet, 1).await;
    // Even the orchestrator's identity cannot plant an epoch the cluster is not at: it
    // would lock the real orchestrator out.
    for forged in [u64::MAX, 6, 100] {
        let e = a
            .set_read_only(read_only(forged))
            .await
            .expect_err("an epoch ahead of ZooKeeper");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    }
    let epoch_of = |s: StatusResponse| s.epoch;
    assert_eq!(
        epoch_of(
            a.status(StatusRequest {})
                .await
                .expect("status")
                .into_inner()
        ),
        0,
        "a refused epoch was stored"
    );
    a.set_read_only(read_only(4))
        .await
        .expect("the cluster's epoch");
    // Restarted, the agent still refuses what it refused before it.
    w.fleet.agents[1].restart().expect("restart the agent");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut a = loop {
        if let Ok(ch) = altair_e2e::grpc::dial_as(
            &w.fleet,
            &w.fleet.agents[1].address,
            altair_e2e::grpc::ORCHESTRATOR,
        )
        .await
        {
            break AgentClient::new(ch);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = loop {
        match a.status(StatusRequest {}).await {
            Ok(s) => break s.into_inner(),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("status after the restart: {e}"),
        }
    };
    assert_eq!(
        status.epoch, 4,
        "the accepted epoch was not kept across the restart"
    );
    let e = a
        .set_read_only(read_only(3))
        .await
        .expect_err("an epoch older than the one accepted before the restart");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
}

/// Every znode under `root`, depth first.
async fn every_node(c: &zookeeper_client::Client, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        if let Ok(children) = c.list_children(&p).await {
            for child in children {
                todo.push(format!("{p}/{child}"));
            }
        }
        out.push(p);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_client_without_altairs_credentials_can_read_but_change_nothing() {
    use zookeeper_client::{Acls, CreateMode, Error, Permission};
    let _heavy = altair_e2e::heavy().await;
    let w = World::start_ha(2, 1, 1, 3600, &[]).await;
    // Let the orchestrator record the cluster (state) and the monitors their health.
    w.wait_until(
        "the cluster's state recorded",
        Duration::from_secs(20),
        |s| s.clusters[0].epoch.is_some(),
    )
    .await;
    let c = zookeeper_client::Client::connect(&w.zk.servers().join(","))
        .await
        .expect("an unauthenticated ZooKeeper client");
    let nodes = every_node(&c, "/altair").await;
    assert!(nodes.len() > 10, "{nodes:?}");
    let writes = [
        Permission::WRITE,
        Permission::CREATE,
        Permission::DELETE,
        Permission::ADMIN,
    ];
    // Only altair's own digest ids may write: the orchestrators' everywhere, the
    // monitors' only in their zone (host and health records, membership, new-cluster
    // requests); not the world, and not any other id a session held (a shared TLS
    // client certificate's x509 id, say). ACLs are read with altair's credentials:
    // ZooKeeper shows a digest id to others as "<user>:x".
    let auth = w.fleet.zk_auth();
    let altair = altair_zk::digest_id(&auth);
    let monitor_auth = w.fleet.zk_monitor_auth();
    let monitors = altair_zk::digest_id(&monitor_auth);
    assert_ne!(altair, monitors, "the fleet runs with an identity per role");
    let layout = altair_core::zkpath::ZkLayout::new("/altair");
    let admin = zookeeper_client::Client::connector()
        .with_auth("digest", auth.as_bytes())
        .connect(&w.zk.servers().join(","))
        .await
        .expect("altair's own ZooKeeper client");
    let monitor = zookeeper_client::Client::connector()
        .with_auth("digest", monitor_auth.as_bytes())
        .connect(&w.zk.servers().join(","))
        .await
        .expect("the monitors' ZooKeeper client");
    for path in &nodes {
        let (acls, _) = admin.get_acl(path).await.expect("getAcl");
        for acl in &acls {
            assert!(
                !(acl.scheme() == "world" && writes.iter().any(|p| acl.permission().has(*p))),
                "{path}: {acls:?} lets anyone write"
            );
            assert!(
                !writes.iter().any(|p| acl.permission().has(*p))
                    || (acl.scheme() == "digest"
                        && (acl.id() == altair
                            || (acl.id() == monitors && layout.monitors_write(path)))),
                "{path}: {acls:?} lets someone but altair write"
            );
        }
        // A stolen monitor credential changes nothing outside the monitors' zone.
        if !layout.monitors_write(path) {
            let e = monitor
                .set_data(path, b"forged", None)
                .await
                .expect_err("a monitor's set");
            assert_eq!(e, Error::NoAuth, "a monitor's set of {path}");
            let child = format!("{path}/forged");
            let e = monitor
                .create(
                    &child,
                    b"",
                    &CreateMode::Persistent.with_acls(Acls::anyone_all()),
                )
                .await
                .expect_err("a monitor's create");
            assert_eq!(e, Error::NoAuth, "a monitor's create of {child}");
        }
        // Readable (altairctl status reads without credentials) ...
        c.get_data(path).await.expect("world read");
        // ... and nothing can be changed, added or removed.
        let e = c.set_data(path, b"forged", None).await.expect_err("set");
        assert_eq!(e, Error::NoAuth, "set {path}");
        let child = format!("{path}/forged");
        let e = c
            .create(
                &child,
                b"",
                &CreateMode::Persistent.with_acls(Acls::anyone_all()),
            )
            .await
            .expect_err("create");
        assert_eq!(e, Error::NoAuth, "create {child}");
        if path != "/altair" {
            let e = c.delete(path, None).await.expect_err("delete");
            assert!(
                matches!(e, Error::NoAuth | Error::NotEmpty),
                "delete {path}: {e:?}"
            );
        }
    }
    // In particular a monitor's credential cannot plant a journal the leader would
    // resume, nor move the cluster's state.
    let c1 = altair_core::ClusterName::new(CLUSTER).expect("name");
    let e = monitor
        .create(
            &layout.failover_journal(&c1),
            b"{}",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .expect_err("a planted journal");
    assert_eq!(e, Error::NoAuth);
    let e = monitor
        .delete(&layout.cluster_state(&c1), None)
        .await
        .expect_err("the state deleted");
    assert_eq!(e, Error::NoAuth);
    // Deleting a leaf needs the parent's DELETE right: refused for every leaf too.
    for path in &nodes {
        if c.list_children(path)
            .await
            .map(|v| v.is_empty())
            .unwrap_or(false)
        {
            assert_eq!(
                c.delete(path, None).await.expect_err("delete a leaf"),
                Error::NoAuth,
                "{path}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachability_check_never_logs_in_anywhere_but_the_clusters_own_mysqlds() {
    let _heavy = altair_e2e::heavy().await;
    let w = World::start(1, 2, 1).await;
    // A server of the caller's choosing: it would receive the admin user's login.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = trap.local_addr().expect("addr").port();
    let mut a = altair_e2e::grpc::agent(&w.fleet, 1).await;
    let e = a
        .check_reachability(CheckReachabilityRequest {
            target: Some(Endpoint_ {
                host: "127.0.0.1".into(),
                port: u32::from(port),
            }),
            timeout_ms: 1_000,
            last_heard_only: false,
        })
        .await
        .expect_err("a target outside the cluster");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    let contacted = tokio::time::timeout(Duration::from_millis(500), trap.accept()).await;
    assert!(
        contacted.is_err(),
        "the agent connected to a foreign server"
    );
    // The cluster's own primary is checked as before.
    let primary = w.cluster.instance(0).addr();
    let ok = a
        .check_reachability(CheckReachabilityRequest {
            target: Some(Endpoint_ {
                host: primary.ip().to_string(),
                port: u32::from(primary.port()),
            }),
            timeout_ms: 2_000,
            last_heard_only: false,
        })
        .await
        .expect("the cluster's primary")
        .into_inner();
    assert!(ok.reachable, "{}", ok.error);
}

/// The certificate the server at `address` presents now (a TLS client of `ca` that
/// presents none).
async fn presented(address: &str, ca: &std::path::Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr: std::net::SocketAddr = address.parse().expect("address");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("handshake");
    conn.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// [`presented`] once the server at `address` accepts connections (a process just
/// started), up to 20 s.
async fn presented_when_up(address: &str, ca: &std::path::Path) -> Vec<u8> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{address} does not accept connections"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    presented(address, ca).await
}

fn der_of(pem: &std::path::Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(pem)
        .expect("certificate")
        .to_vec()
}

/// SIGHUP reloads the certificate files (here with the on-disk watch off, so only the
/// signal can have done it); a certificate naming another identity is not taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_after_sighup_and_one_naming_someone_else_is_not() {
    let _heavy = altair_e2e::heavy().await;
    let mut w = World::start(1, 2, 1).await;
    w.fleet
        .start_monitor_env("m2", &[("ALTAIR_MONITOR__TLS__RELOAD_INTERVAL_MS", "0")])
        .expect("a monitor that only reloads on SIGHUP");
    // m2 alone: it takes the cluster over and serves the agents' heartbeats.
    w.fleet.monitors[0].kill();
    let monitor = w.fleet.monitors.iter().find(|m| m.id == "m2").expect("m2");
    let ip = w.fleet.control_ip();
    let ca = w.fleet.tls_files("monitor-m2").ca;
    let before = presented_when_up(&monitor.address, &ca).await;
    let renewed = der_of(
        &w.fleet
            .issue("monitor-m2", "altair://monitor/m2", &[ip])
            .expect("renew")
            .cert,
    );
    assert_ne!(before, renewed, "the renewal made a new certificate");
    // Without a signal the renewal is not picked up (the watch is off: longer than the
    // default watch's 5 s).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        presented(&monitor.address, &ca).await,
        before,
        "renewed without SIGHUP although tls.reload_interval_ms = 0"
    );
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(monitor.pid().expect("pid") as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP");
    };
    hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while presented(&monitor.address, &ca).await != renewed {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The monitor still serves its callers (an agent's heartbeats, a status read).
    w.wait_until("m2 owns c1", Duration::from_secs(30), |s| {
        s.clusters[0].monitor.as_deref() == Some("m2")
    })
    .await;
    w.wait_all_healthy(2).await;
    let mut m = MonitorClient::new(
        altair_e2e::grpc::dial_as(
            &w.fleet,
            &monitor.address,
            "altair://operator/v?role=viewer",
        )
        .await
        .expect("connect"),
    );
    m.cluster_health(ClusterHealthRequest {
        cluster: "c1".into(),
    })
    .await
    .expect("health after the reload");
    // A certificate naming another identity is not taken: the renewed one stays.
    w.fleet
        .issue("monitor-m2", "altair://monitor/m9", &[ip])
        .expect("a wrong certificate");
    hup();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        presented(&monitor.address, &ca).await,
        renewed,
        "a certificate of another identity replaced the monitor's"
    );
}

/// With the default watch (every 5 s) a renewal tool that only replaces the files is
/// enough: no signal. Files caught half-written — the new certificate beside the old key
/// — are refused and the current certificate stays served; once the key is there too,
/// the renewal is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_once_its_files_change_without_a_signal() {
    let _heavy = altair_e2e::heavy().await;
    let w = World::start(1, 2, 1).await;
    let monitor = &w.fleet.monitors[0];
    let ip = w.fleet.control_ip();
    let ca = w.fleet.tls_files("monitor-m1").ca;
    let before = presented(&monitor.address, &ca).await;
    let key_path = w.fleet.tls_files("monitor-m1").key;
    let cert_path = w.fleet.tls_files("monitor-m1").cert;
    // The renewal is made aside, then copied in as a renewal tool would: the
    // certificate first …
    let files = w
        .fleet
        .issue("monitor-m1-next", "altair://monitor/m1", &[ip])
        .expect("renew");
    let (renewed, new_key) = (
        der_of(&files.cert),
        std::fs::read(&files.key).expect("new key"),
    );
    std::fs::copy(&files.cert, &cert_path).expect("the new certificate");
    // … and, half-written, the old key still beside it for a while.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        presented(&monitor.address, &ca).await,
        before,
        "a certificate whose key does not match it was taken"
    );
    std::fs::write(&key_path, &new_key).expect("new key");
    let written = std::time::Instant::now();
    let deadline = written + Duration::from_secs(15);
    while presented(&monitor.address, &ca).await != renewed {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is not served 15 s after its files changed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "renewal served {:?} after its key was written",
        written.elapsed()
    );
    w.wait_all_healthy(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_writable_znodes_left_from_before_auth_get_altairs_acl() {
    use zookeeper_client::{Acls, CreateMode, Error};
    let _heavy = altair_e2e::heavy().await;
    let w = World::start(1, 2, 1).await;
    let servers = w.zk.servers().join(",");
    // A node an older release (no auth configured) would have left: world-writable.
    let auth = w.fleet.zk_auth();
    let old_release = zookeeper_client::Client::connector()
        .with_auth("digest", auth.as_bytes())
        .connect(&servers)
        .await
        .expect("zk");
    old_release
        .create(
            "/altair/legacy",
            b"old",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .expect("a world-writable node");
    let legacy = zookeeper_client::Client::connect(&servers)
        .await
        .expect("zk");
    legacy
        .set_data("/altair/legacy", b"still open", None)
        .await
        .expect("world-writable before");
    let zk = altair_zk::Zk::connect(&w.zk_config(), Some(&auth))
        .await
        .expect("altair's session");
    let changed = zk.restrict_acls().await.expect("restrict").changed;
    assert!(changed >= 1, "nothing changed");
    assert_eq!(
        legacy
            .set_data("/altair/legacy", b"forged", None)
            .await
            .expect_err("set"),
        Error::NoAuth
    );
    assert_eq!(
        zk.restrict_acls().await.expect("again").changed,
        0,
        "not idempotent"
    );
}

/// The ZooKeeper host record of `host` in cluster c1, as bytes.
async fn host_record(zk: &altair_zk::Zk, host: &str) -> Option<Vec<u8>> {
    let c = altair_core::ClusterName::new("c1").expect("name");
    let h = altair_core::HostName::new(host).expect("name");
    zk.get(&zk.layout().host(&c, &h)).await.expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_holds_no_zookeeper_credential_and_registers_only_its_own_host() {
    let _heavy = altair_e2e::heavy().await;
    let mut w = World::start(1, 3, 1).await;
    // Nothing on a database host can write to ZooKeeper: the agents' configs name no
    // credential (their monitor wrote the records they are registered by).
    for a in &w.fleet.agents {
        let config = std::fs::read_to_string(&a.config).expect("agent config");
        assert!(
            !config.contains("auth_file"),
            "{}: an agent's config names a ZooKeeper credential",
            a.id
        );
    }
    let zk = altair_zk::Zk::connect(&w.zk_config(), None)
        .await
        .expect("a reader's session");
    let before: Vec<_> = {
        let mut v = Vec::new();
        for h in ["db1", "db2", "db3"] {
            v.push(host_record(&zk, h).await.expect("registered"));
        }
        v
    };
    let monitor = w.fleet.monitors[0].address.clone();
    let mut m = MonitorClient::new(
        altair_e2e::grpc::dial_as(&w.fleet, &monitor, "altair://agent/c1/db1")
            .await
            .expect("connect as db1's agent"),
    );
    // db1's certificate may not move db2's record, nor write nonsense for itself.
    let e = m
        .register(forged_registration("db2"))
        .await
        .expect_err("another host's registration");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    let mut bad = forged_registration("db1");
    bad.agent_address = "nowhere".into();
    let e = m.register(bad).await.expect_err("a bad address");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("agent address"), "{}", e.message());
    let mut after = Vec::new();
    for h in ["db1", "db2", "db3"] {
        after.push(host_record(&zk, h).await.expect("still registered"));
    }
    assert_eq!(
        before, after,
        "a refused registration changed a host record"
    );
    // Its own record, as it stands, is not written again.
    let own: altair_core::registry::HostRecord =
        serde_json::from_slice(&before[0]).expect("db1's record");
    let r = m
        .register(RegisterRequest::from(&own))
        .await
        .expect("db1's own registration")
        .into_inner();
    assert!(!r.written, "an unchanged record was written again");
    // A certificate asking for one change after another gets one write per 2 s (the
    // agent's own registration may have been written a moment ago: wait that out).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mut moved = own.clone();
    moved.datacenter = "dc9".into();
    let r = m
        .register(RegisterRequest::from(&moved))
        .await
        .expect("a change of its own record")
        .into_inner();
    assert!(r.written);
    let e = m
        .register(RegisterRequest::from(&own))
        .await
        .expect_err("another change at once");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{}", e.message());
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let r = m
        .register(RegisterRequest::from(&own))
        .await
        .expect("the change back, 2 s later")
        .into_inner();
    assert!(r.written);
    assert_eq!(host_record(&zk, "db1").await.as_ref(), Some(&before[0]));
    // A record lost from ZooKeeper comes back when the agent starts again: it asks its
    // monitor, having no way to write it itself.
    let auth = w.fleet.zk_auth();
    let altair = altair_zk::Zk::connect(&w.zk_config(), Some(&auth))
        .await
        .expect("altair's session");
    let c = altair_core::ClusterName::new("c1").expect("name");
    let h = altair_core::HostName::new("db3").expect("name");
    altair
        .delete(&altair.layout().host(&c, &h))
        .await
        .expect("delete db3's record");
    w.fleet.agents[2].restart().expect("restart db3's agent");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if host_record(&zk, "db3").await.as_ref() == Some(&before[2]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "db3's agent did not get its record written again within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
