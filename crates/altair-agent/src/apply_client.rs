//! The client a salvage apply feeds, and the one kept ready for it. Starting the
//! command-line client costs ~10 ms (~5 ms of dynamic linking and start-up, then its
//! connection), most of a one-transaction salvage: so a failover's candidate starts it
//! while it catches up (`CatchUpRequest.ready_apply`), and the apply takes it when it
//! comes. Only when replication brought writes lately: a primary that took none leaves
//! nothing to salvage, and the client's start would only slow that failover (~5 ms on a
//! 2-core host). A client ready but not taken within [`READY_FOR`] is stopped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::Status;

use crate::actions::Actions;
use crate::salvage::Client;

/// How long a client started ahead waits for its apply.
pub(crate) const READY_FOR: Duration = Duration::from_secs(30);

/// Writes received this recently (as the probe saw them) make a tail likely.
const RECENT_WRITES: Duration = Duration::from_secs(5);

/// A started client: asked nothing but its own connection id (so that a failed apply can
/// be killed on the server) until it is fed.
pub(crate) struct ApplyClient {
    pub client: Client,
    pub stdin: ChildStdin,
    /// Reads the client's output: the session id, then whatever the events print.
    pub reader: tokio::task::JoinHandle<()>,
    /// Resolves when the session id is known; errs when the client ended without it.
    pub id_known: oneshot::Receiver<()>,
    pub session: Arc<Mutex<Option<u64>>>,
}

/// The client kept ready, and when it started.
pub(crate) struct Ready {
    client: ApplyClient,
    started: Instant,
    generation: u64,
}

/// The slot of the client kept ready (at most one).
#[derive(Default)]
pub(crate) struct ReadySlot {
    ready: Mutex<Option<Ready>>,
    generation: std::sync::atomic::AtomicU64,
}

impl ApplyClient {
    /// Starts the client and asks it for its session id.
    pub(crate) async fn start(actions: &Actions) -> Result<Self, Status> {
        let mut client = actions.client("applying salvaged events")?;
        let mut stdin = client
            .child
            .stdin
            .take()
            .ok_or_else(|| Status::internal("the client has no stdin"))?;
        let stdout = client.child.stdout.take();
        let session = Arc::new(Mutex::new(None::<u64>));
        let (known, id_known) = oneshot::channel();
        let reader = tokio::spawn(session_id(stdout, session.clone(), known));
        stdin
            .write_all(b"SELECT CONNECTION_ID();\n")
            .await
            .map_err(|e| Status::internal(format!("feed the client: {e}")))?;
        Ok(ApplyClient {
            client,
            stdin,
            reader,
            id_known,
            session,
        })
    }

    /// Still running (a client whose connection failed has exited).
    fn alive(&mut self) -> bool {
        matches!(self.client.child.try_wait(), Ok(None))
    }
}

impl Actions {
    /// Starts a client for an apply that may come (a failover's candidate, while it
    /// catches up) when replication brought writes within [`RECENT_WRITES`], unless one
    /// is ready already; returns at once. Stopped after [`READY_FOR`] if no apply took it.
    pub(crate) fn ready_apply_client(self: &Arc<Self>) {
        let recent = self
            .facts
            .lock()
            .ok()
            .and_then(|f| f.received_changed_at)
            .is_some_and(|t| t.elapsed() < RECENT_WRITES);
        if !recent {
            return;
        }
        let actions = self.clone();
        tokio::spawn(async move {
            if actions.ready_client_alive() {
                return;
            }
            let client = match ApplyClient::start(&actions).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e.message(), "could not start the salvage apply client ahead; an apply will start its own");
                    return;
                }
            };
            let generation = actions
                .ready_apply
                .generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut slot) = actions.ready_apply.ready.lock() {
                *slot = Some(Ready {
                    client,
                    started: Instant::now(),
                    generation,
                });
            }
            tracing::info!("salvage apply client started ahead, for a salvage that may come");
            tokio::time::sleep(READY_FOR).await;
            let unused = actions.ready_apply.ready.lock().ok().and_then(|mut slot| {
                if slot.as_ref().is_some_and(|r| r.generation == generation) {
                    slot.take()
                } else {
                    None
                }
            });
            if unused.is_some() {
                tracing::info!("the salvage apply client started ahead was not needed: stopped");
            }
        });
    }

    fn ready_client_alive(&self) -> bool {
        self.ready_apply
            .ready
            .lock()
            .ok()
            .is_some_and(|mut slot| match slot.as_mut() {
                Some(r) => r.started.elapsed() < READY_FOR && r.client.alive(),
                None => false,
            })
    }

    /// The client kept ready when it is fresh, running, and its server session still
    /// there (checked on `c`: a session killed while it waited would fail the apply);
    /// else a new one.
    pub(crate) async fn apply_client(&self, c: &mut Conn) -> Result<ApplyClient, Status> {
        let ready = self
            .ready_apply
            .ready
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(mut r) = ready
            && r.started.elapsed() < READY_FOR
            && r.client.alive()
        {
            let named = r.client.session.lock().ok().and_then(|s| *s);
            let there = match named {
                // Still connecting: it was started moments ago.
                None => true,
                Some(id) => {
                    c.exec_first::<u64, _, _>(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                        (id,),
                    )
                    .await
                    .ok()
                    .flatten()
                        == Some(1)
                }
            };
            if there {
                return Ok(r.client);
            }
            tracing::info!(
                "the salvage apply client started ahead lost its session: starting another"
            );
        }
        ApplyClient::start(self).await
    }
}

/// Reads the client's output; the first number printed is its session id.
async fn session_id(
    stdout: Option<tokio::process::ChildStdout>,
    slot: Arc<Mutex<Option<u64>>>,
    known: oneshot::Sender<()>,
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
