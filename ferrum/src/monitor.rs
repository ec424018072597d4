//! What an operator sees of a running server: one snapshot of index, node, sessions, requests
//! and mempool, rendered as the status page's JSON, as the admin RPC's `getinfo`, and as
//! Prometheus metrics. The node's state and the index's size on disk are sampled in the
//! background, so none of these ever waits on bitcoind or walks the disk.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::electrum::{server_version, Electrum};
use crate::mempool::Mempool;
use crate::metrics::{Exposition, Scrape, Table};
use crate::network::Network;
use crate::server::{Protocol, Server};
use crate::shutdown::StopSignal;
use crate::store::PrevoutMode;
use crate::sync::Locked;

/// Changes the log filter of the running process.
pub type LogControl = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How often the node's state and the index size are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The node as last sampled.
#[derive(Debug, Clone, Default)]
struct NodeState {
    reachable: bool,
    height: u32,
    headers: u32,
    initial_block_download: bool,
    verification_progress: f64,
    error: Option<String>,
}

pub(crate) struct Monitor {
    pub(crate) parts: Watched,
    node: Mutex<NodeState>,
    db_bytes: AtomicU64,
    /// Reads this monitor at each scrape (through a weak handle: it lives inside it).
    exposition: Exposition,
}

/// What the monitor reports on and acts through: the running server's parts.
pub(crate) struct Watched {
    pub(crate) electrum: Arc<Electrum>,
    pub(crate) server: Arc<Server>,
    pub(crate) daemon: Arc<Daemon>,
    pub(crate) mempool: Arc<Mempool>,
    pub(crate) mode: PrevoutMode,
    pub(crate) index_dir: PathBuf,
    /// The Electrum services, with the addresses they are bound to.
    pub(crate) services: Vec<crate::server::Service>,
    /// The TLS certificate is Ferrum's own (wallets may pin it), not an authority's.
    pub(crate) self_signed_cert: bool,
    pub(crate) stop: StopSignal,
    /// Changes the log filter (the admin RPC's `log` command), when logging allows it.
    pub(crate) log: Option<LogControl>,
}

impl Monitor {
    pub(crate) fn new(parts: Watched) -> Arc<Monitor> {
        let node = &parts.electrum.node;
        let node = NodeState {
            reachable: true,
            height: node.blocks,
            headers: node.headers,
            initial_block_download: node.initial_block_download,
            verification_progress: node.verification_progress,
            error: None,
        };
        let db_bytes = AtomicU64::new(dir_size(&parts.index_dir));
        Arc::new_cyclic(|me: &Weak<Monitor>| {
            let me = me.clone();
            let exposition = Exposition::new(&parts.electrum.metrics, move || me.upgrade().map(|m| m.scrape()));
            Monitor { parts, node: Mutex::new(node), db_bytes, exposition }
        })
    }

    pub(crate) fn network(&self) -> Network {
        self.parts.electrum.config.network
    }

