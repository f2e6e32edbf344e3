//! Talking to agents and to MySQL directly, always bounded in time.
//!
//! One gRPC channel per agent address is kept and shared by every caller (a channel
//! multiplexes requests): a failover's fan-out pays no TCP/HTTP-2 set-up. A request that
//! fails at the transport level or outlives its deadline drops the cached channel, so the
//! next call dials afresh (and can tell "unreachable" from "no answer") instead of
//! queueing on a connection a partition left dead.
//! While a request is in flight the connection is pinged (HTTP/2 PING every
//! `PING_EVERY`): a host cut off or an agent frozen after the connection was opened fails
//! the request within `PING_EVERY + PING_TIMEOUT`, as a fresh dial's connect timeout
//! would, instead of holding it until a long deadline (catch-up, salvage).

use std::collections::{BTreeSet, HashMap};

use altair_core::authz_peer::Expected;
use altair_core::{ClusterName, HostName};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use altair_proto::v1::agent_client::AgentClient;
use altair_svc::Secret;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Context, Poll, Service, StdError, http};
use tonic::transport::Channel;

/// A client for one agent whose every request carries one deadline.
pub type AgentRpc = AgentClient<Deadlined>;

/// Connect timeout of a cached channel; each request's deadline bounds it further.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A channel unused this long is dialled afresh.
const MAX_IDLE: Duration = Duration::from_secs(10);
/// Keep-alive of a connection with requests in flight (none while idle).
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A client for the agent at `address` (`host:port`); each request on it must answer
/// within `deadline`. A channel not open yet is opened first, within the deadline and
/// at most `CONNECT_TIMEOUT`: `Err` means the agent could not be reached at all (what
/// the fence treats as "rely on its self-fencing"), as opposed to a request that fails.
/// The short actions (fence, read-only, promote, repoint, status, reachability) send the
/// deadline to the agent as their gRPC timeout: it stops their work — and kills their
/// SQL — before it; so does rejoin (a revert of errant transactions starts only with
/// 10 s left and is never cut midway); catch-up and salvage take their bound in the
/// request.
pub async fn agent(address: &str, deadline: Duration) -> Result<AgentRpc, String> {
    agent_within(address, deadline, deadline).await
}

/// `agent`, its channel opened within `connect` (and at most `CONNECT_TIMEOUT`).
pub async fn agent_within(
    address: &str,
    connect: Duration,
    deadline: Duration,
) -> Result<AgentRpc, String> {
    let dialled = std::time::Instant::now();
    let (generation, channel) = CHANNELS
        .get(address, connect.min(deadline).min(CONNECT_TIMEOUT))
        .await?;
    Ok(AgentClient::new(Deadlined {
        channel,
        // A dial spends the same budget: the first request gets what is left of it.
        deadline: deadline
            .saturating_sub(dialled.elapsed())
            .max(Duration::from_millis(1)),
        address: Arc::from(address),
        generation,
    }))
}

/// `agent_within` over a new connection (the cached one, if any, is dropped first).
pub async fn fresh_agent(
    address: &str,
    connect: Duration,
    deadline: Duration,
) -> Result<AgentRpc, String> {
    CHANNELS.drop_any(address);
    agent_within(address, connect, deadline).await
}

/// The RPCs whose deadline the agent is told (`grpc-timeout`).
const TOLD_DEADLINE: [&str; 7] = [
    "/Fence",
    "/Rejoin",
    "/SetReadOnly",
    "/Promote",
    "/Repoint",
    "/Status",
    "/CheckReachability",
];

/// How this process dials agents (`[tls]`), set once at start.
static TLS: std::sync::OnceLock<altair_svc::Tls> = std::sync::OnceLock::new();

/// Sets the TLS material every agent channel uses (the first call wins).
pub fn set_tls(tls: altair_svc::Tls) {
    let _ = TLS.set(tls);
}

fn tls() -> Result<&'static altair_svc::Tls, String> {
    TLS.get()
        .ok_or_else(|| "internal: the orchestrator's [tls] settings are not loaded".to_owned())
}

