//! The ZooKeeper adapter: one session, the paths of `altair_core::zkpath`, and the few
//! operations the services need. Errors say whether to retry (connection loss) or to
//! give up the session (expired: ephemeral nodes and watches are gone).

mod membership;
mod multiread;
mod owner;
mod requests;
mod session;
pub mod tls;

use std::time::Duration;

use altair_core::config::ZkConfig;
use altair_core::zkpath::ZkLayout;
use zookeeper_client as zk;

pub use membership::follow_monitors;
pub use multiread::{Answer, Read};
use owner::Owner;
pub use owner::{Role, check_role, digest_id, role_of};
use requests::count;
pub use requests::{OPS as REQUEST_OPS, REQUESTS, REQUESTS_HELP, sent, writes_to_cluster};
pub use session::{SessionLoop, wait_session_end};
pub use zk::{
    EventType, OneshotWatcher, PersistentWatcher, SessionState, StateWatcher, WatchedEvent,
};

#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error("cannot connect to ZooKeeper {servers}: {source}")]
    Connect {
        servers: String,
        #[source]
        source: zk::Error,
    },
    /// `[zookeeper]`'s TLS files could not be used (read at every connect).
    #[error("ZooKeeper TLS: {detail}")]
    Tls { detail: String },
    /// The session is gone: ephemeral nodes and watches with it. Reconnect and
    /// re-register; a leader steps down.
    #[error("ZooKeeper session expired during {op} {path}")]
    SessionExpired { op: &'static str, path: String },
    /// The configured credential does not fit `[zookeeper]`'s role ids.
    #[error("ZooKeeper identity: {detail}")]
    Identity { detail: String },
    /// Retryable: the operation may or may not have happened.
    #[error("ZooKeeper connection lost during {op} {path}")]
    ConnectionLoss { op: &'static str, path: String },
    /// A fenced write found its guard gone: this process is no longer the leader.
    #[error("not the leader any more (election node {guard} is gone)")]
    NotLeader { guard: String },
    /// A fenced write's compare-and-set failed: someone else changed the state.
    #[error("conflicting change: {detail}")]
    Conflict { detail: String },
    #[error("ZooKeeper {op} {path} failed: {source}")]
    Op {
        op: &'static str,
        path: String,
        #[source]
        source: zk::Error,
    },
}

impl ZkError {
    fn from_op(op: &'static str, path: &str, source: zk::Error) -> Self {
        let path = path.to_owned();
        match source {
            zk::Error::SessionExpired | zk::Error::ClientClosed => {
                Self::SessionExpired { op, path }
            }
            zk::Error::ConnectionLoss | zk::Error::Timeout => Self::ConnectionLoss { op, path },
            source => Self::Op { op, path, source },
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::ConnectionLoss { .. })
    }

    pub fn is_session_lost(&self) -> bool {
        matches!(self, Self::SessionExpired { .. })
    }
}

pub type Result<T, E = ZkError> = std::result::Result<T, E>;

/// A node altair may not read is no altair record (every node altair creates is
/// world-readable): read as missing, with a warning, so one planted node cannot make a
/// whole cluster unreadable.
pub(crate) fn unreadable<T>(path: &str) -> Option<T> {
    tracing::warn!(
        path,
        "a znode altair may not read (not created by altair): ignored"
    );
    None
}

/// What `restrict_acls` did.
#[derive(Debug, Default)]
pub struct AclReport {
    /// Nodes given altair's ACL.
    pub changed: usize,
    /// Nodes whose ACL could not be read or changed, with why (the first 20).
    pub refused: Vec<String>,
    /// How many nodes were refused in all.
    pub refused_total: usize,
}

impl AclReport {
    /// Notes a node refused; a lost session or connection is returned instead.
    fn refuse(&mut self, e: ZkError) -> Result<()> {
        if e.is_retryable() || e.is_session_lost() {
            return Err(e);
        }
        self.refused_total += 1;
        if self.refused.len() < 20 {
            self.refused.push(e.to_string());
        }
        Ok(())
    }
}

/// One operation of a fenced multi-op write.
#[derive(Debug, Clone)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
    },
    /// `version: None` = any version.
    Set {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
}

