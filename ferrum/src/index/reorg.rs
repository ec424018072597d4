//! Reorgs of any depth: the fork point is found by comparing block hashes from the tip down,
//! and the blocks above it are undone newest first, each by deleting exactly the rows it added
//! (rebuilt from the block and the outputs it spent) and, in `utxo` mode, restoring what it
//! spent.

use std::sync::atomic::Ordering;

use super::build::{self, BlockData};
use super::chunk::{self, input_io, key_of, missing};
use super::{BlockSource, IndexError, Indexer};
use crate::store::rows::{self, Io, Tip};
use crate::store::{Batch, Durability, PrevoutMode};
use crate::sync::Shared;
use crate::types::BlockHash;

impl<S: BlockSource> Indexer<S> {
    /// The highest height where the index and the node's best chain agree.
    /// [`Self::find_fork`], in one request with the node's hashes above the fork in the usual
    /// case: blocks added on top of ours, where the request that checks our tip also lists
    /// the new blocks (at most 2,000 of them).
    pub(super) async fn find_fork_ahead(&self, node_height: u32) -> Result<(Option<u32>, Vec<BlockHash>), IndexError> {
        let ours = self.index.chain().tip_height();
        if let Some(ours) = ours.filter(|ours| *ours < node_height) {
            let count = (node_height - ours + 1).min(2000);
            let mut hashes = self.source.hashes(ours, count).await?;
            if !hashes.is_empty() && hashes.first().copied() == self.index.chain().hash(ours) {
                hashes.remove(0);
                return Ok((Some(ours), hashes));
            }
        }
        Ok((self.find_fork(node_height).await?, Vec::new()))
    }

    pub(super) async fn find_fork(&self, node_height: u32) -> Result<Option<u32>, IndexError> {
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
    pub(super) async fn undo_to(&mut self, fork: u32) -> Result<(), IndexError> {
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
                delete_block(&mut batch, self.mode, &data, self.index.chain().tx_range(height))?;
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
                let mut data = tokio::task::spawn_blocking(move || build::build(height, hash, &raw, None)).await??;
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
        Ok(tokio::task::spawn_blocking(move || build::build(height, hash, &raw, Some(&spent))).await??)
    }
}

/// Adds to `batch` the deletes (and, in `utxo` mode, the restores) that remove a block from the
/// index. `range` is the block's `(first tx_num, tx count)`; `data` must have every input's coin.
fn delete_block(
    batch: &mut Batch,
    mode: PrevoutMode,
    data: &BlockData,
    range: Option<(u64, u32)>,
) -> Result<(), IndexError> {
    let (first_tx, count) = range.ok_or_else(|| IndexError::Inconsistent(format!("no block at {}", data.height)))?;
    if count as usize != data.txids.len() {
        return Err(IndexError::Inconsistent(format!(
            "block {} has {} transactions, the index recorded {count}",
            data.height,
            data.txids.len()
        )));
    }
    for out in &data.outputs {
        let io = Io::Output { index: out.vout, value: out.coin.value };
        batch.delete_script_row(&rows::script_key(&out.coin.sh, first_tx + u64::from(out.tx), &io))?;
    }
    for input in &data.inputs {
        let coin = input.coin.ok_or_else(|| missing(data.height, input))?;
        batch.delete_script_row(&rows::script_key(&coin.sh, first_tx + u64::from(input.tx), &input_io(input)))?;
        if mode == PrevoutMode::Utxo {
            // Restore what the block spent...
            let (k, len) = rows::utxo_key(&input.prev_txid, input.prev_vout);
            batch.put_utxo(k.get(..len).unwrap_or_default(), &coin)?;
        }
    }
    if mode == PrevoutMode::Utxo {
        // ...then remove what it created (after the restores: an output created and spent in
        // this block must end up absent).
        for out in &data.outputs {
            if let Some(txid) = data.txids.get(out.tx as usize) {
                let (k, len) = key_of(txid, out.vout);
                batch.delete_utxo(k.get(..len).unwrap_or_default())?;
            }
        }
    }
    if data.height > 0 {
        for (i, txid) in data.txids.iter().enumerate() {
            batch.delete_txid_row(&rows::txid_key(txid, first_tx + i as u64))?;
        }
    }
    batch.delete_header(data.height)?;
    batch.delete_txpos(data.height)?;
    batch.delete_undo(data.height)?;
    Ok(())
}
