//! Every read of the index: what queries ask (a script's rows, a txid's candidates, block
//! positions, the txid file), what the indexer asks (headers at start, unspent outputs, a
//! block's undo), and the statistics and dumps that tools and tests use.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rocksdb::{Direction, IteratorMode, ReadOptions};

use super::rows::{self, Coin, Tip, UtxoKey, TXID_PREFIX};
use super::txids::{TxidFile, TxidMap};
use super::{Db, PrevoutMode, StoreError, Table, ALL_CFS};
use crate::sync::Shared;
use crate::types::{ScriptHash, Txid};

/// A key and its value, as stored.
pub type RawRow = (Vec<u8>, Vec<u8>);

/// Size of a column family on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct CfStats {
    pub(crate) name: &'static str,
    pub(crate) rows: u64,
    pub(crate) exact: bool,
    pub(crate) bytes: u64,
}

/// One level of RocksDB's tree, all tables together.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Level {
    pub files: u64,
    pub bytes: u64,
}

/// Where the index's bytes are on disk, and what compaction still owes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiskUsage {
    /// SST files by level, 0 to the deepest holding any.
    pub levels: Vec<Level>,
    /// SST bytes by table.
    pub tables: Vec<(&'static str, u64)>,
    /// RocksDB's estimate of the bytes compaction has yet to rewrite.
    pub pending_compaction_bytes: u64,
    /// Rows written but not yet flushed to an SST file.
    pub memtable_bytes: u64,
    /// The txid file (32 bytes a transaction).
    pub txids_bytes: u64,
    /// Memory RocksDB reports: its block cache (and the part pinned there), and the open
    /// tables' readers outside it.
    pub block_cache_bytes: u64,
    pub block_cache_pinned_bytes: u64,
    pub table_readers_bytes: u64,
}

impl DiskUsage {
    pub fn sst_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }
}

/// The read side of an open index: sees every committed batch, reaches no write. A commit may
/// land between two reads, which is why readers hold a view (a transaction count) and ignore
/// rows past it.
pub struct Reader {
    pub(super) db: Arc<Db>,
    pub(super) txids: TxidFile,
    /// The committed tip: replaced by each commit, after its rows are written.
    pub(super) tip: RwLock<Option<Tip>>,
    pub(super) mode: RwLock<Option<PrevoutMode>>,
    /// Held by each commit, and by a snapshot while it takes its checkpoint.
    pub(super) commit_lock: std::sync::Mutex<()>,
}

impl Reader {
    pub(crate) fn dir(&self) -> &Path {
        &self.db.dir
    }

    /// The committed tip, `None` for an empty index.
    pub fn tip(&self) -> Option<Tip> {
        *self.tip.reading()
    }

    pub fn mode(&self) -> Option<PrevoutMode> {
        *self.mode.reading()
    }

    pub fn txids(&self) -> TxidMap {
        self.txids.view()
    }