/// Where each host's agent is registered, as host records were last read: a channel to
/// an address requires the server's certificate to name a host registered there now
/// (one in a real fleet). A host that moves leaves its old address.
static AGENTS_AT: LazyLock<std::sync::RwLock<AgentsAt>> = LazyLock::new(Default::default);

#[derive(Default)]
struct AgentsAt {
    by_address: HashMap<String, BTreeSet<(ClusterName, HostName)>>,
    by_host: HashMap<(ClusterName, HostName), Registered>,
    by_cluster: HashMap<ClusterName, BTreeSet<HostName>>,
}

/// Where a host's agent is, and the read that last said so (a [`reads_from`] mark).
struct Registered {
    address: String,
    seen: AtomicU64,
}

/// Marks of reads: a registration noted after a read began is never undone by it.
static READS: AtomicU64 = AtomicU64::new(1);

/// A mark to take before a whole read of a cluster's hosts (see [`cluster_hosts_listed`]).
pub fn reads_from() -> u64 {
    READS.fetch_add(1, Ordering::SeqCst)
}

fn read_map() -> std::sync::RwLockReadGuard<'static, AgentsAt> {
    AGENTS_AT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_map() -> std::sync::RwLockWriteGuard<'static, AgentsAt> {
    AGENTS_AT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AgentsAt {
    /// Forgets where `key`'s agent was.
    fn remove(&mut self, key: &(ClusterName, HostName)) {
        if let Some(old) = self.by_host.remove(key) {
            self.leave(&old.address, key);
        }
        let emptied = self.by_cluster.get_mut(&key.0).is_some_and(|hosts| {
            hosts.remove(&key.1);
            hosts.is_empty()
        });
        if emptied {
            self.by_cluster.remove(&key.0);
        }
    }

    /// `key` is no longer at `address`.
    fn leave(&mut self, address: &str, key: &(ClusterName, HostName)) {
        let emptied = self.by_address.get_mut(address).is_some_and(|hosts| {
            hosts.remove(key);
            hosts.is_empty()
        });
        if emptied {
            self.by_address.remove(address);
        }
    }
}

/// Notes that `host` of `cluster` has its agent registered at `address`.
pub fn agent_registered_at(address: &str, cluster: &ClusterName, host: &str) {
    let Ok(host) = HostName::new(host) else {
        return;
    };
    let key = (cluster.clone(), host);
    let mark = READS.fetch_add(1, Ordering::SeqCst);
    {
        let m = read_map();
        if let Some(r) = m.by_host.get(&key).filter(|r| r.address == address) {
            r.seen.fetch_max(mark, Ordering::SeqCst);
            return;
        }
    }
    let mut m = write_map();
    let registered = Registered {
        address: address.to_owned(),
        seen: AtomicU64::new(mark),
    };
    if let Some(old) = m.by_host.insert(key.clone(), registered) {
        m.leave(&old.address, &key);
    }
    m.by_cluster
        .entry(key.0.clone())
        .or_default()
        .insert(key.1.clone());
    m.by_address
        .entry(address.to_owned())
        .or_default()
        .insert(key);
}

