//! MySQL GTID sets: intervals of transaction numbers per source UUID (and tag, 8.3+).

use std::collections::BTreeMap;
use std::fmt;

use super::GtidError;

/// The source of a run of GTIDs: server UUID (lowercase) and optional tag (lowercase).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceKey {
    pub uuid: String,
    pub tag: Option<String>,
}

/// A MySQL GTID set (`@@gtid_executed`, `Retrieved_Gtid_Set`), e.g.
/// `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,…`. Intervals are kept sorted, disjoint
/// and non-adjacent, so equal sets compare equal whatever their spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlGtidSet {
    sources: BTreeMap<SourceKey, Vec<(u64, u64)>>,
}

impl MysqlGtidSet {
    /// Parses the server's notation. Whitespace (MySQL prints a newline after each comma)
    /// is ignored; the empty string is the empty set. Accepts tagged GTIDs
    /// (`uuid:tag:1-3` and `uuid:1-5:tag:1-3`).
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut set = Self::default();
        if compact.is_empty() {
            return Ok(set);
        }
        for entry in compact.split(',') {
            let err = |problem| GtidError::Mysql {
                input: text.to_owned(),
                entry: entry.to_owned(),
                problem,
            };
            let mut parts = entry.split(':');
            let uuid = parts.next().unwrap_or_default().to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return Err(err("expected a server UUID before ':'"));
            }
            let mut tag: Option<String> = None;
            let mut pending_intervals = true;
            let mut saw_interval = false;
            for part in parts {
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    let (start, end) = parse_interval(part)
                        .ok_or_else(|| err("intervals are N or N-M with 1 <= N <= M < 2^63"))?;
                    set.insert_interval(
                        SourceKey {
                            uuid: uuid.clone(),
                            tag: tag.clone(),
                        },
                        start,
                        end,
                    );
                    pending_intervals = false;
                    saw_interval = true;
                } else if is_tag(part) {
                    if pending_intervals && tag.is_some() {
                        return Err(err("a tag must be followed by an interval"));
                    }
                    tag = Some(part.to_ascii_lowercase());
                    pending_intervals = true;
                } else {
                    return Err(err(
                        "expected an interval or a tag (letter or '_', then up to 31 letters, digits, '_')",
                    ));
                }
            }
            if pending_intervals || !saw_interval {
                return Err(err("every UUID and tag needs at least one interval"));
            }
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The part of the set whose source `keep` accepts.
    pub fn only_sources(&self, keep: impl Fn(&SourceKey) -> bool) -> Self {
        Self {
            sources: self
                .sources
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// True when the set has any GTID of `key`.
    pub fn has_source(&self, key: &SourceKey) -> bool {
        self.sources.contains_key(key)
    }

    /// Number of transactions in the set (saturating).
    pub fn count(&self) -> u64 {
        self.sources
            .values()
            .flatten()
            .fold(0u64, |acc, (s, e)| acc.saturating_add(e - s + 1))
    }

    /// Adds the GTIDs `start..=end` of `key`.
    pub fn insert_interval(&mut self, key: SourceKey, start: u64, end: u64) {
        let intervals = self.sources.entry(key).or_default();
        intervals.push((start, end));
        normalize(intervals);
    }

    /// True when every GTID of `other` is in `self`.
    pub fn contains(&self, other: &Self) -> bool {
        other.sources.iter().all(|(key, theirs)| {
            let Some(ours) = self.sources.get(key) else {
                return false;
            };
            theirs
                .iter()
                .all(|&(s, e)| ours.iter().any(|&(os, oe)| os <= s && e <= oe))
        })
    }

    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (key, intervals) in &other.sources {
            let merged = out.sources.entry(key.clone()).or_default();
            merged.extend_from_slice(intervals);
            normalize(merged);
        }
        out
    }

    /// The GTIDs of `self` that are not in `other` (errant or lost transactions).
    pub fn subtract(&self, other: &Self) -> Self {
        let mut out = Self::default();
        for (key, ours) in &self.sources {
            let theirs = other.sources.get(key).map(Vec::as_slice).unwrap_or(&[]);
            let mut remaining: Vec<(u64, u64)> = Vec::new();
            for &(mut s, e) in ours {
                for &(ts, te) in theirs {
                    if te < s || ts > e {
                        continue;
                    }
                    if ts > s {
                        remaining.push((s, ts - 1));
                    }
                    if te >= e {
                        s = e + 1;
                        break;
                    }
                    s = te + 1;
                }
                if s <= e {
                    remaining.push((s, e));
                }
            }
            if !remaining.is_empty() {
                normalize(&mut remaining);
                out.sources.insert(key.clone(), remaining);
            }
        }
        out
    }
}

