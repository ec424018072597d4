//! JSON-RPC and REST over one pool of HTTP connections to bitcoind, with authentication.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::http::{HttpClient, HttpError};
use super::DaemonError;
use crate::sync::Shared;

/// bitcoind's code for "still loading, try again".
pub(crate) const RPC_IN_WARMUP: i64 = -28;

/// How we prove ourselves to bitcoind.
#[derive(Clone)]
pub enum Auth {
    /// The `.cookie` file bitcoind writes at every start; read again when the node restarts.
    Cookie(PathBuf),
    /// `rpcuser`/`rpcpassword` or an `rpcauth` line's user and password.
    UserPass { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Cookie(path) => f.debug_tuple("Cookie").field(path).finish(),
            Auth::UserPass { user, .. } => {
                f.debug_struct("UserPass").field("user", user).field("password", &"<redacted>").finish()
            }
        }
    }
}

impl Auth {
    fn header(&self) -> Result<String, DaemonError> {
        let credentials = match self {
            Auth::Cookie(path) => std::fs::read_to_string(path)
                .map_err(|e| DaemonError::CookieUnreadable { path: path.clone(), reason: e.to_string() })?
                .trim()
                .to_string(),
            Auth::UserPass { user, password } => format!("{user}:{password}"),
        };
        Ok(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials)))
    }
}

/// One bitcoind address with its credentials.
struct Endpoint {
    http: HttpClient,
    auth: Auth,
    auth_header: RwLock<Option<String>>,
}

impl Endpoint {
    fn cached_header(&self) -> Result<String, DaemonError> {
        if let Some(h) = self.auth_header.reading().as_ref() {
            return Ok(h.clone());
        }
        let h = self.auth.header()?;
        *self.auth_header.writing() = Some(h.clone());
        Ok(h)
    }

    fn forget_credentials(&self) {
        *self.auth_header.writing() = None;
        self.http.reset();
    }

    fn unreachable(&self, e: HttpError) -> DaemonError {
        if e.is_connection() {
            // The node may come back with a new cookie.
            self.forget_credentials();
            DaemonError::Unreachable { addr: self.http.addr().to_string(), reason: e.to_string() }
        } else {
            DaemonError::Protocol(e.to_string())
        }
    }

    /// POSTs a JSON body; on 401 with a cookie, re-reads the cookie once (the node restarted).
    async fn post(&self, body: &[u8]) -> Result<(u16, Vec<u8>), DaemonError> {
        for attempt in 0..2 {
            let header = self.cached_header()?;
            let resp = self
                .http
                .request("POST", "/", &[("Authorization", &header), ("Content-Type", "application/json")], body)
                .await
                .map_err(|e| self.unreachable(e))?;
            match resp.status {
                401 if attempt == 0 && matches!(self.auth, Auth::Cookie(_)) => self.forget_credentials(),
                401 => return Err(DaemonError::Auth("401 Unauthorized: wrong RPC user, password or cookie".into())),
                403 => {
                    return Err(DaemonError::Auth("403 Forbidden: this address is not in bitcoind's rpcallowip".into()))
                }
                // Starting or stopping (or its work queue is full): not an answer, a wait.
                503 => {
                    let body = String::from_utf8_lossy(&resp.body).trim().to_string();
                    return Err(DaemonError::WarmingUp(format!("HTTP 503 {body}").trim().to_string()));
                }
                status => return Ok((status, resp.body)),
            }
        }
        Err(DaemonError::Auth("401 Unauthorized".into()))
    }

    async fn get(&self, path: &str) -> Result<super::http::Response, DaemonError> {
        self.http.request("GET", path, &[], b"").await.map_err(|e| self.unreachable(e))
    }
}

/// Whether a request's time counts in [`RpcStats`]' request times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timed {
    Yes,
    No,
}

/// Counters of the requests made to bitcoind, for the metrics.
#[derive(Default, Debug)]
pub(crate) struct RpcStats {
    /// HTTP requests (a batch counts once).
    pub(crate) requests: AtomicU64,
    /// Requests that failed to reach the node or were refused.
    pub(crate) failures: AtomicU64,
    /// Total time spent waiting for answers, microseconds.
    pub(crate) micros: AtomicU64,
    /// The latest request's time, microseconds.
    pub(crate) last_micros: AtomicU64,
    /// Switches to another DAEMON_URL.
    pub(crate) failovers: AtomicU64,
}