/// `cluster`'s hosts as a whole read of its host records found them (`listed` says
/// whether a host is registered), the read having begun at mark `since`: a host no
/// longer listed — forgotten, or its record gone — is admitted nowhere any more, unless
/// a read begun later noted it (views are read concurrently: an older read finishing
/// last must not undo a newer one).
pub fn cluster_hosts_listed(cluster: &ClusterName, since: u64, listed: impl Fn(&str) -> bool) {
    let stale = |m: &AgentsAt| -> Vec<HostName> {
        m.by_cluster
            .get(cluster)
            .map(|hosts| {
                hosts
                    .iter()
                    .filter(|h| !listed(h.as_str()))
                    .filter(|h| {
                        m.by_host
                            .get(&(cluster.clone(), (*h).clone()))
                            .is_some_and(|r| r.seen.load(Ordering::SeqCst) < since)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    if stale(&read_map()).is_empty() {
        return;
    }
    let mut m = write_map();
    for host in stale(&m) {
        tracing::info!(cluster = %cluster, host = %host, "host no longer registered: its agent's certificate is admitted nowhere");
        m.remove(&(cluster.clone(), host));
    }
}

/// Who must answer at `address`: the agent of a host registered there (nobody's
/// certificate will do where none is known to be).
/// Two hosts whose records name one address admit neither: one agent serves one host,
/// so one of the records is stale (a decommissioned host not forgotten) or forged (an
/// agent's certificate lets it write its own record, and it claimed another host's
/// address to have this orchestrator's calls for it land there). Calls fail, loudly,
/// rather than act on a host other than the one meant.
fn expected_at(address: &str) -> Expected {
    let hosts: BTreeSet<(ClusterName, HostName)> = read_map()
        .by_address
        .get(address)
        .cloned()
        .unwrap_or_default();
    if hosts.len() > 1 {
        let names: Vec<String> = hosts.iter().map(|(c, h)| format!("{c}/{h}")).collect();
        tracing::error!(%address, hosts = ?names, "several hosts' records name this agent address: no agent is admitted there until all but one move or are forgotten (altairctl forget)");
        return Expected::Agent(Vec::new());
    }
    Expected::Agent(hosts.into_iter().collect())
}

/// The shared channels, by agent address.
static CHANNELS: LazyLock<Channels> = LazyLock::new(Channels::default);

/// A cached channel, when it was opened (its generation) and last handed out.
struct Open {
    generation: u64,
    channel: Channel,
    used: std::time::Instant,
}

#[derive(Default)]
struct Channels {
    open: Mutex<HashMap<String, Open>>,
    next: AtomicU64,
}

impl Channels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, address: &str, connect: Duration) -> Result<(u64, Channel), String> {
        {
            let mut open = self.lock();
            match open.get_mut(address) {
                // Reused within a burst (one failover's calls); after a quiet spell a
                // connection may have died unnoticed (a rebooted host, a dropped flow):
                // dial afresh rather than find out on a failover's first call.
                Some(o) if o.used.elapsed() < MAX_IDLE => {
                    o.used = std::time::Instant::now();
                    return Ok((o.generation, o.channel.clone()));
                }
                Some(_) => {
                    open.remove(address);
                }
                None => {}
            }
        }
        let endpoint = tls()?
            .endpoint(address, expected_at(address))
            .map_err(|e| format!("agent {address}: {e}"))?
            .connect_timeout(connect)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(PING_EVERY)
            .keep_alive_timeout(PING_TIMEOUT)
            .keep_alive_while_idle(false);
        let channel = match tokio::time::timeout(connect, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                let why = altair_svc::dial::describe(&e);
                // The wrong server answered: logged as what it is (someone else listens
                // at a host's agent address). To the caller it is an agent out of reach,
                // as it should be: the host's own agent did not answer, so the fence
                // goes by the monitors' view (an agent they still hear keeps its lease
                // and its fence is retried) and the self-fencing bound.
                if why.contains(altair_svc::dial::REFUSED_IDENTITY) {
                    tracing::error!(address, error = %why, "an agent's address answered with another identity's certificate");
                    return Err(format!(
                        "agent {address} unreachable: another identity answered: {why}"
                    ));
                }
                return Err(format!("agent {address} unreachable: {why}"));
            }
            Err(_) => {
                return Err(format!(
                    "agent {address} unreachable: no connection within {} ms",
                    connect.as_millis()
                ));
            }
        };
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        let mut open = self.lock();
        open.insert(
            address.to_owned(),
            Open {
                generation,
                channel: channel.clone(),
                used: std::time::Instant::now(),
            },
        );
        crate::metrics::AGENT_CHANNELS.set(open.len() as i64);
        Ok((generation, channel))
    }

    fn drop_any(&self, address: &str) {
        let mut open = self.lock();
        open.remove(address);
        crate::metrics::AGENT_CHANNELS.set(open.len() as i64);
    }

    /// Drops the channel of `generation` (not a newer one another caller opened since).
    fn evict(&self, address: &str, generation: u64) {
        let mut open = self.lock();
        if open
            .get(address)
            .is_some_and(|o| o.generation == generation)
        {
            open.remove(address);
            crate::metrics::AGENT_CHANNEL_DROPS.inc();
        }
        crate::metrics::AGENT_CHANNELS.set(open.len() as i64);
    }
}

/// A shared channel with a per-request deadline; a transport failure or an expired
/// deadline evicts the channel from the cache.
#[derive(Clone)]
pub struct Deadlined {
    channel: Channel,
    deadline: Duration,
    address: Arc<str>,
    generation: u64,
}

impl Service<http::Request<Body>> for Deadlined {
    type Response = http::Response<Body>;
    type Error = StdError;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    // Only the response's headers are timed here: a streamed body (salvage) is bounded
    // by its caller, and every in-flight request by the HTTP/2 keep-alive.
    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // Every request says when it was sent: the agent refuses one that waited out its
        // deadline before it was read (in a frozen agent's socket, a stalled network).
        altair_proto::sent_at::stamp_headers(request.headers_mut());
        let path = request.uri().path();
        if TOLD_DEADLINE.iter().any(|rpc| path.ends_with(rpc))
            && let Ok(v) = http::HeaderValue::from_str(&format!("{}m", self.deadline.as_millis()))
        {
            request.headers_mut().insert("grpc-timeout", v);
        }
        let response = self.channel.call(request);
        let (deadline, address, generation) =
            (self.deadline, self.address.clone(), self.generation);
        Box::pin(async move {
            let failed: StdError = match tokio::time::timeout(deadline, response).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(e)) => e.into(),
                Err(_) => format!("no answer within {} ms", deadline.as_millis()).into(),
            };
            CHANNELS.evict(&address, generation);
            Err(failed)
        })
    }
}