impl Op {
    fn path(&self) -> &str {
        match self {
            Self::Create { path, .. } | Self::Set { path, .. } | Self::Delete { path, .. } => path,
        }
    }
}

/// A write under clusters' nodes, counted by cluster when it is sent and again once it
/// is done or given up (dropped): a cached view of the cluster read in between is seen
/// to be possibly stale (`writes_to_cluster`).
#[must_use]
struct Writing {
    clusters: String,
    paths: Vec<String>,
}

impl Writing {
    fn new<'a>(layout: &ZkLayout, paths: impl IntoIterator<Item = &'a str>) -> Self {
        let w = Self {
            clusters: layout.clusters(),
            paths: paths.into_iter().map(str::to_owned).collect(),
        };
        for p in &w.paths {
            requests::wrote(&w.clusters, p);
        }
        w
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        for p in &self.paths {
            requests::wrote(&self.clusters, p);
        }
    }
}

/// One ZooKeeper session.
#[derive(Debug, Clone)]
pub struct Zk {
    client: zk::Client,
    layout: ZkLayout,
    /// Who owns the nodes this session creates.
    owner: Owner,
}

impl Zk {
    /// Connects; `auth` is `user:password` for digest auth (never logged).
    pub async fn connect(cfg: &ZkConfig, auth: Option<&str>) -> Result<Self> {
        Self::connect_with(cfg, auth, None, Self::owner(cfg, auth)?).await
    }

    /// `connect`, the session also holding `previous` (the credential being rotated
    /// out): nodes it owns stay writable, and `restrict_acls` gives them `auth`'s ACL.
    pub async fn connect_rotating(
        cfg: &ZkConfig,
        auth: Option<&str>,
        previous: Option<&str>,
    ) -> Result<Self> {
        Self::connect_with(cfg, auth, previous, Self::owner(cfg, auth)?).await
    }

    fn owner(cfg: &ZkConfig, auth: Option<&str>) -> Result<Owner> {
        Owner::of(auth, cfg).map_err(|detail| ZkError::Identity { detail })
    }

    /// Connects without a credential, to read: anything it created would be its own
    /// (`creator_all` needs an authenticated creator, so ZooKeeper refuses it).
    pub async fn connect_reader(cfg: &ZkConfig) -> Result<Self> {
        Self::connect_with(cfg, None, None, Owner::Reader).await
    }

