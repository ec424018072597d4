//! `ferrum index stats|history|tx`: a look inside the index without the network protocol, for
//! operators and tests. Opens the index read-only, so it works next to a running server.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use serde_json::json;

use crate::config::{Config, IndexCommand};
use crate::index::Index;
use crate::query::Query;
use crate::store::{Store, StoreConfig};
use crate::types::{ScriptHash, Txid};

fn open(config: &Config) -> Result<Query> {
    let store = Store::open_read_only(&config.index_dir(), config.network, &StoreConfig { cache_mb: 64 })?;
    Ok(Query::new(Arc::new(Index::new(store).context("loading the index")?)))
}

/// A script hash in hex, or an address of the configured network.
pub(crate) fn parse_target(network: crate::network::Network, target: &str) -> Result<ScriptHash> {
    if target.len() == 64 {
        if let Some(sh) = ScriptHash::from_hex(target) {
            return Ok(sh);
        }
    }
    let network = match network {
        crate::network::Network::Mainnet => bitcoin::Network::Bitcoin,
        crate::network::Network::Testnet => bitcoin::Network::Testnet,
        crate::network::Network::Testnet4 => bitcoin::Network::Testnet4,
        crate::network::Network::Signet => bitcoin::Network::Signet,
        crate::network::Network::Regtest => bitcoin::Network::Regtest,
    };
    let address = bitcoin::Address::from_str(target)
        .map_err(|e| anyhow!("{target:?} is neither a script hash nor an address: {e}"))?
        .require_network(network)
        .map_err(|e| anyhow!("{target}: {e}"))?;
    Ok(ScriptHash::of_script(address.script_pubkey().as_bytes()))
}

pub fn run(config: &Config, what: &IndexCommand, as_json: bool) -> Result<String> {
    let query = open(config)?;
    let index = query.index();
    let tip = index.tip();
    match what {
        IndexCommand::Stats { exact } => {
            let stats = index.store().stats(*exact)?;
            let total: u64 = stats.iter().map(|s| s.bytes).sum();
            let per_tx = |b: u64| if tip.tx_count > 0 { b as f64 / tip.tx_count as f64 } else { 0.0 };
            if as_json {
                return Ok(serde_json::to_string_pretty(&json!({
                    "height": tip.height,
                    "tip": tip.hash,
                    "transactions": tip.tx_count,
                    "prevout_mode": index.store().mode(),
                    "tables": stats,
                    "bytes": total,
                    "bytes_per_tx": per_tx(total),
                }))?);
            }
            let mut out = format!(
                "tip {} at height {}, {} transactions, prevout mode {}\n{:<10} {:>14} {:>14} {:>10}\n",
                tip.hash.map(|h| h.to_hex()).unwrap_or_else(|| "none".into()),
                tip.height.map_or_else(|| "-".to_string(), |h| h.to_string()),
                tip.tx_count,
                index.store().mode().map_or("unset", |m| m.name()),
                "table",
                if *exact { "rows" } else { "rows (est.)" },
                "bytes",
                "bytes/tx"
            );
            for s in &stats {
                out.push_str(&format!("{:<10} {:>14} {:>14} {:>10.1}\n", s.name, s.rows, s.bytes, per_tx(s.bytes)));
            }
            out.push_str(&format!("{:<10} {:>14} {:>14} {:>10.1}\n", "total", "", total, per_tx(total)));
            Ok(out)
        }
        IndexCommand::History { target } => {
            let sh = parse_target(config.network, target)?;
            let s = query.script(&sh, &HashMap::new())?;
            if as_json {
                return Ok(serde_json::to_string_pretty(&json!({
                    "scripthash": sh.to_hex(),
                    "history": s.history,
                    "unspent": s.unspent,
                    "balance": s.balance,
                    "rows": s.rows,
                }))?);
            }
            let mut out =
                format!("script hash {}: {} transactions, balance {} sat\n", sh.to_hex(), s.history.len(), s.balance);
            for h in &s.history {
                out.push_str(&format!("  {:>8} {}\n", h.height, h.txid));
            }
            out.push_str(&format!("unspent outputs: {}\n", s.unspent.len()));
            for u in &s.unspent {
                out.push_str(&format!("  {:>8} {}:{} {} sat\n", u.height, u.txid, u.vout, u.value));
            }
            Ok(out)
        }
        IndexCommand::Tx { txid } => {
            let id = Txid::from_hex(txid).ok_or_else(|| anyhow!("{txid:?} is not a transaction id"))?;
            let (height, pos, tx_num) =
                query.tx_position(&id)?.ok_or_else(|| anyhow!("transaction {txid} is not in the index"))?;
            let branch = query.merkle_branch(height, pos)?.unwrap_or_default();
            let block = query.block_hash(height).map(|h| h.to_hex()).unwrap_or_default();
            if as_json {
                return Ok(serde_json::to_string_pretty(&json!({
                    "txid": id, "height": height, "pos": pos, "tx_num": tx_num, "block": block, "merkle": branch,
                }))?);
            }
            Ok(format!(
                "{id}: height {height} (block {block}), position {pos}, tx_num {tx_num}\nmerkle branch: {}\n",
                branch.join(" ")
            ))
        }
    }
}
