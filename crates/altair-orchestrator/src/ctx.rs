//! What the leader acts with: its ZooKeeper session and leadership guard, its config,
//! secrets and DNS client.

use std::sync::Arc;

use altair_core::config::OrchestratorConfig;
use altair_dns::DnsClient;
use altair_zk::{Op, Zk, ZkError};

use crate::OrchestratorSecrets;

#[derive(Clone)]
pub struct Ctx {
    pub zk: Zk,
    /// This leader's election node: every write is checked against it.
    pub guard: String,
    pub config: Arc<OrchestratorConfig>,
    pub secrets: Arc<OrchestratorSecrets>,
    pub dns: DnsClient,
    /// Admission control: what the workers saw, the holds, the datacenter budgets.
    pub admission: Arc<crate::admission::Admission>,
}

impl Ctx {
    /// A leadership-checked atomic write.
    pub async fn write(&self, ops: &[Op]) -> Result<(), ZkError> {
        self.zk.fenced_write(&self.guard, ops).await
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
