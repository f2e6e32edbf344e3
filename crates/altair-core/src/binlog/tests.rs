//! The scan over synthetic event streams shaped as MariaDB writes them.

use super::event::*;
use super::tail::*;
use crate::gtid::MariaGtidPos;

fn header(type_code: u8, server_id: u32, len: usize) -> EventHeader {
    EventHeader {
        type_code,
        server_id,
        event_length: len as u32,
        next_position: 0,
    }
}

fn gtid_payload(seq: u64, domain: u32, flags: u8) -> Vec<u8> {
    let mut b = seq.to_le_bytes().to_vec();
    b.extend(domain.to_le_bytes());
    b.push(flags);
    b.extend([0u8; 6]);
    b
}

fn query_payload(text: &str) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b.push(4); // db_len
    b.extend([0u8, 0]); // error code
    b.extend(0u16.to_le_bytes()); // status vars
    b.extend(b"test\0");
    b.extend(text.as_bytes());
    b
}

/// A stream of events at consecutive offsets of file 0.
struct Feed {
    scan: TailScan,
    offset: u64,
}

impl Feed {
    fn new(have: &str, start: &str) -> Self {
        Self {
            scan: TailScan::new(
                MariaGtidPos::parse(have).expect("have"),
                MariaGtidPos::parse(start).expect("start"),
            ),
            offset: 4,
        }
    }
    fn event(&mut self, type_code: u8, server_id: u32, payload: Option<Vec<u8>>) {
        let len = 100;
        let at = BinlogPos {
            file: 0,
            offset: self.offset,
        };
        self.scan
            .event(at, &header(type_code, server_id, len), payload.as_deref())
            .expect("event");
        self.offset += len as u64;
    }
    /// GTID, table map, rows, XID.
    fn row_txn(&mut self, domain: u32, server: u32, seq: u64) {
        self.event(GTID_EVENT, server, Some(gtid_payload(seq, domain, 0)));
        self.event(19, server, None);
        self.event(30, server, None);
        self.event(XID_EVENT, server, None);
    }
}

#[test]
fn nothing_missing_when_the_candidate_has_everything() {
    let mut f = Feed::new("0-1-3", "0-1-1");
    f.row_txn(0, 1, 2);
    f.row_txn(0, 1, 3);
    let plan = f.scan.finish();
    assert_eq!(plan.missing, 0);
    assert_eq!(plan.first_missing, None);
    assert_eq!(plan.end_state.to_string(), "0-1-3");
    assert_eq!(plan.missing_text(), "");
}

#[test]
fn the_tail_is_located_by_offset() {
    let mut f = Feed::new("0-1-2", "0-1-1");
    f.row_txn(0, 1, 2); // 4..404
    f.row_txn(0, 1, 3); // 404..804
    f.row_txn(0, 1, 4); // 804..1204
    let plan = f.scan.finish();
    assert_eq!(plan.missing, 2);
    assert_eq!(
        plan.first_missing,
        Some(BinlogPos {
            file: 0,
            offset: 404
        })
    );
    assert_eq!(
        plan.last_end,
        Some(BinlogPos {
            file: 0,
            offset: 1204
        })
    );
    assert_eq!(plan.missing_text(), "0-1-3..0-1-4");
    assert_eq!(plan.end_state.to_string(), "0-1-4");
    assert_eq!(plan.present_inside, 0);
}

#[test]
fn a_torn_last_transaction_is_not_salvaged() {
    let mut f = Feed::new("0-1-1", "0-1-1");
    f.row_txn(0, 1, 2);
    f.event(GTID_EVENT, 1, Some(gtid_payload(3, 0, 0)));
    f.event(19, 1, None);
    let plan = f.scan.finish();
    assert_eq!(plan.missing, 1);
    assert_eq!(plan.missing_text(), "0-1-2");
    assert_eq!(plan.torn_tail.map(|g| g.seq), Some(3));
    assert_eq!(plan.end_state.to_string(), "0-1-2");
}

