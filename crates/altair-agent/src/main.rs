use std::path::PathBuf;
use std::process::ExitCode;

use altair_svc::{ServiceSpec, run_service};
use clap::Parser;

/// altair-agent: the altair process on every MySQL host.
///
/// Probes the local mysqld, reports to the monitor that owns its cluster and carries out
/// host-side actions (status, reachability checks, fencing, binlog salvage) for the
/// orchestrator. Exits 2 with a message naming the key when the config is invalid.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The agent's TOML config (annotated example: deploy/agent.toml). Any key can be
    /// overridden with ALTAIR_AGENT__SECTION__KEY=value.
    #[arg(long, short, env = "ALTAIR_AGENT_CONFIG", value_name = "FILE.toml")]
    config: PathBuf,
    /// Check the config and the secrets it points at, print the result and exit
    /// (0 when valid, 2 when not).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = ServiceSpec {
        name: "altair-agent",
        env_prefix: "ALTAIR_AGENT",
        log: |c: &altair_core::config::AgentConfig| &c.log,
        metrics: |c: &altair_core::config::AgentConfig| &c.metrics,
        secrets: altair_agent::read_secrets,
    };
    run_service(spec, &args.config, args.check_config, altair_agent::run)
}
