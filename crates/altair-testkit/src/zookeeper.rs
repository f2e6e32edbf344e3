//! Real ZooKeeper servers: standalone or an ensemble, on free ports of one address.
//!
//! Debian's start scripts ignore custom config dirs, so the JVM is run directly. A node
//! is ready when the `srvr` four-letter word reports a `Mode:` (`ruok` answers before a
//! quorum exists).
//!
//! With TLS ([`ZooKeeper::standalone_tls`]) the server makes a CA of its own and also
//! serves a `secureClientPort` (Netty, PEM key and trust stores) that requires a client
//! certificate of that CA ([`ZooKeeper::client_tls`]); the plaintext port stays open for
//! the kit's own four-letter words and a test's direct reads.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::pki::{Pki, TlsFiles};
use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::tools::{zookeeper_classpath, zookeeper_netty_classpath};
use crate::{Error, Result, io_err, require_tool, temp_dir, wait_for, with_log_tail};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Node {
    id: usize,
    client: Port,
    peer: Port,
    election: Port,
    /// The TLS client port (`secureClientPort`), when the server has one.
    secure: Option<Port>,
    dir: PathBuf,
    proc: Option<Proc>,
}

/// A running ZooKeeper standalone server or ensemble.
#[derive(Debug)]
pub struct ZooKeeper {
    ip: IpAddr,
    /// The JVM heap of each server, MB.
    heap_mb: u32,
    /// The server's CA (which also signs its clients' certificates) and its certificate.
    tls: Option<(Pki, TlsFiles)>,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// One standalone server on `ip` (usually 127.0.0.1).
    pub async fn standalone(ip: IpAddr) -> Result<Self> {
        Self::start(ip, 1, 64, false).await
    }

    /// A standalone server that also serves a TLS client port, with a certificate
    /// naming `ip` from a CA of its own, taking only clients with a certificate of that
    /// CA (see `client_tls`).
    pub async fn standalone_tls(ip: IpAddr) -> Result<Self> {
        Self::start(ip, 1, 64, true).await
    }

    /// A client certificate (`<file>.pem`, `<file>.key`) the TLS port takes, and the CA
    /// that signs the server's: what a client's `[zookeeper]` TLS keys name.
    pub fn client_tls(&self, file: &str) -> Result<TlsFiles> {
        let (pki, _) = self.tls.as_ref().ok_or_else(|| Error::Command {
            what: format!("issue ZooKeeper client certificate {file}"),
            detail: "this ZooKeeper has no TLS port (start it with standalone_tls)".into(),
        })?;
        pki.issue(file, &format!("altair://zookeeper-client/{file}"), &[])
    }

    /// An ensemble of `size` servers on `ip` with TLS everywhere: each serves a TLS
    /// client port as [`Self::standalone_tls`] does, and the servers speak TLS to each
    /// other (`sslQuorum`: quorum and election links, certificates of the same CA
    /// required both ways).
    pub async fn ensemble_tls(ip: IpAddr, size: usize) -> Result<Self> {
        Self::start(ip, size, 64, true).await
    }

    /// A certificate of the servers' CA naming their address, as a server's own: what a
    /// quorum peer presents (servers check a peer's certificate names the address it
    /// connects from).
    pub fn peer_tls(&self, file: &str) -> Result<TlsFiles> {
        let (pki, _) = self.tls.as_ref().ok_or_else(|| Error::Command {
            what: format!("issue ZooKeeper peer certificate {file}"),
            detail: "this ZooKeeper has no TLS (start it with ensemble_tls)".into(),
        })?;
        pki.issue(file, "altair://zookeeper", &[self.ip])
    }

    /// A standalone server with a JVM heap of `heap_mb` (a simulated fleet of thousands
    /// of clusters holds ~10 znodes each).
    pub async fn standalone_with_heap(ip: IpAddr, heap_mb: u32) -> Result<Self> {
        Self::start(ip, 1, heap_mb, false).await
    }

    /// An ensemble of `size` servers (3 for the fault tests) on `ip`.
    pub async fn ensemble(ip: IpAddr, size: usize) -> Result<Self> {
        Self::start(ip, size, 64, false).await
    }

