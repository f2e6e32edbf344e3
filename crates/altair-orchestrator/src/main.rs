use std::path::PathBuf;
use std::process::ExitCode;

use altair_svc::{ServiceSpec, run_service};
use clap::Parser;

/// altair-orchestrator: makes every failover and fencing decision.
///
/// Several run; one is elected leader in ZooKeeper and only it acts. It verifies a
/// reported failure, then fences, chooses, catches up, promotes, repoints and moves the
/// primary's DNS name, journaling each step so a new leader can resume. Exits 2 with a
/// message naming the key when the config is invalid.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The orchestrator's TOML config (annotated example: deploy/orchestrator.toml). Any
    /// key can be overridden with ALTAIR_ORCHESTRATOR__SECTION__KEY=value.
    #[arg(
        long,
        short,
        env = "ALTAIR_ORCHESTRATOR_CONFIG",
        value_name = "FILE.toml"
    )]
    config: PathBuf,
    /// Check the config and the secrets it points at, print the result and exit
    /// (0 when valid, 2 when not).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = ServiceSpec {
        name: "altair-orchestrator",
        env_prefix: "ALTAIR_ORCHESTRATOR",
        log: |c: &altair_core::config::OrchestratorConfig| &c.log,
        metrics: |c: &altair_core::config::OrchestratorConfig| &c.metrics,
        secrets: altair_orchestrator::read_secrets,
    };
    run_service(
        spec,
        &args.config,
        args.check_config,
        altair_orchestrator::run,
    )
}
