//! The node's mempool, followed by difference: each sync asks for the mempool's txids, drops
//! the ones that left, and fetches the new ones in batches with their prevouts (from the
//! mempool itself for unconfirmed parents, from the node's `gettxout` for confirmed ones).
//! Keeps, per script hash, the transactions touching it, for history, balance deltas, unspent
//! outputs and the fee histogram.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, DaemonError};
use crate::parse;
use crate::sync::Shared;
use crate::types::{BlockHash, ScriptHash, Txid};

/// Requests per JSON-RPC batch.
const BATCH: usize = 250;
/// ElectrumX's smallest fee histogram bin, in vbytes.
const HISTOGRAM_BIN: f64 = 30_000.0;
/// The histogram is recomputed at most this often.
const HISTOGRAM_REFRESH: Duration = Duration::from_secs(10);

/// An output a mempool transaction spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spend {
    pub(crate) prev_txid: Txid,
    pub(crate) prev_vout: u32,
    pub(crate) sh: ScriptHash,
    pub(crate) value: u64,
}

#[derive(Debug)]
pub(crate) struct MempoolTx {
    pub(crate) txid: Txid,
    pub(crate) fee: u64,
    pub(crate) vsize: u32,
    pub(crate) inputs: Vec<Spend>,
    /// By output index; `None` for OP_RETURN outputs.
    pub(crate) outputs: Vec<Option<(ScriptHash, u64)>>,
}

impl MempoolTx {
    fn scripthashes(&self) -> impl Iterator<Item = ScriptHash> + '_ {
        self.inputs.iter().map(|i| i.sh).chain(self.outputs.iter().flatten().map(|(sh, _)| *sh))
    }
}

#[derive(Default)]
struct State {
    txs: HashMap<Txid, Arc<MempoolTx>>,
    by_sh: HashMap<ScriptHash, HashSet<Txid>>,
    /// Which mempool transaction spends an outpoint.
    spent_by: HashMap<(Txid, u32), Txid>,
    /// Transactions in the order they were taken in (`mempool.recent`), and each one's place.
    arrivals: BTreeMap<u64, Txid>,
    arrival_of: HashMap<Txid, u64>,
    next_arrival: u64,
    histogram: Option<(Instant, Vec<(f64, u64)>)>,
}

impl State {
    /// Whether `tx` spends an output of another mempool transaction.
    fn has_unconfirmed_inputs(&self, tx: &MempoolTx) -> bool {
        tx.inputs.iter().any(|i| self.txs.contains_key(&i.prev_txid))
    }

    fn insert(&mut self, tx: Arc<MempoolTx>) {
        self.arrivals.insert(self.next_arrival, tx.txid);
        self.arrival_of.insert(tx.txid, self.next_arrival);
        self.next_arrival += 1;
        for sh in tx.scripthashes() {
            self.by_sh.entry(sh).or_default().insert(tx.txid);
        }
        for i in &tx.inputs {
            self.spent_by.insert((i.prev_txid, i.prev_vout), tx.txid);
        }
        self.txs.insert(tx.txid, tx);
    }

    /// Drops transactions, adding to `touched` their scripts and their children's (a child
    /// that loses an unconfirmed parent may go from height -1 to 0). How many were here.
    fn drop_txs(&mut self, gone: &[Txid], touched: &mut HashSet<ScriptHash>) -> usize {
        let mut dropped = 0;
        for txid in gone {
            let Some(tx) = self.remove(txid) else { continue };
            dropped += 1;
            touched.extend(tx.scripthashes());
            for vout in 0..tx.outputs.len() as u32 {
                if let Some(child) = self.spent_by.get(&(*txid, vout)).and_then(|c| self.txs.get(c)) {
                    touched.extend(child.scripthashes());
                }
            }
        }
        if dropped > 0 {
            self.histogram = None;
        }
        dropped
    }

    fn remove(&mut self, txid: &Txid) -> Option<Arc<MempoolTx>> {
        let tx = self.txs.remove(txid)?;
        if let Some(n) = self.arrival_of.remove(txid) {
            self.arrivals.remove(&n);
        }
        for sh in tx.scripthashes() {
            if let Some(set) = self.by_sh.get_mut(&sh) {
                set.remove(txid);
                if set.is_empty() {
                    self.by_sh.remove(&sh);
                }
            }
        }
        for i in &tx.inputs {
            let key = (i.prev_txid, i.prev_vout);
            if self.spent_by.get(&key) == Some(txid) {
                self.spent_by.remove(&key);
            }
        }
        Some(tx)
    }
}

/// A mempool transaction as one script hash sees it.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) tx: Arc<MempoolTx>,
    /// Spends an output of another mempool transaction (height -1 in the protocol).
    pub(crate) has_unconfirmed_inputs: bool,
}

