//! A real BIND 9 server, authoritative for one zone, taking TSIG-signed RFC 2136 updates.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use altair_dns::{TsigKey, lookup_a};
use base64::Engine;

use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::{Error, Result, io_err, require_tool, temp_dir, wait_for, with_log_tail};

pub const TSIG_KEY_NAME: &str = "altair-update";
pub const TSIG_ALGORITHM: &str = "hmac-sha256";

/// What the server starts with.
#[derive(Debug, Clone)]
pub struct BindOptions {
    /// The zone, fully qualified, e.g. `db.altair.test.`.
    pub zone: String,
    /// `(label, address)` A records inside the zone, e.g. `("primary.c1", 10.231.0.10)`.
    pub records: Vec<(String, Ipv4Addr)>,
    pub ip: IpAddr,
    /// TTL of every record, seconds.
    pub ttl: u32,
}

impl Default for BindOptions {
    fn default() -> Self {
        Self {
            zone: "db.altair.test.".into(),
            records: Vec::new(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ttl: 1,
        }
    }
}

#[derive(Debug)]
pub struct Bind {
    addr: SocketAddr,
    zone: String,
    secret_b64: String,
    secret_file: PathBuf,
    proc: Proc,
    _port: Port,
    _dir: tempfile::TempDir,
}

impl Bind {
    pub async fn start(options: BindOptions) -> Result<Self> {
        let named = require_tool("named")?;
        if !options.zone.ends_with('.') {
            return Err(Error::Command {
                what: "start BIND".into(),
                detail: format!(
                    "zone {:?} must be fully qualified (end in '.')",
                    options.zone
                ),
            });
        }
        let dir = temp_dir("altair-bind-")?;
        let port = reserve(options.ip)?;
        let addr = SocketAddr::new(options.ip, port.get());
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let secret_b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let secret_file = dir.path().join("tsig.secret");
        write(&secret_file, &format!("{secret_b64}\n"))?;
        write(
            &dir.path().join("named.conf"),
            &named_conf(dir.path(), &options, port.get(), &secret_b64),
        )?;
        write(&dir.path().join("zone.db"), &zone_file(&options))?;

        let mut cmd = Command::new(named);
        cmd.args(["-g", "-n", "1", "-c"])
            .arg(dir.path().join("named.conf"));
        let proc = Proc::spawn("named", &mut cmd, &dir.path().join("named.log"))?;
        let bind = Self {
            addr,
            zone: options.zone.clone(),
            secret_b64,
            secret_file,
            proc,
            _port: port,
            _dir: dir,
        };
        let ns = format!("ns.{}", options.zone);
        let ready = wait_for(
            &format!("BIND at {addr}"),
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                let ns = ns.clone();
                async move {
                    match lookup_a(addr, &ns, Duration::from_millis(300)).await {
                        Ok(ips) if !ips.is_empty() => Ok(Some(())),
                        Ok(_) => Err(format!("{ns} has no A record yet")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await;
        with_log_tail(ready, || bind.proc.log_tail(15))?;
        Ok(bind)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The key allowed to update the zone.
    pub fn tsig_key(&self) -> TsigKey {
        TsigKey::new(TSIG_KEY_NAME, TSIG_ALGORITHM, &self.secret_b64)
            .expect("the kit generates a valid key")
    }

    /// A file holding the base64 secret (what an orchestrator config points at).
    pub fn tsig_secret_file(&self) -> &Path {
        &self.secret_file
    }

    /// What an orchestrator needs to publish into this server's zone.
    pub fn target(&self) -> crate::fleet::DnsTarget {
        crate::fleet::DnsTarget {
            server: self.addr(),
            zone: self.zone().to_owned(),
            tsig_key_name: TSIG_KEY_NAME.into(),
            tsig_secret_file: self.tsig_secret_file().to_owned(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(io_err(format!("write {}", path.display())))
}

fn named_conf(dir: &Path, o: &BindOptions, port: u16, secret_b64: &str) -> String {
    let d = dir.display();
    let listen = match o.ip {
        IpAddr::V4(ip) => {
            format!("listen-on port {port} {{ {ip}; }};\n    listen-on-v6 {{ none; }};")
        }
        IpAddr::V6(ip) => {
            format!("listen-on {{ none; }};\n    listen-on-v6 port {port} {{ {ip}; }};")
        }
    };
    format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    {listen}
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
key "{TSIG_KEY_NAME}" {{
    algorithm {TSIG_ALGORITHM};
    secret "{secret_b64}";
}};
zone "{zone}" {{
    type primary;
    file "{d}/zone.db";
    journal "{d}/zone.db.jnl";
    allow-update {{ key "{TSIG_KEY_NAME}"; }};
}};
"#,
        zone = o.zone.trim_end_matches('.'),
    )
}

fn zone_file(o: &BindOptions) -> String {
    let mut z = format!(
        "$ORIGIN {zone}\n$TTL {ttl}\n\
         @ IN SOA ns.{zone} hostmaster.{zone} 1 60 60 3600 {ttl}\n\
         @ IN NS ns.{zone}\n\
         ns IN A {ns_ip}\n",
        zone = o.zone,
        ttl = o.ttl,
        ns_ip = match o.ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
        },
    );
    for (label, ip) in &o.records {
        z.push_str(&format!("{label} IN A {ip}\n"));
    }
    z
}
