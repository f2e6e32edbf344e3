use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use altair_core::config::CtlConfig;
use altairctl::exit;
use clap::{Parser, Subcommand};

mod operate;
mod output;

use operate::{confirm, report_failover};
use output::{admin_failure, print_json};

/// altairctl: operate altair from the command line.
///
/// Exit status: 0 done, 1 the operation failed, 2 bad arguments or config,
/// 3 no orchestrator reachable.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// altairctl's TOML config: the orchestrators' addresses (example: deploy/altairctl.toml;
    /// the sandbox writes target/sandbox/altairctl.toml).
    #[arg(
        long,
        short,
        global = true,
        env = "ALTAIRCTL_CONFIG",
        value_name = "FILE.toml",
        default_value = "/etc/altair/altairctl.toml"
    )]
    config: PathBuf,
    /// Print machine-readable JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that the configured orchestrators answer (gRPC health).
    Ping,
    /// The failover audit trail of a cluster: per-stage times, old and new primary,
    /// transactions salvaged or lost (newest first).
    History {
        cluster: String,
        /// How many records.
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Acknowledge a cluster's last failover: lifts the anti-flapping block so a new
    /// failure fails over automatically again.
    Ack { cluster: String },
    /// Show clusters and their hosts: role, health, read_only, GTID position, lag.
    /// Needs the [zookeeper] section in the config.
    Status {
        /// Only this cluster.
        cluster: Option<String>,
    },
    /// What a failover would do right now, per cluster: the candidate, transactions it
    /// lacks (count and GTIDs) and its lag, whether salvage could run, errant
    /// transactions on replicas, hosts not heard, and a verdict (lossless, lossy,
    /// blocked: why). Judged by the owning monitor from heartbeats (no load on mysqld);
    /// also in `status` and as metrics. Needs the [zookeeper] section in the config.
    Readiness {
        /// Only this cluster.
        cluster: Option<String>,
    },
    /// The replication tree of a cluster as the agents report it now: who replicates
    /// from whom, health, read_only, GTIDs, lag, old primaries waiting for rejoin.
    Topology { cluster: String },
    /// Planned switchover: the primary goes read-only (client connections killed), the
    /// candidate applies everything, is promoted, the old primary replicates from it and
    /// DNS moves. Nothing is lost. Refused unless the primary and a candidate are healthy.
    Switchover {
        cluster: String,
        /// The replica to promote; default: altair chooses.
        #[arg(long, value_name = "HOST")]
        to: Option<String>,
    },
    /// Forced failover: fence the primary and promote a replica now, like an automatic
    /// failover (the old primary then waits for rejoin). Asks for confirmation.
    Failover {
        cluster: String,
        #[arg(long, value_name = "HOST")]
        to: Option<String>,
        /// Even when the primary is verified alive (otherwise refused: use switchover).
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Abort a stuck failover before its promotion starts (e.g. every candidate is
    /// down and it retries with backoff): it ends without a new primary, the reason goes
    /// into the audit record, and automatic failover of the cluster is held until
    /// `altairctl ack`. A switchover is rolled back (the old primary writable again).
    /// Refused once promotion has started: from there it only goes forward.
    Abort {
        cluster: String,
        /// Why (required; recorded in the audit record).
        #[arg(long)]
        reason: String,
    },
    /// Remove a decommissioned host from its cluster: its registration and health go,
    /// and the cluster no longer waits for it to rejoin. Stop its agent first (a running
    /// agent would register it again); refused for the primary and during a failover.
    Forget { cluster: String, host: String },
    /// Maintenance pause: no automatic failover (and no automatic rejoin) of the cluster
    /// until `altairctl resume` or the end of `--for`. Detection and status go on; a
    /// switchover or forced failover still works and its record says the cluster was
    /// paused. Who paused, why and until when show in status, metrics and history.
    Pause {
        /// The cluster; or --all.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        cluster: Option<String>,
        /// Every cluster (the whole fleet: a ZooKeeper or network maintenance).
        #[arg(long)]
        all: bool,
        /// End the pause by itself after this long (30m, 2h, 1h30m; at most a week).
        #[arg(long = "for", value_name = "DURATION", value_parser = altairctl::pause::parse_for)]
        for_seconds: Option<u64>,
        /// Why (required; in the audit record, status and metrics).
        #[arg(long)]
        reason: String,
    },
    /// End a maintenance pause: automatic failover applies again at once (a primary
    /// that died during the pause fails over now).
    Resume {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        cluster: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Release a datacenter's failover hold. Admission control holds the failovers of a
    /// datacenter when many of its primaries are lost at once (more than
    /// `admission.share_percent`, at least `admission.min_primaries`, within
    /// `admission.window_s`): that looks like this control plane's own partition more
    /// than like every host dying. A cluster goes ahead by itself only when a replica in
    /// that datacenter confirms its primary dead. Release when you know the datacenter
    /// (or rack) is really gone: every held failover starts, each primary still verified
    /// dead. `altairctl status` shows the holds.
    Release {
        datacenter: String,
        /// Why (required; stored with the hold and in each released failover's notes).
        #[arg(long)]
        reason: String,
    },
    /// Re-attach a fenced old primary as a replica. Refused while it has errant
    /// transactions (listed); `--force` saves them to a file on the host, reverts them and
    /// re-attaches it.
    Rejoin {
        host: String,
        /// The host's cluster; default: the cluster in which HOST waits for rejoin.
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        force: bool,
    },
}

/// The fleet (or one cluster) as `status` reads it; a failure is printed and becomes
/// the exit code.
fn fetch_status(
    runtime: &tokio::runtime::Runtime,
    config: &CtlConfig,
    config_path: &std::path::Path,
    cluster: Option<&str>,
    timeout: Duration,
    tls: &altair_svc::Tls,
) -> Result<altairctl::status::Status, ExitCode> {
    let Some(zk) = &config.zookeeper else {
        eprintln!(
            "altairctl: {}: zookeeper: missing; `status` and `readiness` read the fleet from ZooKeeper: add a [zookeeper] section with servers",
            config_path.display()
        );
        return Err(ExitCode::from(exit::USAGE));
    };
    match runtime.block_on(altairctl::status::status(zk, cluster, timeout, tls)) {
        Ok(status) => Ok(status),
        Err(e @ altairctl::status::StatusError::NotFound(_)) => {
            eprintln!("altairctl: status: {e}");
            Err(ExitCode::from(exit::FAILED))
        }
        Err(e) => {
            eprintln!(
                "altairctl: status: {e}; check the [zookeeper] servers in {}",
                config_path.display()
            );
            Err(ExitCode::from(exit::UNREACHABLE))
        }
    }
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match altair_svc::load_config::<CtlConfig>(&cli.config, "ALTAIRCTL") {
        Ok(loaded) => loaded.config,
        Err(e) => {
            eprintln!("altairctl: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let tls = match altair_svc::Tls::load(&config.tls) {
        Ok(tls) => {
            altairctl::tls::set(tls.clone());
            tls
        }
        Err(e) => {
            eprintln!("altairctl: {}: {e}", cli.config.display());
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("altairctl: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let timeout = Duration::from_millis(config.timeout_ms);
    match cli.command {
        Command::History { cluster, limit } => {
            let r = runtime.block_on(altairctl::admin::history(
                &config.orchestrators,
                &cluster,
                limit,
                timeout,
            ));
            match r {
                Ok(records) if cli.json => match print_json(&records) {
                    Ok(()) => ExitCode::from(exit::OK),
                    Err(code) => code,
                },
                Ok(records) => {
                    print!("{}", altairctl::admin::render_history(&cluster, &records));
                    ExitCode::from(exit::OK)
                }
                Err(e) => admin_failure("history", &e, &cli.config),
            }
        }
        Command::Ack { cluster } => match runtime.block_on(altairctl::admin::acknowledge(
            &config.orchestrators,
            &cluster,
            timeout,
        )) {
            Ok(()) if cli.json => {
                print_json(&serde_json::json!({"cluster": cluster, "acknowledged": true}))
                    .err()
                    .unwrap_or(ExitCode::from(exit::OK))
            }
            Ok(()) => {
                println!(
                    "cluster {cluster}: failover block lifted; a new failure fails over automatically"
                );
                ExitCode::from(exit::OK)
            }
            Err(e) => admin_failure("ack", &e, &cli.config),
        },
        Command::Status { cluster } => {
            match fetch_status(
                &runtime,
                &config,
                &cli.config,
                cluster.as_deref(),
                timeout,
                &tls,
            ) {
                Ok(status) if cli.json => print_json(&status)
                    .err()
                    .unwrap_or(ExitCode::from(exit::OK)),
                Ok(status) => {
                    print!("{}", altairctl::status::render(&status));
                    ExitCode::from(exit::OK)
                }
                Err(code) => code,
            }
        }
        Command::Readiness { cluster } => {
            match fetch_status(
                &runtime,
                &config,
                &cli.config,
                cluster.as_deref(),
                timeout,
                &tls,
            ) {
                Ok(status) if cli.json => print_json(&altairctl::readiness::by_cluster(&status))
                    .err()
                    .unwrap_or(ExitCode::from(exit::OK)),
                Ok(status) => {
                    print!("{}", altairctl::readiness::render(&status));
                    ExitCode::from(exit::OK)
                }
                Err(code) => code,
            }
        }
        Command::Topology { cluster } => {
            let orch = &config.orchestrators;
            match runtime.block_on(altairctl::topology::topology(orch, &cluster, timeout)) {
                Ok(t) => {
                    let tree = altairctl::topology::Tree::from(&t);
                    if cli.json {
                        return print_json(&tree).err().unwrap_or(ExitCode::from(exit::OK));
                    }
                    print!("{}", altairctl::topology::render(&tree));
                    ExitCode::from(exit::OK)
                }
                Err(e) => admin_failure("topology", &e, &cli.config),
            }
        }
        Command::Switchover { cluster, to } => {
            let orch = &config.orchestrators;
            let r = runtime.block_on(altairctl::actions::switchover(
                orch,
                &cluster,
                to.as_deref(),
                timeout,
            ));
            report_failover("switchover", &cluster, r, cli.json, &cli.config)
        }
        Command::Failover {
            cluster,
            to,
            force,
            yes,
        } => {
            if !yes && !confirm(&cluster) {
                return ExitCode::from(exit::USAGE);
            }
            let orch = &config.orchestrators;
            let r = runtime.block_on(altairctl::actions::failover(
                orch,
                &cluster,
                to.as_deref(),
                force,
                timeout,
            ));
            report_failover("failover", &cluster, r, cli.json, &cli.config)
        }
        Command::Forget { cluster, host } => match runtime.block_on(altairctl::admin::forget(
            &config.orchestrators,
            &cluster,
            &host,
            timeout,
        )) {
            Ok(()) if cli.json => print_json(
                &serde_json::json!({"cluster": cluster, "host": host, "forgotten": true}),
            )
            .err()
            .unwrap_or(ExitCode::from(exit::OK)),
            Ok(()) => {
                println!("cluster {cluster}: host {host} forgotten");
                ExitCode::from(exit::OK)
            }
            Err(e) => admin_failure("forget", &e, &cli.config),
        },
        Command::Pause {
            cluster,
            all: _,
            for_seconds,
            reason,
        } => {
            let r = runtime.block_on(altairctl::pause::pause(
                &config.orchestrators,
                cluster.as_deref(),
                for_seconds,
                &reason,
                timeout,
            ));
            operate::report_pause("pause", r, cli.json, &cli.config)
        }
        Command::Resume { cluster, all: _ } => {
            let r = runtime.block_on(altairctl::pause::resume(
                &config.orchestrators,
                cluster.as_deref(),
                timeout,
            ));
            operate::report_pause("resume", r, cli.json, &cli.config)
        }
        Command::Release { datacenter, reason } => {
            let r = runtime.block_on(altairctl::release::release(
                &config.orchestrators,
                &datacenter,
                &reason,
                timeout,
            ));
            operate::report_release(r, cli.json, &cli.config)
        }
        Command::Abort { cluster, reason } => {
            let orch = &config.orchestrators;
            let r = runtime.block_on(altairctl::actions::abort(orch, &cluster, &reason, timeout));
            operate::report_abort(&cluster, r, cli.json, &cli.config)
        }
        Command::Rejoin {
            host,
            cluster,
            force,
        } => operate::rejoin(
            &runtime,
            &config,
            &cli.config,
            cli.json,
            &host,
            cluster,
            force,
        ),
        Command::Ping => {
            let results = runtime.block_on(async {
                let mut out = Vec::new();
                for address in &config.orchestrators {
                    out.push(altairctl::ping::ping(address, timeout).await);
                }
                out
            });
            if cli.json {
                if let Err(code) = print_json(&results) {
                    return code;
                }
            } else {
                for r in &results {
                    println!(
                        "{:<24} {:<8} {} ms  {}",
                        r.address,
                        if r.serving { "ok" } else { "DOWN" },
                        r.elapsed_ms,
                        r.status
                    );
                }
            }
            if results.iter().any(|r| r.serving) {
                ExitCode::from(exit::OK)
            } else {
                eprintln!(
                    "altairctl: no orchestrator answered; check that they run and that {} lists their addresses",
                    cli.config.display()
                );
                ExitCode::from(exit::UNREACHABLE)
            }
        }
    }
}
