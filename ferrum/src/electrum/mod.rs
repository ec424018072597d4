//! The Electrum protocol: what each method answers, computed from the index, the mempool and
//! (for broadcasts, fee estimates and raw transactions) the node. Transports and sessions are
//! in `server`; this module knows nothing of sockets.

pub use ferrum_codec::{coerce, jsonrpc, protocol, request};
pub mod events;
pub mod methods;
pub mod session;
pub mod state;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{broadcast, Semaphore};

use crate::daemon::{Daemon, DaemonError, NetworkInfo, NodeInfo};
use crate::index::Index;
use crate::mempool::{Entry, Mempool};
use crate::network::Network;
use crate::query::{HistoryEntry, Query, ScriptSummary};
use crate::sync::Locked;
use crate::types::{BlockHash, ScriptHash, Txid};
use events::Event;
use jsonrpc::RpcError;
use status::Item;

/// Headers per `blockchain.block.headers` answer, at most.
pub const MAX_CHUNK_SIZE: u32 = 2016;

pub fn server_version() -> String {
    format!("Ferrum {}", env!("CARGO_PKG_VERSION"))
}

/// What one announced service looks like in `server.features`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedService {
    /// `tcp`, `ssl`, `ws` or `wss`.
    pub protocol: String,
    pub host: String,
    pub port: u16,
}

/// Settings of the protocol layer.
#[derive(Debug, Clone)]
pub struct ElectrumConfig {
    pub network: Network,
    pub banner_file: Option<PathBuf>,
    pub donation_address: String,
    pub report_services: Vec<ReportedService>,
    /// Largest answer, in bytes (ElectrumX's `MAX_SEND`).
    pub max_send: usize,
    /// Concurrent index reads on the blocking pool.
    pub query_threads: usize,
}

impl Default for ElectrumConfig {
    fn default() -> Self {
        ElectrumConfig {
            network: Network::Regtest,
            banner_file: None,
            donation_address: String::new(),
            report_services: Vec::new(),
            max_send: 8_100_000,
            query_threads: 4,
        }
    }
}

/// State shared by every session.
pub struct Electrum {
    pub config: ElectrumConfig,
    pub index: Arc<Index>,
    pub query: Query,
    pub mempool: Arc<Mempool>,
    pub daemon: Arc<Daemon>,
    pub node: NodeInfo,
    pub events: broadcast::Sender<Arc<Event>>,
    /// Wakes the mempool task (after a broadcast).
    pub mempool_trigger: Arc<tokio::sync::Notify>,
    pub metrics: Arc<crate::metrics::Metrics>,
    blocking: Arc<Semaphore>,
    fee_cache: Mutex<HashMap<FeeKey, (Option<BlockHash>, Value)>>,
    network_info: Mutex<Option<(Instant, NetworkInfo)>>,
    mempool_info: Mutex<Option<(Instant, Value)>>,
}

/// A fee estimate's target and mode.
type FeeKey = (u32, Option<String>);

/// How long node information (relay fee, mempool minimums) is cached.
const NODE_INFO_TTL: Duration = Duration::from_secs(60);

impl Electrum {
    pub fn new(
        config: ElectrumConfig,
        index: Arc<Index>,
        mempool: Arc<Mempool>,
        daemon: Arc<Daemon>,
        node: NodeInfo,
    ) -> Electrum {
        let (events, _) = broadcast::channel(256);
        Electrum {
            blocking: Arc::new(Semaphore::new(config.query_threads.max(1))),
            query: Query::new(index.clone()),
            config,
            index,
            mempool,
            daemon,
            node,
            events,
            mempool_trigger: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            fee_cache: Mutex::new(HashMap::new()),
            network_info: Mutex::new(None),
            mempool_info: Mutex::new(None),
        }
    }

