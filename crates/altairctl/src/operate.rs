//! The operator actions' output: confirmation, failover reports, rejoin.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use altair_core::config::CtlConfig;
use altairctl::exit;

use crate::output::{admin_failure, print_json};

/// Asks on the terminal; anything but the cluster's name (or no terminal) is a no.
pub fn confirm(cluster: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "altairctl: failover: refusing without confirmation: stdin is not a terminal; pass --yes"
        );
        return false;
    }
    eprint!(
        "Force a failover of cluster {cluster}? Its primary is fenced now. Type the cluster name to confirm: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let ok = std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == cluster;
    if !ok {
        eprintln!("altairctl: failover: not confirmed; nothing done");
    }
    ok
}

/// Prints an audit record as a table, or as JSON.
#[allow(clippy::print_stdout)]
fn print_audit(cluster: &str, a: &altairctl::admin::Audit, json: bool) -> Result<(), ExitCode> {
    if json {
        print_json(a)
    } else {
        print!(
            "{}",
            altairctl::admin::render_history(cluster, std::slice::from_ref(a))
        );
        Ok(())
    }
}

pub fn report_failover(
    what: &str,
    cluster: &str,
    r: Result<altairctl::admin::Audit, altairctl::admin::AdminError>,
    json: bool,
    config: &std::path::Path,
) -> ExitCode {
    match r {
        Ok(a) => {
            if let Err(code) = print_audit(cluster, &a, json) {
                return code;
            }
            let ok = a.outcome == "succeeded";
            if !ok {
                eprintln!("altairctl: {what}: {}: {}", a.outcome, a.reason);
            }
            ExitCode::from(if ok { exit::OK } else { exit::FAILED })
        }
        Err(e) => admin_failure(what, &e, config),
    }
}

/// `altairctl abort`: done when the failover ended without a new primary; a failover
/// that finished (promoted) before the abort took effect is a failure to abort.
pub fn report_abort(
    cluster: &str,
    r: Result<altairctl::admin::Audit, altairctl::admin::AdminError>,
    json: bool,
    config: &std::path::Path,
) -> ExitCode {
    match r {
        Ok(a) => {
            if let Err(code) = print_audit(cluster, &a, json) {
                return code;
            }
            if a.outcome == "succeeded" {
                eprintln!(
                    "altairctl: abort: the failover finished (promoted) before the abort took effect"
                );
                return ExitCode::from(exit::FAILED);
            }
            ExitCode::from(exit::OK)
        }
        Err(e) => admin_failure("abort", &e, config),
    }
}

/// `altairctl pause` / `resume`.
#[allow(clippy::print_stdout)]
pub fn report_pause(
    what: &str,
    r: Result<altairctl::pause::Paused, altairctl::admin::AdminError>,
    json: bool,
    config: &std::path::Path,
) -> ExitCode {
    match r {
        Ok(p) if json => print_json(&p).err().unwrap_or(ExitCode::from(exit::OK)),
        Ok(p) => {
            print!("{}", altairctl::pause::render(&p));
            ExitCode::from(exit::OK)
        }
        Err(e) => admin_failure(what, &e, config),
    }
}

#[allow(clippy::print_stdout)]
pub fn report_release(
    r: Result<altairctl::release::Released, altairctl::admin::AdminError>,
    json: bool,
    config: &std::path::Path,
) -> ExitCode {
    match r {
        Ok(p) if json => print_json(&p).err().unwrap_or(ExitCode::from(exit::OK)),
        Ok(p) => {
            print!("{}", altairctl::release::render(&p));
            ExitCode::from(exit::OK)
        }
        Err(e) => admin_failure("release", &e, config),
    }
}

/// `altairctl rejoin`: finds the host's cluster when not given, then asks the leader.
#[allow(clippy::print_stdout)]
pub fn rejoin(
    runtime: &tokio::runtime::Runtime,
    config: &CtlConfig,
    config_path: &Path,
    json: bool,
    host: &str,
    cluster: Option<String>,
    force: bool,
) -> ExitCode {
    let timeout = Duration::from_millis(config.timeout_ms);
    let orch = &config.orchestrators;
    let cluster = match cluster {
        Some(c) => c,
        None => match runtime.block_on(altairctl::actions::cluster_of_waiting_host(
            orch, host, timeout,
        )) {
            Ok(Some(c)) => c,
            Ok(None) => {
                eprintln!(
                    "altairctl: rejoin: {host} waits for rejoin in no cluster (`altairctl status` shows the hosts; pass --cluster to name one)"
                );
                return ExitCode::from(exit::FAILED);
            }
            Err(e) => return admin_failure("rejoin", &e, config_path),
        },
    };
    match runtime.block_on(altairctl::actions::rejoin(
        orch, &cluster, host, force, timeout,
    )) {
        Ok(r) => {
            if json {
                if let Err(code) = print_json(&r) {
                    return code;
                }
            } else if r.rejoined {
                println!("{host} rejoined cluster {cluster} as a replica");
                if !r.errant_gtids.is_empty() {
                    println!(
                        "  errant transactions {} were reverted; they are saved on {host} in {}",
                        r.errant_gtids, r.saved_to
                    );
                }
            } else {
                eprintln!(
                    "altairctl: rejoin: {host} has errant transactions the cluster does not: {}\n  inspect them (mariadb-binlog on {host}), then `altairctl rejoin {host} --cluster {cluster} --force` saves them to a file, reverts them and re-attaches {host}",
                    r.errant_gtids
                );
            }
            ExitCode::from(if r.rejoined { exit::OK } else { exit::FAILED })
        }
        Err(e) => admin_failure("rejoin", &e, config_path),
    }
}
