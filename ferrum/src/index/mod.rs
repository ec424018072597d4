//! The index: the readers' view of it here, and the indexer, its only writer, in the files
//! below. The indexer follows the node's best chain block by block, in chunks of blocks
//! committed atomically with their tip, undoes blocks that leave the best chain (reorgs of any
//! depth) and publishes each new tip to readers.
//!
//! - `sync.rs`: the [`Indexer`] and one sync, from the index's tip to the node's: blocks
//!   fetched and parsed concurrently, committed in chunks, in bulk mode while far behind;
//! - `reorg.rs`: finding where the node's chain forks from the index's, and undoing the blocks
//!   above it;
//! - `follow.rs`: staying at the node's tip until stopped (announcements, polling, outages);
//! - `progress.rs`: what the indexer says of its sync and of the node's, in logs and status;
//! - `chunk.rs`: the rows of a chunk of blocks on their way into one commit;
//! - `build.rs`: from a raw block to its rows, in parallel;
//! - `source.rs`: where blocks come from (the seam the tests drive).

pub mod build;
mod chunk;
mod follow;
mod progress;
mod reorg;
pub(crate) mod source;
mod sync;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use tokio::sync::watch;

use crate::chain::{Chain, ChainError};
use crate::daemon::DaemonError;
use crate::store::{Reader, Store, StoreError};
use crate::sync::{Locked, Shared};
use crate::types::BlockHash;
use build::BuildError;
pub use source::{BlockSource, DaemonSource};
pub use sync::{share_cache_mb, IndexConfig, Indexer, DEFAULT_CACHE_MB};

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
    #[error("the node's blocks spend one output twice ({0}); nothing of them was indexed")]
    SpentTwice(String),
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

impl From<tokio::task::JoinError> for IndexError {
    /// A task of the indexer's that panicked or was cancelled.
    fn from(e: tokio::task::JoinError) -> IndexError {
        IndexError::Task(e.to_string())
    }
}

/// What readers see of the index: its tip, and a counter that moves when blocks are undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexTip {
    pub height: Option<u32>,
    pub hash: Option<BlockHash>,
    /// Transactions in the chain up to the tip, coinbases included.
    pub tx_count: u64,
    /// Changes whenever blocks are undone; rows and txids of a reader's view stay valid only
    /// while it is unchanged.
    pub(crate) generation: u64,
}

/// How far initial sync has come, the index's and the node's.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct SyncStatus {
    pub(crate) node_height: u32,
    pub(crate) index_height: Option<u32>,
    /// The index has reached the tip of a node out of initial block download at least once
    /// since start.
    pub(crate) caught_up: bool,
    pub(crate) blocks_per_sec: f64,
    pub(crate) eta_secs: Option<u64>,
    /// The node said it is in initial block download, the last time it was asked.
    pub(crate) node_syncing: bool,
    /// The node's headers: about the network's height while it syncs.
    pub(crate) node_headers: u32,
    /// The node's `verificationprogress`, 0 to 1.
    pub(crate) node_progress: f64,
}

impl SyncStatus {
    /// Why wallets cannot be answered now (Electrum error -102), or `None` when they can: a
    /// partial chain is never presented as current, whether it is the index or the node that
    /// is behind.
    pub(crate) fn unavailable(&self) -> Option<String> {
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

/// The index as readers share it: the store (of which readers reach only the read side), the
/// headers in memory and the published tip. The chain and the tip describe committed blocks
/// only (the indexer commits, then updates them); the generation is odd while blocks are undone.
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
    /// The compaction after initial sync is running.
    compacting: AtomicBool,
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
            compacting: AtomicBool::new(false),
        })
    }

    /// Whether the compaction that follows initial sync is still running (it runs in the
    /// background while the index serves and follows new blocks).
    pub fn compacting(&self) -> bool {
        self.compacting.load(Ordering::SeqCst)
    }

    /// The store's read side: readers never reach its writes.
    pub fn store(&self) -> &Reader {
        &self.store
    }

    /// The chain in memory. Hold the guard briefly: the indexer waits for it to publish.
    pub(crate) fn chain(&self) -> RwLockReadGuard<'_, Chain> {
        self.chain.reading()
    }

    pub fn tip(&self) -> IndexTip {
        *self.tip.borrow()
    }

    /// Notified each time a sync ends at the node's tip.
    pub(crate) fn settled(&self) -> watch::Receiver<u64> {
        self.settled.subscribe()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn status(&self) -> SyncStatus {
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
    pub(crate) fn take_touched(&self) -> Option<std::collections::HashSet<[u8; 8]>> {
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
