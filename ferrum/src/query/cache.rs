//! Confirmed answers of scripts kept between requests: a script hash's summary (history,
//! unspent outputs, balance) as of one view of the index, brought forward to a newer view by
//! reading only the rows past it, and never used across undone blocks.
//!
//! An entry records the view it answers for: the transaction count and the index's
//! generation. A request on a view of the same generation and a higher count reads the
//! script's rows from the entry's count on (one seek; usually none are there) and applies them:
//! new transactions are appended to the history, new outputs to the unspent ones, and new
//! inputs remove the output they spend. Blocks undone change the generation, so the entry is
//! computed again from all rows. An input whose prevout reference matches more than one of the
//! script's outputs is left to the full computation, which resolves it from the transaction.
//! The mempool is not cached: it is laid over the confirmed answer at every request.
//!
//! Entries are kept in least-recently-used order within a memory budget, and only for scripts
//! with at least a given number of rows: small histories are a seek and a few rows anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

use crate::store::rows::{txid_prefix, Io, ScriptRow, TXID_PREFIX};
use crate::types::ScriptHash;

use super::history::JSON_ENTRY_BYTES;
use super::view::{ConfirmedTx, ScriptSummary, Unspent};

/// An input row's reference to the output it spends: txid prefix and output index.
pub(crate) type PrevRef = ([u8; TXID_PREFIX], u32);

/// How much the cache may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptCacheConfig {
    /// Bytes of answers kept (estimated from their lengths); 0 turns the cache off.
    pub bytes: usize,
    /// Scripts with fewer rows are not kept.
    pub min_rows: usize,
}

impl Default for ScriptCacheConfig {
    fn default() -> Self {
        ScriptCacheConfig { bytes: 64 << 20, min_rows: 100 }
    }
}

/// A script's confirmed answer as of one view.
#[derive(Clone)]
pub(crate) struct Entry {
    /// The view's transaction count: rows of transactions from here on are not in it.
    pub(crate) tx_count: u64,
    pub(crate) generation: u64,
    pub(crate) summary: Arc<ScriptSummary>,
    /// How many of the script's outputs carry each prevout reference, spent or not: an input
    /// matching more than one is ambiguous.
    references: Arc<HashMap<PrevRef, u32>>,
}

impl Entry {
    /// An entry for a summary computed from all rows on a view; `None` when it has ambiguous
    /// inputs (those depend on what the caller resolved).
    pub(crate) fn new(
        tx_count: u64,
        generation: u64,
        summary: Arc<ScriptSummary>,
        rows: &[ScriptRow],
    ) -> Option<Entry> {
        if !summary.ambiguous.is_empty() {
            return None;
        }
        let mut references: HashMap<PrevRef, u32> = HashMap::new();
        let txid_of = |tx_num: u64| summary.history.binary_search_by_key(&tx_num, |h| h.tx_num).ok();
        for row in rows.iter().filter(|r| r.tx_num < tx_count) {
            if let Io::Output { index, .. } = row.io {
                let txid = summary.history.get(txid_of(row.tx_num)?)?.txid;
                *references.entry((txid_prefix(&txid.0), index)).or_default() += 1;
            }
        }
        Some(Entry { tx_count, generation, summary, references: Arc::new(references) })
    }

    /// The entry brought forward to `tx_count` by `rows` (the script's rows from the entry's
    /// count on, in key order), with `locate` giving a new transaction's height and txid.
    /// `None` when a row cannot be applied without the full computation.
    pub(crate) fn extended(
        &self,
        tx_count: u64,
        rows: &[ScriptRow],
        locate: impl Fn(u64) -> Option<ConfirmedTx>,
    ) -> Option<Entry> {
        let rows: Vec<&ScriptRow> = rows.iter().filter(|r| r.tx_num >= self.tx_count && r.tx_num < tx_count).collect();
        let mut next = Entry { tx_count, ..self.clone() };
        if rows.is_empty() {
            return Some(next);
        }
        let summary = Arc::make_mut(&mut next.summary);
        let references = Arc::make_mut(&mut next.references);
        // The history written out, if it was, is brought forward with the rest.
        let written = summary.written.take();
        let known = summary.history.len();
        summary.rows += rows.len();
        for row in rows {
            if summary.history.last().is_none_or(|h| h.tx_num != row.tx_num) {
                summary.history.push(locate(row.tx_num)?);
            }
            let this = summary.history.last()?;
            match row.io {
                Io::Output { index, value } => {
                    let count = references.entry((txid_prefix(&this.txid.0), index)).or_default();
                    *count += 1;
                    if *count > 1 {
                        // Later inputs could not tell the two apart.
                        return None;
                    }
                    summary.balance += value;
                    let unspent =
                        Unspent { height: this.height, txid: this.txid, vout: index, value, tx_num: this.tx_num };
                    summary.unspent.push(unspent);
                }
                Io::Input { prev_txid, prev_vout, .. } => match references.get(&(prev_txid, prev_vout)) {
                    // Spends another script's output that shares the 8-byte prefix: not ours.
                    None => {}
                    Some(1) => {
                        let pos = summary
                            .unspent
                            .iter()
                            .position(|u| u.vout == prev_vout && txid_prefix(&u.txid.0) == prev_txid)?;
                        let spent = summary.unspent.remove(pos);
                        summary.balance -= spent.value;
                    }
                    Some(_) => return None,
                },
            }
        }
        // Rows of one transaction come in key order, which is not numeric past output 63.
        summary.unspent.sort_by_key(|u| (u.tx_num, u.vout));
        if let Some(written) = written {
            let mut written = Arc::unwrap_or_clone(written);
            written.push_confirmed(summary.history.get(known..).unwrap_or_default());
            summary.written = OnceLock::from(Arc::new(written));
        }
        Some(next)
    }

