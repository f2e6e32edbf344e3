//! Each action's deadline, as its caller sent it (the gRPC `grpc-timeout` header): the
//! agent stops its own work a little before the caller stops waiting, kills the
//! statement it had in flight from a second session (a dropped client session leaves
//! its statement running in mysqld) and answers `DEADLINE_EXCEEDED` naming the action.
//! Nothing is left running that the caller no longer waits for.
//!
//! The `grpc-timeout` is relative, so the agent also reads when the request was sent
//! (`altair_proto::sent_at`, the caller's wall clock): a request that waited in this
//! agent's socket while the process was frozen (SIGSTOP, a VM stun), or in a stalled
//! network, has its waiting time taken off its budget, and one that waited its whole
//! deadline is refused (`DEADLINE_EXCEEDED`) without touching mysqld — its caller gave up
//! on it and may have promoted another host since. Hosts' clocks are trusted to agree
//! within [`CLOCK_SKEW`].

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::Status;

use crate::actions::Actions;

/// A request that carries no deadline (an older orchestrator, a hand-made call).
pub const DEFAULT: Duration = Duration::from_secs(30);
/// No request is worked on longer than this, whatever it asks.
pub const MAX: Duration = Duration::from_secs(60);
/// Kept back from the caller's deadline to answer in time.
const ANSWER_MARGIN_MAX: Duration = Duration::from_millis(250);
/// How long an action that ran out waits for its session's kill before it answers (the
/// kill goes on by itself after that).
pub const KILL_WAIT: Duration = Duration::from_millis(200);

/// A wake-up this late past a deadline is not a timer's delay: this agent (its host) was
/// stalled — frozen — while the action was under way.
const OVERSLEPT: Duration = Duration::from_millis(1_000);

/// Whether this agent woke past `deadline` by more than a timer's delay can explain: it
/// was frozen while the action ran, and its caller gave up on it meanwhile. A drastic
/// step (stopping mysqld) is then not taken on the caller's behalf: the mysqld that
/// looked hung may only have been frozen with this agent, and the self-fencing loop
/// judges the resumed primary itself (read_only first).
pub(crate) fn overslept(deadline: Instant) -> bool {
    Instant::now().saturating_duration_since(deadline) > OVERSLEPT
}

/// How far this host's clock and a caller's may disagree: waiting shorter than this is
/// not taken off a request's budget. Time-synchronised hosts agree within milliseconds;
/// a host whose clock runs ahead by more than an action's deadline would refuse every
/// action (the refusal says so).
pub const CLOCK_SKEW: Duration = Duration::from_millis(500);

/// What is left of `budget` after a request sent `age_ms` ago (by its caller's clock; `None`
/// unstamped): an age within [`CLOCK_SKEW`] may be the clocks' disagreement and is not
/// taken off; a longer one is a wait, taken off whole (so the agent stops no later than
/// its caller, clocks agreeing). `Err(age_ms)` when nothing is left: the request waited
/// out its deadline.
pub fn left_after_wait(budget: Duration, age_ms: Option<u64>) -> Result<Duration, u64> {
    let Some(age_ms) = age_ms else {
        return Ok(budget);
    };
    let age = Duration::from_millis(age_ms);
    let waited = if age <= CLOCK_SKEW {
        Duration::ZERO
    } else {
        age
    };
    match budget.checked_sub(waited) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(age_ms),
    }
}

/// `budget` for a request carrying `metadata`, less what it waited before this agent
/// read it; refused when it waited out its deadline (`timeout`, as its caller set it).
pub fn fresh(
    metadata: &tonic::metadata::MetadataMap,
    what: &'static str,
    budget: Duration,
    timeout: Duration,
) -> Result<Duration, Status> {
    let age_ms = altair_proto::sent_at::read(metadata)
        .map(|sent| altair_proto::sent_at::now_ms().saturating_sub(sent));
    if let Some(age) = age_ms {
        crate::metrics::REQUEST_AGE_MS.set(age as i64);
    }
    left_after_wait(budget, age_ms).map_err(|age_ms| {
        crate::metrics::count(&crate::metrics::STALE_REQUESTS, "rpc", what);
        tracing::warn!(
            action = what,
            age_ms,
            timeout_ms = timeout.as_millis() as u64,
            "refused a request that waited out its deadline before this agent read it"
        );
        Status::deadline_exceeded(format!(
            "{what} refused: sent {age_ms} ms ago by its caller's clock, past its {} ms deadline — it waited before this agent read it (a frozen agent, a stalled network), and its caller has given up; if this host's clock runs ahead of the orchestrators', fix its time synchronisation",
            timeout.as_millis()
        ))
    })
}

/// A `grpc-timeout` value (`<digits><unit>`, at most 8 digits, unit H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(n.checked_mul(3600)?),
        'M' => Duration::from_secs(n.checked_mul(60)?),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long the agent may work on `request`: the caller's deadline less a margin to
/// answer (a tenth, at most 250 ms), at most [`MAX`]; [`DEFAULT`] without one.
pub fn budget<T>(request: &tonic::Request<T>) -> Duration {
    match timeout_of(request) {
        Some(d) => {
            let d = d.min(MAX);
            d.saturating_sub((d / 10).min(ANSWER_MARGIN_MAX))
        }
        None => DEFAULT,
    }
}

/// The caller's `grpc-timeout`, if it sent a valid one.
fn timeout_of<T>(request: &tonic::Request<T>) -> Option<Duration> {
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
}

