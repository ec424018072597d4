//! What the indexer says of its sync and of the node's: progress logs (height, %, blocks/s,
//! tx/s, ETA) and the figures of [`SyncStatus`](super::SyncStatus) behind `/api/status`.

use std::time::{Duration, Instant};

use super::{BlockSource, Indexer};
use crate::daemon::NodeTip;

/// Sync throughput since the start of a catch-up, logged every few seconds.
pub(super) struct Progress {
    started: Instant,
    last_log: Instant,
    start_height: u32,
    blocks: u64,
    txs: u64,
    bytes: u64,
}

impl Progress {
    pub(super) fn new(start_height: u32) -> Progress {
        let now = Instant::now();
        Progress { started: now, last_log: now, start_height, blocks: 0, txs: 0, bytes: 0 }
    }

    /// Counts a block indexed.
    pub(super) fn add_block(&mut self, txs: usize, bytes: usize) {
        self.blocks += 1;
        self.txs += txs as u64;
        self.bytes += bytes as u64;
    }
}

const LOG_EVERY: Duration = Duration::from_secs(5);

/// How often a syncing node's progress is logged.
const NODE_LOG_EVERY: Duration = Duration::from_secs(300);

impl<S: BlockSource> Indexer<S> {
    /// Records what the node said of its own sync, and logs when it starts or stops syncing,
    /// and its progress every few minutes while it does.
    pub(super) fn note_node(&mut self, node: &NodeTip) {
        let was = self.index.status().node_syncing;
        self.index.set_status(|s| {
            s.node_height = node.height;
            s.node_headers = node.headers;
            s.node_syncing = node.initial_block_download;
            s.node_progress = node.progress;
        });
        let now = Instant::now();
        let due = self.node_log.is_none_or(|t| now.duration_since(t) >= NODE_LOG_EVERY);
        match (was, node.initial_block_download) {
            (false, true) => {
                tracing::warn!(
                    "bitcoind is in initial block download (height {} of about {}, {:.1}% verified): Ferrum \
                     indexes what it has, and answers wallets once it has finished",
                    node.height,
                    node.headers.max(node.height),
                    node.progress * 100.0
                );
                self.node_log = Some(now);
            }
            (true, true) if due => {
                tracing::info!(
                    index = ?self.index.chain().tip_height(),
                    "bitcoind is still syncing: height {} of about {} ({:.1}% verified)",
                    node.height,
                    node.headers.max(node.height),
                    node.progress * 100.0
                );
                self.node_log = Some(now);
            }
            (true, false) => tracing::info!(height = node.height, "bitcoind finished its initial block download"),
            _ => {}
        }
    }

    pub(super) fn log_progress(&mut self, target: u32, done: bool) {
        let now = Instant::now();
        if !done && now.duration_since(self.progress.last_log) < LOG_EVERY {
            return;
        }
        self.progress.last_log = now;
        let p = &self.progress;
        let secs = now.duration_since(p.started).as_secs_f64().max(1e-3);
        let height = self.index.chain().tip_height().unwrap_or(0);
        let rate = p.blocks as f64 / secs;
        let left = target.saturating_sub(height);
        let eta = if rate > 0.0 { Some((f64::from(left) / rate) as u64) } else { None };
        self.index.set_status(|s| {
            s.blocks_per_sec = rate;
            s.eta_secs = eta;
        });
        if p.blocks < 2 && done {
            tracing::debug!(height, "indexed");
            return;
        }
        let total = f64::from(target.saturating_sub(p.start_height).max(1));
        let pct = 100.0 * f64::from(height.saturating_sub(p.start_height).min(target)) / total;
        tracing::info!(
            "indexed height {height}/{target} ({pct:.1}%), {rate:.1} blocks/s, {:.0} tx/s, {:.1} MB/s, ETA {}",
            p.txs as f64 / secs,
            p.bytes as f64 / secs / 1e6,
            eta.map_or_else(|| "unknown".to_string(), format_duration),
        );
    }
}

fn format_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}
