//! Who may call what (issue "Security"): the identities certificates carry and the
//! per-RPC policy every gRPC server applies.
//!
//! An identity is a SAN URI in the caller's client certificate:
//!
//! | URI | identity |
//! |---|---|
//! | `altair://orchestrator/<name>` | an orchestrator |
//! | `altair://monitor/<id>` | a monitor |
//! | `altair://agent/<cluster>/<host>` | the agent of one host |
//! | `altair://operator/<name>?role=viewer` or `?role=operator` | a person or a tool (`viewer` when no role is given) |
//!
//! The policy fails closed: a method not in the table is refused to everyone.

use std::fmt;

use crate::ids::{ClusterName, HostName};

use Identity as I;

/// The scheme every altair identity URI uses.
pub const SCHEME: &str = "altair://";

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperatorRole {
    /// Read status, topology and history.
    Viewer,
    /// Also switchover, forced failover, acknowledge, rejoin, abort, forget.
    Operator,
}

/// The caller a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Orchestrator(String),
    Monitor(String),
    Agent {
        cluster: ClusterName,
        host: HostName,
    },
    Operator {
        name: String,
        role: OperatorRole,
    },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Orchestrator(n) => write!(f, "orchestrator/{n}"),
            Self::Monitor(n) => write!(f, "monitor/{n}"),
            Self::Agent { cluster, host } => write!(f, "agent/{cluster}/{host}"),
            Self::Operator { name, role } => write!(
                f,
                "operator/{name} ({})",
                match role {
                    OperatorRole::Viewer => "viewer",
                    OperatorRole::Operator => "operator",
                }
            ),
        }
    }
}

impl Identity {
    /// The SAN URI that names this identity in a certificate.
    pub fn uri(&self) -> String {
        match self {
            Self::Orchestrator(n) => format!("{SCHEME}orchestrator/{n}"),
            Self::Monitor(n) => format!("{SCHEME}monitor/{n}"),
            Self::Agent { cluster, host } => format!("{SCHEME}agent/{cluster}/{host}"),
            Self::Operator { name, role } => format!(
                "{SCHEME}operator/{name}?role={}",
                match role {
                    OperatorRole::Viewer => "viewer",
                    OperatorRole::Operator => "operator",
                }
            ),
        }
    }

    /// Parses an identity URI; `Err` says what is wrong with it.
    pub fn parse_uri(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| format!("{uri:?} does not start with {SCHEME}"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let name = |s: &str| -> Result<String, String> {
            let ok = !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if ok {
                Ok(s.to_owned())
            } else {
                Err(format!("{uri:?}: {s:?} is not a name"))
            }
        };
        if query.is_some() && parts.first() != Some(&"operator") {
            return Err(format!("{uri:?}: only operator identities take a role"));
        }
        match parts.as_slice() {
            ["orchestrator", n] => Ok(Self::Orchestrator(name(n)?)),
            ["monitor", n] => Ok(Self::Monitor(name(n)?)),
            ["agent", c, h] => Ok(Self::Agent {
                cluster: ClusterName::new(*c).map_err(|e| format!("{uri:?}: {e}"))?,
                host: HostName::new(*h).map_err(|e| format!("{uri:?}: {e}"))?,
            }),
            ["operator", n] => {
                let role = match query {
                    None | Some("role=viewer") => OperatorRole::Viewer,
                    Some("role=operator") => OperatorRole::Operator,
                    Some(q) => {
                        return Err(format!(
                            "{uri:?}: unknown {q:?} (expected role=viewer or role=operator)"
                        ));
                    }
                };
                Ok(Self::Operator {
                    name: name(n)?,
                    role,
                })
            }
            _ => Err(format!(
                "{uri:?} names no altair identity (orchestrator/<name>, monitor/<id>, agent/<cluster>/<host>, operator/<name>)"
            )),
        }
    }

    /// The one altair identity among a certificate's SAN URIs. A certificate naming two
    /// identities is refused: which one would it be?
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut found = None;
        for uri in uris {
            if !uri.starts_with(SCHEME) {
                continue;
            }
            let id = Self::parse_uri(uri)?;
            if found.is_some() {
                return Err("the certificate names more than one altair identity".into());
            }
            found = Some(id);
        }
        found.ok_or_else(|| format!("the certificate names no {SCHEME} identity (SAN URI)"))
    }
}

