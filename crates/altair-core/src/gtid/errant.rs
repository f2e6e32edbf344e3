//! Errant transactions: what a returning old primary has that the cluster's history
//! does not. They decide whether it may rejoin as a replica on its own.

use super::{GtidError, GtidState};

/// The transactions of `host` that `history` lacks, in words an operator can act on;
/// empty when `host` is contained in `history`.
///
/// MariaDB: `history` is the fork point (the new primary's position when it was
/// promoted, a prefix of the old primary's own history), so within a domain every
/// sequence number past it is errant. MySQL: a plain set difference.
pub fn errant_gtids(host: &GtidState, history: &GtidState) -> Result<String, GtidError> {
    match (host, history) {
        (GtidState::MariaDb(h), GtidState::MariaDb(f)) => Ok(h
            .iter()
            .filter_map(|ours| {
                let fork = f.get(ours.domain).map_or(0, |g| g.seq);
                (ours.seq > fork).then(|| {
                    let first = fork + 1;
                    if first == ours.seq {
                        format!("{ours}")
                    } else {
                        format!(
                            "{}-{}-{first}..{} ({} transactions)",
                            ours.domain,
                            ours.server_id,
                            ours.seq,
                            ours.seq - fork
                        )
                    }
                })
            })
            .collect::<Vec<_>>()
            .join(",")),
        (GtidState::Mysql(h), GtidState::Mysql(f)) => Ok(h.subtract(f).to_string()),
        _ => host.contains(history).map(|_| String::new()),
    }
}

/// The primary's binlog history, for a MariaDB rejoin judged by what the primary holds
/// rather than by the fork point alone.
#[derive(Debug, Clone, Copy)]
pub struct PrimaryBinlog<'a> {
    /// The host's own `@@gtid_binlog_state`.
    pub host_state: &'a str,
    /// The primary's `@@gtid_binlog_state`, read after the host's.
    pub primary_state: &'a str,
    pub primary_server_id: u32,
}

