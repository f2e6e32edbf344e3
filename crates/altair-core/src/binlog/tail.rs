//! Finding the transactions a candidate lacks in an old primary's binlog: fed the events
//! of the files from a known starting point, the scan says where the first missing
//! transaction starts, where the last complete one ends, which GTIDs they are and the
//! binlog's final GTID state — without decoding any row.

use std::collections::BTreeMap;

use super::BinlogError;
use super::event::{
    EventHeader, GTID_EVENT, GTID_LIST_EVENT, GtidEvent, QUERY_EVENT, XA_PREPARE_EVENT, XID_EVENT,
};
use crate::gtid::{MariaGtid, MariaGtidPos};

/// A place in the binlog: the file's index in the binlog index and a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BinlogPos {
    pub file: usize,
    pub offset: u64,
}

/// One missing domain's range: the first and the last missing GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingRange {
    pub first: MariaGtid,
    pub last: MariaGtid,
    pub count: u64,
}

/// A run of consecutive missing complete transactions inside one file: replaying the
/// bytes `start..end` of that file replays exactly them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub file: usize,
    pub start: u64,
    pub end: u64,
}

/// What the scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailPlan {
    /// Start of the first missing transaction's GTID event.
    pub first_missing: Option<BinlogPos>,
    /// End of the last complete missing transaction.
    pub last_end: Option<BinlogPos>,
    /// Missing complete transactions.
    pub missing: u64,
    /// Transactions after the first missing one that the candidate already has (another
    /// replication domain): they split the tail into several segments.
    pub present_inside: u64,
    /// The byte ranges to replay, in order. A present transaction, a torn one or the end
    /// of a file ends a segment.
    pub segments: Vec<Segment>,
    /// Per domain, the missing GTIDs.
    pub ranges: BTreeMap<u32, MissingRange>,
    /// The binlog's GTID state at its end (complete transactions only).
    pub end_state: MariaGtidPos,
    /// A transaction whose events stop before its end (a write cut by the crash, at the
    /// end of a file the server did not close): never committed, so never acknowledged;
    /// not salvaged. The last one seen.
    pub torn_tail: Option<MariaGtid>,
}

