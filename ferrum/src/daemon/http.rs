//! bitcoind's RPC and REST server over HTTP/1.1, spoken by hyper (`client::conn::http1`), with
//! a small pool of keep-alive connections so that several requests can be in flight at once,
//! each on its own connection.
//!
//! Each connection is driven by the request using it rather than by a task of its own (what
//! hyper-util's pooled client does): a body is then read piece by piece into one buffer that
//! hyper reuses, where a connection task hands each piece over to another task and reads the
//! next into fresh memory (the page faults showed in profiles). Measured on the benchmark's
//! small chain (every block fetched 8 at a time, over REST and as JSON-RPC hex), hyper-util's
//! client took 1.3 to 1.9 times the CPU time of this one, which is on a par with a hand-written
//! client.
//!
//! What a broken or hostile peer could make us hold is bounded by hyper's settings (the response
//! head's size and header count, the read buffer) and by a limit on the body stream
//! ([`MAX_BODY`]); every exchange has a deadline.

use std::error::Error as StdError;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::sync::Locked;

/// Largest body accepted from the node: a 4 MB block in hex is 8 MB, `getrawmempool true` on a
/// full 300 MB mempool is well under this.
const MAX_BODY: usize = 1 << 30;
/// Largest response head: status line and headers.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// The most a connection's read buffer holds; larger bodies are read through it in pieces.
const READ_BUFFER: usize = 256 * 1024;
/// Idle connections kept for reuse.
const POOL_SIZE: usize = 32;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// No TCP connection could be made, or it broke before a full response arrived.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not a valid HTTP response, or one over a bound.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The request could not be written as HTTP (a method, path or header value that is not
    /// valid there).
    #[error("invalid HTTP request: {0}")]
    Request(String),
}

impl HttpError {
    /// True when the connection could not be made or was lost: the node is down or restarting.
    pub(crate) fn is_connection(&self) -> bool {
        matches!(self, HttpError::Io(_) | HttpError::Timeout(_))
    }
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// One keep-alive connection: hyper's request sender and the connection it writes to. Idle in
/// the pool, nothing polls it; the next request that takes it drives it.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    conn: http1::Connection<TokioIo<TcpStream>, Full<Bytes>>,
}

/// A pool of keep-alive connections to one `host:port`.
pub(crate) struct HttpClient {
    addr: String,
    timeout: Duration,
    /// At most [`POOL_SIZE`], each between two complete exchanges.
    idle: Mutex<Vec<Conn>>,
}

impl HttpClient {
    pub(crate) fn new(addr: String, timeout: Duration) -> Self {
        HttpClient { addr, timeout, idle: Mutex::new(Vec::new()) }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and reads the whole response, within the client's timeout. A request
    /// that a pooled connection failed (the node closed it while idle, perhaps just as the
    /// request went out) is sent once more, on a fresh connection if no other is idle.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let body = Bytes::copy_from_slice(body);
        let fut = async {
            match self.exchange(method, path, headers, body.clone()).await {
                Err(Failure { error: HttpError::Io(_), reused: true }) => {
                    self.exchange(method, path, headers, body).await.map_err(|f| f.error)
                }
                result => result.map_err(|f| f.error),
            }
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| HttpError::Timeout(self.timeout))?
    }

    /// Drops idle connections, e.g. after the node restarted.
    pub(crate) fn reset(&self) {
        self.idle.locked().clear();
    }

    /// An idle connection that is still open, or a new one; and whether it was idle.
    async fn checkout(&self) -> Result<(Conn, bool), HttpError> {
        loop {
            let Some(mut idle) = self.idle.locked().pop() else { break };
            // Polled once, a connection that the node closed (or wrote to) while it sat idle
            // ends; an open one has nothing to do.
            if (&mut idle.conn).now_or_never().is_none() {
                return Ok((idle, true));
            }
        }
        let stream = TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::Builder::new()
            .max_header_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .max_buf_size(READ_BUFFER)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| classify(&e))?;
        Ok((Conn { sender, conn }, false))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, Failure> {
        let mut request = hyper::Request::builder().method(method).uri(path).header(hyper::header::HOST, &self.addr);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| Failure { error: HttpError::Request(e.to_string()), reused: false })?;
        let (Conn { mut sender, mut conn }, reused) =
            self.checkout().await.map_err(|error| Failure { error, reused: false })?;
        let (result, open) = {
            let sender = &mut sender;
            let answer = async move {
                sender.ready().await.map_err(|e| classify(&e))?;
                let response = sender.send_request(request).await.map_err(|e| classify(&e))?;
                let status = response.status().as_u16();
                let body = read_body(response.into_body()).await?;
                Ok(Response { status, body })
            };
            tokio::pin!(answer);
            // The connection runs beside the answer, in this task: each piece of the body is
            // taken (and its memory released) before hyper reads the next.
            tokio::select! {
                biased;
                result = &mut answer => (result, true),
                // Closed by the node after the answer (`Connection: close`, a body up to the
                // end of the stream), or failed: what was read is still delivered.
                _ = &mut conn => (answer.await, false),
            }
        };
        let response = result.map_err(|error| Failure { error, reused })?;
        if open {
            let mut idle = self.idle.locked();
            if idle.len() < POOL_SIZE {
                idle.push(Conn { sender, conn });
            }
        }
        Ok(response)
    }
}

