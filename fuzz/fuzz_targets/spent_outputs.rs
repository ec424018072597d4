//! The `/rest/spenttxouts` decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spent) = ferrum_codec::parse::parse_spent_outputs(data) {
        let _ = spent.txs.iter().map(Vec::len).sum::<usize>();
    }
});