    /// Bytes it holds, roughly.
    fn bytes(&self) -> usize {
        let s = &self.summary;
        std::mem::size_of::<Entry>()
            + std::mem::size_of::<ScriptSummary>()
            + s.history.capacity() * std::mem::size_of::<ConfirmedTx>()
            + s.unspent.capacity() * std::mem::size_of::<Unspent>()
            + self.references.capacity() * (std::mem::size_of::<(PrevRef, u32)>() + 1)
            // Written out on first use, after it was counted here.
            + s.history.len() * JSON_ENTRY_BYTES
    }
}

/// What the cache did, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptCacheStats {
    pub entries: usize,
    pub bytes: usize,
    /// Answers served from an entry, brought forward or not.
    pub hits: u64,
    /// Answers computed from all rows.
    pub misses: u64,
}

pub(crate) struct ScriptCache {
    config: ScriptCacheConfig,
    inner: Mutex<Inner>,
}

struct Inner {
    entries: LruCache<ScriptHash, (Entry, usize)>,
    stats: ScriptCacheStats,
}

impl ScriptCache {
    pub(crate) fn new(config: ScriptCacheConfig) -> ScriptCache {
        ScriptCache {
            config,
            inner: Mutex::new(Inner { entries: LruCache::unbounded(), stats: ScriptCacheStats::default() }),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.config.bytes > 0
    }

    /// Whether the answer of a script with `rows` rows would be kept: busy enough, and not
    /// larger than the whole budget (a row costs at least an entry of the history, and its
    /// text once written).
    pub(crate) fn worth_keeping(&self, rows: usize) -> bool {
        self.enabled()
            && rows >= self.config.min_rows
            && rows.saturating_mul(std::mem::size_of::<ConfirmedTx>() + JSON_ENTRY_BYTES) <= self.config.bytes
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it leaves nothing half-done: entries are replaced whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `sh`, if one is kept.
    pub(crate) fn get(&self, sh: &ScriptHash) -> Option<Entry> {
        if !self.enabled() {
            return None;
        }
        self.inner().entries.get(sh).map(|(e, _)| e.clone())
    }

    /// Whether an entry of `sh` is kept (not counted as a use).
    pub(crate) fn holds(&self, sh: &ScriptHash) -> bool {
        self.enabled() && self.inner().entries.contains(sh)
    }

    /// Counts an answer served from an entry or computed whole.
    pub(crate) fn count(&self, hit: bool) {
        let mut inner = self.inner();
        if hit {
            inner.stats.hits += 1;
        } else {
            inner.stats.misses += 1;
        }
    }

    /// Keeps `entry` for `sh` unless a newer one is kept already; evicts the least recently
    /// used entries beyond the budget.
    pub(crate) fn put(&self, sh: ScriptHash, entry: Entry) {
        let size = entry.bytes();
        if !self.enabled() || size > self.config.bytes {
            return;
        }
        let mut inner = self.inner();
        if let Some((kept, _)) = inner.entries.peek(&sh) {
            if kept.generation > entry.generation
                || (kept.generation == entry.generation && kept.tx_count >= entry.tx_count)
            {
                return;
            }
        }
        if let Some((_, old)) = inner.entries.put(sh, (entry, size)) {
            inner.stats.bytes -= old;
        }
        inner.stats.bytes += size;
        while inner.stats.bytes > self.config.bytes {
            match inner.entries.pop_lru() {
                Some((_, (_, n))) => inner.stats.bytes -= n,
                None => break,
            }
        }
        inner.stats.entries = inner.entries.len();
    }

    pub(crate) fn stats(&self) -> ScriptCacheStats {
        self.inner().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Txid;

    fn tx(tx_num: u64) -> ConfirmedTx {
        let mut txid = [0u8; 32];
        txid[..8].copy_from_slice(&tx_num.to_le_bytes());
        ConfirmedTx { height: tx_num as u32 / 10, txid: Txid(txid), tx_num }
    }

    fn output(tx_num: u64, index: u32, value: u64) -> ScriptRow {
        ScriptRow { tx_num, io: Io::Output { index, value } }
    }

    fn input(tx_num: u64, spends: u64, vout: u32) -> ScriptRow {
        ScriptRow { tx_num, io: Io::Input { index: 0, prev_txid: txid_prefix(&tx(spends).txid.0), prev_vout: vout } }
    }

    /// The summary the full computation gives: outputs minus the ones inputs reference.
    fn full(rows: &[ScriptRow]) -> ScriptSummary {
        let mut s = ScriptSummary { rows: rows.len(), ..Default::default() };
        for r in rows {
            if s.history.last().is_none_or(|h| h.tx_num != r.tx_num) {
                s.history.push(tx(r.tx_num));
            }
        }
        for r in rows {
            if let Io::Output { index, value } = r.io {
                let spent = rows.iter().any(|i| {
                    matches!(i.io, Io::Input { prev_txid, prev_vout, .. }
                        if prev_vout == index && prev_txid == txid_prefix(&tx(r.tx_num).txid.0))
                });
                if !spent {
                    s.balance += value;
                    let t = tx(r.tx_num);
                    s.unspent.push(Unspent { height: t.height, txid: t.txid, vout: index, value, tx_num: r.tx_num });
                }
            }
        }
        s
    }

    fn same(a: &ScriptSummary, b: &ScriptSummary) {
        assert_eq!(a.history, b.history);
        assert_eq!(a.unspent, b.unspent);
        assert_eq!(a.balance, b.balance);
        assert_eq!(a.rows, b.rows);
    }

    #[test]
    fn brought_forward_equals_computed_whole() {
        let rows = vec![
            output(1, 0, 100),
            output(1, 1, 50),
            output(5, 0, 7),
            input(9, 1, 0),
            output(9, 1, 90),
            input(12, 5, 0),
            input(12, 9, 1),
            output(20, 0, 3),
        ];
        for cut in 0..=21 {
            let before: Vec<ScriptRow> = rows.iter().copied().filter(|r| r.tx_num < cut).collect();
            let entry = Entry::new(cut, 0, Arc::new(full(&before)), &before).unwrap();
            let forward = entry.extended(21, &rows, |n| Some(tx(n))).unwrap();
            same(&forward.summary, &full(&rows));
            assert_eq!(forward.tx_count, 21);
            // The entry it came from is untouched.
            same(&entry.summary, &full(&before));
        }
    }

    #[test]
    fn a_second_output_with_the_same_reference_needs_the_full_computation() {
        // Two transactions whose txids share the 8-byte prefix, paying the script at index 0.
        let rows = vec![output(1, 0, 10)];
        let entry = Entry::new(2, 0, Arc::new(full(&rows)), &rows).unwrap();
        let twin = output(3, 0, 20);
        let locate = |n: u64| Some(if n == 3 { ConfirmedTx { tx_num: 3, ..tx(1) } } else { tx(n) });
        assert!(entry.extended(4, &[twin], locate).is_none());
        // An unknown transaction cannot be placed either.
        assert!(entry.extended(4, &[output(3, 0, 1)], |_| None).is_none());
    }

    #[test]
    fn kept_within_budget_newest_first() {
        let rows: Vec<ScriptRow> = (0..50).map(|n| output(n, 0, 1)).collect();
        let entry = |count: u64, generation: u64| Entry::new(count, generation, Arc::new(full(&rows)), &rows).unwrap();
        let one = entry(50, 0).bytes();
        let cache = ScriptCache::new(ScriptCacheConfig { bytes: one * 2, min_rows: 0 });
        let sh = |n: u8| ScriptHash([n; 32]);
        cache.put(sh(1), entry(50, 0));
        cache.put(sh(2), entry(50, 0));
        assert!(cache.get(&sh(1)).is_some()); // now the most recent
        cache.put(sh(3), entry(50, 0));
        assert!(cache.get(&sh(2)).is_none(), "the least recently used goes");
        assert!(cache.get(&sh(1)).is_some() && cache.get(&sh(3)).is_some());
        assert!(cache.stats().bytes <= one * 2);
        // An older answer never replaces a newer one.
        cache.put(sh(1), entry(60, 2));
        cache.put(sh(1), entry(70, 0));
        let kept = cache.get(&sh(1)).unwrap();
        assert_eq!((kept.tx_count, kept.generation), (60, 2));
        let off = ScriptCache::new(ScriptCacheConfig { bytes: 0, min_rows: 0 });
        off.put(sh(1), entry(50, 0));
        assert!(off.get(&sh(1)).is_none());
    }
}
