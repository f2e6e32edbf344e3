//! `make sandbox` / `make sandbox-down` as a user runs them: the sandbox comes up in the
//! background, sandbox.json describes real running components, and `down` leaves no
//! process, namespace or temp dir behind.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use altair_e2e::{bin, stderr, stdout};
use altair_testkit::sandbox::Description;

fn sandbox(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin("altair-sandbox"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run altair-sandbox")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn namespaces() -> String {
    String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns")
            .stdout,
    )
    .into_owned()
}

#[tokio::test]
async fn sandbox_up_describes_real_components_and_down_leaves_nothing() {
    let _heavy = altair_e2e::heavy().await;
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("sandbox");
    let started = Instant::now();
    let out = sandbox(&dir, &["up"]);
    assert!(
        out.status.success(),
        "sandbox up failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    eprintln!("altair-sandbox up returned after {:?}", started.elapsed());

    let text = std::fs::read_to_string(dir.join("sandbox.json")).expect("sandbox.json written");
    let desc: Description = serde_json::from_str(&text).expect("sandbox.json parses");
    assert_eq!(desc.version, 1);
    assert!(alive(desc.supervisor_pid));

    // ZooKeeper answers; altair dials its TLS port, which refuses a client without a
    // certificate.
    let zk: SocketAddr = desc.zookeeper.plaintext_servers[0]
        .parse()
        .expect("zk address");
    let srvr = altair_testkit::zookeeper::four_letter(zk, "srvr")
        .await
        .expect("zookeeper answers");
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    let zk_tls = desc.zookeeper.tls.as_ref().expect("ZooKeeper over TLS");
    assert_ne!(desc.zookeeper.servers, desc.zookeeper.plaintext_servers);
    let with_cert = altair_core::config::ZkConfig {
        tls_ca_file: Some(zk_tls.ca_file.clone().into()),
        tls_cert_file: Some(zk_tls.cert_file.clone().into()),
        tls_key_file: Some(zk_tls.key_file.clone().into()),
        ..altair_core::config::ZkConfig::new(desc.zookeeper.servers.clone())
    };
    assert!(
        altair_e2e::ops::zk_gets_a_session(&with_cert).await,
        "sandbox.json's ZooKeeper client certificate does not get a session"
    );
    let no_cert = altair_core::config::ZkConfig {
        tls_cert_file: None,
        tls_key_file: None,
        ..with_cert
    };
    assert!(
        !altair_e2e::ops::zk_gets_a_session(&no_cert).await,
        "the TLS port took a client without a certificate"
    );

    // DNS answers the primary's name with the primary host's address.
    let cluster = &desc.clusters[0];
    assert_eq!(cluster.name, "c1");
    assert_eq!(cluster.hosts.len(), 3);
    let dns: SocketAddr = desc.dns.server.parse().expect("dns address");
    let ips = altair_dns::lookup_a(dns, &cluster.primary_dns, Duration::from_secs(2))
        .await
        .expect("dns answers");
    let primary_ip: SocketAddr = cluster.hosts[0].mysql.parse().expect("mysql address");
    assert_eq!(
        ips,
        vec![match primary_ip.ip() {
            std::net::IpAddr::V4(v4) => v4,
            std::net::IpAddr::V6(_) => panic!("IPv6 host"),
        }]
    );

    // Every mysqld runs; in namespaces when root.
    let root = altair_testkit::is_root();
    for h in &cluster.hosts {
        assert!(
            alive(h.mysqld_pid.expect("mysqld pid")),
            "mysqld of {} is not running",
            h.name
        );
        assert_eq!(
            h.namespace.is_some(),
            root,
            "namespace placement of {}",
            h.name
        );
        if let Some(ns) = &h.namespace {
            assert!(namespaces().contains(ns.as_str()), "namespace {ns} missing");
        }
    }

    // An agent per host and two monitors run; altairctl status sees every host healthy.
    assert_eq!(desc.monitors.len(), 2);
    for h in &cluster.hosts {
        assert!(
            alive(h.agent_pid.expect("agent pid")),
            "agent of {} is not running",
            h.name
        );
    }
    let out = std::process::Command::new(bin("altairctl"))
        .args(["--config", &desc.altairctl_config, "--json", "status"])
        .output()
        .expect("altairctl status");
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["clusters"][0]["primary"], "db1");
    for h in json["clusters"][0]["hosts"].as_array().expect("hosts") {
        assert_eq!(h["health"], "healthy", "{h}");
    }

    // Two orchestrators run, and the altairctl config it wrote reaches them.
    assert_eq!(desc.orchestrators.len(), 2);
    let out = std::process::Command::new(bin("altairctl"))
        .args(["--config", &desc.altairctl_config, "--json", "ping"])
        .output()
        .expect("altairctl");
    assert!(out.status.success(), "{}", stderr(&out));
    let pings: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(
        pings
            .as_array()
            .expect("list")
            .iter()
            .all(|p| p["serving"] == true),
        "{pings}"
    );

    // Every service serves metrics where sandbox.json says, and logs where it says.
    let endpoints = desc
        .orchestrators
        .iter()
        .chain(&desc.monitors)
        .map(|s| s.metrics.clone())
        .chain(cluster.hosts.iter().map(|h| h.agent_metrics.clone()));
    for m in endpoints {
        let m = m.expect("sandbox.json names every metrics endpoint");
        let text = altair_e2e::ops::scrape_text(&m).await;
        assert!(text.contains("# TYPE altair_"), "{m}: {text}");
    }
    let logs = std::path::PathBuf::from(desc.logs.clone().expect("sandbox.json names the logs"));
    assert!(
        logs.join("orchestrator-o1.log").exists(),
        "{}",
        logs.display()
    );

    // The demo step works against it.
    let out = sandbox(&dir, &["demo"]);
    assert!(
        out.status.success(),
        "demo failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("refuses the app user's write"),
        "{}",
        stdout(&out)
    );

    // A second `up` refuses while one runs.
    let out = sandbox(&dir, &["up"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));

    let out = sandbox(&dir, &["down"]);
    assert!(out.status.success(), "down failed: {}", stderr(&out));
    assert!(!alive(desc.supervisor_pid), "supervisor still runs");
    for h in &cluster.hosts {
        assert!(
            !alive(h.mysqld_pid.expect("pid")),
            "mysqld of {} survived down",
            h.name
        );
        if let Some(ns) = &h.namespace {
            assert!(
                !namespaces().contains(ns.as_str()),
                "namespace {ns} survived down"
            );
        }
    }
    let services = desc
        .monitors
        .iter()
        .map(|m| m.pid)
        .chain(cluster.hosts.iter().filter_map(|h| h.agent_pid));
    for pid in desc
        .zookeeper
        .pids
        .iter()
        .copied()
        .chain(desc.dns.pid)
        .chain(services)
    {
        assert!(!alive(pid), "pid {pid} survived down");
    }
    assert!(!dir.join("sandbox.json").exists());
    assert!(!dir.join("tmp").exists(), "temp dirs survived down");
    // The services' logs outlive the sandbox, where sandbox.json said.
    let kept = std::path::PathBuf::from(&desc.kept_logs);
    for log in ["orchestrator-o1.log", "monitor-m1.log"] {
        let text = std::fs::read_to_string(kept.join(log))
            .unwrap_or_else(|e| panic!("{log} not kept in {}: {e}", kept.display()));
        assert!(!text.is_empty(), "{log} is empty");
    }
}