/// bitcoind's JSON-RPC calls (single and batched) and REST GETs. With several endpoints (one
/// node behind several addresses, or several nodes), a request that cannot reach the current
/// one moves on to the next, and stays there.
pub(crate) struct RpcClient {
    endpoints: Vec<Endpoint>,
    current: AtomicUsize,
    next_id: AtomicU64,
    stats: RpcStats,
}

/// The error member of one JSON-RPC reply.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
}

impl RpcClient {
    #[cfg(test)]
    pub(crate) fn new(addr: String, auth: Auth, timeout: Duration) -> Self {
        Self::with_fallbacks(addr, auth, Vec::new(), timeout)
    }

    /// A client that tries `fallbacks` in turn when the current endpoint is unreachable.
    pub(crate) fn with_fallbacks(addr: String, auth: Auth, fallbacks: Vec<(String, Auth)>, timeout: Duration) -> Self {
        let endpoints = std::iter::once((addr, auth))
            .chain(fallbacks)
            .map(|(addr, auth)| Endpoint { http: HttpClient::new(addr, timeout), auth, auth_header: RwLock::new(None) })
            .collect();
        RpcClient { endpoints, current: AtomicUsize::new(0), next_id: AtomicU64::new(1), stats: RpcStats::default() }
    }

    /// The address in use.
    pub(crate) fn addr(&self) -> &str {
        self.endpoint(self.current.load(Ordering::Relaxed)).http.addr()
    }

    pub(crate) fn stats(&self) -> &RpcStats {
        &self.stats
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "never empty (the node's address comes first); i is reduced modulo its length"
    )]
    fn endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i % self.endpoints.len()]
    }

    /// Runs `request` on the current endpoint, then on each other one while they are
    /// unreachable; remembers the one that answered.
    async fn on_endpoints<'a, T, F, Fut>(&'a self, request: F, timed: Timed) -> Result<T, DaemonError>
    where
        F: Fn(&'a Endpoint) -> Fut,
        Fut: std::future::Future<Output = Result<T, DaemonError>>,
    {
        let start = self.current.load(Ordering::Relaxed);
        let began = std::time::Instant::now();
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        crate::cost::charge(crate::cost::NODE_CALL);
        let mut result = Err(DaemonError::Protocol("no endpoint".into()));
        for step in 0..self.endpoints.len() {
            let i = (start + step) % self.endpoints.len();
            result = request(self.endpoint(i)).await;
            if !matches!(result, Err(DaemonError::Unreachable { .. })) {
                if i != start {
                    self.current.store(i, Ordering::Relaxed);
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        from = self.endpoint(start).http.addr(),
                        to = self.endpoint(i).http.addr(),
                        "bitcoind unreachable; switched to the next DAEMON_URL"
                    );
                }
                break;
            }
        }
        if timed == Timed::Yes {
            let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.stats.micros.fetch_add(micros, Ordering::Relaxed);
            self.stats.last_micros.store(micros, Ordering::Relaxed);
        }
        if matches!(result, Err(DaemonError::Unreachable { .. } | DaemonError::Auth(_))) {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn post(&self, body: &[u8], timed: Timed) -> Result<(u16, Vec<u8>), DaemonError> {
        self.on_endpoints(|e| e.post(body), timed).await
    }

    /// Calls one method and decodes its result.
    pub(crate) async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, DaemonError> {
        let value = self.call_value(method, params).await?;
        serde_json::from_value(value).map_err(|e| DaemonError::Protocol(format!("unexpected result of {method}: {e}")))
    }

    pub(crate) async fn call_value(&self, method: &str, params: Value) -> Result<Value, DaemonError> {
        self.call_value_timed(method, params, Timed::Yes).await
    }

    /// Calls a method that waits on the node's side until something happens (`waitforblock`):
    /// its time is that wait, not the node's answer, and is kept out of the request times.
    pub(crate) async fn call_waiting(&self, method: &str, params: Value) -> Result<Value, DaemonError> {
        self.call_value_timed(method, params, Timed::No).await
    }

    async fn call_value_timed(&self, method: &str, params: Value, timed: Timed) -> Result<Value, DaemonError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(&serde_json::json!({"id": id, "method": method, "params": params}))
            .map_err(|e| DaemonError::Protocol(e.to_string()))?;
        let (status, body) = self.post(&body, timed).await?;
        let reply: Value = serde_json::from_slice(&body).map_err(|_| {
            DaemonError::Protocol(format!(
                "{method}: HTTP {status}, not JSON: {}",
                String::from_utf8_lossy(body.get(..200).unwrap_or(&body))
            ))
        })?;
        into_result(method, reply)
    }

    /// Calls `method` once per element of `params`, in one HTTP request. Each reply is decoded
    /// separately: one failed element does not fail the others.
    pub(crate) async fn batch(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<Vec<Result<Value, DaemonError>>, DaemonError> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_id.fetch_add(params.len() as u64, Ordering::Relaxed);
        let requests: Vec<Value> = params
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!({"id": first + i as u64, "method": method, "params": p}))
            .collect();
        let body = serde_json::to_vec(&requests).map_err(|e| DaemonError::Protocol(e.to_string()))?;
        let (status, body) = self.post(&body, Timed::Yes).await?;
        let replies: Value = serde_json::from_slice(&body)
            .map_err(|_| DaemonError::Protocol(format!("{method} batch: HTTP {status}, not JSON")))?;
        let Value::Array(replies) = replies else {
            // A whole-batch error (e.g. warm-up) comes as a single object.
            return Err(into_result(method, replies)
                .err()
                .unwrap_or_else(|| DaemonError::Protocol(format!("{method} batch: reply is not an array"))));
        };
        let mut out: Vec<Option<Result<Value, DaemonError>>> = (0..params.len()).map(|_| None).collect();
        for reply in replies {
            let idx = reply
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first))
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < params.len())
                .ok_or_else(|| DaemonError::Protocol(format!("{method} batch: reply with unknown id")))?;
            if let Some(slot) = out.get_mut(idx) {
                *slot = Some(into_result(method, reply));
            }
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| DaemonError::Protocol(format!("{method} batch: missing reply"))))
            .collect()
    }

    /// GETs a REST resource. `Ok(None)` when the node answers 404 (unknown resource, or REST
    /// disabled), `Err` on a connection failure or an unexpected status.
    pub(crate) async fn rest_get(&self, path: &str) -> Result<Option<Vec<u8>>, DaemonError> {
        let resp = self.on_endpoints(|e| e.get(path), Timed::Yes).await?;
        match resp.status {
            200 => Ok(Some(resp.body)),
            404 => Ok(None),
            503 => Err(DaemonError::WarmingUp(String::from_utf8_lossy(&resp.body).trim().to_string())),
            status => Err(DaemonError::Rejected {
                code: i64::from(status),
                message: format!("REST {path}: HTTP {status}: {}", String::from_utf8_lossy(&resp.body).trim()),
            }),
        }
    }
}

