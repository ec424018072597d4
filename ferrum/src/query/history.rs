//! A script hash's history as the protocol orders it.
//!
//! Order (protocol 1.6, also used for older sessions): confirmed transactions by height and
//! position in the block, then mempool transactions with all inputs confirmed (height 0) before
//! those with an unconfirmed input (height -1), ties broken by txid in display byte order.
//! `get_history` and the status always use this same order, or Electrum clients disconnect.

use std::cmp::Ordering;

use crate::mempool::Pending;
use crate::types::Txid;

/// One transaction of a script's history, confirmed or in the mempool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    pub(crate) txid: Txid,
    /// Block height; 0 for a mempool transaction whose inputs are all confirmed, -1 for one
    /// with an unconfirmed input.
    pub(crate) height: i64,
    /// Mempool transactions only.
    pub(crate) fee: Option<u64>,
}

impl HistoryEntry {
    /// A mempool transaction's entry: height -1 when it spends another mempool transaction.
    pub(crate) fn pending(p: &Pending) -> HistoryEntry {
        HistoryEntry { txid: p.tx.txid, height: if p.has_unconfirmed_inputs { -1 } else { 0 }, fee: Some(p.tx.fee) }
    }
}

/// Canonical mempool order: height 0 before -1, then txid in display byte order.
pub(crate) fn mempool_order(a: &HistoryEntry, b: &HistoryEntry) -> Ordering {
    b.height.cmp(&a.height).then_with(|| display_bytes(&a.txid).cmp(&display_bytes(&b.txid)))
}

fn display_bytes(t: &Txid) -> [u8; 32] {
    let mut b = t.0;
    b.reverse();
    b
}