impl TailPlan {
    /// The missing GTIDs in server notation, one `first..last` range per domain
    /// (`0-1-481..0-1-500`); empty when nothing is missing.
    pub fn missing_text(&self) -> String {
        self.ranges
            .values()
            .map(|r| {
                if r.first == r.last {
                    r.first.to_string()
                } else {
                    format!("{}..{}", r.first, r.last)
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Debug, Clone, Copy)]
struct Open {
    gtid: GtidEvent,
    start: BinlogPos,
    events: u32,
}

/// Feed it every event from the starting point on, in order; then call `finish`.
#[derive(Debug)]
pub struct TailScan {
    have: MariaGtidPos,
    open: Option<Open>,
    /// The segment the current run of missing transactions extends.
    run: Option<usize>,
    plan: TailPlan,
}

/// What the scan needs of an event's body (the payload without its checksum).
pub fn needs_payload(type_code: u8) -> bool {
    matches!(
        type_code,
        GTID_EVENT | GTID_LIST_EVENT | QUERY_EVENT | super::mysql::PREVIOUS_GTIDS_EVENT
    )
}

impl TailScan {
    /// `have`: the candidate's position. `start_state`: the binlog state known to hold at
    /// the starting point (a file's GTID list, or a probe's checkpoint).
    pub fn new(have: MariaGtidPos, start_state: MariaGtidPos) -> Self {
        Self {
            have,
            open: None,
            run: None,
            plan: TailPlan {
                end_state: start_state,
                ..TailPlan::default()
            },
        }
    }

    /// One event at `at`; `payload` is its body without checksum when `needs_payload`.
    pub fn event(
        &mut self,
        at: BinlogPos,
        header: &EventHeader,
        payload: Option<&[u8]>,
    ) -> Result<(), BinlogError> {
        let end = BinlogPos {
            file: at.file,
            offset: at.offset + u64::from(header.event_length),
        };
        match header.type_code {
            GTID_EVENT => {
                let p = payload.ok_or(BinlogError::Truncated("GTID event body"))?;
                let gtid = super::event::parse_gtid(header.server_id, p)?;
                // A group still open here never got its terminator: it did not commit.
                self.tear();
                self.open = Some(Open {
                    gtid,
                    start: at,
                    events: 0,
                });
            }
            GTID_LIST_EVENT => {
                let p = payload.ok_or(BinlogError::Truncated("GTID list body"))?;
                let list = super::event::parse_gtid_list(p)?;
                self.plan.end_state = self.plan.end_state.union(&list);
            }
            _ => {
                if let Some(mut open) = self.open.take() {
                    open.events += 1;
                    let ends = match header.type_code {
                        // A standalone group (DDL) is its one event.
                        _ if open.gtid.standalone => true,
                        XID_EVENT | XA_PREPARE_EVENT => true,
                        QUERY_EVENT => super::event::query_ends_transaction(
                            payload.ok_or(BinlogError::Truncated("query event body"))?,
                        )?,
                        _ => false,
                    };
                    if ends {
                        self.close(open, end);
                    } else {
                        self.open = Some(open);
                    }
                }
            }
        }
        Ok(())
    }

    /// The end of a file: a group still open there was cut (the server restarted and went
    /// on in a new file), and no segment spans two files.
    pub fn end_of_file(&mut self) {
        self.tear();
        self.run = None;
    }

    fn tear(&mut self) {
        if let Some(open) = self.open.take() {
            self.plan.torn_tail = Some(open.gtid.gtid);
            self.run = None;
        }
    }

    fn close(&mut self, open: Open, end: BinlogPos) {
        let gtid = open.gtid.gtid;
        self.plan.end_state.advance(gtid);
        let already = self
            .have
            .get(gtid.domain)
            .is_some_and(|h| h.seq >= gtid.seq);
        if already {
            if self.plan.first_missing.is_some() {
                self.plan.present_inside += 1;
            }
            self.run = None;
            return;
        }
        self.plan.missing += 1;
        self.plan.first_missing.get_or_insert(open.start);
        self.plan.last_end = Some(end);
        match self.run {
            Some(i) => self.plan.segments[i].end = end.offset,
            None => {
                self.plan.segments.push(Segment {
                    file: end.file,
                    start: open.start.offset,
                    end: end.offset,
                });
                self.run = Some(self.plan.segments.len() - 1);
            }
        }
        self.plan
            .ranges
            .entry(gtid.domain)
            .and_modify(|r| {
                r.last = gtid;
                r.count += 1;
            })
            .or_insert(MissingRange {
                first: gtid,
                last: gtid,
                count: 1,
            });
    }

    /// The end of the binlog: an open group there was cut by the crash.
    pub fn finish(mut self) -> TailPlan {
        self.tear();
        self.plan
    }
}

/// Where a scan may start: the newest checkpoint `(pos, state)` whose state the candidate
/// already has (so nothing before it is missing). Checkpoints are oldest first.
pub fn start_from_checkpoints<'a>(
    have: &MariaGtidPos,
    checkpoints: impl DoubleEndedIterator<Item = (BinlogPos, &'a MariaGtidPos)>,
) -> Option<(BinlogPos, MariaGtidPos)> {
    checkpoints
        .rev()
        .find(|(_, state)| have.contains(state))
        .map(|(pos, state)| (pos, state.clone()))
}

/// The newest file whose opening GTID list the candidate has (every transaction before
/// that file is on the candidate). `lists` are the files' GTID lists, oldest first.
/// `None` when even the oldest file's list is ahead of the candidate: transactions it
/// lacks were purged from the binlog.
pub fn start_file(have: &MariaGtidPos, lists: &[MariaGtidPos]) -> Option<usize> {
    lists.iter().rposition(|l| have.contains(l))
}
