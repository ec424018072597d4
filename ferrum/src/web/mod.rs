//! The HTTP listener: the status page (`/`), its data (`/api/status`), Prometheus metrics
//! (`/metrics`) and a health check (`/health`: 200 when serving, 503 while indexing or when
//! the node is unreachable). HTTP/1.1 by hyper; GET and HEAD only, one request per connection,
//! the request head bounded in size and time, so a browser or a scraper cannot hold it up.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::monitor::Monitor;

/// The status page: one self-contained file, no external resources.
pub const STATUS_PAGE: &str = include_str!("status.html");

/// Largest request head read, bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The page may run its own inline script and fetch from this origin; nothing else.
const PAGE_POLICY: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// Serves HTTP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, monitor: Arc<Monitor>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving the status page and metrics on http://{addr}/");
    }
    loop {
        let (stream, _) = crate::server::accept(&listener, "http").await;
        let monitor = monitor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let reply = route(request.method(), request.uri().path(), &monitor);
                async move { Ok::<_, Infallible>(reply.into_response()) }
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

/// A response: status, content type, extra headers, body.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    headers: Vec<(hyper::header::HeaderName, &'static str)>,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: StatusCode, body: &str) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", headers: Vec::new(), body: body.as_bytes().to_vec() }
    }

    fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply { status: StatusCode::OK, content_type, headers: Vec::new(), body }
    }

    /// The response, with the headers every answer carries. (hyper sends no body to HEAD.)
    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        for (name, value) in self.headers {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

fn route(method: &Method, path: &str, monitor: &Monitor) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        let mut r = Reply::text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers.push((ALLOW, "GET, HEAD"));
        return r;
    }
    match path {
        "/" | "/index.html" => Reply {
            headers: vec![(CONTENT_SECURITY_POLICY, PAGE_POLICY)],
            ..Reply::ok("text/html; charset=utf-8", STATUS_PAGE.as_bytes().to_vec())
        },
        "/api/status" => Reply::ok("application/json", monitor.status().to_string().into_bytes()),
        "/metrics" => Reply::ok("text/plain; version=0.0.4; charset=utf-8", monitor.prometheus().into_bytes()),
        "/health" => {
            if monitor.healthy() {
                Reply::text(StatusCode::OK, "ok\n")
            } else if let Some(reason) = monitor.electrum.index.status().unavailable() {
                Reply::text(StatusCode::SERVICE_UNAVAILABLE, &format!("{reason}\n"))
            } else {
                Reply::text(StatusCode::SERVICE_UNAVAILABLE, "bitcoind unreachable\n")
            }
        }
        _ => Reply::text(StatusCode::NOT_FOUND, "not found; try /, /api/status, /metrics or /health\n"),
    }
}
