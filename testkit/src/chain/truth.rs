//! The expected answers for a chain, computed independently of Ferrum from the node's own data:
//! `getblock <hash> 3` (transactions with their prevouts) for every block.
//!
//! Semantics (those of ElectrumX, which Ferrum follows): the genesis coinbase and outputs whose
//! script starts with OP_RETURN are not indexed; every other output funds its script, every
//! input spends its prevout's script.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{anyhow, Context, Result};
use bitcoin::{BlockHash, Txid};
use serde_json::{json, Value};

use crate::process::node::Node;

/// One confirmed transaction in a script's history.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryItem {
    pub height: u32,
    /// Position in the block.
    pub pos: u32,
    pub txid: Txid,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unspent {
    pub height: u32,
    pub txid: Txid,
    pub vout: u32,
    pub value: u64,
}

/// Everything known about one script.
#[derive(Clone, Debug, Default)]
pub struct ScriptTruth {
    /// Distinct transactions, in chain order.
    pub history: Vec<HistoryItem>,
    pub unspent: BTreeSet<Unspent>,
    /// Sum of the unspent outputs, in satoshis.
    pub balance: u64,
}

/// A block as the node sees it.
#[derive(Clone, Debug)]
pub struct BlockTruth {
    pub hash: BlockHash,
    pub height: u32,
    pub merkle_root: String,
    pub txids: Vec<Txid>,
    /// Raw 80-byte header, hex.
    pub header_hex: String,
}

/// Expected state of an index of the node's active chain.
pub struct Truth {
    /// By Electrum script hash (hex).
    pub scripts: BTreeMap<String, ScriptTruth>,
    /// Script hash → output script hex.
    pub script_hex: HashMap<String, String>,
    /// Txid → (height, position).
    pub txs: HashMap<Txid, (u32, u32)>,
    pub blocks: Vec<BlockTruth>,
}

fn sats(v: &Value) -> Result<u64> {
    let btc = v.as_f64().ok_or_else(|| anyhow!("value {v} is not a number"))?;
    Ok((btc * 100_000_000.0).round() as u64)
}

fn is_op_return(script_hex: &str) -> bool {
    script_hex.starts_with("6a")
}

impl Truth {
    /// Walks the node's active chain from genesis to its tip.
    pub fn from_node(node: &Node) -> Result<Truth> {
        let tip = node.height()?;
        let mut truth =
            Truth { scripts: BTreeMap::new(), script_hex: HashMap::new(), txs: HashMap::new(), blocks: Vec::new() };
        // (txid, vout) → (scripthash, value, height), for outputs not yet spent.
        let mut outputs: HashMap<(Txid, u32), (String, u64, u32)> = HashMap::new();
        let mut touched: BTreeMap<String, BTreeSet<HistoryItem>> = BTreeMap::new();
        for height in 0..=tip {
            let hash = node.block_hash(height)?;
            let block =
                node.call("getblock", json!([hash.to_string(), 3])).with_context(|| format!("block {height}"))?;
            let header_hex = node.call("getblockheader", json!([hash.to_string(), false]))?;
            let txs = block["tx"].as_array().ok_or_else(|| anyhow!("block {height}: no tx"))?;
            let mut txids = Vec::with_capacity(txs.len());
            for (pos, tx) in txs.iter().enumerate() {
                let txid: Txid = tx["txid"].as_str().ok_or_else(|| anyhow!("no txid"))?.parse()?;
                txids.push(txid);
                truth.txs.insert(txid, (height, pos as u32));
                if height == 0 {
                    continue;
                }
                let item = HistoryItem { height, pos: pos as u32, txid };
                for input in tx["vin"].as_array().ok_or_else(|| anyhow!("no vin"))? {
                    if input.get("coinbase").is_some() {
                        continue;
                    }
                    let prev: Txid = input["txid"].as_str().ok_or_else(|| anyhow!("no prev txid"))?.parse()?;
                    let vout = input["vout"].as_u64().ok_or_else(|| anyhow!("no vout"))? as u32;
                    let script =
                        input["prevout"]["scriptPubKey"]["hex"].as_str().ok_or_else(|| anyhow!("no prevout"))?;
                    if is_op_return(script) {
                        continue;
                    }
                    let sh = crate::keys::scripthash_hex(script)?;
                    touched.entry(sh.clone()).or_default().insert(item.clone());
                    outputs.remove(&(prev, vout));
                }
                for (vout, output) in tx["vout"].as_array().ok_or_else(|| anyhow!("no vout"))?.iter().enumerate() {
                    let script = output["scriptPubKey"]["hex"].as_str().ok_or_else(|| anyhow!("no script"))?;
                    if is_op_return(script) {
                        continue;
                    }
                    let sh = crate::keys::scripthash_hex(script)?;
                    truth.script_hex.insert(sh.clone(), script.to_string());
                    touched.entry(sh.clone()).or_default().insert(item.clone());
                    outputs.insert((txid, vout as u32), (sh, sats(&output["value"])?, height));
                }
            }
            truth.blocks.push(BlockTruth {
                hash,
                height,
                merkle_root: block["merkleroot"].as_str().unwrap_or_default().to_string(),
                txids,
                header_hex: header_hex.as_str().unwrap_or_default().to_string(),
            });
        }
        for (sh, items) in touched {
            truth.scripts.insert(sh, ScriptTruth { history: items.into_iter().collect(), ..Default::default() });
        }
        for ((txid, vout), (sh, value, height)) in outputs {
            let entry = truth.scripts.entry(sh).or_default();
            entry.unspent.insert(Unspent { height, txid, vout, value });
            entry.balance += value;
        }
        Ok(truth)
    }
}
