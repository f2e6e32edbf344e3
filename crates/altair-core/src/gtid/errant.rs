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

/// Transactions a replica wrote itself (errant while it is a replica), judged against
/// the primary's position even when the two snapshots were taken at different times: a
/// replica ahead of an older primary snapshot is not errant. MariaDB: a domain whose
/// last GTID on the replica carries the replica's own `server_id` and is past the
/// primary's; MySQL: the replica's GTIDs of sources the primary has none of.
pub fn local_writes(
    replica: &GtidState,
    replica_server_id: u32,
    primary: &GtidState,
) -> Result<String, GtidError> {
    match (replica, primary) {
        (GtidState::MariaDb(r), GtidState::MariaDb(p)) => Ok(r
            .iter()
            .filter(|g| {
                g.server_id == replica_server_id && g.seq > p.get(g.domain).map_or(0, |pg| pg.seq)
            })
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(",")),
        (GtidState::Mysql(r), GtidState::Mysql(p)) => {
            Ok(r.only_sources(|k| !p.has_source(k)).to_string())
        }
        _ => replica.contains(primary).map(|_| String::new()),
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

    #[test]
    fn local_writes_ignore_a_replica_ahead_of_an_older_primary_snapshot() {
        // Replicated past an older primary snapshot: not errant.
        assert_eq!(
            local_writes(&maria("0-1-20"), 2, &maria("0-1-10")),
            Ok("".into())
        );
        // Its own write: errant.
        assert_eq!(
            local_writes(&maria("0-2-11"), 2, &maria("0-1-10")),
            Ok("0-2-11".into())
        );
        // A rejoined old primary whose last write the new primary has: not errant.
        assert_eq!(
            local_writes(&maria("0-2-11"), 2, &maria("0-2-11")),
            Ok("".into())
        );
        let my = |s: &str| GtidState::parse(Flavor::Mysql, s).expect("mysql");
        let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let b = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(
            local_writes(
                &my(&format!("{a}:1-20,{b}:1-2")),
                0,
                &my(&format!("{a}:1-10"))
            ),
            Ok(format!("{b}:1-2"))
        );
    }
}
