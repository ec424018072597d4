//! The bitcoind client: JSON-RPC and REST over HTTP keep-alive, P2P block announcements, and
//! what the node can do (its version and interfaces), detected at start.

mod calls;
pub(crate) mod http;
pub(crate) mod p2p;
pub(crate) mod rpc;
pub(crate) mod zmq;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::hostport;
use crate::network::Network;
use crate::types::BlockHash;
pub use rpc::Auth;
pub(crate) use rpc::RpcClient;

/// Why a request to bitcoind failed. Callers decide by kind: wait (unreachable, warming up),
/// give up (auth), or pass the node's answer on (rejected).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot reach bitcoind at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("bitcoind is warming up ({0})")]
    WarmingUp(String),
    #[error("bitcoind refused the RPC credentials: {0}")]
    Auth(String),
    #[error("cannot read bitcoind's cookie file {path}: {reason}")]
    CookieUnreadable { path: PathBuf, reason: String },
    /// The node understood the request and said no (an RPC error object).
    #[error("{message} (bitcoind error {code})")]
    Rejected { code: i64, message: String },
    #[error("unexpected answer from bitcoind: {0}")]
    Protocol(String),
}

impl DaemonError {
    /// The node is down, restarting or loading: worth waiting for.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            DaemonError::Unreachable { .. } | DaemonError::WarmingUp(_) | DaemonError::CookieUnreadable { .. }
        )
    }
}

/// Where and how to reach bitcoind.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub network: Network,
    /// `host:port` of the RPC (and REST) server.
    pub rpc_addr: String,
    pub auth: Auth,
    /// Other addresses of the node (several `DAEMON_URL`s), tried in turn when one fails.
    pub fallbacks: Vec<(String, Auth)>,
    pub timeout: Duration,
}

impl DaemonConfig {
    /// The node's host, from its RPC address (an IPv6 address without brackets): where its P2P
    /// and ZMQ ports are unless they are given.
    pub(crate) fn host(&self) -> &str {
        hostport::split(&self.rpc_addr).map_or("127.0.0.1", |(host, _)| host)
    }
}

/// What `getblockchaininfo` says.
#[derive(Clone, Debug, Deserialize)]
pub struct ChainInfo {
    pub(crate) chain: String,
    pub(crate) blocks: u32,
    pub(crate) headers: u32,
    pub(crate) bestblockhash: String,
    #[serde(default)]
    pub(crate) initialblockdownload: bool,
    #[serde(default)]
    pub(crate) pruned: bool,
    #[serde(default)]
    pub(crate) verificationprogress: f64,
}

/// The node's best chain as it reports it, and whether that chain is the network's yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeTip {
    pub height: u32,
    pub hash: BlockHash,
    /// The node is in initial block download: its tip is behind the network's, perhaps by
    /// months, and must not be presented to wallets as current.
    pub initial_block_download: bool,
    /// Headers the node has: about the network's height, once its header sync is done.
    pub headers: u32,
    /// `verificationprogress`: the node's estimate of how much of the chain it has, 0 to 1.
    pub progress: f64,
}

#[cfg(test)]
impl NodeTip {
    /// A node that is done syncing, at `height`.
    pub(crate) fn synced(height: u32, hash: BlockHash) -> NodeTip {
        NodeTip { height, hash, initial_block_download: false, headers: height, progress: 1.0 }
    }
}

/// What `getnetworkinfo` says.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct NetworkInfo {
    pub(crate) version: u64,
    pub(crate) subversion: String,
    #[serde(default)]
    pub(crate) relayfee: f64,
}

/// A ZMQ publisher the node announces (`getzmqnotifications`).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct ZmqNotification {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}

/// What the node is and which of its interfaces Ferrum can use.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeInfo {
    /// `getnetworkinfo.version`, e.g. 290200 for 29.2.0.
    pub version: u64,
    pub subversion: String,
    pub network: Network,
    pub blocks: u32,
    pub headers: u32,
    pub best_block_hash: String,
    pub initial_block_download: bool,
    /// `verificationprogress`, 0 to 1.
    pub verification_progress: f64,
    /// `-rest=1`: blocks as binary over HTTP.
    pub rest: bool,
    /// `/rest/spenttxouts` (Core 30+ with REST): the outputs each block spends.
    pub spenttxouts: bool,
    /// `/rest/blockpart` (Core 31+ with REST): a byte range of a stored block.
    pub blockpart: bool,
    /// `-txindex=1` and synced.
    pub txindex: bool,
    pub zmq: Vec<ZmqNotification>,
}

impl NodeInfo {
    /// `29.2.0` from 290200.
    pub fn version_string(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", v / 10_000, v / 100 % 100, v % 100)
    }

    pub(crate) fn zmq_address(&self, kind: &str) -> Option<&str> {
        self.zmq.iter().find(|z| z.kind == kind).map(|z| z.address.as_str())
    }
}