/// A failed exchange, and whether its connection came from the pool (then it may have been one
/// the node had just closed, and another attempt may succeed).
struct Failure {
    error: HttpError,
    reused: bool,
}

/// The whole body, at most [`MAX_BODY`] bytes; a `Content-Length` over the bound fails before
/// anything is read.
async fn read_body(body: Incoming) -> Result<Vec<u8>, HttpError> {
    let announced = body.size_hint().lower();
    if announced > MAX_BODY as u64 {
        return Err(HttpError::Malformed(format!("body of {announced} bytes is too large")));
    }
    let mut out = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    let mut body = Limited::new(body, MAX_BODY);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(|e| classify(e.as_ref()))?.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Sorts a failure from hyper, or from the body stream, into the kinds the RPC client decides
/// by: the peer broke the protocol or a bound, or the connection failed (then with the
/// operating system's own words, e.g. "Connection refused").
fn classify(error: &(dyn StdError + 'static)) -> HttpError {
    let chain = || causes(error);
    if chain().any(|e| e.is::<LengthLimitError>()) {
        return HttpError::Malformed("body too large".into());
    }
    if let Some(e) = chain().find_map(|e| e.downcast_ref::<hyper::Error>()) {
        if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            return HttpError::Malformed(e.to_string());
        }
    }
    if let Some(e) = chain().filter_map(|e| e.downcast_ref::<io::Error>()).last() {
        // A chunked body that does not decode comes as invalid data from the decoder.
        return match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => HttpError::Malformed(e.to_string()),
            kind => HttpError::Io(io::Error::new(kind, e.to_string())),
        };
    }
    // Closed, canceled or incomplete: the connection ended before the answer did.
    let reason = chain().last().map_or_else(|| error.to_string(), ToString::to_string);
    HttpError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, reason))
}

/// `error` and its sources, outermost first.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn serve_once(reply: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            // The client may hang up first, on a reply it refuses.
            let _ = sock.write_all(reply).await;
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
    async fn reads_body_until_close_without_length() {
        let addr = serve_once(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let resp = client.request("GET", "/", &[], b"").await.unwrap();
        assert_eq!(resp.body, b"until the end");
    }

    #[tokio::test]
    async fn rejects_garbage_status_line() {
        let addr = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let err = client.request("GET", "/", &[], b"").await.err().unwrap();
        assert!(matches!(err, HttpError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn rejects_a_body_over_the_bound_before_reading_it() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\n").await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let err = client.request("GET", "/", &[], b"").await.err().unwrap();
        assert!(matches!(&err, HttpError::Malformed(m) if m.contains("too large")), "{err}");
    }

    #[tokio::test]
    async fn rejects_too_many_headers() {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            reply.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        reply.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        let addr = serve_once(reply.leak()).await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        let err = client.request("GET", "/", &[], b"").await.err().unwrap();
        assert!(matches!(err, HttpError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn rejects_a_head_over_the_bound() {
        let mut reply = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        reply.resize(reply.len() + MAX_HEAD, b'a');
        reply.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let addr = serve_once(reply.leak()).await;
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
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn silence_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let client = HttpClient::new(addr, Duration::from_millis(200));
        let err = client.request("GET", "/", &[], b"").await.err().unwrap();
        assert!(matches!(err, HttpError::Timeout(_)), "{err}");
        drop(listener);
    }

    /// Answers `answers` requests on each connection it accepts, then reads the next one and
    /// closes without a word, as a node does when its idle timeout ends a kept-alive connection
    /// just as a request arrives. Returns the address and the count of connections accepted.
    async fn serve_keep_alive(answers: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    for _ in 0..answers {
                        let _ = sock.read(&mut buf).await;
                        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                    }
                    let _ = sock.read(&mut buf).await;
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn idle_connections_are_reused() {
        let (addr, accepted) = serve_keep_alive(100).await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(client.request("POST", "/", &[], b"{}").await.unwrap().body, b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        client.reset();
        assert_eq!(client.request("GET", "/", &[], b"").await.unwrap().body, b"ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_kept_alive_connection_closed_under_a_request_is_retried() {
        let (addr, accepted) = serve_keep_alive(1).await;
        let client = HttpClient::new(addr, Duration::from_secs(5));
        for _ in 0..3 {
            assert_eq!(client.request("POST", "/", &[], b"{}").await.unwrap().body, b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }
}