    async fn start(ip: IpAddr, size: usize, heap_mb: u32, tls: bool) -> Result<Self> {
        require_tool("java")?;
        zookeeper_classpath()?;
        let dir = temp_dir("altair-zk-")?;
        let tls = if tls {
            zookeeper_netty_classpath()?;
            let pki = Pki::new(&dir.path().join("pki"), "altair test ZooKeeper")?;
            let server = pki.issue("zookeeper", "altair://zookeeper", &[ip])?;
            Some((pki, server))
        } else {
            None
        };
        let mut nodes = Vec::with_capacity(size);
        for id in 1..=size {
            let node_dir = dir.path().join(format!("node{id}"));
            std::fs::create_dir_all(node_dir.join("data"))
                .map_err(io_err(format!("create {}", node_dir.display())))?;
            nodes.push(Node {
                id,
                client: reserve(ip)?,
                peer: reserve(ip)?,
                election: reserve(ip)?,
                secure: if tls.is_some() {
                    Some(reserve(ip)?)
                } else {
                    None
                },
                dir: node_dir,
                proc: None,
            });
        }
        let mut zk = Self {
            ip,
            heap_mb,
            tls,
            nodes,
            _dir: dir,
        };
        zk.write_configs()?;
        for i in 0..zk.nodes.len() {
            zk.spawn(i)?;
        }
        for i in 0..zk.nodes.len() {
            zk.wait_serving(i).await?;
        }
        Ok(zk)
    }

    fn write_configs(&self) -> Result<()> {
        let servers: String = if self.nodes.len() > 1 {
            self.nodes
                .iter()
                .map(|n| {
                    format!(
                        "server.{}={}:{}:{}\n",
                        n.id,
                        self.ip,
                        n.peer.get(),
                        n.election.get()
                    )
                })
                .collect()
        } else {
            String::new()
        };
        for n in &self.nodes {
            let tls = match (&self.tls, &n.secure) {
                (Some((_, files)), Some(secure)) => self.tls_lines(n, files, secure.get())?,
                _ => String::new(),
            };
            let cfg = format!(
                "tickTime=500\ninitLimit=20\nsyncLimit=10\n\
                 dataDir={data}\nclientPort={port}\nclientPortAddress={ip}\n\
                 4lw.commands.whitelist=ruok,srvr,stat,mntr\nadmin.enableServer=false\n\
                 maxSessionTimeout=60000\n{servers}{tls}",
                data = n.dir.join("data").display(),
                port = n.client.get(),
                ip = self.ip,
            );
            let path = n.dir.join("zoo.cfg");
            std::fs::write(&path, cfg).map_err(io_err(format!("write {}", path.display())))?;
            let myid = n.dir.join("data/myid");
            std::fs::write(&myid, format!("{}\n", n.id))
                .map_err(io_err(format!("write {}", myid.display())))?;
        }
        Ok(())
    }

