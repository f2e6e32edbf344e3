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
}
