//! `altairctl forget CLUSTER HOST`: a decommissioned host leaves its cluster. Its
//! registration and health go, and the cluster state stops waiting for it, in one
//! leadership-checked write that also compare-and-sets the state; monitors stop
//! tracking it at their next reconciliation. Refused for the primary, during a
//! failover, and while the host's agent still answers (it would register again).

use std::time::Duration;

use altair_core::HostName;
use altair_core::registry::to_json;
use altair_proto::v1::StatusRequest;
use altair_zk::Op;
use tonic::Status;

use crate::agents::agent;
use crate::ctx::Ctx;
use crate::view::ClusterView;

/// How long the host's agent gets to show it is still running.
const AGENT_CHECK: Duration = Duration::from_secs(1);

pub async fn forget(
    ctx: &Ctx,
    view: &ClusterView,
    host: &HostName,
    by: &str,
) -> Result<(), Status> {
    let c = &view.name;
    let name = host.as_str();
    let Some(record) = view.hosts.get(name) else {
        return Err(Status::not_found(format!(
            "host {name} is not registered in cluster {c} (hosts: {})",
            view.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    if let Some(j) = &view.journal {
        return Err(Status::aborted(format!(
            "failover {} is in progress on {c}; retry after it",
            j.id
        )));
    }
    let state = view.state.clone();
    if let Some((s, _)) = &state
        && s.primary.as_deref() == Some(name)
    {
        return Err(Status::failed_precondition(format!(
            "{name} is the primary of {c}: switch over first (`altairctl switchover {c}`)"
        )));
    }
    let answers = match agent(&record.agent, AGENT_CHECK).await {
        Ok(mut a) => a.status(StatusRequest {}).await.is_ok(),
        Err(_) => false,
    };
    if answers {
        return Err(Status::failed_precondition(format!(
            "the agent of {name} ({}) still answers: stop it first, or it registers the host again",
            record.agent
        )));
    }
    let l = ctx.zk.layout();
    let mut ops = vec![Op::Delete {
        path: l.host(c, host),
        version: None,
    }];
    if view.health.contains_key(name) {
        ops.push(Op::Delete {
            path: l.host_health(c, host),
            version: None,
        });
    }
    if let Some((mut s, version)) = state {
        s.rejoined(name);
        ops.push(Op::Set {
            path: l.cluster_state(c),
            data: to_json(&s),
            version: Some(version),
        });
    }
    ctx.write(&ops).await.map_err(|e| {
        Status::unavailable(format!(
            "forgetting {name} failed (retry; nothing changed if the cluster changed meanwhile): {e}"
        ))
    })?;
    tracing::warn!(cluster = %c, host = %name, by, "host forgotten by an operator");
    Ok(())
}
