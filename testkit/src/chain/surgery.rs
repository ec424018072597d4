//! Chain surgery on a [`Node`]: mining (with the mempool or exactly given transactions),
//! invalidating and reconsidering blocks, reorgs of any depth, and sending transactions.

use anyhow::{anyhow, bail, Result};
use bitcoin::{Address, BlockHash, Transaction, Txid};
use serde_json::json;

use crate::keys::burn_address_n;
use crate::process::node::{parse_hash, Node};

impl Node {
    /// Mines `n` blocks paying the coinbase to `mining_address`, with mempool transactions.
    pub fn mine(&self, n: u32) -> Result<Vec<BlockHash>> {
        self.mine_to(n, &self.mining_address)
    }

    pub fn mine_to(&self, n: u32, address: &Address) -> Result<Vec<BlockHash>> {
        let v = self.call("generatetoaddress", json!([n, address.to_string()]))?;
        v.as_array().ok_or_else(|| anyhow!("generatetoaddress: not an array"))?.iter().map(parse_hash).collect()
    }

    /// Mines one block holding exactly `txs` (none from the mempool), valid or rejected by
    /// consensus only: mempool policy does not apply.
    pub fn mine_block_with(&self, txs: &[Transaction]) -> Result<BlockHash> {
        let raw: Vec<String> = txs.iter().map(bitcoin::consensus::encode::serialize_hex).collect();
        let v = self.call("generateblock", json!([self.branch_address().to_string(), raw]))?;
        parse_hash(v.get("hash").ok_or_else(|| anyhow!("generateblock: no hash"))?)
    }

    pub fn invalidate(&self, hash: &BlockHash) -> Result<()> {
        self.call("invalidateblock", json!([hash.to_string()]))?;
        Ok(())
    }

    pub fn reconsider(&self, hash: &BlockHash) -> Result<()> {
        self.call("reconsiderblock", json!([hash.to_string()]))?;
        Ok(())
    }

    /// Replaces the top `depth` blocks by `depth + 1` new ones. The transactions of the stale
    /// blocks go back to the mempool and are mined again in the new branch.
    pub fn reorg(&self, depth: u32) -> Result<Vec<BlockHash>> {
        let first_stale = self.stale_from(depth)?;
        self.invalidate(&first_stale)?;
        self.mine_to(depth + 1, &self.branch_address())
    }

    /// A coinbase address not used before in this node's life: a block re-mined at a height
    /// with the same transactions and the same second would otherwise be the invalidated block.
    fn branch_address(&self) -> Address {
        let n = self.branch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        burn_address_n(n + 1)
    }

    /// Replaces the top `depth` blocks by one block per entry of `blocks`, each holding exactly
    /// those transactions (empty blocks drop the stale transactions back to the mempool, where
    /// a conflicting transaction in the new branch evicts them).
    pub fn reorg_with(&self, depth: u32, blocks: &[Vec<Transaction>]) -> Result<Vec<BlockHash>> {
        if blocks.len() as u32 <= depth {
            bail!("a reorg of depth {depth} needs more than {depth} new blocks");
        }
        let first_stale = self.stale_from(depth)?;
        self.invalidate(&first_stale)?;
        blocks.iter().map(|txs| self.mine_block_with(txs)).collect()
    }

    fn stale_from(&self, depth: u32) -> Result<BlockHash> {
        let height = self.height()?;
        if depth == 0 || depth > height {
            bail!("cannot reorg {depth} blocks at height {height}");
        }
        self.block_hash(height - depth + 1)
    }

    pub fn send_raw(&self, tx: &Transaction) -> Result<Txid> {
        let v = self.call("sendrawtransaction", json!([bitcoin::consensus::encode::serialize_hex(tx)]))?;
        Ok(v.as_str().ok_or_else(|| anyhow!("sendrawtransaction: not a string"))?.parse()?)
    }
}
