//! Who a client expects at the other end (issue "Security"): a dialled server's
//! certificate must verify against the CA, name the address dialled, *and* name the
//! identity the client meant to reach — an orchestrator's certificate cannot answer for a
//! monitor, nor one agent's for another host's.

use std::fmt;

use crate::authz::Identity;
use crate::ids::{ClusterName, HostName};

/// The identity a client requires of the server it dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Any altair identity (a ping, a test probe).
    Any,
    Orchestrator,
    /// A monitor; with an id, that monitor (its certificate names its own id).
    Monitor(Option<String>),
    /// The agent of one of these hosts (the hosts registered at the dialled address:
    /// one in a real fleet). Empty: nobody (no host is known to be there).
    Agent(Vec<(ClusterName, HostName)>),
}

impl Expected {
    /// Whether a server whose certificate names `id` is the one meant.
    pub fn admits(&self, id: &Identity) -> bool {
        match (self, id) {
            (Self::Any, _) => true,
            (Self::Orchestrator, Identity::Orchestrator(_)) => true,
            (Self::Monitor(None), Identity::Monitor(_)) => true,
            (Self::Monitor(Some(want)), Identity::Monitor(id)) => want == id,
            (Self::Agent(hosts), Identity::Agent { cluster, host }) => {
                hosts.iter().any(|(c, h)| c == cluster && h == host)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any altair identity"),
            Self::Orchestrator => f.write_str("an orchestrator"),
            Self::Monitor(None) => f.write_str("a monitor"),
            Self::Monitor(Some(id)) => write!(f, "monitor/{id}"),
            Self::Agent(hosts) if hosts.is_empty() => {
                f.write_str("the agent of a host registered at this address (none is)")
            }
            Self::Agent(hosts) => {
                let names: Vec<String> = hosts
                    .iter()
                    .map(|(c, h)| format!("agent/{c}/{h}"))
                    .collect();
                f.write_str(&names.join(" or "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::OperatorRole;

    fn agent(c: &str, h: &str) -> Identity {
        Identity::Agent {
            cluster: ClusterName::new(c.to_owned()).expect("valid"),
            host: HostName::new(h.to_owned()).expect("valid"),
        }
    }

    fn at(c: &str, h: &str) -> (ClusterName, HostName) {
        match agent(c, h) {
            Identity::Agent { cluster, host } => (cluster, host),
            _ => unreachable!(),
        }
    }

    #[test]
    fn an_agent_dialled_for_one_host_must_be_that_hosts_agent() {
        let want = Expected::Agent(vec![at("c1", "db2")]);
        assert!(want.admits(&agent("c1", "db2")));
        assert!(!want.admits(&agent("c1", "db3")), "another host's agent");
        assert!(
            !want.admits(&agent("c2", "db2")),
            "the same host name in another cluster"
        );
        assert!(!want.admits(&Identity::Orchestrator("o1".into())));
        assert!(!want.admits(&Identity::Monitor("m1".into())));
        assert!(!want.admits(&Identity::Operator {
            name: "alice".into(),
            role: OperatorRole::Operator
        }));
        assert_eq!(want.to_string(), "agent/c1/db2");
    }

    #[test]
    fn an_address_no_host_is_registered_at_admits_nobody() {
        let want = Expected::Agent(vec![]);
        assert!(!want.admits(&agent("c9", "x")));
        assert!(!want.admits(&Identity::Monitor("m1".into())));
    }

    #[test]
    fn a_monitor_dialled_by_id_must_be_that_monitor() {
        let want = Expected::Monitor(Some("m1".into()));
        assert!(want.admits(&Identity::Monitor("m1".into())));
        assert!(!want.admits(&Identity::Monitor("m2".into())));
        assert_eq!(want.to_string(), "monitor/m1");
    }

    #[test]
    fn an_address_two_hosts_claim_admits_either() {
        let want = Expected::Agent(vec![at("c1", "db2"), at("c1", "db7")]);
        assert!(want.admits(&agent("c1", "db2")));
        assert!(want.admits(&agent("c1", "db7")));
        assert!(!want.admits(&agent("c1", "db3")));
        assert_eq!(want.to_string(), "agent/c1/db2 or agent/c1/db7");
    }

    #[test]
    fn roles_admit_only_their_role() {
        let orch = Identity::Orchestrator("o1".into());
        let mon = Identity::Monitor("m1".into());
        assert!(Expected::Orchestrator.admits(&orch));
        assert!(!Expected::Orchestrator.admits(&mon));
        assert!(Expected::Monitor(None).admits(&mon));
        assert!(!Expected::Monitor(None).admits(&orch));
        assert!(!Expected::Monitor(None).admits(&agent("c1", "db1")));
        assert!(Expected::Any.admits(&agent("c1", "db1")));
    }
}
