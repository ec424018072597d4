//! A script hash's status: the hash of its history in protocol order (`query::history`), as
//! subscriptions report it.

use sha2::{Digest, Sha256};

use crate::query::HistoryEntry;

/// The status of a history already in protocol order: `sha256("txid:height:" ...)`, or `None`
/// for an empty history.
pub(crate) fn status(history: &[HistoryEntry]) -> Option<[u8; 32]> {
    if history.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for item in history {
        h.update(item.txid.to_hex().as_bytes());
        h.update(b":");
        h.update(item.height.to_string().as_bytes());
        h.update(b":");
    }
    Some(h.finalize().into())
}

/// The status as the protocol sends it: lowercase hex (not byte-reversed), or JSON null.
pub(crate) fn status_json(status: Option<[u8; 32]>) -> serde_json::Value {
    match status {
        Some(s) => serde_json::Value::String(hex::encode(s)),
        None => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::history::mempool_order;
    use crate::types::Txid;

    fn item(txid: &str, height: i64, fee: Option<u64>) -> HistoryEntry {
        HistoryEntry { txid: Txid::from_hex(txid).unwrap(), height, fee }
    }

    /// The example of the protocol specification (protocol-basics, "Status Example").
    #[test]
    fn specification_example() {
        let confirmed = vec![
            item("a6c9c361bd0bc536d6a22648efbf8f9b200e425ef6c3a7a9669dc444c532a347", 2472, None),
            item("9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c", 2473, None),
            item("770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30", 2473, None),
        ];
        // The mempool part in a scrambled order: sorting must restore the specified one.
        let mut mempool = vec![
            item("bb4c8ab438c13b89ca80d1d5bee25b0b6b7f55673f4d801998ba97db161d9e85", -1, Some(200)),
            item("e02a1dadfa83b996b24175df807b271ea5d02937ef5b35c195fac1e1bdc3198f", 0, Some(300)),
            item("80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311", 0, Some(200)),
        ];
        mempool.sort_by(mempool_order);
        assert_eq!(mempool[0].txid.to_hex(), "80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311");
        assert_eq!(mempool[2].height, -1);
        let history: Vec<HistoryEntry> = confirmed.into_iter().chain(mempool).collect();
        assert_eq!(
            hex::encode(status(&history).unwrap()),
            "78e96c6562cafa71c115503b9411fdfdc595a45031e2ab76ff75162fe1b0590d"
        );
        assert_eq!(status(&[]), None);
        assert_eq!(status_json(None), serde_json::Value::Null);
    }

    #[test]
    fn the_example_address_has_the_example_script_hash() {
        use std::str::FromStr;
        let addr = bitcoin::Address::from_str("bcrt1qn7d2x7272lznt5hhk9s07q3cqnrqljnwladrd3")
            .unwrap()
            .require_network(bitcoin::Network::Regtest)
            .unwrap();
        let sh = crate::types::ScriptHash::of_script(addr.script_pubkey().as_bytes());
        assert_eq!(sh.to_hex(), "f04bf26fc16a27abaa2f10540da7a24e369e6ec408f2d901202a7c0cd4a6112d");
    }
}
