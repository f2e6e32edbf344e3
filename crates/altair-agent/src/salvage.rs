//! Salvage on both ends (DESIGN §5 step 4). On the old primary's host: find what the
//! candidate lacks from the binlog's event headers (only the files after the newest
//! usable starting point are read), then stream just that tail as replayable events in
//! chunks of at most 1 MiB. On the candidate: feed the stream to the server as it arrives,
//! through the client in sandbox mode (no shell escape, no file access), keeping the GTIDs.
//! Memory is constant on both ends whatever the tail's size; both stop at their deadline.

use std::process::Stdio;

use altair_core::gtid::{Flavor, MariaGtidPos};
use altair_proto::v1::{SalvageChunk, SalvagePlan};
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use crate::actions::{Actions, mysql_err, tempfile_with};
use crate::apply_durability;
use crate::binlog_files::{self, FilesError};

/// Largest chunk of events sent in one message.
pub const CHUNK: usize = 1 << 20;

/// A salvage ready to stream: its plan, and the tool runs that print the events, one per
/// segment of the tail (none when nothing is missing).
pub struct Prepared {
    pub plan: SalvagePlan,
    tools: Vec<tokio::process::Command>,
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
            return self.prepare_mysql_salvage(after, files).await;
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
        // One run per segment: each replays exactly a run of complete missing
        // transactions of one file, so a torn group or a transaction the candidate has
        // is never replayed.
        let mut tools = Vec::new();
        for seg in &plan.segments {
            let mut cmd = tokio::process::Command::new("mariadb-binlog");
            // Annotate_rows events only become `#Q>` comments (with every value of the
            // statement, a blob's too): the candidate never runs them, so they are not sent.
            cmd.arg("--skip-annotate-row-events")
                .arg(format!("--start-position={}", seg.start))
                .arg(format!("--stop-position={}", seg.end))
                .arg(&files[seg.file]);
            wire.bytes += seg.end.saturating_sub(seg.start);
            tools.push(cmd);
        }
        Ok(Prepared { plan: wire, tools })
    }

    /// MySQL: the tool filters by GTID set, over the files from the first one that can
    /// hold a transaction `after` lacks (found from each file's opening `Previous_gtids`,
    /// no body read); the bodies are not scanned natively, so the plan's counts are unknown.
    async fn prepare_mysql_salvage(
        &self,
        after: &str,
        files: Vec<std::path::PathBuf>,
    ) -> Result<Prepared, Status> {
        let have = altair_core::gtid::MysqlGtidSet::parse(after)
            .map_err(|e| Status::invalid_argument(format!("after_gtid: {e}")))?;
        let openings = {
            let files = files.clone();
            tokio::task::spawn_blocking(move || {
                files
                    .iter()
                    .map(|f| binlog_files::opening_previous_gtids(f).ok().flatten())
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| Status::internal(format!("binlog scan: {e}")))?
        };
        let first = altair_core::binlog::mysql::first_file_needed(&openings, &have);
        let start = files.get(first).map_or_else(String::new, |f| file_name(f));
        let mut cmd = tokio::process::Command::new("mysqlbinlog");
        cmd.arg(format!("--exclude-gtids={after}"))
            .args(files.get(first..).unwrap_or_default());
        Ok(Prepared {
            plan: SalvagePlan {
                start: format!(
                    "{start} (mysqlbinlog from the first file that can hold a missing transaction, {} of {} files skipped; not scanned natively)",
                    first,
                    files.len()
                ),
                ..SalvagePlan::default()
            },
            tools: vec![cmd],
        })
    }

    fn checkpoints(&self) -> Vec<binlog_files::Checkpoint> {
        self.facts
            .lock()
            .map(|f| f.checkpoints.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies a salvage stream as it arrives; returns the server's GTID position after.
    /// Runs on its own task: a caller that goes away (the orchestrator cancelled) ends
    /// the stream, and the client's server session is killed rather than left running.
    pub async fn apply_salvage_stream(
        self: std::sync::Arc<Self>,
        first: altair_proto::v1::ApplySalvageChunk,
        rest: tonic::Streaming<altair_proto::v1::ApplySalvageChunk>,
        deadline: Instant,
    ) -> Result<String, Status> {
        tokio::spawn(async move { self.apply_until(first, rest, deadline).await })
            .await
            .map_err(|e| Status::internal(format!("apply task: {e}")))?
    }

    async fn apply_until(
        &self,
        first: altair_proto::v1::ApplySalvageChunk,
        mut rest: tonic::Streaming<altair_proto::v1::ApplySalvageChunk>,
        deadline: Instant,
    ) -> Result<String, Status> {
        let _apply = self.apply_lock.lock().await;
        let mut c = self.conn().await?;
        let session = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
        let relaxed = std::sync::Mutex::new(None::<apply_durability::Relaxed>);
        // Whether any salvaged event reached the client (only then may its session be
        // running a statement that a failure must kill).
        let fed = std::sync::atomic::AtomicBool::new(false);
        let work = async {
            // The client starts first: its start and its connection (a TLS handshake)
            // run while replication stops and the flushing relaxes. It is asked nothing
            // but its own connection id — so that a failed apply can be killed on the
            // server — until the checks below pass; dropped before that, it is killed
            // having applied nothing.
            let mut client = self.client("applying salvaged events")?;
            let mut stdin = client
                .child
                .stdin
                .take()
                .ok_or_else(|| Status::internal("the client has no stdin"))?;
            let stdout = client.child.stdout.take();
            let (known, id_known) = tokio::sync::oneshot::channel();
            let reader = tokio::spawn(session_id(stdout, session.clone(), known));
            stdin
                .write_all(b"SELECT CONNECTION_ID();\n")
                .await
                .map_err(feed_err)?;
            let stop = match self.flavor() {
                Flavor::MariaDb => "STOP SLAVE",
                Flavor::Mysql => "STOP REPLICA",
            };
            c.query_drop(stop)
                .await
                .map_err(mysql_err("stop replication"))?;
            // The plan was made after this position: if the server applied more since
            // (its SQL thread ran on), replaying the plan would apply some twice.
            let now = self.gtid_executed(&mut c).await?;
            if !first.after_gtid.is_empty()
                && !same_position(self.flavor(), &now, &first.after_gtid)
            {
                return Err(Status::failed_precondition(format!(
                    "this server is at {now}, not at {} the salvage was planned after: plan it again",
                    first.after_gtid
                )));
            }
            // Commits of the apply are not flushed one by one (see apply_durability);
            // what relaxes is kept first, so it is put back whatever happens next.
            if apply_durability::worth_relaxing(first.transaction_count)
                && let Some(r) = apply_durability::prepare(&mut c, &self.state_dir).await?
            {
                if let Ok(mut slot) = relaxed.lock() {
                    *slot = Some(r.clone());
                }
                r.apply(&mut c).await?;
            }
            // Its session known before anything is fed, so that a failure from here on
            // can kill what it runs; a client that could not connect says why.
            if id_known.await.is_err() {
                drop(stdin);
                return Err(match client.finish().await {
                    Err(e) => e,
                    Ok(()) => {
                        Status::internal("the client ended without naming its server session")
                    }
                });
            }
            fed.store(true, std::sync::atomic::Ordering::SeqCst);
            stdin.write_all(&first.events).await.map_err(feed_err)?;
            while let Some(chunk) = rest.message().await? {
                stdin.write_all(&chunk.events).await.map_err(feed_err)?;
            }
            stdin.shutdown().await.map_err(feed_err)?;
            drop(stdin);
            client.finish().await?;
            let _ = reader.await;
            if self.flavor() == Flavor::MariaDb {
                c.query_drop("SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos")
                    .await
                    .map_err(mysql_err("align gtid_slave_pos"))?;
            }
            self.gtid_executed(&mut c).await
        };
        let result = match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded(
                "applying salvaged events did not finish by its deadline",
            )),
        };
        if result.is_err() {
            let id = if fed.load(std::sync::atomic::Ordering::SeqCst) {
                session.lock().ok().and_then(|g| *g)
            } else {
                None
            };
            self.abandon_apply(id).await;
        }
        let relaxed = relaxed.lock().ok().and_then(|mut g| g.take());
        match relaxed {
            Some(r) => {
                let restored = self.restore_durability(r).await;
                result.and_then(|pos| restored.map(|()| pos))
            }
            None => result,
        }
    }

    /// Puts back the commit flushing an apply relaxed, bounded; when that fails the agent
    /// keeps trying in the background, and the apply is reported failed (the candidate
    /// must not be promoted as if nothing had changed).
    async fn restore_durability(&self, r: apply_durability::Relaxed) -> Result<(), Status> {
        let dir = self
            .binlog_basename()
            .ok()
            .and_then(|b| std::path::Path::new(&b).parent().map(ToOwned::to_owned));
        let restored = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut c = self.conn().await?;
            apply_durability::restore(&mut c, r, dir.as_deref()).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(
                "putting back the commit flushing settings did not answer in 10 s",
            ))
        });
        if let Err(e) = &restored {
            tracing::error!(error = %e.message(), "commit flushing settings relaxed for a salvage apply are not back yet: retrying");
            tokio::spawn(apply_durability::restore_leftover(
                self.opts.clone(),
                self.state_dir.clone(),
                tokio_util::sync::CancellationToken::new(),
            ));
        }
        restored
    }

    /// After a failed apply: kill the client's server session (a statement it sent may
    /// still run there), wait until it is gone, and align gtid_slave_pos with what did
    /// apply — each bounded.
    async fn abandon_apply(&self, session: Option<u64>) {
        let Ok(mut c) = self.conn().await else {
            return;
        };
        if let Some(id) = session {
            let _ = c.query_drop(format!("KILL CONNECTION {id}")).await;
            for _ in 0..50 {
                let left: Option<u64> = c
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                        (id,),
                    )
                    .await
                    .ok()
                    .flatten();
                if left == Some(0) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        if self.flavor() == Flavor::MariaDb {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                c.query_drop("SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos"),
            )
            .await;
        }
    }

    /// The command-line client as the admin user, in sandbox mode: the statements it is fed
    /// reach the server, never a shell or a file.
    pub(crate) fn client(&self, what: &'static str) -> Result<Client, Status> {
        let defaults = tempfile_with(&format!(
            "[client]\nuser={}\npassword={}\nhost={}\nport={}\nprotocol=tcp\n{}",
            self.admin_user,
            self.admin_password.expose(),
            self.host,
            self.port,
            client_tls(&self.admin_tls, self.flavor())
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
        // Binary mode: a statement's bytes reach the server as they are (no \r\n
        // rewriting, NUL allowed); the client still stops at its first error.
        // Unbuffered: each answer reaches the agent when its statement ends — a pipe is
        // otherwise written only when the client exits, and the session id a failed
        // apply must kill would never be known while it runs.
        // No reconnect: a connection lost mid-transaction must fail the apply, never
        // go on in a new session with the transaction's first half rolled back (and
        // the session a failure kills is the one named at the start).
        let child = cmd
            .arg("--batch")
            .arg("--binary-mode")
            .arg("--unbuffered")
            .arg("--skip-reconnect")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
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

/// The command-line client's options for `[mysql] tls` (MariaDB's client checks the
/// certificate only with `ssl-verify-server-cert`, which checks the name too).
fn client_tls(tls: &altair_svc::mysql_tls::MysqlTlsLoaded, flavor: Flavor) -> String {
    use altair_core::config::MysqlTlsMode;
    let ca = tls
        .ca_file
        .as_ref()
        .filter(|_| tls.mode.verifies())
        .map(|p| format!("ssl-ca={}\n", p.display()))
        .unwrap_or_default();
    match (flavor, tls.mode) {
        (_, MysqlTlsMode::Disabled) => String::new(),
        (Flavor::MariaDb, MysqlTlsMode::VerifyIdentity) => {
            format!("ssl\n{ca}ssl-verify-server-cert\n")
        }
        (Flavor::MariaDb, _) => format!("ssl\n{ca}"),
        (Flavor::Mysql, mode) => format!("ssl-mode={}\n{ca}", mode.as_str().to_uppercase()),
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
        for mut cmd in prepared.tools {
            if !run_tool(&mut cmd, &tx).await? {
                return Ok(());
            }
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

/// Streams one tool run's output; `false` when the receiver went away.
async fn run_tool(
    cmd: &mut tokio::process::Command,
    tx: &mpsc::Sender<Result<SalvageChunk, Status>>,
) -> Result<bool, Status> {
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
            return Ok(false);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| Status::internal(format!("wait for the binlog tool: {e}")))?;
    let err = match stderr {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    // The tool exits 0 after some partial reads ("Event truncated", "Did not reach stop
    // position"): any error line fails the run.
    let text = String::from_utf8_lossy(&err);
    let complained = text.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("error") || l.contains("truncated") || l.contains("did not reach")
    });
    if !status.success() || complained {
        return Err(Status::internal(format!(
            "the binlog tool failed: {}",
            last_line(&err)
        )));
    }
    Ok(true)
}

/// Whether two GTID texts name the same position.
fn same_position(flavor: Flavor, a: &str, b: &str) -> bool {
    use altair_core::gtid::GtidState;
    match (GtidState::parse(flavor, a), GtidState::parse(flavor, b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Reads the client's output: the first number is its connection id (then `known` is
/// told); the rest drains.
async fn session_id(
    stdout: Option<tokio::process::ChildStdout>,
    slot: std::sync::Arc<std::sync::Mutex<Option<u64>>>,
    known: tokio::sync::oneshot::Sender<()>,
) {
    use tokio::io::AsyncBufReadExt;
    let Some(out) = stdout else {
        return;
    };
    let mut known = Some(known);
    let mut lines = tokio::io::BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(id) = line.trim().parse::<u64>()
            && let Ok(mut s) = slot.lock()
            && s.is_none()
        {
            *s = Some(id);
            if let Some(k) = known.take() {
                let _ = k.send(());
            }
        }
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
