//! What `/metrics` shows, in Prometheus' text format (0.0.4): the request metrics of
//! [`Metrics`], registered once, and the figures of the rest of the server (index, node,
//! sessions, mempool), read at each scrape. Every name, help text and type is here.

use std::fmt;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Metrics;

/// The figures of one scrape that live outside [`Metrics`], as their owners count them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrape {
    pub(crate) network: &'static str,
    pub(crate) prevout_mode: &'static str,
    pub(crate) uptime: Duration,
    pub(crate) resident_memory_bytes: u64,
    /// `None`: nothing indexed yet (exposed as -1).
    pub(crate) index_height: Option<u32>,
    pub(crate) index_transactions: u64,
    pub(crate) index_caught_up: bool,
    pub(crate) serving: bool,
    pub(crate) sync_blocks_per_second: f64,
    pub(crate) db_bytes: u64,
    /// `None` when the store could not tell: the two per-table metrics are left out.
    pub(crate) tables: Option<Vec<Table>>,
    pub(crate) node_reachable: bool,
    pub(crate) node_height: u32,
    pub(crate) node_initial_block_download: bool,
    pub(crate) node_verification_progress: f64,
    pub(crate) node_requests: u64,
    pub(crate) node_request_failures: u64,
    pub(crate) node_request_seconds: f64,
    pub(crate) node_failovers: u64,
    /// Open sessions by transport name, every transport listed.
    pub(crate) sessions: Vec<(&'static str, usize)>,
    pub(crate) sessions_accepted: u64,
    pub(crate) sessions_refused: u64,
    pub(crate) requests_throttled: u64,
    pub(crate) sessions_cost_dropped: u64,
    pub(crate) cost_groups: usize,
    pub(crate) subscriptions: usize,
    pub(crate) mempool_transactions: usize,
    pub(crate) mempool_vsize_bytes: u64,
    pub(crate) history_cache: crate::query::ScriptCacheStats,
}

/// One table of the index (or the txid file), as the store estimates it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InfoLabels {
    version: &'static str,
    network: &'static str,
    prevout_mode: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

/// The registry behind `/metrics`, built once at start.
pub(crate) struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// `scrape` is called once per scrape; `None` (the server is going away) leaves its
    /// metrics out of that scrape.
    pub(crate) fn new(metrics: &Metrics, scrape: impl Fn() -> Option<Scrape> + Send + Sync + 'static) -> Exposition {
        let mut registry = Registry::with_prefix("ferrum");
        registry.register_collector(Box::new(Scraped(Box::new(scrape))));
        // A registry writes its own metrics before its collectors and sub-registries: the
        // request metrics go in a sub-registry (same prefix, no labels) so that the scraped
        // state, `ferrum_info` first, opens the text as it always did.
        metrics.register(registry.sub_registry_with_labels(std::iter::empty()));
        Exposition { registry }
    }

    /// The text of one scrape.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::with_capacity(16 << 10);
        // Only the writer can fail, and a String does not.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// Takes a [`Scrape`] at each scrape and writes it as constant metrics.
struct Scraped(Box<dyn Fn() -> Option<Scrape> + Send + Sync>);

impl fmt::Debug for Scraped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scraped")
    }
}

