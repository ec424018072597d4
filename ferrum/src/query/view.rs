//! Answers from the index alone, each computed on one consistent view of it: a script hash's
//! confirmed history, balance and unspent outputs; where a transaction is; merkle proofs;
//! headers. Synchronous: callers on the async side run them through `Reader::blocking`.
//!
//! A view is the published tip (its transaction count) plus the index's generation. Rows of
//! transactions past the view's count are ignored (blocks added meanwhile), and a change of
//! generation (blocks undone meanwhile) makes the query start again.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::index::Index;
use crate::merkle;
use crate::parse::HEADER_LEN;
use crate::store::rows::{txid_prefix, Io, ScriptRow};
use crate::types::{BlockHash, ScriptHash, Txid};

use super::cache::{Entry, PrevRef, ScriptCache, ScriptCacheConfig, ScriptCacheStats};
use super::history::{Confirmed, Written};
use super::QueryError;

/// One confirmed transaction of a script's history, as the index has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConfirmedTx {
    pub height: u32,
    pub txid: Txid,
    #[serde(skip)]
    pub(crate) tx_num: u64,
}

/// A confirmed output of a script that no confirmed transaction spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Unspent {
    pub height: u32,
    pub txid: Txid,
    pub vout: u32,
    pub value: u64,
    #[serde(skip)]
    pub(crate) tx_num: u64,
}

/// Everything the index knows about a script hash, from one read of its rows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScriptSummary {
    /// Distinct transactions, in chain order (height, then position in the block).
    pub history: Vec<ConfirmedTx>,
    /// In chain order.
    pub unspent: Vec<Unspent>,
    pub balance: u64,
    /// Rows read.
    pub(crate) rows: usize,
    /// Inputs whose 8-byte prevout reference matches more than one output of the script: only
    /// the full prevout txid (from the transaction itself) tells which one they spend.
    #[serde(skip)]
    pub ambiguous: Vec<(u64, u32)>,
    /// The history written out, once something asked for it (kept summaries only).
    #[serde(skip)]
    pub(crate) written: OnceLock<Arc<Written>>,
}

/// A confirmed input that spends (or, sharing a prevout reference, may spend) an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConfirmedSpend {
    pub(crate) height: u32,
    pub(crate) txid: Txid,
    /// The input's index in its transaction.
    pub(crate) input: u32,
}

/// A consistent view: what readers may look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub(crate) tx_count: u64,
    generation: u64,
}

/// The index's answers. Clones share one cache of busy scripts' answers.
#[derive(Clone)]
pub struct Query {
    index: Arc<Index>,
    cache: Arc<ScriptCache>,
}

const MAX_ATTEMPTS: u32 = 20;

impl Query {
    /// With the default cache of busy scripts' answers.
    pub fn new(index: Arc<Index>) -> Query {
        Query::with_cache(index, ScriptCacheConfig::default())
    }

    pub fn with_cache(index: Arc<Index>, cache: ScriptCacheConfig) -> Query {
        Query { index, cache: Arc::new(ScriptCache::new(cache)) }
    }

    /// What the cache of busy scripts' answers holds and did.
    pub fn cache_stats(&self) -> ScriptCacheStats {
        self.cache.stats()
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// Runs `f` on a consistent view, again if blocks were undone meanwhile.
    pub(crate) fn with_view<T>(&self, mut f: impl FnMut(&View) -> Result<T, QueryError>) -> Result<T, QueryError> {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(view) = self.view_now() else {
                // Blocks are being undone right now.
                std::thread::sleep(std::time::Duration::from_millis(1 << attempt.min(6)));
                continue;
            };
            let result = f(&view)?;
            if self.still(&view) {
                return Ok(result);
            }
        }
        Err(QueryError::Unstable(MAX_ATTEMPTS))
    }

    /// The view now: `None` while blocks are being undone.
    fn view_now(&self) -> Option<View> {
        let generation = self.index.generation();
        generation.is_multiple_of(2).then(|| View { tx_count: self.index.tip().tx_count, generation })
    }

    /// Whether no block was undone since `view` was taken: what was read on it stands.
    fn still(&self, view: &View) -> bool {
        self.index.generation() == view.generation
    }

