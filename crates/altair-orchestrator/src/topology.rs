//! `GetTopology`: the cluster as ZooKeeper records it joined with what every agent says
//! right now (asked in parallel, each bounded in time) and what DNS answers.

use std::time::Duration;

use altair_proto::v1::*;

use crate::agents::agent;
use crate::view::ClusterView;

const ASK_TIMEOUT: Duration = Duration::from_millis(800);

pub async fn build(view: &ClusterView, dns: &altair_dns::DnsClient) -> Topology {
    let state = view
        .state
        .as_ref()
        .map(|(s, _)| s.clone())
        .unwrap_or_default();
    let primary = state.primary.clone().unwrap_or_default();
    let asks = view.hosts.iter().map(|(name, h)| async move {
        let status = async {
            let mut a = agent(&h.agent, ASK_TIMEOUT).await.ok()?;
            a.status(StatusRequest {})
                .await
                .ok()
                .map(tonic::Response::into_inner)
        }
        .await;
        (name.clone(), status)
    });
    let statuses = futures_util::future::join_all(asks).await;
    let by_mysql = |e: &Endpoint| {
        let addr = format!("{}:{}", e.host, e.port);
        view.hosts
            .iter()
            .find(|(_, h)| h.mysql == addr)
            .map_or(addr, |(n, _)| n.clone())
    };
    let mut hosts = Vec::new();
    for (name, status) in statuses {
        let h = &view.hosts[&name];
        let snap = status.and_then(|s| s.snapshot);
        let repl = snap.as_ref().and_then(|s| s.replication.clone());
        let problem = match &snap {
            None => "its agent does not answer".to_owned(),
            Some(s) if !s.reachable => format!("mysqld down: {}", s.probe_error),
            Some(_) => repl
                .as_ref()
                .map(|r| {
                    [r.last_io_error.as_str(), r.last_sql_error.as_str()]
                        .into_iter()
                        .filter(|e| !e.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default(),
        };
        hosts.push(TopologyHost {
            registration: Some(HostRegistration {
                id: Some(HostRef {
                    cluster: view.name.to_string(),
                    host: name.clone(),
                }),
                datacenter: h.datacenter.clone(),
                mysql: crate::agents::endpoint(&h.mysql),
                agent_address: h.agent.clone(),
                promotion_rule: altair_proto::v1::PromotionRule::from(h.promotion_rule) as i32,
            }),
            role: if name == primary {
                Role::Primary
            } else {
                Role::Replica
            } as i32,
            health: view
                .health
                .get(&name)
                .map_or(Health::Unspecified, |r| r.health.into()) as i32,
            read_only: snap.as_ref().is_some_and(|s| s.read_only),
            gtid_executed: snap
                .as_ref()
                .map(|s| s.gtid_executed.clone())
                .unwrap_or_default(),
            seconds_behind: repl.as_ref().and_then(|r| r.seconds_behind),
            replicates_from: repl
                .as_ref()
                .and_then(|r| r.source.as_ref())
                .map(by_mysql)
                .unwrap_or_default(),
            needs_rejoin: state.needs_rejoin.contains(&name),
            errant_gtids: state.errant.get(&name).cloned().unwrap_or_default(),
            problem,
        });
    }
    let label = format!("primary.{}", view.name);
    let answer = dns
        .query_a(&label)
        .await
        .map(|a| {
            a.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|e| format!("error: {e}"));
    let paused = crate::service::pause_state(&state);
    Topology {
        cluster: Some(ClusterSummary {
            name: view.name.to_string(),
            primary,
            epoch: state.epoch,
            host_count: view.hosts.len() as u32,
            failover_blocked_reason: state.failover_blocked.unwrap_or_default(),
            failover_in_progress: view
                .journal
                .as_ref()
                .map(|j| j.id.clone())
                .unwrap_or_default(),
            paused,
        }),
        hosts,
        primary_dns_name: dns.fqdn(&label).map(|n| n.to_string()).unwrap_or(label),
        primary_dns_address: answer,
    }
}
