//! A chunk of consecutive blocks on its way into the index: numbered, resolved against the
//! `utxo` table when needed, and turned into one write batch.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::build::{BlockData, InRow};
use super::{IndexConfig, IndexError};
use crate::store::rows::{self, Coin, Io, Tip, UtxoKey};
use crate::store::{Batch, PrevoutMode, Reader};
use crate::types::Txid;

/// Rough memory cost of one entry of `created`.
const CREATED_ENTRY_BYTES: usize = 96;
/// Memory cost of one buffered `script` row, and of one `txid` row.
const SCRIPT_ROW_BYTES: usize = std::mem::size_of::<ScriptRow>();
const TXID_ROW_BYTES: usize = rows::TXID_PREFIX + rows::TX_NUM_LEN;

/// A `script` row waiting to be written: its key, and its value (at most 13 bytes).
type ScriptRow = (rows::Key, [u8; 16], u8);

pub(super) type Key = (UtxoKey, usize);
/// Header and transaction count of each block a chunk adds.
pub(super) type NewBlocks = Vec<([u8; 80], u32)>;

pub(super) struct Chunk {
    batch: Batch,
    next_tx: u64,
    blocks: NewBlocks,
    tip: Option<Tip>,
    /// Outputs created in this chunk and not spent yet (`utxo` mode): written at commit.
    created: HashMap<Key, Coin>,
    /// The outputs the previous chunk created, while its commit may still be on its way to the
    /// store (`utxo` mode): read before the store, never changed, and let go of as soon as that
    /// commit lands ([`Chunk::forget_inherited`]).
    inherited: Option<Arc<HashMap<Key, Coin>>>,
    /// Outputs from before this chunk that it spends (`utxo` mode): deleted at commit.
    spent_stored: Vec<Key>,
    value: Vec<u8>,
    /// The `script` and `txid` rows, written in key order when the chunk is finished. RocksDB
    /// inserts keys that follow the previous one without searching its memtable from the top:
    /// in block order, the search was half of the sync's CPU time.
    script_rows: Vec<ScriptRow>,
    txid_rows: Vec<[u8; TXID_ROW_BYTES]>,
    /// Script-hash prefixes of the rows written, when someone listens for them.
    touched: Option<Vec<[u8; 8]>>,
}

impl Chunk {
    /// A chunk whose first transaction is `next_tx`. `inherited`: the outputs the previous
    /// chunk created, if its commit has not landed yet.
    pub(super) fn new(batch: Batch, next_tx: u64, track: bool, inherited: Option<Arc<HashMap<Key, Coin>>>) -> Chunk {
        Chunk {
            inherited,
            touched: track.then(Vec::new),
            batch,
            next_tx,
            blocks: Vec::new(),
            tip: None,
            created: HashMap::default(),
            spent_stored: Vec::new(),
            value: Vec::with_capacity(32),
            script_rows: Vec::new(),
            txid_rows: Vec::new(),
        }
    }

