//! altair-sandbox: runs altair's local sandbox (ZooKeeper, BIND, a 3-host MariaDB
//! cluster in network namespaces when root) in the background, and stops it.
//!
//!   altair-sandbox up       start it detached; returns once it is ready
//!   altair-sandbox status   print its state (each host's role, read_only, GTIDs; DNS)
//!   altair-sandbox demo     write through the primary's DNS name and show where it went
//!   altair-sandbox down     stop it, leaving no process, namespace or temp dir

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use altair_testkit::sandbox::{DESCRIPTION_FILE, Description, Sandbox, SandboxOptions, sweep};
use clap::{Parser, Subcommand};

mod demo;
mod status;

#[derive(Parser)]
#[command(version, about = "Run altair's local sandbox of real components")]
struct Cli {
    /// Directory for the sandbox's description, configs, logs and data.
    #[arg(long, global = true, default_value = "target/sandbox")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sandbox in the background and wait until it is ready.
    Up {
        /// Stay in the foreground (the supervisor itself; stop with Ctrl-C or SIGTERM).
        #[arg(long)]
        foreground: bool,
        /// Put hosts on loopback ports even when running as root.
        #[arg(long)]
        no_namespaces: bool,
        /// Seconds to wait for the sandbox to come up.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// The cluster's durability: `async`, or `semi_sync` (the primary acknowledges a
        /// commit only once a replica has it).
        #[arg(long, default_value = "async", value_parser = ["async", "semi_sync"])]
        durability: String,
        /// How many clusters of 3 hosts (`c1`, `c2`, …; small buffer pools: 10 fit a
        /// 2-core, 24 GB machine).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
        clusters: u16,
    },
    /// Print the state of the running sandbox.
    Status {
        /// Print sandbox.json instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a row through the primary's DNS name as the application user and show it
    /// on every replica (and the replicas refusing that user's writes).
    Demo,
    /// `kill -9` the mysqld of one host (its agent reports mysql_down at once).
    KillMysqld {
        /// Host name, e.g. db3.
        host: String,
        /// The host's cluster (needed when several clusters have a host of that name).
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Wait until the primary's DNS name answers another host (after a failover).
    WaitFailover {
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Only this cluster (default: every cluster).
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Stop the sandbox and remove everything it made.
    Down,
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up {
            foreground: true,
            no_namespaces,
            durability,
            clusters,
            ..
        } => supervise(&cli.dir, no_namespaces, &durability, clusters),
        Command::Up {
            timeout,
            no_namespaces,
            durability,
            clusters,
            ..
        } => up_detached(
            &cli.dir,
            no_namespaces,
            &durability,
            clusters,
            Duration::from_secs(timeout),
        ),
        Command::Status { json } => {
            runtime().and_then(|rt| rt.block_on(status::status(&cli.dir, json)))
        }
        Command::Demo => runtime().and_then(|rt| rt.block_on(demo::demo(&cli.dir))),
        Command::KillMysqld { host, cluster } => kill_mysqld(&cli.dir, &host, cluster.as_deref()),
        Command::WaitFailover { timeout, cluster } => runtime().and_then(|rt| {
            rt.block_on(wait_failover(
                &cli.dir,
                Duration::from_secs(timeout),
                cluster.as_deref(),
            ))
        }),
        Command::Down => runtime().and_then(|rt| rt.block_on(down(&cli.dir))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("altair-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the async runtime: {e}"))
}

pub(crate) fn read_description(dir: &Path) -> Result<Option<Description>, String> {
    let path = dir.join(DESCRIPTION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{} is not a sandbox description: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("read {}: {e}", path.display())),
    }
}

fn pid_alive(pid: u32) -> bool {
    // A zombie counts as dead ("kill -0" reports zombies alive).
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn supervisor_pid_file(dir: &Path) -> PathBuf {
    dir.join("supervisor.pid")
}

/// The supervisor: starts the sandbox, publishes sandbox.json, waits for a signal, stops.
fn supervise(
    dir: &Path,
    no_namespaces: bool,
    durability: &str,
    clusters: u16,
) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    // Temp dirs of every component go under the sandbox dir, so `down` can always remove
    // them. Set before the runtime starts any thread.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    set_tmp_env(&tmp);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("start the async runtime: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    std::fs::write(supervisor_pid_file(dir), std::process::id().to_string())
        .map_err(|e| format!("write the pid file: {e}"))?;
    let mut options = SandboxOptions::new(dir);
    options.clusters = usize::from(clusters);
    options.durability = if durability == "semi_sync" {
        "semi_sync"
    } else {
        "async"
    };
    // The altair binaries sit next to this one (target/debug).
    options.bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned));
    if no_namespaces {
        options.namespaces = Some(false);
    }
    rt.block_on(async move {
        let sandbox = Sandbox::start(options)
            .await
            .map_err(|e| format!("start: {e}"))?;
        let desc = sandbox.write_files().map_err(|e| e.to_string())?;
        tracing::info!(startup_ms = desc.startup_ms, "sandbox is up");
        wait_for_signal().await;
        tracing::info!("stopping the sandbox");
        let _ = std::fs::remove_file(dir.join(DESCRIPTION_FILE));
        match sandbox.keep_logs() {
            Ok(to) => tracing::info!(logs = %to.display(), "the services' logs are kept"),
            Err(e) => tracing::warn!(error = %e, "the services' logs could not be kept"),
        }
        drop(sandbox);
        Ok::<(), String>(())
    })?;
    let _ = std::fs::remove_file(supervisor_pid_file(dir));
    let _ = std::fs::remove_dir_all(dir.join("tmp"));
    Ok(())
}