/// Why Ferrum cannot use the node it was pointed at.
#[derive(Debug, thiserror::Error)]
pub enum NodeMismatch {
    #[error("bitcoind at {addr} is on {actual}, but Ferrum is configured for {expected} (--network)")]
    WrongNetwork { addr: String, actual: String, expected: Network },
    #[error(
        "bitcoind at {addr} is pruned; Ferrum needs every block: remove `prune=` from bitcoin.conf \
         (and restart it with -reindex if blocks were already pruned)"
    )]
    Pruned { addr: String },
}

/// The bitcoind client shared by the indexer, the mempool and the protocol handlers.
pub struct Daemon {
    rpc: RpcClient,
    network: Network,
    caches: calls::Caches,
}

impl Daemon {
    pub fn new(config: &DaemonConfig) -> Daemon {
        Daemon {
            rpc: RpcClient::with_fallbacks(
                config.rpc_addr.clone(),
                config.auth.clone(),
                config.fallbacks.clone(),
                config.timeout,
            ),
            network: config.network,
            caches: calls::Caches::default(),
        }
    }

    pub(crate) fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    pub(crate) async fn chain_info(&self) -> Result<ChainInfo, DaemonError> {
        self.rpc.call("getblockchaininfo", json!([])).await
    }

    pub(crate) async fn network_info(&self) -> Result<NetworkInfo, DaemonError> {
        self.rpc.call("getnetworkinfo", json!([])).await
    }