    /// Every stored header with its transaction count, by height from 0.
    pub(crate) fn load_headers(&self) -> Result<Vec<([u8; 80], u32)>, StoreError> {
        let db = &*self.db;
        let cf = db.table(Table::Headers)?;
        let mut out = Vec::new();
        for item in db.rocks.iterator_cf(&cf, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| db.error(e))?;
            let height = rows::decode_height_key(&key).map_err(|e| db.corrupt(e))?;
            if height as usize != out.len() {
                return Err(db.corrupt(format!("header rows skip from {} to {height}", out.len())));
            }
            out.push(rows::decode_header_value(&value).map_err(|e| db.corrupt(e))?);
        }
        Ok(out)
    }

    /// The `script` rows of a script hash (all rows sharing its 8-byte prefix), in key order:
    /// by `tx_num`, then input/output index.
    pub(crate) fn script_rows(&self, sh: &ScriptHash) -> Result<Vec<rows::ScriptRow>, StoreError> {
        self.script_rows_from(sh, 0)
    }

    /// The `script` rows of a script hash whose `tx_num` is `from` or more, in key order.
    pub(crate) fn script_rows_from(&self, sh: &ScriptHash, from: u64) -> Result<Vec<rows::ScriptRow>, StoreError> {
        self.script_rows_upto(sh, from, usize::MAX).map(Option::unwrap_or_default)
    }

    /// [`Self::script_rows_from`], or `None` once there are more than `max` of them (the read
    /// stops there).
    pub(crate) fn script_rows_upto(
        &self,
        sh: &ScriptHash,
        from: u64,
        max: usize,
    ) -> Result<Option<Vec<rows::ScriptRow>>, StoreError> {
        let db = &*self.db;
        let prefix = rows::sh_prefix(sh);
        let cf = db.table(Table::Script)?;
        let mut opts = ReadOptions::default();
        opts.set_prefix_same_as_start(true);
        let mut out = Vec::new();
        // The raw iterator lends each key and value; the plain one copies both into new boxes.
        let mut it = db.rocks.raw_iterator_cf_opt(&cf, opts);
        let mut start = [0u8; rows::SH_PREFIX + rows::TX_NUM_LEN];
        start[..rows::SH_PREFIX].copy_from_slice(&prefix);
        start[rows::SH_PREFIX..].copy_from_slice(&rows::tx_num_bytes(from));
        it.seek(start);
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            if !key.starts_with(&prefix) {
                break;
            }
            if out.len() == max {
                return Ok(None);
            }
            out.push(rows::decode_script_row(key, value).map_err(|e| db.corrupt(e))?);
            it.next();
        }
        it.status().map_err(|e| db.error(e))?;
        Ok(Some(out))
    }

    /// `tx_num`s whose txid starts like `txid` (usually one; collisions are told apart by the
    /// caller with the txid file).
    pub(crate) fn txid_candidates(&self, txid: &Txid) -> Result<Vec<u64>, StoreError> {
        let db = &*self.db;
        let prefix = &txid.0[..TXID_PREFIX];
        let cf = db.table(Table::Txid)?;
        let mut opts = ReadOptions::default();
        opts.set_prefix_same_as_start(true);
        let mut out = Vec::new();
        for item in db.rocks.iterator_cf_opt(&cf, opts, IteratorMode::From(prefix, Direction::Forward)) {
            let (key, _) = item.map_err(|e| db.error(e))?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(rows::decode_txid_key(&key).map_err(|e| db.corrupt(e))?);
        }
        Ok(out)
    }

    pub(crate) fn txpos(&self, height: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let db = &*self.db;
        db.rocks.get_cf(db.table(Table::Txpos)?, rows::height_key(height)).map_err(|e| db.error(e))
    }

    /// The coins block `height`'s inputs spent, in input order (`utxo` mode, recent blocks).
    pub(crate) fn undo(&self, height: u32) -> Result<Option<Vec<Coin>>, StoreError> {
        let db = &*self.db;
        let value = db.rocks.get_cf(db.table(Table::Undo)?, rows::height_key(height)).map_err(|e| db.error(e))?;
        value.map(|v| rows::decode_undo_value(&v).map_err(|e| db.corrupt(e))).transpose()
    }

    /// Looks up unspent outputs; `keys` should be sorted for locality.
    pub(crate) fn utxo_get(&self, keys: &[(UtxoKey, usize)]) -> Result<Vec<Option<Coin>>, StoreError> {
        let db = &*self.db;
        let cf = db.table(Table::Utxo)?;
        let results = db.rocks.batched_multi_get_cf(&cf, keys.iter().map(|(k, len)| k.get(..*len).unwrap_or(k)), false);
        results
            .into_iter()
            .map(|r| match r.map_err(|e| db.error(e))? {
                Some(v) => {
                    let mut s: &[u8] = &v;
                    Ok(Some(rows::get_coin(&mut s).map_err(|e| db.corrupt(e))?))
                }
                None => Ok(None),
            })
            .collect()
    }

    /// Row counts and sizes of each table, and of the txid file. Counts are RocksDB's estimates
    /// unless `exact`, which reads every row.
    pub(crate) fn stats(&self, exact: bool) -> Result<Vec<CfStats>, StoreError> {
        let db = &*self.db;
        let mut out = Vec::new();
        for name in ALL_CFS {
            let cf = db.cf(name)?;
            let prop = |p: &str| db.rocks.property_int_value_cf(&cf, p).ok().flatten().unwrap_or(0);
            let bytes = prop("rocksdb.total-sst-files-size") + prop("rocksdb.cur-size-all-mem-tables");
            let rows = if exact {
                let mut n = 0u64;
                for item in db.rocks.iterator_cf(&cf, IteratorMode::Start) {
                    item.map_err(|e| db.error(e))?;
                    n += 1;
                }
                n
            } else {
                prop("rocksdb.estimate-num-keys")
            };
            out.push(CfStats { name, rows, exact, bytes });
        }
        let tx_count = self.tip().map_or(0, |t| t.tx_count);
        out.push(CfStats { name: "txids.dat", rows: tx_count, exact: true, bytes: tx_count * 32 });
        Ok(out)
    }

    /// SST files by level and table, and compaction's debt.
    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let db = &*self.db;
        let files = db.rocks.live_files().map_err(|e| db.error(e))?;
        let mut usage = DiskUsage::default();
        for file in &files {
            let level = usize::try_from(file.level).unwrap_or(0);
            if usage.levels.len() <= level {
                usage.levels.resize(level + 1, Level::default());
            }
            if let Some(l) = usage.levels.get_mut(level) {
                l.files += 1;
                l.bytes += file.size as u64;
            }
        }
        for name in ALL_CFS {
            let bytes = files.iter().filter(|f| f.column_family_name == name).map(|f| f.size as u64).sum();
            usage.tables.push((name, bytes));
            let cf = db.cf(name)?;
            let prop = |p: &str| db.rocks.property_int_value_cf(&cf, p).ok().flatten().unwrap_or(0);
            usage.pending_compaction_bytes += prop("rocksdb.estimate-pending-compaction-bytes");
            usage.memtable_bytes += prop("rocksdb.cur-size-all-mem-tables");
            usage.table_readers_bytes += prop("rocksdb.estimate-table-readers-mem");
            // One cache serves every table.
            usage.block_cache_bytes = prop("rocksdb.block-cache-usage");
            usage.block_cache_pinned_bytes = prop("rocksdb.block-cache-pinned-usage");
        }
        usage.txids_bytes = self.tip().map_or(0, |t| t.tx_count * 32);
        Ok(usage)
    }

    /// Every row of every table by name, and the txid file as rows (transaction number, txid):
    /// what two indexes of one chain must agree on, whichever way they were built. The tables
    /// that exist in one prevout mode only (`utxo`, `undo`) come last, when `mode_tables`.
    pub fn dump_tables(&self, mode_tables: bool) -> Result<Vec<(&'static str, Vec<RawRow>)>, StoreError> {
        let mut out = Vec::new();
        for t in Table::ALL.into_iter().filter(|t| !t.utxo_mode_only()) {
            out.push((t.name(), self.dump(t)?));
        }
        let txids = self.txids();
        let count = self.tip().map_or(0, |t| t.tx_count);
        let rows = (0..count).filter_map(|n| Some((n.to_be_bytes().to_vec(), txids.get(n)?.0.to_vec()))).collect();
        out.push(("txids", rows));
        if mode_tables {
            for t in Table::ALL.into_iter().filter(|t| t.utxo_mode_only()) {
                out.push((t.name(), self.dump(t)?));
            }
        }
        Ok(out)
    }

    /// Every row of a table, in key order, for tests that compare two indexes row for row.
    pub fn dump(&self, table: Table) -> Result<Vec<RawRow>, StoreError> {
        let db = &*self.db;
        db.rocks
            .iterator_cf(db.table(table)?, IteratorMode::Start)
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| db.error(e)))
            .collect()
    }
}
