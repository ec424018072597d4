//! A script hash's history as the protocol orders and writes it.
//!
//! Order (protocol 1.6, also used for older sessions): confirmed transactions by height and
//! position in the block, then mempool transactions with all inputs confirmed (height 0) before
//! those with an unconfirmed input (height -1), ties broken by txid in display byte order.
//! `get_history` and the status always use this same order, or Electrum clients disconnect.
//!
//! The confirmed part of a busy script's history is written once ([`Written`]: its JSON items
//! and the status hash's state after them) and kept with its summary, so that a request writes
//! only the mempool's part: for 180,000 transactions, writing the whole history cost more than
//! every other part of the answer.

use std::cmp::Ordering;
use std::sync::Arc;

use ferrum_codec::jsonrpc::Text;
use sha2::{Digest, Sha256};

use super::view::{ConfirmedTx, ScriptSummary};
use crate::mempool::Pending;
use crate::types::{push_hex_rev, Txid};

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

    fn confirmed(c: &ConfirmedTx) -> HistoryEntry {
        HistoryEntry { txid: c.txid, height: i64::from(c.height), fee: None }
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

/// Entries of a history written out: the JSON array's items (comma-separated, in ElectrumX's
/// key order) and the status hash over `"txid:height:"` of each, not finished.
#[derive(Clone, Default)]
pub(crate) struct Written {
    json: String,
    hash: Sha256,
    len: usize,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written").field("entries", &self.len).field("json_bytes", &self.json.len()).finish()
    }
}

/// JSON bytes of one confirmed entry, about: `{"tx_hash":"<64>","height":NNNNNN},`.
pub(crate) const JSON_ENTRY_BYTES: usize = 96;

impl Written {
    /// The entries of a confirmed history.
    pub(crate) fn of(confirmed: &[ConfirmedTx]) -> Written {
        let mut w = Written { json: String::with_capacity(confirmed.len() * JSON_ENTRY_BYTES), ..Default::default() };
        w.push_confirmed(confirmed);
        w
    }

    /// Appends confirmed transactions (the ones a block added to the history).
    pub(crate) fn push_confirmed(&mut self, confirmed: &[ConfirmedTx]) {
        self.extend(confirmed.iter().map(HistoryEntry::confirmed));
    }

    pub(crate) fn extend(&mut self, entries: impl IntoIterator<Item = HistoryEntry>) {
        for entry in entries {
            EntryText::of(&entry).hash(&mut self.hash).push_json(&mut self.json, self.len == 0, entry.fee);
            self.len += 1;
        }
    }

    /// The status of the entries written and then `more`: `None` when there are none.
    pub(crate) fn status_with(&self, more: &[HistoryEntry]) -> Option<[u8; 32]> {
        if self.len + more.len() == 0 {
            return None;
        }
        let mut hash = self.hash.clone();
        for entry in more {
            EntryText::of(entry).hash(&mut hash);
        }
        Some(hash.finalize().into())
    }

    /// The JSON array of the entries written and then `more`, in one string.
    pub(crate) fn json_array_with(&self, more: &[HistoryEntry]) -> String {
        let mut out = String::with_capacity(self.json.len() + more.len() * (JSON_ENTRY_BYTES + 24) + 2);
        out.push('[');
        out.push_str(&self.json);
        self.push_more(&mut out, more);
        out
    }

    /// `more` after the entries written, and the array's end.
    fn push_more(&self, out: &mut String, more: &[HistoryEntry]) {
        for (n, entry) in more.iter().enumerate() {
            EntryText::of(entry).push_json(out, self.len + n == 0, entry.fee);
        }
        out.push(']');
    }

