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

use bitcoin::consensus::encode::{self, deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_compact_blocks::SendCmpct;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Address, Magic, ServiceFlags};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::network::Network;
use crate::sync::Backoff;
use crate::sync::Locked;
use crate::types::{sha256d, BlockHash};

const PROTOCOL_VERSION: u32 = 70016;
/// A message's header: network magic, command, payload length, checksum.
const HEADER_LEN: usize = 24;
/// Larger messages than this (the biggest we care about is `inv`, 1.8 MB at most) end the
/// connection, before any of the payload is read.
const MAX_PAYLOAD: usize = 4 << 20;

/// Block announcements, for the indexer: a wake-up, and the hash of the last block announced
/// when the announcement names it.
#[derive(Default)]
pub struct Announcements {
    pub(crate) notify: Notify,
    latest: std::sync::Mutex<Option<BlockHash>>,
}

impl Announcements {
    /// Wakes the indexer; `hash` is the announced block when known.
    pub(crate) fn block(&self, hash: Option<BlockHash>) {
        if let Some(h) = hash {
            *self.latest.locked() = Some(h);
        }
        self.notify.notify_one();
    }

    /// The last block announced by hash, if any, taking it.
    pub(crate) fn take_latest(&self) -> Option<BlockHash> {
        self.latest.locked().take()
    }
}

