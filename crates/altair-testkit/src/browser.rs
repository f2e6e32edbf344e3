//! A real headless Chromium (Debian's `chromium`) driven over WebDriver by Debian's
//! `chromedriver`: the web console's end-to-end test opens pages in it, reads what they
//! show and takes screenshots.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};

use crate::ports::{Port, reserve};
use crate::process::Proc;
use crate::{Error, Result, io_err, require_tool, temp_dir, wait_for, with_log_tail};

#[derive(Debug)]
pub struct Browser {
    client: Client,
    driver: Proc,
    _port: Port,
    _profile: tempfile::TempDir,
}

fn webdriver_err(what: &str) -> impl FnOnce(fantoccini::error::CmdError) -> Error + '_ {
    move |e| Error::Command {
        what: what.to_owned(),
        detail: e.to_string(),
    }
}

impl Browser {
    /// Starts chromedriver on a loopback port and a headless Chromium with a fresh
    /// profile, `width`×`height` pixels. Chromium's own network chatter is off (this
    /// machine's network is closed).
    pub async fn start(width: u32, height: u32) -> Result<Self> {
        let chromium = require_tool("chromium")?;
        let chromedriver = require_tool("chromedriver")?;
        let profile = temp_dir("altair-chromium-")?;
        let port = reserve(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port.get()));
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={}", port.get()));
        let driver = Proc::spawn(
            "chromedriver",
            &mut cmd,
            &profile.path().join("chromedriver.log"),
        )?;
        let ready = wait_for(
            "chromedriver accepts connections",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async move {
                tokio::net::TcpStream::connect(addr)
                    .await
                    .map(|_| Some(()))
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        with_log_tail(ready, || driver.log_tail(20))?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        // chromedriver is on loopback: plain HTTP.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .map_err(|e| Error::Command {
                what: "start Chromium through chromedriver".into(),
                detail: format!("{e}; chromedriver log:\n{}", driver.log_tail(20)),
            })?;
        Ok(Self {
            client,
            driver,
            _port: port,
            _profile: profile,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .map_err(webdriver_err("open a page"))
    }

    /// Runs `script` (a function body: `return …;`) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value> {
        self.client
            .execute(script, Vec::new())
            .await
            .map_err(webdriver_err("run a script in the page"))
    }

    /// Polls `script` until it returns something other than `null`/`false`, for at most
    /// `timeout`; returns that value.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
    ) -> Result<serde_json::Value> {
        wait_for(what, timeout, Duration::from_millis(100), || async move {
            match self.eval(script).await {
                Ok(serde_json::Value::Null | serde_json::Value::Bool(false)) => {
                    Err("not yet".to_owned())
                }
                Ok(v) => Ok(Some(v)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Saves what the window shows as a PNG.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(webdriver_err("take a screenshot"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        }
        std::fs::write(path, png).map_err(io_err(format!("write {}", path.display())))
    }

    pub async fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.client
            .set_window_size(width, height)
            .await
            .map_err(webdriver_err("resize the window"))
    }

    /// Ends the WebDriver session (Chromium exits); chromedriver stops on drop.
    pub async fn close(self) -> Result<()> {
        let closed = self
            .client
            .clone()
            .close()
            .await
            .map_err(webdriver_err("close the browser"));
        drop(self.driver);
        closed
    }
}
