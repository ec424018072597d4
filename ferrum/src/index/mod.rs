//! The indexer, the index's only writer: follows the node's best chain block by block, in
//! chunks of blocks committed atomically with their tip, undoing blocks that leave the best
//! chain (reorgs of any depth) and publishing each new tip to readers.

pub mod build;
mod chunk;
pub mod source;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;

use crate::chain::{Chain, ChainError};
use crate::daemon::p2p::Announcements;
use crate::daemon::{DaemonError, NodeTip};
use crate::shutdown::StopSignal;
use crate::store::rows::Tip;
use crate::store::{Batch, Durability, PrevoutMode, Reader, Store, StoreError};
use crate::sync::{Backoff, Locked, Shared};
use crate::types::BlockHash;
use build::{BlockData, BuildError};
use chunk::Chunk;
pub use source::{BlockSource, DaemonSource};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("stored headers: {0}")]
    Chain(#[from] ChainError),
    #[error("bitcoind's chain shares no block with the index (another chain's genesis?)")]
    NoCommonBlock,
    #[error("block {height} spends {txid}:{vout}, which the utxo table does not hold")]
    MissingPrevout { height: u32, txid: String, vout: u32 },
    #[error("index is inconsistent: {0}")]
    Inconsistent(String),
    #[error(
        "bitcoind no longer has a block the index holds ({0}), so the index cannot follow its chain \
         back; this happens when bitcoind loses recent blocks in an unclean shutdown: restart Ferrum \
         with --reindex"
    )]
    BlockGone(String),
    #[error("indexing task failed: {0}")]
    Task(String),
}

/// What readers see of the index: its tip, and a counter that moves when blocks are undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexTip {
    pub height: Option<u32>,
    pub hash: Option<BlockHash>,
    pub tx_count: u64,
    /// Changes whenever blocks are undone; rows and txids of a reader's view stay valid only
    /// while it is unchanged.
    pub generation: u64,
}

/// How far initial sync has come, the index's and the node's.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncStatus {
    pub node_height: u32,
    pub index_height: Option<u32>,
    /// The index has reached the tip of a node out of initial block download at least once
    /// since start.
    pub caught_up: bool,
    pub blocks_per_sec: f64,
    pub eta_secs: Option<u64>,
    /// The node said it is in initial block download, the last time it was asked.
    pub node_syncing: bool,
    /// The node's headers: about the network's height while it syncs.
    pub node_headers: u32,
    /// The node's `verificationprogress`, 0 to 1.
    pub node_progress: f64,
}

impl SyncStatus {
    /// Why wallets cannot be answered now (Electrum error -102), or `None` when they can: a
    /// partial chain is never presented as current, whether it is the index or the node that
    /// is behind.
    pub fn unavailable(&self) -> Option<String> {
        if self.node_syncing {
            Some(format!(
                "bitcoind is still syncing: height {} of about {} ({:.1}% verified); try again later",
                self.node_height,
                self.node_headers.max(self.node_height),
                self.node_progress * 100.0
            ))
        } else if !self.caught_up {
            Some(format!(
                "Ferrum is still indexing the chain (height {} of {}); try again later",
                self.index_height.unwrap_or(0),
                self.node_height
            ))
        } else {
            None
        }
    }
}

/// Settings of the indexer.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    /// Blocks fetched and parsed concurrently.
    pub fetch_concurrency: usize,
    /// Commit when a chunk's rows reach this many bytes...
    pub chunk_bytes: usize,
    /// ...or this many blocks.
    pub chunk_blocks: u32,
    /// Memory for the outputs created in a chunk (`utxo` mode).
    pub utxo_cache_bytes: usize,
    /// Blocks of undo data kept in `utxo` mode; deeper reorgs re-read spent outputs from the node.
    pub undo_depth: u32,
    /// Behind the node by more than this, sync in bulk mode (no WAL, no compaction until done).
    pub bulk_threshold: u32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            fetch_concurrency: 8,
            chunk_bytes: 128 << 20,
            chunk_blocks: u32::MAX,
            utxo_cache_bytes: 256 << 20,
            undo_depth: 200,
            bulk_threshold: 200,
        }
    }
}

