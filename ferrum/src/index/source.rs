//! Where blocks come from: a narrow seam, so the indexer runs against a real node in
//! integration tests and against recorded blocks in unit tests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::daemon::{Daemon, DaemonError, NodeTip};
use crate::types::BlockHash;

pub trait BlockSource: Send + Sync + 'static {
    /// The best chain's tip, and whether the source is still syncing it.
    fn best(&self) -> impl Future<Output = Result<NodeTip, DaemonError>> + Send;
    /// Hashes of the best chain at heights `from..from + count` (fewer at the end of the chain).
    fn hashes(&self, from: u32, count: u32) -> impl Future<Output = Result<Vec<BlockHash>, DaemonError>> + Send;
    /// A block's raw bytes; works for blocks no longer in the best chain.
    fn block(&self, hash: BlockHash) -> impl Future<Output = Result<Vec<u8>, DaemonError>> + Send;
    /// The outputs spent by each transaction of a block, in `/rest/spenttxouts` binary form;
    /// works for blocks no longer in the best chain.
    fn spent_outputs(&self, hash: BlockHash) -> impl Future<Output = Result<Vec<u8>, DaemonError>> + Send;
    /// Returns once `hash` is the best chain's tip or `timeout` has passed: `true`. `false`, at
    /// once, when the source cannot wait for a block, and its caller polls instead.
    fn wait_for_tip(&self, hash: BlockHash, timeout: Duration) -> impl Future<Output = bool> + Send {
        let _ = (hash, timeout);
        std::future::ready(false)
    }
}

/// Blocks from bitcoind, over the fastest interface it offers.
pub struct DaemonSource {
    pub daemon: Arc<Daemon>,
    /// Blocks over REST rather than hex JSON-RPC.
    pub rest_blocks: bool,
    /// Spent outputs over REST `/rest/spenttxouts` rather than `getblock 3`.
    pub rest_spent: bool,
}

impl BlockSource for DaemonSource {
    async fn best(&self) -> Result<NodeTip, DaemonError> {
        self.daemon.best_block().await
    }

    async fn hashes(&self, from: u32, count: u32) -> Result<Vec<BlockHash>, DaemonError> {
        self.daemon.block_hashes(from, count).await
    }

    async fn block(&self, hash: BlockHash) -> Result<Vec<u8>, DaemonError> {
        self.daemon.block(&hash, self.rest_blocks).await
    }

    async fn spent_outputs(&self, hash: BlockHash) -> Result<Vec<u8>, DaemonError> {
        self.daemon.spent_outputs(&hash, self.rest_spent).await
    }

    /// `waitforblock`: the node answers the moment the block is connected, where polling
    /// would find it only at the next poll.
    async fn wait_for_tip(&self, hash: BlockHash, timeout: Duration) -> bool {
        self.daemon.wait_for_block(&hash, timeout).await.is_ok()
    }
}
