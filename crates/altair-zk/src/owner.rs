//! Who owns the znodes a session creates, and what ACL each node should carry.
//!
//! With one shared credential, altair's digest id may do everything and anyone else only
//! read. With an identity per role (`zookeeper.orchestrator_id` / `monitor_id`), the
//! monitors' zone (`ZkLayout::monitors_write`: membership, enrolment requests, host and
//! health records) is writable by both roles and everything else by orchestrators only:
//! a stolen monitor credential cannot plant a journal or move a cluster's state.

use std::sync::Arc;

use altair_core::config::ZkConfig;
use altair_core::zkpath::ZkLayout;
use zookeeper_client as zk;

/// ZooKeeper's digest id of `user:password`: `user:base64(sha1(user:password))`, as
/// its `DigestAuthenticationProvider.generateDigest` computes it.
pub fn digest_id(auth: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let user = auth.split_once(':').map_or(auth, |(u, _)| u);
    let hash = sha1::Sha1::digest(auth.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The role a session's credential holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One credential for monitors and orchestrators (no `*_id` configured).
    Shared,
    Orchestrator,
    Monitor,
}

/// The role `auth` holds under `cfg`'s role ids (`None`: no credential), or why it
/// holds none: a service checks this at start, so a misconfigured credential stops it
/// with a clear error instead of failing every write.
pub fn role_of(cfg: &ZkConfig, auth: Option<&str>) -> Result<Option<Role>, String> {
    Owner::of(auth, cfg).map(|o| o.role())
}

/// With role ids configured, whether `auth` is `want`'s credential; why not, for
/// `zookeeper.auth_file`, when it is not (the user named, never the digest).
pub fn check_role(cfg: &ZkConfig, auth: Option<&str>, want: Role) -> Result<(), String> {
    if cfg.role_ids().is_none() {
        return Ok(());
    }
    let (name, key) = match want {
        Role::Monitor => ("monitors'", "zookeeper.monitor_id"),
        _ => ("orchestrators'", "zookeeper.orchestrator_id"),
    };
    match role_of(cfg, auth)? {
        Some(role) if role == want => Ok(()),
        Some(_) => Err(format!(
            "holds the other role's credential: this service needs the {name} ({key})"
        )),
        None => Err(format!(
            "missing: with {key} set, give this service the {name} credential"
        )),
    }
}

/// The ACL of the nodes a session creates.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// No credential configured: world-writable (warned about at every start).
    Nobody,
    /// A reader (an agent): it creates nothing; were it to try, `creator_all` without a
    /// credential is refused by ZooKeeper.
    Reader,
    /// Digest auth. Ids are named, not `auth`: `auth` would also grant every other id
    /// the session holds (a TLS client certificate's x509 id, which agents may share).
    Digest {
        role: Role,
        /// Orchestrators all rights, anyone else read (`altairctl status` and agents
        /// read without credentials; no altair record holds a secret).
        orchestrators: Arc<[zk::Acl]>,
        /// The monitors' zone: monitors all rights but ADMIN too (the same as
        /// `orchestrators` with a shared credential).
        monitors: Arc<[zk::Acl]>,
    },
}

fn all(id: &str) -> zk::Acl {
    zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", id))
}

/// The monitors' rights in their zone: everything but ADMIN, so a stolen monitor
/// credential cannot lock the orchestrators out of a node or keep it after a rotation.
fn monitor_rights(id: &str) -> zk::Acl {
    zk::Acl::new(
        zk::Permission::READ
            | zk::Permission::WRITE
            | zk::Permission::CREATE
            | zk::Permission::DELETE,
        zk::AuthId::new("digest", id),
    )
}

fn world_read() -> zk::Acl {
    zk::Acl::new_const(zk::Permission::READ, "world", "anyone")
}

impl Owner {
    /// The owner for `auth` (`user:password`) under `cfg`'s role ids; an error naming
    /// the keys when the credential is neither role's (only its user is named: the
    /// digest is a hash of the password).
    pub(crate) fn of(auth: Option<&str>, cfg: &ZkConfig) -> Result<Self, String> {
        let Some(auth) = auth else {
            return Ok(Self::Nobody);
        };
        let own = digest_id(auth);
        let Some((orchestrator, monitor)) = cfg.role_ids() else {
            let acls: Arc<[zk::Acl]> = Arc::from(vec![all(&own), world_read()]);
            return Ok(Self::Digest {
                role: Role::Shared,
                orchestrators: acls.clone(),
                monitors: acls,
            });
        };
        let role = if own == orchestrator {
            Role::Orchestrator
        } else if own == monitor {
            Role::Monitor
        } else {
            let user = own.split_once(':').map_or("", |(u, _)| u);
            return Err(format!(
                "the credential of zookeeper.auth_file (user {user:?}) is neither zookeeper.orchestrator_id nor zookeeper.monitor_id: give this service its role's credential"
            ));
        };
        Ok(Self::Digest {
            role,
            orchestrators: Arc::from(vec![all(orchestrator), world_read()]),
            monitors: Arc::from(vec![
                all(orchestrator),
                monitor_rights(monitor),
                world_read(),
            ]),
        })
    }

    pub(crate) fn role(&self) -> Option<Role> {
        match self {
            Self::Digest { role, .. } => Some(*role),
            Self::Nobody | Self::Reader => None,
        }
    }

