//! The Electrum protocol: what each method answers, computed from the index, the mempool and
//! (for broadcasts, fee estimates and raw transactions) the node. Transports and sessions are
//! in `server`; this module knows nothing of sockets.

pub(crate) use ferrum_codec::{coerce, jsonrpc, protocol, request};
pub(crate) mod events;
pub(crate) mod methods;
pub(crate) mod session;
pub(crate) mod state;
pub(crate) mod status;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::broadcast;

use crate::daemon::{Daemon, DaemonError, NodeInfo};
use crate::index::Index;
use crate::mempool::Mempool;
use crate::network::Network;
use crate::peers::Peers;
use crate::query::{History, QueryError, Reader, ScriptCacheConfig};
use crate::types::ScriptHash;
use events::Event;
use jsonrpc::RpcError;

/// Headers per `blockchain.block.headers` answer, at most.
pub(crate) const MAX_CHUNK_SIZE: u32 = 2016;

pub(crate) fn server_version() -> String {
    format!("Ferrum {}", env!("CARGO_PKG_VERSION"))
}

/// What one announced service looks like in `server.features`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportedService {
    /// `tcp`, `ssl`, `ws` or `wss`.
    pub(crate) protocol: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Settings of the protocol layer.
#[derive(Debug, Clone)]
pub struct ElectrumConfig {
    pub(crate) network: Network,
    pub(crate) banner_file: Option<PathBuf>,
    pub(crate) donation_address: String,
    pub(crate) report_services: Vec<ReportedService>,
    /// Largest answer, in bytes (ElectrumX's `MAX_SEND`).
    pub(crate) max_send: usize,
    /// Concurrent index reads on the blocking pool.
    pub(crate) query_threads: usize,
    /// The answers of busy scripts kept between requests.
    pub(crate) script_cache: ScriptCacheConfig,
    /// Peer discovery.
    pub(crate) peers: crate::peers::PeerConfig,
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
            script_cache: ScriptCacheConfig::default(),
            peers: crate::peers::PeerConfig::default(),
        }
    }
}

/// State shared by every session: the protocol's settings, the read side, and what sessions
/// watch (events, the index's tip and state). Protocol methods reach the node only through the
/// read side and the daemon's typed calls.
pub struct Electrum {
    pub(crate) config: ElectrumConfig,
    pub(crate) index: Arc<Index>,
    pub(crate) node: NodeInfo,
    pub(crate) events: broadcast::Sender<Arc<Event>>,
    /// Wakes the mempool task (after a broadcast).
    pub(crate) mempool_trigger: Arc<tokio::sync::Notify>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Other servers (peer discovery).
    pub(crate) peers: Arc<Peers>,
    reader: Reader,
    daemon: Arc<Daemon>,
}

impl Electrum {
    pub fn new(
        config: ElectrumConfig,
        index: Arc<Index>,
        mempool: Arc<Mempool>,
        daemon: Arc<Daemon>,
        node: NodeInfo,
    ) -> Electrum {
        let (events, _) = broadcast::channel(256);
        let reader = Reader::new(
            index.clone(),
            mempool,
            daemon.clone(),
            config.query_threads,
            config.script_cache,
            node.blockpart,
        );
        let version_args = json!([
            server_version(),
            [protocol::ProtocolVersion::MIN.to_string(), protocol::ProtocolVersion::MAX.to_string()]
        ]);
        let peers = Peers::new(
            config.peers.clone(),
            config.network.default_electrum_ports(),
            config.network.genesis_hash_hex().to_string(),
            methods::server::features_json(&config, false),
            version_args,
            reader.query().clone(),
        );
        Electrum {
            reader,
            peers,
            config,
            index,
            daemon,
            node,
            events,
            mempool_trigger: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::new(crate::metrics::Metrics::default()),
        }
    }

    /// What the cache of busy scripts' answers holds and did.
    pub(crate) fn history_cache(&self) -> crate::query::ScriptCacheStats {
        self.reader.query().cache_stats()
    }

    /// The read side, for answers outside the protocol (the admin RPC's `query`).
    pub(crate) fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Confirmed and mempool history in protocol order, bounded by the answer size limit.
    pub(crate) async fn history(&self, sh: ScriptHash) -> Result<History, RpcError> {
        let history = self.reader.history(sh).await?;
        // About 99 bytes per entry as JSON (ElectrumX's measure).
        let limit = self.config.max_send.saturating_sub(100) / 99;
        if history.len() >= limit.max(1) {
            return Err(RpcError::new(jsonrpc::HISTORY_TOO_LONG, "history too large"));
        }
        Ok(history)
    }

    /// The status of a script hash now.
    pub(crate) async fn status(&self, sh: ScriptHash) -> Result<Option<[u8; 32]>, RpcError> {
        Ok(self.history(sh).await?.status())
    }
}

/// Read-side failures as wallets see them: the node's in ElectrumX's words, an unknown
/// transaction as a txindex node reports it, the index's as internal errors.
impl From<QueryError> for RpcError {
    fn from(e: QueryError) -> RpcError {
        match e {
            QueryError::TxNotFound => tx_not_found(),
            QueryError::Daemon(e) => daemon_error(e),
            other => RpcError::internal(format!("index error: {other}")),
        }
    }
}

/// The node's failures as ElectrumX reports them ([`daemon_error`]).
impl From<DaemonError> for RpcError {
    fn from(e: DaemonError) -> RpcError {
        daemon_error(e)
    }
}

/// What ElectrumX answers for an unknown transaction (as its txindex node reports it).
pub(crate) fn tx_not_found() -> RpcError {
    RpcError::daemon(
        "daemon error: DaemonError({'code': -5, 'message': 'No such mempool or blockchain transaction. \
         Use gettransaction for wallet transactions.'})",
    )
}

/// A node failure as ElectrumX reports it: code 2, `daemon error: DaemonError({...})`.
pub(crate) fn daemon_error(e: DaemonError) -> RpcError {
    match e {
        DaemonError::Rejected { code, message } => RpcError::daemon(format!(
            "daemon error: DaemonError({{'code': {code}, 'message': {}}})",
            coerce::py_repr_str(&message)
        )),
        other => RpcError::daemon(format!("daemon error: {other}")),
    }
}
