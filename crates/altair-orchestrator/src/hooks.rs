//! Operator hooks around a failover (`[hooks]`): a command receives the event as JSON on
//! stdin and must finish within `hooks.timeout_ms`. A failing pre-failover hook aborts
//! the failover only when `hooks.abort_on_pre_failure` is set; a post-failover hook's
//! failure is logged and counted, never undoes anything.

use std::process::Stdio;
use std::time::Duration;

use altair_core::failover::Journal;
use altair_core::registry::FailoverAudit;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::ctx::Ctx;
use crate::metrics::{HOOKS, labels};

/// Runs the pre-failover hook, if any. `Err` means: abort (the reason says why).
pub async fn pre_failover(ctx: &Ctx, j: &Journal) -> Result<(), String> {
    let hooks = &ctx.config.hooks;
    if hooks.pre_failover.is_empty() {
        return Ok(());
    }
    let event = json!({
        "event": "pre_failover",
        "cluster": j.cluster,
        "failover_id": j.id,
        "kind": j.kind.as_str(),
        "epoch": j.epoch,
        "old_primary": j.old_primary,
        "target": j.target,
        "trigger": j.trigger,
    });
    match run(
        "pre_failover",
        &hooks.pre_failover,
        &event,
        hooks.timeout_ms,
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(e) if hooks.abort_on_pre_failure => {
            tracing::error!(cluster = %j.cluster, failover_id = %j.id, error = %e, "pre-failover hook failed: failover aborted");
            Err(format!("pre-failover hook failed: {e}"))
        }
        Err(e) => {
            tracing::warn!(cluster = %j.cluster, failover_id = %j.id, error = %e, "pre-failover hook failed; continuing (hooks.abort_on_pre_failure is off)");
            Ok(())
        }
    }
}

/// Runs the post-failover hook, if any, with the audit record.
pub async fn post_failover(ctx: &Ctx, audit: &FailoverAudit) {
    let hooks = &ctx.config.hooks;
    if hooks.post_failover.is_empty() {
        return;
    }
    let mut event = serde_json::to_value(audit).unwrap_or_default();
    if let Some(map) = event.as_object_mut() {
        map.insert("event".into(), json!("post_failover"));
    }
    if let Err(e) = run(
        "post_failover",
        &hooks.post_failover,
        &event,
        hooks.timeout_ms,
    )
    .await
    {
        tracing::warn!(cluster = %audit.journal.cluster, failover_id = %audit.journal.id, error = %e, "post-failover hook failed");
    }
}

/// What the fence hook said about an old primary its agent does not answer for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceHook {
    /// No `[fence] command` configured.
    None,
    /// Not run: the self-fencing bound has already passed (nothing left to shorten).
    NotNeeded,
    /// Zero exit: the host is off.
    Off { took_ms: u64 },
    /// Non-zero exit, no exit in time, or no start: the host may still run.
    Failed(String),
}

/// Runs the fence hook for the old primary (`old`: its registration; `why`: why its
/// agent could not fence it) within `left_ms` — the time until the self-fencing bound,
/// past which promotion needs no hook — and `fence.timeout_ms`.
pub async fn fence(
    ctx: &Ctx,
    j: &Journal,
    old: &altair_core::registry::HostRecord,
    why: &str,
    left_ms: u64,
) -> FenceHook {
    fence_host(ctx, j, &j.old_primary, old, why, left_ms).await
}

/// Runs the fence hook for `host` (`record`: its registration; `why`: why it must be
/// fenced without its agent) within `left_ms` and `fence.timeout_ms`.
pub async fn fence_host(
    ctx: &Ctx,
    j: &Journal,
    host: &str,
    record: &altair_core::registry::HostRecord,
    why: &str,
    left_ms: u64,
) -> FenceHook {
    let cfg = &ctx.config.fence;
    if cfg.command.is_empty() {
        return FenceHook::None;
    }
    if left_ms == 0 {
        return FenceHook::NotNeeded;
    }
    let event = json!({
        "event": "fence",
        "cluster": j.cluster,
        "failover_id": j.id,
        "epoch": j.epoch,
        "host": host,
        "datacenter": record.datacenter,
        "mysql": record.mysql,
        "agent": record.agent,
        "reason": why,
    });
    let deadline = cfg.timeout_ms.min(left_ms);
    let started = std::time::Instant::now();
    tracing::warn!(cluster = %j.cluster, failover_id = %j.id, host, deadline_ms = deadline, reason = %why, "running the fence hook: the host's agent does not answer");
    match run("fence", &cfg.command, &event, deadline).await {
        Ok(()) => {
            let took_ms = started.elapsed().as_millis() as u64;
            tracing::warn!(cluster = %j.cluster, failover_id = %j.id, host, took_ms, "fence hook: the host is off");
            FenceHook::Off { took_ms }
        }
        Err(e) => {
            tracing::error!(cluster = %j.cluster, failover_id = %j.id, host, error = %e, "fence hook failed: the host may still run");
            FenceHook::Failed(e)
        }
    }
}

pub(crate) async fn run(
    hook: &str,
    argv: &[String],
    event: &serde_json::Value,
    timeout_ms: u64,
) -> Result<(), String> {
    let result = run_inner(hook, argv, event, timeout_ms).await;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    HOOKS
        .get_or_create(&labels(&[("hook", hook), ("outcome", outcome)]))
        .inc();
    result
}

/// The only variables a hook sees: the orchestrator's own environment (its
/// `password_env` secrets among them) never reaches it.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// At most this much of a hook's stderr is kept (its last line goes into the error).
const STDERR_MAX: u64 = 64 * 1024;

async fn run_inner(
    hook: &str,
    argv: &[String],
    event: &serde_json::Value,
    timeout_ms: u64,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let (program, args) = argv.split_first().ok_or("no command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", HOOK_PATH)
        .env("LANG", "C.UTF-8")
        .env("ALTAIR_HOOK", hook)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills whatever it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{program}: cannot start: {e}"))?;
    let pgid = child.id();
    let input = serde_json::to_vec(event).unwrap_or_default();
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let reader = tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(e) = stderr {
            let _ = e.take(STDERR_MAX).read_to_end(&mut text).await;
        }
        text
    });
    let waited = tokio::time::timeout(Duration::from_millis(timeout_ms), async move {
        if let Some(mut stdin) = stdin {
            // A hook that ignores stdin and exits early closes the pipe: not an error.
            let _ = stdin.write_all(&input).await;
        }
        child.wait().await
    })
    .await;
    let kill_group = || {
        if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    };
    // A helper it left running may hold stderr open: read what is there, briefly.
    let last_line = |reader: tokio::task::JoinHandle<Vec<u8>>| async move {
        let text = tokio::time::timeout(Duration::from_millis(200), reader)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
    };
    match waited {
        Err(_) => {
            kill_group();
            Err(format!(
                "{program}: no exit within {timeout_ms} ms (killed)"
            ))
        }
        Ok(Err(e)) => {
            kill_group();
            Err(format!("{program}: {e}"))
        }
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{program}: {status} ({})", last_line(reader).await)),
    }
}
