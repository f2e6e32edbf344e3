//! MySQL binlog files, for salvage: each file opens with a `Previous_gtids` event naming
//! every GTID in the files before it, so where a tail that a candidate lacks can start is
//! decided from the files' opening events alone, never by decoding a file body.
//!
//! The event body (MySQL `Gtid_set::encode`): the number of sources (u64), then per
//! source its 16-byte UUID, the number of intervals (u64) and each interval as
//! `start`, `end` (u64, `end` exclusive), all little-endian. MySQL 8.3+ marks a tagged
//! encoding in the count's top byte: not read here (the caller then reads every file).

use super::BinlogError;
use crate::gtid::{MysqlGtidSet, SourceKey};

pub const PREVIOUS_GTIDS_EVENT: u8 = 35;

/// Intervals and sources one event may name before it is called corrupt (a real one
/// holds a few; this bounds the work a damaged count could ask for).
const MAX_ENTRIES: u64 = 1 << 20;

fn u64_at(b: &[u8], at: usize) -> Result<u64, BinlogError> {
    let bytes = b
        .get(at..at + 8)
        .ok_or(BinlogError::Truncated("Previous_gtids event"))?;
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    Ok(u64::from_le_bytes(a))
}

fn uuid_text(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The GTID set a `Previous_gtids` event body holds (checksum excluded).
pub fn parse_previous_gtids(payload: &[u8]) -> Result<MysqlGtidSet, BinlogError> {
    let corrupt = |what: &str| BinlogError::Corrupt(format!("Previous_gtids event: {what}"));
    let raw = u64_at(payload, 0)?;
    if raw >> 56 != 0 {
        return Err(corrupt(
            "a tagged GTID encoding (MySQL 8.3+), not read natively",
        ));
    }
    if raw > MAX_ENTRIES {
        return Err(corrupt(&format!("{raw} sources")));
    }
    let mut set = MysqlGtidSet::default();
    let mut at = 8usize;
    for _ in 0..raw {
        let uuid = payload
            .get(at..at + 16)
            .ok_or(BinlogError::Truncated("Previous_gtids event"))?;
        let key = SourceKey {
            uuid: uuid_text(uuid),
            tag: None,
        };
        at += 16;
        let n = u64_at(payload, at)?;
        at += 8;
        if n > MAX_ENTRIES {
            return Err(corrupt(&format!("{n} intervals")));
        }
        for _ in 0..n {
            let (start, end) = (u64_at(payload, at)?, u64_at(payload, at + 8)?);
            at += 16;
            if start == 0 || end <= start || end > 1 << 63 {
                return Err(corrupt(&format!("interval {start}..{end}")));
            }
            set.insert_interval(key.clone(), start, end - 1);
        }
    }
    if at != payload.len() {
        return Err(corrupt("bytes after the last interval"));
    }
    Ok(set)
}

/// The first of a binlog's files (oldest first, each with its opening set when it could
/// be read) that can hold a transaction `have` lacks: the last one whose opening set
/// `have` contains — every file before it holds only GTIDs of that set. A file whose
/// set is unknown is never skipped past.
pub fn first_file_needed(openings: &[Option<MysqlGtidSet>], have: &MysqlGtidSet) -> usize {
    let mut first = 0;
    for (i, opening) in openings.iter().enumerate() {
        match opening {
            Some(set) if have.contains(set) => first = i,
            Some(_) => break,
            None => break,
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 16] = [
        0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95,
        0x62,
    ];
    const A_TEXT: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    /// A source's UUID and its intervals (`start`, exclusive `end`).
    type Source<'a> = ([u8; 16], &'a [(u64, u64)]);

    fn body(sources: &[Source<'_>]) -> Vec<u8> {
        let mut b = (sources.len() as u64).to_le_bytes().to_vec();
        for (uuid, intervals) in sources {
            b.extend_from_slice(uuid);
            b.extend_from_slice(&(intervals.len() as u64).to_le_bytes());
            for (s, e) in *intervals {
                b.extend_from_slice(&s.to_le_bytes());
                b.extend_from_slice(&e.to_le_bytes());
            }
        }
        b
    }

    fn set(text: &str) -> MysqlGtidSet {
        MysqlGtidSet::parse(text).expect("a GTID set")
    }

    #[test]
    fn reads_the_sets_mysql_writes() {
        assert_eq!(
            parse_previous_gtids(&body(&[])),
            Ok(MysqlGtidSet::default())
        );
        let mut b = A;
        b[15] = 0x63;
        let got = parse_previous_gtids(&body(&[(A, &[(1, 6), (7, 8)]), (b, &[(1, 2)])]));
        assert_eq!(
            got,
            Ok(set(&format!(
                "{A_TEXT}:1-5:7,3e11fa47-71ca-11e1-9e33-c80aa9429563:1"
            )))
        );
    }

    #[test]
    fn refuses_what_is_not_a_set() {
        let good = body(&[(A, &[(1, 6)])]);
        for cut in 0..good.len() {
            assert!(parse_previous_gtids(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(parse_previous_gtids(&longer).is_err());
        for bad in [(0, 5), (5, 5), (6, 5), (1, (1 << 63) + 1)] {
            assert!(
                parse_previous_gtids(&body(&[(A, &[bad])])).is_err(),
                "{bad:?}"
            );
        }
        let mut tagged = good.clone();
        tagged[7] = 1;
        assert!(parse_previous_gtids(&tagged).is_err());
        let mut huge = good;
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes()[..8]);
        huge[7] = 0;
        assert!(parse_previous_gtids(&huge).is_err());
    }

    #[test]
    fn starts_at_the_last_file_the_candidate_has_everything_before() {
        let openings = vec![
            Some(MysqlGtidSet::default()),
            Some(set(&format!("{A_TEXT}:1-100"))),
            Some(set(&format!("{A_TEXT}:1-200"))),
            Some(set(&format!("{A_TEXT}:1-300"))),
        ];
        let at = |have: &str| first_file_needed(&openings, &set(have));
        assert_eq!(at(""), 0);
        assert_eq!(at(&format!("{A_TEXT}:1-99")), 0);
        assert_eq!(at(&format!("{A_TEXT}:1-100")), 1);
        assert_eq!(at(&format!("{A_TEXT}:1-250")), 2);
        assert_eq!(at(&format!("{A_TEXT}:1-300")), 3);
        assert_eq!(at(&format!("{A_TEXT}:1-400")), 3);
        // A gap in the candidate's set: the file that holds it is needed.
        assert_eq!(at(&format!("{A_TEXT}:1-50:52-400")), 0);
        // A file whose set is unknown is never skipped past.
        let unknown = vec![openings[0].clone(), None, openings[2].clone()];
        assert_eq!(
            first_file_needed(&unknown, &set(&format!("{A_TEXT}:1-400"))),
            0
        );
    }
}
