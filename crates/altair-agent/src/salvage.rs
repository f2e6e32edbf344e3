//! Salvage on both ends (DESIGN §5 step 4). On the old primary's host: find what the
//! candidate lacks from the binlog's event headers (only the files after the newest
//! usable starting point are read), then stream just that tail as replayable events in
//! chunks of at most 1 MiB. On the candidate: feed the stream to the server as it arrives,
//! through the client in sandbox mode (no shell escape, no file access), keeping the GTIDs.
//! Memory is constant on both ends whatever the tail's size; both stop at their deadline.

use std::path::PathBuf;
use std::process::Stdio;

use altair_core::gtid::{Flavor, MariaGtidPos};
use altair_proto::v1::{SalvageChunk, SalvagePlan};
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use crate::actions::{Actions, mysql_err, tempfile_with};
use crate::binlog_files::{self, FilesError};

/// Largest chunk of events sent in one message.
pub const CHUNK: usize = 1 << 20;

/// A salvage ready to stream: its plan, and the tool that prints the events (none when
/// nothing is missing).
pub struct Prepared {
    pub plan: SalvagePlan,
    tool: Option<tokio::process::Command>,
}

impl Actions {
    pub(crate) fn binlog_basename(&self) -> Result<String, Status> {
        self.facts
            .lock()
            .ok()
            .and_then(|f| f.binlog_basename.clone())
            .ok_or_else(|| {
                Status::failed_precondition(
                    "the binlog location is unknown (mysqld was never probed)",
                )
            })
    }

    /// Scans the local binlog for what `after` lacks (MariaDB natively; MySQL by its tool).
    pub async fn prepare_salvage(&self, after: &str) -> Result<Prepared, Status> {
        let basename = self.binlog_basename()?;
        let files = binlog_files::list(&basename).map_err(files_status)?;
        if self.flavor() == Flavor::Mysql {
            // MySQL's files are not scanned natively yet: the tool filters by GTID set.
            let mut cmd = tokio::process::Command::new("mysqlbinlog");
            cmd.arg(format!("--exclude-gtids={after}")).args(&files);
            return Ok(Prepared {
                plan: SalvagePlan {
                    start: "mysqlbinlog over every file (not scanned natively)".into(),
                    ..SalvagePlan::default()
                },
                tool: Some(cmd),
            });
        }
        let have = MariaGtidPos::parse(after)
            .map_err(|e| Status::invalid_argument(format!("after_gtid: {e}")))?;
        if files.is_empty() {
            return Err(Status::failed_precondition(format!(
                "the binlog index {basename}.index lists no file"
            )));
        }
        let checkpoints = self.checkpoints();
        let (plan, start) = {
            let files = files.clone();
            tokio::task::spawn_blocking(move || {
                binlog_files::scan_tail(&files, &have, &checkpoints)
            })
            .await
            .map_err(|e| Status::internal(format!("binlog scan: {e}")))?
            .map_err(files_status)?
        };
        let shown_start = format!("{}:{}", file_name(&files[start.file]), start.offset);
        let mut wire = SalvagePlan {
            end_gtid: plan.end_state.to_string(),
            missing_gtids: plan.missing_text(),
            transaction_count: u32::try_from(plan.missing).unwrap_or(u32::MAX),
            torn_gtid: plan.torn_tail.map(|g| g.to_string()).unwrap_or_default(),
            start: shown_start,
            bytes: 0,
            scanned: true,
        };
        let (Some(first), Some(end)) = (plan.first_missing, plan.last_end) else {
            return Ok(Prepared {
                plan: wire,
                tool: None,
            });
        };
        let mut cmd = tokio::process::Command::new("mariadb-binlog");
        let used: Vec<&PathBuf> = files[first.file..=end.file].iter().collect();
        if plan.present_inside == 0 {
            // One domain (or domains in step): the byte range is exactly what is missing.
            cmd.arg(format!("--start-position={}", first.offset))
                .arg(format!("--stop-position={}", end.offset));
            wire.bytes = byte_span(&files, first, end);
        } else {
            // Another domain's transactions the candidate has sit inside the range: let
            // the tool filter by GTID.
            cmd.arg(format!("--start-position={after}"));
            wire.bytes = byte_span(&files, first, end);
        }
        cmd.args(used);
        Ok(Prepared {
            plan: wire,
            tool: Some(cmd),
        })
    }

