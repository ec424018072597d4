//! A ZMQ subscriber for bitcoind's notifications (`-zmqpubhashblock`, `-zmqpubsequence`):
//! ZMTP 3.0 over TCP with the NULL mechanism, which is what bitcoind's publishers speak.
//! Only what a SUB socket needs: greeting, READY, subscriptions, and multipart messages.
//!
//! Written here rather than with the `zeromq` crate (which the tests use as an independent
//! publisher) because that crate cannot bound what a peer sends: its decoder reserves whatever
//! length a frame header claims, with no option to refuse it (0.4.1 to 0.7.0, the newest). A
//! 9-byte header claiming 1 TiB aborts the whole process ("memory allocation of … bytes
//! failed", SIGABRT, measured with the `SubSocket` of 0.6.0 and 0.7.0), and a 256 MiB frame
//! is taken whole; it also buffers any number of parts. Here a frame over `MAX_FRAME` or
//! a message over `MAX_PARTS` ends the connection, which [`listen`] opens again after its
//! back-off.

use std::time::Duration;

use crate::hostport;
use crate::sync::Backoff;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest frame accepted: notifications are a topic, a 32-byte hash or a transaction, and a
/// sequence number; a raw transaction can reach 4 MB.
const MAX_FRAME: u64 = 8 << 20;

/// A message still going on after this many parts ends the connection: bitcoind's have three
/// (topic, body, sequence number).
const MAX_PARTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ZmqError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

/// `tcp://host:port` → `host:port`. A wildcard bind address (`0.0.0.0`, `[::]`, `*`) means
/// "the node's own host", which `node_host` names.
pub(crate) fn endpoint(address: &str, node_host: &str) -> Option<String> {
    let (host, port) = hostport::split(address.strip_prefix("tcp://")?).ok()?;
    let port = port?.parse::<u16>().ok()?;
    let host = match host {
        "0.0.0.0" | "::" | "*" => node_host,
        h => h,
    };
    Some(hostport::join(host, port))
}

fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3; // version 3.0
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// A command frame: name and properties.
fn command(name: &str, properties: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name.as_bytes());
    for (k, v) in properties {
        body.push(k.len() as u8);
        body.extend_from_slice(k.as_bytes());
        body.extend_from_slice(&(v.len() as u32).to_be_bytes());
        body.extend_from_slice(v);
    }
    frame(0x04, &body)
}

fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + 9);
    if body.len() < 256 {
        f.push(flags);
        f.push(body.len() as u8);
    } else {
        f.push(flags | 0x02);
        f.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    f.extend_from_slice(body);
    f
}

/// Reads one frame: (flags, body).
async fn read_frame(stream: &mut TcpStream) -> Result<(u8, Vec<u8>), ZmqError> {
    let flags = stream.read_u8().await?;
    let len = if flags & 0x02 != 0 { stream.read_u64().await? } else { u64::from(stream.read_u8().await?) };
    if len > MAX_FRAME {
        return Err(ZmqError::Protocol(format!("frame of {len} bytes")));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    Ok((flags, body))
}

/// A connected SUB socket.
pub struct Subscriber {
    stream: TcpStream,
}

impl Subscriber {
    /// Connects to `addr` (`host:port`) and subscribes to `topics`.
    pub async fn connect(addr: &str, topics: &[&str]) -> Result<Subscriber, ZmqError> {
        let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| ZmqError::Protocol("connect timed out".into()))??;
        stream.set_nodelay(true)?;
        stream.write_all(&greeting()).await?;
        let mut peer = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut peer))
            .await
            .map_err(|_| ZmqError::Protocol("no greeting".into()))??;
        if peer[0] != 0xff || peer[9] != 0x7f || peer[10] < 3 || &peer[12..16] != b"NULL" {
            return Err(ZmqError::Protocol("not a ZMTP 3 NULL-mechanism peer".into()));
        }
        stream.write_all(&command("READY", &[("Socket-Type", b"SUB")])).await?;
        let (flags, body) = read_frame(&mut stream).await?;
        if flags & 0x04 == 0 || body.get(1..6) != Some(b"READY".as_slice()) {
            return Err(ZmqError::Protocol("expected READY".into()));
        }
        for topic in topics {
            // ZMTP 3.0 subscription: a message whose first byte is 1.
            let mut body = vec![1u8];
            body.extend_from_slice(topic.as_bytes());
            stream.write_all(&frame(0, &body)).await?;
        }
        Ok(Subscriber { stream })
    }

    /// The next multipart message (commands are skipped).
    pub async fn recv(&mut self) -> Result<Vec<Vec<u8>>, ZmqError> {
        let mut parts = Vec::new();
        loop {
            let (flags, body) = read_frame(&mut self.stream).await?;
            if flags & 0x04 != 0 {
                continue;
            }
            parts.push(body);
            if flags & 0x01 == 0 {
                return Ok(parts);
            }
            if parts.len() > MAX_PARTS {
                return Err(ZmqError::Protocol("message of too many parts".into()));
            }
        }
    }
}