/// Which server applies the policy, and the cluster it belongs to (agents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    Agent { cluster: ClusterName },
    Monitor,
    Orchestrator,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// May `caller` call `path` (`/altair.v1.Agent/Promote`) on `server`? Checks that need
/// the request body (a heartbeat names the agent's own host) are the handler's.
pub fn authorize(server: &Server, path: &str, caller: &Identity) -> Result<(), Denied> {
    let deny = || {
        Denied(format!(
            "{caller} may not call {path} on this {}",
            match server {
                Server::Agent { .. } => "agent",
                Server::Monitor => "monitor",
                Server::Orchestrator => "orchestrator",
            }
        ))
    };
    // The standard health service answers every authenticated caller.
    if path.starts_with("/grpc.health.v1.Health/") {
        return Ok(());
    }
    let Some((service, method)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(_, m)| !m.is_empty() && !m.contains('/'))
    else {
        return Err(deny());
    };
    let ok = match (server, service) {
        (Server::Agent { cluster }, "altair.v1.Agent") => {
            let same_cluster_agent = matches!(caller, I::Agent { cluster: c, .. } if c == cluster);
            match method {
                "Status" => {
                    matches!(caller, I::Orchestrator(_) | I::Operator { .. }) || same_cluster_agent
                }
                "CheckReachability" => matches!(caller, I::Orchestrator(_)),
                "Fence" | "SetReadOnly" | "SalvageBinlog" | "ApplySalvage" | "CatchUp"
                | "Promote" | "Repoint" | "Rejoin" => matches!(caller, I::Orchestrator(_)),
                _ => false,
            }
        }
        (Server::Monitor, "altair.v1.Monitor") => match method {
            "Heartbeat" | "Ping" | "Liveness" | "Register" => matches!(caller, I::Agent { .. }),
            "ClusterHealth" => matches!(
                caller,
                I::Orchestrator(_) | I::Monitor(_) | I::Operator { .. }
            ),
            _ => false,
        },
        (Server::Orchestrator, "altair.v1.Orchestrator") => match method {
            "ListClusters" | "GetTopology" | "History" => {
                matches!(caller, I::Orchestrator(_) | I::Operator { .. })
            }
            "Switchover" | "Failover" | "Acknowledge" | "Rejoin" | "Abort" | "Forget" | "Pause"
            | "Resume" | "Release" => {
                matches!(
                    caller,
                    I::Operator {
                        role: OperatorRole::Operator,
                        ..
                    }
                )
            }
            _ => false,
        },
        _ => false,
    };
    if ok { Ok(()) } else { Err(deny()) }
}

