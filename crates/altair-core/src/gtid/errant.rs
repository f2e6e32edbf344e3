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

/// What a MariaDB host waiting for rejoin holds past its fork point that the primary
/// promoted at that fork wrote — when that primary is still the primary at the same
/// epoch (nothing promoted since, so it wrote on one line of history).
#[derive(Debug, Clone, Copy)]
pub struct PromotedWrites<'a> {
    /// The host's own `@@gtid_binlog_state`, read with its position.
    pub host_state: &'a str,
    /// The server_id of the primary promoted at the fork.
    pub primary_server_id: u32,
    /// The primary's position as last reported; `None`: not bounded by it (the
    /// orchestrator judged against it moments before).
    pub primary_pos: Option<&'a GtidState>,
}

/// How a host waiting for rejoin compares with the cluster's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejoinJudgement {
    /// Transactions no survivor has: the host stays out until an operator forces it.
    pub errant: String,
    /// The promoted primary's own transactions past its last reported position: not
    /// judged yet (its report is older than the host's), look again.
    pub ahead: String,
}

/// The errant transactions of a host waiting for rejoin: `errant_gtids` against its fork
/// point; on MariaDB, when that finds some and `promoted` is known, only the entries of
/// the host's binlog state past the fork that another server than the promoted primary
/// wrote.
///
/// The fork point alone misjudges a replica fed by an old primary after that one
/// rejoined: it holds the new primary's own transactions, past the fork yet in the
/// cluster's history. At promotion the new primary's position *is* the fork, so every
/// GTID of its server_id past the fork was written by it since, and — while it is still
/// the primary at that epoch — on the one surviving line of history. Any other
/// server's GTID past the fork is one the primary never had (salvaged transactions are
/// applied before the fork is read).
pub fn errant_for_rejoin(
    host: &GtidState,
    fork: &GtidState,
    promoted: Option<PromotedWrites<'_>>,
) -> Result<RejoinJudgement, GtidError> {
    let by_fork = errant_gtids(host, fork)?;
    let judged = |errant: String| RejoinJudgement {
        errant,
        ahead: String::new(),
    };
    let (Some(w), GtidState::MariaDb(f)) = (promoted, fork) else {
        return Ok(judged(by_fork));
    };
    if by_fork.is_empty() || w.host_state.trim().is_empty() || w.primary_server_id == 0 {
        return Ok(judged(by_fork));
    }
    let primary = match w.primary_pos {
        Some(GtidState::MariaDb(p)) => Some(p),
        Some(_) => return Ok(judged(by_fork)),
        None => None,
    };
    let mut out = RejoinJudgement::default();
    let mut errant = Vec::new();
    let mut ahead = Vec::new();
    let past: Vec<_> = super::MariaGtidPos::parse_state(w.host_state)?
        .into_iter()
        .filter(|g| g.seq > f.get(g.domain).map_or(0, |x| x.seq))
        .collect();
    for g in &past {
        let fork_seq = f.get(g.domain).map_or(0, |x| x.seq);
        if g.server_id != w.primary_server_id {
            // The only server past the fork in its domain (an old primary's own writes):
            // every sequence number from the fork to its last is its. Otherwise only its
            // last GTID is known.
            let alone = past
                .iter()
                .all(|o| o.domain != g.domain || o.server_id == g.server_id);
            errant.push(if alone && g.seq > fork_seq + 1 {
                format!(
                    "{}-{}-{}..{} ({} transactions)",
                    g.domain,
                    g.server_id,
                    fork_seq + 1,
                    g.seq,
                    g.seq - fork_seq
                )
            } else {
                g.to_string()
            });
        } else if primary.is_some_and(|p| g.seq > p.get(g.domain).map_or(0, |x| x.seq)) {
            ahead.push(g.to_string());
        }
    }
    out.errant = errant.join(",");
    out.ahead = ahead.join(",");
    Ok(out)
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

    fn judged(errant: &str, ahead: &str) -> Result<RejoinJudgement, GtidError> {
        Ok(RejoinJudgement {
            errant: errant.into(),
            ahead: ahead.into(),
        })
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
        let primary = maria("0-3-240");
        let w = PromotedWrites {
            host_state: "0-1-76,0-3-227",
            primary_server_id: 3,
            primary_pos: Some(&primary),
        };
        assert_eq!(errant_for_rejoin(&host, &fork, Some(w)), judged("", ""));
        // The primary's report older than the host's: not judged yet.
        let older = maria("0-3-200");
        let early = PromotedWrites {
            primary_pos: Some(&older),
            ..w
        };
        assert_eq!(
            errant_for_rejoin(&host, &fork, Some(early)),
            judged("", "0-3-227")
        );
        // The agent, unbounded: held.
        let agent = PromotedWrites {
            primary_pos: None,
            ..w
        };
        assert_eq!(errant_for_rejoin(&host, &fork, Some(agent)), judged("", ""));
    }

    #[test]
    fn writes_the_promoted_primary_never_had_stay_errant() {
        let fork = maria("0-1-76");
        let primary = maria("0-3-90");
        let w = |host_state| PromotedWrites {
            host_state,
            primary_server_id: 3,
            primary_pos: Some(&primary),
        };
        // The old primary's own writes past the fork.
        assert_eq!(
            errant_for_rejoin(&maria("0-1-80"), &fork, Some(w("0-1-80"))),
            judged("0-1-77..80 (4 transactions)", "")
        );
        assert_eq!(
            errant_for_rejoin(&maria("0-1-77"), &fork, Some(w("0-1-77"))),
            judged("0-1-77", "")
        );
        // Two servers past the fork in one domain: only each one's last is known.
        assert_eq!(
            errant_for_rejoin(&maria("0-2-80"), &fork, Some(w("0-1-78,0-2-80"))),
            judged("0-1-78,0-2-80", "")
        );
        // Past the fork by a server that wrote on both branches (db1 lost 77..80 and,
        // primary again later, wrote past them): still errant, whatever the primary's
        // binlog holds of server 1 now.
        assert_eq!(
            errant_for_rejoin(&maria("0-3-85"), &fork, Some(w("0-1-80,0-3-85"))),
            judged("0-1-80", "")
        );
        // A replica's own write past the fork, in another domain too.
        assert_eq!(
            errant_for_rejoin(&maria("0-3-85,1-2-4"), &fork, Some(w("0-3-85,1-2-4"))),
            judged("1-2-1..4 (4 transactions)", "")
        );
        // Entries at or before the fork are not judged (the fork point holds them).
        assert_eq!(
            errant_for_rejoin(&maria("0-3-85"), &fork, Some(w("0-1-76,0-2-50,0-3-85"))),
            judged("", "")
        );
        // Without the promoted primary's writes the fork point decides alone.
        assert_eq!(
            errant_for_rejoin(&maria("0-3-90"), &fork, None),
            judged("0-3-77..90 (14 transactions)", "")
        );
        // Clean by the fork point: nothing else is looked at.
        assert_eq!(
            errant_for_rejoin(&maria("0-1-70"), &fork, Some(w("0-9-99"))),
            judged("", "")
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