    /// The same JSON array as [`Written::json_array_with`], sharing the entries written rather
    /// than copying them (a busy script's are megabytes, and each answer had its own copy).
    pub(crate) fn shared_json_array_with(self: &Arc<Written>, more: &[HistoryEntry]) -> Text {
        let mut out = Text::from("[");
        out.push_shared(self.clone());
        let mut rest = String::with_capacity(more.len() * (JSON_ENTRY_BYTES + 24) + 1);
        self.push_more(&mut rest, more);
        out.push_string(rest);
        out
    }
}

impl AsRef<str> for Written {
    /// The entries' JSON, comma-separated, without the array's brackets.
    fn as_ref(&self) -> &str {
        &self.json
    }
}

/// An entry's txid and height as the protocol writes them.
struct EntryText {
    hex: String,
    height: itoa::Buffer,
    value: i64,
}

impl EntryText {
    fn of(entry: &HistoryEntry) -> EntryText {
        let mut hex = String::with_capacity(64);
        push_hex_rev(&mut hex, &entry.txid.0);
        EntryText { hex, height: itoa::Buffer::new(), value: entry.height }
    }

    /// `txid:height:`, as the status hashes it.
    fn hash(mut self, hash: &mut Sha256) -> EntryText {
        hash.update(self.hex.as_bytes());
        hash.update(b":");
        hash.update(self.height.format(self.value).as_bytes());
        hash.update(b":");
        self
    }

    /// The JSON object, after a comma unless it is the first.
    fn push_json(mut self, out: &mut String, first: bool, fee: Option<u64>) {
        if !first {
            out.push(',');
        }
        out.push_str("{\"tx_hash\":\"");
        out.push_str(&self.hex);
        out.push_str("\",\"height\":");
        out.push_str(self.height.format(self.value));
        if let Some(fee) = fee {
            out.push_str(",\"fee\":");
            out.push_str(itoa::Buffer::new().format(fee));
        }
        out.push('}');
    }
}

/// The confirmed part of a script's history on one view of the index: the summary kept for a
/// busy script (its entries written once, on first use: [`History::json`]), or the
/// transactions read for this request.
pub(crate) enum Confirmed {
    Kept(Arc<ScriptSummary>),
    Read { rows: usize, txs: Vec<ConfirmedTx> },
}

impl Confirmed {
    /// Rows of the index read for it.
    pub(crate) fn rows(&self) -> usize {
        match self {
            Confirmed::Kept(s) => s.rows,
            Confirmed::Read { rows, .. } => *rows,
        }
    }

    pub(crate) fn txs(&self) -> &[ConfirmedTx] {
        match self {
            Confirmed::Kept(s) => &s.history,
            Confirmed::Read { txs, .. } => txs,
        }
    }
}

/// A script's whole history: its confirmed part and the mempool's, in protocol order.
pub(crate) struct History {
    pub(crate) confirmed: Confirmed,
    /// The mempool transactions the confirmed part does not have, in protocol order.
    pub(crate) mempool: Vec<Pending>,
}

impl History {
    pub(crate) fn len(&self) -> usize {
        self.confirmed.txs().len() + self.mempool.len()
    }

    /// What is written already (a busy script's confirmed part, written once and kept; else
    /// nothing) and the entries to write after it.
    fn parts(&self) -> (Arc<Written>, Vec<HistoryEntry>) {
        let pending = self.mempool.iter().map(HistoryEntry::pending);
        match &self.confirmed {
            Confirmed::Kept(s) => {
                (s.written.get_or_init(|| Arc::new(Written::of(&s.history))).clone(), pending.collect())
            }
            Confirmed::Read { txs, .. } => {
                (Arc::default(), txs.iter().map(HistoryEntry::confirmed).chain(pending).collect())
            }
        }
    }

    /// The history as a JSON array: a busy script's kept part shared, not copied.
    pub(crate) fn json(&self) -> Text {
        let (written, more) = self.parts();
        match &self.confirmed {
            Confirmed::Kept(_) => written.shared_json_array_with(&more),
            Confirmed::Read { .. } => written.json_array_with(&more).into(),
        }
    }

