//! A real HAProxy (Debian's `haproxy`) running the shipped `deploy/haproxy/haproxy.cfg`,
//! unmodified: what it needs comes in through the environment variables that config
//! reads.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::{Result, io_err, require_tool, temp_dir, wait_for, with_log_tail};

/// Where the config's names and addresses come from.
#[derive(Debug, Clone)]
pub struct HaProxyOptions {
    /// The DNS server answering altair's zone.
    pub dns: SocketAddr,
    /// `primary.<cluster>.<zone>` and `replicas.<cluster>.<zone>`, without the final dot.
    pub primary: String,
    pub replicas: String,
    /// The address the frontends bind to.
    pub ip: IpAddr,
}

#[derive(Debug)]
pub struct HaProxy {
    write: SocketAddr,
    read: SocketAddr,
    proc: Proc,
    _ports: (Port, Port),
    _dir: tempfile::TempDir,
}

impl HaProxy {
    /// Starts HAProxy with `config` (the shipped file) and waits until both frontends
    /// accept connections.
    pub async fn start(config: &Path, options: HaProxyOptions) -> Result<Self> {
        let haproxy = require_tool("haproxy")?;
        let dir = temp_dir("altair-haproxy-")?;
        let (w, r) = (reserve(options.ip)?, reserve(options.ip)?);
        let write = SocketAddr::new(options.ip, w.get());
        let read = SocketAddr::new(options.ip, r.get());
        // The config is checked first, so a bad one fails with HAProxy's own words.
        let env = [
            ("ALTAIR_DNS", options.dns.to_string()),
            ("ALTAIR_PRIMARY", options.primary.clone()),
            ("ALTAIR_REPLICAS", options.replicas.clone()),
            ("ALTAIR_WRITE_BIND", write.to_string()),
            ("ALTAIR_READ_BIND", read.to_string()),
        ];
        let check = Command::new(&haproxy)
            .arg("-c")
            .arg("-f")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .map_err(io_err("run haproxy -c"))?;
        if !check.status.success() {
            return Err(crate::Error::Command {
                what: format!("check {}", config.display()),
                detail: String::from_utf8_lossy(&check.stdout).into_owned()
                    + &String::from_utf8_lossy(&check.stderr),
            });
        }
        let mut cmd = Command::new(&haproxy);
        // -db: stay in the foreground, log to stdout.
        cmd.arg("-db")
            .arg("-f")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let proc = Proc::spawn("haproxy", &mut cmd, &dir.path().join("haproxy.log"))?;
        let ready = wait_for(
            "HAProxy accepts connections",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async move {
                let w = tokio::net::TcpStream::connect(write).await;
                let r = tokio::net::TcpStream::connect(read).await;
                match (w, r) {
                    (Ok(_), Ok(_)) => Ok(Some(())),
                    (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                }
            },
        )
        .await;
        let me = Self {
            write,
            read,
            proc,
            _ports: (w, r),
            _dir: dir,
        };
        with_log_tail(ready, || me.proc.log_tail(20))?;
        Ok(me)
    }

    /// Where applications connect for writes (the `primary` backend).
    pub fn write_addr(&self) -> SocketAddr {
        self.write
    }

    /// Where they connect for reads (the `replicas` backend).
    pub fn read_addr(&self) -> SocketAddr {
        self.read
    }

    /// HAProxy's own log (connections, server state changes).
    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }
}
