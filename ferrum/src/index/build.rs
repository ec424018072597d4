//! From a raw block (and the outputs it spends, when known) to everything the index stores
//! about it. Runs in parallel, one block per task; `tx_num`s are assigned later, in order.

use crate::parse::{self, ParseError, HEADER_LEN};
use crate::store::rows::{sh_prefix, Coin};
use crate::types::{BlockHash, ScriptHash, Txid};

/// An output that pays a script (OP_RETURN outputs are left out).
#[derive(Debug, Clone, Copy)]
pub struct OutRow {
    /// Position of the transaction in the block.
    pub tx: u32,
    pub vout: u32,
    pub coin: Coin,
}

/// An input (coinbase inputs are left out).
#[derive(Debug, Clone, Copy)]
pub struct InRow {
    pub tx: u32,
    pub index: u32,
    pub prev_txid: [u8; 32],
    pub prev_vout: u32,
    /// The spent output; `None` until resolved against the `utxo` table.
    pub coin: Option<Coin>,
}

/// One parsed block, ready to be numbered and written.
#[derive(Debug)]
pub struct BlockData {
    pub(crate) height: u32,
    pub(crate) hash: BlockHash,
    pub(crate) header: [u8; HEADER_LEN],
    /// Size in bytes, for progress reports.
    pub(crate) size: usize,
    pub txids: Vec<Txid>,
    pub tx_sizes: Vec<u32>,
    pub outputs: Vec<OutRow>,
    pub inputs: Vec<InRow>,
}

impl BlockData {
    pub(crate) fn prev_hash(&self) -> BlockHash {
        parse::parse_header(&self.header).prev
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("block {hash} at height {height}: {source}")]
    Parse { height: u32, hash: BlockHash, source: ParseError },
    #[error("block at height {height} hashes to {got}, expected {expected}")]
    WrongHash { height: u32, expected: BlockHash, got: BlockHash },
    #[error("spent outputs of block {hash} do not match it: {reason}")]
    SpentMismatch { hash: BlockHash, reason: String },
}

/// Parses `raw` (the block at `height`, which must hash to `expected`). With `spent` (the
/// `/rest/spenttxouts` bytes of the block) every input is resolved here.
pub fn build(height: u32, expected: BlockHash, raw: &[u8], spent: Option<&[u8]>) -> Result<BlockData, BuildError> {
    let block = parse::parse_block(raw).map_err(|source| BuildError::Parse { height, hash: expected, source })?;
    let hash = block.hash();
    if hash != expected {
        return Err(BuildError::WrongHash { height, expected, got: hash });
    }
    let spent = match spent {
        Some(bytes) => {
            let s = parse::parse_spent_outputs(bytes)
                .map_err(|e| BuildError::SpentMismatch { hash, reason: e.to_string() })?;
            if s.txs.len() != block.txs.len() {
                return Err(BuildError::SpentMismatch {
                    hash,
                    reason: format!("{} transactions, the block has {}", s.txs.len(), block.txs.len()),
                });
            }
            Some(s)
        }
        None => None,
    };
    let mut data = BlockData {
        height,
        hash,
        header: *block.header,
        size: raw.len(),
        txids: Vec::with_capacity(block.txs.len()),
        tx_sizes: Vec::with_capacity(block.txs.len()),
        outputs: Vec::new(),
        inputs: Vec::new(),
    };
    for (i, tx) in block.txs.iter().enumerate() {
        data.txids.push(tx.txid);
        data.tx_sizes.push((tx.range.end - tx.range.start) as u32);
        // The genesis coinbase is not spendable and not indexed.
        if height == 0 {
            continue;
        }
        let i = i as u32;
        for (vout, out) in tx.outputs.iter().enumerate() {
            if out.is_op_return() {
                continue;
            }
            let coin = Coin { sh: sh_prefix(&ScriptHash::of_script(out.script)), value: out.value };
            data.outputs.push(OutRow { tx: i, vout: vout as u32, coin });
        }
        if tx.is_coinbase() {
            continue;
        }
        let spent_by_tx = match &spent {
            Some(s) => {
                let outs = s.txs.get(i as usize).map(Vec::as_slice).unwrap_or_default();
                if outs.len() != tx.inputs.len() {
                    return Err(BuildError::SpentMismatch {
                        hash,
                        reason: format!(
                            "transaction {i} has {} inputs and {} spent outputs",
                            tx.inputs.len(),
                            outs.len()
                        ),
                    });
                }
                Some(outs)
            }
            None => None,
        };
        for (index, input) in tx.inputs.iter().enumerate() {
            let coin = spent_by_tx
                .and_then(|outs| outs.get(index))
                .map(|o| Coin { sh: sh_prefix(&ScriptHash::of_script(o.script)), value: o.value });
            data.inputs.push(InRow {
                tx: i,
                index: index as u32,
                prev_txid: *input.prev_txid,
                prev_vout: input.prev_vout,
                coin,
            });
        }
    }
    Ok(data)
}
