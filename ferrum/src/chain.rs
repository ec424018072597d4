//! The indexed chain in memory: every header, its hash and the `tx_num` range of its block, so
//! that `tx_num → height` is a binary search and `height → header` an array index.

use crate::parse::{parse_header, HEADER_LEN};
use crate::types::BlockHash;

#[derive(Clone)]
struct Entry {
    hash: BlockHash,
    header: [u8; HEADER_LEN],
    /// `tx_num` of the block's first transaction.
    first_tx: u64,
}

/// Blocks `0..=tip` of the indexed chain. Invariant: each header's previous-hash field is the
/// hash of the entry before it, and `first_tx` increases with the heights.
#[derive(Clone, Default)]
pub(crate) struct Chain {
    entries: Vec<Entry>,
    /// Transactions in all blocks: `first_tx` of the next block.
    tx_count: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("header at height {height} does not extend the chain (its parent is {parent}, the tip is {tip})")]
    NotConnected { height: u32, parent: BlockHash, tip: BlockHash },
}

impl Chain {
    pub(crate) fn new() -> Chain {
        Chain::default()
    }

    /// Rebuilds the chain from stored headers and transaction counts (heights from 0).
    pub(crate) fn from_stored(stored: &[([u8; HEADER_LEN], u32)]) -> Result<Chain, ChainError> {
        let mut chain = Chain::new();
        for (header, count) in stored {
            chain.push(header, *count)?;
        }
        Ok(chain)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn tip_height(&self) -> Option<u32> {
        (self.entries.len() as u32).checked_sub(1)
    }

    pub(crate) fn tip_hash(&self) -> Option<BlockHash> {
        self.entries.last().map(|e| e.hash)
    }

    pub(crate) fn tx_count(&self) -> u64 {
        self.tx_count
    }

    /// Appends a block with `tx_count` transactions; its header must extend the tip.
    pub(crate) fn push(&mut self, header: &[u8; HEADER_LEN], tx_count: u32) -> Result<(), ChainError> {
        let view = parse_header(header);
        let height = self.entries.len() as u32;
        if let Some(tip) = self.entries.last() {
            if view.prev != tip.hash {
                return Err(ChainError::NotConnected { height, parent: view.prev, tip: tip.hash });
            }
        }
        self.entries.push(Entry { hash: view.hash, header: *header, first_tx: self.tx_count });
        self.tx_count += u64::from(tx_count);
        Ok(())
    }

    /// Removes the tip block.
    pub(crate) fn pop(&mut self) -> Option<BlockHash> {
        let e = self.entries.pop()?;
        self.tx_count = e.first_tx;
        Some(e.hash)
    }

    pub(crate) fn hash(&self, height: u32) -> Option<BlockHash> {
        self.entries.get(height as usize).map(|e| e.hash)
    }

    pub(crate) fn header(&self, height: u32) -> Option<&[u8; HEADER_LEN]> {
        self.entries.get(height as usize).map(|e| &e.header)
    }

    /// `tx_num` of the block's first transaction and its number of transactions.
    pub(crate) fn tx_range(&self, height: u32) -> Option<(u64, u32)> {
        let e = self.entries.get(height as usize)?;
        let end = self.entries.get(height as usize + 1).map_or(self.tx_count, |n| n.first_tx);
        Some((e.first_tx, (end - e.first_tx) as u32))
    }

    /// Height of the block holding `tx_num`, and the transaction's position in it.
    pub(crate) fn locate(&self, tx_num: u64) -> Option<(u32, u32)> {
        if tx_num >= self.tx_count {
            return None;
        }
        // The last block whose first tx_num is <= tx_num.
        let idx = self.entries.partition_point(|e| e.first_tx <= tx_num).checked_sub(1)?;
        let e = self.entries.get(idx)?;
        Some((idx as u32, (tx_num - e.first_tx) as u32))
    }

    pub(crate) fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        // Recent blocks are asked about most.
        self.entries.iter().rposition(|e| e.hash == *hash).map(|h| h as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers that chain: each one's previous-hash field is the hash of the one before.
    pub(crate) fn chained_headers(n: usize) -> Vec<[u8; HEADER_LEN]> {
        let mut out: Vec<[u8; HEADER_LEN]> = Vec::new();
        for i in 0..n {
            let mut h = [0u8; HEADER_LEN];
            if let Some(prev) = out.last() {
                h[4..36].copy_from_slice(&BlockHash::of_header(prev).0);
            }
            h[76..80].copy_from_slice(&(i as u32).to_le_bytes());
            out.push(h);
        }
        out
    }

    #[test]
    fn locate_and_ranges() {
        let headers = chained_headers(4);
        let counts = [1u32, 3, 1, 2];
        let stored: Vec<_> = headers.iter().copied().zip(counts).collect();
        let chain = Chain::from_stored(&stored).unwrap();
        assert_eq!(chain.tx_count(), 7);
        assert_eq!(chain.locate(0), Some((0, 0)));
        assert_eq!(chain.locate(3), Some((1, 2)));
        assert_eq!(chain.locate(4), Some((2, 0)));
        assert_eq!(chain.locate(6), Some((3, 1)));
        assert_eq!(chain.locate(7), None);
        assert_eq!(chain.tx_range(1), Some((1, 3)));
        assert_eq!(chain.tx_range(3), Some((5, 2)));
        assert_eq!(chain.height_of(&BlockHash::of_header(&headers[2])), Some(2));
    }

    #[test]
    fn refuses_unconnected_headers_and_pops() {
        let headers = chained_headers(3);
        let mut chain = Chain::new();
        chain.push(&headers[0], 1).unwrap();
        assert!(matches!(chain.push(&headers[2], 1), Err(ChainError::NotConnected { height: 1, .. })));
        chain.push(&headers[1], 5).unwrap();
        assert_eq!(chain.tx_count(), 6);
        assert_eq!(chain.pop(), Some(BlockHash::of_header(&headers[1])));
        assert_eq!(chain.tx_count(), 1);
        assert_eq!(chain.tip_height(), Some(0));
    }
}
