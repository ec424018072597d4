//! Zero-copy parsing of blocks and transactions in consensus encoding: views into the raw bytes,
//! txids hashed from the non-witness slices without re-serialising, and the byte range of each
//! transaction in its block. Every read is bounds-checked: malformed bytes give an error, never
//! a panic or a huge allocation.

use std::ops::Range;

use crate::types::{sha256d, BlockHash, Txid};

/// Size of a block header.
pub const HEADER_LEN: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("{what} at byte {at}")]
    Invalid { what: &'static str, at: usize },
}

/// A reader over a byte slice.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(ParseError::Truncated(self.pos))?;
        let end = self.pos + n;
        self.pos = end;
        Ok(slice)
    }

    pub fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], ParseError> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| ParseError::Truncated(self.pos))
    }

    pub fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(*self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, ParseError> {
        Ok(u64::from_le_bytes(*self.array()?))
    }

    /// A CompactSize integer.
    pub fn compact_size(&mut self) -> Result<u64, ParseError> {
        Ok(match self.u8()? {
            0xfd => u64::from(u16::from_le_bytes(*self.array()?)),
            0xfe => u64::from(self.u32()?),
            0xff => self.u64()?,
            n => u64::from(n),
        })
    }

    /// A count of items at least `min_item_len` bytes each: bounded by what is left, so a bad
    /// count cannot cause a huge allocation.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, ParseError> {
        let at = self.pos;
        let n = self.compact_size()?;
        let max = (self.remaining() / min_item_len.max(1)) as u64;
        if n > max {
            return Err(ParseError::Invalid { what: "item count larger than the data", at });
        }
        Ok(n as usize)
    }

    /// A CompactSize length followed by that many bytes.
    pub fn var_bytes(&mut self) -> Result<&'a [u8], ParseError> {
        let n = self.count(1)?;
        self.take(n)
    }
}

/// Writes a CompactSize integer.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// The outpoint an input spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputView<'a> {
    pub prev_txid: &'a [u8; 32],
    pub prev_vout: u32,
}

impl InputView<'_> {
    /// True for the coinbase's single input (null outpoint).
    pub fn is_null(&self) -> bool {
        self.prev_vout == u32::MAX && self.prev_txid.iter().all(|b| *b == 0)
    }

    pub fn prev_txid(&self) -> Txid {
        Txid(*self.prev_txid)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputView<'a> {
    pub value: u64,
    pub script: &'a [u8],
}

impl OutputView<'_> {
    /// Provably unspendable (OP_RETURN): never indexed, as in ElectrumX.
    pub fn is_op_return(&self) -> bool {
        self.script.first() == Some(&0x6a)
    }
}

/// One transaction, viewed in place.
#[derive(Debug, Clone)]
pub struct TxView<'a> {
    pub txid: Txid,
    /// Byte range in the buffer it was parsed from.
    pub range: Range<usize>,
    pub inputs: Vec<InputView<'a>>,
    pub outputs: Vec<OutputView<'a>>,
    /// Weight units (BIP 141): base size × 3 + total size.
    pub weight: usize,
}

impl TxView<'_> {
    pub fn is_coinbase(&self) -> bool {
        matches!(self.inputs.as_slice(), [only] if only.is_null())
    }

    pub fn vsize(&self) -> usize {
        self.weight.div_ceil(4)
    }
}

/// Parses one transaction at the reader's position.
pub fn parse_tx<'a>(r: &mut Reader<'a>) -> Result<TxView<'a>, ParseError> {
    let start = r.pos();
    let version = r.take(4)?;
    let mut segwit = false;
    // Marker 0x00 and flag 0x01: an empty input list is otherwise impossible for a valid tx.
    if r.data.get(r.pos) == Some(&0) {
        let at = r.pos;
        r.take(1)?;
        if r.u8()? != 1 {
            return Err(ParseError::Invalid { what: "segwit flag", at });
        }
        segwit = true;
    }
    let body_start = r.pos();
    // An input is at least 41 bytes, an output 9.
    let n_in = r.count(41)?;
    let mut inputs = Vec::with_capacity(n_in);
    for _ in 0..n_in {
        let prev_txid = r.array::<32>()?;
        let prev_vout = r.u32()?;
        r.var_bytes()?; // scriptSig
        r.take(4)?; // sequence
        inputs.push(InputView { prev_txid, prev_vout });
    }
    let n_out = r.count(9)?;
    let mut outputs = Vec::with_capacity(n_out);
    for _ in 0..n_out {
        let value = r.u64()?;
        let script = r.var_bytes()?;
        outputs.push(OutputView { value, script });
    }
    let body = r.data.get(body_start..r.pos()).ok_or(ParseError::Truncated(body_start))?;
    if segwit {
        for _ in 0..n_in {
            let items = r.count(1)?;
            for _ in 0..items {
                r.var_bytes()?;
            }
        }
    }
    let lock_time = r.take(4)?;
    let end = r.pos();
    let txid = Txid(sha256d(&[version, body, lock_time]));
    let base_size = 4 + body.len() + 4;
    let total_size = end - start;
    Ok(TxView { txid, range: start..end, inputs, outputs, weight: base_size * 3 + total_size })
}

