//! A blocking Electrum protocol client for tests: newline-delimited JSON-RPC over TCP, with the
//! notifications that arrive between replies kept in order.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::hashes::{sha256, Hash};
use serde_json::{json, Value};

use crate::wait::wait_for;

/// The protocol version asked for by [`Client::connect`]. ElectrumX 2.0 speaks up to 1.7,
/// which drops `blockchain.scripthash.*`.
pub const PROTOCOL_VERSION: &str = "1.6";

/// A JSON-RPC error object returned by the server.
#[derive(Debug, Clone)]
pub struct ServerError {
    pub method: String,
    /// The whole `error` member of the reply.
    pub error: Value,
}

impl ServerError {
    pub fn code(&self) -> Option<i64> {
        self.error.get("code").and_then(Value::as_i64)
    }

    pub fn message(&self) -> &str {
        self.error.get("message").and_then(Value::as_str).unwrap_or_default()
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Electrum server error to {}: {}", self.method, self.error)
    }
}

impl std::error::Error for ServerError {}

/// The [`ServerError`] inside an error, if that is what it is.
pub fn server_error(e: &anyhow::Error) -> Option<&ServerError> {
    e.downcast_ref::<ServerError>()
}

/// One Electrum session over TCP.
pub struct Client {
    reader: BufReader<TcpStream>,
    next_id: u64,
    notifications: VecDeque<Value>,
    /// What `server.version` answered: `[server software, protocol version]`.
    pub server_version: Value,
}

impl Client {
    /// Connects without sending anything.
    pub fn connect_raw(addr: &str) -> Result<Client> {
        let sock: SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .with_context(|| format!("connecting to {addr}"))?;
        Client::from_stream(stream)
    }

    /// Connects from the local address `from` (another loopback address, to be another client
    /// address to the server), without sending anything.
    pub fn connect_raw_from(addr: &str, from: std::net::IpAddr) -> Result<Client> {
        let sock: SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
        Client::from_stream(connect_from(sock, from)?)
    }

    fn from_stream(stream: TcpStream) -> Result<Client> {
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        stream.set_write_timeout(Some(Duration::from_secs(120)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream),
            next_id: 0,
            notifications: VecDeque::new(),
            server_version: Value::Null,
        })
    }

    /// Connects and negotiates `version` (a string or a `[min, max]` pair).
    pub fn connect_with(addr: &str, version: Value) -> Result<Client> {
        let mut client = Client::connect_raw(addr)?;
        client.server_version = client.call("server.version", json!(["testkit", version]))?;
        Ok(client)
    }

    /// Connects and negotiates [`PROTOCOL_VERSION`], which a server requires before anything.
    pub fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, json!(PROTOCOL_VERSION))
    }

    /// The client's own end of the connection: the address a server sees it connect from.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.reader.get_ref().local_addr()?)
    }

    /// Sends raw bytes (no framing added).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        // One descriptor per client (writing does not touch the read buffer): tests open
        // thousands.
        let stream = self.reader.get_mut();
        stream.write_all(bytes).context("sending")?;
        stream.flush()?;
        Ok(())
    }

    /// Reads the next message within `timeout`: `Ok(None)` when the server closed the
    /// connection, an error when nothing arrived in time.
    pub fn read(&mut self, timeout: Duration) -> Result<Option<Value>> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        let mut buf = String::new();
        let n = match self.reader.read_line(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                bail!("nothing within {timeout:?}")
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(None);
        }
        // Servers may pad messages with spaces; JSON allows that.
        Ok(Some(serde_json::from_str(&buf).with_context(|| format!("message {:?}", buf.trim_end()))?))
    }

    /// Sends one request and returns the whole reply object. Notifications arriving meanwhile
    /// are kept for [`Client::notification`].
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        line.push(b'\n');
        self.send_raw(&line).with_context(|| format!("sending {method}"))?;
        loop {
            let msg = self
                .read(Duration::from_secs(120))
                .with_context(|| format!("waiting for the reply to {method}"))?
                .ok_or_else(|| anyhow!("the server closed the connection before answering {method}"))?;
            if msg.get("id").and_then(Value::as_u64) == Some(id) {
                return Ok(msg);
            }
            if msg.get("method").is_some() {
                self.notifications.push_back(msg);
            }
        }
    }

    /// Sends one request and returns its `result`; an `error` reply is a [`ServerError`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let mut reply = self.request(method, params)?;
        let error = reply.get_mut("error").map(Value::take).unwrap_or(Value::Null);
        if !error.is_null() {
            return Err(anyhow::Error::new(ServerError { method: method.to_string(), error }));
        }
        reply.get_mut("result").map(Value::take).ok_or_else(|| anyhow!("reply to {method} has no result"))
    }

    /// The params of the next notification of `method`, waiting at most `timeout`. Other
    /// notifications stay queued, in order.
    pub fn notification(&mut self, method: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let is = |n: &Value| n.get("method").and_then(Value::as_str) == Some(method);
        loop {
            if let Some(i) = self.notifications.iter().position(is) {
                let n = self.notifications.remove(i).unwrap_or_default();
                return Ok(n.get("params").cloned().unwrap_or(Value::Null));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no {method} notification within {timeout:?}");
            }
            match self.read(left) {
                Ok(Some(msg)) if msg.get("method").is_some() => self.notifications.push_back(msg),
                Ok(Some(_)) => {}
                Ok(None) => bail!("connection closed while waiting for {method}"),
                Err(_) => bail!("no {method} notification within {timeout:?}"),
            }
        }
    }

    /// Notifications received and not yet taken (they arrive while waiting for replies).
    pub fn queued_notifications(&self) -> usize {
        self.notifications.len()
    }

    /// Drops every queued notification and those arriving within `quiet`.
    pub fn drain_notifications(&mut self, quiet: Duration) -> usize {
        let mut n = self.notifications.len();
        self.notifications.clear();
        while let Ok(Some(_)) = self.read(quiet) {
            n += 1;
        }
        n
    }

    /// Whether any notification is already waiting or arrives within `timeout`.
    pub fn has_notification(&mut self, timeout: Duration) -> bool {
        if !self.notifications.is_empty() {
            return true;
        }
        match self.read(timeout) {
            Ok(Some(msg)) if msg.get("method").is_some() => {
                self.notifications.push_back(msg);
                true
            }
            _ => false,
        }
    }

    /// Whether the server closes the connection within `timeout`.
    pub fn closes_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.read(deadline.saturating_duration_since(Instant::now())) {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
        false
    }
}

