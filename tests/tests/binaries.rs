//! The real binaries: bad config is refused naming the key (exit 2) and never echoes a
//! secret; good config starts, serves gRPC health, and stops cleanly on SIGTERM.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use altair_e2e::{
    ConfigDir, agent_config, bin, monitor_config, orchestrator_config, run, stderr, stdout,
};
use altair_testkit::ports::reserve;
use altair_testkit::process::Proc;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SERVICES: [&str; 3] = ["altair-agent", "altair-monitor", "altair-orchestrator"];
const TSIG_SECRET: &str = "c2FuZGJveC10c2lnLXNlY3JldC0xMjM0NTY3ODkwYWI=\n";

#[test]
fn help_explains_every_flag() {
    for name in SERVICES {
        let out = run(name, &["--help"]);
        assert!(out.status.success(), "{name} --help failed");
        let help = stdout(&out);
        for flag in ["--config", "--check-config", "--version"] {
            assert!(
                help.contains(flag),
                "{name} --help does not mention {flag}:\n{help}"
            );
        }
    }
    let help = stdout(&run("altairctl", &["--help"]));
    for word in ["--config", "--json", "ping", "Exit status"] {
        assert!(
            help.contains(word),
            "altairctl --help lacks {word}:\n{help}"
        );
    }
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = ConfigDir::new();
    let port = reserve(LOCAL).expect("port");
    let listen = format!("127.0.0.1:{}", port.get());
    let cases = [
        (
            "altair-agent",
            agent_config(&dir, &listen).replace("host = \"db1\"", "host = \"DB_1\""),
            "DB_1",
        ),
        (
            "altair-agent",
            agent_config(&dir, &listen).replace("[\"127.0.0.1:2181\"]", "[]"),
            "zookeeper.servers",
        ),
        (
            "altair-monitor",
            monitor_config(&dir, &listen)
                .replace("[monitor]", "[monitor]\nunreachable_after_misses = 0"),
            "monitor.unreachable_after_misses",
        ),
        (
            "altair-orchestrator",
            orchestrator_config(&dir, &listen, TSIG_SECRET)
                .replace("db.altair.test.", "db.altair.test"),
            "dns.zone",
        ),
        (
            "altair-orchestrator",
            orchestrator_config(&dir, &listen, TSIG_SECRET)
                .replace("[dns]", "[dns]\ntsig_algorithm = \"hmac-md5\""),
            "dns.tsig_algorithm",
        ),
    ];
    for (name, text, key) in cases {
        let cfg = dir.write("bad.toml", &text);
        let started = Instant::now();
        let out = run(name, &["--config", &cfg]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name} with bad {key}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(key),
            "{name}: error does not name {key}: {}",
            stderr(&out)
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took long to refuse"
        );
    }
    // Nothing was bound: the port is still free.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port.get())).is_ok());

    let out = run("altair-agent", &["--config", "/nonexistent/agent.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/agent.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unusable_secrets_are_refused_without_printing_them() {
    let dir = ConfigDir::new();
    let secret = "NOT-BASE64-but-secret-xyzzy!!";
    let cfg_text = orchestrator_config(&dir, "127.0.0.1:1", secret).replace(
        &dir.path().join("mysql.password").display().to_string(),
        "/nonexistent/mysql.password",
    );
    let cfg = dir.write("orch.toml", &cfg_text);
    let out = run("altair-orchestrator", &["--config", &cfg, "--check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("mysql.password_file"), "{err}");
    assert!(err.contains("dns.tsig_secret_file"), "{err}");
    assert!(
        !err.contains("xyzzy") && !stdout(&out).contains("xyzzy"),
        "the secret leaked: {err}"
    );
}

#[test]
fn unknown_keys_warn_but_do_not_refuse() {
    let dir = ConfigDir::new();
    let cfg = dir.write(
        "agent.toml",
        &agent_config(&dir, "127.0.0.1:1").replace("[agent]", "[agent]\nfuture_knob = 3"),
    );
    let out = run("altair-agent", &["--config", &cfg, "--check-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("unknown key agent.future_knob"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("configuration OK"));
}

#[test]
fn environment_overrides_a_key() {
    let dir = ConfigDir::new();
    let cfg = dir.write("mon.toml", &monitor_config(&dir, "127.0.0.1:1"));
    let out = std::process::Command::new(bin("altair-monitor"))
        .args(["--config", &cfg, "--check-config"])
        .env("ALTAIR_MONITOR__MONITOR__UNREACHABLE_AFTER_MISSES", "0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "the override was not applied");
    assert!(stderr(&out).contains("monitor.unreachable_after_misses"));
}

// Multi-threaded so the client connections keep being served while the test blocks
// waiting for the services to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_serve_grpc_health_and_stop_on_sigterm() {
    let dir = ConfigDir::new();
    let ports: Vec<_> = (0..3).map(|_| reserve(LOCAL).expect("port")).collect();
    let addrs: Vec<String> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.get()))
        .collect();
    let configs = [
        dir.write("agent.toml", &agent_config(&dir, &addrs[0])),
        dir.write("monitor.toml", &monitor_config(&dir, &addrs[1])),
        dir.write(
            "orchestrator.toml",
            &orchestrator_config(&dir, &addrs[2], TSIG_SECRET),
        ),
    ];
    drop(ports); // the services bind them now
    altairctl::tls::set(altair_e2e::grpc::tls_of(
        &dir.tls("pinger", "altair://operator/pinger?role=viewer"),
    ));
    let mut procs = Vec::new();
    for (name, cfg) in SERVICES.iter().zip(&configs) {
        let mut cmd = std::process::Command::new(bin(name));
        cmd.args(["--config", cfg]);
        procs.push(
            Proc::spawn(*name, &mut cmd, &dir.path().join(format!("{name}.log"))).expect("spawn"),
        );
    }
    for (name, addr) in SERVICES.iter().zip(&addrs) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = altairctl::ping::ping(addr, Duration::from_secs(1)).await;
            if r.serving {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never served gRPC health at {addr}: {}",
                r.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // altairctl against the live orchestrator, and against an address nobody serves.
    let viewer = dir.tls("viewer", "altair://operator/viewer?role=viewer");
    let ctl = dir.write(
        "ctl.toml",
        &format!("orchestrators = [\"{}\"]\n{}", addrs[2], viewer.section()),
    );
    let out = run("altairctl", &["--config", &ctl, "--json", "ping"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON output");
    assert_eq!(json[0]["serving"], true);

    let dead = reserve(LOCAL).expect("port");
    let ctl_dead = dir.write(
        "dead.toml",
        &format!(
            "orchestrators = [\"127.0.0.1:{}\"]\ntimeout_ms = 1000\n{}",
            dead.get(),
            viewer.section()
        ),
    );
    let out = run("altairctl", &["--config", &ctl_dead, "ping"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no orchestrator answered"),
        "{}",
        stderr(&out)
    );

    for (p, name) in procs.iter_mut().zip(SERVICES) {
        assert!(
            p.stop(Duration::from_secs(10)),
            "{name} did not stop on SIGTERM"
        );
    }
    let log = std::fs::read_to_string(dir.path().join("altair-agent.log")).unwrap_or_default();
    assert!(
        !log.contains("agent-mysql-pw"),
        "the agent logged its password"
    );
}

#[test]
fn unusable_zookeeper_tls_files_are_refused_at_start_with_the_key_named() {
    let dir = ConfigDir::new();
    let base = monitor_config(&dir, "127.0.0.1:1");
    let secret_key = dir.write(
        "zk-client.key",
        "-----BEGIN PRIVATE KEY-----\nenp6LXNlY3JldC1rZXk=\n-----END PRIVATE KEY-----\n",
    );
    let cases = [
        // A device: refused without reading it.
        (
            "tls_ca_file = \"/dev/zero\"\n".to_owned(),
            "zookeeper.tls_ca_file",
        ),
        // No certificate in the CA file.
        (
            format!("tls_ca_file = \"{secret_key}\"\n"),
            "zookeeper.tls_ca_file",
        ),
        // A certificate without its key.
        (
            format!(
                "tls_ca_file = \"{ca}\"\ntls_cert_file = \"{ca}\"\n",
                ca = dir.tls("x", "altair://monitor/m1").ca.display()
            ),
            "zookeeper.tls_key_file",
        ),
    ];
    for (lines, key) in cases {
        let cfg = dir.write(
            "mon.toml",
            &base.replace(
                "servers = [\"127.0.0.1:2181\"]\n",
                &format!("servers = [\"127.0.0.1:2181\"]\n{lines}"),
            ),
        );
        let out = run("altair-monitor", &["--config", &cfg, "--check-config"]);
        assert_eq!(out.status.code(), Some(2), "{lines}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(key), "{lines}: {key} not named in {err}");
        assert!(!err.contains("enp6"), "the key leaked: {err}");
    }
}