/// Who to wake on announcements.
#[derive(Clone)]
pub(crate) struct Triggers {
    pub(crate) blocks: Arc<Announcements>,
    /// `Some`: ask for transaction announcements too.
    pub(crate) txs: Option<Arc<Notify>>,
    /// The index's tip, which the node is told of at connection: see [`getheaders`].
    pub(crate) tip: Arc<dyn Fn() -> Option<BlockHash> + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum P2pError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

/// One connection's messages: encoded and decoded by `bitcoin::p2p`, the size bound checked
/// from the header before the payload is read.
struct Wire<S> {
    stream: S,
    magic: Magic,
}

impl<S: AsyncWrite + Unpin> Wire<S> {
    async fn send(&mut self, message: NetworkMessage) -> Result<(), P2pError> {
        self.stream.write_all(&serialize(&RawNetworkMessage::new(self.magic, message))).await?;
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> Wire<S> {
    /// Reads one message; `None` for one that is framed correctly but whose payload does not
    /// decode as its command's (skipped, as messages of unknown commands are).
    async fn receive(&mut self) -> Result<Option<NetworkMessage>, P2pError> {
        let mut head = [0u8; HEADER_LEN];
        self.stream.read_exact(&mut head).await?;
        let [m0, m1, m2, m3, command @ .., l0, l1, l2, l3, _, _, _, _] = head;
        let command: String = command.iter().take_while(|b| **b != 0).map(|b| char::from(*b)).collect();
        if [m0, m1, m2, m3] != self.magic.to_bytes() {
            return Err(P2pError::Protocol("wrong network magic".into()));
        }
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if len > MAX_PAYLOAD {
            return Err(P2pError::Protocol(format!("{command} message of {len} bytes")));
        }
        let mut frame = Vec::with_capacity(HEADER_LEN + len);
        frame.extend_from_slice(&head);
        frame.resize(HEADER_LEN + len, 0);
        if let Some(payload) = frame.get_mut(HEADER_LEN..) {
            self.stream.read_exact(payload).await?;
        }
        match deserialize::<RawNetworkMessage>(&frame) {
            Ok(message) => Ok(Some(message.into_payload())),
            Err(encode::Error::InvalidChecksum { .. }) => Err(P2pError::Protocol(format!("bad checksum on {command}"))),
            Err(e) => {
                tracing::debug!(command, "P2P message skipped: {e}");
                Ok(None)
            }
        }
    }
}

/// Our `version`: no services, no addresses, and transaction announcements only when `relay`.
fn version_message(nonce: u64, relay: bool) -> VersionMessage {
    let nowhere = Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    VersionMessage {
        version: PROTOCOL_VERSION,
        services: ServiceFlags::NONE,
        timestamp: i64::try_from(now).unwrap_or(i64::MAX),
        receiver: nowhere.clone(),
        sender: nowhere,
        nonce,
        user_agent: concat!("/ferrum:", env!("CARGO_PKG_VERSION"), "/").into(),
        start_height: 0,
        relay,
    }
}

/// The last block an `inv` announces, and whether it announces any transaction.
fn inv_kinds(items: &[Inventory]) -> (Option<bitcoin::BlockHash>, bool) {
    let (mut block, mut tx) = (None, false);
    for item in items {
        match item {
            Inventory::Block(hash) | Inventory::WitnessBlock(hash) => block = Some(*hash),
            Inventory::Transaction(_) | Inventory::WitnessTransaction(_) | Inventory::WTx(_) => tx = true,
            _ => {}
        }
    }
    (block, tx)
}

/// `getheaders` from `hash`: the node answers with the headers after it (none when it is the
/// tip) and from then on counts us as having its tip's header, which is what lets it push the
/// next block to us as a compact block instead of waiting to send an `inv`.
fn getheaders(hash: bitcoin::BlockHash) -> NetworkMessage {
    NetworkMessage::GetHeaders(GetHeadersMessage {
        version: PROTOCOL_VERSION,
        locator_hashes: vec![hash],
        stop_hash: bitcoin::BlockHash::all_zeros(),
    })
}

/// Connects, handshakes, and calls `notify` on every block announcement until the connection
/// fails.
async fn session(
    addr: &str,
    network: Network,
    triggers: &Triggers,
    connected: &(dyn Fn() + Sync),
) -> Result<(), P2pError> {
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| P2pError::Protocol("connect timed out".into()))??;
    stream.set_nodelay(true)?;
    let mut wire = Wire { stream, magic: Magic::from_bytes(network.magic()) };
    let nonce = u64::from_le_bytes(
        sha256d(&[addr.as_bytes(), &std::process::id().to_le_bytes()])[..8].try_into().unwrap_or_default(),
    );
    wire.send(NetworkMessage::Version(version_message(nonce, triggers.txs.is_some()))).await?;
    let mut handshaken = false;
    loop {
        let message = if handshaken {
            wire.receive().await?
        } else {
            tokio::time::timeout(Duration::from_secs(30), wire.receive())
                .await
                .map_err(|_| P2pError::Protocol("no handshake within 30 s".into()))??
        };
        match message {
            Some(NetworkMessage::Version(_)) => wire.send(NetworkMessage::Verack).await?,
            Some(NetworkMessage::Verack) => {
                handshaken = true;
                wire.send(NetworkMessage::SendHeaders).await?;
                // BIP152: high-bandwidth, version 2 (segwit).
                wire.send(NetworkMessage::SendCmpct(SendCmpct { send_compact: true, version: 2 })).await?;
                // So that the first block after connecting comes as a compact block too, not as
                // an `inv` up to 100 ms later: the node must count us as having its tip.
                if let Some(tip) = (triggers.tip)() {
                    wire.send(getheaders(bitcoin::BlockHash::from_byte_array(tip.0))).await?;
                }
                connected();
                // Whatever happened while we were away.
                triggers.blocks.block(None);
            }
            Some(NetworkMessage::Ping(nonce)) => wire.send(NetworkMessage::Pong(nonce)).await?,
            Some(NetworkMessage::Headers(headers)) if !headers.is_empty() => triggers.blocks.block(None),
            // Sent before the node has connected the block: its hash tells the indexer what to
            // wait for.
            Some(NetworkMessage::CmpctBlock(block)) => {
                let hash = block.compact_block.header.block_hash();
                tracing::debug!(%hash, "block announced");
                triggers.blocks.block(Some(BlockHash(hash.to_byte_array())));
            }
            Some(NetworkMessage::Inv(items)) => {
                let (block, tx) = inv_kinds(&items);
                if let Some(hash) = block {
                    triggers.blocks.block(None);
                    wire.send(getheaders(hash)).await?;
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
pub(crate) async fn listen(addr: String, network: Network, triggers: Triggers) {
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

    const MAGIC: [u8; 4] = [1, 2, 3, 4];

    fn frame(command: &str, payload: &[u8]) -> Vec<u8> {
        let mut m = MAGIC.to_vec();
        let mut name = [0u8; 12];
        name[..command.len()].copy_from_slice(command.as_bytes());
        m.extend_from_slice(&name);
        m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        m.extend_from_slice(&sha256d(&[payload])[..4]);
        m.extend_from_slice(payload);
        m
    }

    /// What `Wire::receive` makes of `bytes`.
    async fn receive(bytes: Vec<u8>) -> Result<Option<NetworkMessage>, P2pError> {
        let (mut theirs, ours) = tokio::io::duplex(1 << 20);
        theirs.write_all(&bytes).await.unwrap();
        drop(theirs);
        Wire { stream: ours, magic: Magic::from_bytes(MAGIC) }.receive().await
    }

    #[test]
    fn inv_kinds_by_type() {
        let block = bitcoin::BlockHash::from_byte_array([7; 32]);
        let tx = bitcoin::Txid::from_byte_array([1; 32]);
        assert_eq!(inv_kinds(&[Inventory::Transaction(tx), Inventory::WitnessBlock(block)]), (Some(block), true));
        assert_eq!(inv_kinds(&[Inventory::Block(block)]), (Some(block), false));
        let wtx = bitcoin::Wtxid::from_byte_array([1; 32]);
        assert_eq!(inv_kinds(&[Inventory::WTx(wtx), Inventory::WitnessTransaction(tx)]), (None, true));
        assert_eq!(inv_kinds(&[Inventory::Unknown { inv_type: 9, hash: [0; 32] }]), (None, false));
    }

    #[test]
    fn version_as_core_reads_it() {
        let bytes = serialize(&version_message(7, true));
        let agent = concat!("/ferrum:", env!("CARGO_PKG_VERSION"), "/");
        assert_eq!(bytes.len(), 4 + 8 + 8 + 2 * 26 + 8 + 1 + agent.len() + 4 + 1);
        assert_eq!(bytes[..4], 70016u32.to_le_bytes());
        assert_eq!(bytes[4..12], [0; 8]); // services
        assert_eq!(bytes[20..72], [0; 52]); // addresses
        assert_eq!(bytes[72..80], 7u64.to_le_bytes());
        assert_eq!(usize::from(bytes[80]), agent.len());
        assert_eq!(bytes[bytes.len() - 5..], [0, 0, 0, 0, 1]); // start height, relay
    }

    #[tokio::test]
    async fn framing_round_trips() {
        let mut sent = Vec::new();
        let mut wire = Wire { stream: &mut sent, magic: Magic::from_bytes(MAGIC) };
        wire.send(NetworkMessage::Ping(9)).await.unwrap();
        assert_eq!(sent, frame("ping", &9u64.to_le_bytes()));
        assert!(matches!(receive(sent).await, Ok(Some(NetworkMessage::Ping(9)))));
    }

    #[tokio::test]
    async fn bounds_and_checks_before_decoding() {
        // Over the bound: refused from the header, with no payload sent at all.
        let mut big = frame("inv", &[]);
        big[16..20].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        let e = receive(big).await.unwrap_err();
        assert!(e.to_string().contains("inv message of"), "{e}");
        let mut other_net = frame("ping", &[0; 8]);
        other_net[0] = 9;
        assert!(receive(other_net).await.unwrap_err().to_string().contains("magic"));
        let mut corrupt = frame("ping", &[0; 8]);
        corrupt[24] = 1;
        assert!(receive(corrupt).await.unwrap_err().to_string().contains("checksum"));
        // Framed well but not a `ping`'s payload, or a command nobody knows: skipped.
        assert!(matches!(receive(frame("ping", &[0; 3])).await, Ok(None)));
        assert!(matches!(receive(frame("sendtxrcncl", &[1; 12])).await, Ok(Some(NetworkMessage::Unknown { .. }))));
    }

    #[tokio::test]
    async fn compact_block_names_its_block() {
        let header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        let mut payload = serialize(&header);
        payload.extend_from_slice(&[0; 8]); // nonce
        payload.extend_from_slice(&[0, 0]); // no short ids, no prefilled transactions
        let Ok(Some(NetworkMessage::CmpctBlock(block))) = receive(frame("cmpctblock", &payload)).await else {
            panic!("not decoded as a compact block");
        };
        assert_eq!(block.compact_block.header.block_hash(), header.block_hash());
        assert_eq!(BlockHash(header.block_hash().to_byte_array()), BlockHash::of_header(&payload[..80]));
    }

    /// Told of the index's tip at connection, the node pushes the very next block as a compact
    /// block (which names it) rather than announcing it by `inv` (which does not).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_block_after_connecting_comes_as_a_compact_block() {
        let node = testkit::Node::start(testkit::NodeOptions::default()).unwrap();
        node.mine(3).unwrap();
        let tip = BlockHash(node.block_hash(3).unwrap().to_byte_array());
        let blocks = Arc::new(Announcements::default());
        let triggers = Triggers { blocks: blocks.clone(), txs: None, tip: Arc::new(move || Some(tip)) };
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connected = {
            let up = up.clone();
            move || up.store(true, Ordering::SeqCst)
        };
        let addr = node.p2p_addr();
        let task = tokio::spawn(async move { session(&addr, Network::Regtest, &triggers, &connected).await });
        testkit::wait_for("handshake", Duration::from_secs(30), || up.load(Ordering::SeqCst).then_some(())).unwrap();
        // The node has answered our `getheaders` (with no headers: we have its tip).
        testkit::wait_for("the node's answer to getheaders", Duration::from_secs(30), || {
            let peers = node.call("getpeerinfo", serde_json::json!([])).ok()?;
            peers.get(0)?["bytessent_per_msg"].get("headers").map(|_| ())
        })
        .unwrap();
        let mined = node.mine(1).unwrap()[0];
        let named =
            testkit::wait_for("the block's announcement", Duration::from_secs(30), || blocks.take_latest()).unwrap();
        assert_eq!(named, BlockHash(mined.to_byte_array()), "announced by a compact block naming it");
        task.abort();
    }
}