#[tokio::test]
async fn a_sandbox_of_several_clusters_fails_over_one_and_leaves_the_others() {
    let _heavy = altair_e2e::heavy().await;
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("sandbox");
    let out = sandbox(&dir, &["up", "--clusters", "3"]);
    assert!(
        out.status.success(),
        "sandbox up --clusters 3 failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = std::fs::read_to_string(dir.join("sandbox.json")).expect("sandbox.json written");
    let desc: Description = serde_json::from_str(&text).expect("sandbox.json parses");
    let names: Vec<&str> = desc.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["c1", "c2", "c3"]);
    let mut addresses = std::collections::BTreeSet::new();
    for c in &desc.clusters {
        assert_eq!(c.hosts.len(), 3, "{}", c.name);
        for h in &c.hosts {
            assert!(addresses.insert(h.mysql.clone()), "{} reused", h.mysql);
            assert!(
                alive(h.agent_pid.expect("agent pid")),
                "agent of {}/{}",
                c.name,
                h.name
            );
        }
    }
    let status = || {
        let out = std::process::Command::new(bin("altairctl"))
            .args(["--config", &desc.altairctl_config, "--json", "status"])
            .output()
            .expect("altairctl status");
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("JSON")
    };
    let s = status();
    for k in 0..3 {
        assert_eq!(s["clusters"][k]["primary"], "db1", "{s}");
    }

    // db1 is in every cluster: the kill must say which.
    let out = sandbox(&dir, &["kill-mysqld", "db1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--cluster"), "{}", stderr(&out));
    let out = sandbox(&dir, &["kill-mysqld", "db1", "--cluster", "c2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox(
        &dir,
        &["wait-failover", "--cluster", "c2", "--timeout", "60"],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let s = status();
    assert_eq!(s["clusters"][0]["primary"], "db1", "{s}");
    assert_ne!(s["clusters"][1]["primary"], "db1", "{s}");
    assert_eq!(s["clusters"][2]["primary"], "db1", "{s}");

    let out = sandbox(&dir, &["down"]);
    assert!(out.status.success(), "down failed: {}", stderr(&out));
    for h in desc.clusters.iter().flat_map(|c| &c.hosts) {
        assert!(!alive(h.mysqld_pid.expect("pid")), "a mysqld survived down");
        if let Some(ns) = &h.namespace {
            assert!(
                !namespaces().contains(ns.as_str()),
                "namespace {ns} survived down"
            );
        }
    }
}