/// Keeps a subscription to `topic` at `addr` and calls `on_message` with each message's body
/// (the part after the topic). Reconnects with capped backoff; logs loss and recovery once.
pub(crate) async fn listen(addr: String, topic: &'static str, mut on_message: impl FnMut(&[u8]) + Send) {
    // Whether the last attempt failed: loss and recovery are logged once each.
    let mut failing = false;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match Subscriber::connect(&addr, &[topic]).await {
            Ok(mut sub) => {
                if std::mem::replace(&mut failing, false) {
                    tracing::info!(%addr, topic, "ZMQ subscription restored");
                } else {
                    tracing::debug!(%addr, topic, "ZMQ subscription up");
                }
                backoff.reset();
                loop {
                    match sub.recv().await {
                        Ok(parts) => {
                            if parts.first().map(Vec::as_slice) == Some(topic.as_bytes()) {
                                on_message(parts.get(1).map(Vec::as_slice).unwrap_or_default());
                            }
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(%addr, topic, "ZMQ subscription lost ({e}); polling until it is back");
                            }
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%addr, topic, "cannot subscribe to ZMQ ({e}); polling until it works");
                }
            }
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("tcp://127.0.0.1:28332", "x").as_deref(), Some("127.0.0.1:28332"));
        assert_eq!(endpoint("tcp://0.0.0.0:28332", "bitcoind").as_deref(), Some("bitcoind:28332"));
        assert_eq!(endpoint("ipc:///tmp/x", "h"), None);
        assert_eq!(endpoint("tcp://host:port", "h"), None);
        assert_eq!(endpoint("tcp://[::]:28332", "fd00::2").as_deref(), Some("[fd00::2]:28332"));
        assert_eq!(endpoint("tcp://[fd00::1]:28332", "h").as_deref(), Some("[fd00::1]:28332"));
    }

    #[test]
    fn frames() {
        assert_eq!(frame(0, b"ab"), vec![0, 2, b'a', b'b']);
        let long = frame(1, &[7u8; 300]);
        assert_eq!(long[0], 0x03);
        assert_eq!(u64::from_be_bytes(long[1..9].try_into().unwrap()), 300);
        let ready = command("READY", &[("Socket-Type", b"SUB")]);
        assert_eq!(ready[0], 0x04);
        assert_eq!(&ready[3..8], b"READY");
    }

    /// A publisher that greets, answers READY, writes `then` and keeps the connection open, so
    /// that a refusal comes from the subscriber's own bounds, not from the end of the stream.
    async fn publisher_sending(then: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(&greeting()).await.unwrap();
            let mut peer = [0u8; 64];
            s.read_exact(&mut peer).await.unwrap();
            s.write_all(&command("READY", &[("Socket-Type", b"PUB")])).await.unwrap();
            s.write_all(&then).await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        addr
    }

    async fn first_message(then: Vec<u8>) -> Result<Vec<Vec<u8>>, ZmqError> {
        let addr = publisher_sending(then).await;
        let mut sub = Subscriber::connect(&addr, &["hashblock"]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), sub.recv()).await.unwrap()
    }

    #[tokio::test]
    async fn a_frame_over_the_bound_is_refused_from_its_header() {
        // The header alone claims 1 TiB; nothing of it is read, nor reserved.
        let mut header = vec![0x02];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let e = first_message(header).await.unwrap_err();
        assert!(e.to_string().contains("frame of 1099511627776 bytes"), "{e}");

        let largest = usize::try_from(MAX_FRAME).unwrap();
        let mut message = frame(0x01, b"rawtx");
        message.extend(frame(0, &vec![7; largest]));
        let parts = first_message(message).await.unwrap();
        assert_eq!((parts[0].as_slice(), parts[1].len()), (b"rawtx".as_slice(), largest), "the bound itself is taken");
    }

    #[tokio::test]
    async fn a_message_going_on_past_the_most_parts_is_refused() {
        let endless: Vec<u8> = (0..=MAX_PARTS).flat_map(|_| frame(0x01, b"x")).collect();
        let e = first_message(endless).await.unwrap_err();
        assert!(e.to_string().contains("too many parts"), "{e}");

        let mut notification = frame(0x01, b"hashblock");
        notification.extend(frame(0x01, &[0xab; 32]));
        notification.extend(frame(0, &7u32.to_le_bytes()));
        let parts = first_message(notification).await.unwrap();
        assert_eq!(parts, [b"hashblock".to_vec(), vec![0xab; 32], 7u32.to_le_bytes().to_vec()]);
    }
}
