//! Listening: the transports (TCP, TLS, WebSocket, secure WebSocket), binding every socket at
//! start-up, accepting connections, admitting them as sessions, and each transport's handshake
//! before a connection's session starts.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::framing::{self, LineReader, LineWriter};
use super::registry::{Registered, SessionInfo};
use super::{connection, Server};

/// How long a client has to complete a TLS or WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    Tcp,
    Ssl,
    Ws,
    Wss,
}

impl Protocol {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Ssl => "ssl",
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
        }
    }

    pub(crate) fn needs_tls(self) -> bool {
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
pub(crate) struct Service {
    pub(crate) protocol: Protocol,
    pub(crate) addr: SocketAddr,
    /// Connections start with a PROXY protocol header naming the client (`tcp+proxy://`),
    /// accepted only from the configured proxies.
    pub(crate) proxied: bool,
}

/// Binds a listener for each address, in order, before anything is served: port numbers are
/// then known, and an address in use fails start-up with the name of what was to listen there
/// (`"listening on 127.0.0.1:50001 (tcp)"`). Every listening socket of the process is bound
/// here: the Electrum services, the admin RPC and the HTTP status page.
pub(crate) async fn bind<'a>(addrs: impl IntoIterator<Item = (SocketAddr, &'a str)>) -> Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for (addr, what) in addrs {
        out.push(TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} ({what})"))?);
    }
    Ok(out)
}

/// The next connection on `listener`. Accept errors (out of file descriptors and the like)
/// are logged and waited out instead of spun on.
pub(crate) async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
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

impl Server {
    /// Accepts connections for every service, each on its bound socket, until the task is
    /// dropped.
    pub(crate) async fn serve(self: Arc<Self>, bound: Vec<(Service, TcpListener)>) {
        let mut tasks = Vec::new();
        for (service, listener) in bound {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            let behind = if service.proxied { " behind a proxy (PROXY protocol)" } else { "" };
            tracing::info!("serving Electrum over {} on {addr}{behind}", service.protocol.name());
            tasks.push(tokio::spawn(self.clone().accept_loop(service, listener)));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Admits each connection as a session in a task of its own, or closes it at once when a
    /// session limit is reached. On a proxied listener, a connection from a configured proxy
    /// is admitted once its PROXY header names the client, and any other is closed unread.
    async fn accept_loop(self: Arc<Self>, service: Service, listener: TcpListener) {
        loop {
            let (stream, peer) = accept(&listener, "Electrum").await;
            let _ = stream.set_nodelay(true);
            if !service.proxied {
                self.clone().admit(stream, peer, service.protocol);
            } else if self.limits.is_proxy(peer.ip()) {
                tokio::spawn(self.clone().admit_proxied(stream, peer, service.protocol));
            } else {
                tracing::debug!(%peer, "not a configured proxy (--proxy-from); closing its connection");
                self.registry.refuse();
            }
        }
    }

    /// Registers a connection from `peer` as a session and starts its task, or closes it when a
    /// session limit is reached.
    fn admit(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, protocol: Protocol) {
        let Some((info, registered)) = self.registry.admit(peer, protocol, &self.limits) else {
            return;
        };
        let span = tracing::info_span!("session", session = info.id, peer = %peer.ip(), proto = protocol.name());
        tokio::spawn(self.session(stream, info, registered).instrument(span));
    }

    /// Reads the PROXY header a proxy sent first, then admits the connection as the client it
    /// names. A connection without a well-formed header in time is closed.
    async fn admit_proxied(self: Arc<Self>, mut stream: TcpStream, proxy: SocketAddr, protocol: Protocol) {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, super::proxy::read_header(&mut stream, proxy)).await {
            Ok(Ok(client)) => self.admit(stream, client, protocol),
            Ok(Err(e)) => {
                tracing::debug!(%proxy, "{e:#}; closing the connection");
                self.registry.refuse();
            }
            Err(_) => {
                tracing::debug!(%proxy, "no PROXY protocol header within {HANDSHAKE_TIMEOUT:?}; closing the connection");
                self.registry.refuse();
            }
        }
    }

    /// One session's task; it stays registered until the task ends.
    async fn session(self: Arc<Self>, stream: TcpStream, info: Arc<SessionInfo>, registered: Registered) {
        let _registered = registered;
        tracing::debug!("session started");
        if let Err(e) = self.handshake(stream, info).await {
            tracing::debug!("session ended: {e}");
        }
    }

    /// The transport's handshakes (TLS, WebSocket, both or none), then the session.
    async fn handshake(self: Arc<Self>, stream: TcpStream, info: Arc<SessionInfo>) -> Result<()> {
        let max = self.limits.max_recv;
        match info.protocol {
            Protocol::Tcp => {
                let (r, w) = tokio::io::split(stream);
                connection::run(self, LineReader::new(r, max), LineWriter::new(w), info).await
            }
            Protocol::Ssl | Protocol::Wss => {
                let acceptor = self.tls.as_ref().context("no TLS configuration")?.acceptor();
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                    .context("TLS handshake timed out")??;
                if info.protocol == Protocol::Ssl {
                    let (r, w) = tokio::io::split(tls);
                    connection::run(self, LineReader::new(r, max), LineWriter::new(w), info).await
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
        connection::run(self, r, w, info).await
    }
}