#[test]
fn standalone_ddl_and_commit_queries_end_groups() {
    let mut f = Feed::new("0-1-1", "");
    f.event(GTID_EVENT, 1, Some(gtid_payload(2, 0, 1)));
    f.event(
        QUERY_EVENT,
        1,
        Some(query_payload("CREATE TABLE t (a INT)")),
    );
    // A non-transactional engine's group ends with a COMMIT query.
    f.event(GTID_EVENT, 1, Some(gtid_payload(3, 0, 0)));
    f.event(
        QUERY_EVENT,
        1,
        Some(query_payload("INSERT INTO t VALUES (1)")),
    );
    f.event(QUERY_EVENT, 1, Some(query_payload("COMMIT")));
    let plan = f.scan.finish();
    assert_eq!(plan.missing, 2);
    assert_eq!(plan.torn_tail, None);
    assert_eq!(plan.missing_text(), "0-1-2..0-1-3");
}

#[test]
fn another_domain_inside_the_tail_is_counted() {
    let mut f = Feed::new("0-1-1,1-2-7", "0-1-1,1-2-6");
    f.row_txn(0, 1, 2);
    f.row_txn(1, 2, 7); // the candidate has it already
    let plan = f.scan.finish();
    assert_eq!(plan.missing, 1);
    assert_eq!(plan.present_inside, 1);
    assert_eq!(plan.end_state.to_string(), "0-1-2,1-2-7");
}

#[test]
fn gtid_list_events_set_the_state() {
    let mut list = 1u32.to_le_bytes().to_vec();
    list.extend(0u32.to_le_bytes());
    list.extend(1u32.to_le_bytes());
    list.extend(41u64.to_le_bytes());
    assert_eq!(parse_gtid_list(&list).expect("list").to_string(), "0-1-41");
    let mut f = Feed::new("0-1-41", "");
    f.event(GTID_LIST_EVENT, 1, Some(list));
    let plan = f.scan.finish();
    assert_eq!(plan.end_state.to_string(), "0-1-41");
    // A list that claims more entries than it holds is refused.
    let mut bad = 3u32.to_le_bytes().to_vec();
    bad.extend([0u8; 16]);
    assert!(parse_gtid_list(&bad).is_err());
}

#[test]
fn starting_points() {
    let have = MariaGtidPos::parse("0-1-50").expect("have");
    let lists: Vec<MariaGtidPos> = ["", "0-1-20", "0-1-60"]
        .iter()
        .map(|s| MariaGtidPos::parse(s).expect("list"))
        .collect();
    assert_eq!(start_file(&have, &lists), Some(1));
    let behind = MariaGtidPos::parse("0-1-10").expect("have");
    assert_eq!(start_file(&behind, &lists[1..]), None);

    let a = MariaGtidPos::parse("0-1-30").expect("a");
    let b = MariaGtidPos::parse("0-1-45").expect("b");
    let c = MariaGtidPos::parse("0-1-55").expect("c");
    let pos = |offset| BinlogPos { file: 2, offset };
    let checkpoints = [(pos(100), &a), (pos(200), &b), (pos(300), &c)];
    let (at, state) =
        start_from_checkpoints(&have, checkpoints.iter().copied()).expect("checkpoint");
    assert_eq!(at, pos(200));
    assert_eq!(state, b);
}