    /// Runs index work on the bounded blocking pool, so a large history never stalls the
    /// sessions' tasks.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Electrum) -> Result<T, RpcError> + Send + 'static,
    ) -> Result<T, RpcError> {
        let _permit = self.blocking.clone().acquire_owned().await.map_err(|_| RpcError::internal("shutting down"))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| RpcError::internal(format!("query task failed: {e}")))?
    }

    /// Confirmed part of a script's summary, with ambiguous prevout references resolved from
    /// the spending transactions themselves.
    pub async fn script_summary(self: &Arc<Self>, sh: ScriptHash) -> Result<ScriptSummary, RpcError> {
        let mut exact: HashMap<(u64, u32), Txid> = HashMap::new();
        for _ in 0..3 {
            let e = exact.clone();
            let summary = self.blocking(move |s| s.query.script(&sh, &e).map_err(query_error)).await?;
            crate::cost::charge(summary.rows as f64 / crate::cost::ROWS_PER_UNIT);
            if summary.ambiguous.is_empty() {
                return Ok(summary);
            }
            for (tx_num, index) in summary.ambiguous {
                let chain_pos = self.index.chain().locate(tx_num);
                let Some((height, pos)) = chain_pos else { continue };
                let txid = self.index.store().txids().get(tx_num).ok_or_else(|| RpcError::internal("txid missing"))?;
                let raw = self.confirmed_tx(&txid, height, pos).await?;
                let view = crate::parse::parse_tx_bytes(&raw).map_err(|e| RpcError::internal(e.to_string()))?;
                if let Some(input) = view.inputs.get(index as usize) {
                    exact.insert((tx_num, index), input.prev_txid());
                }
            }
        }
        Err(RpcError::internal("could not resolve prevout references"))
    }

    /// The mempool part of a script's history: transactions the index has not confirmed, in
    /// protocol order. `confirmed` is the script's confirmed history.
    pub fn mempool_part(&self, sh: &ScriptHash, confirmed: &[HistoryEntry]) -> Vec<Entry> {
        let mut entries = self.mempool.entries(sh);
        if entries.is_empty() {
            return entries;
        }
        // Just mined, and the mempool has not caught up yet: confirmed wins.
        let confirmed: std::collections::HashSet<Txid> = confirmed.iter().map(|h| h.txid).collect();
        entries.retain(|e| !confirmed.contains(&e.tx.txid));
        entries.sort_by(|a, b| status::mempool_order(&mempool_item(a), &mempool_item(b)));
        entries
    }

    /// Confirmed and mempool history in protocol order, bounded by the answer size limit.
    pub async fn history(self: &Arc<Self>, sh: ScriptHash) -> Result<Vec<Item>, RpcError> {
        let (rows, history) = self.blocking(move |s| s.query.history(&sh).map_err(query_error)).await?;
        crate::cost::charge(rows as f64 / crate::cost::ROWS_PER_UNIT);
        let mempool = self.mempool_part(&sh, &history);
        // About 99 bytes per entry as JSON (ElectrumX's measure).
        let limit = self.config.max_send.saturating_sub(100) / 99;
        if history.len() + mempool.len() >= limit.max(1) {
            return Err(RpcError::new(jsonrpc::HISTORY_TOO_LONG, "history too large"));
        }
        let mut items: Vec<Item> =
            history.iter().map(|h| Item { txid: h.txid, height: i64::from(h.height), fee: None }).collect();
        items.extend(mempool.iter().map(mempool_item));
        Ok(items)
    }

    /// The status of a script hash now.
    pub async fn status(self: &Arc<Self>, sh: ScriptHash) -> Result<Option<[u8; 32]>, RpcError> {
        let items = self.history(sh).await?;
        Ok(status::status(&items))
    }

    /// A confirmed transaction's bytes: a byte range of its block over REST (Core 31+), else
    /// `getrawtransaction` with the block hash (no txindex needed).
    pub async fn confirmed_tx(&self, txid: &Txid, height: u32, pos: u32) -> Result<Vec<u8>, RpcError> {
        let hash = self.index.chain().hash(height).ok_or_else(|| RpcError::internal("block not in the index"))?;
        if self.node.blockpart {
            let count = self.index.chain().tx_range(height).map(|r| r.1).unwrap_or(0);
            if let Some(txpos) = self.index.store().txpos(height).map_err(|e| RpcError::internal(e.to_string()))? {
                if let Ok((offset, size)) = crate::store::rows::txpos_lookup(&txpos, count, pos) {
                    let path = format!("/rest/blockpart/{hash}.bin?offset={offset}&size={size}");
                    if let Ok(Some(bytes)) = self.daemon.rpc().rest_get(&path).await {
                        if crate::parse::parse_tx_bytes(&bytes).is_ok_and(|t| t.txid == *txid) {
                            return Ok(bytes);
                        }
                    }
                }
            }
        }
        let hex: String = self
            .daemon
            .rpc()
            .call("getrawtransaction", json!([txid.to_hex(), false, hash.to_hex()]))
            .await
            .map_err(daemon_error)?;
        hex::decode(hex.trim()).map_err(|e| RpcError::internal(format!("bad hex from bitcoind: {e}")))
    }

    /// Any transaction's bytes: confirmed (from the index), in the mempool, or unknown.
    pub async fn raw_tx(self: &Arc<Self>, txid: Txid) -> Result<Vec<u8>, RpcError> {
        let position = self.blocking(move |s| s.query.tx_position(&txid).map_err(query_error)).await?;
        if let Some((height, pos, _)) = position {
            return self.confirmed_tx(&txid, height, pos).await;
        }
        // The mempool (ours may lag the node's by a moment: ask the node either way).
        match self.daemon.rpc().call::<String>("getrawtransaction", json!([txid.to_hex(), false])).await {
            Ok(hex) => hex::decode(hex.trim()).map_err(|e| RpcError::internal(format!("bad hex from bitcoind: {e}"))),
            Err(DaemonError::Rejected { code: -5, .. }) => Err(tx_not_found()),
            Err(e) => Err(daemon_error(e)),
        }
    }

    /// `getrawtransaction <txid> true [blockhash]`, as with a txindex.
    pub async fn verbose_tx(self: &Arc<Self>, txid: Txid) -> Result<Value, RpcError> {
        let position = self.blocking(move |s| s.query.tx_position(&txid).map_err(query_error)).await?;
        let params = match position.and_then(|(h, _, _)| self.index.chain().hash(h)) {
            Some(block) => json!([txid.to_hex(), true, block.to_hex()]),
            None => json!([txid.to_hex(), true]),
        };
        match self.daemon.rpc().call_value("getrawtransaction", params).await {
            Ok(mut v) => {
                // Only present when a block hash is passed: answer as a txindex node would.
                if let Some(obj) = v.as_object_mut() {
                    obj.remove("in_active_chain");
                }
                Ok(v)
            }
            Err(DaemonError::Rejected { code: -5, .. }) => Err(tx_not_found()),
            Err(e) => Err(daemon_error(e)),
        }
    }

    /// `getnetworkinfo`, cached for a minute.
    pub async fn network_info(&self) -> Result<NetworkInfo, RpcError> {
        if let Some((at, info)) = self.network_info.locked().as_ref() {
            if at.elapsed() < NODE_INFO_TTL {
                return Ok(info.clone());
            }
        }
        let info = self.daemon.network_info().await.map_err(daemon_error)?;
        *self.network_info.locked() = Some((Instant::now(), info.clone()));
        Ok(info)
    }

    /// `getmempoolinfo`, cached for a minute.
    pub async fn mempool_info(&self) -> Result<Value, RpcError> {
        if let Some((at, info)) = self.mempool_info.locked().as_ref() {
            if at.elapsed() < NODE_INFO_TTL {
                return Ok(info.clone());
            }
        }
        let info = self.daemon.rpc().call_value("getmempoolinfo", json!([])).await.map_err(daemon_error)?;
        *self.mempool_info.locked() = Some((Instant::now(), info.clone()));
        Ok(info)
    }

    /// `estimatesmartfee`, cached per (target, mode) until the tip changes.
    pub async fn estimate_fee(&self, target: u32, mode: Option<String>) -> Result<Value, RpcError> {
        let tip = self.index.tip().hash;
        let key = (target, mode.clone());
        if let Some((at_tip, v)) = self.fee_cache.locked().get(&key) {
            if *at_tip == tip {
                return Ok(v.clone());
            }
        }
        let params = match &mode {
            Some(m) => json!([target, m]),
            None => json!([target]),
        };
        let estimate = self.daemon.rpc().call_value("estimatesmartfee", params).await.map_err(daemon_error)?;
        let feerate = estimate.get("feerate").cloned().unwrap_or(json!(-1));
        self.fee_cache.locked().insert(key, (tip, feerate.clone()));
        Ok(feerate)
    }
}

pub fn mempool_item(e: &Entry) -> Item {
    Item { txid: e.tx.txid, height: if e.has_unconfirmed_inputs { -1 } else { 0 }, fee: Some(e.tx.fee) }
}

/// What ElectrumX answers for an unknown transaction (as its txindex node reports it).
pub fn tx_not_found() -> RpcError {
    RpcError::daemon(
        "daemon error: DaemonError({'code': -5, 'message': 'No such mempool or blockchain transaction. \
         Use gettransaction for wallet transactions.'})",
    )
}

/// A node failure as ElectrumX reports it: code 2, `daemon error: DaemonError({...})`.
pub fn daemon_error(e: DaemonError) -> RpcError {
    match e {
        DaemonError::Rejected { code, message } => RpcError::daemon(format!(
            "daemon error: DaemonError({{'code': {code}, 'message': {}}})",
            coerce::py_repr_str(&message)
        )),
        other => RpcError::daemon(format!("daemon error: {other}")),
    }
}

fn query_error(e: crate::query::QueryError) -> RpcError {
    RpcError::internal(format!("index error: {e}"))
}
