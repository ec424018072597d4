//! One P2P connection to the node, only to hear about new blocks the moment the node accepts
//! them (`cmpctblock` in high-bandwidth mode, `headers` after `sendheaders`, or `inv`). Any
//! Bitcoin Core version, no configuration.
//!
//! High-bandwidth compact blocks matter: the node pushes a `cmpctblock` to such peers from the
//! validation thread as soon as a block's proof of work checks out, while `headers` and `inv`
//! wait for the node's message loop, which wakes every 100 ms when no peer talks to it. A block
//! submitted over RPC was announced 100 ms late that way.
//! Reconnects with capped backoff; the caller keeps polling as a fallback meanwhile.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::network::Network;
use crate::sync::Backoff;
use crate::sync::Locked;
use crate::types::{sha256d, BlockHash};

const PROTOCOL_VERSION: i32 = 70016;
/// Larger messages than this (the biggest we care about is `inv`, 1.8 MB at most) end the
/// connection.
const MAX_PAYLOAD: usize = 4 << 20;
const MSG_BLOCK: u32 = 2;
const MSG_WITNESS_BLOCK: u32 = 0x4000_0002;
const MSG_TX: u32 = 1;
const MSG_WITNESS_TX: u32 = 0x4000_0001;
const MSG_WTX: u32 = 5;

/// Block announcements, for the indexer: a wake-up, and the hash of the last block announced
/// when the announcement names it.
#[derive(Default)]
pub struct Announcements {
    pub notify: Notify,
    latest: std::sync::Mutex<Option<BlockHash>>,
}

impl Announcements {
    /// Wakes the indexer; `hash` is the announced block when known.
    pub fn block(&self, hash: Option<BlockHash>) {
        if let Some(h) = hash {
            *self.latest.locked() = Some(h);
        }
        self.notify.notify_one();
    }

    /// The last block announced by hash, if any, taking it.
    pub fn take_latest(&self) -> Option<BlockHash> {
        self.latest.locked().take()
    }
}

/// Who to wake on announcements.
#[derive(Clone)]
pub struct Triggers {
    pub blocks: Arc<Announcements>,
    /// `Some`: ask for transaction announcements too.
    pub txs: Option<Arc<Notify>>,
}

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

fn message(magic: [u8; 4], command: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(24 + payload.len());
    m.extend_from_slice(&magic);
    let mut cmd = [0u8; 12];
    for (dst, src) in cmd.iter_mut().zip(command.bytes()) {
        *dst = src;
    }
    m.extend_from_slice(&cmd);
    m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    m.extend_from_slice(&sha256d(&[payload])[..4]);
    m.extend_from_slice(payload);
    m
}

fn version_payload(nonce: u64, relay: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(100);
    p.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes()); // services: none
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    p.extend_from_slice(&(now as i64).to_le_bytes());
    for _ in 0..2 {
        // addr_recv, addr_from: services, IPv6 address, port.
        p.extend_from_slice(&[0u8; 8 + 16 + 2]);
    }
    p.extend_from_slice(&nonce.to_le_bytes());
    let agent = concat!("/ferrum:", env!("CARGO_PKG_VERSION"), "/");
    p.push(agent.len() as u8);
    p.extend_from_slice(agent.as_bytes());
    p.extend_from_slice(&0i32.to_le_bytes()); // start height
    p.push(u8::from(relay)); // transaction announcements wanted?
    p
}

