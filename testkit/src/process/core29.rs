//! A node that answers as Bitcoin Core 29 does, in front of the newer node the tests build: the
//! version BTCPay Server ships. Core 29's REST has `/rest/block` but neither `/rest/spenttxouts`
//! (Core 30) nor `/rest/blockpart` (Core 31); for both it answers 404 with an empty body, as
//! any unknown REST path. `getnetworkinfo` reports 29.2.0. Everything else (JSON-RPC, the other
//! REST paths) is passed through unchanged, so RPC behaves as the real node does; P2P goes to
//! the node directly (the protocol is the same in 29).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// `getnetworkinfo`'s `version` and `subversion` for Bitcoin Core 29.2.0.
pub const VERSION: u64 = 290_200;
pub const SUBVERSION: &str = "/Satoshi:29.2.0/";

/// REST paths that Core 29 does not have.
const MISSING: [&str; 2] = ["/rest/spenttxouts/", "/rest/blockpart/"];

/// The proxy: listens on a loopback port, forwards to the node's RPC port. Stopped on drop.
pub struct Core29Proxy {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

impl Core29Proxy {
    /// Starts a proxy in front of the node's RPC and REST server at `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Core29Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("core29-proxy")
            .enable_all()
            .build()
            .context("starting the Core 29 proxy's runtime")?;
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).context("binding the Core 29 proxy")?;
        let addr = listener.local_addr()?;
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let client = client.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| forward(client.clone(), upstream, req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Core29Proxy { addr, runtime: Some(runtime) })
    }

    /// Where clients connect instead of the node's RPC port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Core29Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

/// Why a request was not answered: the connection is then closed without a reply, as the node
/// would (its port closed) when it is down.
type Dropped = Box<dyn std::error::Error + Send + Sync>;

async fn forward(
    client: HttpClient,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    if MISSING.iter().any(|m| path.starts_with(m)) {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::new()));
    }
    let (mut parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::from(e.to_string()))),
    };
    let rewrite = asks_network_info(&body);
    parts.uri = match format!("http://{upstream}{path}").parse() {
        Ok(uri) => uri,
        Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::from(e.to_string()))),
    };
    // The node down (a test stopped it): the client's connection is closed, as the node's own
    // would be.
    let answer = client.request(Request::from_parts(parts, Full::new(body))).await?;
    let (mut parts, body) = answer.into_parts();
    let mut body = body.collect().await?.to_bytes();
    if rewrite {
        if let Some(rewritten) = as_core_29(&body) {
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            body = Bytes::from(rewritten);
        }
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Whether a JSON-RPC request (single or batch) calls `getnetworkinfo`.
fn asks_network_info(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    let calls = |r: &Value| r.get("method").and_then(Value::as_str) == Some("getnetworkinfo");
    match &v {
        Value::Array(batch) => batch.iter().any(calls),
        single => calls(single),
    }
}

/// A `getnetworkinfo` reply (single or in a batch) with Core 29.2's version.
fn as_core_29(body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let patch = |reply: &mut Value| {
        if let Some(result) = reply.get_mut("result").and_then(Value::as_object_mut) {
            if result.contains_key("subversion") {
                result.insert("version".into(), VERSION.into());
                result.insert("subversion".into(), SUBVERSION.into());
            }
        }
    };
    match &mut v {
        Value::Array(batch) => batch.iter_mut().for_each(patch),
        single => patch(single),
    }
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn network_info_is_rewritten_single_and_in_batches() {
        assert!(asks_network_info(br#"{"method":"getnetworkinfo","params":[]}"#));
        assert!(asks_network_info(br#"[{"method":"getblockcount"},{"method":"getnetworkinfo"}]"#));
        assert!(!asks_network_info(br#"{"method":"getblockchaininfo"}"#));
        let single = json!({"result": {"version": 319900, "subversion": "/Satoshi:31.99.0/", "relayfee": 0.00001}});
        let out: Value = serde_json::from_slice(&as_core_29(&serde_json::to_vec(&single).unwrap()).unwrap()).unwrap();
        assert_eq!(out["result"]["version"], json!(VERSION));
        assert_eq!(out["result"]["subversion"], json!(SUBVERSION));
        assert_eq!(out["result"]["relayfee"], json!(0.00001));
        let batch = json!([{"result": 5}, {"result": {"version": 1, "subversion": "x"}}]);
        let out: Value = serde_json::from_slice(&as_core_29(&serde_json::to_vec(&batch).unwrap()).unwrap()).unwrap();
        assert_eq!(out[0]["result"], json!(5));
        assert_eq!(out[1]["result"]["version"], json!(VERSION));
    }
}
