//! The web console (issue "A web console"), as a user opens it: the sandbox's console
//! through its authenticating proxy (the shipped deploy/console/haproxy.cfg) in a real
//! headless Chromium. The fleet page lists the cluster with its primary; after a kill -9
//! of the primary's mysqld the cluster page shows the new primary and the failover with
//! its stages without a reload; requests without valid credentials are refused and
//! nothing can change state. Screenshots go to target/console-screenshots/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use altair_e2e::{bin, stderr, stdout};
use altair_testkit::browser::Browser;
use altair_testkit::sandbox::Description;

/// Brings the sandbox up the way `make demo` does and takes it down on drop.
struct SandboxUp {
    dir: PathBuf,
}

impl SandboxUp {
    fn cmd(dir: &Path, args: &[&str]) -> Output {
        Command::new(bin("altair-sandbox"))
            .arg("--dir")
            .arg(dir)
            .args(args)
            .output()
            .expect("run altair-sandbox")
    }

    fn up(dir: PathBuf) -> Self {
        let out = Self::cmd(&dir, &["up"]);
        assert!(
            out.status.success(),
            "sandbox up failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("web console: http://"),
            "`up` says where the console is: {}",
            stdout(&out)
        );
        Self { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Self::cmd(&self.dir, args);
        assert!(
            out.status.success(),
            "altair-sandbox {args:?} failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }
}

impl Drop for SandboxUp {
    fn drop(&mut self) {
        let _ = Self::cmd(&self.dir, &["down"]);
    }
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

/// `curl` (Debian's), printing only the status code (and the body size after a space).
fn curl(prefix: &[&str], args: &[&str]) -> (u16, u64) {
    let curl = altair_testkit::require_tool("curl").expect("curl");
    let mut cmd = match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(&curl);
            c
        }
        None => Command::new(&curl),
    };
    let out = cmd
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "10",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .args(args)
        .output()
        .expect("run curl");
    let text = stdout(&out);
    let (code, size) = text.trim().split_once(' ').unwrap_or(("0", "0"));
    (code.parse().unwrap_or(0), size.parse().unwrap_or(0))
}

/// The URL a browser opens with the login in it.
fn with_login(url: &str, user: &str, password: &str) -> String {
    url.replacen("http://", &format!("http://{user}:{password}@"), 1)
}

#[tokio::test]
async fn the_console_shows_the_fleet_and_a_failover_live_and_refuses_strangers() {
    let _heavy = altair_e2e::heavy().await;
    let work = tempfile::tempdir().expect("tempdir");
    let sandbox = SandboxUp::up(work.path().join("sandbox"));
    let desc: Description = serde_json::from_str(
        &std::fs::read_to_string(sandbox.dir.join("sandbox.json")).expect("sandbox.json"),
    )
    .expect("sandbox.json parses");
    let console = desc
        .console
        .clone()
        .expect("sandbox.json lists the console");
    let login = format!("{}:{}", console.user, console.password);
    let api = format!("{}api/v1/fleet", console.url);

    // Strangers are refused; nobody can change anything through the console.
    assert_eq!(curl(&[], &[&console.url]).0, 401, "no login");
    assert_eq!(
        curl(&[], &["-u", &format!("{}:wrong", console.user), &api]).0,
        401,
        "a wrong password"
    );
    assert_eq!(curl(&[], &["-u", &login, &api]).0, 200, "the login works");
    for method in ["POST", "PUT", "DELETE"] {
        assert_eq!(
            curl(&[], &["-u", &login, "-X", method, &api]).0,
            405,
            "{method} is refused: the console is read-only"
        );
    }
    // A database host reaching an orchestrator's console directly is no trusted proxy:
    // the header it sends is not believed.
    let ns = desc.clusters[0].hosts[1]
        .namespace
        .clone()
        .expect("the sandbox runs hosts in namespaces");
    let direct = format!("http://{}/api/v1/fleet", console.orchestrators[0]);
    assert_eq!(
        curl(
            &["ip", "netns", "exec", &ns],
            &["-H", "X-Remote-User: mallory", &direct]
        )
        .0,
        403,
        "a forged X-Remote-User from an untrusted address"
    );
    // Every page is small.
    for asset in ["", "console.js", "console.css"] {
        let (code, size) = curl(&[], &["-u", &login, &format!("{}{asset}", console.url)]);
        assert_eq!(code, 200, "/{asset}");
        assert!(size < 200 * 1024, "/{asset} is {size} bytes");
    }

    let shots = screenshots();
    let browser = Browser::start(1280, 1000).await.expect("headless Chromium");
    let home = with_login(&console.url, &console.user, &console.password);
    browser.goto(&home).await.expect("open the console");
    let primary = browser
        .wait_for(
            "the fleet page lists c1 with its primary",
            Duration::from_secs(30),
            "const td = document.querySelector('tr[data-cluster=\"c1\"] td[data-primary]'); \
             return td && td.textContent !== '-' ? td.textContent : null;",
        )
        .await
        .expect("fleet page");
    assert_eq!(primary, "db1");
    browser
        .screenshot(&shots.join("fleet.png"))
        .await
        .expect("screenshot");

    // The cluster page, reached as a user does: by its link.
    browser
        .eval("document.querySelector('tr[data-cluster=\"c1\"] a').click(); return true;")
        .await
        .expect("click c1");
    browser
        .wait_for(
            "the cluster page shows db1 as primary and the three hosts in its tree",
            Duration::from_secs(15),
            "const p = document.getElementById('primary'); \
             return p && p.textContent === 'db1' && \
               document.querySelectorAll('svg.tree g[data-host]').length === 3;",
        )
        .await
        .expect("cluster page");
    // Set in this page load: a reload would lose it.
    browser
        .eval("window.altairSamePage = true; return true;")
        .await
        .expect("mark the page");
    browser
        .screenshot(&shots.join("cluster.png"))
        .await
        .expect("screenshot");

    let killed = Instant::now();
    sandbox.run(&["kill-mysqld", "db1"]);
    let seen = browser
        .wait_for(
            "the cluster page shows a new primary and the failover with its stages",
            Duration::from_secs(90),
            "if (window.altairSamePage !== true) return {reloaded: true}; \
             const p = document.getElementById('primary'); \
             const f = document.querySelector('#failovers tr[data-outcome=\"succeeded\"]'); \
             if (!p || p.textContent === 'db1' || p.textContent === '-' || !f) return null; \
             const dns = document.querySelector('[data-dns^=\"primary.\"]'); \
             return {primary: p.textContent, id: f.dataset.failoverId, \
                     dns: dns ? dns.textContent : '', \
                     stages: [...f.querySelectorAll('[data-stage]')].map(s => s.dataset.stage)};",
        )
        .await
        .expect("the failover appears");
    eprintln!(
        "the page showed the failover {:.1} s after the kill: {seen}",
        killed.elapsed().as_secs_f64()
    );
    assert!(
        seen.get("reloaded").is_none(),
        "the page reloaded instead of updating in place"
    );
    let new_primary = seen["primary"].as_str().expect("primary").to_owned();
    assert!(
        ["db2", "db3"].contains(&new_primary.as_str()),
        "{new_primary}"
    );
    let stages: Vec<&str> = seen["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for stage in ["fence", "choose", "promote", "publish"] {
        assert!(stages.contains(&stage), "{stage} in {stages:?}");
    }
    // What the page says the DNS name answers is the new primary's address.
    let new_ip = desc.clusters[0]
        .hosts
        .iter()
        .find(|h| h.name == new_primary)
        .map(|h| h.mysql.split(':').next().unwrap_or_default().to_owned())
        .expect("new primary in sandbox.json");
    let dns = browser
        .wait_for(
            "the page shows the DNS name moved",
            Duration::from_secs(15),
            &format!(
                "const d = document.querySelector('[data-dns^=\"primary.\"]'); \
                 return d && d.textContent === '{new_ip}' ? d.textContent : null;"
            ),
        )
        .await
        .expect("DNS on the page");
    assert_eq!(dns, new_ip.as_str());
    browser
        .screenshot(&shots.join("cluster-after-failover.png"))
        .await
        .expect("screenshot");

    // The failover's own page: its journal, stages and outcome.
    browser
        .eval(
            "document.querySelector('#failovers tr[data-outcome=\"succeeded\"] a').click(); return true;",
        )
        .await
        .expect("open the failover");
    let shown = browser
        .wait_for(
            "the failover page shows the new primary and every stage",
            Duration::from_secs(15),
            "const n = document.getElementById('new-primary'); \
             const rows = document.querySelectorAll('#stages tr[data-stage]').length; \
             return n && rows >= 4 ? {new_primary: n.textContent, rows, lost: document.getElementById('lost').textContent} : null;",
        )
        .await
        .expect("failover page");
    assert_eq!(shown["new_primary"], new_primary.as_str());
    assert_eq!(
        shown["lost"], "none",
        "mysqld alone died: nothing acknowledged is lost"
    );
    browser
        .screenshot(&shots.join("failover.png"))
        .await
        .expect("screenshot");

    // Phone width: the fleet page fits (wide tables scroll inside their box).
    browser.resize(390, 844).await.expect("resize");
    browser.goto(&home).await.expect("open the fleet page");
    let fits = browser
        .wait_for(
            "the fleet page at phone width",
            Duration::from_secs(15),
            "const td = document.querySelector('tr[data-cluster=\"c1\"] td[data-primary]'); \
             if (!td || td.textContent === 'db1' || td.textContent === '-') return null; \
             return {fits: document.documentElement.scrollWidth <= window.innerWidth + 1, \
                     width: document.documentElement.scrollWidth, inner: window.innerWidth};",
        )
        .await
        .expect("fleet page at phone width");
    browser
        .screenshot(&shots.join("fleet-phone.png"))
        .await
        .expect("screenshot");
    assert_eq!(fits["fits"], true, "{fits}");
    browser.close().await.expect("close the browser");
    eprintln!("screenshots in {}", shots.display());
}

/// `console.auth = "client_certificate"`: HTTPS with the orchestrator's own certificate;
/// an operator's certificate (viewer or operator role) reads, an agent's or a monitor's is
/// refused, none is asked to log in, one of another CA does not get through the
/// handshake, and no method but GET/HEAD is served.
#[tokio::test]
async fn over_https_the_console_admits_operator_certificates_only() {
    use altair_testkit::fleet::{ConsoleMode, FleetTiming};
    let _heavy = altair_e2e::heavy().await;
    let timing = FleetTiming {
        console: Some(ConsoleMode::ClientCertificate),
        ..FleetTiming::default()
    };
    let w = altair_e2e::world::World::start_ha_with(2, 1, 1, 3600, &[], timing).await;
    let address = w.fleet.orchestrators[0]
        .console
        .clone()
        .expect("the orchestrator serves a console");
    let url = format!("https://{address}/api/v1/fleet");
    w.wait_until(
        "the leader records db1 at epoch 1",
        Duration::from_secs(30),
        |s| {
            s.clusters
                .first()
                .is_some_and(|c| c.epoch == Some(1) && c.primary.as_deref() == Some("db1"))
        },
    )
    .await;
    let as_ = |uri: &str| {
        let file = format!(
            "console-{}",
            uri.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        let files = w
            .fleet
            .client_tls(&file, uri)
            .expect("a client certificate");
        [
            "--cacert".to_owned(),
            files.ca.display().to_string(),
            "--cert".to_owned(),
            files.cert.display().to_string(),
            "--key".to_owned(),
            files.key.display().to_string(),
        ]
    };
    let get = |tls: &[String], extra: &[&str], url: &str| {
        let mut args: Vec<&str> = tls.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        args.push(url);
        curl(&[], &args).0
    };
    let ca = w
        .fleet
        .client_tls("console-ca", "altair://operator/ca")
        .expect("a certificate")
        .ca
        .display()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let viewer = as_("altair://operator/vera?role=viewer");
    loop {
        let code = get(&viewer, &[], &url);
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "a viewer's certificate: {code}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        get(&as_("altair://operator/olga?role=operator"), &[], &url),
        200,
        "an operator's certificate"
    );
    assert_eq!(
        get(&["--cacert".to_owned(), ca.clone()], &[], &url),
        401,
        "no certificate"
    );
    for uri in [
        "altair://agent/c1/db1",
        "altair://monitor/m1",
        "altair://orchestrator/o2",
    ] {
        assert_eq!(get(&as_(uri), &[], &url), 403, "{uri}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        assert_eq!(get(&viewer, &["-X", method], &url), 405, "{method}");
    }
    // A certificate of another CA, naming an operator, never gets an answer.
    let foreign_dir = tempfile::tempdir().expect("tempdir");
    let foreign = altair_testkit::pki::Pki::new(foreign_dir.path(), "elsewhere")
        .expect("another CA")
        .issue("mallory", "altair://operator/mallory?role=operator", &[])
        .expect("a certificate of another CA");
    let foreign = [
        "--cacert".to_owned(),
        ca,
        "--cert".to_owned(),
        foreign.cert.display().to_string(),
        "--key".to_owned(),
        foreign.key.display().to_string(),
    ];
    assert_eq!(
        get(&foreign, &[], &url),
        0,
        "another CA's certificate: the TLS handshake is refused (curl reports no HTTP status)"
    );
    // The cluster is as it was: nothing above changed anything.
    let status = w.status().await.expect("status");
    let c1 = status.clusters.iter().find(|c| c.name == "c1").expect("c1");
    assert_eq!(c1.primary.as_deref(), Some("db1"));
    assert_eq!(c1.epoch, Some(1), "no failover, no epoch change");
}
