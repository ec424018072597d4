//! The HTTP listener: the status page (`/`), its data (`/api/status`), Prometheus metrics
//! (`/metrics`) and a health check (`/health`: 200 when serving, 503 while indexing or when
//! the node is unreachable). GET and HEAD only, one request per connection, bounded in size and
//! time, so it needs no HTTP framework and a browser or a scraper cannot hold it up.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::monitor::Monitor;

/// The status page: one self-contained file, no external resources.
pub const STATUS_PAGE: &str = include_str!("status.html");

/// Largest request head read, bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Time a client has to send its request.
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
            if let Err(e) = connection(stream, &monitor).await {
                tracing::debug!("http connection: {e}");
            }
        });
    }
}

/// A response: status, content type, extra headers, body.
struct Reply {
    status: &'static str,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: &'static str, body: &str) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", headers: Vec::new(), body: body.as_bytes().to_vec() }
    }
}

async fn connection(mut stream: TcpStream, monitor: &Monitor) -> Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await??;
    let (method, target) = {
        let line = head.lines().next().unwrap_or_default();
        let mut parts = line.split_whitespace();
        (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string())
    };
    let reply = route(&method, &target, monitor);
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(&reply.body);
    }
    stream.write_all(&bytes).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Reads up to the end of the request head (the blank line).
async fn read_head(stream: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the request was complete");
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        anyhow::ensure!(buf.len() <= MAX_HEAD, "request head over {MAX_HEAD} bytes");
    }
}

fn route(method: &str, target: &str, monitor: &Monitor) -> Reply {
    if method != "GET" && method != "HEAD" {
        let mut r = Reply::text("405 Method Not Allowed", "only GET and HEAD\n");
        r.headers.push(("Allow", "GET, HEAD"));
        return r;
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    match path {
        "/" | "/index.html" => Reply {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            headers: vec![("Content-Security-Policy", PAGE_POLICY)],
            body: STATUS_PAGE.as_bytes().to_vec(),
        },
        "/api/status" => Reply {
            status: "200 OK",
            content_type: "application/json",
            headers: Vec::new(),
            body: monitor.status().to_string().into_bytes(),
        },
        "/metrics" => Reply {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: Vec::new(),
            body: monitor.prometheus().into_bytes(),
        },
        "/health" => {
            if monitor.healthy() {
                Reply::text("200 OK", "ok\n")
            } else if let Some(reason) = monitor.electrum.index.status().unavailable() {
                Reply::text("503 Service Unavailable", &format!("{reason}\n"))
            } else {
                Reply::text("503 Service Unavailable", "bitcoind unreachable\n")
            }
        }
        _ => Reply::text("404 Not Found", "not found; try /, /api/status, /metrics or /health\n"),
    }
}
