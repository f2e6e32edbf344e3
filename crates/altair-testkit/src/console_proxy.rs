//! A real HAProxy running the shipped `deploy/console/haproxy.cfg`, unmodified: the
//! authenticating proxy in front of the orchestrators' web console (`proxy_header`).
//! It asks browsers for a login (HTTP Basic) and passes the user on in `X-Remote-User`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::{Result, io_err, random_secret, require_tool, temp_dir, wait_for, with_log_tail};

/// The login the proxy accepts.
pub const CONSOLE_USER: &str = "altair";

/// The shipped config, from the source tree.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/console/haproxy.cfg")
}

#[derive(Debug)]
pub struct ConsoleProxy {
    addr: SocketAddr,
    password: String,
    proc: Proc,
    _port: Port,
    _dir: tempfile::TempDir,
}

/// `openssl passwd -6`: the crypt(3) SHA-512 hash HAProxy's userlist checks.
fn crypt_hash(password: &str) -> Result<String> {
    let openssl = require_tool("openssl")?;
    let mut child = Command::new(openssl)
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err("run openssl passwd"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(password.as_bytes())
            .map_err(io_err("write to openssl passwd"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io_err("run openssl passwd"))?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !hash.starts_with("$6$") {
        return Err(crate::Error::Command {
            what: "openssl passwd -6".into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(hash)
}

impl ConsoleProxy {
    /// Starts HAProxy with `config` on `ip`, in front of `consoles` (the orchestrators'
    /// `console.listen`; the shipped config takes two, the first repeated when there is
    /// one), with a fresh random password, and waits until it accepts connections.
    pub async fn start(config: &Path, ip: IpAddr, consoles: &[String]) -> Result<Self> {
        let haproxy = require_tool("haproxy")?;
        let first = consoles.first().ok_or_else(|| crate::Error::Command {
            what: "start the console proxy".into(),
            detail: "no orchestrator serves a console".into(),
        })?;
        let second = consoles.get(1).unwrap_or(first);
        let dir = temp_dir("altair-console-proxy-")?;
        let port = reserve(ip)?;
        let addr = SocketAddr::new(ip, port.get());
        let password = random_secret(20);
        let env = [
            ("ALTAIR_CONSOLE_BIND", addr.to_string()),
            ("ALTAIR_CONSOLE_O1", first.clone()),
            ("ALTAIR_CONSOLE_O2", second.clone()),
            ("ALTAIR_CONSOLE_USER", CONSOLE_USER.to_owned()),
            ("ALTAIR_CONSOLE_PASSWORD_HASH", crypt_hash(&password)?),
        ];
        let check = Command::new(&haproxy)
            .args(["-c", "-f"])
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
        cmd.arg("-db")
            .arg("-f")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let proc = Proc::spawn("console proxy", &mut cmd, &dir.path().join("haproxy.log"))?;
        let ready = wait_for(
            "the console proxy accepts connections",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async move {
                tokio::net::TcpStream::connect(addr)
                    .await
                    .map(|_| Some(()))
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        let me = Self {
            addr,
            password,
            proc,
            _port: port,
            _dir: dir,
        };
        with_log_tail(ready, || me.proc.log_tail(20))?;
        Ok(me)
    }

    /// What a browser opens.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn user(&self) -> &str {
        CONSOLE_USER
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }
}
