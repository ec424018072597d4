//! A script hash's history, summary, balance and unspent outputs: the index's confirmed part
//! with the mempool laid over it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::history::{mempool_order, History, HistoryEntry};
use super::view::{ConfirmedTx, ScriptSummary};
use super::{QueryError, Reader};
use crate::cost;
use crate::mempool::Pending;
use crate::types::{ScriptHash, Txid};

/// A script's balance: confirmed, and what the mempool adds (negative when it spends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Balance {
    pub(crate) confirmed: u64,
    pub(crate) unconfirmed: i64,
}

/// An output a script can spend now: confirmed (`height` > 0) or in the mempool (0), spent by
/// no mempool transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spendable {
    pub(crate) txid: Txid,
    pub(crate) vout: u32,
    pub(crate) height: u32,
    pub(crate) value: u64,
}

/// Scripts of up to this many rows are read without the blocking pool: a few microseconds
/// from the block cache, a few block reads at worst.
const SMALL_ROWS: usize = 64;

impl Reader {
    /// Confirmed part of a script's summary, with ambiguous prevout references resolved from
    /// the spending transactions themselves.
    pub(crate) async fn summary(&self, sh: ScriptHash) -> Result<Arc<ScriptSummary>, QueryError> {
        let mut exact: HashMap<(u64, u32), Txid> = HashMap::new();
        for _ in 0..3 {
            let e = exact.clone();
            let summary = self.blocking(move |q| q.script(&sh, &e)).await?;
            cost::charge(summary.rows as f64 / cost::ROWS_PER_UNIT);
            if summary.ambiguous.is_empty() {
                return Ok(summary);
            }
            for &(tx_num, index) in &summary.ambiguous {
                let Some((height, pos)) = self.index.chain().locate(tx_num) else { continue };
                let txid = self.index.store().txids().get(tx_num).ok_or(QueryError::MissingTxid(tx_num))?;
                let raw = self.confirmed_tx(&txid, height, pos).await?;
                let view = crate::parse::parse_tx_bytes(&raw)
                    .map_err(|e| QueryError::Daemon(crate::daemon::DaemonError::Protocol(e.to_string())))?;
                if let Some(input) = view.inputs.get(index as usize) {
                    exact.insert((tx_num, index), input.prev_txid());
                }
            }
        }
        Err(QueryError::Unresolved)
    }

    /// The mempool part of a script's history: transactions the index has not confirmed, in
    /// protocol order. `confirmed` is the script's confirmed history.
    pub(crate) fn mempool_part(&self, sh: &ScriptHash, confirmed: &[ConfirmedTx]) -> Vec<Pending> {
        let mut pending = self.mempool.pending(sh);
        if pending.is_empty() {
            return pending;
        }
        // Just mined, and the mempool has not caught up yet: confirmed wins.
        let confirmed: HashSet<Txid> = confirmed.iter().map(|h| h.txid).collect();
        pending.retain(|p| !confirmed.contains(&p.tx.txid));
        pending.sort_by(|a, b| mempool_order(&HistoryEntry::pending(a), &HistoryEntry::pending(b)));
        pending
    }

    /// Confirmed and mempool history in protocol order. A script of a few rows is read at
    /// once ([`super::Query::small_history`]), any other on the blocking pool.
    pub(crate) async fn history(&self, sh: ScriptHash) -> Result<History, QueryError> {
        let confirmed = match self.query.small_history(&sh, SMALL_ROWS)? {
            Some(c) => c,
            None => self.blocking(move |q| q.history(&sh)).await?,
        };
        cost::charge(confirmed.rows() as f64 / cost::ROWS_PER_UNIT);
        let mempool = self.mempool_part(&sh, confirmed.txs());
        Ok(History { confirmed, mempool })
    }

    /// The summary and the mempool transactions touching the script, with its balance.
    pub(crate) async fn balance(
        &self,
        sh: ScriptHash,
    ) -> Result<(Arc<ScriptSummary>, Vec<Pending>, Balance), QueryError> {
        let summary = self.summary(sh).await?;
        let mempool = self.mempool_part(&sh, &summary.history);
        let delta: i128 = mempool.iter().map(|m| m.delta(&sh)).sum();
        let balance = Balance { confirmed: summary.balance, unconfirmed: delta as i64 };
        Ok((summary, mempool, balance))
    }

    /// The outputs the script can spend now: confirmed ones no mempool transaction spends (in
    /// chain order), then the mempool's (in protocol order).
    pub(crate) async fn spendable(&self, sh: ScriptHash) -> Result<Vec<Spendable>, QueryError> {
        let summary = self.summary(sh).await?;
        let mempool = self.mempool_part(&sh, &summary.history);
        let mut out: Vec<Spendable> = summary
            .unspent
            .iter()
            .filter(|u| self.mempool.spender(&u.txid, u.vout).is_none())
            .map(|u| Spendable { txid: u.txid, vout: u.vout, height: u.height, value: u.value })
            .collect();
        for m in &mempool {
            for (vout, output) in m.tx.outputs.iter().enumerate() {
                if let Some((out_sh, value)) = output {
                    let vout = vout as u32;
                    if *out_sh == sh && self.mempool.spender(&m.tx.txid, vout).is_none() {
                        out.push(Spendable { txid: m.tx.txid, vout, height: 0, value: *value });
                    }
                }
            }
        }
        Ok(out)
    }
}
