//! The HTTP listener: the status page (`/`), its data (`/api/status`), how to connect a wallet
//! (`/connect`, its data at `/api/connect`), Prometheus metrics (`/metrics`) and a health check
//! (`/health`: 200 when serving, 503 while indexing or when the node is unreachable). HTTP/1.1 by hyper; GET and HEAD only, one request per connection,
//! the request head bounded in size and time, so a browser or a scraper cannot hold it up.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::monitor::Monitor;

/// The status page: one self-contained file, no external resources.
pub(crate) const STATUS_PAGE: &str = include_str!("status.html");

/// Largest request head read, bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The page may run its own inline script and fetch from this origin; nothing else.
const PAGE_POLICY: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// The connect page runs no script at all.
const CONNECT_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// Serves HTTP on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, monitor: Arc<Monitor>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving the status page and metrics on http://{addr}/");
    }
    loop {
        let (stream, _) = crate::server::accept(&listener, "http").await;
        let monitor = monitor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                // The host the page was opened at, to name listeners on every interface.
                let host = request
                    .headers()
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| request.uri().host())
                    .and_then(crate::connect::plain_host);
                let response = route(request.method(), request.uri().path(), host.as_deref(), &monitor);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(MAX_HEAD)
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("http connection: {e}");
            }
        });
    }
}

/// A response with the headers every one carries. (hyper sends no body to HEAD.)
fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn route(method: &Method, path: &str, host: Option<&str>, monitor: &Monitor) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/" | "/index.html" => {
            let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE);
            r.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
            r
        }
        "/api/status" => respond(StatusCode::OK, "application/json", monitor.status().to_string()),
        "/connect" => {
            let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", monitor.connect(host).to_html());
            r.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONNECT_POLICY));
            r
        }
        "/api/connect" => respond(StatusCode::OK, "application/json", monitor.connect(host).to_json().to_string()),
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", monitor.prometheus()),
        "/health" => {
            if monitor.healthy() {
                text(StatusCode::OK, "ok\n".into())
            } else if let Some(reason) = monitor.parts.electrum.index.status().unavailable() {
                text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"))
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "bitcoind unreachable\n".into())
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /, /connect, /api/status, /api/connect, /metrics or /health\n".into(),
        ),
    }
}