    /// Lets go of the previous chunk's outputs: its commit has landed, so the store has them.
    /// Held through this whole chunk, they were a second map of up to `utxo_cache_bytes`.
    pub(super) fn forget_inherited(&mut self) {
        self.inherited = None;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The number the next block's first transaction gets.
    pub(super) fn next_tx(&self) -> u64 {
        self.next_tx
    }

    pub(super) fn is_full(&self, config: &IndexConfig) -> bool {
        self.blocks.len() as u32 >= config.chunk_blocks
            || self.batch.size_in_bytes()
                + self.script_rows.len() * SCRIPT_ROW_BYTES
                + self.txid_rows.len() * TXID_ROW_BYTES
                >= config.chunk_bytes
            || self.created.len() * CREATED_ENTRY_BYTES >= config.utxo_cache_bytes
    }

    /// Numbers the block's transactions, resolves its inputs (`utxo` mode) and adds its rows.
    pub(super) fn add(
        &mut self,
        store: &Reader,
        mode: PrevoutMode,
        mut data: BlockData,
        keep_undo: bool,
        undo_depth: u32,
    ) -> Result<(), IndexError> {
        let first_tx = self.next_tx;
        if mode == PrevoutMode::Utxo {
            self.resolve(store, &mut data)?;
            if keep_undo {
                let coins: Vec<Coin> = data.inputs.iter().filter_map(|i| i.coin).collect();
                self.batch.put_undo(data.height, &coins)?;
            }
            if let Some(old) = data.height.checked_sub(undo_depth) {
                self.batch.delete_undo(old)?;
            }
        }
        self.buffer_rows(&data, first_tx)?;
        self.batch.put_header(data.height, &data.header, data.txids.len() as u32)?;
        self.batch.put_txpos(data.height, &data.tx_sizes)?;
        if let Some(t) = &mut self.touched {
            t.extend(touched_prefixes(&data));
        }
        self.next_tx += data.txids.len() as u64;
        self.blocks.push((data.header, data.txids.len() as u32));
        self.tip = Some(Tip { height: data.height, hash: data.hash, tx_count: self.next_tx });
        self.batch.add_txids(&data.txids);
        Ok(())
    }

    /// Buffers the block's `script` and `txid` rows.
    fn buffer_rows(&mut self, data: &BlockData, first_tx: u64) -> Result<(), IndexError> {
        let mut push = |sh: &[u8; rows::SH_PREFIX], tx: u32, io: &Io, value: &mut Vec<u8>| {
            rows::script_value(io, value);
            let mut buf = [0u8; 16];
            let len = value.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..len), value.get(..len)) {
                dst.copy_from_slice(src);
            }
            self.script_rows.push((rows::script_key(sh, first_tx + u64::from(tx), io), buf, len as u8));
        };
        for out in &data.outputs {
            push(&out.coin.sh, out.tx, &Io::Output { index: out.vout, value: out.coin.value }, &mut self.value);
        }
        for input in &data.inputs {
            let coin = input.coin.ok_or_else(|| missing(data.height, input))?;
            push(&coin.sh, input.tx, &input_io(input), &mut self.value);
        }
        if data.height > 0 {
            for (i, txid) in data.txids.iter().enumerate() {
                self.txid_rows.push(rows::txid_key(txid, first_tx + i as u64));
            }
        }
        Ok(())
    }

    /// Finds the coin each input spends: created earlier in this block, earlier in this chunk,
    /// in the previous chunk, or before (one sorted batch of reads per block for the inputs
    /// the maps do not have). Each input is taken from the first map that has it, in one pass.
    fn resolve(&mut self, store: &Reader, data: &mut BlockData) -> Result<(), IndexError> {
        let mut local: HashMap<Key, Coin> = HashMap::with_capacity_and_hasher(data.outputs.len(), Default::default());
        local
            .extend(data.outputs.iter().filter_map(|o| Some((key_of(data.txids.get(o.tx as usize)?, o.vout), o.coin))));
        let inherited = self.inherited.as_deref();
        // The inputs left for the store: (their key, their position).
        let mut wanted: Vec<(Key, usize)> = Vec::new();
        for (n, input) in data.inputs.iter_mut().enumerate() {
            let key = rows::utxo_key(&input.prev_txid, input.prev_vout);
            input.coin = if let Some(c) = local.remove(&key) {
                Some(c)
            } else if let Some(c) = self.created.remove(&key) {
                Some(c)
            } else if let Some(c) = inherited.and_then(|m| m.get(&key)).copied() {
                // Written by the previous chunk's commit, which lands before this one's.
                self.spent_stored.push(key);
                Some(c)
            } else {
                wanted.push((key, n));
                None
            };
        }
        self.created.extend(local);
        if wanted.is_empty() {
            return Ok(());
        }
        wanted.sort_unstable_by(|a, b| bytes(&a.0).cmp(bytes(&b.0)));
        let keys: Vec<Key> = wanted.iter().map(|(k, _)| *k).collect();
        let found = store.utxo_get(&keys)?;
        for (i, ((key, n), coin)) in wanted.into_iter().zip(found).enumerate() {
            // Two inputs spending one output: the second finds nothing.
            let twice = i > 0 && keys.get(i - 1) == Some(&key);
            let input = data.inputs.get_mut(n).ok_or_else(|| IndexError::Task("input out of range".into()))?;
            match coin.filter(|_| !twice) {
                Some(c) => {
                    input.coin = Some(c);
                    self.spent_stored.push(key);
                }
                None => return Err(missing(data.height, input)),
            }
        }
        Ok(())
    }

    /// Closes the chunk: what the next chunk and the publication need at once (the blocks, the
    /// prefixes touched, and in `utxo` mode the outputs it created, which the next chunk reads
    /// while this commit is on its way), and the rows, which [`Rows::into_batch`] sorts into
    /// the write batch on another thread. Sorted here, a chunk's rows held up the next chunk:
    /// in a profile of utxo mode the indexer's thread was busy 89% of the time, the sort and
    /// the batch among its work (docs/architecture.md, "A chunk's rows are sorted beside it").
    pub(super) fn close(self) -> Closed {
        let created = Arc::new(self.created);
        Closed {
            rows: Rows {
                batch: self.batch,
                script_rows: self.script_rows,
                txid_rows: self.txid_rows,
                spent_stored: self.spent_stored,
                created: created.clone(),
                tip: self.tip,
            },
            blocks: self.blocks,
            touched: self.touched.unwrap_or_default(),
            created,
        }
    }
}