/// A TCP connection to `addr` from the local address `from` (another loopback address, to be
/// another client address to the server).
pub fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into()).with_context(|| format!("binding to {from}"))?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(10)).with_context(|| format!("connecting to {addr}"))?;
    Ok(socket.into())
}

/// Waits until the Electrum server at `addr` answers `blockchain.headers.subscribe` with
/// `height` (it may not listen or not serve yet).
pub fn wait_for_height(addr: &str, height: u32, timeout: Duration) -> Result<()> {
    wait_for(&format!("the server at {addr} serving height {height}"), timeout, || {
        let mut c = Client::connect(addr).ok()?;
        let tip = c.call("blockchain.headers.subscribe", json!([])).ok()?;
        (tip["height"].as_u64() == Some(u64::from(height))).then_some(())
    })
}

/// A session on `addr` negotiated with `version`, once the server accepts one again (after a
/// limit was reached and freed), within 10 s.
pub fn connect_when_served(addr: &str, version: &str) -> Result<Client> {
    wait_for("the server to take a session again", Duration::from_secs(10), || {
        Client::connect_with(addr, json!(version)).ok()
    })
}

/// The Electrum status of a history as `get_history` returns it, as a client recomputes it:
/// SHA-256 of `tx_hash:height:` for every entry, hex; null for an empty history.
pub fn status_of_history(history: &Value) -> Result<Value> {
    let items = history.as_array().ok_or_else(|| anyhow!("a history is an array, not {history}"))?;
    if items.is_empty() {
        return Ok(Value::Null);
    }
    let mut s = String::new();
    for i in items {
        let txid = i["tx_hash"].as_str().ok_or_else(|| anyhow!("no tx_hash in {i}"))?;
        let height = i["height"].as_i64().ok_or_else(|| anyhow!("no height in {i}"))?;
        s.push_str(&format!("{txid}:{height}:"));
    }
    Ok(json!(hex::encode(sha256::Hash::hash(s.as_bytes()).to_byte_array())))
}

/// Raises this process's open-file limit to its hard limit, for tests that open thousands of
/// sessions; returns the limit in effect.
pub fn more_files() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        limit.rlim_cur
    }
}
