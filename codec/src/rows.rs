//! The byte layout of every row in the index. Keys are built so that one prefix scan answers a
//! query: all rows of a script hash, all candidates for a txid.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `script` | `scripthash[..8] ‖ tx_num(5) ‖ leb128(index << 1 ‖ is_input)` | output: `leb128(value)`; input: `prev_txid[..8] ‖ leb128(prev_vout)` |
//! | `txid` | `txid[..8] ‖ tx_num(5)` | — |
//! | `headers` | `height(4)` | `header(80) ‖ leb128(tx_count)` |
//! | `txpos` | `height(4)` | `leb128(size)` of each transaction, in block order |
//! | `utxo` | `txid[..16] ‖ leb128(vout)` | `scripthash[..8] ‖ leb128(value)` |
//! | `undo` | `height(4)` | `scripthash[..8] ‖ leb128(value)` per spent output, in input order |
//!
//! Integers in keys are big-endian so that keys sort in numeric order. `tx_num` is 5 bytes:
//! 2^40 transactions is about 900 times the Bitcoin chain of 2026.

use crate::parse::HEADER_LEN;
use crate::types::{BlockHash, ScriptHash, Txid};

/// Bytes of the script hash kept in `script` keys.
pub const SH_PREFIX: usize = 8;
/// Bytes of the txid kept in `txid` keys and in input rows.
pub const TXID_PREFIX: usize = 8;
/// Bytes of the txid kept in `utxo` keys: 128 bits, so even a deliberate birthday search for
/// two transactions sharing a key (2^64 work) is out of reach.
pub const UTXO_TXID_PREFIX: usize = 16;
pub const TX_NUM_LEN: usize = 5;
pub const MAX_TX_NUM: u64 = (1 << 40) - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} row")]
pub struct RowError {
    pub what: &'static str,
}

fn err(what: &'static str) -> RowError {
    RowError { what }
}

pub fn put_leb128(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 10];
    let len = leb128_into(&mut buf, n);
    out.extend_from_slice(buf.get(..len).unwrap_or_default());
}

/// Writes `n` as LEB128 at the start of `buf` and returns the bytes written: at most 10, and
/// no more than `buf` holds (callers size it for the largest value they write).
pub fn leb128_into(buf: &mut [u8], mut n: u64) -> usize {
    let mut len = 0;
    for slot in buf.iter_mut() {
        len += 1;
        if n < 0x80 {
            *slot = n as u8;
            break;
        }
        *slot = (n as u8) | 0x80;
        n >>= 7;
    }
    len
}

/// Reads a LEB128 integer from the front of `input`, advancing it.
pub fn get_leb128(input: &mut &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

pub fn tx_num_bytes(n: u64) -> [u8; TX_NUM_LEN] {
    let b = n.to_be_bytes();
    [b[3], b[4], b[5], b[6], b[7]]
}

pub fn read_tx_num(b: &[u8]) -> Option<u64> {
    let b: &[u8; TX_NUM_LEN] = b.get(..TX_NUM_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes([0, 0, 0, b[0], b[1], b[2], b[3], b[4]]))
}

pub fn sh_prefix(sh: &ScriptHash) -> [u8; SH_PREFIX] {
    let mut p = [0u8; SH_PREFIX];
    p.copy_from_slice(&sh.0[..SH_PREFIX]);
    p
}

pub fn txid_prefix(txid: &[u8; 32]) -> [u8; TXID_PREFIX] {
    let mut p = [0u8; TXID_PREFIX];
    p.copy_from_slice(&txid[..TXID_PREFIX]);
    p
}

/// What a `script` row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Output `index` of the transaction pays the script.
    Output { index: u32, value: u64 },
    /// Input `index` of the transaction spends an output of the script.
    Input { index: u32, prev_txid: [u8; TXID_PREFIX], prev_vout: u32 },
}

/// A decoded `script` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptRow {
    pub tx_num: u64,
    pub io: Io,
}

/// A key of at most 24 bytes, built without allocating.
#[derive(Clone, Copy)]
pub struct Key {
    buf: [u8; 24],
    len: usize,
}