/// A chunk closed: see [`Chunk::close`].
pub(super) struct Closed {
    pub(super) rows: Rows,
    pub(super) blocks: NewBlocks,
    pub(super) touched: Vec<[u8; 8]>,
    pub(super) created: Arc<HashMap<Key, Coin>>,
}

/// A closed chunk's rows, not yet in its batch.
pub(super) struct Rows {
    batch: Batch,
    script_rows: Vec<ScriptRow>,
    txid_rows: Vec<[u8; TXID_ROW_BYTES]>,
    spent_stored: Vec<Key>,
    /// The outputs created and still unspent, written to the `utxo` table (`utxo` mode; in
    /// `spenttxouts` mode nothing resolves inputs, and it and `spent_stored` stay empty).
    created: Arc<HashMap<Key, Coin>>,
    tip: Option<Tip>,
}

impl Rows {
    /// The batch to commit: the rows in key order, the `utxo` changes and the tip.
    pub(super) fn into_batch(mut self) -> Result<Batch, IndexError> {
        self.script_rows.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        for (key, value, len) in &self.script_rows {
            self.batch.put_script_row(key, value.get(..usize::from(*len)).unwrap_or_default())?;
        }
        self.txid_rows.sort_unstable();
        for key in &self.txid_rows {
            self.batch.put_txid_row(key)?;
        }
        // In key order, as the rows above: keys from a map come in random order, and each
        // would be searched for from the top of the memtable (17% of utxo mode's CPU time).
        self.spent_stored.sort_unstable_by(|a, b| bytes(a).cmp(bytes(b)));
        // An output from before this chunk spent by two of its blocks (or twice from the
        // previous chunk's outputs, which are only read): each spend found it, since it leaves
        // the store only with this commit. No node serves such a chain; the chunk is not written.
        if let Some(pair) = self.spent_stored.windows(2).find(|w| w.first() == w.get(1)) {
            let key = pair.first().map(bytes).unwrap_or_default();
            let (prefix, mut vout) = key.split_at_checked(rows::UTXO_TXID_PREFIX).unwrap_or((key, &[]));
            let mut txid_end = prefix.to_vec();
            txid_end.reverse();
            return Err(IndexError::SpentTwice(format!(
                "output {} of the transaction whose txid ends in {}",
                rows::get_leb128(&mut vout).unwrap_or_default(),
                hex::encode(txid_end)
            )));
        }
        let mut created: Vec<(&Key, &Coin)> = self.created.iter().collect();
        created.sort_unstable_by(|a, b| bytes(a.0).cmp(bytes(b.0)));
        // Deletes first: an output spent here may be re-created under the same key (BIP 30).
        for key in &self.spent_stored {
            self.batch.delete_utxo(bytes(key))?;
        }
        for (key, coin) in created {
            self.batch.put_utxo(bytes(key), coin)?;
        }
        if let Some(tip) = self.tip {
            self.batch.set_tip(tip);
        }
        Ok(self.batch)
    }
}

/// The script-hash prefixes a block's rows are filed under.
pub(super) fn touched_prefixes(data: &BlockData) -> impl Iterator<Item = [u8; 8]> + '_ {
    data.outputs.iter().map(|o| o.coin.sh).chain(data.inputs.iter().filter_map(|i| i.coin.map(|c| c.sh)))
}

/// A key's bytes.
fn bytes((key, len): &Key) -> &[u8] {
    key.get(..*len).unwrap_or_default()
}

pub(super) fn key_of(txid: &Txid, vout: u32) -> Key {
    rows::utxo_key(&txid.0, vout)
}

pub(super) fn missing(height: u32, input: &InRow) -> IndexError {
    IndexError::MissingPrevout { height, txid: Txid(input.prev_txid).to_hex(), vout: input.prev_vout }
}

pub(super) fn input_io(input: &InRow) -> Io {
    Io::Input { index: input.index, prev_txid: rows::txid_prefix(&input.prev_txid), prev_vout: input.prev_vout }
}