impl Collector for Scraped {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let Some(s) = (self.0)() else { return Ok(()) };
        let e = &mut e;
        let flag = i64::from;
        let info = InfoLabels { version: env!("CARGO_PKG_VERSION"), network: s.network, prevout_mode: s.prevout_mode };
        gauges(e, "info", "Version, network and prevout mode.", [(info, 1)])?;
        gauge(e, "uptime_seconds", "Seconds since start.", s.uptime.as_secs_f64())?;
        gauge(e, "resident_memory_bytes", "Resident set size.", s.resident_memory_bytes)?;
        gauge(e, "index_height", "Height of the indexed tip.", s.index_height.map_or(-1, i64::from))?;
        gauge(e, "index_transactions", "Transactions indexed.", s.index_transactions)?;
        gauge(e, "index_caught_up", "1 once the index reached the node's tip.", flag(s.index_caught_up))?;
        gauge(
            e,
            "serving",
            "1 while wallets are answered: the index at the tip of a node out of initial block download.",
            flag(s.serving),
        )?;
        gauge(e, "sync_blocks_per_second", "Blocks indexed per second during sync.", s.sync_blocks_per_second)?;
        gauge(e, "db_bytes", "Size of the index directory on disk.", s.db_bytes)?;
        if let Some(tables) = &s.tables {
            let rows = tables.iter().map(|t| (TableLabel { table: t.name }, t.rows));
            gauges(e, "index_rows", "Rows per table (RocksDB's estimate).", rows)?;
            let bytes = tables.iter().map(|t| (TableLabel { table: t.name }, t.bytes));
            gauges(e, "index_table_bytes", "Bytes per table.", bytes)?;
        }
        gauge(e, "node_reachable", "1 when bitcoind answered the last check.", flag(s.node_reachable))?;
        gauge(e, "node_height", "bitcoind's block height.", s.node_height)?;
        gauge(
            e,
            "node_initial_block_download",
            "1 while bitcoind is in its initial block download.",
            flag(s.node_initial_block_download),
        )?;
        gauge(
            e,
            "node_verification_progress",
            "bitcoind's estimate of the share of the chain it has verified, 0 to 1.",
            s.node_verification_progress,
        )?;
        counter(e, "node_requests", "Requests made to bitcoind.", s.node_requests)?;
        counter(
            e,
            "node_request_failures",
            "Requests to bitcoind that failed to reach it or were refused.",
            s.node_request_failures,
        )?;
        let help = "Time spent waiting for bitcoind's answers (not its waits for a new block).";
        counter(e, "node_request_seconds", help, s.node_request_seconds)?;
        counter(e, "node_failovers", "Switches to another DAEMON_URL.", s.node_failovers)?;
        let sessions = s.sessions.iter().map(|(protocol, n)| (ProtocolLabel { protocol }, *n));
        gauges(e, "sessions", "Open client sessions.", sessions)?;
        counter(e, "sessions_accepted", "Sessions accepted.", s.sessions_accepted)?;
        counter(
            e,
            "sessions_refused",
            "Connections closed at once: a session limit (total or per address), or a PROXY-protocol listener's connection from no configured proxy or without its header.",
            s.sessions_refused,
        )?;
        counter(
            e,
            "requests_throttled",
            "Requests slowed because their client group was over the cost soft limit.",
            s.requests_throttled,
        )?;
        counter(
            e,
            "sessions_cost_dropped",
            "Sessions dropped because their client group was over the cost hard limit.",
            s.sessions_cost_dropped,
        )?;
        gauge(e, "cost_groups", "Client groups with a cost.", s.cost_groups)?;
        gauge(e, "subscriptions", "Script hashes subscribed to, over all sessions.", s.subscriptions)?;
        gauge(e, "mempool_transactions", "Transactions in the mempool.", s.mempool_transactions)?;
        gauge(e, "mempool_vsize_bytes", "Virtual size of the mempool.", s.mempool_vsize_bytes)?;
        let cache = &s.history_cache;
        gauge(e, "history_cache_entries", "Busy scripts whose answers are kept.", cache.entries)?;
        gauge(e, "history_cache_bytes", "Memory of the kept answers (estimated).", cache.bytes)?;
        counter(e, "history_cache_hits", "Script answers served from the kept ones.", cache.hits)?;
        counter(e, "history_cache_misses", "Script answers read from all of the script's rows.", cache.misses)
    }
}

/// One unlabelled gauge. A collector writes `help` as it is (a registry adds the `.`).
fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeGaugeValue) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One unlabelled counter; the text names it `<name>_total`.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeCounterValue) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A gauge with one series per label set.
fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrum_codec::protocol::Method;

    #[test]
    fn the_scraped_state_comes_first_then_the_request_metrics() {
        let metrics = Metrics::default();
        metrics.request(Some(Method::ServerPing), Duration::from_millis(1), None);
        let scrape = Scrape {
            network: "regtest",
            prevout_mode: "spenttxouts",
            index_height: None,
            node_verification_progress: 1.0,
            tables: Some(vec![Table { name: "script", rows: 7, bytes: 4096 }]),
            sessions: vec![("tcp", 1), ("ssl", 0)],
            sessions_refused: 980,
            serving: true,
            ..Scrape::default()
        };
        let text = Exposition::new(&metrics, move || Some(scrape.clone())).encode();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "# HELP ferrum_info Version, network and prevout mode.",
                "# TYPE ferrum_info gauge",
                &format!(
                    "ferrum_info{{version=\"{}\",network=\"regtest\",prevout_mode=\"spenttxouts\"}} 1",
                    env!("CARGO_PKG_VERSION")
                ),
            ]
        );
        for line in [
            "ferrum_index_height -1",
            "ferrum_serving 1",
            "ferrum_index_rows{table=\"script\"} 7",
            "ferrum_index_table_bytes{table=\"script\"} 4096",
            "# TYPE ferrum_node_requests_total counter",
            "ferrum_node_requests_total 0",
            "ferrum_node_verification_progress 1.0",
            "ferrum_sessions{protocol=\"tcp\"} 1",
            "ferrum_sessions_refused_total 980",
            "ferrum_requests_total{method=\"server.ping\"} 1",
        ] {
            assert!(lines.contains(&line), "{line} in {text}");
        }
        let position = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();
        assert!(position("ferrum_mempool_vsize_bytes") < position("ferrum_requests_total"));
        assert!(!text.contains("# EOF"), "the Prometheus text format, not OpenMetrics");

        // Without a scrape (the server is going away), only the request metrics.
        let text = Exposition::new(&metrics, || None).encode();
        assert!(text.starts_with("# HELP ferrum_requests_total Requests by method.\n"), "{text}");
    }
}