/// The instant by which the agent stops working on `request` ([`budget`] from now, less
/// what the request waited before it was read); refused when it waited out its deadline.
pub fn deadline<T>(request: &tonic::Request<T>, what: &'static str) -> Result<Instant, Status> {
    let timeout = timeout_of(request).unwrap_or(DEFAULT);
    Ok(Instant::now() + fresh(request.metadata(), what, budget(request), timeout)?)
}

impl Actions {
    /// Runs `work`, which uses the local session `connection_id`, until `deadline`. On
    /// expiry that session is killed (its statement with it) and the action fails.
    pub(crate) async fn bounded<T>(
        &self,
        what: &'static str,
        connection_id: u32,
        deadline: Instant,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => {
                let killed = self.kill_session(connection_id).await;
                tracing::warn!(
                    action = what,
                    connection_id,
                    killed,
                    "the action ran out of its caller's deadline: its session is killed"
                );
                Err(Status::deadline_exceeded(if killed {
                    format!("{what} did not finish by its deadline; its session was killed")
                } else {
                    format!(
                        "{what} did not finish by its deadline; killing its session is still under way"
                    )
                }))
            }
        }
    }

    /// A local session for an action, opened by `deadline`.
    pub(crate) async fn conn_by(
        &self,
        what: &str,
        deadline: Instant,
    ) -> Result<mysql_async::Conn, Status> {
        tokio::time::timeout_at(deadline, self.conn())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "{what}: no session to the local mysqld by the deadline"
                ))
            })?
    }

    /// `KILL CONNECTION id` from the kept kill session ([`crate::killer`]), run apart
    /// from the request (a caller giving up does not cancel it; it gives up itself after
    /// 2 s). Waited for at most [`KILL_WAIT`]: whether the session was gone by then.
    pub(crate) async fn kill_session(&self, id: u32) -> bool {
        let opts = self.opts.clone();
        let killer = self.killer.clone();
        let kill = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(2), killer.kill(opts, id))
                .await
                .unwrap_or(false)
        });
        matches!(tokio::time::timeout(KILL_WAIT, kill).await, Ok(Ok(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_a_wake_up_far_past_the_deadline_counts_as_a_stall() {
        let deadline = Instant::now() + Duration::from_millis(400);
        assert!(!overslept(deadline), "before the deadline");
        tokio::time::advance(Duration::from_millis(400 + 300)).await;
        assert!(!overslept(deadline), "a timer's delay");
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert!(overslept(deadline), "frozen through it");
    }

    #[test]
    fn reads_the_grpc_timeout_header() {
        assert_eq!(parse_grpc_timeout("3000m"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("500u"), Some(Duration::from_micros(500)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in [
            "",
            "m",
            "12",
            "123456789m",
            "-1m",
            "1.5S",
            "3x",
            "1 m",
            "١m",
            "1١",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_request_that_waited_has_its_wait_taken_off_and_one_that_waited_out_its_deadline_is_refused()
     {
        let b = Duration::from_millis(2750);
        assert_eq!(left_after_wait(b, None), Ok(b), "unstamped: as before");
        assert_eq!(left_after_wait(b, Some(0)), Ok(b));
        assert_eq!(
            left_after_wait(b, Some(500)),
            Ok(b),
            "within the clock skew"
        );
        assert_eq!(
            left_after_wait(b, Some(1500)),
            Ok(Duration::from_millis(1250)),
            "a wait past the skew is taken off whole"
        );
        assert_eq!(left_after_wait(b, Some(2749)), Ok(Duration::from_millis(1)));
        assert_eq!(left_after_wait(b, Some(2750)), Err(2750), "nothing left");
        assert_eq!(
            left_after_wait(b, Some(3100)),
            Err(3100),
            "read after its caller gave up (3 s)"
        );
        assert_eq!(left_after_wait(b, Some(60_000)), Err(60_000));
        assert_eq!(left_after_wait(b, Some(u64::MAX)), Err(u64::MAX));
    }

    #[test]
    fn a_stale_stamp_refuses_the_request_and_names_the_action() {
        let mut r = tonic::Request::new(());
        r.metadata_mut()
            .insert("grpc-timeout", "3000m".parse().expect("ascii"));
        let sent = altair_proto::sent_at::now_ms() - 10_000;
        r.metadata_mut().insert(
            altair_proto::sent_at::HEADER,
            sent.to_string().parse().expect("ascii"),
        );
        let e = deadline(&r, "promote").expect_err("stale");
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        assert!(e.message().contains("promote refused"), "{}", e.message());
        assert!(e.message().contains("3000 ms deadline"), "{}", e.message());
        // Stamped now (or by a clock behind this one): the whole budget.
        altair_proto::sent_at::stamp(r.metadata_mut());
        let left = deadline(&r, "promote").expect("fresh") - Instant::now();
        assert!(left > Duration::from_millis(2600), "{left:?}");
    }

    #[test]
    fn the_budget_keeps_time_to_answer() {
        let with = |v: &str| {
            let mut r = tonic::Request::new(());
            r.metadata_mut()
                .insert("grpc-timeout", v.parse().expect("ascii"));
            budget(&r)
        };
        assert_eq!(with("3000m"), Duration::from_millis(2750));
        assert_eq!(with("200m"), Duration::from_millis(180));
        assert_eq!(with("10M"), MAX - ANSWER_MARGIN_MAX);
        assert_eq!(with("junk"), DEFAULT);
        assert_eq!(budget(&tonic::Request::new(())), DEFAULT);
    }
}