    /// Samples the node and the index size until the task is dropped.
    pub(crate) async fn sample(self: Arc<Self>) {
        loop {
            self.sample_once().await;
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }

    pub(crate) async fn sample_once(&self) {
        let state = match self.parts.daemon.chain_info().await {
            Ok(c) => NodeState {
                reachable: true,
                height: c.blocks,
                headers: c.headers,
                initial_block_download: c.initialblockdownload,
                verification_progress: c.verificationprogress,
                error: None,
            },
            Err(e) => {
                let last = self.node.locked().clone();
                NodeState { reachable: false, error: Some(e.to_string()), ..last }
            }
        };
        *self.node.locked() = state;
        let dir = self.parts.index_dir.clone();
        if let Ok(bytes) = tokio::task::spawn_blocking(move || dir_size(&dir)).await {
            self.db_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// Serving normally: caught up with the node, and the node answering.
    pub(crate) fn healthy(&self) -> bool {
        self.parts.electrum.index.status().unavailable().is_none() && self.node.locked().reachable
    }

    /// The snapshot behind the status page (`/api/status`).
    pub(crate) fn status(&self) -> Value {
        let e = &self.parts.electrum;
        let tip = e.index.tip();
        let sync = e.index.status();
        let tip_time = tip.height.and_then(|h| {
            let chain = e.index.chain();
            let header = chain.header(h)?;
            let bytes: [u8; 4] = header.get(68..72)?.try_into().ok()?;
            Some(u32::from_le_bytes(bytes))
        });
        let node = self.node.locked().clone();
        let stats = self.parts.daemon.rpc().stats();
        let rpc_requests = stats.requests.load(Ordering::Relaxed);
        let sessions = self.parts.server.sessions();
        let by_protocol: serde_json::Map<String, Value> = [Protocol::Tcp, Protocol::Ssl, Protocol::Ws, Protocol::Wss]
            .iter()
            .map(|p| (p.name().to_string(), json!(sessions.iter().filter(|s| s.protocol == *p).count())))
            .collect();
        let subscriptions: usize = sessions.iter().map(|s| s.subscriptions.load(Ordering::Relaxed)).sum();
        let unavailable = sync.unavailable();
        json!({
            "server": {
                "version": server_version(),
                "network": self.network().name(),
                "uptime_s": e.metrics.uptime().as_secs(),
                "pid": std::process::id(),
            },
            "index": {
                "height": tip.height,
                "node_height": sync.node_height.max(tip.height.unwrap_or(0)),
                "caught_up": sync.caught_up,
                "serving": unavailable.is_none(),
                "unavailable": unavailable,
                "tip_hash": tip.hash.map(|h| h.to_string()),
                "tip_time": tip_time,
                "transactions": tip.tx_count,
                "blocks_per_s": if sync.caught_up { 0.0 } else { sync.blocks_per_sec },
                "eta_s": if sync.caught_up { None } else { sync.eta_secs },
                "prevout_mode": self.parts.mode.name(),
                "db_bytes": self.db_bytes.load(Ordering::Relaxed),
            },
            "node": {
                "reachable": node.reachable,
                "error": node.error,
                "address": self.parts.daemon.rpc().addr(),
                "version": e.node.version_string(),
                "subversion": e.node.subversion,
                "height": node.height,
                "headers": node.headers,
                "initial_block_download": node.initial_block_download,
                "verification_progress": node.verification_progress,
                "rpc_latency_ms": (rpc_requests > 0)
                    .then(|| stats.last_micros.load(Ordering::Relaxed) as f64 / 1000.0),
            },
            "tls": self.parts.server.tls_fingerprint().map(|sha256| json!({ "sha256": sha256 })),
            "sessions": {
                "current": sessions.len(),
                "total": self.parts.server.accepted(),
                "refused": self.parts.server.refused(),
                "subscriptions": subscriptions,
                "by_protocol": by_protocol,
            },
            "requests": {
                "total": e.metrics.requests_total(),
                "errors": e.metrics.errors_total(),
                "notifications": e.metrics.notifications(),
                "per_second": e.metrics.requests_per_second(),
            },
            "mempool": {
                "transactions": self.parts.mempool.len(),
                "vsize": self.parts.mempool.vsize(),
                "fee_histogram": self.parts.mempool.histogram().into_iter().map(|(r, v)| json!([r, v])).collect::<Vec<_>>(),
            },
        })
    }

    /// How a wallet connects ([`crate::connect`]); `host` names listeners on every interface.
    pub(crate) fn connect(&self, host: Option<&str>) -> crate::connect::Details {
        crate::connect::Details::new(
            self.network(),
            &self.parts.services,
            &self.parts.electrum.config.report_services,
            self.parts.server.tls_fingerprint(),
            self.parts.self_signed_cert,
            host,
        )
    }

    /// Prometheus' text exposition format.
    pub(crate) fn prometheus(&self) -> String {
        self.exposition.encode()
    }

    /// What `/metrics` shows besides the request metrics.
    fn scrape(&self) -> Scrape {
        let e = &self.parts.electrum;
        let tip = e.index.tip();
        let sync = e.index.status();
        let node = self.node.locked().clone();
        let stats = self.parts.daemon.rpc().stats();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let sessions = self.parts.server.sessions();
        let (requests_throttled, sessions_cost_dropped) = self.parts.server.cost_actions();
        Scrape {
            network: self.network().name(),
            prevout_mode: self.parts.mode.name(),
            uptime: e.metrics.uptime(),
            resident_memory_bytes: resident_bytes(),
            index_height: tip.height,
            index_transactions: tip.tx_count,
            index_caught_up: sync.caught_up,
            serving: sync.unavailable().is_none(),
            sync_blocks_per_second: if sync.caught_up { 0.0 } else { sync.blocks_per_sec },
            db_bytes: self.db_bytes.load(Ordering::Relaxed),
            tables: e
                .index
                .store()
                .stats(false)
                .ok()
                .map(|tables| tables.iter().map(|t| Table { name: t.name, rows: t.rows, bytes: t.bytes }).collect()),
            node_reachable: node.reachable,
            node_height: node.height,
            node_initial_block_download: node.initial_block_download,
            node_verification_progress: node.verification_progress,
            node_requests: load(&stats.requests),
            node_request_failures: load(&stats.failures),
            node_request_seconds: load(&stats.micros) as f64 / 1e6,
            node_failovers: load(&stats.failovers),
            sessions: [Protocol::Tcp, Protocol::Ssl, Protocol::Ws, Protocol::Wss]
                .iter()
                .map(|p| (p.name(), sessions.iter().filter(|s| s.protocol == *p).count()))
                .collect(),
            sessions_accepted: self.parts.server.accepted(),
            sessions_refused: self.parts.server.refused(),
            requests_throttled,
            sessions_cost_dropped,
            cost_groups: self.parts.server.ledger().groups().len(),
            subscriptions: sessions.iter().map(|s| s.subscriptions.load(Ordering::Relaxed)).sum(),
            mempool_transactions: self.parts.mempool.len(),
            mempool_vsize_bytes: self.parts.mempool.vsize(),
            history_cache: e.history_cache(),
        }
    }
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The process's resident set size, from /proc (0 where there is none).
pub(crate) fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
