//! Transactions: raw bytes and the node's verbose description of any transaction the index or
//! the mempool knows, without a txindex; a block's txids.

use serde_json::Value;

use super::{QueryError, Reader};
use crate::daemon::DaemonError;
use crate::types::Txid;

impl Reader {
    /// Where a confirmed transaction is: `(height, position in block, tx_num)`.
    pub(crate) async fn tx_position(&self, txid: Txid) -> Result<Option<(u32, u32, u64)>, QueryError> {
        self.blocking(move |q| q.tx_position(&txid)).await
    }

    /// A confirmed transaction's bytes: a byte range of its block over REST (Core 31+), else
    /// `getrawtransaction` with the block hash (no txindex needed).
    pub(crate) async fn confirmed_tx(&self, txid: &Txid, height: u32, pos: u32) -> Result<Vec<u8>, QueryError> {
        let hash = self.index.chain().hash(height).ok_or(QueryError::MissingBlock(height))?;
        if self.blockpart {
            if let Some((offset, size)) = self.query.tx_byte_range(height, pos)? {
                if let Ok(Some(bytes)) = self.daemon.block_part(&hash, offset, size).await {
                    if crate::parse::parse_tx_bytes(&bytes).is_ok_and(|t| t.txid == *txid) {
                        return Ok(bytes);
                    }
                }
            }
        }
        Ok(self.daemon.raw_transaction(txid, Some(&hash)).await?)
    }

    /// Any transaction's bytes: confirmed (from the index), in the mempool, or unknown.
    pub(crate) async fn raw_tx(&self, txid: Txid) -> Result<Vec<u8>, QueryError> {
        if let Some((height, pos, _)) = self.tx_position(txid).await? {
            return self.confirmed_tx(&txid, height, pos).await;
        }
        // The mempool (ours may lag the node's by a moment: ask the node either way).
        self.daemon.raw_transaction(&txid, None).await.map_err(not_found)
    }

    /// `getrawtransaction <txid> true [blockhash]`, as with a txindex.
    pub(crate) async fn verbose_tx(&self, txid: Txid) -> Result<Value, QueryError> {
        let position = self.tx_position(txid).await?;
        let block = position.and_then(|(h, _, _)| self.index.chain().hash(h));
        let mut v = self.daemon.raw_transaction_verbose(&txid, block.as_ref()).await.map_err(not_found)?;
        // Only present when a block hash is passed: answer as a txindex node would.
        if let Some(obj) = v.as_object_mut() {
            obj.remove("in_active_chain");
        }
        Ok(v)
    }

    /// The txids of the block at `height`, in block order; `None` past the tip.
    pub(crate) async fn block_txids(&self, height: u32) -> Result<Option<Vec<Txid>>, QueryError> {
        self.blocking(move |q| q.block_txids(height)).await
    }
}

/// The node's "no such transaction" (-5) is the read side's.
fn not_found(e: DaemonError) -> QueryError {
    match e {
        DaemonError::Rejected { code: -5, .. } => QueryError::TxNotFound,
        other => QueryError::Daemon(other),
    }
}