/// Reads one message: (command, payload).
async fn read_message(stream: &mut TcpStream, magic: [u8; 4]) -> Result<(String, Vec<u8>), P2pError> {
    let mut head = [0u8; 24];
    stream.read_exact(&mut head).await?;
    if head[..4] != magic {
        return Err(P2pError::Protocol("wrong network magic".into()));
    }
    let command: String = head[4..16].iter().take_while(|b| **b != 0).map(|b| char::from(*b)).collect();
    let len = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(P2pError::Protocol(format!("{command} message of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    if sha256d(&[&payload])[..4] != head[20..24] {
        return Err(P2pError::Protocol(format!("bad checksum on {command}")));
    }
    Ok((command, payload))
}

/// What an `inv` payload announces: (a block, a transaction).
/// The last block and whether any transaction is announced in an `inv`.
fn inv_kinds(payload: &[u8]) -> (Option<[u8; 32]>, bool) {
    let mut r = crate::parse::Reader::new(payload);
    let Ok(n) = r.count(36) else { return (None, false) };
    let (mut block, mut tx) = (None, false);
    for _ in 0..n {
        match (r.u32(), r.take(32)) {
            (Ok(MSG_BLOCK | MSG_WITNESS_BLOCK), Ok(hash)) => block = hash.try_into().ok(),
            (Ok(MSG_TX | MSG_WITNESS_TX | MSG_WTX), Ok(_)) => tx = true,
            (Ok(_), Ok(_)) => {}
            _ => break,
        }
    }
    (block, tx)
}

/// `getheaders` from `hash`: the node answers with the headers after it (none when it is the
/// tip) and from then on counts us as having its tip's header, which is what lets it push the
/// next block to us as a compact block instead of waiting to send an `inv`.
fn getheaders_payload(hash: &[u8; 32]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + 1 + 32 + 32);
    p.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    p.push(1);
    p.extend_from_slice(hash);
    p.extend_from_slice(&[0; 32]);
    p
}

/// Connects, handshakes, and calls `notify` on every block announcement until the connection
/// fails.
async fn session(
    addr: &str,
    network: Network,
    triggers: &Triggers,
    connected: &(dyn Fn() + Sync),
) -> Result<(), P2pError> {
    let magic = network.magic();
    let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| P2pError::Protocol("connect timed out".into()))??;
    stream.set_nodelay(true)?;
    let nonce = u64::from_le_bytes(
        sha256d(&[addr.as_bytes(), &std::process::id().to_le_bytes()])[..8].try_into().unwrap_or_default(),
    );
    stream.write_all(&message(magic, "version", &version_payload(nonce, triggers.txs.is_some()))).await?;
    let mut handshaken = false;
    loop {
        let (command, payload) = if handshaken {
            read_message(&mut stream, magic).await?
        } else {
            tokio::time::timeout(Duration::from_secs(30), read_message(&mut stream, magic))
                .await
                .map_err(|_| P2pError::Protocol("no handshake within 30 s".into()))??
        };
        match command.as_str() {
            "version" => stream.write_all(&message(magic, "verack", &[])).await?,
            "verack" => {
                handshaken = true;
                stream.write_all(&message(magic, "sendheaders", &[])).await?;
                // BIP152: announce = true (high-bandwidth), version 2 (segwit).
                let sendcmpct = [1u8, 2, 0, 0, 0, 0, 0, 0, 0];
                stream.write_all(&message(magic, "sendcmpct", &sendcmpct)).await?;
                connected();
                // Whatever happened while we were away.
                triggers.blocks.block(None);
            }
            "ping" => stream.write_all(&message(magic, "pong", &payload)).await?,
            "headers" if payload.first().is_some_and(|n| *n > 0) => triggers.blocks.block(None),
            // Sent before the node has connected the block: its hash tells the indexer what to
            // wait for.
            "cmpctblock" => {
                let hash = payload.get(..80).map(BlockHash::of_header);
                triggers.blocks.block(hash);
            }
            "inv" => {
                let (block, tx) = inv_kinds(&payload);
                if let Some(hash) = block {
                    triggers.blocks.block(None);
                    stream.write_all(&message(magic, "getheaders", &getheaders_payload(&hash))).await?;
                }
                if let (true, Some(txs)) = (tx, &triggers.txs) {
                    txs.notify_one();
                }
            }
            _ => {}
        }
    }
}

/// Keeps a P2P connection to `addr` up for as long as the task runs, calling `notify` on block
/// announcements. Logs the first failure and the recovery, not every retry.
pub async fn listen(addr: String, network: Network, triggers: Triggers) {
    let failing = std::sync::atomic::AtomicBool::new(false);
    let connected = std::sync::atomic::AtomicBool::new(false);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        connected.store(false, Ordering::Relaxed);
        let on_connect = || {
            connected.store(true, Ordering::Relaxed);
            if failing.swap(false, Ordering::Relaxed) {
                tracing::info!(%addr, "P2P connection to bitcoind restored");
            } else {
                tracing::debug!(%addr, "P2P connection to bitcoind up");
            }
        };
        if let Err(e) = session(&addr, network, &triggers, &on_connect).await {
            if !failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(%addr, "P2P connection to bitcoind lost ({e}); polling until it is back");
            }
        }
        if connected.load(Ordering::Relaxed) {
            backoff.reset();
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inv_parsing() {
        let mut p = vec![2u8];
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(&MSG_WITNESS_BLOCK.to_le_bytes());
        p.extend_from_slice(&[0; 32]);
        p[41] = 7; // the first byte of the block's hash
        let mut hash = [0u8; 32];
        hash[0] = 7;
        assert_eq!(inv_kinds(&p), (Some(hash), true));
        p[37] = 1; // second entry: a transaction
        assert_eq!(inv_kinds(&p), (None, true));
        assert_eq!(inv_kinds(&[0xff, 0xff]), (None, false));
    }

    #[test]
    fn message_framing() {
        let m = message([1, 2, 3, 4], "ping", &[9; 8]);
        assert_eq!(&m[..4], &[1, 2, 3, 4]);
        assert_eq!(&m[4..8], b"ping");
        assert_eq!(m[8..16], [0; 8]);
        assert_eq!(u32::from_le_bytes([m[16], m[17], m[18], m[19]]), 8);
        assert_eq!(m.len(), 32);
    }
}