/// A heartbeat (or a registration) must come from the agent of the host it reports.
pub fn heartbeat_from(caller: &Identity, cluster: &str, host: &str) -> Result<(), Denied> {
    match caller {
        I::Agent {
            cluster: c,
            host: h,
        } if c.as_str() == cluster && h.as_str() == host => Ok(()),
        _ => Err(Denied(format!(
            "{caller} may not send heartbeats for {cluster}/{host}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(c: &str, h: &str) -> Identity {
        Identity::Agent {
            cluster: ClusterName::new(c).expect("cluster"),
            host: HostName::new(h).expect("host"),
        }
    }

    fn op(role: OperatorRole) -> Identity {
        Identity::Operator {
            name: "alice".into(),
            role,
        }
    }

    #[test]
    fn uris_round_trip_and_bad_ones_say_why() {
        for id in [
            Identity::Orchestrator("o1".into()),
            Identity::Monitor("m1".into()),
            agent("c1", "db1"),
            op(OperatorRole::Viewer),
            op(OperatorRole::Operator),
        ] {
            assert_eq!(Identity::parse_uri(&id.uri()), Ok(id.clone()));
        }
        assert_eq!(
            Identity::parse_uri("altair://operator/bob"),
            Ok(Identity::Operator {
                name: "bob".into(),
                role: OperatorRole::Viewer
            })
        );
        for bad in [
            "https://orchestrator/o1",
            "altair://orchestrator",
            "altair://agent/c1",
            "altair://agent/C1/db1",
            "altair://agent/c1/db1/x",
            "altair://operator/bob?role=root",
            "altair://monitor/m1?role=operator",
            "altair://king/x",
            "altair://orchestrator/",
        ] {
            assert!(Identity::parse_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_certificate_names_exactly_one_identity() {
        assert_eq!(
            Identity::from_uris(["spiffe://x/y", "altair://monitor/m1"]),
            Ok(Identity::Monitor("m1".into()))
        );
        assert!(Identity::from_uris(["spiffe://x/y"]).is_err());
        assert!(Identity::from_uris(["altair://monitor/m1", "altair://orchestrator/o1"]).is_err());
    }

    #[test]
    fn agent_actions_only_from_orchestrators() {
        let s = Server::Agent {
            cluster: ClusterName::new("c1").expect("c"),
        };
        let orch = Identity::Orchestrator("o1".into());
        for m in [
            "Fence",
            "SetReadOnly",
            "SalvageBinlog",
            "ApplySalvage",
            "CatchUp",
            "Promote",
            "Repoint",
            "Rejoin",
        ] {
            let path = format!("/altair.v1.Agent/{m}");
            assert!(authorize(&s, &path, &orch).is_ok(), "{m}");
            for other in [
                agent("c1", "db2"),
                Identity::Monitor("m1".into()),
                op(OperatorRole::Operator),
            ] {
                assert!(authorize(&s, &path, &other).is_err(), "{m} by {other}");
            }
        }
        let status = "/altair.v1.Agent/Status";
        let reach = "/altair.v1.Agent/CheckReachability";
        assert!(authorize(&s, status, &agent("c1", "db2")).is_ok());
        assert!(authorize(&s, status, &op(OperatorRole::Viewer)).is_ok());
        assert!(authorize(&s, status, &agent("c2", "db2")).is_err());
        assert!(authorize(&s, reach, &orch).is_ok());
        assert!(authorize(&s, reach, &agent("c1", "db2")).is_err());
        assert!(authorize(&s, reach, &agent("c2", "db1")).is_err());
        assert!(authorize(&s, reach, &op(OperatorRole::Operator)).is_err());
    }

    #[test]
    fn unknown_methods_and_services_are_refused_to_everyone() {
        let orch = Identity::Orchestrator("o1".into());
        let s = Server::Agent {
            cluster: ClusterName::new("c1").expect("c"),
        };
        for path in [
            "/altair.v1.Agent/Explode",
            "/altair.v1.Monitor/Heartbeat",
            "/altair.v1.Agent/",
            "/altair.v1.Agent/Status/x",
            "nonsense",
            "",
        ] {
            assert!(authorize(&s, path, &orch).is_err(), "{path}");
        }
        assert!(authorize(&s, "/grpc.health.v1.Health/Check", &agent("c9", "x")).is_ok());
    }

    #[test]
    fn admin_mutations_need_the_operator_role() {
        let s = Server::Orchestrator;
        for m in [
            "Switchover",
            "Failover",
            "Acknowledge",
            "Rejoin",
            "Abort",
            "Forget",
            "Pause",
            "Resume",
            "Release",
        ] {
            let path = format!("/altair.v1.Orchestrator/{m}");
            assert!(authorize(&s, &path, &op(OperatorRole::Operator)).is_ok());
            assert!(authorize(&s, &path, &op(OperatorRole::Viewer)).is_err());
            assert!(authorize(&s, &path, &agent("c1", "db1")).is_err());
            assert!(authorize(&s, &path, &Identity::Orchestrator("o2".into())).is_err());
        }
        for m in ["ListClusters", "GetTopology", "History"] {
            let path = format!("/altair.v1.Orchestrator/{m}");
            assert!(authorize(&s, &path, &op(OperatorRole::Viewer)).is_ok());
            assert!(authorize(&s, &path, &agent("c1", "db1")).is_err());
        }
    }

    #[test]
    fn heartbeats_only_from_agents_and_only_for_their_own_host() {
        let s = Server::Monitor;
        for hb in [
            "/altair.v1.Monitor/Heartbeat",
            "/altair.v1.Monitor/Ping",
            "/altair.v1.Monitor/Liveness",
            "/altair.v1.Monitor/Register",
        ] {
            assert!(authorize(&s, hb, &agent("c1", "db1")).is_ok());
            assert!(authorize(&s, hb, &Identity::Orchestrator("o1".into())).is_err());
            assert!(authorize(&s, hb, &op(OperatorRole::Operator)).is_err());
        }
        assert!(heartbeat_from(&agent("c1", "db1"), "c1", "db1").is_ok());
        assert!(heartbeat_from(&agent("c1", "db2"), "c1", "db1").is_err());
        assert!(heartbeat_from(&agent("c2", "db1"), "c1", "db1").is_err());
        assert!(heartbeat_from(&op(OperatorRole::Operator), "c1", "db1").is_err());
    }
}