    /// History, unspent outputs and balance of a script hash. `exact_prevouts` gives the full
    /// txid spent by `(tx_num, input index)` for inputs found ambiguous by a previous call.
    pub fn script(
        &self,
        sh: &ScriptHash,
        exact_prevouts: &HashMap<(u64, u32), Txid>,
    ) -> Result<Arc<ScriptSummary>, QueryError> {
        self.with_view(|view| {
            if exact_prevouts.is_empty() {
                if let Some(summary) = self.cached(view, sh)? {
                    return Ok(summary);
                }
            }
            let rows = self.index.store().script_rows(sh)?;
            let summary = self.script_in(view, &rows, exact_prevouts)?;
            Ok(self.keep(view, sh, summary, &rows, exact_prevouts.is_empty()))
        })
    }

    /// The kept answer of `sh`, brought forward to `view`, if the cache has one for it.
    fn cached(&self, view: &View, sh: &ScriptHash) -> Result<Option<Arc<ScriptSummary>>, QueryError> {
        let Some(entry) = self.cache.get(sh) else { return Ok(None) };
        if entry.generation != view.generation || entry.tx_count > view.tx_count {
            return Ok(None);
        }
        let entry = if entry.tx_count == view.tx_count {
            entry
        } else {
            let store = self.index.store();
            let rows = store.script_rows_from(sh, entry.tx_count)?;
            let chain = self.index.chain();
            let txids = store.txids();
            let locate = |tx_num: u64| {
                let (height, _) = chain.locate(tx_num)?;
                Some(ConfirmedTx { height, txid: txids.get(tx_num)?, tx_num })
            };
            let Some(next) = entry.extended(view.tx_count, &rows, locate) else { return Ok(None) };
            self.cache.put(*sh, next.clone());
            next
        };
        self.cache.count(true);
        Ok(Some(entry.summary))
    }

    /// Keeps a summary computed from all of `rows` on `view` if the script is busy enough and
    /// the summary does not depend on the caller's resolved prevouts.
    fn keep(
        &self,
        view: &View,
        sh: &ScriptHash,
        summary: ScriptSummary,
        rows: &[ScriptRow],
        cacheable: bool,
    ) -> Arc<ScriptSummary> {
        self.cache.count(false);
        if !cacheable || !self.cache.worth_keeping(rows.len()) || !summary.ambiguous.is_empty() {
            return Arc::new(summary);
        }
        let summary = Arc::new(summary);
        if let Some(entry) = Entry::new(view.tx_count, view.generation, summary.clone(), rows) {
            self.cache.put(*sh, entry);
        }
        summary
    }

    fn script_in(
        &self,
        view: &View,
        rows: &[ScriptRow],
        exact: &HashMap<(u64, u32), Txid>,
    ) -> Result<ScriptSummary, QueryError> {
        let txids = self.index.store().txids();
        let txid_of = |n: u64| txids.get(n).ok_or(QueryError::MissingTxid(n));
        let mut summary =
            ScriptSummary { rows: rows.iter().filter(|r| r.tx_num < view.tx_count).count(), ..Default::default() };
        // Spends by prevout reference (sorted, searched: no hashing per row), exact ones by
        // full txid (rare).
        let mut spends: Vec<(PrevRef, u64, u32)> = Vec::new();
        let mut exact_spends: HashMap<(Txid, u32), u32> = HashMap::new();
        let mut outputs = Vec::new();
        for row in rows.iter().filter(|r| r.tx_num < view.tx_count) {
            match row.io {
                Io::Output { index, value } => outputs.push((row.tx_num, index, value)),
                Io::Input { index, prev_txid, prev_vout } => match exact.get(&(row.tx_num, index)) {
                    Some(full) => *exact_spends.entry((*full, prev_vout)).or_default() += 1,
                    None => spends.push(((prev_txid, prev_vout), row.tx_num, index)),
                },
            }
        }
        spends.sort_unstable();
        let mut resolved = Vec::with_capacity(outputs.len());
        for &(tx_num, vout, value) in &outputs {
            resolved.push((tx_num, txid_of(tx_num)?, vout, value));
        }
        // Outputs per prevout reference, to spot ambiguous inputs.
        let mut references: Vec<PrevRef> = resolved.iter().map(|r| (txid_prefix(&r.1 .0), r.2)).collect();
        references.sort_unstable();
        let chain = self.index.chain();
        for (tx_num, txid, vout, value) in resolved {
            let reference = (txid_prefix(&txid.0), vout);
            let spent = if exact_spends.get(&(txid, vout)).is_some_and(|n| *n > 0) {
                true
            } else {
                let first = spends.partition_point(|s| s.0 < reference);
                let inputs = spends.get(first..).unwrap_or_default().iter().take_while(|s| s.0 == reference);
                let candidates =
                    references.partition_point(|r| *r <= reference) - references.partition_point(|r| *r < reference);
                let mut any = false;
                for &(_, tx, index) in inputs {
                    any = true;
                    if candidates > 1 {
                        summary.ambiguous.push((tx, index));
                    }
                }
                any
            };
            if !spent {
                let (height, _) = chain.locate(tx_num).ok_or(QueryError::MissingTxid(tx_num))?;
                summary.balance += value;
                summary.unspent.push(Unspent { height, txid, vout, value, tx_num });
            }
        }
        // Row order is tag order, which is not numeric for every output index.
        summary.unspent.sort_unstable_by_key(|u| (u.tx_num, u.vout));
        summary.ambiguous.sort_unstable();
        summary.ambiguous.dedup();
        summary.history = history_entries(rows, view, &chain, &txids)?;
        Ok(summary)
    }

