//! A script hash's status: the hash of its history in protocol order (`query::history`), as
//! subscriptions report it.

/// The status as the protocol sends it: lowercase hex (not byte-reversed), or JSON null.
pub(crate) fn status_json(status: Option<[u8; 32]>) -> serde_json::Value {
    match status {
        Some(s) => serde_json::Value::String(hex::encode(s)),
        None => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
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
