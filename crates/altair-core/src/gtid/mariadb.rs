//! MariaDB GTID positions: one `domain-server-seq` per replication domain.

use std::collections::BTreeMap;
use std::fmt;

use super::GtidError;

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MariaGtid {
    pub domain: u32,
    pub server_id: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// A MariaDB GTID position (`@@gtid_binlog_pos`, `@@gtid_slave_pos`, `Gtid_IO_Pos`):
/// the last GTID of each replication domain. Within a domain, sequence numbers order
/// transactions (strict mode), whatever server wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaGtidPos {
    domains: BTreeMap<u32, MariaGtid>,
}

impl MariaGtidPos {
    /// Parses `0-1-100,1-2-5`. Whitespace around entries is ignored; the empty string is
    /// the empty position. When a domain appears twice (as in `@@gtid_binlog_state`) the
    /// higher sequence number wins.
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let mut pos = Self::default();
        for entry in text.split(',').map(str::trim) {
            if entry.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(err(text, entry, "empty entry between commas"));
            }
            let gtid = parse_one(text, entry)?;
            pos.advance(gtid);
        }
        Ok(pos)
    }

    /// Parses `@@gtid_binlog_state`: every entry kept (one per domain and server_id).
    pub fn parse_state(text: &str) -> Result<Vec<MariaGtid>, GtidError> {
        text.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| parse_one(text, e))
            .collect()
    }

    /// Records `gtid`, keeping the higher sequence number of its domain.
    pub fn advance(&mut self, gtid: MariaGtid) {
        match self.domains.get(&gtid.domain) {
            Some(current) if current.seq >= gtid.seq => {}
            _ => {
                self.domains.insert(gtid.domain, gtid);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    pub fn get(&self, domain: u32) -> Option<MariaGtid> {
        self.domains.get(&domain).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = MariaGtid> + '_ {
        self.domains.values().copied()
    }

    /// True when every domain of `other` is at or behind this position.
    pub fn contains(&self, other: &Self) -> bool {
        other.domains.values().all(|theirs| {
            self.domains
                .get(&theirs.domain)
                .is_some_and(|ours| ours.seq >= theirs.seq)
        })
    }

    /// Transactions this position has beyond `other`, summed over domains.
    pub fn count_ahead_of(&self, other: &Self) -> u64 {
        self.domains
            .values()
            .map(|ours| {
                let theirs = other.domains.get(&ours.domain).map_or(0, |g| g.seq);
                ours.seq.saturating_sub(theirs)
            })
            .fold(0, u64::saturating_add)
    }

    /// The position that contains both.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for gtid in other.iter() {
            out.advance(gtid);
        }
        out
    }
}

fn err(input: &str, entry: &str, problem: &'static str) -> GtidError {
    GtidError::MariaDb {
        input: input.to_owned(),
        entry: entry.to_owned(),
        problem,
    }
}

fn parse_one(input: &str, entry: &str) -> Result<MariaGtid, GtidError> {
    let mut parts = entry.split('-');
    let (Some(d), Some(s), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err(input, entry, "expected domain-server-seq"));
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !(digits(d) && digits(s) && digits(n)) {
        return Err(err(input, entry, "parts must be unsigned decimal numbers"));
    }
    Ok(MariaGtid {
        domain: d
            .parse()
            .map_err(|_| err(input, entry, "domain id exceeds 32 bits"))?,
        server_id: s
            .parse()
            .map_err(|_| err(input, entry, "server id exceeds 32 bits"))?,
        seq: n
            .parse()
            .map_err(|_| err(input, entry, "sequence number exceeds 64 bits"))?,
    })
}

impl fmt::Display for MariaGtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            gtid.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pos(s: &str) -> MariaGtidPos {
        MariaGtidPos::parse(s).expect(s)
    }

    #[test]
    fn parses_server_output() {
        let p = pos("0-1-100, 1-2-5");
        assert_eq!(p.to_string(), "0-1-100,1-2-5");
        assert_eq!(
            p.get(1),
            Some(MariaGtid {
                domain: 1,
                server_id: 2,
                seq: 5
            })
        );
        assert!(pos("").is_empty());
        assert!(pos("  ").is_empty());
    }

    #[test]
    fn binlog_state_keeps_highest_seq_per_domain() {
        assert_eq!(pos("0-1-10,0-2-12,0-3-11").to_string(), "0-2-12");
    }

    #[test]
    fn rejects_garbage_naming_the_entry() {
        for bad in [
            "0-1",
            "0-1-2-3",
            "a-1-2",
            "0-1-",
            "0-1-2,,0-2-3",
            "-1-2-3",
            "0-4294967296-1",
        ] {
            let e = MariaGtidPos::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn containment_is_per_domain_seq() {
        assert!(pos("0-1-10,1-1-3").contains(&pos("0-2-9")));
        assert!(!pos("0-1-10").contains(&pos("0-1-10,1-1-1")));
        assert!(!pos("0-1-9").contains(&pos("0-1-10")));
        assert!(pos("0-1-1").contains(&pos("")));
        assert_eq!(pos("0-1-10,1-1-3").count_ahead_of(&pos("0-1-8")), 5);
        assert_eq!(pos("0-1-8").count_ahead_of(&pos("0-1-10")), 0);
    }

    fn arb_pos() -> impl Strategy<Value = MariaGtidPos> {
        proptest::collection::vec((0u32..4, 1u32..5, 0u64..1_000), 0..6).prop_map(|v| {
            let mut p = MariaGtidPos::default();
            for (domain, server_id, seq) in v {
                p.advance(MariaGtid {
                    domain,
                    server_id,
                    seq,
                });
            }
            p
        })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(p in arb_pos()) {
            prop_assert_eq!(MariaGtidPos::parse(&p.to_string()).expect("round trip"), p);
        }

        #[test]
        fn union_contains_both_and_is_least(a in arb_pos(), b in arb_pos()) {
            let u = a.union(&b);
            prop_assert!(u.contains(&a) && u.contains(&b));
            prop_assert_eq!(u.count_ahead_of(&a) <= b.count_ahead_of(&a), true);
        }

        #[test]
        fn containment_is_a_partial_order(a in arb_pos(), b in arb_pos(), c in arb_pos()) {
            prop_assert!(a.contains(&a));
            if a.contains(&b) && b.contains(&c) { prop_assert!(a.contains(&c)); }
            if a.contains(&b) { prop_assert_eq!(b.count_ahead_of(&a), 0); }
        }

        #[test]
        fn never_panics_on_input(s in ".{0,40}") {
            let _ = MariaGtidPos::parse(&s);
        }
    }
}