    /// The confirmed history of a script hash alone, and the rows read: what `get_history`,
    /// `subscribe` and statuses need, without working out which outputs are spent (no maps of
    /// spends and candidates: a third of the time of a 10,000-transaction history).
    /// A busy script's history comes from the cache, where the whole summary is kept.
    pub(crate) fn history(&self, sh: &ScriptHash) -> Result<Confirmed, QueryError> {
        self.with_view(|view| {
            if let Some(summary) = self.cached(view, sh)? {
                return Ok(Confirmed::Kept(summary));
            }
            let rows = self.index.store().script_rows(sh)?;
            // The whole summary only where it will be kept: it costs about three times the
            // history alone.
            if self.cache.worth_keeping(rows.len()) {
                let summary = self.script_in(view, &rows, &HashMap::new())?;
                return Ok(Confirmed::Kept(self.keep(view, sh, summary, &rows, true)));
            }
            self.cache.count(false);
            let txs = history_entries(&rows, view, &self.index.chain(), &self.index.store().txids())?;
            Ok(Confirmed::Read { rows: rows.len(), txs })
        })
    }

    /// The history of a script with at most `max_rows` rows, read at once on the caller's
    /// thread: `None` when it has more, when its answer is kept (a busy script), or when
    /// blocks are being undone; the caller then asks [`Self::history`] on the blocking pool.
    /// Most scripts are a seek and a few rows, which cost less than the hop to another thread
    /// and back.
    pub(crate) fn small_history(&self, sh: &ScriptHash, max_rows: usize) -> Result<Option<Confirmed>, QueryError> {
        let Some(view) = self.view_now().filter(|_| !self.cache.holds(sh)) else { return Ok(None) };
        let store = self.index.store();
        let Some(rows) = store.script_rows_upto(sh, 0, max_rows)? else { return Ok(None) };
        if self.cache.worth_keeping(rows.len()) {
            return Ok(None);
        }
        let txs = history_entries(&rows, &view, &self.index.chain(), &store.txids())?;
        if !self.still(&view) {
            return Ok(None);
        }
        self.cache.count(false);
        Ok(Some(Confirmed::Read { rows: rows.len(), txs }))
    }

    /// The confirmed inputs that may spend output `vout` of `txid`, a script `sh`'s output:
    /// its input rows whose prevout reference (the txid's first 8 bytes and the index) is the
    /// output's. The flag says whether another output of the script shares that reference, in
    /// which case only the spending transaction tells which of them an input spends.
    pub(crate) fn spends_of(
        &self,
        sh: &ScriptHash,
        txid: &Txid,
        vout: u32,
    ) -> Result<(Vec<ConfirmedSpend>, bool), QueryError> {
        self.with_view(|view| {
            let store = self.index.store();
            let txids = store.txids();
            let chain = self.index.chain();
            let reference = (txid_prefix(&txid.0), vout);
            let mut spends = Vec::new();
            let mut sharing = 0;
            for row in store.script_rows(sh)?.iter().filter(|r| r.tx_num < view.tx_count) {
                match row.io {
                    Io::Input { index, prev_txid, prev_vout } if (prev_txid, prev_vout) == reference => {
                        let (height, _) = chain.locate(row.tx_num).ok_or(QueryError::MissingTxid(row.tx_num))?;
                        let spender = txids.get(row.tx_num).ok_or(QueryError::MissingTxid(row.tx_num))?;
                        spends.push(ConfirmedSpend { height, txid: spender, input: index });
                    }
                    Io::Output { index, .. } if index == vout => {
                        let funder = txids.get(row.tx_num).ok_or(QueryError::MissingTxid(row.tx_num))?;
                        if txid_prefix(&funder.0) == reference.0 {
                            sharing += 1;
                        }
                    }
                    _ => {}
                }
            }
            Ok((spends, sharing > 1))
        })
    }