fn normalize(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(s, e) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *intervals = merged;
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_tag(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && s.len() <= 32
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_interval(part: &str) -> Option<(u64, u64)> {
    const MAX: u64 = i64::MAX as u64;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|&n| (1..MAX).contains(&n))
    };
    let (start, end) = match part.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(part)?;
            (n, n)
        }
    };
    (start <= end).then_some((start, end))
}

impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, intervals)) in self.sources.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&key.uuid)?;
            if let Some(tag) = &key.tag {
                write!(f, ":{tag}")?;
            }
            for &(s, e) in intervals {
                if s == e {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{e}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4f22ab58-82db-22f2-af44-d91bb0530673";

    fn set(s: &str) -> MysqlGtidSet {
        MysqlGtidSet::parse(s).expect(s)
    }

    #[test]
    fn parses_server_output_with_newlines_and_normalizes() {
        let s = set(&format!("{A}:1-5:7:6,\n{B}:3"));
        assert_eq!(s.to_string(), format!("{A}:1-7,{B}:3"));
        assert_eq!(s.count(), 8);
        assert!(set("").is_empty());
        assert_eq!(
            set(&format!("{}:1", A.to_uppercase())).to_string(),
            format!("{A}:1")
        );
    }

    #[test]
    fn parses_tagged_gtids() {
        let s = set(&format!("{A}:1-5:audit:1-2,{A}:Audit:4"));
        assert_eq!(s.to_string(), format!("{A}:1-5,{A}:audit:1-2:4"));
        assert_eq!(s.count(), 8);
    }

    #[test]
    fn rejects_garbage_naming_the_entry() {
        for bad in [
            "nope:1-3".to_string(),
            A.to_string(),
            format!("{A}:0"),
            format!("{A}:5-3"),
            format!("{A}:1-"),
            format!("{A}:tag"),
            format!("{A}:t1:t2:1"),
            format!("{A}:1-3,"),
            format!("{A}:99999999999999999999"),
        ] {
            let e = MysqlGtidSet::parse(&bad).expect_err(&bad);
            assert!(matches!(e, GtidError::Mysql { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn containment_and_subtraction() {
        let big = set(&format!("{A}:1-10,{B}:1-3"));
        let small = set(&format!("{A}:2-4:8"));
        assert!(big.contains(&small));
        assert!(!small.contains(&big));
        assert_eq!(
            big.subtract(&small).to_string(),
            format!("{A}:1:5-7:9-10,{B}:1-3")
        );
        assert_eq!(small.subtract(&big), MysqlGtidSet::default());
    }

    fn arb_set() -> impl Strategy<Value = MysqlGtidSet> {
        let keys = prop_oneof![
            Just(SourceKey {
                uuid: A.into(),
                tag: None
            }),
            Just(SourceKey {
                uuid: B.into(),
                tag: None
            }),
            Just(SourceKey {
                uuid: A.into(),
                tag: Some("t".into())
            }),
        ];
        proptest::collection::vec((keys, 1u64..60, 0u64..8), 0..8).prop_map(|v| {
            let mut s = MysqlGtidSet::default();
            for (k, start, len) in v {
                s.insert_interval(k, start, start + len);
            }
            s
        })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(s in arb_set()) {
            prop_assert_eq!(MysqlGtidSet::parse(&s.to_string()).expect("round trip"), s);
        }

        #[test]
        fn subtract_then_union_restores(a in arb_set(), b in arb_set()) {
            let d = a.subtract(&b);
            prop_assert!(a.contains(&d));
            prop_assert!(!d.is_empty() || b.contains(&a));
            prop_assert_eq!(d.union(&b), a.union(&b));
            prop_assert_eq!(d.count() + a.subtract(&d).count(), a.count());
        }

        #[test]
        fn union_contains_both(a in arb_set(), b in arb_set()) {
            let u = a.union(&b);
            prop_assert!(u.contains(&a) && u.contains(&b));
            prop_assert!(a.contains(&a));
        }

        #[test]
        fn never_panics_on_input(s in "[0-9a-f:,\\- ]{0,60}") {
            let _ = MysqlGtidSet::parse(&s);
        }
    }
}
