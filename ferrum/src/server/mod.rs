//! Transports and sessions: TCP, TLS, WebSocket and secure WebSocket listeners; one task per
//! connection, with an idle timeout, a bounded outbound queue and a slow-reader timeout.

pub mod framing;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use crate::cost::{Ledger, Verdict};
use crate::electrum::events::Event;
use crate::electrum::jsonrpc::{self, Response, RpcError};
use crate::electrum::session::Session;
use crate::electrum::state::{SessionState, SubBudget};
use crate::electrum::Electrum;
use crate::sync::Locked;
use framing::{Inbound, LineReader, LineWriter, MessageReader, MessageWriter};

/// How long a client has to complete a TLS or WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Ssl,
    Ws,
    Wss,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Ssl => "ssl",
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
        }
    }

    pub fn needs_tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::Wss)
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "ssl" | "tls" => Ok(Protocol::Ssl),
            "ws" => Ok(Protocol::Ws),
            "wss" => Ok(Protocol::Wss),
            other => Err(format!("unknown service protocol {other:?} (tcp, ssl, ws, wss)")),
        }
    }
}

/// A listening address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

/// Per-session limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest incoming message (ElectrumX's `MAX_RECV`).
    pub max_recv: usize,
    /// No complete message for this long ends the session.
    pub idle_timeout: Duration,
    /// A client that does not take its answers for this long is dropped.
    pub send_timeout: Duration,
    /// Answers and notifications waiting to be sent, per session.
    pub queue_len: usize,
    pub max_sessions: usize,
    pub max_subs_per_session: usize,
    /// A request still unanswered after this long gets error -102 (ElectrumX's
    /// `REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// Sessions from one client address at once (addresses in `exempt` excepted).
    pub max_sessions_per_ip: usize,
    /// Script hashes subscribed to by all the sessions of one client address.
    pub max_subs_per_ip: usize,
    /// Script hashes subscribed to by all sessions.
    pub max_subs_total: usize,
    /// Requests in one JSON-RPC batch.
    pub max_batch: usize,
    /// Client addresses the per-address limits and the cost model do not apply to.
    pub exempt: Vec<Subnet>,
    /// What a client group may spend (ElectrumX's `COST_SOFT_LIMIT`, `COST_HARD_LIMIT`).
    pub cost: crate::cost::Thresholds,
}

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

impl Subnet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Subnet {
    type Err = String;

    /// `10.0.0.0/8`, `fd00::/8`, or a single address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an IP address or subnet"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Subnet { addr: addr.to_canonical(), prefix })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_recv: 1_000_000,
            idle_timeout: Duration::from_secs(600),
            send_timeout: Duration::from_secs(30),
            queue_len: 1000,
            max_sessions: 1000,
            max_subs_per_session: 100_000,
            request_timeout: Duration::from_secs(30),
            max_sessions_per_ip: 50,
            max_subs_per_ip: 500_000,
            max_subs_total: 5_000_000,
            max_batch: 1000,
            exempt: vec![
                Subnet { addr: IpAddr::from([127, 0, 0, 0]), prefix: 8 },
                Subnet { addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST), prefix: 128 },
            ],
            cost: crate::cost::Thresholds::default(),
        }
    }
}

pub struct Server {
    electrum: Arc<Electrum>,
    tls: Option<tls::Tls>,
    limits: Limits,
    next_id: AtomicU64,
    sessions: Mutex<HashMap<u64, Arc<SessionInfo>>>,
    /// Sessions accepted since start.
    accepted: AtomicU64,
    /// Connections closed at once for a session limit.
    refused: AtomicU64,
    /// Sessions and subscriptions per client address (exempt addresses are not counted).
    per_ip: Mutex<HashMap<IpAddr, IpUse>>,
    subs_total: Arc<AtomicUsize>,
    ledger: Ledger,
    /// Requests paused for a group over its soft limit.
    throttled: AtomicU64,
    /// Sessions dropped for a group over its hard limit.
    cost_dropped: AtomicU64,
}

#[derive(Default)]
struct IpUse {
    sessions: usize,
    subs: Arc<AtomicUsize>,
}

/// What the admin interface and the metrics see of a live session.
#[derive(Debug)]
pub struct SessionInfo {
    pub id: u64,
    pub peer: SocketAddr,
    pub protocol: Protocol,
    pub started: Instant,
    /// Messages received (a batch counts once).
    pub requests: AtomicU64,
    pub subscriptions: AtomicUsize,
    /// The client's name and protocol version, from `server.version`.
    pub client: Mutex<(String, String)>,
    close: Notify,
    /// The subscriptions of every session from this address (`None`: exempt).
    ip_subs: Option<Arc<AtomicUsize>>,
    /// The cost group (`None`: exempt).
    pub group: Option<String>,
}