    /// Asks the node what it is and probes its optional interfaces.
    pub async fn probe(&self) -> Result<NodeInfo, DaemonError> {
        let net = self.network_info().await?;
        let chain = self.chain_info().await?;
        let network = Network::from_core_chain(&chain.chain)
            .ok_or_else(|| DaemonError::Protocol(format!("bitcoind reports an unknown chain {:?}", chain.chain)))?;
        let genesis = network.genesis_hash_hex();
        let rest = self.rpc.rest_get("/rest/chaininfo.json").await?.is_some();
        let (spenttxouts, blockpart) = if rest {
            (
                self.rpc.rest_get(&format!("/rest/spenttxouts/{genesis}.bin")).await.ok().flatten().is_some(),
                self.rpc
                    .rest_get(&format!("/rest/blockpart/{genesis}.bin?offset=0&size=80"))
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|b| b.len() == 80),
            )
        } else {
            (false, false)
        };
        let txindex = match self.rpc.call_value("getindexinfo", json!([])).await {
            Ok(v) => v.get("txindex").and_then(|t| t.get("synced")).and_then(Value::as_bool).unwrap_or(false),
            Err(DaemonError::Rejected { .. }) => false,
            Err(e) => return Err(e),
        };
        let zmq = match self.rpc.call::<Vec<ZmqNotification>>("getzmqnotifications", json!([])).await {
            Ok(z) => z,
            // Built without ZMQ: the method does not exist.
            Err(DaemonError::Rejected { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(NodeInfo {
            version: net.version,
            subversion: net.subversion,
            network,
            blocks: chain.blocks,
            headers: chain.headers,
            best_block_hash: chain.bestblockhash,
            initial_block_download: chain.initialblockdownload,
            verification_progress: chain.verificationprogress,
            rest,
            spenttxouts,
            blockpart,
            txindex,
            zmq,
        })
    }

    /// Checks that the node is one Ferrum can index: the configured network, not pruned.
    pub async fn check_usable(&self) -> Result<Result<ChainInfo, NodeMismatch>, DaemonError> {
        let chain = self.chain_info().await?;
        let addr = self.rpc.addr().to_string();
        if chain.chain != self.network.core_chain() {
            let actual = Network::from_core_chain(&chain.chain).map(|n| n.to_string()).unwrap_or(chain.chain);
            return Ok(Err(NodeMismatch::WrongNetwork { addr, actual, expected: self.network }));
        }
        if chain.pruned {
            return Ok(Err(NodeMismatch::Pruned { addr }));
        }
        Ok(Ok(chain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_from_number() {
        let info = NodeInfo {
            version: 290200,
            subversion: String::new(),
            network: Network::Regtest,
            blocks: 0,
            headers: 0,
            best_block_hash: String::new(),
            initial_block_download: false,
            verification_progress: 1.0,
            rest: false,
            spenttxouts: false,
            blockpart: false,
            txindex: false,
            zmq: vec![ZmqNotification { kind: "pubhashblock".into(), address: "tcp://127.0.0.1:28332".into() }],
        };
        assert_eq!(info.version_string(), "29.2.0");
        assert_eq!(info.zmq_address("pubhashblock"), Some("tcp://127.0.0.1:28332"));
        assert_eq!(info.zmq_address("pubsequence"), None);
    }
}

/// Block data for the indexer.
impl Daemon {
    /// The node's best block and whether it is still syncing, from one call.
    pub(crate) async fn best_block(&self) -> Result<NodeTip, DaemonError> {
        let info = self.chain_info().await?;
        let hash = BlockHash::from_hex(&info.bestblockhash)
            .ok_or_else(|| DaemonError::Protocol(format!("bad best block hash {:?}", info.bestblockhash)))?;
        Ok(NodeTip {
            height: info.blocks,
            hash,
            initial_block_download: info.initialblockdownload,
            headers: info.headers,
            progress: info.verificationprogress,
        })
    }

    /// Hashes of the active chain at heights `from..from + count`; shorter when the chain is.
    pub(crate) async fn block_hashes(&self, from: u32, count: u32) -> Result<Vec<BlockHash>, DaemonError> {
        let params: Vec<Value> = (from..from.saturating_add(count)).map(|h| json!([h])).collect();
        let mut out = Vec::with_capacity(params.len());
        for reply in self.rpc.batch("getblockhash", &params).await? {
            match reply {
                Ok(v) => out.push(
                    v.as_str()
                        .and_then(BlockHash::from_hex)
                        .ok_or_else(|| DaemonError::Protocol(format!("getblockhash returned {v}")))?,
                ),
                // -8: height out of range; the chain ends here.
                Err(DaemonError::Rejected { code: -8, .. }) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A block's raw bytes, over REST when `rest` (no hex, no JSON), else `getblock <hash> 0`.
    pub(crate) async fn block(&self, hash: &BlockHash, rest: bool) -> Result<Vec<u8>, DaemonError> {
        if rest {
            return self
                .rpc
                .rest_get(&format!("/rest/block/{hash}.bin"))
                .await?
                .ok_or_else(|| DaemonError::Rejected { code: -5, message: format!("block {hash} not found") });
        }
        let hex: String = self.rpc.call("getblock", json!([hash.to_hex(), 0])).await?;
        hex::decode(hex.trim()).map_err(|e| DaemonError::Protocol(format!("getblock {hash}: bad hex: {e}")))
    }

    /// The outputs spent by each transaction of a block, in `/rest/spenttxouts` binary form:
    /// over REST when `rest_spenttxouts`, else rebuilt from `getblock <hash> 3` (any Core 23+).
    pub(crate) async fn spent_outputs(&self, hash: &BlockHash, rest_spenttxouts: bool) -> Result<Vec<u8>, DaemonError> {
        if rest_spenttxouts {
            return self.rpc.rest_get(&format!("/rest/spenttxouts/{hash}.bin")).await?.ok_or_else(|| {
                DaemonError::Rejected { code: -5, message: format!("spent outputs of {hash} not available") }
            });
        }
        let block: Value = self.rpc.call("getblock", json!([hash.to_hex(), 3])).await?;
        spent_outputs_from_json(&block).map_err(|e| DaemonError::Protocol(format!("getblock {hash} 3: {e}")))
    }
}

/// Serializes the prevouts of a `getblock <hash> 3` answer as `/rest/spenttxouts` does.
fn spent_outputs_from_json(block: &Value) -> Result<Vec<u8>, String> {
    use crate::parse::write_compact_size;
    let txs = block.get("tx").and_then(Value::as_array).ok_or("no tx array")?;
    let mut out = Vec::new();
    write_compact_size(&mut out, txs.len() as u64);
    for tx in txs {
        let vin = tx.get("vin").and_then(Value::as_array).ok_or("no vin")?;
        let spends: Vec<&Value> = vin.iter().filter(|i| i.get("coinbase").is_none()).collect();
        write_compact_size(&mut out, spends.len() as u64);
        for input in spends {
            let prevout = input.get("prevout").ok_or("no prevout (undo data missing?)")?;
            let btc = prevout.get("value").and_then(Value::as_f64).ok_or("no prevout value")?;
            let sats = (btc * 100_000_000.0).round();
            if !(0.0..=2.1e15).contains(&sats) {
                return Err(format!("prevout value {btc} out of range"));
            }
            let script = prevout
                .get("scriptPubKey")
                .and_then(|s| s.get("hex"))
                .and_then(Value::as_str)
                .ok_or("no prevout script")?;
            let script = hex::decode(script).map_err(|e| format!("prevout script: {e}"))?;
            out.extend_from_slice(&(sats as u64).to_le_bytes());
            write_compact_size(&mut out, script.len() as u64);
            out.extend_from_slice(&script);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod spent_tests {
    use super::*;

    #[test]
    fn spent_outputs_from_getblock_json() {
        let block = json!({"tx": [
            {"vin": [{"coinbase": "00"}]},
            {"vin": [{"txid": "aa", "prevout": {"value": 0.0001, "scriptPubKey": {"hex": "5152"}}}]}
        ]});
        let bytes = spent_outputs_from_json(&block).unwrap();
        let parsed = crate::parse::parse_spent_outputs(&bytes).unwrap();
        assert_eq!(parsed.txs.len(), 2);
        assert!(parsed.txs[0].is_empty());
        assert_eq!(parsed.txs[1][0].value, 10_000);
        assert_eq!(parsed.txs[1][0].script, &[0x51, 0x52]);
        assert!(spent_outputs_from_json(&json!({"tx": [{"vin": [{"txid": "aa"}]}]})).is_err());
    }
}