impl Key {
    fn new() -> Key {
        Key { buf: [0; 24], len: 0 }
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        }
    }

    fn push_leb128(&mut self, n: u64) {
        let mut buf = [0u8; 10];
        let len = leb128_into(&mut buf, n);
        self.push(buf.get(..len).unwrap_or_default());
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

pub fn script_key(sh: &[u8; SH_PREFIX], tx_num: u64, io: &Io) -> Key {
    let mut k = Key::new();
    k.push(sh);
    k.push(&tx_num_bytes(tx_num));
    let tag = match io {
        Io::Output { index, .. } => u64::from(*index) << 1,
        Io::Input { index, .. } => (u64::from(*index) << 1) | 1,
    };
    k.push_leb128(tag);
    k
}

pub fn script_value(io: &Io, out: &mut Vec<u8>) {
    out.clear();
    match io {
        Io::Output { value, .. } => put_leb128(out, *value),
        Io::Input { prev_txid, prev_vout, .. } => {
            out.extend_from_slice(prev_txid);
            put_leb128(out, u64::from(*prev_vout));
        }
    }
}

pub fn decode_script_row(key: &[u8], value: &[u8]) -> Result<ScriptRow, RowError> {
    let tx_num = key.get(SH_PREFIX..).and_then(read_tx_num).ok_or(err("script key"))?;
    let mut tag_bytes = key.get(SH_PREFIX + TX_NUM_LEN..).ok_or(err("script key"))?;
    let tag = get_leb128(&mut tag_bytes).filter(|_| tag_bytes.is_empty()).ok_or(err("script key"))?;
    let index = u32::try_from(tag >> 1).map_err(|_| err("script key"))?;
    let io = if tag & 1 == 0 {
        let mut v = value;
        let value = get_leb128(&mut v).filter(|_| v.is_empty()).ok_or(err("script output value"))?;
        Io::Output { index, value }
    } else {
        let prev_txid: [u8; TXID_PREFIX] =
            value.get(..TXID_PREFIX).and_then(|p| p.try_into().ok()).ok_or(err("script input value"))?;
        let mut v = value.get(TXID_PREFIX..).ok_or(err("script input value"))?;
        let prev_vout = get_leb128(&mut v)
            .filter(|_| v.is_empty())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(err("script input value"))?;
        Io::Input { index, prev_txid, prev_vout }
    };
    Ok(ScriptRow { tx_num, io })
}

pub fn txid_key(txid: &Txid, tx_num: u64) -> [u8; TXID_PREFIX + TX_NUM_LEN] {
    let mut k = [0u8; TXID_PREFIX + TX_NUM_LEN];
    k[..TXID_PREFIX].copy_from_slice(&txid.0[..TXID_PREFIX]);
    k[TXID_PREFIX..].copy_from_slice(&tx_num_bytes(tx_num));
    k
}

pub fn decode_txid_key(key: &[u8]) -> Result<u64, RowError> {
    if key.len() != TXID_PREFIX + TX_NUM_LEN {
        return Err(err("txid key"));
    }
    key.get(TXID_PREFIX..).and_then(read_tx_num).ok_or(err("txid key"))
}

pub fn height_key(height: u32) -> [u8; 4] {
    height.to_be_bytes()
}

pub fn decode_height_key(key: &[u8]) -> Result<u32, RowError> {
    Ok(u32::from_be_bytes(key.try_into().map_err(|_| err("height key"))?))
}

pub fn header_value(header: &[u8; HEADER_LEN], tx_count: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + 5);
    v.extend_from_slice(header);
    put_leb128(&mut v, u64::from(tx_count));
    v
}

pub fn decode_header_value(value: &[u8]) -> Result<([u8; HEADER_LEN], u32), RowError> {
    let header: [u8; HEADER_LEN] = value.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(err("headers"))?;
    let mut rest = value.get(HEADER_LEN..).ok_or(err("headers"))?;
    let count =
        get_leb128(&mut rest).filter(|_| rest.is_empty()).and_then(|n| u32::try_from(n).ok()).ok_or(err("headers"))?;
    Ok((header, count))
}

