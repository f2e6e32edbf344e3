//! The local binlog files, read natively: the binlog index, each file's opening GTID
//! list (MariaDB) or `Previous_gtids` set (MySQL), and the scan of the tail a candidate
//! lacks (MariaDB; `altair_core::binlog`). Blocking
//! file I/O: run it on a blocking thread.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use altair_core::binlog::mysql::{PREVIOUS_GTIDS_EVENT, parse_previous_gtids};
use altair_core::binlog::{
    BinlogError, BinlogPos, Checksum, EventHeader, HEADER_LEN, MAGIC, TailPlan, TailScan,
    event::{FORMAT_DESCRIPTION_EVENT, GTID_LIST_EVENT},
    needs_payload,
    tail::start_from_checkpoints,
};
use altair_core::gtid::{MariaGtidPos, MysqlGtidSet};

/// A binlog position the probe saw with the server's GTID state read just after it (so
/// the state holds at least everything before the position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub file_name: String,
    pub offset: u64,
    pub state: MariaGtidPos,
    /// The file's opening GTID list when the checkpoint was taken: a file of the same
    /// name after `RESET MASTER` or a re-clone opens differently, and its checkpoints are
    /// not used.
    pub opening: Option<MariaGtidPos>,
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("read the binlog index {path}: {source}")]
    Index {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} at offset {offset}: {source}")]
    Format {
        path: String,
        offset: u64,
        source: BinlogError,
    },
    #[error(
        "the candidate lacks transactions older than the oldest binlog file (its GTID list is {0}): they were purged"
    )]
    Purged(String),
}

/// The files of the binlog index `<basename>.index`, oldest first.
pub fn list(basename: &str) -> Result<Vec<PathBuf>, FilesError> {
    let index = format!("{basename}.index");
    let listed = std::fs::read_to_string(&index).map_err(|source| FilesError::Index {
        path: index.clone(),
        source,
    })?;
    let dir = Path::new(basename)
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    Ok(listed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p = PathBuf::from(l);
            if p.is_absolute() { p } else { dir.join(p) }
        })
        .collect())
}

/// The transactions after `have`, found from the newest usable starting point: a probe
/// checkpoint, else the newest file whose GTID list `have` covers.
pub fn scan_tail(
    files: &[PathBuf],
    have: &MariaGtidPos,
    checkpoints: &[Checkpoint],
) -> Result<(TailPlan, BinlogPos), FilesError> {
    let index_of = |name: &str| {
        files
            .iter()
            .position(|f| f.file_name().is_some_and(|n| n == name))
    };
    // A checkpoint counts only in a file that still opens as it did when it was taken.
    let mut openings: std::collections::HashMap<usize, Option<MariaGtidPos>> =
        std::collections::HashMap::new();
    let mut usable = Vec::new();
    for c in checkpoints {
        let Some(file) = index_of(&c.file_name) else {
            continue;
        };
        let opening = match openings.get(&file) {
            Some(o) => o.clone(),
            None => {
                let o = opening_gtid_list(&files[file]).ok().flatten();
                openings.insert(file, o.clone());
                o
            }
        };
        if opening.is_some() && opening == c.opening {
            usable.push((
                BinlogPos {
                    file,
                    offset: c.offset,
                },
                &c.state,
            ));
        }
    }
    let (start, state) = match start_from_checkpoints(have, usable.into_iter()) {
        Some(found) => found,
        None => {
            // Newest first, reading only each file's first events. A file whose list
            // cannot be found is no starting point.
            let mut oldest = None;
            let mut chosen = None;
            for (i, f) in files.iter().enumerate().rev() {
                match opening_gtid_list(f)? {
                    Some(list) if have.contains(&list) => {
                        chosen = Some((i, list));
                        break;
                    }
                    Some(list) => oldest = Some(list),
                    None => {}
                }
            }
            match chosen {
                Some((file, list)) => (BinlogPos { file, offset: 4 }, list),
                None => {
                    return Err(FilesError::Purged(
                        oldest.map(|l| l.to_string()).unwrap_or_default(),
                    ));
                }
            }
        }
    };
    let mut scan = TailScan::new(have.clone(), state);
    for (i, path) in files.iter().enumerate().skip(start.file) {
        let from = if i == start.file { start.offset } else { 4 };
        let last = i + 1 == files.len();
        read_events(path, i, from, last, &mut |at, header, payload| {
            scan.event(at, header, payload)
                .map(|()| ControlFlow::Continue(()))
        })?;
        scan.end_of_file();
    }
    Ok((scan.finish(), start))
}