    async fn connect_with(
        cfg: &ZkConfig,
        auth: Option<&str>,
        previous: Option<&str>,
        owner: Owner,
    ) -> Result<Self> {
        let servers = cfg.servers.join(",");
        let mut connector = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(cfg.session_timeout_ms))
            .with_connection_timeout(Duration::from_millis(cfg.connect_timeout_ms));
        for auth in auth.iter().chain(previous.iter()) {
            connector = connector.with_auth("digest", auth.as_bytes());
        }
        let tls = tls::tls_options(cfg).map_err(|e| ZkError::Tls {
            detail: e.to_string(),
        })?;
        let client = match tls {
            Some(options) => connector.with_tls(options).secure_connect(&servers).await,
            None => connector.connect(&servers).await,
        }
        .map_err(|source| ZkError::Connect {
            servers: servers.clone(),
            source,
        })?;
        Ok(Self {
            client,
            layout: ZkLayout::new(cfg.root.clone()),
            owner,
        })
    }

    /// Counts a write of `op` to `path` (by operation, and by the cluster it touches);
    /// keep what it returns until the write is done.
    fn count_write(&self, op: &'static str, path: &str) -> Writing {
        count(op);
        Writing::new(&self.layout, [path])
    }

    /// How a persistent node at `path` is created (its ACL depends on where it is).
    fn open(&self, path: &str) -> zk::CreateOptions<'_> {
        zk::CreateMode::Persistent.with_acls(self.acls_at(path))
    }

    fn acls_at(&self, path: &str) -> zk::Acls<'_> {
        self.owner.acls_at(&self.layout, path)
    }

    /// The role this session's credential holds (`None`: no credential).
    pub fn role(&self) -> Option<Role> {
        self.owner.role()
    }

    /// Whether this session may create a cluster's nodes and the layout's parents: not a
    /// monitor with an identity of its own (it asks the leader, `ZkLayout::enrol`).
    pub fn creates_clusters(&self) -> bool {
        self.role() != Some(Role::Monitor)
    }

    /// Whether the nodes this session creates are world-writable (no digest auth).
    pub fn world_writable(&self) -> bool {
        matches!(self.owner, Owner::Nobody)
    }

    pub fn layout(&self) -> &ZkLayout {
        &self.layout
    }

    /// This session's id (a new session after an expiry has another).
    pub fn session_id(&self) -> i64 {
        self.client.session_id().0
    }

    pub fn session_timeout(&self) -> Duration {
        self.client.session_timeout()
    }

    /// Watches the session state (a terminal state means: reconnect).
    pub fn state_watcher(&self) -> StateWatcher {
        self.client.state_watcher()
    }

    /// Creates `path` and its missing parents as empty persistent nodes.
    pub async fn ensure_path(&self, path: &str) -> Result<()> {
        let mut prefix = String::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            prefix.push('/');
            prefix.push_str(segment);
            let _writing = self.count_write("create", &prefix);
            match self.client.create(&prefix, b"", &self.open(&prefix)).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                // ZooKeeper checks the parent's CREATE right before whether the node
                // exists: a monitor with an identity of its own may not create, say,
                // `<root>/clusters`, which is there.
                Err(zk::Error::NoAuth) if self.exists(&prefix).await? => {}
                Err(e) => return Err(ZkError::from_op("create", &prefix, e)),
            }
        }
        Ok(())
    }

    /// Whether a node at `path` this session may not write is replaced by one it may:
    /// a monitor with an identity of its own, in its zone (a node created there under
    /// another credential — a monitor not yet moved to its own, a credential rotated
    /// out — would otherwise stay unwritable until the next leader's `restrict_acls`,
    /// and a host's health would stop being published).
    fn replaces(&self, path: &str) -> bool {
        self.role() == Some(Role::Monitor) && self.layout.monitors_write(path)
    }

    /// Deletes `path` and creates it again with `data` and its zone's ACL, in one
    /// multi-op (the parent's DELETE and CREATE rights suffice), while `guard` exists
    /// when given (`Ok(false)`: it does not).
    async fn replace(&self, guard: Option<&str>, path: &str, data: &[u8]) -> Result<bool> {
        tracing::warn!(
            path,
            "a node this monitor may not write (created under another ZooKeeper credential): replacing it with one carrying the monitors' zone's ACL"
        );
        let ops = [
            Op::Delete {
                path: path.to_owned(),
                version: None,
            },
            Op::Create {
                path: path.to_owned(),
                data: data.to_vec(),
            },
        ];
        if let Some(guard) = guard {
            return match self.fenced_write(guard, &ops).await {
                Ok(()) => Ok(true),
                Err(ZkError::NotLeader { .. }) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let mut w = self.client.new_multi_writer();
        w.add_delete(path, None)
            .and_then(|()| w.add_create(path, data, &self.open(path)))
            .map_err(|e| ZkError::from_op("multi", path, e))?;
        let _writing = self.count_write("multi", path);
        match w.commit().await {
            Ok(_) => Ok(true),
            Err(zk::MultiWriteError::OperationFailed { source, .. })
            | Err(zk::MultiWriteError::RequestFailed { source }) => {
                Err(ZkError::from_op("multi", path, source))
            }
        }
    }

    /// Creates the empty persistent node `path` unless it exists (its parent must):
    /// `ensure_path` creates every prefix, which needs create rights on each parent.
    pub async fn create_once(&self, path: &str) -> Result<()> {
        let _writing = self.count_write("create", path);
        match self.client.create(path, b"", &self.open(path)).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(e) => Err(ZkError::from_op("create", path, e)),
        }
    }

    /// Creates every persistent parent of the layout.
    pub async fn ensure_layout(&self) -> Result<()> {
        for path in self.layout.persistent_parents() {
            self.ensure_path(&path).await?;
        }
        Ok(())
    }

    /// Gives every node under the root that anyone but altair may change altair's ACL
    /// (nodes created before digest auth was configured, by an older release, with
    /// `auth`, which granted every id of the creating session, or under the credential
    /// being rotated out: `zookeeper.previous_auth_file`). No-op without auth. A node
    /// whose ACL this session may not read or change is listed in the report and the
    /// walk goes on (someone else owns it: it must not be trusted, and one such node
    /// must not leave the rest unfixed); only a lost session stops it.
    pub async fn restrict_acls(&self) -> Result<AclReport> {
        let mut report = AclReport::default();
        if !matches!(self.owner, Owner::Digest { .. }) {
            return Ok(report);
        }
        let mut todo = vec![self.layout.root().to_owned()];
        while let Some(path) = todo.pop() {
            count("acl");
            let acls = match self.client.get_acl(&path).await {
                Ok((acls, _)) => acls,
                Err(zk::Error::NoNode) => continue,
                Err(e) => {
                    report.refuse(ZkError::from_op("getAcl", &path, e))?;
                    continue;
                }
            };
            if self.owner.needs_reset(&self.layout, &path, &acls) {
                let _writing = self.count_write("acl", &path);
                match self.client.set_acl(&path, &self.acls_at(&path), None).await {
                    Ok(_) => report.changed += 1,
                    Err(zk::Error::NoNode) => continue,
                    Err(e) => report.refuse(ZkError::from_op("setAcl", &path, e))?,
                }
            }
            count("list");
            match self.client.list_children(&path).await {
                Ok(children) => {
                    for child in children {
                        todo.push(format!("{path}/{child}"));
                    }
                }
                Err(zk::Error::NoNode) => {}
                Err(e) => report.refuse(ZkError::from_op("list", &path, e))?,
            }
        }
        Ok(report)
    }

    /// Creates (or replaces) an ephemeral node owned by this session.
    pub async fn register_ephemeral(&self, path: &str, data: &[u8]) -> Result<()> {
        let options = zk::CreateMode::Ephemeral.with_acls(self.acls_at(path));
        loop {
            let _writing = self.count_write("create", path);
            match self.client.create(path, data, &options).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NodeExists) => {
                    // Left by an earlier session of ours that has not expired yet.
                    let _writing = self.count_write("delete", path);
                    match self.client.delete(path, None).await {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(ZkError::from_op("delete", path, e)),
                    }
                }
                Err(e) => return Err(ZkError::from_op("create", path, e)),
            }
        }
    }

    /// Writes `data` to a persistent node, creating it (and its parents) when missing.
    /// Parents are only created after ZooKeeper says they are missing: a failed write
    /// still costs a transaction, so the common path is one `set`.
    pub async fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        let _writing = self.count_write("set", path);
        match self.client.set_data(path, data, None).await {
            Ok(_) => return Ok(()),
            Err(zk::Error::NoNode) => {}
            Err(zk::Error::NoAuth) if self.replaces(path) => {
                return self.replace(None, path, data).await.map(|_| ());
            }
            Err(e) => return Err(ZkError::from_op("set", path, e)),
        }
        for attempt in 0..2 {
            let _writing = self.count_write("create", path);
            match self.client.create(path, data, &self.open(path)).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NodeExists) => {
                    let _writing = self.count_write("set", path);
                    return self
                        .client
                        .set_data(path, data, None)
                        .await
                        .map(|_| ())
                        .map_err(|e| ZkError::from_op("set", path, e));
                }
                Err(zk::Error::NoNode) if attempt == 0 => {
                    if let Some((parent, _)) = path.rsplit_once('/') {
                        self.ensure_path(parent).await?;
                    }
                }
                Err(e) => return Err(ZkError::from_op("create", path, e)),
            }
        }
        Err(ZkError::Op {
            op: "create",
            path: path.to_owned(),
            source: zk::Error::NoNode,
        })
    }

    /// `put`, but a node that does not exist yet is created only while `guard` exists
    /// (one multi-op: check + create), so a record cannot outlive what it describes.
    /// `Ok(false)`: `guard` is gone, nothing written. The common path (the node exists)
    /// is one `set`.
    pub async fn put_while(&self, guard: &str, path: &str, data: &[u8]) -> Result<bool> {
        let _writing = self.count_write("set", path);
        match self.client.set_data(path, data, None).await {
            Ok(_) => return Ok(true),
            Err(zk::Error::NoNode) => {}
            Err(zk::Error::NoAuth) if self.replaces(path) => {
                return self.replace(Some(guard), path, data).await;
            }
            Err(e) => return Err(ZkError::from_op("set", path, e)),
        }
        for attempt in 0..2 {
            let mut w = self
                .client
                .new_check_writer(guard, None)
                .map_err(|e| ZkError::from_op("multi", guard, e))?;
            w.add_create(path, data, &self.open(path))
                .map_err(|e| ZkError::from_op("multi", path, e))?;
            let _writing = self.count_write("multi", path);
            match w.commit().await {
                Ok(_) => return Ok(true),
                Err(zk::CheckWriteError::CheckFailed { .. }) => return Ok(false),
                Err(zk::CheckWriteError::OperationFailed {
                    source: zk::Error::NodeExists,
                    ..
                }) => {
                    let _writing = self.count_write("set", path);
                    return self
                        .client
                        .set_data(path, data, None)
                        .await
                        .map(|_| true)
                        .map_err(|e| ZkError::from_op("set", path, e));
                }
                Err(zk::CheckWriteError::OperationFailed {
                    source: zk::Error::NoNode,
                    ..
                }) if attempt == 0 => {
                    if let Some((parent, _)) = path.rsplit_once('/') {
                        self.ensure_path(parent).await?;
                    }
                }
                Err(zk::CheckWriteError::OperationFailed { source, .. })
                | Err(zk::CheckWriteError::RequestFailed { source }) => {
                    return Err(ZkError::from_op("create", path, source));
                }
            }
        }
        Err(ZkError::Op {
            op: "create",
            path: path.to_owned(),
            source: zk::Error::NoNode,
        })
    }

    /// Creates a persistent sequential node under `prefix` (creating the parent when
    /// ZooKeeper says it is missing); returns its path.
    pub async fn append(&self, prefix: &str, data: &[u8]) -> Result<String> {
        let options = zk::CreateMode::PersistentSequential.with_acls(self.acls_at(prefix));
        for attempt in 0..2 {
            let _writing = self.count_write("create", prefix);
            match self.client.create(prefix, data, &options).await {
                Ok((_, seq)) => return Ok(format!("{prefix}{seq}")),
                Err(zk::Error::NoNode) if attempt == 0 => {
                    if let Some((parent, _)) = prefix.rsplit_once('/') {
                        self.ensure_path(parent).await?;
                    }
                }
                Err(e) => return Err(ZkError::from_op("create", prefix, e)),
            }
        }
        Err(ZkError::Op {
            op: "create",
            path: prefix.to_owned(),
            source: zk::Error::NoNode,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        count("get");
        match self.client.get_data(path).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(zk::Error::NoAuth) => Ok(unreadable(path)),
            Err(e) => Err(ZkError::from_op("get", path, e)),
        }
    }

    /// Children of `path` (empty when it does not exist).
    pub async fn children(&self, path: &str) -> Result<Vec<String>> {
        count("list");
        match self.client.list_children(path).await {
            Ok(c) => Ok(c),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(ZkError::from_op("list", path, e)),
        }
    }

    /// Children of `path` and a watch that fires on the next change.
    pub async fn children_and_watch(&self, path: &str) -> Result<(Vec<String>, OneshotWatcher)> {
        count("watch");
        self.client
            .list_and_watch_children(path)
            .await
            .map_err(|e| ZkError::from_op("watch", path, e))
    }

    /// A JSON record (see `altair_core::registry`); a missing node is `None`, a malformed
    /// one is `None` too, with a warning naming it.
    pub async fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<Option<T>> {
        let Some(bytes) = self.get(path).await? else {
            return Ok(None);
        };
        match altair_core::registry::from_json::<T>(what, &bytes) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "ignoring a malformed record");
                Ok(None)
            }
        }
    }

    /// Data and version of `path`, or `None` when it does not exist.
    pub async fn get_versioned(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>> {
        count("get");
        match self.client.get_data(path).await {
            Ok((data, stat)) => Ok(Some((data, stat.version))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(zk::Error::NoAuth) => Ok(unreadable(path)),
            Err(e) => Err(ZkError::from_op("get", path, e)),
        }
    }

    /// Creates an ephemeral sequential node under `prefix` (an election candidate).
    pub async fn create_candidate(&self, prefix: &str, data: &[u8]) -> Result<String> {
        let options = zk::CreateMode::EphemeralSequential.with_acls(self.acls_at(prefix));
        let _writing = self.count_write("create", prefix);
        let (_, seq) = self
            .client
            .create(prefix, data, &options)
            .await
            .map_err(|e| ZkError::from_op("create", prefix, e))?;
        Ok(format!("{prefix}{seq}"))
    }

    /// Whether `path` exists.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        count("exists");
        let stat = self
            .client
            .check_stat(path)
            .await
            .map_err(|e| ZkError::from_op("exists", path, e))?;
        Ok(stat.is_some())
    }

    /// A persistent recursive watch: every create, change and delete at or under `path`.
    /// Events during a reconnection can be lost (ZOOKEEPER-4698): after a
    /// `Disconnected` → `SyncConnected` pair the caller re-reads what it knows. Do not
    /// wait on it again after a terminal session state (the client panics).
    pub async fn watch_tree(&self, path: &str) -> Result<PersistentWatcher> {
        count("watch");
        self.client
            .watch(path, zk::AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| ZkError::from_op("watch", path, e))
    }

    /// Whether `path` exists, and a watch that fires when that changes.
    pub async fn exists_and_watch(&self, path: &str) -> Result<(bool, OneshotWatcher)> {
        count("watch");
        let (stat, watcher) = self
            .client
            .check_and_watch_stat(path)
            .await
            .map_err(|e| ZkError::from_op("watch", path, e))?;
        Ok((stat.is_some(), watcher))
    }

    /// Applies `ops` atomically, and only while `guard` (the leader's election node)
    /// exists: a deposed leader's write fails with `NotLeader`.
    pub async fn fenced_write(&self, guard: &str, ops: &[Op]) -> Result<()> {
        let mut w = self
            .client
            .new_check_writer(guard, None)
            .map_err(|e| ZkError::from_op("multi", guard, e))?;
        for op in ops {
            let added = match op {
                Op::Create { path, data } => w.add_create(path, data, &self.open(path)),
                Op::Set {
                    path,
                    data,
                    version,
                } => w.add_set_data(path, data, *version),
                Op::Delete { path, version } => w.add_delete(path, *version),
            };
            added.map_err(|e| ZkError::from_op("multi", op.path(), e))?;
        }
        count("multi");
        let _writing = Writing::new(&self.layout, ops.iter().map(Op::path));
        match w.commit().await {
            Ok(_) => Ok(()),
            Err(zk::CheckWriteError::CheckFailed { .. }) => Err(ZkError::NotLeader {
                guard: guard.to_owned(),
            }),
            Err(zk::CheckWriteError::OperationFailed { index, source }) => {
                let path = ops.get(index).map_or("?", Op::path).to_owned();
                match source {
                    zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode => {
                        Err(ZkError::Conflict {
                            detail: format!("{path}: {source}"),
                        })
                    }
                    other => Err(ZkError::from_op("multi", &path, other)),
                }
            }
            Err(zk::CheckWriteError::RequestFailed { source }) => {
                Err(ZkError::from_op("multi", guard, source))
            }
        }
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        let _writing = self.count_write("delete", path);
        match self.client.delete(path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(ZkError::from_op("delete", path, e)),
        }
    }
}
