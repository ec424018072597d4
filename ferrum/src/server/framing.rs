//! Messages on the wire: newline-delimited JSON on TCP and TLS, one message per frame on
//! WebSocket. Incoming messages are bounded: an oversized one is discarded (up to the next
//! newline on a byte stream) and reported, never buffered without limit.

use std::io;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// What the reader got.
#[derive(Debug)]
pub(crate) enum Inbound {
    Message(Vec<u8>),
    /// A message over the size limit was dropped.
    TooLarge,
    Closed,
}

pub(crate) trait MessageReader: Send {
    fn next(&mut self) -> impl std::future::Future<Output = io::Result<Inbound>> + Send;
}

pub(crate) trait MessageWriter: Send {
    fn send(&mut self, message: &str) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

/// Newline framing over a byte stream.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    max: usize,
    /// Dropping the rest of an oversized line.
    discarding: bool,
}

impl<R: AsyncRead + Unpin + Send> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader { inner, buf: Vec::with_capacity(4096), scanned: 0, max, discarding: false }
    }
}

impl<R: AsyncRead + Unpin + Send> MessageReader for LineReader<R> {
    async fn next(&mut self) -> io::Result<Inbound> {
        loop {
            if let Some(pos) = self.buf.get(self.scanned..).and_then(|b| b.iter().position(|c| *c == b'\n')) {
                let end = self.scanned + pos;
                let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
                self.scanned = 0;
                if self.discarding {
                    self.discarding = false;
                    continue;
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Inbound::Message(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                // Over the limit without a newline: drop it, and everything up to the next one.
                self.buf.clear();
                self.scanned = 0;
                if !self.discarding {
                    self.discarding = true;
                    return Ok(Inbound::TooLarge);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Inbound::Closed);
            }
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
}

pub(crate) struct LineWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Unpin + Send> LineWriter<W> {
    pub(crate) fn new(inner: W) -> LineWriter<W> {
        LineWriter { inner }
    }
}

impl<W: AsyncWrite + Unpin + Send> MessageWriter for LineWriter<W> {
    async fn send(&mut self, message: &str) -> io::Result<()> {
        let mut framed = Vec::with_capacity(message.len() + 1);
        framed.extend_from_slice(message.as_bytes());
        framed.push(b'\n');
        self.inner.write_all(&framed).await?;
        self.inner.flush().await
    }
}

/// The receiving half of a WebSocket.
pub(crate) struct WsReader<S> {
    inner: futures::stream::SplitStream<WebSocketStream<S>>,
}

/// The sending half of a WebSocket.
pub(crate) struct WsWriter<S> {
    inner: futures::stream::SplitSink<WebSocketStream<S>, Message>,
}

pub(crate) fn split_ws<S: AsyncRead + AsyncWrite + Unpin + Send>(ws: WebSocketStream<S>) -> (WsReader<S>, WsWriter<S>) {
    let (sink, stream) = ws.split();
    (WsReader { inner: stream }, WsWriter { inner: sink })
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> MessageReader for WsReader<S> {
    async fn next(&mut self) -> io::Result<Inbound> {
        loop {
            match self.inner.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(Inbound::Closed),
                Some(Ok(Message::Text(t))) => return Ok(Inbound::Message(t.as_bytes().to_vec())),
                Some(Ok(Message::Binary(b))) => return Ok(Inbound::Message(b.to_vec())),
                // Pings are answered by the library.
                Some(Ok(_)) => continue,
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => return Ok(Inbound::TooLarge),
                Some(Err(e)) => return Err(ws_error(e)),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> MessageWriter for WsWriter<S> {
    async fn send(&mut self, message: &str) -> io::Result<()> {
        self.inner.send(Message::Text(message.into())).await.map_err(ws_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            match r.next().await.unwrap() {
                Inbound::Message(m) => out.push(String::from_utf8(m).unwrap()),
                Inbound::TooLarge => out.push("<too large>".into()),
                Inbound::Closed => return out,
            }
        }
    }

    #[tokio::test]
    async fn lines_blank_lines_and_oversized_ones() {
        let got = read_all(b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n", 100).await;
        assert_eq!(got, vec!["{\"a\":1}", "{\"b\":2}\r"]);
        let mut input = b"{\"x\":1}\n".to_vec();
        input.extend(std::iter::repeat_n(b'z', 50_000));
        input.extend_from_slice(b"\n{\"y\":2}\n");
        let got = read_all(&input, 1000).await;
        assert_eq!(got, vec!["{\"x\":1}", "<too large>", "{\"y\":2}"]);
        // A partial line at the end is not a message.
        assert_eq!(read_all(b"{\"a\":1}\n{\"b\"", 100).await, vec!["{\"a\":1}"]);
    }
}