impl Pending {
    /// What this transaction adds to (or, negative, takes from) a script's balance.
    pub(crate) fn delta(&self, sh: &ScriptHash) -> i128 {
        let received: u64 = self.tx.outputs.iter().flatten().filter(|(s, _)| s == sh).map(|(_, v)| *v).sum();
        let spent: u64 = self.tx.inputs.iter().filter(|i| i.sh == *sh).map(|i| i.value).sum();
        i128::from(received) - i128::from(spent)
    }
}

/// A mempool transaction paying an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MempoolFunder {
    pub(crate) has_unconfirmed_inputs: bool,
    /// The output: `None` when the transaction has no such output, `Some(None)` for an
    /// OP_RETURN output, else its script hash.
    pub(crate) output: Option<Option<ScriptHash>>,
}

/// What the mempool knows of an outpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MempoolOutpoint {
    /// The funding transaction, when it is in the mempool.
    pub(crate) funder: Option<MempoolFunder>,
    /// The mempool transaction spending it, and whether that one has unconfirmed inputs.
    pub(crate) spender: Option<(Txid, bool)>,
}

/// A transaction as `mempool.recent` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecentTx {
    pub(crate) txid: Txid,
    pub(crate) fee: u64,
    pub(crate) vsize: u32,
}

/// What a sync changed.
#[derive(Debug, Default)]
pub(crate) struct SyncReport {
    pub(crate) added: usize,
    pub(crate) removed: usize,
    /// Script hashes whose mempool part changed (including a parent's confirmation).
    pub(crate) touched: HashSet<ScriptHash>,
}

pub struct Mempool {
    daemon: Arc<Daemon>,
    state: RwLock<State>,
}