#[test]
fn headers_and_checksums() {
    assert!(EventHeader::parse(&[0u8; 10]).is_err());
    let mut h = [0u8; HEADER_LEN];
    h[4] = GTID_EVENT;
    h[9..13].copy_from_slice(&5u32.to_le_bytes());
    assert!(
        EventHeader::parse(&h).is_err(),
        "length below the header size"
    );
    h[9..13].copy_from_slice(&40u32.to_le_bytes());
    let parsed = EventHeader::parse(&h).expect("header");
    assert_eq!(parsed.body_len(), 21);

    let body = b"hello world".to_vec();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h);
    hasher.update(&body);
    let mut with_crc = body.clone();
    with_crc.extend(hasher.finalize().to_le_bytes());
    let crc = Checksum { crc32: true };
    crc.verify(&h, &with_crc, 4).expect("good checksum");
    with_crc[0] ^= 1;
    assert!(crc.verify(&h, &with_crc, 4).is_err());
    assert_eq!(crc.payload(&with_crc).expect("payload").len(), body.len());
    assert!(query_ends_transaction(&query_payload("commit")).expect("query"));
    assert!(!query_ends_transaction(&query_payload("INSERT")).expect("query"));
    assert!(query_ends_transaction(&[0u8; 3]).is_err());
}

#[test]
fn segments_follow_runs_of_missing_transactions() {
    let mut f = Feed::new("0-1-2,1-2-7", "0-1-1,1-2-6");
    f.row_txn(0, 1, 2); // 4..404: present
    f.row_txn(0, 1, 3); // 404..804: missing
    f.row_txn(0, 1, 4); // 804..1204: missing
    f.row_txn(1, 2, 7); // 1204..1604: present (another domain)
    f.row_txn(0, 1, 5); // 1604..2004: missing
    let plan = f.scan.finish();
    assert_eq!(
        plan.segments,
        vec![
            Segment {
                file: 0,
                start: 404,
                end: 1204
            },
            Segment {
                file: 0,
                start: 1604,
                end: 2004
            },
        ]
    );
    assert_eq!(plan.present_inside, 1);
}

#[test]
fn a_group_torn_at_the_end_of_a_file_is_left_out_and_the_next_file_goes_on() {
    let mut f = Feed::new("0-1-1", "0-1-1");
    f.row_txn(0, 1, 2);
    // The crash cut 0-1-3 in file 0; the restarted server wrote a real 0-1-3 in file 1.
    f.event(GTID_EVENT, 1, Some(gtid_payload(3, 0, 0)));
    f.event(19, 1, None);
    f.scan.end_of_file();
    let at = BinlogPos { file: 1, offset: 4 };
    let len = |n| header(n, 1, 100);
    f.scan
        .event(at, &len(GTID_EVENT), Some(&gtid_payload(3, 0, 0)))
        .expect("gtid");
    f.scan
        .event(
            BinlogPos {
                file: 1,
                offset: 104,
            },
            &len(XID_EVENT),
            None,
        )
        .expect("xid");
    let plan = f.scan.finish();
    assert_eq!(plan.missing, 2);
    assert_eq!(plan.torn_tail.map(|g| g.seq), Some(3));
    assert_eq!(
        plan.segments,
        vec![
            Segment {
                file: 0,
                start: 4,
                end: 404
            },
            Segment {
                file: 1,
                start: 4,
                end: 204
            },
        ]
    );
    assert_eq!(plan.end_state.to_string(), "0-1-3");
}

#[test]
fn only_real_terminators_end_a_group() {
    for text in [
        "ROLLBACK TO sp1",
        "XA END 'x'",
        "COMMIT_LOG",
        "INSERT INTO t VALUES (1)",
    ] {
        assert!(
            !query_ends_transaction(&query_payload(text)).expect("query"),
            "{text}"
        );
    }
    for text in ["COMMIT", "ROLLBACK", "XA COMMIT 'x'", "xa rollback 'x'"] {
        assert!(
            query_ends_transaction(&query_payload(text)).expect("query"),
            "{text}"
        );
    }
    // A group that meets the next GTID before its terminator never committed.
    let mut f = Feed::new("0-1-1", "0-1-1");
    f.event(GTID_EVENT, 1, Some(gtid_payload(2, 0, 0)));
    f.event(19, 1, None);
    f.row_txn(0, 1, 3);
    let plan = f.scan.finish();
    assert_eq!(plan.missing, 1);
    assert_eq!(plan.torn_tail.map(|g| g.seq), Some(2));
    assert_eq!(plan.missing_text(), "0-1-3");
}