    /// The status: `sha256("txid:height:" ...)` over the history, or `None` when it is empty.
    pub(crate) fn status(&self) -> Option<[u8; 32]> {
        let (written, more) = self.parts();
        written.status_with(&more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(txid: &str, height: i64, fee: Option<u64>) -> HistoryEntry {
        HistoryEntry { txid: Txid::from_hex(txid).unwrap(), height, fee }
    }

    /// The example of the protocol specification (protocol-basics, "Status Example").
    #[test]
    fn specification_example() {
        let confirmed: Vec<ConfirmedTx> = [
            ("a6c9c361bd0bc536d6a22648efbf8f9b200e425ef6c3a7a9669dc444c532a347", 2472),
            ("9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c", 2473),
            ("770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30", 2473),
        ]
        .iter()
        .enumerate()
        .map(|(n, (txid, height))| ConfirmedTx {
            height: *height,
            txid: Txid::from_hex(txid).unwrap(),
            tx_num: n as u64,
        })
        .collect();
        // The mempool part in a scrambled order: sorting must restore the specified one.
        let mut mempool = [
            entry("bb4c8ab438c13b89ca80d1d5bee25b0b6b7f55673f4d801998ba97db161d9e85", -1, Some(200)),
            entry("e02a1dadfa83b996b24175df807b271ea5d02937ef5b35c195fac1e1bdc3198f", 0, Some(300)),
            entry("80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311", 0, Some(200)),
        ];
        mempool.sort_by(mempool_order);
        assert_eq!(mempool[0].txid.to_hex(), "80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311");
        assert_eq!(mempool[2].height, -1);
        // Written whole, or the confirmed part first (as kept) and the mempool's laid over it.
        let mut whole = Written::default();
        whole.extend(confirmed.iter().map(HistoryEntry::confirmed).chain(mempool.iter().copied()));
        let mut kept = Written::of(&confirmed[..1]);
        kept.push_confirmed(&confirmed[1..]);
        let written = [
            (whole.status_with(&[]), whole.json_array_with(&[])),
            (kept.status_with(&mempool), kept.json_array_with(&mempool)),
        ];
        for (status, json) in written {
            assert_eq!(
                hex::encode(status.unwrap()),
                "78e96c6562cafa71c115503b9411fdfdc595a45031e2ab76ff75162fe1b0590d"
            );
            let json: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(json.as_array().unwrap().len(), 6);
            assert_eq!(json[0], serde_json::json!({"tx_hash": confirmed[0].txid.to_hex(), "height": 2472}));
            assert_eq!(
                json[5],
                serde_json::json!({"tx_hash": "bb4c8ab438c13b89ca80d1d5bee25b0b6b7f55673f4d801998ba97db161d9e85", "height": -1, "fee": 200})
            );
        }
        // Shared rather than copied, the same text; the kept entries are one piece, not copied.
        let kept = Arc::new(kept);
        let shared = kept.shared_json_array_with(&mempool);
        assert_eq!(shared.to_string(), kept.json_array_with(&mempool));
        assert!(shared.pieces().any(|p| p.as_ptr() == kept.as_ref().as_ref().as_ptr()));
        assert_eq!(Arc::new(Written::default()).shared_json_array_with(&[]).to_string(), "[]");
        // The kept part is untouched by what was laid over it.
        let alone: serde_json::Value = serde_json::from_str(&kept.json_array_with(&[])).unwrap();
        assert_eq!(alone.as_array().unwrap().len(), 3);
        assert_eq!(Written::default().status_with(&[]), None);
        assert_eq!(Written::default().json_array_with(&[]), "[]");
        // The mempool's part alone, over an empty confirmed one.
        let pending: serde_json::Value = serde_json::from_str(&Written::default().json_array_with(&mempool)).unwrap();
        assert_eq!(pending.as_array().unwrap().len(), 3);
        assert!(Written::default().status_with(&mempool).is_some());
    }
}
