//! RFC 2136 updates and direct queries against one authoritative server.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordSet, RecordType};

use crate::{DnsError, Result, TsigKey};

/// Talks to the authoritative server of one zone.
#[derive(Debug, Clone)]
pub struct DnsClient {
    server: SocketAddr,
    zone: Name,
    key: Option<TsigKey>,
    timeout: Duration,
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
    /// moved the record (`DnsError::is_prerequisite_failure`).
    pub async fn compare_and_swap_a(
        &self,
        label: &str,
        current: &[Ipv4Addr],
        new: &[Ipv4Addr],
        ttl: u32,
    ) -> Result<()> {
        let name = self.fqdn(label)?;
        let current = a_set(&name, current, ttl);
        let new = a_set(&name, new, ttl);
        let mut client = self.connect("update", &name).await?;
        let response = client
            .compare_and_swap(current, new, self.zone.clone())
            .await;
        self.check("update", &name, response)
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