#[allow(unsafe_code)]
fn set_tmp_env(tmp: &Path) {
    // SAFETY: called once at start-up while the process has a single thread.
    unsafe { std::env::set_var("ALTAIR_TESTKIT_TMP", tmp) };
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Starts the supervisor in its own session and waits until sandbox.json appears.
#[allow(clippy::print_stdout)]
fn up_detached(
    dir: &Path,
    no_namespaces: bool,
    durability: &str,
    clusters: u16,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(desc) = read_description(dir)? {
        if pid_alive(desc.supervisor_pid) {
            return Err(format!(
                "a sandbox is already running (supervisor pid {}); run `make sandbox-down` first",
                desc.supervisor_pid
            ));
        }
        let _ = std::fs::remove_file(dir.join(DESCRIPTION_FILE));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let log_path = dir.join("sandbox.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("find my own executable: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--dir")
        .arg(dir)
        .args(["up", "--foreground", "--durability", durability])
        .arg("--clusters")
        .arg(clusters.to_string());
    if no_namespaces {
        cmd.arg("--no-namespaces");
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err);
    new_session(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start the supervisor: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(desc) = read_description(dir)? {
            println!(
                "sandbox is up in {:.1} s (supervisor pid {}); described in {}",
                desc.startup_ms as f64 / 1000.0,
                desc.supervisor_pid,
                dir.join(DESCRIPTION_FILE).display()
            );
            if let Some(c) = &desc.console {
                println!(
                    "web console: {} (user {}, password {})",
                    c.url, c.user, c.password
                );
            }
            if let Some(logs) = &desc.logs {
                println!("the services' logs: {logs}");
            }
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "the sandbox supervisor exited ({status}) before it was ready:\n{log}"
            ));
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            return Err(format!(
                "the sandbox was not ready after {timeout:?}; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[allow(unsafe_code)]
fn new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from the caller's
    // terminal and process group so `make sandbox` can return.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[allow(clippy::print_stdout)]
async fn wait_failover(dir: &Path, timeout: Duration, only: Option<&str>) -> Result<(), String> {
    let mut desc = status::running(dir)?;
    if let Some(name) = only {
        desc.clusters.retain(|c| c.name == name);
        if desc.clusters.is_empty() {
            return Err(format!("no cluster {name:?} in the sandbox"));
        }
    }
    let dns: std::net::SocketAddr = desc
        .dns
        .server
        .parse()
        .map_err(|e| format!("dns.server: {e}"))?;
    for c in &desc.clusters {
        let first = c
            .hosts
            .iter()
            .find(|h| h.initial_role == "primary")
            .and_then(|h| h.mysql.rsplit_once(':').map(|(ip, _)| ip.to_owned()))
            .unwrap_or_default();
        let started = Instant::now();
        loop {
            let ips = altair_dns::lookup_a(dns, &c.primary_dns, Duration::from_secs(1))
                .await
                .unwrap_or_default();
            if let Some(ip) = ips.first().filter(|ip| ip.to_string() != first) {
                println!(
                    "{} now answers {ip} ({:.2} s after this wait began)",
                    c.primary_dns,
                    started.elapsed().as_secs_f64()
                );
                break;
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "{} still answers {first} after {timeout:?}",
                    c.primary_dns
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn kill_mysqld(dir: &Path, host: &str, cluster: Option<&str>) -> Result<(), String> {
    let desc = status::running(dir)?;
    let matching: Vec<(&str, &altair_testkit::sandbox::HostDesc)> = desc
        .clusters
        .iter()
        .filter(|c| cluster.is_none_or(|name| c.name == name))
        .flat_map(|c| c.hosts.iter().map(move |h| (c.name.as_str(), h)))
        .filter(|(_, h)| h.name == host)
        .collect();
    let h = match matching.as_slice() {
        [] => return Err(format!("no host {host:?} in the sandbox")),
        [(_, h)] => *h,
        many => {
            return Err(format!(
                "host {host:?} is in clusters {}: say which with --cluster",
                many.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
            ));
        }
    };
    let pid = h
        .mysqld_pid
        .filter(|p| pid_alive(*p))
        .ok_or_else(|| format!("mysqld of {host} is not running"))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| format!("kill {pid}: {e}"))?;
    println!("killed mysqld of {host} (pid {pid}) with SIGKILL");
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn down(dir: &Path) -> Result<(), String> {
    let desc = read_description(dir)?;
    let pid = match &desc {
        Some(d) => Some(d.supervisor_pid),
        None => std::fs::read_to_string(supervisor_pid_file(dir))
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    };
    if let Some(pid) = pid.filter(|p| pid_alive(*p)) {
        use nix::sys::signal::{Signal, kill};
        let nix_pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = kill(nix_pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while pid_alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if pid_alive(pid) {
            // Its children die with it (PR_SET_PDEATHSIG).
            let _ = kill(nix_pid, Signal::SIGKILL);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("sandbox stopped (supervisor pid {pid})");
    } else {
        println!("no sandbox was running");
    }
    if let Some(d) = &desc {
        sweep(d).await;
    }
    for leftover in [DESCRIPTION_FILE, "supervisor.pid"] {
        let _ = std::fs::remove_file(dir.join(leftover));
    }
    let _ = std::fs::remove_dir_all(dir.join("tmp"));
    Ok(())
}
