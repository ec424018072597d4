//! The index's row codecs, on bytes that are not what they wrote (a damaged index).
#![no_main]

use ferrum_codec::rows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (key, value) = data.split_at(split);
    let _ = rows::decode_script_row(key, value);
    let _ = rows::decode_txid_key(data);
    let _ = rows::decode_height_key(data);
    let _ = rows::decode_header_value(data);
    let _ = rows::decode_tip(data);
    let _ = rows::read_tx_num(data);
    let mut input = data;
    while rows::get_coin(&mut input).is_ok() {}
    if let Ok(coins) = rows::decode_undo_value(data) {
        // Encodings are not unique (LEB128 admits padding), so the coins are what must survive.
        assert_eq!(rows::decode_undo_value(&rows::undo_value(&coins)), Ok(coins));
    }
    let mut input = data;
    while rows::get_leb128(&mut input).is_some() {}
    if let Some((count, rest)) = data.split_first_chunk::<4>() {
        let count = u32::from_le_bytes(*count);
        for index in [0, 1, count / 2, count.saturating_sub(1), count] {
            let _ = rows::txpos_lookup(rest, count, index);
        }
    }
});
