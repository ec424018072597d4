//! The rows of one commit, by table: what the indexer adds for a chunk of blocks, or deletes
//! and restores to undo blocks.

use std::sync::Arc;

use rocksdb::WriteBatch;

use super::rows::{self, Coin, Tip, TXID_PREFIX, TX_NUM_LEN};
use super::{Db, StoreError, Table};
use crate::parse::HEADER_LEN;
use crate::types::Txid;

/// One commit: rows, the txids of transactions from `first_tx` on, and the tip they reach.
/// [`Store::commit`](super::Store::commit) writes the txids, then the rows and the tip in one
/// RocksDB write, so a crash leaves all of it or none. Rows are written in the order they are
/// added (a chunk adds its `script` and `txid` rows in key order, which RocksDB inserts fastest).
pub(crate) struct Batch {
    pub(super) db: Arc<Db>,
    pub(super) wb: WriteBatch,
    pub(super) first_tx: u64,
    pub(super) txids: Vec<Txid>,
    pub(super) tip: Option<Tip>,
    /// Reused for each `utxo` value.
    value: Vec<u8>,
}

impl Batch {
    pub(super) fn new(db: Arc<Db>, first_tx: u64) -> Batch {
        Batch { db, wb: WriteBatch::default(), first_tx, txids: Vec::new(), tip: None, value: Vec::with_capacity(32) }
    }

    /// Bytes of rows so far.
    pub(crate) fn size_in_bytes(&self) -> usize {
        self.wb.size_in_bytes()
    }

    /// Txids of the transactions that follow those already added (from `first_tx` on).
    pub(crate) fn add_txids(&mut self, txids: &[Txid]) {
        self.txids.extend_from_slice(txids);
    }

    /// The tip the commit reaches: every commit has one.
    pub(crate) fn set_tip(&mut self, tip: Tip) {
        self.tip = Some(tip);
    }

    /// A `script` row, from [`rows::script_key`] and [`rows::script_value`].
    pub(crate) fn put_script_row(&mut self, key: &rows::Key, value: &[u8]) -> Result<(), StoreError> {
        self.put(Table::Script, key.as_ref(), value)
    }

    pub(crate) fn delete_script_row(&mut self, key: &rows::Key) -> Result<(), StoreError> {
        self.delete(Table::Script, key.as_ref())
    }

    /// A `txid` row, from [`rows::txid_key`]; its value is empty.
    pub(crate) fn put_txid_row(&mut self, key: &[u8; TXID_PREFIX + TX_NUM_LEN]) -> Result<(), StoreError> {
        self.put(Table::Txid, key, &[])
    }

    pub(crate) fn delete_txid_row(&mut self, key: &[u8; TXID_PREFIX + TX_NUM_LEN]) -> Result<(), StoreError> {
        self.delete(Table::Txid, key)
    }

    /// Block `height`'s header and transaction count.
    pub(crate) fn put_header(
        &mut self,
        height: u32,
        header: &[u8; HEADER_LEN],
        tx_count: u32,
    ) -> Result<(), StoreError> {
        self.put(Table::Headers, &rows::height_key(height), &rows::header_value(header, tx_count))
    }

    pub(crate) fn delete_header(&mut self, height: u32) -> Result<(), StoreError> {
        self.delete(Table::Headers, &rows::height_key(height))
    }

    /// The sizes of block `height`'s transactions, in block order.
    pub(crate) fn put_txpos(&mut self, height: u32, tx_sizes: &[u32]) -> Result<(), StoreError> {
        self.put(Table::Txpos, &rows::height_key(height), &rows::txpos_value(tx_sizes))
    }

    pub(crate) fn delete_txpos(&mut self, height: u32) -> Result<(), StoreError> {
        self.delete(Table::Txpos, &rows::height_key(height))
    }

    /// An unspent output, under its key from [`rows::utxo_key`] (`utxo` mode).
    pub(crate) fn put_utxo(&mut self, key: &[u8], coin: &Coin) -> Result<(), StoreError> {
        self.value.clear();
        rows::put_coin(&mut self.value, coin);
        self.wb.put_cf(self.db.table(Table::Utxo)?, key, &self.value);
        Ok(())
    }

    pub(crate) fn delete_utxo(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.delete(Table::Utxo, key)
    }

    /// The coins block `height`'s inputs spent, in input order (`utxo` mode, recent blocks).
    pub(crate) fn put_undo(&mut self, height: u32, coins: &[Coin]) -> Result<(), StoreError> {
        self.put(Table::Undo, &rows::height_key(height), &rows::undo_value(coins))
    }

    pub(crate) fn delete_undo(&mut self, height: u32) -> Result<(), StoreError> {
        self.delete(Table::Undo, &rows::height_key(height))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.wb.put_cf(self.db.table(table)?, key, value);
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.wb.delete_cf(self.db.table(table)?, key);
        Ok(())
    }
}