pub fn txpos_value(sizes: &[u32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(sizes.len() * 3);
    for s in sizes {
        put_leb128(&mut v, u64::from(*s));
    }
    v
}

/// Byte offset and size of transaction `index` in its block, from a `txpos` value.
pub fn txpos_lookup(value: &[u8], tx_count: u32, index: u32) -> Result<(u64, u32), RowError> {
    // The first transaction follows the header and the transaction count.
    let mut offset = (HEADER_LEN + compact_size_len(u64::from(tx_count))) as u64;
    let mut rest = value;
    for i in 0..=index {
        let size = get_leb128(&mut rest).and_then(|n| u32::try_from(n).ok()).ok_or(err("txpos"))?;
        if i == index {
            return Ok((offset, size));
        }
        offset += u64::from(size);
    }
    Err(err("txpos"))
}

fn compact_size_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Key of an unspent output in the `utxo` table.
pub type UtxoKey = [u8; UTXO_TXID_PREFIX + 5];

pub fn utxo_key(txid: &[u8; 32], vout: u32) -> (UtxoKey, usize) {
    let mut k = [0u8; UTXO_TXID_PREFIX + 5];
    k[..UTXO_TXID_PREFIX].copy_from_slice(&txid[..UTXO_TXID_PREFIX]);
    // In place, no allocation (this runs for every input): a u32 takes at most 5 bytes.
    let len = UTXO_TXID_PREFIX + k.get_mut(UTXO_TXID_PREFIX..).map_or(0, |rest| leb128_into(rest, u64::from(vout)));
    (k, len)
}

/// The script-hash prefix and value of an output: the `utxo` value and one `undo` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Coin {
    pub sh: [u8; SH_PREFIX],
    pub value: u64,
}

pub fn put_coin(out: &mut Vec<u8>, coin: &Coin) {
    out.extend_from_slice(&coin.sh);
    put_leb128(out, coin.value);
}

/// Reads one coin from the front of `input`.
pub fn get_coin(input: &mut &[u8]) -> Result<Coin, RowError> {
    let sh: [u8; SH_PREFIX] = input.get(..SH_PREFIX).and_then(|s| s.try_into().ok()).ok_or(err("coin"))?;
    *input = input.get(SH_PREFIX..).ok_or(err("coin"))?;
    let value = get_leb128(input).ok_or(err("coin"))?;
    Ok(Coin { sh, value })
}

/// An `undo` value: the coins a block's inputs spent, in input order (coinbase inputs left out).
pub fn undo_value(coins: &[Coin]) -> Vec<u8> {
    let mut v = Vec::with_capacity(coins.len() * 12);
    for c in coins {
        put_coin(&mut v, c);
    }
    v
}

/// The coins of an `undo` value, in input order.
pub fn decode_undo_value(value: &[u8]) -> Result<Vec<Coin>, RowError> {
    let mut rest = value;
    let mut coins = Vec::new();
    while !rest.is_empty() {
        coins.push(get_coin(&mut rest).map_err(|_| err("undo"))?);
    }
    Ok(coins)
}

/// The committed tip: written in the same batch as the rows that reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub height: u32,
    pub hash: BlockHash,
    /// Transactions in blocks 0..=height: the next `tx_num`.
    pub tx_count: u64,
}

pub fn tip_value(tip: &Tip) -> [u8; 44] {
    let mut v = [0u8; 44];
    v[..4].copy_from_slice(&tip.height.to_be_bytes());
    v[4..36].copy_from_slice(&tip.hash.0);
    v[36..].copy_from_slice(&tip.tx_count.to_be_bytes());
    v
}