/// The index as readers share it.
pub struct Index {
    store: Store,
    chain: RwLock<Chain>,
    generation: AtomicU64,
    tip: watch::Sender<IndexTip>,
    status: RwLock<SyncStatus>,
    /// Script-hash prefixes touched since the last [`Index::take_touched`], recorded once the
    /// index has caught up (before that, nobody is subscribed).
    touched: std::sync::Mutex<Touched>,
    /// Counts syncs that ended at the node's tip: a reorg's undo and redo settle as one.
    settled: watch::Sender<u64>,
}

#[derive(Default)]
struct Touched {
    tracking: bool,
    prefixes: std::collections::HashSet<[u8; 8]>,
    /// Too many to list: treat everything as touched.
    overflow: bool,
}

/// More touched prefixes than this between two takes are reported as "everything".
const MAX_TOUCHED: usize = 2_000_000;

impl Index {
    /// Wraps an opened store, loading its headers into memory.
    pub fn new(store: Store) -> Result<Index, IndexError> {
        let chain = Chain::from_stored(&store.load_headers()?)?;
        match store.tip() {
            Some(tip)
                if chain.tip_height() != Some(tip.height)
                    || chain.tip_hash() != Some(tip.hash)
                    || chain.tx_count() != tip.tx_count =>
            {
                return Err(IndexError::Inconsistent(format!(
                    "stored tip {} at height {} with {} transactions, but headers reach {:?} with {}",
                    tip.hash,
                    tip.height,
                    tip.tx_count,
                    chain.tip_height(),
                    chain.tx_count()
                )));
            }
            Some(_) => {}
            None if !chain.is_empty() => return Err(IndexError::Inconsistent("headers stored without a tip".into())),
            None => {}
        }
        let tip =
            IndexTip { height: chain.tip_height(), hash: chain.tip_hash(), tx_count: chain.tx_count(), generation: 0 };
        let index_height = chain.tip_height();
        Ok(Index {
            store,
            chain: RwLock::new(chain),
            generation: AtomicU64::new(0),
            tip: watch::channel(tip).0,
            status: RwLock::new(SyncStatus { index_height, ..Default::default() }),
            touched: std::sync::Mutex::new(Touched::default()),
            settled: watch::channel(0).0,
        })
    }

    /// The store's read side: readers never reach its writes.
    pub fn store(&self) -> &Reader {
        &self.store
    }

    /// The chain in memory. Hold the guard briefly: the indexer waits for it to publish.
    pub fn chain(&self) -> RwLockReadGuard<'_, Chain> {
        self.chain.reading()
    }

    pub fn tip(&self) -> IndexTip {
        *self.tip.borrow()
    }

    /// Notified with every new tip.
    pub fn subscribe(&self) -> watch::Receiver<IndexTip> {
        self.tip.subscribe()
    }

    /// Notified each time a sync ends at the node's tip.
    pub fn settled(&self) -> watch::Receiver<u64> {
        self.settled.subscribe()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn status(&self) -> SyncStatus {
        self.status.reading().clone()
    }

    fn tracking(&self) -> bool {
        self.touched.locked().tracking
    }

    fn record_touched(&self, prefixes: impl IntoIterator<Item = [u8; 8]>) {
        let mut t = self.touched.locked();
        if !t.tracking || t.overflow {
            return;
        }
        t.prefixes.extend(prefixes);
        if t.prefixes.len() > MAX_TOUCHED {
            t.overflow = true;
            t.prefixes = Default::default();
        }
    }

    /// The script-hash prefixes touched by blocks added or undone since the last call;
    /// `None` when there were too many to list (treat every subscription as touched).
    pub fn take_touched(&self) -> Option<std::collections::HashSet<[u8; 8]>> {
        let mut t = self.touched.locked();
        let overflow = std::mem::take(&mut t.overflow);
        let prefixes = std::mem::take(&mut t.prefixes);
        (!overflow).then_some(prefixes)
    }

    fn set_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        f(&mut self.status.writing());
    }

    fn publish(&self) {
        let chain = self.chain();
        let tip = IndexTip {
            height: chain.tip_height(),
            hash: chain.tip_hash(),
            tx_count: chain.tx_count(),
            generation: self.generation(),
        };
        drop(chain);
        self.set_status(|s| s.index_height = tip.height);
        self.tip.send_replace(tip);
    }
}

