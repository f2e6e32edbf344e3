//! The web console at fleet scale (`make bench`): the real orchestrator (release build,
//! leader, console on in `proxy_header` mode behind the shipped HAProxy config) and a real
//! ZooKeeper against a simulated fleet (tests/src/sim_fleet.rs: clusters registered in
//! ZooKeeper, one simulated monitor answering `ClusterHealth` for each). Measured for 10
//! and 1,000 clusters in the same run:
//! - the JSON API, sequential requests on one keep-alive connection: `/api/v1/fleet`,
//!   `/api/v1/clusters/{name}` and, as the floor, `/api/v1/whoami` (same server, same
//!   authentication, a constant tiny body);
//! - the fleet page in headless Chromium through the proxy: navigation start → the table
//!   drawn with every cluster (the page's own `performance.now()`), fresh loads;
//! - what one read of the fleet costs, and ZooKeeper's request rate while a page polls
//!   and once nobody has looked for a while (the console then reads once a minute).

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use altair_core::config::ZkConfig;
use altair_e2e::sim_fleet::{
    KillOnDrop, LOCAL, metric, pct, populate, start_agents, start_monitor, zk_packets,
};
use altair_testkit::browser::Browser;
use altair_testkit::console_proxy::{ConsoleProxy, shipped_config};
use altair_zk::Zk;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const SIZES: [usize; 2] = [10, 1_000];
const REQUESTS: usize = 500;
const PAGE_LOADS: usize = 10;
const POLLED: Duration = Duration::from_secs(10);
/// A little over the idle console's read period (60 s): the window holds one read.
const IDLE: Duration = Duration::from_secs(61);

/// HTTP/1.1 on one kept-alive connection, as a browser talks to the console.
struct Http {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Http {
    async fn connect(addr: &str) -> Self {
        Self {
            stream: BufReader::new(TcpStream::connect(addr).await.expect("console connects")),
            host: addr.to_owned(),
        }
    }

    /// GETs `path` as the trusted proxy would pass it on; the status and the body size.
    async fn get(&mut self, path: &str) -> (u16, usize) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nX-Remote-User: bench\r\n\r\n",
            self.host
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("send");
        let mut status = 0;
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("read");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(code) = l.strip_prefix("HTTP/1.1 ") {
                status = code.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            }
            if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.expect("body");
        (status, length)
    }

    /// `REQUESTS` GETs of `path`: p50, p99 (ms) and the body size.
    async fn latency(&mut self, path: &str) -> (f64, f64, usize) {
        let mut times = Vec::with_capacity(REQUESTS);
        let mut size = 0;
        for _ in 0..REQUESTS {
            let t = Instant::now();
            let (status, len) = self.get(path).await;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "GET {path}");
            size = len;
        }
        (pct(&mut times, 0.5), pct(&mut times, 0.99), size)
    }
}

