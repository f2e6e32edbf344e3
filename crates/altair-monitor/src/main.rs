use std::path::PathBuf;
use std::process::ExitCode;

use altair_svc::{ServiceSpec, run_service};
use clap::Parser;

/// altair-monitor: judges the health of MySQL hosts from their agents' heartbeats.
///
/// Monitors form a fleet registered in ZooKeeper; each owns a shard of the clusters and
/// publishes health transitions (never one write per heartbeat). Exits 2 with a message
/// naming the key when the config is invalid.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The monitor's TOML config (annotated example: deploy/monitor.toml). Any key can be
    /// overridden with ALTAIR_MONITOR__SECTION__KEY=value.
    #[arg(long, short, env = "ALTAIR_MONITOR_CONFIG", value_name = "FILE.toml")]
    config: PathBuf,
    /// Check the config, print the result and exit (0 when valid, 2 when not).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = ServiceSpec {
        name: "altair-monitor",
        env_prefix: "ALTAIR_MONITOR",
        log: |c: &altair_core::config::MonitorConfig| &c.log,
        metrics: |c: &altair_core::config::MonitorConfig| &c.metrics,
        secrets: altair_monitor::read_secrets,
    };
    run_service(spec, &args.config, args.check_config, altair_monitor::run)
}
