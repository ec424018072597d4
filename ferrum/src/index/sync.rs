//! One sync: from the index's tip to the node's, undoing first what left the node's chain.
//! Blocks are fetched and parsed concurrently, numbered in order and committed in chunks. Far
//! behind the node (initial sync) the commits are in bulk mode, which ends, with a compaction,
//! at the first sync that reaches the tip of a node out of initial block download.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use super::build;
use super::chunk::{Chunk, NewBlocks};
use super::progress::Progress;
use super::{BlockSource, Index, IndexError};
use crate::daemon::DaemonError;
use crate::shutdown::StopSignal;
use crate::store::{Batch, Durability, PrevoutMode, StoreConfig};
use crate::sync::{Locked, Shared};
use crate::types::BlockHash;

/// Settings of the indexer.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    /// Blocks fetched and parsed concurrently.
    pub fetch_concurrency: usize,
    /// Commit when a chunk's rows reach this many bytes...
    pub chunk_bytes: usize,
    /// ...or this many blocks.
    pub chunk_blocks: u32,
    /// Memory for the outputs created in a chunk (`utxo` mode); by default its share of the
    /// default `--cache-mb` ([`share_cache_mb`]).
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
            utxo_cache_bytes: (DEFAULT_CACHE_MB / 2) << 20,
            undo_depth: 200,
            bulk_threshold: 200,
        }
    }
}

/// `--cache-mb`'s default, in MiB.
pub const DEFAULT_CACHE_MB: usize = 1024;

/// How `--cache-mb` is shared, by the server and by the benchmark alike: half for RocksDB's
/// block cache and write buffers, half for the outputs a chunk creates in utxo mode.
pub fn share_cache_mb(mb: usize, store: &mut StoreConfig, indexer: &mut IndexConfig) {
    store.cache_mb = mb / 2;
    indexer.utxo_cache_bytes = (mb / 2) << 20;
}

/// The index's only writer. Every change it makes is one commit carrying the new tip; readers
/// learn of a tip (through [`Index`]) only once its commit is written.
pub struct Indexer<S: BlockSource> {
    pub(super) index: Arc<Index>,
    pub(super) source: Arc<S>,
    pub(super) mode: PrevoutMode,
    pub(super) config: IndexConfig,
    pub(super) stop: StopSignal,
    pub(super) progress: Progress,
    /// When the node's sync was last logged, while it is syncing.
    pub(super) node_log: Option<Instant>,
}

