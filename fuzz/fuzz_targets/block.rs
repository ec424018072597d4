//! Blocks and transactions as bitcoind serves them, or as a client broadcasts them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = ferrum_codec::parse::parse_block(data) {
        // Everything parsed stays inside the input.
        let _ = block.txs.len();
    }
    let _ = ferrum_codec::parse::parse_tx_bytes(data);
    if let Ok(header) = <&[u8; 80]>::try_from(data.get(..80).unwrap_or_default()) {
        let _ = ferrum_codec::parse::parse_header(header);
    }
});