/// Parses a whole serialized transaction (no trailing bytes allowed).
pub fn parse_tx_bytes(bytes: &[u8]) -> Result<TxView<'_>, ParseError> {
    let mut r = Reader::new(bytes);
    let tx = parse_tx(&mut r)?;
    if r.remaining() != 0 {
        return Err(ParseError::Invalid { what: "trailing bytes after transaction", at: r.pos() });
    }
    Ok(tx)
}

/// The fields of a block header Ferrum uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderView {
    pub hash: BlockHash,
    pub prev: BlockHash,
    pub merkle_root: [u8; 32],
    pub time: u32,
}

pub fn parse_header(raw: &[u8; HEADER_LEN]) -> HeaderView {
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&raw[4..36]);
    let mut merkle_root = [0u8; 32];
    merkle_root.copy_from_slice(&raw[36..68]);
    let time = u32::from_le_bytes([raw[68], raw[69], raw[70], raw[71]]);
    HeaderView { hash: BlockHash::of_header(raw), prev: BlockHash(prev), merkle_root, time }
}

/// A block, viewed in place.
pub struct BlockView<'a> {
    pub header: &'a [u8; HEADER_LEN],
    pub txs: Vec<TxView<'a>>,
}

impl BlockView<'_> {
    pub fn hash(&self) -> BlockHash {
        BlockHash::of_header(self.header)
    }
}

pub fn parse_block(bytes: &[u8]) -> Result<BlockView<'_>, ParseError> {
    let mut r = Reader::new(bytes);
    let header = r.array::<HEADER_LEN>()?;
    // The smallest transaction is 60 bytes.
    let n = r.count(60)?;
    let mut txs = Vec::with_capacity(n);
    for _ in 0..n {
        txs.push(parse_tx(&mut r)?);
    }
    if r.remaining() != 0 {
        return Err(ParseError::Invalid { what: "trailing bytes after block", at: r.pos() });
    }
    Ok(BlockView { header, txs })
}

/// The serialized spent outputs of a block, as REST `/rest/spenttxouts/<hash>.bin` returns them:
/// for each transaction (the coinbase included, with none), the outputs its inputs spend.
pub struct SpentOutputs<'a> {
    pub txs: Vec<Vec<OutputView<'a>>>,
}

pub fn parse_spent_outputs(bytes: &[u8]) -> Result<SpentOutputs<'_>, ParseError> {
    let mut r = Reader::new(bytes);
    let n_tx = r.count(1)?;
    let mut txs = Vec::with_capacity(n_tx);
    for _ in 0..n_tx {
        let n = r.count(9)?;
        let mut outs = Vec::with_capacity(n);
        for _ in 0..n {
            let value = r.u64()?;
            let script = r.var_bytes()?;
            outs.push(OutputView { value, script });
        }
        txs.push(outs);
    }
    if r.remaining() != 0 {
        return Err(ParseError::Invalid { what: "trailing bytes after spent outputs", at: r.pos() });
    }
    Ok(SpentOutputs { txs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_round_trip() {
        for n in [0u64, 0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let mut buf = Vec::new();
            write_compact_size(&mut buf, n);
            assert_eq!(Reader::new(&buf).compact_size().unwrap(), n);
        }
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        assert_eq!(parse_block(&[0u8; 10]).err(), Some(ParseError::Truncated(0)));
        // Header, then a transaction count far beyond the data.
        let mut b = vec![0u8; 80];
        b.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(parse_block(&b), Err(ParseError::Invalid { .. })));
        // Every prefix of a real transaction fails cleanly.
        let tx = hex::decode(GENESIS_COINBASE).unwrap();
        for len in 0..tx.len() {
            assert!(parse_tx_bytes(&tx[..len]).is_err());
        }
        assert!(parse_tx_bytes(&tx).is_ok());
    }

    const GENESIS_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

    #[test]
    fn genesis_coinbase_txid() {
        let tx = hex::decode(GENESIS_COINBASE).unwrap();
        let view = parse_tx_bytes(&tx).unwrap();
        assert_eq!(view.txid.to_hex(), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
        assert!(view.is_coinbase());
        assert_eq!(view.outputs[0].value, 50 * 100_000_000);
        assert_eq!(view.weight, tx.len() * 4);
    }

    #[test]
    fn spent_outputs_codec() {
        // Two transactions: the coinbase (no inputs) and one spending a 5-byte script output.
        let bytes = [2u8, 0, 1, 0x10, 0x27, 0, 0, 0, 0, 0, 0, 5, 0x51, 0x52, 0x53, 0x54, 0x55];
        let spent = parse_spent_outputs(&bytes).unwrap();
        assert_eq!(spent.txs.len(), 2);
        assert!(spent.txs[0].is_empty());
        assert_eq!(spent.txs[1][0].value, 10_000);
        assert_eq!(spent.txs[1][0].script, &[0x51, 0x52, 0x53, 0x54, 0x55]);
        assert!(parse_spent_outputs(&bytes[..bytes.len() - 1]).is_err());
    }
}