pub struct Indexer<S: BlockSource> {
    index: Arc<Index>,
    source: Arc<S>,
    mode: PrevoutMode,
    config: IndexConfig,
    stop: StopSignal,
    progress: Progress,
    /// When the node's sync was last logged, while it is syncing.
    node_log: Option<Instant>,
}

/// Sync throughput since the start of a catch-up, logged every few seconds.
struct Progress {
    started: Instant,
    last_log: Instant,
    start_height: u32,
    blocks: u64,
    txs: u64,
    bytes: u64,
}

impl Progress {
    fn new(start_height: u32) -> Progress {
        let now = Instant::now();
        Progress { started: now, last_log: now, start_height, blocks: 0, txs: 0, bytes: 0 }
    }
}

const LOG_EVERY: Duration = Duration::from_secs(5);

/// How often a syncing node's progress is logged.
const NODE_LOG_EVERY: Duration = Duration::from_secs(300);

impl<S: BlockSource> Indexer<S> {
    pub fn new(index: Arc<Index>, source: Arc<S>, mode: PrevoutMode, config: IndexConfig, stop: StopSignal) -> Self {
        Indexer { index, source, mode, config, stop, progress: Progress::new(0), node_log: None }
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// Brings the index to the node's best tip (or to the last block boundary before a stop).
    pub async fn sync(&mut self) -> Result<(), IndexError> {
        let mut first_round = true;
        loop {
            if self.stop.is_stopped() {
                return Ok(());
            }
            let node = self.source.best().await?;
            let node_height = node.height;
            self.note_node(&node);
            let (our_height, our_hash) = {
                let chain = self.index.chain();
                (chain.tip_height(), chain.tip_hash())
            };
            let caught_up = self.index.status().caught_up;
            if our_hash == Some(node.hash) {
                if node.initial_block_download && !caught_up {
                    // The node's tip is not the network's: nothing to finish yet.
                    return Ok(());
                }
                self.finish_catch_up(node_height)?;
                self.index.settled.send_modify(|n| *n += 1);
                return Ok(());
            }
            let next = our_height.map_or(0, |h| h + 1);
            if node.initial_block_download
                && !caught_up
                && node_height.saturating_add(1) < next + self.config.bulk_threshold
            {
                // Following a syncing node block by block would commit (and flush) every few
                // blocks for days: let it get a bulk chunk ahead first.
                return Ok(());
            }
            let fork = self.find_fork(node_height).await?;
            if let (Some(ours), Some(f)) = (our_height, fork) {
                if f < ours {
                    self.undo_to(f).await?;
                }
            }
            let start = fork.map_or(0, |f| f + 1);
            if start <= node_height {
                if first_round {
                    self.progress = Progress::new(start);
                    first_round = false;
                }
                let bulk =
                    node_height - start >= self.config.bulk_threshold || (node.initial_block_download && !caught_up);
                if bulk {
                    self.index.store.set_bulk(true)?;
                }
                self.index_range(start, node_height, bulk).await?;
            }
        }
    }

    /// Records what the node said of its own sync, and logs when it starts or stops syncing,
    /// and its progress every few minutes while it does.
    fn note_node(&mut self, node: &NodeTip) {
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

    /// After reaching the tip: leave bulk mode, compact, say so once.
    fn finish_catch_up(&mut self, height: u32) -> Result<(), IndexError> {
        let was_caught_up = self.index.status().caught_up;
        self.index.touched.locked().tracking = true;
        self.index.set_status(|s| {
            s.caught_up = true;
            s.eta_secs = Some(0);
        });
        if self.index.store.set_bulk(false)? {
            // Merge what bulk mode left behind, in the background: new blocks keep coming.
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                tracing::info!("initial sync done; compacting the index in the background");
                match index.store.compact() {
                    Ok(()) => tracing::info!("compaction done in {:.1} s", started.elapsed().as_secs_f64()),
                    Err(e) => tracing::error!("compaction failed: {e}"),
                }
            });
        }
        if !was_caught_up {
            let chain = self.index.chain();
            tracing::info!(
                height,
                hash = %chain.tip_hash().map(|h| h.to_hex()).unwrap_or_default(),
                transactions = chain.tx_count(),
                "index at the node's tip"
            );
        }
        Ok(())
    }

