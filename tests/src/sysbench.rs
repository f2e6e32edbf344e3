//! sysbench (Debian's 1.0.20) as a realistic write load: `oltp_write_only` against the
//! application user. It crashes when its server connection drops, so across a failover it
//! runs in short back-to-back runs, each against the address `primary.c1` answers then —
//! as an application under a supervisor would.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::world::{CLUSTER, World};

/// What one run reported.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub transactions: u64,
    pub tps: f64,
    pub avg_ms: f64,
    /// The `--percentile` asked for.
    pub percentile_ms: f64,
    /// It ran to its end (no dropped connection).
    pub completed: bool,
}

/// Where and as whom sysbench connects.
#[derive(Debug, Clone)]
pub struct Target {
    pub user: String,
    pub password: String,
    dns: Option<(std::net::SocketAddr, String)>,
}

impl Target {
    pub fn of(w: &World) -> Self {
        let app = w.cluster.app();
        Self {
            user: app.user.clone(),
            password: app.password.clone(),
            dns: w
                .dns
                .as_ref()
                .map(|d| (d.addr(), format!("primary.{CLUSTER}.{}", d.zone()))),
        }
    }

    async fn primary(&self) -> Option<Ipv4Addr> {
        let (server, name) = self.dns.as_ref()?;
        altair_dns::lookup_a(*server, name, Duration::from_millis(500))
            .await
            .ok()?
            .first()
            .copied()
    }

    fn command(&self, ip: Ipv4Addr, args: &[String], action: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sysbench");
        c.arg("oltp_write_only")
            .arg("--db-driver=mysql")
            .arg(format!("--mysql-host={ip}"))
            .arg("--mysql-port=3306")
            .arg(format!("--mysql-user={}", self.user))
            .arg(format!("--mysql-password={}", self.password))
            .arg("--mysql-db=app")
            .arg("--tables=1")
            .arg("--table-size=10000")
            .args(args)
            .arg(action)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Creates sysbench's table on the primary at `ip`.
    pub async fn prepare(&self, ip: Ipv4Addr) {
        let out = self
            .command(ip, &[], "prepare")
            .output()
            .await
            .expect("sysbench is installed (make deps)");
        assert!(
            out.status.success(),
            "sysbench prepare: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One run of `secs` seconds with `threads` threads at `rate` tx/s (0: as fast as it
    /// goes), reporting the `percentile`.
    pub async fn run(
        &self,
        ip: Ipv4Addr,
        secs: u32,
        threads: u32,
        rate: u32,
        percentile: u32,
    ) -> Run {
        let args = [
            format!("--time={secs}"),
            format!("--threads={threads}"),
            format!("--rate={rate}"),
            format!("--percentile={percentile}"),
            "--report-interval=0".to_owned(),
        ];
        let out = self
            .command(ip, &args, "run")
            .output()
            .await
            .expect("sysbench is installed (make deps)");
        parse(&String::from_utf8_lossy(&out.stdout), out.status.success())
    }

    /// Back-to-back 1 s runs against whatever `primary.c1` answers, until `stop`: the
    /// load an application tier keeps up through a failover. Returns every run.
    pub fn keep_running(
        &self,
        threads: u32,
        rate: u32,
        stop: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<Vec<Run>> {
        let t = self.clone();
        tokio::spawn(async move {
            let mut runs = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let Some(ip) = t.primary().await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let r = t.run(ip, 1, threads, rate, 99).await;
                if !r.completed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                runs.push(r);
            }
            runs
        })
    }
}

fn number_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    line.split_once(':')?.1.split_whitespace().next()
}

fn parse(text: &str, ok: bool) -> Run {
    let num = |key: &str| number_after(text, key).and_then(|v| v.parse::<f64>().ok());
    let tps = text
        .lines()
        .find(|l| l.trim_start().starts_with("transactions:"))
        .and_then(|l| l.split_once('(')?.1.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Run {
        transactions: num("transactions:").unwrap_or(0.0) as u64,
        tps,
        avg_ms: num("avg:").unwrap_or(0.0),
        percentile_ms: text
            .lines()
            .find(|l| l.contains("th percentile:"))
            .and_then(|l| l.split_once(':')?.1.trim().parse().ok())
            .unwrap_or(0.0),
        completed: ok,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_sysbench_output() {
        let out = "SQL statistics:\n    transactions:                        12011  (1200.73 per sec.)\n\
                   Latency (ms):\n         min:                                    0.90\n         avg:                                    3.32\n\
                   max:    40.1\n         99th percentile:                        9.91\n";
        let r = super::parse(out, true);
        assert_eq!(r.transactions, 12011);
        assert!((r.tps - 1200.73).abs() < 1e-6);
        assert!((r.avg_ms - 3.32).abs() < 1e-6);
        assert!((r.percentile_ms - 9.91).abs() < 1e-6);
    }
}
