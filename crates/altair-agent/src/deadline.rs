//! Each action's deadline, as its caller sent it (the gRPC `grpc-timeout` header): the
//! agent stops its own work a little before the caller stops waiting, kills the
//! statement it had in flight from a second session (a dropped client session leaves
//! its statement running in mysqld) and answers `DEADLINE_EXCEEDED` naming the action.
//! Nothing is left running that the caller no longer waits for.

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
    let sent = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    match sent {
        Some(d) => {
            let d = d.min(MAX);
            d.saturating_sub((d / 10).min(ANSWER_MARGIN_MAX))
        }
        None => DEFAULT,
    }
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

    /// `KILL CONNECTION id` from a session of its own, run apart from the request (a
    /// caller giving up does not cancel it; it gives up itself after 2 s). Waited for at
    /// most [`KILL_WAIT`]: whether it was done by then.
    pub(crate) async fn kill_session(&self, id: u32) -> bool {
        let opts = self.opts.clone();
        let kill = tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            let work = async {
                let mut c = crate::mysql::connect(opts, Duration::from_secs(1))
                    .await
                    .ok()?;
                // "Unknown thread id" (1094): the session ended by itself meanwhile.
                let done = match c.query_drop(format!("KILL CONNECTION {id}")).await {
                    Ok(()) => true,
                    Err(mysql_async::Error::Server(e)) => e.code == 1094,
                    Err(_) => false,
                };
                let _ = c.disconnect().await;
                Some(done)
            };
            tokio::time::timeout(Duration::from_secs(2), work)
                .await
                .ok()
                .flatten()
                .unwrap_or(false)
        });
        matches!(tokio::time::timeout(KILL_WAIT, kill).await, Ok(Ok(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