struct Figures {
    n: usize,
    whoami: (f64, f64, usize),
    fleet: (f64, f64, usize),
    cluster: (f64, f64, usize),
    page_p50: f64,
    page_max: f64,
    read_ms: f64,
    zk_polled: f64,
    zk_idle: f64,
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn run(n: usize, agents: &[String], browser: &Browser) -> Figures {
    let zk_server = altair_testkit::zookeeper::ZooKeeper::standalone_with_heap(LOCAL, 1024)
        .await
        .expect("ZooKeeper");
    let zk_cfg = ZkConfig {
        session_timeout_ms: 10_000,
        connect_timeout_ms: 2_000,
        ..ZkConfig::new(zk_server.servers())
    };
    let zk = Zk::connect(&zk_cfg, None).await.expect("zk");
    start_monitor(&zk).await;
    populate(&zk, n, agents).await;

    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let pw = file("pw", "simulated");
    let tsig = file("tsig", "c2ltdWxhdGVkc2ltdWxhdGVkc2ltdWxhdGVkMTIzNDU=");
    let (grpc, metrics, console) = (port(), port(), port());
    let config = file(
        "o.toml",
        &format!(
            "[orchestrator]\nid = \"o1\"\nlisten = \"127.0.0.1:{grpc}\"\n\
             [mysql]\nuser = \"altair\"\npassword_file = \"{pw}\"\n\
             [replication]\nuser = \"repl\"\npassword_file = \"{pw}\"\n\
             [dns]\nserver = \"127.0.0.1:5353\"\nzone = \"sim.test.\"\ntsig_key_name = \"k\"\ntsig_secret_file = \"{tsig}\"\n\
             [zookeeper]\nservers = {:?}\nsession_timeout_ms = 10000\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
             [console]\nlisten = \"127.0.0.1:{console}\"\nauth = \"proxy_header\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [tls]\ninsecure = true\n",
            zk_server.servers()
        ),
    );
    let log = std::fs::File::create(dir.path().join("o.log")).expect("log");
    let _orchestrator = KillOnDrop(
        std::process::Command::new(altair_e2e::bin("altair-orchestrator"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stderr(log)
            .spawn()
            .expect("orchestrator"),
    );
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let console_addr = format!("127.0.0.1:{console}");
    let started = Instant::now();
    let mut http = loop {
        if metric(&metrics_addr, "altair_console_clusters").await >= n as f64 {
            break Http::connect(&console_addr).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the console did not read {n} clusters within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let whoami = http.latency("/api/v1/whoami").await;
    let fleet = http.latency("/api/v1/fleet").await;
    let cluster = http.latency(&format!("/api/v1/clusters/s{}", n / 2)).await;
    let read_ms = metric(&metrics_addr, "altair_console_refresh_milliseconds").await;

    // The fleet page through the proxy, as a browser opens it.
    let proxy = ConsoleProxy::start(
        &shipped_config(),
        LOCAL,
        std::slice::from_ref(&console_addr),
    )
    .await
    .expect("the console proxy (HAProxy)");
    let base = proxy.url().replacen(
        "http://",
        &format!("http://{}:{}@", proxy.user(), proxy.password()),
        1,
    );
    let mut loads = Vec::new();
    for i in 0..PAGE_LOADS {
        browser
            .goto(&format!("{base}?load={i}#/"))
            .await
            .expect("open the fleet page");
        let drawn = browser
            .wait_for(
                "the fleet table with every cluster",
                Duration::from_secs(30),
                &format!(
                    "return document.querySelectorAll('#clusters tr').length === {n} \
                     && Number(document.body.dataset.firstDrawnMs);"
                ),
            )
            .await
            .expect("the fleet page draws");
        loads.push(drawn.as_f64().unwrap_or(f64::NAN));
    }

    // ZooKeeper's load while the page polls (the browser stays on it), then idle.
    let zk_addr = zk_server.client_addr(0);
    let before = zk_packets(zk_addr).await;
    tokio::time::sleep(POLLED).await;
    let zk_polled = (zk_packets(zk_addr).await - before) as f64 / POLLED.as_secs_f64();
    browser
        .goto("about:blank")
        .await
        .expect("leave the console");
    // Idle once no page asked for 10 s.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        metric(&metrics_addr, "altair_console_idle").await,
        1.0,
        "the console is idle with nobody looking"
    );
    let before = zk_packets(zk_addr).await;
    tokio::time::sleep(IDLE).await;
    let zk_idle = (zk_packets(zk_addr).await - before) as f64 / IDLE.as_secs_f64();

    Figures {
        n,
        whoami,
        fleet,
        cluster,
        page_p50: pct(&mut loads.clone(), 0.5),
        page_max: pct(&mut loads, 1.0),
        read_ms,
        zk_polled,
        zk_idle,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let agents = start_agents(8).await;
    let browser = Browser::start(1280, 1000)
        .await
        .expect("headless Chromium (bash deploy/dev/install-deps.sh installs it)");
    let mut all = Vec::new();
    for n in SIZES {
        all.push(run(n, &agents, &browser).await);
    }
    let _ = browser.close().await;
    println!(
        "web console, simulated fleet ({REQUESTS} sequential requests per route, {PAGE_LOADS} page loads)"
    );
    let small = &all[0];
    for f in &all {
        println!("  {} clusters", f.n);
        for (what, (p50, p99, size)) in [
            ("GET /api/v1/whoami (floor)", f.whoami),
            ("GET /api/v1/fleet", f.fleet),
            ("GET /api/v1/clusters/{name}", f.cluster),
        ] {
            println!(
                "    {what:<32} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  ({:>4.1}x the floor's p99)  {:>8} bytes",
                p99 / f.whoami.1.max(0.001),
                size
            );
        }
        println!(
            "    {:<32} p50 {:>6.0} ms  max {:>5.0} ms  ({:.1}x the {}-cluster page's p50)",
            "fleet page drawn (Chromium)",
            f.page_p50,
            f.page_max,
            f.page_p50 / small.page_p50.max(1.0),
            small.n
        );
        println!("    {:<32} {:>9.0} ms", "one read of the fleet", f.read_ms);
        println!(
            "    {:<32} {:>9.0} /s while a page polls, {:.1} /s idle",
            "ZooKeeper requests", f.zk_polled, f.zk_idle
        );
    }
}