/// The errant transactions of a host waiting for rejoin: `errant_gtids` against its
/// fork point, then, on MariaDB when that finds some and both binlog states are known,
/// only those the primary's binlog does not hold.
///
/// The fork point alone misjudges a replica that was fed by an old primary after that
/// one rejoined: it holds the new primary's own transactions, past the fork yet in the
/// primary's history. A host entry `d-s-n` is held by the primary when the primary's
/// binlog state has `d-s-m` with `m >= n` (strict mode: within a domain a server's
/// sequence numbers only grow); the primary's own server_id is never errant (only it
/// writes with it, and its state may be older than the host's).
pub fn errant_for_rejoin(
    host: &GtidState,
    fork: &GtidState,
    binlog: Option<PrimaryBinlog<'_>>,
) -> Result<String, GtidError> {
    let by_fork = errant_gtids(host, fork)?;
    let Some(b) = binlog else {
        return Ok(by_fork);
    };
    if by_fork.is_empty()
        || host.flavor() != super::Flavor::MariaDb
        || b.host_state.trim().is_empty()
        || b.primary_state.trim().is_empty()
    {
        return Ok(by_fork);
    }
    let ours = super::MariaGtidPos::parse_state(b.host_state)?;
    let theirs = super::MariaGtidPos::parse_state(b.primary_state)?;
    Ok(ours
        .iter()
        .filter(|g| g.server_id != b.primary_server_id)
        .filter_map(|g| {
            let held = theirs
                .iter()
                .filter(|t| t.domain == g.domain && t.server_id == g.server_id)
                .map(|t| t.seq)
                .max();
            match held {
                Some(m) if m >= g.seq => None,
                Some(m) if m + 1 < g.seq => Some(format!(
                    "{}-{}-{}..{} ({} transactions)",
                    g.domain,
                    g.server_id,
                    m + 1,
                    g.seq,
                    g.seq - m
                )),
                _ => Some(g.to_string()),
            }
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// A host's own-write evidence, as its heartbeat carries it.
#[derive(Debug, Clone, Copy)]
pub struct OwnWrites<'a> {
    pub executed: &'a GtidState,
    pub server_id: u32,
    /// MariaDB `@@gtid_binlog_state` (empty when the agent did not send it).
    pub binlog_state: &'a str,
    /// MySQL `@@server_uuid` (empty when unknown).
    pub server_uuid: &'a str,
}

/// Transactions a replica wrote itself (errant while it is a replica), judged against
/// the primary's position even when the two snapshots were taken at different times.
///
/// MariaDB with both `gtid_binlog_state`s: an entry of the replica's own `server_id`
/// past the primary's entry for the same domain and server — it stays visible after
/// newer transactions replicate in. Without them: a domain whose last GTID is the
/// replica's own and past the primary's. MySQL: the replica's GTIDs the primary lacks, of every source
/// but the primary's own (which may simply be newer than the primary's snapshot);
/// without the primary's UUID, of sources the primary has none of.
pub fn local_writes(replica: OwnWrites<'_>, primary: OwnWrites<'_>) -> Result<String, GtidError> {
    match (replica.executed, primary.executed) {
        (GtidState::MariaDb(r), GtidState::MariaDb(p)) => {
            if !replica.binlog_state.is_empty() && !primary.binlog_state.is_empty() {
                let ours = super::MariaGtidPos::parse_state(replica.binlog_state)?;
                let theirs = super::MariaGtidPos::parse_state(primary.binlog_state)?;
                return Ok(ours
                    .iter()
                    .filter(|g| g.server_id == replica.server_id)
                    .filter(|g| {
                        let seen = theirs
                            .iter()
                            .filter(|t| t.domain == g.domain && t.server_id == g.server_id)
                            .map(|t| t.seq)
                            .max()
                            .unwrap_or(0);
                        g.seq > seen
                    })
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(","));
            }
            Ok(r.iter()
                .filter(|g| {
                    g.server_id == replica.server_id
                        && g.seq > p.get(g.domain).map_or(0, |pg| pg.seq)
                })
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(","))
        }
        (GtidState::Mysql(r), GtidState::Mysql(p)) => {
            let uuid = primary.server_uuid.to_ascii_lowercase();
            Ok(if uuid.is_empty() {
                r.only_sources(|k| !p.has_source(k)).to_string()
            } else {
                r.subtract(p).only_sources(|k| k.uuid != uuid).to_string()
            })
        }
        (r, p) => r.contains(p).map(|_| String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtid::Flavor;

    fn maria(s: &str) -> GtidState {
        GtidState::parse(Flavor::MariaDb, s).expect("parse")
    }

    #[test]
    fn mariadb_past_the_fork_is_errant() {
        assert_eq!(
            errant_gtids(&maria("0-1-10"), &maria("0-1-10")),
            Ok("".into())
        );
        assert_eq!(
            errant_gtids(&maria("0-1-9"), &maria("0-1-10")),
            Ok("".into())
        );
        assert_eq!(
            errant_gtids(&maria("0-1-11"), &maria("0-1-10")),
            Ok("0-1-11".into())
        );
        assert_eq!(
            errant_gtids(&maria("0-1-14,1-1-3"), &maria("0-1-10,1-2-3")),
            Ok("0-1-11..14 (4 transactions)".into())
        );
        assert_eq!(
            errant_gtids(&maria("2-1-1"), &maria("")),
            Ok("2-1-1".into())
        );
    }

    #[test]
    fn a_replica_fed_by_a_rejoined_old_primary_holds_nothing_errant() {
        // db1 (1) failed over to db3 (3) at 0-1-76; db2 was killed with db1, came back
        // replicating from db1 after db1 rejoined, and received db3's 0-3-77..227.
        let host = maria("0-3-227");
        let fork = maria("0-1-76");
        assert_eq!(
            errant_gtids(&host, &fork),
            Ok("0-3-77..227 (151 transactions)".into())
        );
        let binlog = PrimaryBinlog {
            host_state: "0-1-76,0-3-227",
            // Read after the host's: db3 wrote more since.
            primary_state: "0-1-76,0-3-240",
            primary_server_id: 3,
        };
        assert_eq!(errant_for_rejoin(&host, &fork, Some(binlog)), Ok("".into()));
        // The primary's own server_id past its (older) snapshot is not errant either.
        let ahead = PrimaryBinlog {
            primary_state: "0-1-76,0-3-200",
            ..binlog
        };
        assert_eq!(errant_for_rejoin(&host, &fork, Some(ahead)), Ok("".into()));
    }

    #[test]
    fn writes_the_primary_never_received_stay_errant() {
        // The old primary's own writes past the fork: errant by both measures.
        let host = maria("0-1-80");
        let fork = maria("0-1-76");
        let binlog = PrimaryBinlog {
            host_state: "0-1-80",
            primary_state: "0-1-76,0-3-90",
            primary_server_id: 3,
        };
        assert_eq!(
            errant_for_rejoin(&host, &fork, Some(binlog)),
            Ok("0-1-77..80 (4 transactions)".into())
        );
        // A replica's own write (server 2) the primary never had.
        let stray = PrimaryBinlog {
            host_state: "0-1-76,0-2-77",
            primary_state: "0-1-76,0-3-90",
            primary_server_id: 3,
        };
        assert_eq!(
            errant_for_rejoin(&maria("0-2-77"), &fork, Some(stray)),
            Ok("0-2-77".into())
        );
        // Without the binlog states the fork point decides alone.
        assert_eq!(
            errant_for_rejoin(&maria("0-3-90"), &fork, None),
            Ok("0-3-77..90 (14 transactions)".into())
        );
        // Clean by the fork point: the binlog states are not needed.
        assert_eq!(
            errant_for_rejoin(&maria("0-1-70"), &fork, Some(binlog)),
            Ok("".into())
        );
    }

    #[test]
    fn mysql_is_a_set_difference() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let host = GtidState::parse(Flavor::Mysql, &format!("{u}:1-12")).expect("parse");
        let new = GtidState::parse(Flavor::Mysql, &format!("{u}:1-10")).expect("parse");
        assert_eq!(errant_gtids(&host, &new), Ok(format!("{u}:11-12")));
        assert_eq!(errant_gtids(&new, &host), Ok(String::new()));
    }

    #[test]
    fn flavours_do_not_mix() {
        let m = GtidState::parse(Flavor::Mysql, "").expect("parse");
        assert!(errant_gtids(&maria("0-1-1"), &m).is_err());
    }

    fn own<'a>(
        executed: &'a GtidState,
        server_id: u32,
        state: &'a str,
        uuid: &'a str,
    ) -> OwnWrites<'a> {
        OwnWrites {
            executed,
            server_id,
            binlog_state: state,
            server_uuid: uuid,
        }
    }

    #[test]
    fn local_writes_ignore_a_replica_ahead_of_an_older_primary_snapshot() {
        let (r, p) = (maria("0-1-20"), maria("0-1-10"));
        // Replicated past an older primary snapshot: not errant.
        assert_eq!(
            local_writes(own(&r, 2, "", ""), own(&p, 1, "", "")),
            Ok("".into())
        );
        assert_eq!(
            local_writes(own(&r, 2, "0-1-20", ""), own(&p, 1, "0-1-10", "")),
            Ok("".into())
        );
        // Its own write: errant.
        let r = maria("0-2-11");
        assert_eq!(
            local_writes(own(&r, 2, "", ""), own(&p, 1, "", "")),
            Ok("0-2-11".into())
        );
        // A rejoined old primary whose last write the new primary has: not errant.
        let (r, p2) = (maria("0-2-11"), maria("0-2-11"));
        assert_eq!(
            local_writes(own(&r, 2, "0-2-11", ""), own(&p2, 1, "0-2-11", "")),
            Ok("".into())
        );
    }

    #[test]
    fn an_errant_write_stays_visible_after_newer_transactions_replicate() {
        // db3 wrote 0-3-7, then replicated 0-1-8 from the primary: its position no longer
        // shows its own write, its binlog state does.
        let (r, p) = (maria("0-1-8"), maria("0-1-8"));
        assert_eq!(
            local_writes(own(&r, 3, "0-1-8,0-3-7", ""), own(&p, 1, "0-1-8", "")),
            Ok("0-3-7".into())
        );
        // An old primary's own writes the new primary has are not errant.
        assert_eq!(
            local_writes(own(&r, 3, "0-3-5,0-1-8", ""), own(&p, 1, "0-3-5,0-1-8", "")),
            Ok("".into())
        );
    }

    #[test]
    fn mysql_own_writes_are_judged_without_the_primary_s_own_source() {
        let my = |s: &str| GtidState::parse(Flavor::Mysql, s).expect("mysql");
        let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let b = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        let r = my(&format!("{a}:1-20,{b}:1-7"));
        let p = my(&format!("{a}:1-10,{b}:1-5"));
        // The primary (a) may be newer than its snapshot; b:6-7 is the replica's own.
        assert_eq!(
            local_writes(own(&r, 0, "", b), own(&p, 0, "", a)),
            Ok(format!("{b}:6-7"))
        );
        // Without the primary's UUID: only sources the primary has none of.
        assert_eq!(
            local_writes(own(&r, 0, "", ""), own(&p, 0, "", "")),
            Ok(String::new())
        );
    }
}
