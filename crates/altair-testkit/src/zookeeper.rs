//! Real ZooKeeper servers: standalone or an ensemble, on free ports of one address.
//!
//! Debian's start scripts ignore custom config dirs, so the JVM is run directly. A node
//! is ready when the `srvr` four-letter word reports a `Mode:` (`ruok` answers before a
//! quorum exists).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::tools::zookeeper_classpath;
use crate::{Error, Result, io_err, require_tool, temp_dir, wait_for, with_log_tail};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Node {
    id: usize,
    client: Port,
    peer: Port,
    election: Port,
    dir: PathBuf,
    proc: Option<Proc>,
}

/// A running ZooKeeper standalone server or ensemble.
#[derive(Debug)]
pub struct ZooKeeper {
    ip: IpAddr,
    /// The JVM heap of each server, MB.
    heap_mb: u32,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// One standalone server on `ip` (usually 127.0.0.1).
    pub async fn standalone(ip: IpAddr) -> Result<Self> {
        Self::start(ip, 1, 64).await
    }

    /// A standalone server with a JVM heap of `heap_mb` (a simulated fleet of thousands
    /// of clusters holds ~10 znodes each).
    pub async fn standalone_with_heap(ip: IpAddr, heap_mb: u32) -> Result<Self> {
        Self::start(ip, 1, heap_mb).await
    }

    /// An ensemble of `size` servers (3 for the fault tests) on `ip`.
    pub async fn ensemble(ip: IpAddr, size: usize) -> Result<Self> {
        Self::start(ip, size, 64).await
    }

    async fn start(ip: IpAddr, size: usize, heap_mb: u32) -> Result<Self> {
        require_tool("java")?;
        zookeeper_classpath()?;
        let dir = temp_dir("altair-zk-")?;
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
                dir: node_dir,
                proc: None,
            });
        }
        let mut zk = Self {
            ip,
            heap_mb,
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
            let cfg = format!(
                "tickTime=500\ninitLimit=20\nsyncLimit=10\n\
                 dataDir={data}\nclientPort={port}\nclientPortAddress={ip}\n\
                 4lw.commands.whitelist=ruok,srvr,stat,mntr\nadmin.enableServer=false\n\
                 maxSessionTimeout=60000\n{servers}",
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

    fn spawn(&mut self, i: usize) -> Result<()> {
        let java = require_tool("java")?;
        let heap = format!("-Xmx{}m", self.heap_mb);
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(java);
        cmd.args([heap.as_str(), "-XX:+UseSerialGC", "-cp"])
            .arg(zookeeper_classpath()?)
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

    pub fn client_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ip, self.nodes[i].client.get())
    }

    /// `host:port` of every node.
    pub fn servers(&self) -> Vec<String> {
        (0..self.nodes.len())
            .map(|i| self.client_addr(i).to_string())
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