/// The GTID list that opens a file: the binlog state before it (`None`: not among its
/// first events).
pub fn opening_gtid_list(path: &Path) -> Result<Option<MariaGtidPos>, FilesError> {
    opening_event(path, GTID_LIST_EVENT, "GTID list body", |p| {
        altair_core::binlog::event::parse_gtid_list(p)
    })
}

/// A MySQL file's opening `Previous_gtids` set (every GTID of the files before it);
/// `None` when the file has none among its first events.
pub fn opening_previous_gtids(path: &Path) -> Result<Option<MysqlGtidSet>, FilesError> {
    opening_event(
        path,
        PREVIOUS_GTIDS_EVENT,
        "Previous_gtids body",
        parse_previous_gtids,
    )
}

/// The event of `type_code` among a file's first few (it follows the format
/// description), parsed; `None` when it is not there.
fn opening_event<T>(
    path: &Path,
    type_code: u8,
    what: &'static str,
    parse: impl Fn(&[u8]) -> Result<T, BinlogError>,
) -> Result<Option<T>, FilesError> {
    let mut found = None;
    let mut seen = 0;
    read_events(path, 0, 4, true, &mut |_, header, payload| {
        seen += 1;
        if header.type_code == type_code {
            found = Some(parse(payload.ok_or(BinlogError::Truncated(what))?)?);
        }
        Ok(if found.is_some() || seen >= 4 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(found)
}

/// Header flag of the format description event while its file is open.
const LOG_EVENT_BINLOG_IN_USE: u8 = 0x01;

type OnEvent<'a> =
    dyn FnMut(BinlogPos, &EventHeader, Option<&[u8]>) -> Result<ControlFlow<()>, BinlogError> + 'a;

/// Reads `path`'s events from `from` (after its format description event, which is always
/// read for the checksum setting), verifying each checksum. A partial event at the end of
/// the last file is a write cut by a crash and ends the scan; anywhere else it is corrupt.
fn read_events(
    path: &Path,
    file: usize,
    from: u64,
    last: bool,
    on: &mut OnEvent<'_>,
) -> Result<(), FilesError> {
    let shown = path.display().to_string();
    let io = |source| FilesError::Io {
        path: shown.clone(),
        source,
    };
    let fmt = |offset, source| FilesError::Format {
        path: shown.clone(),
        offset,
        source,
    };
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| fmt(0, BinlogError::BadMagic))?;
    if magic != MAGIC {
        return Err(fmt(0, BinlogError::BadMagic));
    }
    let mut offset = 4u64;
    let mut head = [0u8; HEADER_LEN];
    let mut body = Vec::new();
    let mut checksum = None;
    // A file the server did not close (it crashed, then maybe went on in a new file) may
    // end inside an event; a closed one may not.
    let mut may_end_torn = last;
    loop {
        match read_full(&mut r, &mut head).map_err(io)? {
            0 => return Ok(()),
            n if n < HEADER_LEN => {
                return if may_end_torn {
                    Ok(())
                } else {
                    Err(fmt(offset, BinlogError::Truncated("event header")))
                };
            }
            _ => {}
        }
        let header = EventHeader::parse(&head).map_err(|e| fmt(offset, e))?;
        let end = offset + u64::from(header.event_length);
        if header.next_position != 0 && u64::from(header.next_position) != end {
            return Err(fmt(
                offset,
                BinlogError::Corrupt(format!(
                    "the event says it ends at {} but its length ends it at {end}",
                    header.next_position
                )),
            ));
        }
        let sum = match checksum {
            Some(c) => c,
            None => {
                if header.type_code != FORMAT_DESCRIPTION_EVENT {
                    return Err(fmt(
                        offset,
                        BinlogError::Corrupt(
                            "the file does not open with a format description".into(),
                        ),
                    ));
                }
                may_end_torn |= head[17] & LOG_EVENT_BINLOG_IN_USE != 0;
                Checksum::default()
            }
        };
        // The server sets "binlog in use" in the format description's flags after
        // checksumming it.
        let mut hashed_head = head;
        if header.type_code == FORMAT_DESCRIPTION_EVENT {
            hashed_head[17] &= !LOG_EVENT_BINLOG_IN_USE;
        }
        let complete = read_body(
            &mut r,
            &header,
            &hashed_head,
            checksum.is_none(),
            sum,
            &mut body,
        )
        .map_err(|e| match e {
            BodyError::Io(e) => io(e),
            BodyError::Format(e) => fmt(offset, e),
        })?;
        let Some(sum) = complete else {
            return if may_end_torn {
                Ok(())
            } else {
                Err(fmt(offset, BinlogError::Truncated("event")))
            };
        };
        if checksum.is_none() {
            checksum = Some(sum);
            if from > 4 {
                // Past the format description: jump to the starting point.
                r.seek(SeekFrom::Start(from)).map_err(io)?;
                offset = from;
                continue;
            }
        } else {
            let payload = needs_payload(header.type_code).then_some(body.as_slice());
            if on(BinlogPos { file, offset }, &header, payload)
                .map_err(|e| fmt(offset, e))?
                .is_break()
            {
                return Ok(());
            }
        }
        offset += u64::from(header.event_length);
    }
}

/// Bytes of an event body kept for parsing (GTID, GTID list, the start of a query); the
/// rest is only checksummed as it streams by, so a huge row event costs no memory.
const KEEP: usize = 64 * 1024;

enum BodyError {
    Io(std::io::Error),
    Format(BinlogError),
}

/// Reads an event's body, keeping at most `KEEP` bytes of its payload in `kept` and
/// verifying its CRC32. For the format description (`fde`), the checksum setting is
/// read from the body itself and returned. `None`: the file ended inside the event.
fn read_body(
    r: &mut impl Read,
    header: &EventHeader,
    hashed_head: &[u8],
    fde: bool,
    sum: Checksum,
    kept: &mut Vec<u8>,
) -> Result<Option<Checksum>, BodyError> {
    let n = header.body_len();
    if fde {
        kept.resize(n, 0);
        if read_full(r, kept).map_err(BodyError::Io)? < n {
            return Ok(None);
        }
        let c = Checksum::from_format_description(kept).map_err(BodyError::Format)?;
        c.verify(hashed_head, kept, 4).map_err(BodyError::Format)?;
        return Ok(Some(c));
    }
    let data = if sum.crc32 {
        n.checked_sub(4)
            .ok_or(BodyError::Format(BinlogError::Truncated("event checksum")))?
    } else {
        n
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(hashed_head);
    kept.resize(data.min(KEEP), 0);
    if read_full(r, kept).map_err(BodyError::Io)? < kept.len() {
        return Ok(None);
    }
    hasher.update(kept);
    let mut left = data - kept.len();
    let mut chunk = [0u8; 64 * 1024];
    while left > 0 {
        let take = left.min(chunk.len());
        if read_full(r, &mut chunk[..take]).map_err(BodyError::Io)? < take {
            return Ok(None);
        }
        hasher.update(&chunk[..take]);
        left -= take;
    }
    if sum.crc32 {
        let mut crc = [0u8; 4];
        if read_full(r, &mut crc).map_err(BodyError::Io)? < 4 {
            return Ok(None);
        }
        if hasher.finalize() != u32::from_le_bytes(crc) {
            return Err(BodyError::Format(BinlogError::Corrupt(
                "checksum mismatch".into(),
            )));
        }
    }
    Ok(Some(sum))
}

/// Reads until `buf` is full or the end of the file; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