fn into_result(method: &str, mut reply: Value) -> Result<Value, DaemonError> {
    let error = reply.get_mut("error").map(Value::take).unwrap_or(Value::Null);
    if !error.is_null() {
        let err: RpcError = serde_json::from_value(error)
            .map_err(|e| DaemonError::Protocol(format!("{method}: malformed error object: {e}")))?;
        return Err(if err.code == RPC_IN_WARMUP {
            DaemonError::WarmingUp(err.message)
        } else {
            DaemonError::Rejected { code: err.code, message: err.message }
        });
    }
    match reply.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(DaemonError::Protocol(format!("{method}: reply without result"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_pass_debug_is_redacted() {
        let auth = Auth::UserPass { user: "alice".into(), password: "hunter2".into() };
        let shown = format!("{auth:?}");
        assert!(shown.contains("alice") && shown.contains("<redacted>") && !shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn http_503_is_a_wait_not_a_failure() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            sock.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        });
        let client =
            RpcClient::new(addr, Auth::UserPass { user: "u".into(), password: "p".into() }, Duration::from_secs(5));
        let e = client.call_value("getblockchaininfo", serde_json::json!([])).await.unwrap_err();
        assert!(matches!(e, DaemonError::WarmingUp(_)), "{e}");
        assert!(e.is_transient());
    }

    #[test]
    fn warmup_error_is_its_own_kind() {
        let reply =
            serde_json::json!({"result": null, "error": {"code": -28, "message": "Loading block index…"}, "id": 1});
        assert!(matches!(into_result("x", reply), Err(DaemonError::WarmingUp(m)) if m.starts_with("Loading")));
        let reply = serde_json::json!({"result": null, "error": {"code": -5, "message": "nope"}, "id": 1});
        assert!(matches!(into_result("x", reply), Err(DaemonError::Rejected { code: -5, .. })));
        let reply = serde_json::json!({"result": 7, "error": null, "id": 1});
        assert_eq!(into_result("x", reply).unwrap(), 7);
    }
}