    fn checkpoints(&self) -> Vec<binlog_files::Checkpoint> {
        self.facts
            .lock()
            .map(|f| f.checkpoints.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies a salvage stream as it arrives; returns the server's GTID position after.
    pub async fn apply_salvage_stream(
        &self,
        first: Vec<u8>,
        mut rest: tonic::Streaming<altair_proto::v1::ApplySalvageChunk>,
        deadline: Instant,
    ) -> Result<String, Status> {
        let mut c = self.conn().await?;
        let stop = match self.flavor() {
            Flavor::MariaDb => "STOP SLAVE",
            Flavor::Mysql => "STOP REPLICA",
        };
        c.query_drop(stop)
            .await
            .map_err(mysql_err("stop replication"))?;
        let mut client = self.client("applying salvaged events")?;
        let mut stdin = client
            .child
            .stdin
            .take()
            .ok_or_else(|| Status::internal("the client has no stdin"))?;
        let feed = async {
            stdin.write_all(&first).await.map_err(feed_err)?;
            while let Some(chunk) = rest.message().await? {
                stdin.write_all(&chunk.events).await.map_err(feed_err)?;
            }
            stdin.shutdown().await.map_err(feed_err)?;
            drop(stdin);
            Ok::<(), Status>(())
        };
        let applied = async {
            feed.await?;
            client.finish().await
        };
        tokio::time::timeout_at(deadline, applied)
            .await
            .map_err(|_| {
                Status::deadline_exceeded("applying salvaged events did not finish by its deadline")
            })??;
        if self.flavor() == Flavor::MariaDb {
            c.query_drop("SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos")
                .await
                .map_err(mysql_err("align gtid_slave_pos"))?;
        }
        self.gtid_executed(&mut c).await
    }

    /// The command-line client as the admin user, in sandbox mode: the statements it is fed
    /// reach the server, never a shell or a file.
    pub(crate) fn client(&self, what: &'static str) -> Result<Client, Status> {
        let defaults = tempfile_with(&format!(
            "[client]\nuser={}\npassword={}\nhost={}\nport={}\nprotocol=tcp\n",
            self.admin_user,
            self.admin_password.expose(),
            self.host,
            self.port
        ))
        .map_err(|e| Status::internal(format!("write client options: {e}")))?;
        let tool = match self.flavor() {
            Flavor::MariaDb => "mariadb",
            Flavor::Mysql => "mysql",
        };
        let mut cmd = tokio::process::Command::new(tool);
        cmd.arg(format!(
            "--defaults-extra-file={}",
            defaults.path().display()
        ));
        if self.flavor() == Flavor::MariaDb {
            cmd.arg("--sandbox");
        }
        let child = cmd
            .arg("--batch")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Status::failed_precondition(format!("run {tool}: {e}")))?;
        Ok(Client {
            child,
            _defaults: defaults,
            what,
        })
    }
}

/// A running command-line client fed on its stdin.
pub(crate) struct Client {
    pub child: tokio::process::Child,
    _defaults: tempfile::NamedTempFile,
    what: &'static str,
}

impl Client {
    pub async fn finish(self) -> Result<(), Status> {
        let out = self
            .child
            .wait_with_output()
            .await
            .map_err(|e| Status::internal(format!("wait for the client: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Status::internal(format!(
                "{} failed: {}",
                self.what,
                last_line(&out.stderr)
            )))
        }
    }
}

/// Streams a prepared salvage into `tx`: the plan, then the events, until `deadline`.
/// A receiver that goes away (the orchestrator gave up) stops the tool.
pub async fn stream(
    prepared: Prepared,
    deadline: Instant,
    tx: mpsc::Sender<Result<SalvageChunk, Status>>,
) {
    let plan = prepared.plan.clone();
    let run = async {
        if tx
            .send(Ok(SalvageChunk {
                plan: Some(plan),
                events: Vec::new(),
            }))
            .await
            .is_err()
        {
            return Ok(());
        }
        let Some(mut cmd) = prepared.tool else {
            return Ok(());
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Status::failed_precondition(format!("run the binlog tool: {e}")))?;
        let stderr = child.stderr.take().map(|e| tokio::spawn(bounded_tail(e)));
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| Status::internal("the binlog tool has no stdout"))?;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = fill(&mut out, &mut buf)
                .await
                .map_err(|e| Status::internal(format!("read the binlog tool: {e}")))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if tx
                .send(Ok(SalvageChunk {
                    plan: None,
                    events: buf,
                }))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|e| Status::internal(format!("wait for the binlog tool: {e}")))?;
        if !status.success() {
            let err = match stderr {
                Some(h) => h.await.unwrap_or_default(),
                None => Vec::new(),
            };
            return Err(Status::internal(format!(
                "the binlog tool failed: {}",
                last_line(&err)
            )));
        }
        Ok(())
    };
    let result = match tokio::time::timeout_at(deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded(
            "salvage did not finish by its deadline",
        )),
    };
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

/// Reads into `buf` until it is full or the stream ends.
async fn fill(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The last 8 KiB a tool wrote on stderr.
async fn bounded_tail(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut keep = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        keep.extend_from_slice(&buf[..n]);
        if keep.len() > 8192 {
            keep.drain(..keep.len() - 8192);
        }
    }
    keep
}

/// A tool's last non-empty stderr line, printable characters only, at most 200 of them:
/// what reaches the journal.
pub(crate) fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    line.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn feed_err(e: std::io::Error) -> Status {
    Status::internal(format!("feed the client: {e}"))
}

fn files_status(e: FilesError) -> Status {
    match e {
        FilesError::Format { .. } => Status::data_loss(e.to_string()),
        _ => Status::failed_precondition(e.to_string()),
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Binlog bytes between two positions (sizes of the files in between from the disk).
fn byte_span(
    files: &[PathBuf],
    first: altair_core::binlog::BinlogPos,
    end: altair_core::binlog::BinlogPos,
) -> u64 {
    if first.file == end.file {
        return end.offset.saturating_sub(first.offset);
    }
    let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut total = size(&files[first.file]).saturating_sub(first.offset);
    for f in &files[first.file + 1..end.file] {
        total += size(f);
    }
    total + end.offset
}
