//! MariaDB binlog events: the common header and the few bodies salvage needs to read
//! (format description, GTID, GTID list, query). Everything else is skipped by length.
//!
//! Layout (MariaDB `log_event.h`): a file starts with the 4-byte magic, then events. Each
//! event has a 19-byte header — timestamp u32, type u8, server_id u32, event_length u32,
//! next_position u32, flags u16, all little-endian — and `event_length` bytes in all,
//! the CRC32 of the rest in its last 4 bytes when the file's checksum algorithm is CRC32.

use super::BinlogError;
use crate::gtid::{MariaGtid, MariaGtidPos};

pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
pub const HEADER_LEN: usize = 19;
/// No event is this large: `max_allowed_packet` tops out at 1 GiB.
pub const MAX_EVENT_LEN: u32 = 1 << 30;

pub const QUERY_EVENT: u8 = 2;
pub const STOP_EVENT: u8 = 3;
pub const ROTATE_EVENT: u8 = 4;
pub const FORMAT_DESCRIPTION_EVENT: u8 = 15;
pub const XID_EVENT: u8 = 16;
pub const XA_PREPARE_EVENT: u8 = 38;
pub const GTID_EVENT: u8 = 162;
pub const GTID_LIST_EVENT: u8 = 163;

/// GTID event flags (`Gtid_log_event::FL_*`).
const FL_STANDALONE: u8 = 1;
const FL_GROUP_COMMIT_ID: u8 = 2;

/// The checksum algorithm a format description event announces.
const CHECKSUM_CRC32: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    pub type_code: u8,
    pub server_id: u32,
    pub event_length: u32,
    pub next_position: u32,
}

impl EventHeader {
    pub fn parse(b: &[u8]) -> Result<Self, BinlogError> {
        if b.len() < HEADER_LEN {
            return Err(BinlogError::Truncated("event header"));
        }
        let header = Self {
            type_code: b[4],
            server_id: u32_at(b, 5),
            event_length: u32_at(b, 9),
            next_position: u32_at(b, 13),
        };
        if (header.event_length as usize) < HEADER_LEN || header.event_length > MAX_EVENT_LEN {
            return Err(BinlogError::Corrupt(format!(
                "event length {} is not a valid length",
                header.event_length
            )));
        }
        Ok(header)
    }

    /// Bytes after the header, checksum included.
    pub fn body_len(&self) -> usize {
        self.event_length as usize - HEADER_LEN
    }
}

/// The checksum setting of a file, from its format description event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checksum {
    pub crc32: bool,
}

impl Checksum {
    /// From a format description event's body (checksum included): its algorithm byte
    /// sits just before the 4-byte checksum at the end.
    pub fn from_format_description(body: &[u8]) -> Result<Self, BinlogError> {
        if body.len() < 5 + 57 {
            return Err(BinlogError::Corrupt(
                "format description event too short".into(),
            ));
        }
        Ok(Self {
            crc32: body[body.len() - 5] == CHECKSUM_CRC32,
        })
    }

    /// The body without its checksum.
    pub fn payload<'a>(&self, body: &'a [u8]) -> Result<&'a [u8], BinlogError> {
        if !self.crc32 {
            return Ok(body);
        }
        body.len()
            .checked_sub(4)
            .map(|n| &body[..n])
            .ok_or(BinlogError::Truncated("event checksum"))
    }

    /// Checks the CRC32 of a whole event (header + body).
    pub fn verify(&self, header: &[u8], body: &[u8], offset: u64) -> Result<(), BinlogError> {
        if !self.crc32 {
            return Ok(());
        }
        let n = body
            .len()
            .checked_sub(4)
            .ok_or(BinlogError::Truncated("event checksum"))?;
        let mut h = crc32fast::Hasher::new();
        h.update(header);
        h.update(&body[..n]);
        let want = u32_at(body, n);
        if h.finalize() != want {
            return Err(BinlogError::Corrupt(format!(
                "checksum mismatch in the event at offset {offset}"
            )));
        }
        Ok(())
    }
}

/// A GTID event: the transaction's GTID and whether it stands alone (no terminating
/// XID/COMMIT: a DDL statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    pub gtid: MariaGtid,
    pub standalone: bool,
}

pub fn parse_gtid(server_id: u32, payload: &[u8]) -> Result<GtidEvent, BinlogError> {
    if payload.len() < 13 {
        return Err(BinlogError::Corrupt("GTID event too short".into()));
    }
    let flags = payload[12];
    if flags & FL_GROUP_COMMIT_ID != 0 && payload.len() < 21 {
        return Err(BinlogError::Corrupt("GTID event too short".into()));
    }
    Ok(GtidEvent {
        gtid: MariaGtid {
            seq: u64_at(payload, 0),
            domain: u32_at(payload, 8),
            server_id,
        },
        standalone: flags & FL_STANDALONE != 0,
    })
}

/// A GTID list event: the binlog state before the file it opens.
pub fn parse_gtid_list(payload: &[u8]) -> Result<MariaGtidPos, BinlogError> {
    if payload.len() < 4 {
        return Err(BinlogError::Corrupt("GTID list event too short".into()));
    }
    let count = (u32_at(payload, 0) & 0x0fff_ffff) as usize;
    let need = count
        .checked_mul(16)
        .and_then(|n| n.checked_add(4))
        .ok_or_else(|| BinlogError::Corrupt("GTID list count overflows".into()))?;
    if payload.len() < need {
        return Err(BinlogError::Corrupt(format!(
            "GTID list event announces {count} entries but holds fewer"
        )));
    }
    let mut pos = MariaGtidPos::default();
    for i in 0..count {
        let at = 4 + 16 * i;
        pos.advance(MariaGtid {
            domain: u32_at(payload, at),
            server_id: u32_at(payload, at + 4),
            seq: u64_at(payload, at + 8),
        });
    }
    Ok(pos)
}

/// Whether a query event ends a transaction (`COMMIT`, `ROLLBACK`, `XA COMMIT …`).
pub fn query_ends_transaction(payload: &[u8]) -> Result<bool, BinlogError> {
    // thread_id u32, exec_time u32, db_len u8, error_code u16, status_vars_len u16.
    if payload.len() < 13 {
        return Err(BinlogError::Corrupt("query event too short".into()));
    }
    let db_len = payload[8] as usize;
    let status_len = u16::from_le_bytes([payload[11], payload[12]]) as usize;
    let start = 13 + status_len + db_len + 1;
    let Some(text) = payload.get(start..) else {
        return Err(BinlogError::Corrupt("query event too short".into()));
    };
    // Only the statements that end a group: not `ROLLBACK TO sp`, not `XA END`.
    let text = String::from_utf8_lossy(&text[..text.len().min(32)]).to_ascii_uppercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    Ok(matches!(
        words.as_slice(),
        ["COMMIT"] | ["ROLLBACK"] | ["XA", "COMMIT", ..] | ["XA", "ROLLBACK", ..]
    ))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