    /// Where a confirmed transaction is: `(height, position in block, tx_num)`.
    pub fn tx_position(&self, txid: &Txid) -> Result<Option<(u32, u32, u64)>, QueryError> {
        self.with_view(|view| {
            let txids = self.index.store().txids();
            for tx_num in self.index.store().txid_candidates(txid)? {
                if tx_num < view.tx_count && txids.get(tx_num) == Some(*txid) {
                    if let Some((height, pos)) = self.index.chain().locate(tx_num) {
                        return Ok(Some((height, pos, tx_num)));
                    }
                }
            }
            Ok(None)
        })
    }

    /// The txids of the block at `height`, in block order.
    pub fn block_txids(&self, height: u32) -> Result<Option<Vec<Txid>>, QueryError> {
        self.with_view(|view| {
            let Some((first, count)) = self.index.chain().tx_range(height) else { return Ok(None) };
            if first + u64::from(count) > view.tx_count {
                return Ok(None);
            }
            Ok(self.index.store().txids().range(first, count as usize))
        })
    }

    /// Where the transaction at `pos` in the block at `height` lies in the block's bytes,
    /// `(offset, size)`: `None` when the index keeps no positions for the block.
    pub(crate) fn tx_byte_range(&self, height: u32, pos: u32) -> Result<Option<(u64, u64)>, QueryError> {
        let count = self.index.chain().tx_range(height).map_or(0, |r| r.1);
        let Some(txpos) = self.index.store().txpos(height)? else { return Ok(None) };
        Ok(crate::store::rows::txpos_lookup(&txpos, count, pos).ok().map(|(offset, size)| (offset, u64::from(size))))
    }

    /// Merkle branch (display-order hex, deepest first) of the transaction at `pos` in the
    /// block at `height`.
    pub fn merkle_branch(&self, height: u32, pos: u32) -> Result<Option<Vec<String>>, QueryError> {
        let Some(txids) = self.block_txids(height)? else { return Ok(None) };
        let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
        Ok(merkle::branch(&leaves, pos as usize).map(|(b, _)| b.iter().map(merkle::hex_display).collect()))
    }

    pub fn header(&self, height: u32) -> Option<[u8; HEADER_LEN]> {
        self.index.chain().header(height).copied()
    }

    pub(crate) fn block_hash(&self, height: u32) -> Option<BlockHash> {
        self.index.chain().hash(height)
    }

    /// Proof that the header at `height` is in the chain of headers `0..=cp_height`: the branch
    /// of its hash and the root, display-order hex.
    pub fn header_proof(&self, height: u32, cp_height: u32) -> Option<(Vec<String>, String)> {
        if height > cp_height {
            return None;
        }
        let leaves: Vec<[u8; 32]> = {
            let chain = self.index.chain();
            if chain.tip_height()? < cp_height {
                return None;
            }
            (0..=cp_height).map(|h| chain.hash(h).map(|b| b.0)).collect::<Option<_>>()?
        };
        let (branch, root) = merkle::branch(&leaves, height as usize)?;
        Some((branch.iter().map(merkle::hex_display).collect(), merkle::hex_display(&root)))
    }
}

/// Height and txid of each distinct transaction of a script's `rows` that `view` sees.
fn history_entries(
    rows: &[ScriptRow],
    view: &View,
    chain: &crate::chain::Chain,
    txids: &crate::store::txids::TxidMap,
) -> Result<Vec<ConfirmedTx>, QueryError> {
    // Rows come in key order: by tx_num, then by input or output.
    let mut last = None;
    rows.iter()
        .filter(|r| r.tx_num < view.tx_count)
        .filter_map(|r| {
            let new = last != Some(r.tx_num);
            last = Some(r.tx_num);
            new.then_some(r.tx_num)
        })
        .map(|tx_num| {
            let (height, _) = chain.locate(tx_num).ok_or(QueryError::MissingTxid(tx_num))?;
            let txid = txids.get(tx_num).ok_or(QueryError::MissingTxid(tx_num))?;
            Ok(ConfirmedTx { height, txid, tx_num })
        })
        .collect()
}
