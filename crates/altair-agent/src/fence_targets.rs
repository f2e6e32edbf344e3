//! Which sessions a fence kills: the clients that could write, and nothing else.
//!
//! A session still logging in shows as `unauthenticated user` and is left alone: it has
//! no privileges yet, and once it has logged in the server is already read-only for it
//! (unless its account bypasses `read_only` — SUPER or READ ONLY ADMIN — which a fence
//! never stops from logging in afterwards either).
//! Killing it cut the logins of altair's own sessions — a second fence running at the
//! same moment (the agent's self-fence and the leader's fence on a resumed host) or an
//! operator's admin session — which then failed with "connection closed".

/// True when the fence must kill the session of `user` running `command`.
pub fn is_writing_client(user: &str, command: &str, admin_user: &str, repl_user: &str) -> bool {
    let spared = user == admin_user
        || user == repl_user
        || user == "system user"
        || user == "event_scheduler"
        || user == "unauthenticated user"
        || command.starts_with("Binlog Dump")
        || command == "Daemon";
    !spared
}

#[cfg(test)]
mod tests {
    use super::is_writing_client;

    #[test]
    fn application_sessions_are_killed() {
        assert!(is_writing_client("app", "Query", "altair", "repl"));
        assert!(is_writing_client("app", "Sleep", "altair", "repl"));
    }

    #[test]
    fn altairs_own_replications_and_the_servers_sessions_are_spared() {
        for (user, command) in [
            ("altair", "Query"),
            ("repl", "Binlog Dump Gtid"),
            ("someone", "Binlog Dump"),
            ("system user", "Slave_SQL"),
            ("event_scheduler", "Daemon"),
            ("", "Daemon"),
        ] {
            assert!(
                !is_writing_client(user, command, "altair", "repl"),
                "{user} {command}"
            );
        }
    }

    #[test]
    fn sessions_still_logging_in_are_spared() {
        assert!(!is_writing_client(
            "unauthenticated user",
            "Connect",
            "altair",
            "repl"
        ));
        // An event's worker shows COMMAND `Connect` under its definer: killed.
        assert!(is_writing_client("app", "Connect", "altair", "repl"));
    }
}