    /// A node's TLS settings: a PEM key store (its key, then its certificate) and the
    /// CA as its trust store; client certificates required.
    fn tls_lines(&self, n: &Node, files: &TlsFiles, port: u16) -> Result<String> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(io_err(format!("read {}", p.display())))
        };
        let keystore = n.dir.join("keystore.pem");
        std::fs::write(
            &keystore,
            format!("{}{}", read(&files.key)?, read(&files.cert)?),
        )
        .map_err(io_err(format!("write {}", keystore.display())))?;
        // An ensemble's servers speak TLS to each other too (the same certificate: it
        // names `ip`, the address every peer dials).
        let quorum = if self.nodes.len() > 1 {
            format!(
                "sslQuorum=true\n\
                 ssl.quorum.keyStore.location={keystore}\nssl.quorum.keyStore.type=PEM\n\
                 ssl.quorum.trustStore.location={ca}\nssl.quorum.trustStore.type=PEM\n",
                keystore = keystore.display(),
                ca = files.ca.display(),
            )
        } else {
            String::new()
        };
        Ok(format!(
            "secureClientPort={port}\nsecureClientPortAddress={ip}\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             ssl.keyStore.location={keystore}\nssl.keyStore.type=PEM\n\
             ssl.trustStore.location={ca}\nssl.trustStore.type=PEM\n\
             ssl.clientAuth=need\n{quorum}",
            ip = self.ip,
            keystore = keystore.display(),
            ca = files.ca.display(),
        ))
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let java = require_tool("java")?;
        let heap = format!("-Xmx{}m", self.heap_mb);
        let classpath = if self.tls.is_some() {
            format!(
                "{}:{}",
                zookeeper_classpath()?,
                zookeeper_netty_classpath()?
            )
        } else {
            zookeeper_classpath()?
        };
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(java);
        // C1 only: a JVM seconds old otherwise spends a large part of its CPU in its
        // compiler threads during the first failovers (the code paths they hit get hot
        // then), competing for the test machine's cores with everything it measures; a
        // production ZooKeeper is long past that. Measured (compilation included): the
        // simulated storm's ZooKeeper CPU 490–540 → 260–290 ms; the 3-cluster storm's
        // last DNS move 64–89 → 58–69 ms, with the fleet's warm-up either way. The cost:
        // C1 has no AES-GCM intrinsics, so ZooKeeper's TLS runs slower than in
        // production (the kit's TLS figures are not production's).
        cmd.args([
            heap.as_str(),
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
        ])
        .arg(classpath)
        .arg(format!("-Dzookeeper.log.dir={}", node.dir.display()))
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(node.dir.join("zoo.cfg"));
        node.proc = Some(Proc::spawn(
            format!("zookeeper node {}", node.id),
            &mut cmd,
            &node.dir.join("zookeeper.log"),
        )?);
        Ok(())
    }

    async fn wait_serving(&mut self, i: usize) -> Result<()> {
        let addr = self.client_addr(i);
        let what = format!("zookeeper node {} at {addr}", i + 1);
        let result = wait_for(
            &what,
            READY_TIMEOUT,
            Duration::from_millis(50),
            || async move {
                match four_letter(addr, "srvr").await {
                    Ok(out) => Ok(out
                        .lines()
                        .find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        let tail = || {
            self.nodes[i]
                .proc
                .as_ref()
                .map(|p| p.log_tail(15))
                .unwrap_or_default()
        };
        with_log_tail(result, tail).map(|_| ())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s leader election port (a quorum link: TLS in [`Self::ensemble_tls`]).
    pub fn election_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ip, self.nodes[i].election.get())
    }

    pub fn client_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ip, self.nodes[i].client.get())
    }

    /// `host:port` of every node.
    pub fn servers(&self) -> Vec<String> {
        (0..self.nodes.len())
            .map(|i| self.client_addr(i).to_string())
            .collect()
    }

    /// `host:port` of every node's TLS client port (empty without TLS).
    pub fn secure_servers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.secure.as_ref())
            .map(|p| std::net::SocketAddr::new(self.ip, p.get()).to_string())
            .collect()
    }

    /// The connect string clients use: `host:port,host:port,...`.
    pub fn connect_string(&self) -> String {
        self.servers().join(",")
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].proc.as_ref().and_then(Proc::pid)
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.kill();
        }
    }

    /// Stops node `i` gracefully.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// Starts a stopped or killed node `i` again, with its data, and waits until it serves.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_serving(i).await
    }

    /// The node's mode (`standalone`, `leader`, `follower`), or `None` when it does not serve.
    pub async fn mode(&self, i: usize) -> Option<String> {
        let out = four_letter(self.client_addr(i), "srvr").await.ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))
    }

    /// The node's `mntr` statistics (e.g. `zk_packets_received`, `zk_znode_count`).
    pub async fn mntr(&self, i: usize) -> Result<Vec<(String, String)>> {
        let out = four_letter(self.client_addr(i), "mntr").await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('\t')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect())
    }
}

/// Sends a four-letter word and returns the whole answer.
pub async fn four_letter(addr: SocketAddr, word: &str) -> Result<String> {
    let what = format!("send {word} to zookeeper {addr}");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(Duration::from_secs(2), exchange).await {
        Ok(result) => result.map_err(io_err(what)),
        Err(_) => Err(Error::Command {
            what,
            detail: "no answer within 2 s".into(),
        }),
    }
}
