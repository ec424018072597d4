//! A small HTTP/1.1 client for bitcoind's RPC and REST server: keep-alive connections in a pool,
//! so several requests can be in flight at once, each on its own connection.
//!
//! bitcoind answers HTTP/1.1 with `Content-Length`; chunked bodies are accepted too, for nodes
//! behind a proxy. Bodies are bounded so a broken peer cannot make us allocate without limit.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::Locked;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest body accepted from the node: a 4 MB block in hex is 8 MB, `getrawmempool true` on a
/// full 300 MB mempool is well under this.
const MAX_BODY: usize = 1 << 30;
const MAX_HEADER_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// Idle connections kept for reuse.
const POOL_SIZE: usize = 32;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No TCP connection could be made, or it broke before a full response arrived.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not a valid HTTP response.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

impl HttpError {
    /// True when the connection could not be made or was lost: the node is down or restarting.
    pub fn is_connection(&self) -> bool {
        matches!(self, HttpError::Io(_) | HttpError::Timeout(_))
    }
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

type Conn = BufReader<TcpStream>;

/// A pool of keep-alive connections to one `host:port`.
pub struct HttpClient {
    addr: String,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl HttpClient {
    pub fn new(addr: String, timeout: Duration) -> Self {
        HttpClient { addr, timeout, idle: Mutex::new(Vec::new()) }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and reads the whole response. A pooled connection that the node closed
    /// while idle is detected and the request retried once on a fresh connection.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let head = build_head(method, path, &self.addr, headers, body.len());
        let fut = async {
            if let Some(conn) = self.take_idle() {
                match exchange(conn, &head, body).await {
                    Ok((resp, conn)) => {
                        self.put_back(conn);
                        return Ok(resp);
                    }
                    // A stale keep-alive connection: retry on a new one.
                    Err(HttpError::Io(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            let (resp, conn) = exchange(BufReader::with_capacity(64 * 1024, stream), &head, body).await?;
            self.put_back(conn);
            Ok(resp)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| HttpError::Timeout(self.timeout))?
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.locked().pop()
    }

    fn put_back(&self, conn: Option<Conn>) {
        if let Some(conn) = conn {
            let mut idle = self.idle.locked();
            if idle.len() < POOL_SIZE {
                idle.push(conn);
            }
        }
    }

    /// Drops idle connections, e.g. after the node restarted.
    pub fn reset(&self) {
        self.idle.locked().clear();
    }
}

fn build_head(method: &str, path: &str, host: &str, headers: &[(&str, &str)], body_len: usize) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {body_len}\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Writes a request and reads its response. Returns the connection when it may be reused.
async fn exchange(mut conn: Conn, head: &[u8], body: &[u8]) -> Result<(Response, Option<Conn>), HttpError> {
    {
        let stream = conn.get_mut();
        stream.write_all(head).await?;
        if !body.is_empty() {
            stream.write_all(body).await?;
        }
        stream.flush().await?;
    }
    let mut line = Vec::new();
    read_line(&mut conn, &mut line).await?;
    if line.is_empty() {
        return Err(HttpError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")));
    }
    let status_line = String::from_utf8_lossy(&line).into_owned();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!("status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for _ in 0..MAX_HEADERS {
        read_line(&mut conn, &mut line).await?;
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(HttpError::Malformed(format!("header {text:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = value.parse().map_err(|_| HttpError::Malformed(format!("Content-Length {value:?}")))?;
                if n > MAX_BODY {
                    return Err(HttpError::Malformed(format!("body of {n} bytes is too large")));
                }
                content_length = Some(n);
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(&mut conn).await?
    } else if let Some(n) = content_length {
        let mut body = vec![0u8; n];
        conn.read_exact(&mut body).await?;
        body
    } else if status == 204 || status == 304 {
        Vec::new()
    } else {
        // Body until EOF; the connection cannot be reused.
        keep_alive = false;
        let mut body = Vec::new();
        (&mut conn).take(MAX_BODY as u64 + 1).read_to_end(&mut body).await?;
        if body.len() > MAX_BODY {
            return Err(HttpError::Malformed("body too large".into()));
        }
        body
    };
    Ok((Response { status, body }, keep_alive.then_some(conn)))
}

/// Reads one CRLF-terminated line into `line` (without the terminator); empty at EOF.
async fn read_line(conn: &mut Conn, line: &mut Vec<u8>) -> Result<(), HttpError> {
    line.clear();
    let n = (&mut *conn).take(MAX_HEADER_LINE as u64).read_until(b'\n', line).await?;
    if n > 0 && line.last() != Some(&b'\n') {
        return Err(HttpError::Malformed("header line too long or truncated".into()));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(())
}

async fn read_chunked(conn: &mut Conn) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        read_line(conn, &mut line).await?;
        let text = String::from_utf8_lossy(&line);
        let size_hex = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size {size_hex:?}")))?;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                read_line(conn, &mut line).await?;
                if line.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(HttpError::Malformed("chunked body too large".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        if let Some(dst) = body.get_mut(start..) {
            conn.read_exact(dst).await?;
        }
        read_line(conn, &mut line).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(reply: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            sock.write_all(reply).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn reads_content_length_body() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let resp = client.request("GET", "/", &[], b"").await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hello");
    }

    #[tokio::test]
    async fn reads_chunked_body() {
        let addr = serve_once(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let resp = client.request("POST", "/", &[("Content-Type", "text/plain")], b"x").await.unwrap();
        assert_eq!(resp.status, 404);
        assert_eq!(resp.body, b"abcde");
    }

    #[tokio::test]
    async fn rejects_garbage_status_line() {
        let addr = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let err = client.request("GET", "/", &[], b"").await.err().unwrap();
        assert!(matches!(err, HttpError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn connection_refused_is_a_connection_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let err = client.request("GET", "/", &[], b"").await.err().unwrap();
        assert!(err.is_connection(), "{err}");
    }
}