    /// The highest height where the index and the node's best chain agree.
    async fn find_fork(&self, node_height: u32) -> Result<Option<u32>, IndexError> {
        let Some(ours) = self.index.chain().tip_height() else { return Ok(None) };
        let mut high = ours.min(node_height);
        let mut window = 1u32;
        loop {
            let low = high.saturating_sub(window - 1);
            let hashes = self.source.hashes(low, high - low + 1).await?;
            let chain = self.index.chain();
            for h in (low..=high).rev() {
                let theirs = hashes.get((h - low) as usize);
                if theirs.is_some() && theirs.copied() == chain.hash(h) {
                    return Ok(Some(h));
                }
            }
            if low == 0 {
                return Err(IndexError::NoCommonBlock);
            }
            high = low - 1;
            window = (window * 4).min(2000);
        }
    }

    /// Undoes the blocks above `fork`, newest first, in commits of at most 100 blocks: each
    /// commit leaves a consistent index at a lower tip.
    async fn undo_to(&mut self, fork: u32) -> Result<(), IndexError> {
        let from = self.index.chain().tip_height().unwrap_or(0);
        tracing::info!(from, to = fork, depth = from - fork, "reorg: undoing blocks that left the best chain");
        loop {
            // Not in the loop condition: a guard there would live through the body.
            let tip = self.index.chain().tip_height();
            let Some(top) = tip.filter(|t| *t > fork) else { break };
            let bottom = top.saturating_sub(99).max(fork + 1);
            let first_tx = self.index.chain().tx_range(bottom).map(|r| r.0).unwrap_or(0);
            let mut batch = self.index.store.batch(first_tx);
            let mut touched = Vec::new();
            for height in (bottom..=top).rev() {
                let data = self.block_for_undo(height).await?;
                touched.extend(chunk::touched_prefixes(&data));
                chunk::delete_block(&mut batch, self.mode, &data, self.index.chain().tx_range(height))?;
            }
            let tip = {
                let chain = self.index.chain();
                let h = bottom - 1;
                Tip {
                    height: h,
                    hash: chain.hash(h).ok_or_else(|| IndexError::Inconsistent(format!("no block at {h}")))?,
                    tx_count: first_tx,
                }
            };
            batch.set_tip(tip);
            // Odd while rows disappear: readers retry.
            self.index.generation.fetch_add(1, Ordering::SeqCst);
            let store_commit = self.commit_blocking(batch, Durability::Synced).await;
            {
                let mut chain = self.index.chain.writing();
                if store_commit.is_ok() {
                    for _ in bottom..=top {
                        chain.pop();
                    }
                }
            }
            if store_commit.is_ok() {
                self.index.record_touched(touched);
            }
            // Publish the lower tip before the generation turns even again: a reader that sees
            // the new generation also sees the new tip.
            self.index.publish();
            self.index.generation.fetch_add(1, Ordering::SeqCst);
            store_commit?;
        }
        Ok(())
    }

