//! Bringing a worker's cached view of its cluster up to date from the watch events since
//! it was read: only the znodes that changed are read again, so a health transition
//! costs one read instead of a whole view (two requests of nine reads for three hosts). Anything a patch
//! cannot follow exactly — the host set changing, a failover journal appearing, a path
//! it does not know, events possibly lost — asks for the whole view instead.

use std::collections::BTreeMap;

use altair_core::HostName;
use altair_core::failover::Journal;
use altair_core::registry::{ClusterState, HealthRecord, HostRecord, from_json};
use altair_zk::{Read as ZkRead, Zk, ZkError};

use crate::view::ClusterView;

/// More changed paths than this between two looks: read the whole view.
const MAX_PATHS: usize = 32;

/// The znodes of one cluster that changed since its worker last looked.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Paths relative to the cluster's node, and whether a node was created or deleted
    /// there (not only changed).
    paths: BTreeMap<String, bool>,
    /// Events may have been lost (a reconnection), or were too many.
    all: bool,
}

impl Dirty {
    /// An event at `relative` (`""` for the cluster's own node).
    pub fn note(&mut self, relative: &str, created_or_deleted: bool) {
        if self.paths.len() >= MAX_PATHS && !self.paths.contains_key(relative) {
            self.all = true;
            return;
        }
        *self.paths.entry(relative.to_owned()).or_default() |= created_or_deleted;
    }

    /// Events may have been lost: the next look reads everything.
    pub fn everything(&mut self) {
        self.all = true;
    }
}

/// One znode to read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reread {
    State,
    Journal,
    Host(String),
    Health(String),
}

/// What bringing a view without a journal up to date takes, given what changed and the
/// hosts it knows; `None`: read the whole view.
pub fn plan(dirty: &Dirty, known: impl Fn(&str) -> bool) -> Option<Vec<Reread>> {
    if dirty.all {
        return None;
    }
    let mut reads = Vec::new();
    for (path, &structural) in &dirty.paths {
        let read = match path.split_once('/') {
            None => match path.as_str() {
                "state" => Reread::State,
                "failover" => Reread::Journal,
                // Read only while a journal exists (a journal appearing is read whole).
                "abort" | "history" => continue,
                _ => return None,
            },
            Some(("history", _)) => continue,
            Some(("hosts", h)) if !structural && known(h) => Reread::Host(h.to_owned()),
            Some(("health", h)) if known(h) => Reread::Health(h.to_owned()),
            Some(_) => return None,
        };
        reads.push(read);
    }
    Some(reads)
}

/// `view` (read before, without a journal) brought up to date by `reads`; `None` when
/// what was read cannot be patched in (a journal appeared, a host record went away or
/// became invalid): read the whole view.
pub async fn apply(
    zk: &Zk,
    mut view: ClusterView,
    reads: Vec<Reread>,
) -> Result<Option<ClusterView>, ZkError> {
    let name = view.name.clone();
    let l = zk.layout();
    let host = |h: &str| {
        HostName::new(h.to_owned()).map_err(|e| ZkError::Conflict {
            detail: format!("host {h:?}: {e}"),
        })
    };
    let paths = reads
        .iter()
        .map(|r| {
            Ok(match r {
                Reread::State => l.cluster_state(&name),
                Reread::Journal => l.failover_journal(&name),
                Reread::Host(h) => l.host(&name, &host(h)?),
                Reread::Health(h) => l.host_health(&name, &host(h)?),
            })
        })
        .collect::<Result<Vec<String>, ZkError>>()?;
    // One request for all of them.
    let answers = zk
        .read_all(&paths.iter().map(|p| ZkRead::Data(p)).collect::<Vec<_>>())
        .await?;
    for ((r, path), answer) in reads.into_iter().zip(&paths).zip(answers) {
        match r {
            Reread::State => {
                view.state = match answer.into_versioned() {
                    Some((bytes, version)) => Some((
                        from_json::<ClusterState>("cluster state", &bytes)
                            .map_err(|detail| ZkError::Conflict { detail })?,
                        version,
                    )),
                    None => None,
                };
            }
            Reread::Journal => match answer.into_data() {
                Some(bytes) => {
                    // A journal appeared: read the whole view (it is read whole), once
                    // it is known to be one.
                    from_json::<Journal>("failover journal", &bytes)
                        .map_err(|detail| ZkError::Conflict { detail })?;
                    return Ok(None);
                }
                None => view.journal = None,
            },
            Reread::Host(host) => match answer.into_record::<HostRecord>("host", path) {
                Some(record) if record.check(name.as_str(), &host).is_ok() => {
                    crate::agents::agent_registered_at(&record.agent, &name, &host);
                    view.hosts.insert(host, record);
                }
                _ => return Ok(None),
            },
            Reread::Health(host) => match answer.into_record::<HealthRecord>("health", path) {
                Some(h) => {
                    view.health.insert(host, h);
                }
                None => {
                    view.health.remove(&host);
                }
            },
        }
    }
    Ok(Some(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(h: &str) -> bool {
        ["db1", "db2", "db3"].contains(&h)
    }

    fn dirty(events: &[(&str, bool)]) -> Dirty {
        let mut d = Dirty::default();
        for (p, s) in events {
            d.note(p, *s);
        }
        d
    }

    #[test]
    fn a_health_transition_rereads_only_that_record() {
        let d = dirty(&[("health/db1", false)]);
        assert_eq!(plan(&d, known), Some(vec![Reread::Health("db1".into())]));
        // A first record (created) too.
        let d = dirty(&[("health/db2", true)]);
        assert_eq!(plan(&d, known), Some(vec![Reread::Health("db2".into())]));
    }

    #[test]
    fn changes_the_view_follows_are_reread_once_each() {
        let d = dirty(&[
            ("state", false),
            ("health/db1", false),
            ("health/db1", false),
            ("hosts/db2", false),
            ("failover", true),
            ("history/f1", true),
            ("abort", true),
        ]);
        assert_eq!(
            plan(&d, known),
            Some(vec![
                Reread::Journal,
                Reread::Health("db1".into()),
                Reread::Host("db2".into()),
                Reread::State,
            ])
        );
    }

    #[test]
    fn what_a_patch_cannot_follow_asks_for_the_whole_view() {
        for events in [
            // The host set changes.
            vec![("hosts/db4", true)],
            vec![("hosts/db1", true)],
            vec![("hosts", false)],
            // A host the view does not know.
            vec![("health/db9", false)],
            vec![("hosts/db9", false)],
            // The cluster's node itself, a parent, an unknown path.
            vec![("", true)],
            vec![("health", true)],
            vec![("events/e1", true)],
            vec![("hosts/db1/extra", false)],
        ] {
            assert_eq!(plan(&dirty(&events), known), None, "{events:?}");
        }
        let mut d = dirty(&[("state", false)]);
        d.everything();
        assert_eq!(plan(&d, known), None);
    }

    #[test]
    fn too_many_changes_ask_for_the_whole_view() {
        let mut d = Dirty::default();
        for i in 0..MAX_PATHS {
            d.note(&format!("history/f{i}"), true);
        }
        assert!(plan(&d, known).is_some());
        d.note("history/one-more", true);
        assert_eq!(plan(&d, known), None);
    }
}