/// Can the orchestrator itself open a MySQL session to `mysql` (`host:port`)? A
/// session mysqld answered and refused counts (see `mysql_tls::answered`).
pub async fn mysql_reachable(
    mysql: &str,
    user: &str,
    password: &Secret,
    tls: &altair_svc::mysql_tls::MysqlTlsLoaded,
    timeout: Duration,
) -> bool {
    let Some((host, port)) = mysql.rsplit_once(':') else {
        return false;
    };
    let Ok(port) = port.parse::<u16>() else {
        return false;
    };
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(port)
        .user(Some(user.to_owned()))
        .pass(Some(password.expose().to_owned()))
        .prefer_socket(false)
        .ssl_opts(tls.ssl_opts())
        .into();
    match tokio::time::timeout(timeout, mysql_async::Conn::new(opts)).await {
        Ok(Ok(conn)) => {
            drop(conn);
            true
        }
        // mysqld answered, then refused the session (the account, a full server, TLS):
        // it is up. The error text carries no password.
        Ok(Err(e)) if altair_svc::mysql_tls::answered(&e) => {
            tracing::warn!(mysql, error = %e, "mysqld answered but refused the orchestrator's session: counted as reachable; check the [mysql] account and tls");
            true
        }
        _ => false,
    }
}

/// `host:port` → the endpoint message.
pub fn endpoint(mysql: &str) -> Option<altair_proto::v1::Endpoint> {
    let (host, port) = mysql.rsplit_once(':')?;
    Some(altair_proto::v1::Endpoint {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> ClusterName {
        ClusterName::new(name).expect("cluster")
    }

    fn admits(address: &str, cluster: &str, host: &str) -> bool {
        expected_at(address).admits(&altair_core::authz::Identity::Agent {
            cluster: c(cluster),
            host: HostName::new(host).expect("host"),
        })
    }

    #[test]
    fn an_address_admits_the_hosts_registered_there_now() {
        let (a, b) = ("10.250.0.1:7000", "10.250.0.2:7000");
        assert!(!admits(a, "moves", "h1"), "nothing registered yet");
        agent_registered_at(a, &c("moves"), "h1");
        assert!(admits(a, "moves", "h1"));
        assert!(!admits(a, "moves", "h2"));
        assert!(
            !admits(a, "other", "h1"),
            "the same host name in another cluster"
        );
        // h1 moves: its old address no longer admits it.
        agent_registered_at(b, &c("moves"), "h1");
        assert!(admits(b, "moves", "h1"));
        assert!(!admits(a, "moves", "h1"));
        // Another host takes the old address: only it is admitted there.
        agent_registered_at(a, &c("moves"), "h2");
        assert!(admits(a, "moves", "h2"));
        assert!(!admits(a, "moves", "h1"));
    }

    #[test]
    fn a_host_no_longer_listed_is_admitted_nowhere() {
        let (a, b) = ("10.250.1.1:7000", "10.250.1.2:7000");
        let elsewhere = "10.250.1.3:7000";
        agent_registered_at(a, &c("forgets"), "h1");
        agent_registered_at(b, &c("forgets"), "h2");
        agent_registered_at(elsewhere, &c("keeps"), "h1");
        // A read of the cluster lists h2 only: h1 was forgotten.
        cluster_hosts_listed(&c("forgets"), reads_from(), |h| h == "h2");
        assert!(!admits(a, "forgets", "h1"));
        assert!(admits(b, "forgets", "h2"));
        assert!(
            admits(elsewhere, "keeps", "h1"),
            "another cluster's h1 is kept"
        );
        // Registered again later: admitted again.
        agent_registered_at(a, &c("forgets"), "h1");
        assert!(admits(a, "forgets", "h1"));
        // Every host gone.
        cluster_hosts_listed(&c("forgets"), reads_from(), |_| false);
        assert!(!admits(a, "forgets", "h1"));
        assert!(!admits(b, "forgets", "h2"));
    }

    #[test]
    fn an_address_two_records_claim_admits_neither() {
        let a = "10.250.3.1:7000";
        agent_registered_at(a, &c("claims"), "h1");
        assert!(admits(a, "claims", "h1"));
        // h2's record (forged by its agent, or stale) names h1's address: neither is
        // admitted there, in this cluster or from another.
        agent_registered_at(a, &c("claims"), "h2");
        assert!(!admits(a, "claims", "h1"));
        assert!(!admits(a, "claims", "h2"));
        agent_registered_at(a, &c("claims-too"), "h9");
        assert!(!admits(a, "claims-too", "h9"));
        // The claims withdrawn: the one left is admitted again.
        agent_registered_at("10.250.3.2:7000", &c("claims"), "h2");
        agent_registered_at("10.250.3.3:7000", &c("claims-too"), "h9");
        assert!(admits(a, "claims", "h1"));
    }

    #[test]
    fn an_older_read_finishing_last_does_not_undo_a_newer_one() {
        let a = "10.250.2.1:7000";
        // A slow read begins (say `altairctl topology`) before h1 registers...
        let slow = reads_from();
        // ...a newer read (the worker's) notes h1...
        agent_registered_at(a, &c("races"), "h1");
        // ...and the slow one, which listed no h1, ends last: h1 stays admitted.
        cluster_hosts_listed(&c("races"), slow, |_| false);
        assert!(admits(a, "races", "h1"));
        // A read begun after it, listing no h1, means it is gone.
        cluster_hosts_listed(&c("races"), reads_from(), |_| false);
        assert!(!admits(a, "races", "h1"));
        // Noted again at the same address by a read begun after a slow one: kept.
        let slow = reads_from();
        agent_registered_at(a, &c("races"), "h1");
        let slower = reads_from();
        agent_registered_at(a, &c("races"), "h1");
        cluster_hosts_listed(&c("races"), slow, |_| false);
        assert!(admits(a, "races", "h1"), "the same address noted anew");
        let _ = slower;
    }
}
