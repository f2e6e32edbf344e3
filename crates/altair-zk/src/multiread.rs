//! Several reads in one request (ZooKeeper's `multiRead`, 3.6 and later): what a
//! cluster's view needs costs ZooKeeper one request instead of one per znode. The
//! ensemble's cost is mostly per request (~90 µs of its CPU each, measured), so a leader's
//! cold start and a failover storm are bound by how many requests they send, not by how
//! many znodes they read.
//!
//! `multiRead` needs ZooKeeper 3.6 or later, as the persistent watches do (`addWatch`):
//! a 3.5 server answers `UNIMPLEMENTED` and closes the connection.

use zookeeper_client as zk;

use crate::requests::count;
use crate::{Result, Zk, ZkError};

/// One read of a batch.
#[derive(Debug, Clone, Copy)]
pub enum Read<'a> {
    /// A znode's data and version.
    Data(&'a str),
    /// A znode's children.
    Children(&'a str),
}

impl Read<'_> {
    fn path(&self) -> &str {
        match self {
            Self::Data(p) | Self::Children(p) => p,
        }
    }
}

/// The answer to one [`Read`], in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Data and version; `None` when the znode does not exist.
    Data(Option<(Vec<u8>, i32)>),
    /// Children; empty when the znode does not exist.
    Children(Vec<String>),
}

impl Answer {
    /// The data and version of a [`Read::Data`] (`None` for a missing znode).
    pub fn into_versioned(self) -> Option<(Vec<u8>, i32)> {
        match self {
            Self::Data(d) => d,
            Self::Children(_) => None,
        }
    }

    /// The data of a [`Read::Data`] (`None` for a missing znode).
    pub fn into_data(self) -> Option<Vec<u8>> {
        self.into_versioned().map(|(d, _)| d)
    }

    /// The children of a [`Read::Children`].
    pub fn into_children(self) -> Vec<String> {
        match self {
            Self::Children(c) => c,
            Self::Data(_) => Vec::new(),
        }
    }

    /// A JSON record, as [`Zk::get_record`] reads it: missing or malformed is `None`
    /// (malformed with a warning naming `path`).
    pub fn into_record<T: serde::de::DeserializeOwned>(self, what: &str, path: &str) -> Option<T> {
        let bytes = self.into_data()?;
        match altair_core::registry::from_json::<T>(what, &bytes) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "ignoring a malformed record");
                None
            }
        }
    }
}

/// Most reads sent in one request: ~25 KB of paths, far below the server's 1 MB limit
/// on a request (`jute.maxbuffer`); answers are as large as the znodes read.
const MAX_BATCH: usize = 256;

impl Zk {
    /// Every read of `reads`, answered in order: one request per 256 reads (chunks
    /// pipelined; a lone read is a plain request). A missing znode is an answer, not an
    /// error; any other error fails the whole call, naming the path.
    pub async fn read_all(&self, reads: &[Read<'_>]) -> Result<Vec<Answer>> {
        match reads {
            [] => Ok(Vec::new()),
            // One read: a plain request is as cheap.
            [one] => Ok(vec![self.read_one(*one).await?]),
            _ => {
                let chunks = reads.chunks(MAX_BATCH).map(|c| self.multi_read(c));
                let answers = futures_util::future::try_join_all(chunks).await?;
                Ok(answers.into_iter().flatten().collect())
            }
        }
    }

    async fn multi_read(&self, reads: &[Read<'_>]) -> Result<Vec<Answer>> {
        let first = reads.first().map_or("", Read::path);
        let mut batch = self.client.new_multi_reader();
        for r in reads {
            match r {
                Read::Data(p) => batch.add_get_data(p),
                Read::Children(p) => batch.add_get_children(p),
            }
            .map_err(|e| ZkError::from_op("multiRead", r.path(), e))?;
        }
        count("multi_read");
        let results = batch
            .commit()
            .await
            .map_err(|e| ZkError::from_op("multiRead", first, e))?;
        if results.len() != reads.len() {
            return Err(ZkError::Conflict {
                detail: format!(
                    "ZooKeeper answered {} of {} reads in a multiRead from {first}",
                    results.len(),
                    reads.len()
                ),
            });
        }
        reads
            .iter()
            .zip(results)
            .map(|(r, result)| answer(*r, result))
            .collect()
    }

    async fn read_one(&self, read: Read<'_>) -> Result<Answer> {
        Ok(match read {
            Read::Data(p) => Answer::Data(self.get_versioned(p).await?),
            Read::Children(p) => Answer::Children(self.children(p).await?),
        })
    }
}

fn answer(read: Read<'_>, result: zk::MultiReadResult) -> Result<Answer> {
    match (read, result) {
        (Read::Data(_), zk::MultiReadResult::Data { data, stat }) => {
            Ok(Answer::Data(Some((data, stat.version))))
        }
        (Read::Children(_), zk::MultiReadResult::Children { children }) => {
            Ok(Answer::Children(children))
        }
        (
            Read::Data(_),
            zk::MultiReadResult::Error {
                err: zk::Error::NoNode,
            },
        ) => Ok(Answer::Data(None)),
        (
            Read::Children(_),
            zk::MultiReadResult::Error {
                err: zk::Error::NoNode,
            },
        ) => Ok(Answer::Children(Vec::new())),
        (
            Read::Data(p),
            zk::MultiReadResult::Error {
                err: zk::Error::NoAuth,
            },
        ) => Ok(Answer::Data(crate::unreadable(p))),
        (
            Read::Children(p),
            zk::MultiReadResult::Error {
                err: zk::Error::NoAuth,
            },
        ) => Ok(Answer::Children(
            crate::unreadable::<Vec<String>>(p).unwrap_or_default(),
        )),
        (r, zk::MultiReadResult::Error { err }) => {
            Err(ZkError::from_op("multiRead", r.path(), err))
        }
        (r, _) => Err(ZkError::Conflict {
            detail: format!(
                "ZooKeeper answered a read of {} with the wrong kind of result",
                r.path()
            ),
        }),
    }
}
