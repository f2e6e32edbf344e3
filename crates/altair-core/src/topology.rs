//! Inferring roles from what each host reports (before the orchestrator records a
//! topology): a host that replicates from another is a replica; the one host that
//! replicates from no one is the primary.

use crate::ids::{HostName, Role};

/// One host as its latest snapshot describes it.
#[derive(Debug, Clone)]
pub struct HostView {
    pub name: HostName,
    /// `host:port` of its mysqld.
    pub mysql: String,
    /// `host:port` it replicates from, when it is a replica.
    pub source: Option<String>,
    pub reachable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferredRole {
    pub role: Option<Role>,
    /// The host it replicates from, when that is a host of the cluster.
    pub replicates_from: Option<HostName>,
}

/// Roles of `hosts`, and the primary when exactly one reachable host replicates from no one.
pub fn infer_roles(hosts: &[HostView]) -> (Option<HostName>, Vec<InferredRole>) {
    let roots: Vec<&HostView> = hosts
        .iter()
        .filter(|h| h.reachable && h.source.is_none())
        .collect();
    let primary = match roots.as_slice() {
        [only] => Some(only.name.clone()),
        _ => None,
    };
    let roles = hosts
        .iter()
        .map(|h| match &h.source {
            Some(src) => InferredRole {
                role: Some(Role::Replica),
                replicates_from: hosts
                    .iter()
                    .find(|o| o.mysql == *src)
                    .map(|o| o.name.clone()),
            },
            None if h.reachable && primary.as_ref() == Some(&h.name) => InferredRole {
                role: Some(Role::Primary),
                replicates_from: None,
            },
            None => InferredRole {
                role: None,
                replicates_from: None,
            },
        })
        .collect();
    (primary, roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, mysql: &str, source: Option<&str>, reachable: bool) -> HostView {
        HostView {
            name: HostName::new(name).expect("valid"),
            mysql: mysql.into(),
            source: source.map(str::to_owned),
            reachable,
        }
    }

    #[test]
    fn one_root_is_the_primary() {
        let hosts = [
            h("db1", "10.0.0.1:3306", None, true),
            h("db2", "10.0.0.2:3306", Some("10.0.0.1:3306"), true),
        ];
        let (primary, roles) = infer_roles(&hosts);
        assert_eq!(primary.map(String::from).as_deref(), Some("db1"));
        assert_eq!(roles[1].role, Some(Role::Replica));
        assert_eq!(
            roles[1].replicates_from.as_ref().map(HostName::as_str),
            Some("db1")
        );
    }

    #[test]
    fn no_primary_when_ambiguous_or_down() {
        let two = [h("a", "1:1", None, true), h("b", "2:2", None, true)];
        assert_eq!(infer_roles(&two).0, None);
        let down = [h("a", "1:1", None, false), h("b", "2:2", Some("1:1"), true)];
        assert_eq!(infer_roles(&down).0, None);
        assert_eq!(infer_roles(&down).1[0].role, None);
    }
}