impl Mempool {
    pub fn new(daemon: Arc<Daemon>) -> Mempool {
        Mempool { daemon, state: RwLock::new(State::default()) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.reading()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().txs.len()
    }

    /// Total virtual size, vbytes.
    pub(crate) fn vsize(&self) -> u64 {
        self.read().txs.values().map(|t| u64::from(t.vsize)).sum()
    }

    /// The mempool transactions touching `sh`, unordered.
    pub(crate) fn pending(&self, sh: &ScriptHash) -> Vec<Pending> {
        let state = self.read();
        let Some(set) = state.by_sh.get(sh) else { return Vec::new() };
        set.iter()
            .filter_map(|t| state.txs.get(t))
            .map(|tx| Pending { has_unconfirmed_inputs: state.has_unconfirmed_inputs(tx), tx: tx.clone() })
            .collect()
    }

    /// Whether a mempool transaction spends this output.
    pub(crate) fn spender(&self, txid: &Txid, vout: u32) -> Option<Txid> {
        self.read().spent_by.get(&(*txid, vout)).copied()
    }

    /// The funding and spending transactions of an outpoint, as far as the mempool has them.
    pub(crate) fn outpoint(&self, txid: &Txid, vout: u32) -> MempoolOutpoint {
        let state = self.read();
        let funder = state.txs.get(txid).map(|tx| MempoolFunder {
            has_unconfirmed_inputs: state.has_unconfirmed_inputs(tx),
            output: tx.outputs.get(vout as usize).map(|o| o.map(|(sh, _)| sh)),
        });
        let spender = state
            .spent_by
            .get(&(*txid, vout))
            .and_then(|s| state.txs.get(s))
            .map(|tx| (tx.txid, state.has_unconfirmed_inputs(tx)));
        MempoolOutpoint { funder, spender }
    }

    /// The `count` transactions taken in last, newest first.
    pub(crate) fn recent(&self, count: usize) -> Vec<RecentTx> {
        let state = self.read();
        state
            .arrivals
            .values()
            .rev()
            .filter_map(|t| state.txs.get(t))
            .take(count)
            .map(|tx| RecentTx { txid: tx.txid, fee: tx.fee, vsize: tx.vsize })
            .collect()
    }

    /// Drops the transactions of blocks the index has just added: the node took them out of
    /// its mempool when it connected the blocks, so subscribers can be told of the blocks
    /// without waiting for the node to answer a sync. Transactions that conflict with the
    /// blocks are left to the next sync. Returns the script hashes touched.
    pub(crate) fn confirmed(&self, mined: &[Txid]) -> HashSet<ScriptHash> {
        let mut touched = HashSet::new();
        self.state.writing().drop_txs(mined, &mut touched);
        touched
    }

    /// Brings the mempool in line with the node's. `indexed` is the index's tip: transactions
    /// that left the node's mempool are dropped only when the node's tip is that one, since
    /// otherwise a block the index has not seen yet may have confirmed them, and dropping them
    /// now would show them nowhere until the index has it (a wallet would see a payment vanish
    /// and come back); the sync after the index catches up drops them.
    pub(crate) async fn sync(&self, indexed: Option<BlockHash>) -> Result<SyncReport, DaemonError> {
        let node: HashSet<Txid> = self.daemon.mempool_txids().await?.into_iter().collect();
        // Asked after the mempool: the mempool answer reflects no block past this tip.
        let tip = self.daemon.best_block_hash().await?;
        let index_behind = Some(tip) != indexed;
        let mut report = SyncReport::default();
        let new: Vec<Txid> = {
            let mut state = self.state.writing();
            let gone: Vec<Txid> = if index_behind {
                Vec::new()
            } else {
                state.txs.keys().filter(|t| !node.contains(t)).copied().collect()
            };
            report.removed = state.drop_txs(&gone, &mut report.touched);
            node.iter().filter(|t| !state.txs.contains_key(t)).copied().collect()
        };
        if new.is_empty() {
            return Ok(report);
        }
        let fetched = self.fetch(&new).await?;
        let mut state = self.state.writing();
        for tx in fetched {
            // Its parents may have left meanwhile; it then waits for the next sync.
            if state.txs.contains_key(&tx.txid) {
                continue;
            }
            report.touched.extend(tx.scripthashes());
            // A new parent turns its existing children's height from 0 to -1.
            for vout in 0..tx.outputs.len() as u32 {
                if let Some(child) = state.spent_by.get(&(tx.txid, vout)).and_then(|c| state.txs.get(c)) {
                    report.touched.extend(child.scripthashes());
                }
            }
            state.insert(Arc::new(tx));
            report.added += 1;
        }
        state.histogram = None;
        Ok(report)
    }

    /// Fetches transactions and resolves their inputs. Transactions that left the node's
    /// mempool meanwhile, or whose prevouts cannot be found (spent by a block the index has not
    /// seen yet), are left out: the next sync tries again.
    async fn fetch(&self, txids: &[Txid]) -> Result<Vec<MempoolTx>, DaemonError> {
        let mut raw: Vec<(Txid, Vec<u8>)> = Vec::with_capacity(txids.len());
        for chunk in txids.chunks(BATCH) {
            let fetched = self.daemon.mempool_transactions(chunk).await?;
            raw.extend(chunk.iter().zip(fetched).filter_map(|(txid, bytes)| Some((*txid, bytes?))));
        }
        struct Parsed {
            txid: Txid,
            vsize: u32,
            inputs: Vec<(Txid, u32)>,
            outputs: Vec<Option<(ScriptHash, u64)>>,
        }
        let mut parsed: HashMap<Txid, Parsed> = HashMap::new();
        for (txid, bytes) in &raw {
            let Ok(view) = parse::parse_tx_bytes(bytes) else {
                tracing::warn!(%txid, "unparsable mempool transaction from bitcoind");
                continue;
            };
            if view.txid != *txid {
                continue;
            }
            let outputs = view
                .outputs
                .iter()
                .map(|o| (!o.is_op_return()).then(|| (ScriptHash::of_script(o.script), o.value)))
                .collect();
            let inputs = view.inputs.iter().map(|i| (i.prev_txid(), i.prev_vout)).collect();
            parsed.insert(*txid, Parsed { txid: *txid, vsize: view.vsize() as u32, inputs, outputs });
        }
        // Prevouts: the mempool (old or new transactions), else the node's chainstate.
        let mut known: HashMap<(Txid, u32), (ScriptHash, u64)> = HashMap::new();
        let mut ask: Vec<(Txid, u32)> = Vec::new();
        {
            let state = self.read();
            for p in parsed.values() {
                for prev in &p.inputs {
                    let local = state
                        .txs
                        .get(&prev.0)
                        .map(|t| t.outputs.get(prev.1 as usize).copied().flatten())
                        .or_else(|| parsed.get(&prev.0).map(|t| t.outputs.get(prev.1 as usize).copied().flatten()));
                    match local {
                        Some(Some(out)) => {
                            known.insert(*prev, out);
                        }
                        Some(None) => {}
                        None => ask.push(*prev),
                    }
                }
            }
        }
        ask.sort_unstable();
        ask.dedup();
        for chunk in ask.chunks(BATCH) {
            for (prev, out) in chunk.iter().zip(self.daemon.tx_outs(chunk).await?) {
                if let Some(out) = out {
                    known.insert(*prev, (ScriptHash::of_script(&out.script), out.value));
                }
            }
        }
        let mut out = Vec::with_capacity(parsed.len());
        for p in parsed.into_values() {
            let inputs: Option<Vec<Spend>> = p
                .inputs
                .iter()
                .map(|prev| {
                    known.get(prev).map(|(sh, value)| Spend {
                        prev_txid: prev.0,
                        prev_vout: prev.1,
                        sh: *sh,
                        value: *value,
                    })
                })
                .collect();
            let Some(inputs) = inputs else { continue };
            let spent: u64 = inputs.iter().map(|i| i.value).sum();
            let created: u64 = p.outputs.iter().flatten().map(|(_, v)| v).sum();
            out.push(MempoolTx {
                txid: p.txid,
                fee: spent.saturating_sub(created),
                vsize: p.vsize,
                inputs,
                outputs: p.outputs,
            });
        }
        Ok(out)
    }

    /// The fee histogram: `[fee rate (sat/vB), vsize]` in strictly decreasing fee rates, each
    /// bin holding at least ~30 kvB (growing 10% per bin), as ElectrumX computes it.
    pub(crate) fn histogram(&self) -> Vec<(f64, u64)> {
        if let Some((at, h)) = &self.read().histogram {
            if at.elapsed() < HISTOGRAM_REFRESH {
                return h.clone();
            }
        }
        let mut by_rate: HashMap<u64, u64> = HashMap::new();
        for tx in self.read().txs.values() {
            let vsize = u64::from(tx.vsize.max(1));
            // Tenths of sat/vB, rounded down: a transaction lands in the band it pays for.
            let tenths = tx.fee.saturating_mul(10) / vsize;
            *by_rate.entry(tenths).or_default() += vsize;
        }
        let h = compact_histogram(by_rate);
        self.state.writing().histogram = Some((Instant::now(), h.clone()));
        h
    }
}

fn compact_histogram(by_rate: HashMap<u64, u64>) -> Vec<(f64, u64)> {
    let mut rates: Vec<(u64, u64)> = by_rate.into_iter().collect();
    rates.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
    let mut bin = HISTOGRAM_BIN;
    let mut out = Vec::new();
    let mut cum = 0u64;
    let mut prev: Option<u64> = None;
    for (tenths, size) in rates {
        if size as f64 > 2.0 * bin && cum > 0 {
            if let Some(p) = prev {
                out.push((p as f64 / 10.0, cum));
                cum = 0;
                bin *= 1.1;
            }
        }
        cum += size;
        if cum as f64 > bin {
            out.push((tenths as f64 / 10.0, cum));
            cum = 0;
            bin *= 1.1;
        }
        prev = Some(tenths);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(n: u8, spends: Option<Txid>, pays: u8) -> Arc<MempoolTx> {
        let inputs = spends
            .map(|prev_txid| Spend { prev_txid, prev_vout: 0, sh: ScriptHash([n; 32]), value: 10 })
            .into_iter()
            .collect();
        Arc::new(MempoolTx {
            txid: Txid([n; 32]),
            fee: 1,
            vsize: 100,
            inputs,
            outputs: vec![Some((ScriptHash([pays; 32]), 9))],
        })
    }

    /// A mined parent leaves; its child, still pending, no longer has an unconfirmed input,
    /// and both scripts are touched. A transaction not in the mempool changes nothing.
    #[test]
    fn mined_transactions_leave_and_their_children_move_to_height_zero() {
        let mut state = State::default();
        let parent = tx(1, None, 2);
        let child = tx(3, Some(parent.txid), 4);
        state.insert(parent.clone());
        state.insert(child.clone());
        assert!(state.has_unconfirmed_inputs(&child));
        let mut touched = HashSet::new();
        assert_eq!(state.drop_txs(&[parent.txid, Txid([9; 32])], &mut touched), 1);
        assert!(!state.txs.contains_key(&parent.txid) && state.txs.contains_key(&child.txid));
        assert!(!state.has_unconfirmed_inputs(&child));
        let expected: HashSet<ScriptHash> = [2, 3, 4].map(|n| ScriptHash([n; 32])).into_iter().collect();
        assert_eq!(touched, expected);
        assert!(!state.by_sh.contains_key(&ScriptHash([2; 32])), "the parent's output script has nothing pending");
    }

    #[test]
    fn histogram_is_strictly_decreasing_and_binned() {
        let mut by_rate = HashMap::new();
        for tenths in 10..500u64 {
            by_rate.insert(tenths, 1_000 + tenths * 7);
        }
        // A big lump at one rate gets a bin of its own.
        by_rate.insert(55, 200_000);
        let h = compact_histogram(by_rate.clone());
        assert!(h.windows(2).all(|w| w[0].0 > w[1].0), "{h:?}");
        assert!(h.iter().all(|(_, s)| *s > 0));
        assert!(h.iter().any(|(r, s)| *r == 5.5 && *s >= 200_000), "{h:?}");
        let binned: u64 = h.iter().map(|(_, s)| s).sum();
        let total: u64 = by_rate.values().sum();
        // Whatever is below the last full bin is not reported, as in ElectrumX.
        assert!(binned <= total && binned > total / 2);
        assert!(compact_histogram(HashMap::new()).is_empty());
    }
}