pub fn decode_tip(value: &[u8]) -> Result<Tip, RowError> {
    let v: &[u8; 44] = value.try_into().map_err(|_| err("tip"))?;
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&v[4..36]);
    Ok(Tip {
        height: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
        hash: BlockHash(hash),
        tx_count: u64::from_be_bytes([v[36], v[37], v[38], v[39], v[40], v[41], v[42], v[43]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_as_specified_and_utxo_keys_end_in_it() {
        for (n, bytes) in [(0u64, vec![0]), (127, vec![0x7f]), (128, vec![0x80, 1]), (300, vec![0xac, 2])] {
            let mut out = Vec::new();
            put_leb128(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
        let mut max = Vec::new();
        put_leb128(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(get_leb128(&mut max.as_slice()), Some(u64::MAX));
        let txid = [7u8; 32];
        for vout in [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152, u32::MAX] {
            let (key, len) = utxo_key(&txid, vout);
            assert_eq!(&key[..UTXO_TXID_PREFIX], &txid[..UTXO_TXID_PREFIX]);
            let mut tail = &key[UTXO_TXID_PREFIX..len];
            assert_eq!(get_leb128(&mut tail), Some(u64::from(vout)), "{vout}");
            assert!(tail.is_empty() && key[len..].iter().all(|b| *b == 0), "{vout}");
        }
    }

    #[test]
    fn leb128_round_trip_and_rejects_garbage() {
        for n in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut v = Vec::new();
            put_leb128(&mut v, n);
            let mut s = v.as_slice();
            assert_eq!(get_leb128(&mut s), Some(n));
            assert!(s.is_empty());
        }
        assert_eq!(get_leb128(&mut &[0x80u8, 0x80][..]), None);
        assert_eq!(get_leb128(&mut &[0xffu8; 11][..]), None);
    }

    #[test]
    fn script_rows_round_trip() {
        let sh = [7u8; SH_PREFIX];
        let mut value = Vec::new();
        for io in [
            Io::Output { index: 0, value: 0 },
            Io::Output { index: 100_000, value: 21_000_000 * 100_000_000 },
            Io::Input { index: 3, prev_txid: [9; 8], prev_vout: 70_000 },
        ] {
            let key = script_key(&sh, MAX_TX_NUM, &io);
            script_value(&io, &mut value);
            assert_eq!(decode_script_row(key.as_ref(), &value), Ok(ScriptRow { tx_num: MAX_TX_NUM, io }));
            assert!(key.as_ref().starts_with(&sh));
        }
        assert!(decode_script_row(&[1, 2, 3], &[]).is_err());
        assert!(decode_script_row(&[0; 14], &[]).is_err(), "output without a value");
    }

    #[test]
    fn script_keys_sort_by_tx_num_within_a_script() {
        let sh = [1u8; SH_PREFIX];
        let a = script_key(&sh, 255, &Io::Output { index: 5000, value: 1 });
        let b = script_key(&sh, 256, &Io::Output { index: 0, value: 1 });
        assert!(a.as_ref() < b.as_ref());
    }

    #[test]
    fn txpos_offsets() {
        let sizes = [100u32, 250, 300];
        let v = txpos_value(&sizes);
        assert_eq!(txpos_lookup(&v, 3, 0), Ok((81, 100)));
        assert_eq!(txpos_lookup(&v, 3, 2), Ok((81 + 350, 300)));
        assert!(txpos_lookup(&v, 3, 3).is_err());
    }

    #[test]
    fn tip_and_header_round_trip() {
        let tip = Tip { height: 950_000, hash: BlockHash([3; 32]), tx_count: 1_300_000_000 };
        assert_eq!(decode_tip(&tip_value(&tip)), Ok(tip));
        assert!(decode_tip(&[0; 43]).is_err());
        let v = header_value(&[5; 80], 4000);
        assert_eq!(decode_header_value(&v), Ok(([5; 80], 4000)));
        assert!(decode_header_value(&v[..80]).is_err());
    }

    #[test]
    fn coins_round_trip() {
        let mut v = Vec::new();
        put_coin(&mut v, &Coin { sh: [1; 8], value: 5 });
        put_coin(&mut v, &Coin { sh: [2; 8], value: 1 << 40 });
        let mut s = v.as_slice();
        assert_eq!(get_coin(&mut s), Ok(Coin { sh: [1; 8], value: 5 }));
        assert_eq!(get_coin(&mut s), Ok(Coin { sh: [2; 8], value: 1 << 40 }));
        assert!(get_coin(&mut s).is_err());
    }

    #[test]
    fn undo_coins_round_trip() {
        let coins = [Coin { sh: [1; 8], value: 0 }, Coin { sh: [9; 8], value: 21_000_000 * 100_000_000 }];
        let v = undo_value(&coins);
        assert_eq!(decode_undo_value(&v), Ok(coins.to_vec()));
        assert_eq!(decode_undo_value(&undo_value(&[])), Ok(vec![]));
        assert_eq!(decode_undo_value(&v[..v.len() - 1]), Err(RowError { what: "undo" }), "a cut last coin");
        assert!(decode_undo_value(&[0; 7]).is_err());
    }
}
