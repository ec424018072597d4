//! The read side: what a wallet may ask about scripts and transactions, answered from the
//! index (on one consistent view of it), the mempool laid over it, and the node where only the
//! node has the bytes (transactions, by block and position).
//!
//! - `view`: the index alone, synchronous (`Query`);
//! - `history`: the protocol's order of a history (`HistoryEntry`);
//! - `scripts`: history, summary, balance and unspent outputs with the mempool overlay, and
//!   the resolution of ambiguous prevout references;
//! - `txs`: raw, verbose and confirmed transactions, a block's txids;
//! - `outpoints`: which transactions pay and spend an outpoint (protocol 1.7).
//!
//! It knows nothing of JSON-RPC: the protocol layer (`electrum`) turns its errors into the
//! codes and texts wallets expect.

mod cache;
pub(crate) mod history;
mod outpoints;
mod scripts;
#[cfg(test)]
mod tests;
mod txs;
mod view;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::daemon::{Daemon, DaemonError};
use crate::index::Index;
use crate::mempool::Mempool;
use crate::store::StoreError;

pub use cache::{ScriptCacheConfig, ScriptCacheStats};
pub(crate) use history::{History, HistoryEntry};
pub(crate) use outpoints::{Outpoint, OutpointStatus};
pub use view::Query;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("index changed {0} times during the query")]
    Unstable(u32),
    #[error("index references transaction {0}, which the txid file lacks")]
    MissingTxid(u64),
    #[error("block {0} is not in the index")]
    MissingBlock(u32),
    /// Neither the index nor the node's mempool has it.
    #[error("no such transaction")]
    TxNotFound,
    #[error("could not resolve prevout references")]
    Unresolved,
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The blocking pool is closed (shutting down) or its task failed.
    #[error("query task failed: {0}")]
    Task(String),
}

/// The read side's handles. Cheap to share: every session's answers go through one.
pub(crate) struct Reader {
    query: Query,
    index: Arc<Index>,
    mempool: Arc<Mempool>,
    daemon: Arc<Daemon>,
    /// Bounds the index reads running at once on tokio's blocking pool.
    blocking: Arc<Semaphore>,
    /// The node serves `/rest/blockpart` (Core 31+): one transaction's bytes without its block.
    blockpart: bool,
}

impl Reader {
    pub(crate) fn new(
        index: Arc<Index>,
        mempool: Arc<Mempool>,
        daemon: Arc<Daemon>,
        threads: usize,
        cache: ScriptCacheConfig,
        blockpart: bool,
    ) -> Reader {
        Reader {
            query: Query::with_cache(index.clone(), cache),
            index,
            mempool,
            daemon,
            blocking: Arc::new(Semaphore::new(threads.max(1))),
            blockpart,
        }
    }

    /// The index alone (headers, proofs: answers that need no blocking pool).
    pub(crate) fn query(&self) -> &Query {
        &self.query
    }

    /// The mempool's fee histogram: `(fee rate, vsize)` bins, highest rate first.
    pub(crate) fn fee_histogram(&self) -> Vec<(f64, u64)> {
        self.mempool.histogram()
    }

    /// The `count` transactions the mempool took in last, newest first.
    pub(crate) fn recent_mempool(&self, count: usize) -> Vec<crate::mempool::RecentTx> {
        self.mempool.recent(count)
    }

    /// Runs index work on the bounded blocking pool, so a large history never stalls the
    /// sessions' tasks.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Query) -> Result<T, QueryError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let _permit =
            self.blocking.clone().acquire_owned().await.map_err(|_| QueryError::Task("shutting down".into()))?;
        let query = self.query.clone();
        tokio::task::spawn_blocking(move || f(&query)).await.map_err(|e| QueryError::Task(e.to_string()))?
    }
}
