//! Committing a batch, and how hard: synced write-ahead log at the tip; during initial sync
//! (bulk mode) no log, an atomic flush per commit, and no compaction until the end.

use std::sync::atomic::Ordering;

use rocksdb::{ColumnFamily, FlushOptions, WriteOptions};

use super::rows;
use super::{Batch, Durability, Store, StoreError, ALL_CFS, BULK_TABLES, CF_META, KEY_TIP};
use crate::sync::Shared;

impl Store {
    /// An empty batch whose txids start at `first_tx` (the committed transaction count).
    pub(crate) fn batch(&self, first_tx: u64) -> Batch {
        Batch::new(self.reader.db.clone(), first_tx)
    }

    /// Writes a batch: the txids first, then the rows with the new tip.
    pub(crate) fn commit(&self, mut batch: Batch, durability: Durability) -> Result<(), StoreError> {
        let db = &self.reader.db;
        let _commit = self.reader.commit_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tip = batch.tip.ok_or_else(|| db.corrupt("commit without a tip"))?;
        if batch.first_tx + batch.txids.len() as u64 != tip.tx_count {
            return Err(db.corrupt(format!(
                "commit of {} txids from {} does not reach the tip's {} transactions",
                batch.txids.len(),
                batch.first_tx,
                tip.tx_count
            )));
        }
        let io = |e: std::io::Error| StoreError::Io { path: db.dir.clone(), reason: format!("txid file: {e}") };
        self.reader.txids.write(batch.first_tx, &batch.txids, durability == Durability::Synced).map_err(io)?;
        batch.wb.put_cf(db.cf(CF_META)?, KEY_TIP, rows::tip_value(&tip));
        let mut wo = WriteOptions::default();
        match durability {
            Durability::Synced => wo.set_sync(true),
            Durability::Bulk => wo.disable_wal(true),
        }
        db.rocks.write_opt(batch.wb, &wo).map_err(|e| db.error(e))?;
        if durability == Durability::Bulk {
            self.reader.txids.sync().map_err(io)?;
            self.flush()?;
        }
        *self.reader.tip.writing() = Some(tip);
        Ok(())
    }

    /// Flushes every table's memory to disk at once (atomic flush).
    fn flush(&self) -> Result<(), StoreError> {
        let db = &self.reader.db;
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|n| db.cf(n)).collect::<Result<_, _>>()?;
        let refs: Vec<&&ColumnFamily> = cfs.iter().collect();
        db.rocks.flush_cfs_opt(&refs, &FlushOptions::default()).map_err(|e| db.error(e))
    }

    /// Bulk mode: no automatic compaction of the write-only tables (they are compacted once at
    /// the end), so initial sync writes each row about once. Returns whether the mode changed.
    /// Leaving bulk mode re-enables compaction but keeps the write-stall triggers high until
    /// [`Store::compact`] has merged the files bulk mode left behind.
    pub(crate) fn set_bulk(&self, on: bool) -> Result<bool, StoreError> {
        if self.bulk.swap(on, Ordering::SeqCst) == on {
            return Ok(false);
        }
        let db = &self.reader.db;
        let auto = if on { "true" } else { "false" };
        for table in BULK_TABLES {
            let mut opts = vec![("disable_auto_compactions", auto)];
            if on {
                opts.extend([("level0_slowdown_writes_trigger", "100000"), ("level0_stop_writes_trigger", "100000")]);
            }
            db.rocks.set_options_cf(db.table(table)?, &opts).map_err(|e| db.error(e))?;
        }
        Ok(true)
    }

    /// Whether bulk mode is on.
    #[cfg(test)]
    pub(crate) fn is_bulk(&self) -> bool {
        self.bulk.load(Ordering::SeqCst)
    }

    /// Compacts the write-only tables (after initial sync), then restores the normal
    /// write-stall triggers.
    pub(crate) fn compact(&self) -> Result<(), StoreError> {
        let db = &self.reader.db;
        for table in BULK_TABLES {
            let cf = db.table(table)?;
            db.rocks.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
            db.rocks
                .set_options_cf(&cf, &[("level0_slowdown_writes_trigger", "20"), ("level0_stop_writes_trigger", "36")])
                .map_err(|e| db.error(e))?;
        }
        Ok(())
    }
}