impl SessionInfo {
    /// Asks the session to end; it closes its connection at once.
    pub fn close(&self) {
        self.close.notify_one();
    }
}

/// Removes a session from the registry however its task ends.
struct Registered {
    server: Arc<Server>,
    id: u64,
    /// Counted against its address.
    ip: Option<IpAddr>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.server.sessions.locked().remove(&self.id);
        if let Some(ip) = self.ip {
            let mut per_ip = self.server.per_ip.locked();
            if let Some(u) = per_ip.get_mut(&ip) {
                u.sessions = u.sessions.saturating_sub(1);
                if u.sessions == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Binds a listener for each address, in order, before anything is served: port numbers are
/// then known, and an address in use fails start-up with the name of what was to listen there
/// (`"listening on 127.0.0.1:50001 (tcp)"`). Every listening socket of the process is bound
/// here: the Electrum services, the admin RPC and the HTTP status page.
pub async fn bind<'a>(addrs: impl IntoIterator<Item = (SocketAddr, &'a str)>) -> Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for (addr, what) in addrs {
        out.push(TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} ({what})"))?);
    }
    Ok(out)
}

impl Server {
    /// The SHA-256 fingerprint of the TLS certificate served, when a TLS service is on.
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.tls.as_ref().map(tls::Tls::fingerprint)
    }

    pub fn new(electrum: Arc<Electrum>, tls: Option<tls::Tls>, limits: Limits) -> Arc<Server> {
        Arc::new(Server {
            electrum,
            tls,
            next_id: AtomicU64::new(1),
            sessions: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            per_ip: Mutex::new(HashMap::new()),
            subs_total: Arc::default(),
            ledger: Ledger::new(limits.cost),
            throttled: AtomicU64::new(0),
            cost_dropped: AtomicU64::new(0),
            limits,
        })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Requests slowed, and sessions dropped, by the cost model.
    pub fn cost_actions(&self) -> (u64, u64) {
        (self.throttled.load(Ordering::Relaxed), self.cost_dropped.load(Ordering::Relaxed))
    }

    /// Connections closed at once because a session limit was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a new session against its address; `Err` when the address is at its limit.
    /// `Ok(None)`: the address is exempt.
    fn admit(&self, ip: IpAddr) -> Result<Option<Arc<AtomicUsize>>, ()> {
        if self.limits.exempt.iter().any(|s| s.contains(ip)) {
            return Ok(None);
        }
        let mut per_ip = self.per_ip.locked();
        let u = per_ip.entry(ip).or_default();
        if u.sessions >= self.limits.max_sessions_per_ip {
            return Err(());
        }
        u.sessions += 1;
        Ok(Some(u.subs.clone()))
    }

    pub fn session_count(&self) -> usize {
        self.sessions.locked().len()
    }

    /// Sessions accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The live sessions, by id.
    pub fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        let mut all: Vec<_> = self.sessions.locked().values().cloned().collect();
        all.sort_by_key(|s| s.id);
        all
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Accepts connections for every service, each on its bound socket, until the task is
    /// dropped.
    pub async fn serve(self: Arc<Self>, bound: Vec<(Service, TcpListener)>) {
        let mut tasks = Vec::new();
        for (service, listener) in bound {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!("serving Electrum over {} on {addr}", service.protocol.name());
            tasks.push(tokio::spawn(self.clone().accept_loop(service.protocol, listener)));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn accept_loop(self: Arc<Self>, protocol: Protocol, listener: TcpListener) {
        loop {
            let (stream, peer) = accept(&listener, "Electrum").await;
            if self.session_count() >= self.limits.max_sessions {
                tracing::debug!(%peer, "session limit reached; closing the new connection");
                self.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let ip = peer.ip().to_canonical();
            let Ok(ip_subs) = self.admit(ip) else {
                tracing::debug!(%peer, "{} sessions from this address; closing the new connection", self.limits.max_sessions_per_ip);
                self.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!("session", session = id, peer = %peer.ip(), proto = protocol.name());
            let info = Arc::new(SessionInfo {
                id,
                peer,
                protocol,
                started: Instant::now(),
                requests: AtomicU64::new(0),
                subscriptions: AtomicUsize::new(0),
                client: Mutex::new((String::new(), String::new())),
                close: Notify::new(),
                ip_subs: ip_subs.clone(),
                group: ip_subs.is_some().then(|| crate::cost::group_of(ip)),
            });
            self.sessions.locked().insert(id, info.clone());
            self.accepted.fetch_add(1, Ordering::Relaxed);
            let registered = Registered { server: self.clone(), id, ip: ip_subs.is_some().then_some(ip) };
            let this = self.clone();
            tokio::spawn(
                async move {
                    let _registered = registered;
                    tracing::debug!("session started");
                    if let Err(e) = this.connection(protocol, stream, info).await {
                        tracing::debug!("session ended: {e}");
                    }
                }
                .instrument(span),
            );
        }
    }

    async fn connection(self: Arc<Self>, protocol: Protocol, stream: TcpStream, info: Arc<SessionInfo>) -> Result<()> {
        let max = self.limits.max_recv;
        match protocol {
            Protocol::Tcp => {
                let (r, w) = tokio::io::split(stream);
                self.run(LineReader::new(r, max), LineWriter::new(w), info).await
            }
            Protocol::Ssl | Protocol::Wss => {
                let acceptor = self.tls.as_ref().context("no TLS configuration")?.acceptor();
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                    .context("TLS handshake timed out")??;
                if protocol == Protocol::Ssl {
                    let (r, w) = tokio::io::split(tls);
                    self.run(LineReader::new(r, max), LineWriter::new(w), info).await
                } else {
                    self.websocket(tls, info).await
                }
            }
            Protocol::Ws => self.websocket(stream, info).await,
        }
    }

    /// The WebSocket handshake over a plain or TLS stream, then the session.
    async fn websocket<S>(self: Arc<Self>, stream: S, info: Arc<SessionInfo>) -> Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        config.max_message_size = Some(self.limits.max_recv);
        config.max_frame_size = Some(self.limits.max_recv);
        let ws =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::accept_async_with_config(stream, Some(config)))
                .await
                .context("WebSocket handshake timed out")??;
        let (r, w) = framing::split_ws(ws);
        self.run(r, w, info).await
    }

    /// A session: reads requests, answers them, forwards notifications. Answers go through a
    /// bounded queue to a writer task; a client that stops reading is dropped.
    async fn run<R: MessageReader, W: MessageWriter + 'static>(
        self: Arc<Self>,
        mut reader: R,
        mut writer: W,
        info: Arc<SessionInfo>,
    ) -> Result<()> {
        let (tx, mut rx) = mpsc::channel::<Response>(self.limits.queue_len.max(1));
        let send_timeout = self.limits.send_timeout;
        let writer_task = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match tokio::time::timeout(send_timeout, writer.send(&msg.0)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(anyhow::anyhow!("write failed: {e}")),
                    Err(_) => {
                        let e = anyhow::anyhow!("client did not read for {send_timeout:?}; dropped");
                        tracing::info!("{e}");
                        return Err(e);
                    }
                }
            }
            Ok(())
        });
        let electrum = self.electrum.clone();
        let mut events = electrum.events.subscribe();
        let mut state = SessionState::new(info.id, self.limits.max_subs_per_session);
        state.max_batch = self.limits.max_batch;
        state.budget = SubBudget {
            total: self.subs_total.clone(),
            max_total: self.limits.max_subs_total,
            per_ip: info.ip_subs.clone(),
            max_per_ip: self.limits.max_subs_per_ip,
        };
        let mut session = Session::new(electrum.clone(), state);
        let max_send = electrum.config.max_send;
        // `id`: the request answered (oversized answers become an error for it), or null.
        let queue_for = |r: Response, id: &serde_json::Value| -> Result<()> {
            let r = if r.0.len() > max_send { oversized(id, max_send) } else { r };
            tx.try_send(r).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    tracing::info!("outbound queue full: client too slow to read its answers; dropped");
                    anyhow::anyhow!("outbound queue full; client too slow, dropped")
                }
                mpsc::error::TrySendError::Closed(_) => anyhow::anyhow!("writer gone"),
            })
        };
        let queue = |r: Response| queue_for(r, &serde_json::Value::Null);
        let result: Result<()> = async {
            loop {
                tokio::select! {
                    inbound = tokio::time::timeout(self.limits.idle_timeout, reader.next()) => {
                        let inbound = inbound.map_err(|_| anyhow::anyhow!("idle for {:?}", self.limits.idle_timeout))??;
                        match inbound {
                            Inbound::Closed => return Ok(()),
                            Inbound::TooLarge => {
                                tracing::info!("dropped a message over {} bytes", self.limits.max_recv);
                                electrum.metrics.error(jsonrpc::INVALID_REQUEST);
                                queue(jsonrpc::error_response(
                                    &serde_json::Value::Null,
                                    &RpcError::new(jsonrpc::INVALID_REQUEST, format!("request too large (over {} bytes); dropped", crate::electrum::coerce::commas(self.limits.max_recv as u64))),
                                    true,
                                ))?;
                            }
                            Inbound::Message(bytes) => {
                                let parsed = jsonrpc::parse(&bytes);
                                let id = jsonrpc::Incoming::reply_id(&parsed);
                                let error_for = |code: i64, message: &str| {
                                    jsonrpc::error_response(&id, &RpcError::new(code, message), true)
                                };
                                if let Some(reason) = electrum.index.status().unavailable() {
                                    electrum.metrics.error(jsonrpc::SERVER_BUSY);
                                    queue(error_for(jsonrpc::SERVER_BUSY, &reason))?;
                                    return Ok(());
                                }
                                info.requests.fetch_add(1, Ordering::Relaxed);
                                if let Some(group) = &info.group {
                                    match self.ledger.verdict(group) {
                                        Verdict::Serve => {}
                                        Verdict::Slow(pause) => {
                                            self.throttled.fetch_add(1, Ordering::Relaxed);
                                            tokio::time::sleep(pause).await;
                                        }
                                        Verdict::Drop { log } => {
                                            if log {
                                                tracing::info!(%group, "client group over the cost hard limit; dropping its sessions");
                                            }
                                            self.cost_dropped.fetch_add(1, Ordering::Relaxed);
                                            electrum.metrics.error(jsonrpc::EXCESSIVE_RESOURCE_USAGE);
                                            queue(error_for(jsonrpc::EXCESSIVE_RESOURCE_USAGE, "excessive resource usage"))?;
                                            return Ok(());
                                        }
                                    }
                                }
                                let timeout = self.limits.request_timeout;
                                let (answer, work) =
                                    crate::cost::measured(tokio::time::timeout(timeout, session.handle(parsed))).await;
                                if let Some(group) = &info.group {
                                    let sent = answer.as_ref().ok().and_then(Option::as_ref).map_or(0, |a| a.0.len());
                                    self.ledger.add(group, work + sent as f64 / crate::cost::BYTES_PER_UNIT);
                                }
                                match answer {
                                    Ok(Some(answer)) => queue_for(answer, &id)?,
                                    Ok(None) => {}
                                    Err(_) => {
                                        tracing::info!("request not answered within {timeout:?}");
                                        electrum.metrics.error(jsonrpc::SERVER_BUSY);
                                        queue(error_for(jsonrpc::SERVER_BUSY, "server busy - request timed out"))?;
                                    }
                                }
                                info.subscriptions.store(session.state.subscription_count(), Ordering::Relaxed);
                                if info.client.locked().0 != session.state.client {
                                    let version = session.state.version.as_ref().map(ToString::to_string);
                                    *info.client.locked() =
                                        (session.state.client.clone(), version.unwrap_or_default());
                                }
                                if session.state.close_after_reply {
                                    return Ok(());
                                }
                            }
                        }
                    }
                    _ = info.close.notified() => {
                        tracing::info!("disconnected by the admin");
                        return Ok(());
                    }
                    event = events.recv() => {
                        let event = match event {
                            Ok(e) => e,
                            // Missed events: check every subscription.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Arc::new(Event::everything(&electrum)),
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                        };
                        for n in session.handle_event(&event).await {
                            queue(n)?;
                        }
                    }
                }
            }
        }
        .await;
        if let Err(e) = result {
            // A failed session (a client too slow to take its answers, among others) is
            // dropped at once, its queue with it.
            writer_task.abort();
            return Err(e);
        }
        // Let the writer flush what is queued (the last error reply, for one).
        drop(tx);
        let written = tokio::time::timeout(send_timeout, writer_task).await;
        match written {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(anyhow::anyhow!("writer task: {e}")),
            Err(_) => Err(anyhow::anyhow!("timed out flushing")),
        }
    }
}

/// The next connection on `listener`. Accept errors (out of file descriptors and the like)
/// are logged and waited out instead of spun on.
pub async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                tracing::warn!("{what} accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// An answer over the size limit becomes an error for the same request.
fn oversized(id: &serde_json::Value, max: usize) -> Response {
    jsonrpc::error_response(
        id,
        &RpcError::new(
            jsonrpc::INVALID_REQUEST,
            format!("response too large (over {} bytes)", crate::electrum::coerce::commas(max as u64)),
        ),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_contain_their_addresses() {
        let net: Subnet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped IPv6 is the IPv4 address");
        let one: Subnet = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()) && !one.contains("192.0.2.8".parse().unwrap()));
        let v6: Subnet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()) && !v6.contains("fe80::1".parse().unwrap()));
        let all: Subnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!("example.org".parse::<Subnet>().is_err());
        assert_eq!(one.to_string(), "192.0.2.7/32");
    }
}
