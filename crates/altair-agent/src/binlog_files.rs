//! The local binlog files, read natively (MariaDB): the binlog index, each file's opening
//! GTID list, and the scan of the tail a candidate lacks (`altair_core::binlog`). Blocking
//! file I/O: run it on a blocking thread.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use altair_core::binlog::{
    BinlogError, BinlogPos, Checksum, EventHeader, HEADER_LEN, MAGIC, TailPlan, TailScan,
    event::{FORMAT_DESCRIPTION_EVENT, GTID_LIST_EVENT},
    needs_payload,
    tail::start_from_checkpoints,
};
use altair_core::gtid::MariaGtidPos;

/// A binlog position the probe saw with the server's GTID state read just after it (so
/// the state holds at least everything before the position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub file_name: String,
    pub offset: u64,
    pub state: MariaGtidPos,
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
    let usable = checkpoints.iter().filter_map(|c| {
        index_of(&c.file_name).map(|file| {
            (
                BinlogPos {
                    file,
                    offset: c.offset,
                },
                &c.state,
            )
        })
    });
    let (start, state) = match start_from_checkpoints(have, usable) {
        Some(found) => found,
        None => {
            // Newest first, reading only each file's first events.
            let mut lists = Vec::new();
            let mut chosen = None;
            for (i, f) in files.iter().enumerate().rev() {
                let list = opening_gtid_list(f)?;
                if have.contains(&list) {
                    chosen = Some(i);
                    break;
                }
                lists.push(list);
            }
            match chosen {
                Some(file) => (BinlogPos { file, offset: 4 }, MariaGtidPos::default()),
                None => {
                    return Err(FilesError::Purged(
                        lists.last().map(ToString::to_string).unwrap_or_default(),
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
    }
    Ok((scan.finish(), start))
}

/// The GTID list that opens a file: the binlog state before it.
pub fn opening_gtid_list(path: &Path) -> Result<MariaGtidPos, FilesError> {
    let mut found = None;
    let mut seen = 0;
    read_events(path, 0, 4, true, &mut |_, header, payload| {
        seen += 1;
        if header.type_code == GTID_LIST_EVENT {
            let p = payload.ok_or(BinlogError::Truncated("GTID list body"))?;
            found = Some(altair_core::binlog::event::parse_gtid_list(p)?);
        }
        // The list is the second event: a few are enough.
        Ok(if found.is_some() || seen >= 4 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(found.unwrap_or_default())
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
    loop {
        match read_full(&mut r, &mut head).map_err(io)? {
            0 => return Ok(()),
            n if n < HEADER_LEN => {
                return if last {
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
        body.resize(header.body_len(), 0);
        if read_full(&mut r, &mut body).map_err(io)? < body.len() {
            return if last {
                Ok(())
            } else {
                Err(fmt(offset, BinlogError::Truncated("event")))
            };
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
                let c = Checksum::from_format_description(&body).map_err(|e| fmt(offset, e))?;
                checksum = Some(c);
                c
            }
        };
        if header.type_code == FORMAT_DESCRIPTION_EVENT {
            // The server sets "binlog in use" in this event's flags after checksumming it.
            let mut h = head;
            h[17] &= !LOG_EVENT_BINLOG_IN_USE;
            sum.verify(&h, &body, offset).map_err(|e| fmt(offset, e))?;
        } else {
            sum.verify(&head, &body, offset)
                .map_err(|e| fmt(offset, e))?;
        }
        if offset == 4 && from > 4 {
            // Past the format description: jump to the starting point.
            r.seek(SeekFrom::Start(from)).map_err(io)?;
            offset = from;
            continue;
        }
        if header.type_code != FORMAT_DESCRIPTION_EVENT {
            let payload = if needs_payload(header.type_code) {
                Some(sum.payload(&body).map_err(|e| fmt(offset, e))?)
            } else {
                None
            };
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
