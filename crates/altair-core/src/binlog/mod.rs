//! Reading MariaDB binlog files natively, for salvage: which transactions a candidate
//! lacks, where they are, and the binlog's end state — from event headers and the few
//! small bodies that name GTIDs, never by decoding rows. For MySQL, only where the tail
//! can start (`mysql`). The caller reads the bytes.

pub mod event;
pub mod mysql;
pub mod tail;

#[cfg(test)]
mod tests;

pub use event::{Checksum, EventHeader, HEADER_LEN, MAGIC};
pub use tail::{BinlogPos, MissingRange, TailPlan, TailScan, needs_payload};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinlogError {
    #[error("not a binlog file (bad magic number)")]
    BadMagic,
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("corrupt binlog: {0}")]
    Corrupt(String),
}