impl<S: BlockSource> Indexer<S> {
    pub fn new(index: Arc<Index>, source: Arc<S>, mode: PrevoutMode, config: IndexConfig, stop: StopSignal) -> Self {
        Indexer { index, source, mode, config, stop, progress: Progress::new(0), node_log: None }
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
                return self.settle(node_height);
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
            let (fork, known) = self.find_fork_ahead(node_height).await?;
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
                self.index_range(start, node_height, bulk, known).await?;
                let tip = self.index.chain().tip_hash();
                if tip == Some(node.hash) && (caught_up || !node.initial_block_download) {
                    // At the tip the node named: settled now, without asking the node again
                    // (a block announced meanwhile wakes the next sync).
                    return self.settle(node_height);
                }
            }
        }
    }

    /// At the node's tip: tells the readers waiting for a settled index.
    fn settle(&mut self, height: u32) -> Result<(), IndexError> {
        self.finish_catch_up(height)?;
        self.index.settled.send_modify(|n| *n += 1);
        Ok(())
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
            index.compacting.store(true, Ordering::SeqCst);
            // Logged before the tip's line below, so that a reader of the log who sees that
            // line knows whether a compaction follows.
            tracing::info!("initial sync done; compacting the index in the background");
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                match index.store.compact() {
                    Ok(()) => tracing::info!("compaction done in {:.1} s", started.elapsed().as_secs_f64()),
                    Err(e) => tracing::error!("compaction failed: {e}"),
                }
                index.compacting.store(false, Ordering::SeqCst);
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

    /// Commits a batch on a blocking thread: RocksDB and the txid file sync to disk.
    pub(super) async fn commit_blocking(&self, batch: Batch, durability: Durability) -> Result<(), IndexError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.store.commit(batch, durability)).await?.map_err(IndexError::from)
    }

    /// Indexes blocks `start..=end` of the node's best chain, fetched and parsed concurrently,
    /// committed in order. Returns early (with everything so far committed) when the node's
    /// chain changes under it or a stop is requested.
    /// `known`: the node's hashes of the first blocks of the range, when already asked for.
    async fn index_range(&mut self, start: u32, end: u32, bulk: bool, known: Vec<BlockHash>) -> Result<(), IndexError> {
        let durability = if bulk { Durability::Bulk } else { Durability::Synced };
        let source = self.source.clone();
        let resolve_here = self.mode == PrevoutMode::Spenttxouts;
        let after_known = start + known.len() as u32;
        let known = futures::stream::iter(
            known.into_iter().enumerate().map(move |(i, hash)| Ok::<_, DaemonError>((start + i as u32, hash))),
        );
        let hashes = known.chain(
            futures::stream::unfold(after_known, move |next| {
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
            .flatten(),
        );
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
                        .await?
                        .map_err(IndexError::from)
                }
            })
            .buffered(self.config.fetch_concurrency.max(1));
        let mut blocks = std::pin::pin!(blocks);

        let undo_from = end.saturating_sub(self.config.undo_depth);
        let mut chunk = self.new_chunk();
        let mut expected_prev = self.index.chain().tip_hash();
        // The commit of the previous chunk, written while the next one is built.
        let mut in_flight = None;
        while let Some(data) = blocks.next().await {
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    self.commit_chunk(chunk, durability, &mut in_flight).await?;
                    self.land(in_flight.take()).await?;
                    return Err(e);
                }
            };
            if data.height > 0 && Some(data.prev_hash()) != expected_prev {
                // The node's best chain moved while we were fetching: start over from the fork.
                tracing::debug!(height = data.height, "chain changed during sync");
                break;
            }
            expected_prev = Some(data.hash);
            self.progress.add_block(data.txids.len(), data.size);
            let index = self.index.clone();
            let mode = self.mode;
            let undo_depth = self.config.undo_depth;
            let keep_undo = data.height >= undo_from;
            let added = tokio::task::block_in_place(move || -> Result<Chunk, IndexError> {
                let mut chunk = chunk;
                chunk.add(&index.store, mode, data, keep_undo, undo_depth)?;
                Ok(chunk)
            });
            chunk = match added {
                Ok(chunk) => chunk,
                Err(e) => {
                    // What was committed before stays published.
                    self.land(in_flight.take()).await?;
                    return Err(e);
                }
            };
            if in_flight.as_ref().is_some_and(|f| f.commit.is_finished()) {
                // Landed or failed: either way the previous chunk's outputs are no longer
                // needed in memory (a failure is reported by the next `land`, before any
                // lookup's).
                chunk.forget_inherited();
            }
            if chunk.is_full(&self.config) || self.stop.is_stopped() {
                chunk = self.commit_chunk(chunk, durability, &mut in_flight).await?;
                self.log_progress(end, false);
                if self.stop.is_stopped() {
                    self.land(in_flight.take()).await?;
                    return Ok(());
                }
            }
        }
        self.commit_chunk(chunk, durability, &mut in_flight).await?;
        self.land(in_flight.take()).await?;
        self.log_progress(end, true);
        Ok(())
    }

    fn new_chunk(&self) -> Chunk {
        let chain = self.index.chain();
        Chunk::new(self.index.store.batch(chain.tx_count()), chain.tx_count(), self.index.tracking(), None)
    }

    /// Starts the commit of a chunk on a blocking thread, once the previous commit has landed
    /// (commits are written in order), and returns the next chunk: the indexer builds it while
    /// RocksDB writes and flushes this one. The blocks are published when the commit lands.
    async fn commit_chunk(
        &mut self,
        chunk: Chunk,
        durability: Durability,
        in_flight: &mut Option<InFlight>,
    ) -> Result<Chunk, IndexError> {
        if chunk.is_empty() {
            return Ok(chunk);
        }
        let next_tx = chunk.next_tx();
        let closed = chunk.close();
        // The rows are sorted into the batch while the previous commit is written and the next
        // chunk is built; the batch is committed once the previous commit has landed.
        let rows = closed.rows;
        let sorting = tokio::task::spawn_blocking(move || rows.into_batch());
        // Landed first, on every path: a failed chunk leaves the commits before it published.
        self.land(in_flight.take()).await?;
        let index = self.index.clone();
        let commit = tokio::spawn(async move {
            let batch = sorting.await??;
            tokio::task::spawn_blocking(move || index.store.commit(batch, durability)).await?.map_err(IndexError::from)
        });
        *in_flight = Some(InFlight { commit, blocks: closed.blocks, touched: closed.touched, started: Instant::now() });
        let inherited = (!closed.created.is_empty()).then_some(closed.created);
        Ok(Chunk::new(self.index.store.batch(next_tx), next_tx, self.index.tracking(), inherited))
    }

    /// Waits for a commit to be written, then publishes its blocks.
    async fn land(&mut self, in_flight: Option<InFlight>) -> Result<(), IndexError> {
        let Some(InFlight { commit, blocks, touched, started }) = in_flight else { return Ok(()) };
        commit.await??;
        tracing::debug!(blocks = blocks.len(), commit_ms = started.elapsed().as_secs_f64() * 1e3, "committed");
        self.index.record_touched(touched);
        {
            let mut chain = self.index.chain.writing();
            for (header, count) in &blocks {
                chain.push(header, *count)?;
            }
        }
        self.index.publish();
        Ok(())
    }
}

/// A chunk's commit on its way to the store, and what to publish once it is there.
struct InFlight {
    commit: tokio::task::JoinHandle<Result<(), IndexError>>,
    blocks: NewBlocks,
    touched: Vec<[u8; 8]>,
    started: Instant,
}
