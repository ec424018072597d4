//! Messages on the wire: newline-delimited JSON on TCP and TLS, one message per frame on
//! WebSocket. Incoming messages are bounded: an oversized one is discarded (up to the next
//! newline on a byte stream) and reported, never buffered without limit.

use std::io;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::electrum::jsonrpc::Text;

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
    /// Sends the messages in order, flushed together: answers to pipelined requests leave in
    /// one write instead of one each.
    fn send_all(&mut self, messages: &[&Text]) -> impl std::future::Future<Output = io::Result<()>> + Send;

    fn send(&mut self, message: &Text) -> impl std::future::Future<Output = io::Result<()>> + Send {
        async move { self.send_all(&[message]).await }
    }
}

/// Newline framing over a byte stream.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Where the next message starts in `buf`: the bytes before it were handed out, and are
    /// dropped only before the next read (moving the rest once per read, not once per line).
    start: usize,
    /// Bytes of `buf` from `start` already searched for a newline.
    scanned: usize,
    max: usize,
    /// Dropping the rest of an oversized line.
    discarding: bool,
}

impl<R: AsyncRead + Unpin + Send> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader { inner, buf: Vec::with_capacity(4096), start: 0, scanned: 0, max, discarding: false }
    }
}

impl<R: AsyncRead + Unpin + Send> MessageReader for LineReader<R> {
    async fn next(&mut self) -> io::Result<Inbound> {
        loop {
            let from = self.start + self.scanned;
            if let Some(pos) = self.buf.get(from..).and_then(|b| b.iter().position(|c| *c == b'\n')) {
                let end = from + pos;
                let line = self.buf.get(self.start..end).unwrap_or_default();
                let blank = line.iter().all(u8::is_ascii_whitespace);
                let message = (!self.discarding && !blank).then(|| line.to_vec());
                self.start = end + 1;
                self.scanned = 0;
                self.discarding = false;
                match message {
                    Some(m) => return Ok(Inbound::Message(m)),
                    None => continue,
                }
            }
            // Everything before `start` was handed out; the rest is a partial line.
            self.buf.drain(..self.start);
            self.start = 0;
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

/// Pieces of messages up to this size are copied into one buffer with their neighbours; a
/// larger one is written from where it lies (a long history is megabytes).
const COPY_BELOW: usize = 64 * 1024;

impl<W: AsyncWrite + Unpin + Send> MessageWriter for LineWriter<W> {
    async fn send_all(&mut self, messages: &[&Text]) -> io::Result<()> {
        let pieces = || messages.iter().flat_map(|m| m.pieces());
        let small: usize = pieces().filter(|p| p.len() < COPY_BELOW).map(str::len).sum();
        let mut framed = Vec::with_capacity(small + messages.len());
        for message in messages {
            for piece in message.pieces() {
                if piece.len() < COPY_BELOW {
                    framed.extend_from_slice(piece.as_bytes());
                } else {
                    self.inner.write_all(&framed).await?;
                    framed.clear();
                    self.inner.write_all(piece.as_bytes()).await?;
                }
            }
            framed.push(b'\n');
        }
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
    async fn send_all(&mut self, messages: &[&Text]) -> io::Result<()> {
        for message in messages {
            // A frame is one buffer: the pieces are joined.
            self.inner.feed(Message::Text(message.to_string().into())).await.map_err(ws_error)?;
        }
        self.inner.flush().await.map_err(ws_error)
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
    async fn messages_sent_together_are_framed_in_order() {
        let mut out = Vec::new();
        let mut w = LineWriter::new(&mut out);
        w.send_all(&[&"{\"a\":1}".into(), &"{\"b\":2}".into()]).await.unwrap();
        w.send(&"{\"c\":3}".into()).await.unwrap();
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
        // A large message between small ones is written in place, in order; so is a large
        // piece in the middle of a message.
        let large = format!("[{}]", "1,".repeat(COPY_BELOW) + "1");
        let mut out = Vec::new();
        LineWriter::new(&mut out).send_all(&[&"x".into(), &large.clone().into(), &"y".into()]).await.unwrap();
        assert_eq!(out, format!("x\n{large}\ny\n").into_bytes());
        let mut pieces = Text::from("{\"a\":");
        pieces.push_shared(std::sync::Arc::new(large.clone()));
        pieces.push_str("}");
        let mut out = Vec::new();
        LineWriter::new(&mut out).send_all(&[&"x".into(), &pieces, &pieces]).await.unwrap();
        assert_eq!(out, format!("x\n{{\"a\":{large}}}\n{{\"a\":{large}}}\n").into_bytes());
        let mut out = Vec::new();
        LineWriter::new(&mut out).send(&large.clone().into()).await.unwrap();
        assert_eq!(out, format!("{large}\n").into_bytes());
        let out = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n".to_vec();
        // Read back through the reader, fed a byte at a time and all at once.
        assert_eq!(read_all(&out, 100).await, vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        let mut slow = Vec::new();
        let mut r = LineReader::new(tokio_test_reader(&out), 100);
        while let Inbound::Message(m) = r.next().await.unwrap() {
            slow.push(String::from_utf8(m).unwrap());
        }
        assert_eq!(slow, vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    /// A reader that hands out one byte per read.
    fn tokio_test_reader(bytes: &[u8]) -> impl AsyncRead + Unpin + Send + '_ {
        struct OneByte<'a>(&'a [u8]);
        impl AsyncRead for OneByte<'_> {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                if let Some((first, rest)) = self.0.split_first() {
                    buf.put_slice(&[*first]);
                    self.0 = rest;
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        OneByte(bytes)
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