    /// The ACL a node at `path` is created with (and `restrict_acls` gives it).
    pub(crate) fn acls_at<'a>(&'a self, layout: &ZkLayout, path: &str) -> zk::Acls<'a> {
        match self {
            Self::Nobody => zk::Acls::anyone_all(),
            Self::Reader => zk::Acls::creator_all(),
            Self::Digest {
                orchestrators,
                monitors,
                ..
            } => {
                if layout.monitors_write(path) {
                    zk::Acls::new(monitors)
                } else {
                    zk::Acls::new(orchestrators)
                }
            }
        }
    }

    /// Whether a node at `path` carrying `actual` needs `acls_at(path)` instead: someone
    /// else may change it (an older release's `world` or `auth` ACL, an id rotated out,
    /// a monitor where only orchestrators write) or a role lacks its rights.
    pub(crate) fn needs_reset(&self, layout: &ZkLayout, path: &str, actual: &[zk::Acl]) -> bool {
        let expected = self.acls_at(layout, path);
        actual.len() != expected.len()
            || !expected.iter().all(|e| actual.contains(e))
            || !actual.iter().all(|a| expected.contains(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "altair:secret";
    const M: &str = "monitor:other-secret";

    fn split() -> ZkConfig {
        ZkConfig {
            orchestrator_id: Some(digest_id(O)),
            monitor_id: Some(digest_id(M)),
            ..ZkConfig::new(vec!["127.0.0.1:2181".into()])
        }
    }

    #[test]
    fn digest_ids_are_zookeepers() {
        // ZooKeeper's own `DigestAuthenticationProvider super:password`.
        assert_eq!(
            digest_id("super:password"),
            "super:DyNYQEQvajljsxlhf5uS4PJ9R28="
        );
        // Only the first ':' splits: a password may hold more.
        assert!(digest_id("altair:a:b").starts_with("altair:"));
    }

    #[test]
    fn with_a_shared_credential_only_its_id_may_write() {
        let plain = ZkConfig::new(vec!["127.0.0.1:2181".into()]);
        let owner = Owner::of(Some(O), &plain).expect("owner");
        assert_eq!(owner.role(), Some(Role::Shared));
        let l = ZkLayout::new("/altair");
        let mine = [all(&digest_id(O)), world_read()];
        for path in ["/altair/clusters/c1/state", "/altair/clusters/c1/hosts/db1"] {
            assert!(!owner.needs_reset(&l, path, &mine), "{path}");
            let other = zk::Acl::new(zk::Permission::WRITE, zk::AuthId::new("x509", "CN=a"));
            assert!(owner.needs_reset(&l, path, &[mine[0].clone(), other]));
            let world_all = zk::Acl::new_const(zk::Permission::ALL, "world", "anyone");
            assert!(owner.needs_reset(&l, path, &[world_all]));
        }
    }

    #[test]
    fn with_role_ids_monitors_write_their_zone_only() {
        let cfg = split();
        let l = ZkLayout::new("/altair");
        let orchestrator = Owner::of(Some(O), &cfg).expect("orchestrator");
        let monitor = Owner::of(Some(M), &cfg).expect("monitor");
        assert_eq!(orchestrator.role(), Some(Role::Orchestrator));
        assert_eq!(monitor.role(), Some(Role::Monitor));
        let m_all = monitor_rights(&digest_id(M));
        for owner in [&orchestrator, &monitor] {
            let state = owner.acls_at(&l, "/altair/clusters/c1/state");
            assert!(!state.contains(&m_all), "{state:?}");
            assert!(state.contains(&all(&digest_id(O))));
            let host = owner.acls_at(&l, "/altair/clusters/c1/hosts/db1");
            assert!(host.contains(&m_all) && host.contains(&all(&digest_id(O))));
            // Monitors may not change a node's ACL, even in their zone.
            assert!(
                !host
                    .iter()
                    .any(|a| a.id() == digest_id(M) && a.permission().has(zk::Permission::ADMIN))
            );
            // A monitor's write right where only orchestrators write is reset.
            let planted = [all(&digest_id(O)), m_all.clone(), world_read()];
            assert!(owner.needs_reset(&l, "/altair/clusters/c1/failover", &planted));
            assert!(!owner.needs_reset(&l, "/altair/clusters/c1/health/db1", &planted));
            // A shared credential's node in the monitors' zone gains the monitors' id.
            let shared = [all(&digest_id(O)), world_read()];
            assert!(owner.needs_reset(&l, "/altair/monitors", &shared));
        }
        assert_eq!(check_role(&cfg, Some(M), Role::Monitor), Ok(()));
        assert!(check_role(&cfg, Some(O), Role::Monitor).is_err_and(|e| e.contains("other role")));
        assert!(check_role(&cfg, None, Role::Orchestrator).is_err_and(|e| e.contains("missing")));
        assert_eq!(
            check_role(
                &ZkConfig::new(vec!["z:2181".into()]),
                Some(M),
                Role::Orchestrator
            ),
            Ok(())
        );
        let stranger = Owner::of(Some("someone:else"), &cfg).expect_err("neither role");
        assert!(stranger.contains("\"someone\"") && !stranger.contains(&digest_id("someone:else")));
        assert!(
            matches!(Owner::of(None, &cfg), Ok(Owner::Nobody)),
            "no credential"
        );
    }
}
