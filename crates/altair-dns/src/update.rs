//! RFC 2136 updates and direct queries against one authoritative server.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use std::sync::Arc;

use hickory_net::DnsHandle;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::FirstAnswer;
use hickory_proto::op::{DnsRequest, DnsResponse, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordSet, RecordType};

use crate::batch::{self, Swap};
use crate::{DnsError, Result, TsigKey};

/// Talks to the authoritative server of one zone. Clones share one queue of swaps
/// (`compare_and_swap_a`), sent as group commits.
#[derive(Debug, Clone)]
pub struct DnsClient {
    server: SocketAddr,
    zone: Name,
    key: Option<TsigKey>,
    timeout: Duration,
    queue: Arc<batch::Queue>,
}

impl DnsClient {
    /// `zone` fully qualified (`db.example.com.`). Without a key, updates go unsigned
    /// (a correctly configured server refuses them).
    pub fn new(server: SocketAddr, zone: &str, key: Option<TsigKey>) -> Result<Self> {
        Ok(Self {
            server,
            zone: parse_name(zone)?,
            key,
            timeout: Duration::from_secs(2),
            queue: Arc::default(),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The fully qualified name of `label` (e.g. `primary.c1`) in this zone; an already
    /// fully qualified name inside the zone is returned as is.
    pub fn fqdn(&self, label: &str) -> Result<Name> {
        let name = if label.ends_with('.') {
            parse_name(label)?
        } else {
            parse_name(label)?
                .append_domain(&self.zone)
                .map_err(|e| DnsError::BadName {
                    name: label.to_owned(),
                    reason: e.to_string(),
                })?
        };
        if !self.zone.zone_of(&name) {
            return Err(DnsError::OutsideZone {
                name: name.to_string(),
                zone: self.zone.to_string(),
            });
        }
        Ok(name)
    }

    /// Replaces the A records of `label` with `new`, only if they are exactly `current`
    /// now (an RFC 2136 prerequisite): the server refuses the update when someone else
    /// moved the record (`DnsError::is_prerequisite_failure`). Swaps asked for while
    /// another update is in flight go to the server together, in one message
    /// (`batch`), each still with its own prerequisite and its own outcome.
    pub async fn compare_and_swap_a(
        &self,
        label: &str,
        current: &[Ipv4Addr],
        new: &[Ipv4Addr],
        ttl: u32,
    ) -> Result<()> {
        let name = self.fqdn(label)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let swap = Swap {
            name: name.clone(),
            current: current.to_vec(),
            new: new.to_vec(),
            ttl,
            reply,
        };
        // The sender's copy has a queue of its own (never used): no cycle keeps it alive.
        let sender = Self {
            queue: Arc::default(),
            ..self.clone()
        };
        let queued = self.queue.push(swap, move |swaps| {
            let sender = sender.clone();
            async move { sender.send_swaps(swaps).await }
        });
        if let Err(swap) = queued {
            // The sender is gone (its runtime shut down): send this one alone.
            return self.swap_one(&swap).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(DnsError::Unreachable {
                server: self.server,
                operation: "update",
                name: name.to_string(),
                reason: "the update's sender stopped before it answered".to_owned(),
            })
        })
    }

    /// Sends one message's swaps and answers each of them.
    async fn send_swaps(&self, swaps: Vec<Swap>) {
        if swaps.len() == 1 {
            for s in swaps {
                let r = self.swap_one(&s).await;
                let _ = s.reply.send(r);
            }
            return;
        }
        let sets = swaps
            .iter()
            .map(|s| {
                (
                    a_set(&s.name, &s.current, s.ttl),
                    a_set(&s.name, &s.new, s.ttl),
                )
            })
            .collect();
        let Some(message) = batch::message(&self.zone, sets) else {
            return;
        };
        let first = swaps[0].name.clone();
        let together = async {
            let client = self.connect("update", &first).await?;
            let response = client.send(DnsRequest::from(message)).first_answer().await;
            self.check("update", &first, response)
        }
        .await;
        match together {
            Ok(()) => {
                for s in swaps {
                    let _ = s.reply.send(Ok(()));
                }
            }
            // One of them no longer holds: each alone, so only the stale one fails.
            Err(e) if e.is_prerequisite_failure() => {
                for s in swaps {
                    let r = self.swap_one(&s).await;
                    let _ = s.reply.send(r);
                }
            }
            Err(e) => {
                for s in swaps {
                    let _ = s.reply.send(Err(batch::each_error(&e, &s.name)));
                }
            }
        }
    }

    /// One swap in a message of its own.
    async fn swap_one(&self, s: &Swap) -> Result<()> {
        let current = a_set(&s.name, &s.current, s.ttl);
        let new = a_set(&s.name, &s.new, s.ttl);
        let mut client = self.connect("update", &s.name).await?;
        let response = client
            .compare_and_swap(current, new, self.zone.clone())
            .await;
        self.check("update", &s.name, response)
    }

    /// Creates the A records of `label`; the server refuses when the name already has A records.
    pub async fn create_a(&self, label: &str, ips: &[Ipv4Addr], ttl: u32) -> Result<()> {
        let name = self.fqdn(label)?;
        let mut client = self.connect("create", &name).await?;
        let response = client
            .create(a_set(&name, ips, ttl), self.zone.clone())
            .await;
        self.check("create", &name, response)
    }

    /// The A records the server answers for `label`, asked directly (no cache).
    pub async fn query_a(&self, label: &str) -> Result<Vec<Ipv4Addr>> {
        let name = self.fqdn(label)?;
        lookup_a(self.server, &name.to_string(), self.timeout).await
    }

    async fn connect(
        &self,
        operation: &'static str,
        name: &Name,
    ) -> Result<Client<TokioRuntimeProvider>> {
        let signer = match &self.key {
            Some(key) => Some(key.signer()?),
            None => None,
        };
        connect(self.server, signer, self.timeout)
            .await
            .map_err(|reason| DnsError::Unreachable {
                server: self.server,
                operation,
                name: name.to_string(),
                reason,
            })
    }

    fn check(
        &self,
        operation: &'static str,
        name: &Name,
        response: std::result::Result<DnsResponse, hickory_net::NetError>,
    ) -> Result<()> {
        let response = response.map_err(|e| DnsError::Unreachable {
            server: self.server,
            operation,
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        match response.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            code => Err(DnsError::Rejected {
                server: self.server,
                operation,
                name: name.to_string(),
                code,
            }),
        }
    }
}

/// Asks `server` directly for the A records of the fully qualified `name`.
/// An empty answer (NXDOMAIN or no A records) is `Ok(vec![])`.
pub async fn lookup_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>> {
    let fqdn = parse_name(name)?;
    let unreachable = |reason: String| DnsError::Unreachable {
        server,
        operation: "query",
        name: fqdn.to_string(),
        reason,
    };
    let mut client = connect(server, None, timeout).await.map_err(unreachable)?;
    let response = client
        .query(fqdn.clone(), DNSClass::IN, RecordType::A)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    match response.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        code => {
            return Err(DnsError::Rejected {
                server,
                operation: "query",
                name: fqdn.to_string(),
                code,
            });
        }
    }
    let mut ips: Vec<Ipv4Addr> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(ip)) if r.name == fqdn => Some(*ip),
            _ => None,
        })
        .collect();
    ips.sort_unstable();
    Ok(ips)
}

async fn connect(
    server: SocketAddr,
    signer: Option<hickory_proto::rr::TSigner>,
    timeout: Duration,
) -> std::result::Result<Client<TokioRuntimeProvider>, String> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(timeout))
        .with_signer(signer)
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    Ok(client)
}

fn parse_name(name: &str) -> Result<Name> {
    let mut parsed = Name::from_ascii(name).map_err(|e| DnsError::BadName {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    if name.ends_with('.') {
        parsed.set_fqdn(true);
    }
    Ok(parsed)
}

fn a_set(name: &Name, ips: &[Ipv4Addr], ttl: u32) -> RecordSet {
    let mut set = RecordSet::with_ttl(name.clone(), RecordType::A, ttl);
    for ip in ips {
        set.insert(Record::from_rdata(name.clone(), ttl, RData::A(A(*ip))), 0);
    }
    set
}
