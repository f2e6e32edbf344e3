//! Making a mysqld that does not answer on its own host *not running* (DESIGN §6: "could
//! not connect" is not fenced). The agent knows the server's pid (from `@@pid_file`, read
//! while it answered): a frozen (SIGSTOP), hung or overloaded mysqld is killed, and only
//! once the process is gone does the fence report `NotRunning`. A mysqld resumed later
//! can then acknowledge nothing.

use std::time::Duration;

use tonic::Status;

use crate::actions::Actions;

/// How long a killed mysqld may take to disappear.
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// The state letter of `/proc/<pid>/stat` when `pid` is a mysqld (`mariadbd`/`mysqld`),
/// `None` when no such process exists (gone, or the pid reused by something else).
fn mysqld_state(pid: i32) -> Option<char> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    if !matches!(comm.trim(), "mariadbd" | "mysqld") {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn running(pid: i32) -> bool {
    mysqld_state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

impl Actions {
    /// Is the local mysqld's port refusing connections (nothing listens)? On its own
    /// host that is proof it does not run; a timeout proves nothing.
    async fn port_refused(&self) -> bool {
        let addr = format!("{}:{}", self.host, self.port);
        matches!(
            tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(&addr)).await,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    }

    /// Ensures the local mysqld is not running: `Ok` when it is gone (it was not running,
    /// it stopped within `grace`, or it was killed and went away); an error when that
    /// cannot be established. Without a pid to check, only a port that refuses
    /// connections counts as "not running".
    pub async fn make_not_running(&self, grace: Duration) -> Result<(), Status> {
        let pid_file = self.facts.lock().ok().and_then(|f| f.pid_file.clone());
        let pid = pid_file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse::<i32>().ok());
        let Some(pid) = pid.filter(|p| mysqld_state(*p).is_some()) else {
            // No pid file (removed by a clean stop), or its pid is no mysqld we can see.
            return if self.port_refused().await {
                Ok(())
            } else {
                Err(Status::unavailable(
                    "mysqld does not answer, and neither its pid nor a refused port shows it stopped",
                ))
            };
        };
        let started = std::time::Instant::now();
        while running(pid) && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !running(pid) {
            return Ok(());
        }
        tracing::error!(
            pid,
            "mysqld does not answer on its own host: killing it before anything is promoted"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| Status::unavailable(format!("kill mysqld (pid {pid}): {e}")))?;
        let started = std::time::Instant::now();
        while running(pid) {
            if started.elapsed() > GONE_WITHIN {
                return Err(Status::unavailable(format!(
                    "mysqld (pid {pid}) still runs {} s after SIGKILL",
                    GONE_WITHIN.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_mysqld_counts() {
        // This test process is not a mysqld, whatever its state.
        assert_eq!(super::mysqld_state(std::process::id() as i32), None);
        assert_eq!(super::mysqld_state(i32::MAX), None);
    }
}