    /// A block being undone, with the outputs its inputs spent.
    async fn block_for_undo(&self, height: u32) -> Result<BlockData, IndexError> {
        let hash =
            self.index.chain().hash(height).ok_or_else(|| IndexError::Inconsistent(format!("no block at {height}")))?;
        let raw = self.source.block(hash).await?;
        if self.mode == PrevoutMode::Utxo {
            if let Some(coins) = self.index.store.undo(height)? {
                let mut data = tokio::task::spawn_blocking(move || build::build(height, hash, &raw, None))
                    .await
                    .map_err(|e| IndexError::Task(e.to_string()))??;
                if coins.len() != data.inputs.len() {
                    return Err(IndexError::Inconsistent(format!(
                        "undo of {height} has {} entries for {} inputs",
                        coins.len(),
                        data.inputs.len()
                    )));
                }
                for (input, coin) in data.inputs.iter_mut().zip(coins) {
                    input.coin = Some(coin);
                }
                return Ok(data);
            }
        }
        let spent = self.source.spent_outputs(hash).await?;
        Ok(tokio::task::spawn_blocking(move || build::build(height, hash, &raw, Some(&spent)))
            .await
            .map_err(|e| IndexError::Task(e.to_string()))??)
    }

    async fn commit_blocking(&self, batch: Batch, durability: Durability) -> Result<(), IndexError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.store.commit(batch, durability))
            .await
            .map_err(|e| IndexError::Task(e.to_string()))?
            .map_err(IndexError::from)
    }

    /// Indexes blocks `start..=end` of the node's best chain, fetched and parsed concurrently,
    /// committed in order. Returns early (with everything so far committed) when the node's
    /// chain changes under it or a stop is requested.
    async fn index_range(&mut self, start: u32, end: u32, bulk: bool) -> Result<(), IndexError> {
        let durability = if bulk { Durability::Bulk } else { Durability::Synced };
        let source = self.source.clone();
        let resolve_here = self.mode == PrevoutMode::Spenttxouts;
        let hashes = futures::stream::unfold(start, move |next| {
            let source = source.clone();
            async move {
                if next > end {
                    return None;
                }
                let count = (end - next + 1).min(2000);
                let r = source.hashes(next, count).await;
                let after = match &r {
                    Ok(h) if !h.is_empty() => next + h.len() as u32,
                    // The node's chain got shorter; the consumer notices and starts over.
                    _ => end + 1,
                };
                let items: Vec<Result<(u32, BlockHash), DaemonError>> = match r {
                    Ok(h) => h.into_iter().enumerate().map(|(i, hash)| Ok((next + i as u32, hash))).collect(),
                    Err(e) => vec![Err(e)],
                };
                Some((futures::stream::iter(items), after))
            }
        })
        .flatten();
        let source = self.source.clone();
        let blocks = hashes
            .map(move |item| {
                let source = source.clone();
                async move {
                    let (height, hash) = item?;
                    let (raw, spent) = if resolve_here {
                        let (raw, spent) = tokio::try_join!(source.block(hash), source.spent_outputs(hash))?;
                        (raw, Some(spent))
                    } else {
                        (source.block(hash).await?, None)
                    };
                    tokio::task::spawn_blocking(move || build::build(height, hash, &raw, spent.as_deref()))
                        .await
                        .map_err(|e| IndexError::Task(e.to_string()))?
                        .map_err(IndexError::from)
                }
            })
            .buffered(self.config.fetch_concurrency.max(1));
        let mut blocks = std::pin::pin!(blocks);

        let undo_from = end.saturating_sub(self.config.undo_depth);
        let mut chunk = self.new_chunk();
        let mut expected_prev = self.index.chain().tip_hash();
        while let Some(data) = blocks.next().await {
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    self.commit_chunk(chunk, durability).await?;
                    return Err(e);
                }
            };
            if data.height > 0 && Some(data.prev_hash()) != expected_prev {
                // The node's best chain moved while we were fetching: start over from the fork.
                tracing::debug!(height = data.height, "chain changed during sync");
                break;
            }
            expected_prev = Some(data.hash);
            self.progress.blocks += 1;
            self.progress.txs += data.txids.len() as u64;
            self.progress.bytes += data.size as u64;
            let index = self.index.clone();
            let mode = self.mode;
            let undo_depth = self.config.undo_depth;
            let keep_undo = data.height >= undo_from;
            chunk = tokio::task::block_in_place(move || -> Result<Chunk, IndexError> {
                let mut chunk = chunk;
                chunk.add(&index.store, mode, data, keep_undo, undo_depth)?;
                Ok(chunk)
            })?;
            if chunk.is_full(&self.config) || self.stop.is_stopped() {
                chunk = self.commit_chunk(chunk, durability).await?;
                self.log_progress(end, false);
                if self.stop.is_stopped() {
                    return Ok(());
                }
            }
        }
        self.commit_chunk(chunk, durability).await?;
        self.log_progress(end, true);
        Ok(())
    }

    fn new_chunk(&self) -> Chunk {
        let chain = self.index.chain();
        Chunk::new(self.index.store.batch(chain.tx_count()), chain.tx_count(), self.index.tracking())
    }

    /// Commits a chunk, publishes its blocks, returns a fresh chunk.
    async fn commit_chunk(&mut self, chunk: Chunk, durability: Durability) -> Result<Chunk, IndexError> {
        if chunk.is_empty() {
            return Ok(chunk);
        }
        let (batch, blocks, touched) = chunk.finish(self.mode)?;
        self.commit_blocking(batch, durability).await?;
        self.index.record_touched(touched);
        {
            let mut chain = self.index.chain.writing();
            for (header, count) in &blocks {
                chain.push(header, *count)?;
            }
        }
        self.index.publish();
        Ok(self.new_chunk())
    }

    fn log_progress(&mut self, target: u32, done: bool) {
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

    /// Keeps the index at the node's tip until stopped: syncs on every trigger (P2P
    /// announcement, ZMQ) and at least every `poll`. Waits out node outages, logging each
    /// change of state once.
    ///
    /// A block announced by hash before the node has made it its tip (compact blocks are
    /// announced before they are connected) is chased: the sync is retried after 2 ms, doubling
    /// up to 250 ms, until the block is in the index, for at most 10 s.
    pub async fn run(mut self, trigger: Arc<Announcements>, poll: Duration) -> Result<(), IndexError> {
        let mut chase: Option<(BlockHash, Instant, Duration)> = None;
        let mut outage: Option<String> = None;
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        // Blocks the node listed, then could not find: its chain changed while it was read.
        let mut vanished = 0u32;
        loop {
            match self.sync().await {
                Ok(()) => {
                    if outage.take().is_some() {
                        tracing::info!("connection to bitcoind restored");
                    }
                    backoff.reset();
                    vanished = 0;
                }
                Err(IndexError::Daemon(DaemonError::Rejected { code: -5, message })) => {
                    vanished += 1;
                    if vanished > MAX_VANISHED {
                        return Err(IndexError::BlockGone(message));
                    }
                    tracing::warn!("bitcoind's chain changed while it was being read ({message}); starting over");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200) * vanished) => {}
                        _ = self.stop.wait() => return Ok(()),
                    }
                    continue;
                }
                Err(IndexError::Daemon(e)) if e.is_transient() => {
                    let (kind, detail) = match &e {
                        DaemonError::WarmingUp(m) => ("bitcoind is warming up", m.clone()),
                        e => ("bitcoind unreachable", e.to_string()),
                    };
                    if outage.as_deref() != Some(kind) {
                        if detail.is_empty() {
                            tracing::warn!("{kind}; retrying");
                        } else {
                            tracing::warn!("{kind} ({detail}); retrying");
                        }
                        outage = Some(kind.to_string());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_wait()) => {}
                        _ = self.stop.wait() => {}
                    }
                    if self.stop.is_stopped() {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            if self.stop.is_stopped() {
                return Ok(());
            }
            let expected =
                trigger.take_latest().map(|h| (h, Instant::now(), Duration::from_millis(2))).or(chase.take());
            let mut wait = poll;
            if let Some((hash, since, delay)) = expected {
                let indexed = self.index.chain().height_of(&hash).is_some();
                if !indexed && since.elapsed() < Duration::from_secs(10) {
                    wait = delay;
                    chase = Some((hash, since, (delay * 2).min(Duration::from_millis(250))));
                }
            }
            tokio::select! {
                _ = trigger.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.wait() => return Ok(()),
            }
        }
    }
}

/// Times in a row a block may vanish from the node before that is an error (a pruned node
/// behaves so too, and would otherwise be retried forever).
const MAX_VANISHED: u32 = 20;

fn format_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}
