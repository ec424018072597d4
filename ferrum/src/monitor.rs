//! What an operator sees of a running server: one snapshot of index, node, sessions, requests
//! and mempool, rendered as the status page's JSON, as the admin RPC's `getinfo`, and as
//! Prometheus metrics. The node's state and the index's size on disk are sampled in the
//! background, so none of these ever waits on bitcoind or walks the disk.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::electrum::{server_version, Electrum};
use crate::mempool::Mempool;
use crate::metrics::LATENCY_BUCKETS;
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

pub struct Monitor {
    pub electrum: Arc<Electrum>,
    pub server: Arc<Server>,
    pub daemon: Arc<Daemon>,
    pub mempool: Arc<Mempool>,
    pub network: Network,
    pub mode: PrevoutMode,
    pub index_dir: PathBuf,
    pub stop: StopSignal,
    pub log: Option<LogControl>,
    node: Mutex<NodeState>,
    db_bytes: AtomicU64,
}

impl Monitor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        electrum: Arc<Electrum>,
        server: Arc<Server>,
        daemon: Arc<Daemon>,
        mempool: Arc<Mempool>,
        mode: PrevoutMode,
        index_dir: PathBuf,
        stop: StopSignal,
        log: Option<LogControl>,
    ) -> Arc<Monitor> {
        let node = NodeState {
            reachable: true,
            height: electrum.node.blocks,
            headers: electrum.node.headers,
            initial_block_download: electrum.node.initial_block_download,
            verification_progress: electrum.node.verification_progress,
            error: None,
        };
        let db_bytes = AtomicU64::new(dir_size(&index_dir));
        Arc::new(Monitor {
            network: electrum.config.network,
            electrum,
            server,
            daemon,
            mempool,
            mode,
            index_dir,
            stop,
            log,
            node: Mutex::new(node),
            db_bytes,
        })
    }

    /// Samples the node and the index size until the task is dropped.
    pub async fn sample(self: Arc<Self>) {
        loop {
            self.sample_once().await;
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }

    pub async fn sample_once(&self) {
        let state = match self.daemon.chain_info().await {
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
        let dir = self.index_dir.clone();
        if let Ok(bytes) = tokio::task::spawn_blocking(move || dir_size(&dir)).await {
            self.db_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// Serving normally: caught up with the node, and the node answering.
    pub fn healthy(&self) -> bool {
        self.electrum.index.status().unavailable().is_none() && self.node.locked().reachable
    }

    /// The snapshot behind the status page (`/api/status`).
    pub fn status(&self) -> Value {
        let e = &self.electrum;
        let tip = e.index.tip();
        let sync = e.index.status();
        let tip_time = tip.height.and_then(|h| {
            let chain = e.index.chain();
            let header = chain.header(h)?;
            let bytes: [u8; 4] = header.get(68..72)?.try_into().ok()?;
            Some(u32::from_le_bytes(bytes))
        });
        let node = self.node.locked().clone();
        let stats = self.daemon.rpc().stats();
        let rpc_requests = stats.requests.load(Ordering::Relaxed);
        let sessions = self.server.sessions();
        let by_protocol: serde_json::Map<String, Value> = [Protocol::Tcp, Protocol::Ssl, Protocol::Ws, Protocol::Wss]
            .iter()
            .map(|p| (p.name().to_string(), json!(sessions.iter().filter(|s| s.protocol == *p).count())))
            .collect();
        let subscriptions: usize = sessions.iter().map(|s| s.subscriptions.load(Ordering::Relaxed)).sum();
        let unavailable = sync.unavailable();
        json!({
            "server": {
                "version": server_version(),
                "network": self.network.name(),
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
                "prevout_mode": self.mode.name(),
                "db_bytes": self.db_bytes.load(Ordering::Relaxed),
            },
            "node": {
                "reachable": node.reachable,
                "error": node.error,
                "address": self.daemon.rpc().addr(),
                "version": e.node.version_string(),
                "subversion": e.node.subversion,
                "height": node.height,
                "headers": node.headers,
                "initial_block_download": node.initial_block_download,
                "verification_progress": node.verification_progress,
                "rpc_latency_ms": (rpc_requests > 0)
                    .then(|| stats.last_micros.load(Ordering::Relaxed) as f64 / 1000.0),
            },
            "tls": self.server.tls_fingerprint().map(|sha256| json!({ "sha256": sha256 })),
            "sessions": {
                "current": sessions.len(),
                "total": self.server.accepted(),
                "refused": self.server.refused(),
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
                "transactions": self.mempool.len(),
                "vsize": self.mempool.vsize(),
                "fee_histogram": self.mempool.histogram().into_iter().map(|(r, v)| json!([r, v])).collect::<Vec<_>>(),
            },
        })
    }

    /// Prometheus' text exposition format.
    pub fn prometheus(&self) -> String {
        let e = &self.electrum;
        let mut out = String::with_capacity(8192);
        let tip = e.index.tip();
        let sync = e.index.status();
        let node = self.node.locked().clone();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP ferrum_{name} {help}\n# TYPE ferrum_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "ferrum_{name}{labels} {value}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        metric(
            "info",
            "gauge",
            "Version, network and prevout mode.",
            &[(
                format!(
                    "{{version=\"{}\",network=\"{}\",prevout_mode=\"{}\"}}",
                    env!("CARGO_PKG_VERSION"),
                    self.network.name(),
                    self.mode.name()
                ),
                1.0,
            )],
        );
        metric("uptime_seconds", "gauge", "Seconds since start.", &one(e.metrics.uptime().as_secs_f64()));
        metric("resident_memory_bytes", "gauge", "Resident set size.", &one(resident_bytes() as f64));
        metric("index_height", "gauge", "Height of the indexed tip.", &one(tip.height.map_or(-1.0, f64::from)));
        metric("index_transactions", "gauge", "Transactions indexed.", &one(tip.tx_count as f64));
        metric("index_caught_up", "gauge", "1 once the index reached the node's tip.", &one(flag(sync.caught_up)));
        metric(
            "serving",
            "gauge",
            "1 while wallets are answered: the index at the tip of a node out of initial block download.",
            &one(flag(sync.unavailable().is_none())),
        );
        metric(
            "sync_blocks_per_second",
            "gauge",
            "Blocks indexed per second during sync.",
            &one(if sync.caught_up { 0.0 } else { sync.blocks_per_sec }),
        );
        metric(
            "db_bytes",
            "gauge",
            "Size of the index directory on disk.",
            &one(self.db_bytes.load(Ordering::Relaxed) as f64),
        );
        if let Ok(tables) = e.index.store().stats(false) {
            let rows: Vec<_> = tables.iter().map(|t| (format!("{{table=\"{}\"}}", t.name), t.rows as f64)).collect();
            metric("index_rows", "gauge", "Rows per table (RocksDB's estimate).", &rows);
            let bytes: Vec<_> = tables.iter().map(|t| (format!("{{table=\"{}\"}}", t.name), t.bytes as f64)).collect();
            metric("index_table_bytes", "gauge", "Bytes per table.", &bytes);
        }
        metric("node_reachable", "gauge", "1 when bitcoind answered the last check.", &one(flag(node.reachable)));
        metric("node_height", "gauge", "bitcoind's block height.", &one(f64::from(node.height)));
        metric(
            "node_initial_block_download",
            "gauge",
            "1 while bitcoind is in its initial block download.",
            &one(flag(node.initial_block_download)),
        );
        metric(
            "node_verification_progress",
            "gauge",
            "bitcoind's estimate of the share of the chain it has verified, 0 to 1.",
            &one(node.verification_progress),
        );
        let stats = self.daemon.rpc().stats();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric("node_requests_total", "counter", "Requests made to bitcoind.", &one(load(&stats.requests)));
        metric(
            "node_request_failures_total",
            "counter",
            "Requests to bitcoind that failed to reach it or were refused.",
            &one(load(&stats.failures)),
        );
        metric(
            "node_request_seconds_total",
            "counter",
            "Time spent waiting for bitcoind.",
            &one(load(&stats.micros) / 1e6),
        );
        metric("node_failovers_total", "counter", "Switches to another DAEMON_URL.", &one(load(&stats.failovers)));
        let sessions = self.server.sessions();
        let per_protocol: Vec<_> = [Protocol::Tcp, Protocol::Ssl, Protocol::Ws, Protocol::Wss]
            .iter()
            .map(|p| {
                (format!("{{protocol=\"{}\"}}", p.name()), sessions.iter().filter(|s| s.protocol == *p).count() as f64)
            })
            .collect();
        metric("sessions", "gauge", "Open client sessions.", &per_protocol);
        metric("sessions_accepted_total", "counter", "Sessions accepted.", &one(self.server.accepted() as f64));
        metric(
            "sessions_refused_total",
            "counter",
            "Connections closed at once for a session limit (total or per address).",
            &one(self.server.refused() as f64),
        );
        let (throttled, cost_dropped) = self.server.cost_actions();
        metric(
            "requests_throttled_total",
            "counter",
            "Requests slowed because their client group was over the cost soft limit.",
            &one(throttled as f64),
        );
        metric(
            "sessions_cost_dropped_total",
            "counter",
            "Sessions dropped because their client group was over the cost hard limit.",
            &one(cost_dropped as f64),
        );
        metric("cost_groups", "gauge", "Client groups with a cost.", &one(self.server.ledger().groups().len() as f64));
        let subs: usize = sessions.iter().map(|s| s.subscriptions.load(Ordering::Relaxed)).sum();
        metric("subscriptions", "gauge", "Script hashes subscribed to, over all sessions.", &one(subs as f64));
        let methods = e.metrics.methods();
        let label = |m: &str| format!("{{method=\"{m}\"}}");
        let counts: Vec<_> = methods.iter().map(|m| (label(m.method), m.count as f64)).collect();
        metric("requests_total", "counter", "Requests by method.", &counts);
        let errors: Vec<_> = methods.iter().map(|m| (label(m.method), m.errors as f64)).collect();
        metric("request_errors_total", "counter", "Requests answered with an error, by method.", &errors);
        let mut histogram = Vec::new();
        for m in &methods {
            for (bound, count) in LATENCY_BUCKETS.iter().zip(&m.buckets) {
                histogram.push((format!("_bucket{{method=\"{}\",le=\"{bound}\"}}", m.method), *count as f64));
            }
            histogram.push((format!("_bucket{{method=\"{}\",le=\"+Inf\"}}", m.method), m.count as f64));
            histogram.push((format!("_sum{}", label(m.method)), m.seconds));
            histogram.push((format!("_count{}", label(m.method)), m.count as f64));
        }
        metric("request_duration_seconds", "histogram", "Time to answer, by method.", &histogram);
        let by_code: Vec<_> =
            e.metrics.errors().into_iter().map(|(c, n)| (format!("{{code=\"{c}\"}}", c = c), n as f64)).collect();
        metric("errors_total", "counter", "Error answers by JSON-RPC code (0: other codes).", &by_code);
        metric(
            "notifications_total",
            "counter",
            "Notifications sent to subscribers.",
            &one(e.metrics.notifications() as f64),
        );
        metric("mempool_transactions", "gauge", "Transactions in the mempool.", &one(self.mempool.len() as f64));
        metric("mempool_vsize_bytes", "gauge", "Virtual size of the mempool.", &one(self.mempool.vsize() as f64));
        out
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
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
