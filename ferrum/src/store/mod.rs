//! The index on disk: one RocksDB with a column family per table (see [`rows`]) and the txid
//! file. The indexer is the only writer; every change is one atomic batch that also carries the
//! new tip, so a crash leaves either all of a commit or none of it.

pub use ferrum_codec::rows;
pub mod txids;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    Options, ReadOptions, SliceTransform, WriteBatch, WriteOptions, DB,
};

use crate::network::Network;
use crate::sync::Shared;
use crate::types::{ScriptHash, Txid};
use rows::{Coin, RowError, Tip, UtxoKey, SH_PREFIX, TXID_PREFIX};
use txids::{TxidFile, TxidMap};

/// Version of the on-disk layout. Bumped whenever a row's meaning or encoding changes.
pub const FORMAT_VERSION: u32 = 1;

pub const CF_META: &str = "meta";
pub const CF_HEADERS: &str = "headers";
pub const CF_TXID: &str = "txid";
pub const CF_SCRIPT: &str = "script";
pub const CF_TXPOS: &str = "txpos";
pub const CF_UTXO: &str = "utxo";
pub const CF_UNDO: &str = "undo";
pub const ALL_CFS: [&str; 7] = [CF_META, CF_HEADERS, CF_TXID, CF_SCRIPT, CF_TXPOS, CF_UTXO, CF_UNDO];
/// Column families written without reads during initial sync: compacted once at the end.
const BULK_CFS: [&str; 4] = [CF_HEADERS, CF_TXID, CF_SCRIPT, CF_TXPOS];

const KEY_FORMAT: &[u8] = b"format";
const KEY_NETWORK: &[u8] = b"network";
const KEY_MODE: &[u8] = b"mode";
const KEY_TIP: &[u8] = b"tip";

/// How the spent outputs of each block are found while indexing. Fixed when the index is
/// created: the `utxo` table is only complete if it was kept from the first block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrevoutMode {
    /// From the node's `/rest/spenttxouts` (Core 30+ with REST): no reads while indexing.
    Spenttxouts,
    /// From Ferrum's own `utxo` table (any Core).
    Utxo,
}

impl PrevoutMode {
    pub fn name(self) -> &'static str {
        match self {
            PrevoutMode::Spenttxouts => "spenttxouts",
            PrevoutMode::Utxo => "utxo",
        }
    }

    fn parse(s: &[u8]) -> Option<PrevoutMode> {
        match s {
            b"spenttxouts" => Some(PrevoutMode::Spenttxouts),
            b"utxo" => Some(PrevoutMode::Utxo),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data contradicts itself: rebuilding the index is the fix.
    #[error("index at {path} is corrupt: {reason}; remove it or start with --reindex")]
    Corrupt { path: PathBuf, reason: String },
    /// The disk or the file system failed; the data may be fine once that is fixed.
    #[error("index at {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path} is not a Ferrum index ({reason}); point --db-dir at an empty or Ferrum directory")]
    Foreign { path: PathBuf, reason: String },
    #[error(
        "index at {path} has format version {found}, this Ferrum uses {expected}; start with --reindex \
         (or reindex_on_format_change) to rebuild it"
    )]
    Format { path: PathBuf, found: u32, expected: u32 },
    #[error("index at {path} is for {found}, not {expected}")]
    Network { path: PathBuf, found: String, expected: Network },
    #[error("index at {path} is in use by another process")]
    Locked { path: PathBuf },
}

/// Settings of the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// RocksDB block cache and write buffers, in MiB.
    pub cache_mb: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { cache_mb: 512 }
    }
}

/// How durable a commit must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Initial sync: no write-ahead log; the commit is made durable by flushing every table at
    /// once (atomic flush) and syncing the txid file first.
    Bulk,
    /// At the tip: write-ahead log, synced before returning.
    Synced,
}

/// One commit: rows, the txids of transactions from `first_tx` on, and the tip they reach.
pub struct Batch {
    pub wb: WriteBatch,
    pub first_tx: u64,
    pub txids: Vec<Txid>,
    pub tip: Option<Tip>,
}

/// A key and its value, as stored.
pub type RawRow = (Vec<u8>, Vec<u8>);

/// Size of a column family on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CfStats {
    pub name: &'static str,
    pub rows: u64,
    pub exact: bool,
    pub bytes: u64,
}

pub struct Store {
    db: DB,
    txids: TxidFile,
    dir: PathBuf,
    tip: RwLock<Option<Tip>>,
    mode: RwLock<Option<PrevoutMode>>,
    bulk: AtomicBool,
}

fn rocks_dir(dir: &Path) -> PathBuf {
    dir.join("rocksdb")
}

fn txids_path(dir: &Path) -> PathBuf {
    dir.join("txids.dat")
}

/// Creates an empty index: the database is built in a staging directory and renamed into place
/// only once it carries its format version and network, so a kill at any instant leaves either
/// no index or a complete empty one, never a database Ferrum would refuse as foreign.
fn create_db(dir: &Path, network: Network, config: &StoreConfig) -> Result<(), StoreError> {
    let io = |path: &Path, e: std::io::Error| StoreError::Io { path: path.to_path_buf(), reason: e.to_string() };
    let rdir = rocks_dir(dir);
    let staging = dir.join("rocksdb.creating");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
    }
    {
        let db = open_db(&staging, config, false)?;
        let meta = db
            .cf_handle(CF_META)
            .ok_or_else(|| StoreError::Corrupt { path: staging.clone(), reason: "no meta table".into() })?;
        let mut wb = WriteBatch::default();
        wb.put_cf(&meta, KEY_FORMAT, FORMAT_VERSION.to_be_bytes());
        wb.put_cf(&meta, KEY_NETWORK, network.name().as_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(wb, &wo).map_err(|e| map_rocks(&staging, e))?;
        db.flush().map_err(|e| map_rocks(&staging, e))?;
    }
    if rdir.exists() {
        // `fresh` established it is empty.
        std::fs::remove_dir(&rdir).map_err(|e| io(&rdir, e))?;
    }
    std::fs::rename(&staging, &rdir).map_err(|e| io(&rdir, e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
    Ok(())
}

impl Store {
    /// Deletes the index in `dir` (the `--reindex` path).
    pub fn destroy(dir: &Path) -> std::io::Result<()> {
        for p in [rocks_dir(dir), txids_path(dir)] {
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else if p.exists() {
                std::fs::remove_file(&p)?;
            }
        }
        Ok(())
    }

    /// Opens the index in `dir`, creating it if the directory holds none.
    pub fn open(dir: &Path, network: Network, config: &StoreConfig) -> Result<Store, StoreError> {
        Store::open_with(dir, network, config, false)
    }

    /// Opens an existing index for reading only, next to a running writer: the view is the
    /// index as of the writer's last flush.
    pub fn open_read_only(dir: &Path, network: Network, config: &StoreConfig) -> Result<Store, StoreError> {
        Store::open_with(dir, network, config, true)
    }

    fn open_with(dir: &Path, network: Network, config: &StoreConfig, read_only: bool) -> Result<Store, StoreError> {
        let io = |e: std::io::Error| StoreError::Io { path: dir.to_path_buf(), reason: e.to_string() };
        if read_only && !rocks_dir(dir).join("CURRENT").exists() {
            return Err(StoreError::Io { path: dir.to_path_buf(), reason: "no index here".into() });
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let rdir = rocks_dir(dir);
        let fresh = match std::fs::read_dir(&rdir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io(e)),
        };
        if fresh && txids_path(dir).exists() {
            return Err(StoreError::Corrupt {
                path: dir.to_path_buf(),
                reason: "txids.dat exists but the RocksDB directory is missing or empty".into(),
            });
        }
        if !fresh {
            if !rdir.join("CURRENT").exists() {
                return Err(StoreError::Foreign { path: rdir, reason: "files but no RocksDB database".into() });
            }
            let cfs = DB::list_cf(&Options::default(), &rdir).map_err(|e| map_rocks(&rdir, e))?;
            if !cfs.iter().any(|c| c == CF_META) {
                return Err(StoreError::Foreign {
                    path: rdir,
                    reason: "a RocksDB database without Ferrum's tables".into(),
                });
            }
        }
        if fresh {
            create_db(dir, network, config)?;
        }
        let db = open_db(&rdir, config, read_only)?;
        let meta = db
            .cf_handle(CF_META)
            .ok_or_else(|| StoreError::Corrupt { path: rdir.clone(), reason: "no meta table".into() })?;
        let read = |key: &[u8]| db.get_cf(&meta, key).map_err(|e| map_rocks(&rdir, e));
        match read(KEY_FORMAT)? {
            None => {
                return Err(StoreError::Foreign { path: rdir.clone(), reason: "no format version".into() });
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt { path: rdir.clone(), reason: "bad format version".into() })?;
                if found != FORMAT_VERSION {
                    return Err(StoreError::Format { path: dir.to_path_buf(), found, expected: FORMAT_VERSION });
                }
            }
        }
        let found_net = read(KEY_NETWORK)?.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
        if found_net != network.name() {
            return Err(StoreError::Network { path: dir.to_path_buf(), found: found_net, expected: network });
        }
        let corrupt = |e: RowError| StoreError::Corrupt { path: rdir.clone(), reason: e.to_string() };
        let tip = read(KEY_TIP)?.map(|v| rows::decode_tip(&v)).transpose().map_err(corrupt)?;
        let mode = match read(KEY_MODE)? {
            Some(v) => Some(PrevoutMode::parse(&v).ok_or_else(|| StoreError::Corrupt {
                path: rdir.clone(),
                reason: format!("unknown prevout mode {:?}", String::from_utf8_lossy(&v)),
            })?),
            None => None,
        };
        let committed = tip.map_or(0, |t| t.tx_count);
        let txids = TxidFile::open(&txids_path(dir), committed, read_only).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt { path: dir.to_path_buf(), reason: e.to_string() }
            } else {
                io(e)
            }
        })?;
        Ok(Store {
            db,
            txids,
            dir: dir.to_path_buf(),
            tip: RwLock::new(tip),
            mode: RwLock::new(mode),
            bulk: AtomicBool::new(false),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt { path: self.dir.clone(), reason: format!("no {name} table") })
    }

    fn rocks(&self, e: rocksdb::Error) -> StoreError {
        map_rocks(&self.dir, e)
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { path: self.dir.clone(), reason: e.to_string() }
    }

    /// The committed tip, `None` for an empty index.
    pub fn tip(&self) -> Option<Tip> {
        *self.tip.reading()
    }

    pub fn mode(&self) -> Option<PrevoutMode> {
        *self.mode.reading()
    }

    /// Records the prevout mode of a new index.
    pub fn set_mode(&self, mode: PrevoutMode) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(&meta, KEY_MODE, mode.name().as_bytes(), &wo).map_err(|e| self.rocks(e))?;
        *self.mode.writing() = Some(mode);
        Ok(())
    }

    /// Turns a `utxo`-mode index into a `spenttxouts`-mode one: the tables both modes write are
    /// the same, so only the mode changes and the `utxo` and `undo` tables go. The mode is
    /// written first; a crash before the tables are emptied leaves rows that the next call
    /// (at every start in `spenttxouts` mode) removes. Returns the bytes the two tables held.
    pub fn drop_utxo_tables(&self) -> Result<u64, StoreError> {
        if self.mode() != Some(PrevoutMode::Spenttxouts) {
            self.set_mode(PrevoutMode::Spenttxouts)?;
        }
        let mut freed = 0;
        for name in [CF_UTXO, CF_UNDO] {
            let cf = self.cf(name)?;
            let mut it = self.db.raw_iterator_cf(&cf);
            it.seek_to_first();
            if !it.valid() {
                it.status().map_err(|e| self.rocks(e))?;
                continue;
            }
            let prop = |p: &str| self.db.property_int_value_cf(&cf, p).ok().flatten().unwrap_or(0);
            freed += prop("rocksdb.total-sst-files-size") + prop("rocksdb.cur-size-all-mem-tables");
            it.seek_to_last();
            let last = it.key().map(<[u8]>::to_vec).unwrap_or_default();
            drop(it);
            // delete_range's end is exclusive: one byte past the last key.
            let mut end = last;
            end.push(0);
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            let mut wb = WriteBatch::default();
            wb.delete_range_cf(&cf, [].as_slice(), end.as_slice());
            self.db.write_opt(wb, &wo).map_err(|e| self.rocks(e))?;
            self.db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(freed)
    }

    pub fn txids(&self) -> TxidMap {
        self.txids.view()
    }

    /// A write batch; column family handles come from [`Store::put`] and [`Store::delete`].
    pub fn batch(&self, first_tx: u64) -> Batch {
        Batch { wb: WriteBatch::default(), first_tx, txids: Vec::new(), tip: None }
    }

    pub fn put(&self, batch: &mut Batch, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        batch.wb.put_cf(&self.cf(cf)?, key, value);
        Ok(())
    }

    pub fn delete(&self, batch: &mut Batch, cf: &str, key: &[u8]) -> Result<(), StoreError> {
        batch.wb.delete_cf(&self.cf(cf)?, key);
        Ok(())
    }

    /// Writes a batch: the txids first, then the rows with the new tip.
    pub fn commit(&self, mut batch: Batch, durability: Durability) -> Result<(), StoreError> {
        let tip = batch.tip.ok_or_else(|| self.corrupt("commit without a tip"))?;
        if batch.first_tx + batch.txids.len() as u64 != tip.tx_count {
            return Err(self.corrupt(format!(
                "commit of {} txids from {} does not reach the tip's {} transactions",
                batch.txids.len(),
                batch.first_tx,
                tip.tx_count
            )));
        }
        let io = |e: std::io::Error| StoreError::Io { path: self.dir.clone(), reason: format!("txid file: {e}") };
        self.txids.write(batch.first_tx, &batch.txids, durability == Durability::Synced).map_err(io)?;
        let meta = self.cf(CF_META)?;
        batch.wb.put_cf(&meta, KEY_TIP, rows::tip_value(&tip));
        let mut wo = WriteOptions::default();
        match durability {
            Durability::Synced => wo.set_sync(true),
            Durability::Bulk => wo.disable_wal(true),
        }
        self.db.write_opt(batch.wb, &wo).map_err(|e| self.rocks(e))?;
        if durability == Durability::Bulk {
            self.txids.sync().map_err(io)?;
            self.flush()?;
        }
        *self.tip.writing() = Some(tip);
        Ok(())
    }

    /// Flushes every table's memory to disk at once (atomic flush).
    pub fn flush(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|n| self.cf(n)).collect::<Result<_, _>>()?;
        let refs: Vec<&&ColumnFamily> = cfs.iter().collect();
        self.db.flush_cfs_opt(&refs, &rocksdb::FlushOptions::default()).map_err(|e| self.rocks(e))
    }

    /// Bulk mode: no automatic compaction of the write-only tables (they are compacted once at
    /// the end), so initial sync writes each row about once. Returns whether the mode changed.
    /// Leaving bulk mode re-enables compaction but keeps the write-stall triggers high until
    /// [`Store::compact`] has merged the files bulk mode left behind.
    pub fn set_bulk(&self, on: bool) -> Result<bool, StoreError> {
        if self.bulk.swap(on, Ordering::SeqCst) == on {
            return Ok(false);
        }
        let auto = if on { "true" } else { "false" };
        for name in BULK_CFS {
            let cf = self.cf(name)?;
            let mut opts = vec![("disable_auto_compactions", auto)];
            if on {
                opts.extend([("level0_slowdown_writes_trigger", "100000"), ("level0_stop_writes_trigger", "100000")]);
            }
            self.db.set_options_cf(&cf, &opts).map_err(|e| self.rocks(e))?;
        }
        Ok(true)
    }

    /// Whether bulk mode is on.
    pub fn is_bulk(&self) -> bool {
        self.bulk.load(Ordering::SeqCst)
    }

    /// Compacts the write-only tables (after initial sync), then restores the normal
    /// write-stall triggers.
    pub fn compact(&self) -> Result<(), StoreError> {
        for name in BULK_CFS {
            let cf = self.cf(name)?;
            self.db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
            self.db
                .set_options_cf(&cf, &[("level0_slowdown_writes_trigger", "20"), ("level0_stop_writes_trigger", "36")])
                .map_err(|e| self.rocks(e))?;
        }
        Ok(())
    }

    /// Every stored header with its transaction count, by height from 0.
    pub fn load_headers(&self) -> Result<Vec<([u8; 80], u32)>, StoreError> {
        let cf = self.cf(CF_HEADERS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(&cf, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| self.rocks(e))?;
            let height = rows::decode_height_key(&key).map_err(|e| self.corrupt(e))?;
            if height as usize != out.len() {
                return Err(self.corrupt(format!("header rows skip from {} to {height}", out.len())));
            }
            out.push(rows::decode_header_value(&value).map_err(|e| self.corrupt(e))?);
        }
        Ok(out)
    }

    /// The `script` rows of a script hash (all rows sharing its 8-byte prefix), in key order:
    /// by `tx_num`, then input/output index.
    pub fn script_rows(&self, sh: &ScriptHash) -> Result<Vec<rows::ScriptRow>, StoreError> {
        let prefix = rows::sh_prefix(sh);
        let cf = self.cf(CF_SCRIPT)?;
        let mut opts = ReadOptions::default();
        opts.set_prefix_same_as_start(true);
        let mut out = Vec::new();
        // The raw iterator lends each key and value; the plain one copies both into new boxes.
        let mut it = self.db.raw_iterator_cf_opt(&cf, opts);
        it.seek(prefix);
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            if !key.starts_with(&prefix) {
                break;
            }
            out.push(rows::decode_script_row(key, value).map_err(|e| self.corrupt(e))?);
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        Ok(out)
    }

    /// `tx_num`s whose txid starts like `txid` (usually one; collisions are told apart by the
    /// caller with the txid file).
    pub fn txid_candidates(&self, txid: &Txid) -> Result<Vec<u64>, StoreError> {
        let prefix = &txid.0[..TXID_PREFIX];
        let cf = self.cf(CF_TXID)?;
        let mut opts = ReadOptions::default();
        opts.set_prefix_same_as_start(true);
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(&cf, opts, IteratorMode::From(prefix, Direction::Forward)) {
            let (key, _) = item.map_err(|e| self.rocks(e))?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(rows::decode_txid_key(&key).map_err(|e| self.corrupt(e))?);
        }
        Ok(out)
    }

    pub fn txpos(&self, height: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.cf(CF_TXPOS)?;
        self.db.get_cf(&cf, rows::height_key(height)).map_err(|e| self.rocks(e))
    }

    /// The coins block `height`'s inputs spent, in input order (`utxo` mode, recent blocks).
    pub fn undo(&self, height: u32) -> Result<Option<Vec<Coin>>, StoreError> {
        let cf = self.cf(CF_UNDO)?;
        let value = self.db.get_cf(&cf, rows::height_key(height)).map_err(|e| self.rocks(e))?;
        value.map(|v| rows::decode_undo_value(&v).map_err(|e| self.corrupt(e))).transpose()
    }

    /// Looks up unspent outputs; `keys` should be sorted for locality.
    pub fn utxo_get(&self, keys: &[(UtxoKey, usize)]) -> Result<Vec<Option<Coin>>, StoreError> {
        let cf = self.cf(CF_UTXO)?;
        let results = self.db.batched_multi_get_cf(&cf, keys.iter().map(|(k, len)| k.get(..*len).unwrap_or(k)), false);
        results
            .into_iter()
            .map(|r| match r.map_err(|e| self.rocks(e))? {
                Some(v) => {
                    let mut s: &[u8] = &v;
                    Ok(Some(rows::get_coin(&mut s).map_err(|e| self.corrupt(e))?))
                }
                None => Ok(None),
            })
            .collect()
    }

    /// Row counts and sizes of each table, and of the txid file. Counts are RocksDB's estimates
    /// unless `exact`, which reads every row.
    pub fn stats(&self, exact: bool) -> Result<Vec<CfStats>, StoreError> {
        let mut out = Vec::new();
        for name in ALL_CFS {
            let cf = self.cf(name)?;
            let prop = |p: &str| self.db.property_int_value_cf(&cf, p).ok().flatten().unwrap_or(0);
            let bytes = prop("rocksdb.total-sst-files-size") + prop("rocksdb.cur-size-all-mem-tables");
            let rows = if exact {
                let mut n = 0u64;
                for item in self.db.iterator_cf(&cf, IteratorMode::Start) {
                    item.map_err(|e| self.rocks(e))?;
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

    /// Raw iteration over a table, for tests that compare two indexes row for row.
    pub fn dump(&self, name: &str) -> Result<Vec<RawRow>, StoreError> {
        let cf = self.cf(name)?;
        self.db
            .iterator_cf(&cf, IteratorMode::Start)
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| self.rocks(e)))
            .collect()
    }
}

fn map_rocks(path: &Path, e: rocksdb::Error) -> StoreError {
    let text = e.to_string();
    match e.kind() {
        rocksdb::ErrorKind::Corruption => {
            StoreError::Corrupt { path: path.to_path_buf(), reason: format!("RocksDB: {text}") }
        }
        _ if text.contains("lock")
            && (text.contains("Resource temporarily unavailable") || text.contains("No locks available")) =>
        {
            StoreError::Locked { path: path.to_path_buf() }
        }
        _ => StoreError::Io { path: path.to_path_buf(), reason: format!("RocksDB: {text}") },
    }
}

fn open_db(path: &Path, config: &StoreConfig, read_only: bool) -> Result<DB, StoreError> {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    // Every table is flushed together, so a flush never persists half of a commit.
    db_opts.set_atomic_flush(true);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
    db_opts.increase_parallelism(cores.max(2));
    db_opts.set_max_background_jobs(cores.max(2));
    db_opts.set_max_open_files(2048);
    db_opts.set_bytes_per_sync(1 << 20);
    db_opts.set_keep_log_file_num(5);
    let cache_bytes = config.cache_mb.max(16) << 20;
    // Half for reads, half for write buffers.
    let cache = Cache::new_lru_cache(cache_bytes / 2);
    db_opts.set_db_write_buffer_size(cache_bytes / 2);

    let table = |block_size: usize, prefix_bloom: bool| {
        let mut b = BlockBasedOptions::default();
        b.set_block_cache(&cache);
        b.set_block_size(block_size);
        b.set_bloom_filter(10.0, false);
        b.set_cache_index_and_filter_blocks(true);
        b.set_pin_l0_filter_and_index_blocks_in_cache(true);
        if prefix_bloom {
            b.set_whole_key_filtering(false);
        }
        b
    };
    let cf_opts = |block_size: usize, prefix: Option<usize>, buffer_mb: usize| {
        let mut o = Options::default();
        o.set_block_based_table_factory(&table(block_size, prefix.is_some()));
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_bottommost_compression_type(DBCompressionType::Zstd);
        o.set_write_buffer_size(buffer_mb << 20);
        o.set_level_compaction_dynamic_level_bytes(true);
        if let Some(n) = prefix {
            o.set_prefix_extractor(SliceTransform::create_fixed_prefix(n));
            o.set_memtable_prefix_bloom_ratio(0.05);
        }
        o
    };
    let descriptors = ALL_CFS.iter().map(|&name| {
        let opts = match name {
            CF_SCRIPT => cf_opts(16 * 1024, Some(SH_PREFIX), 128),
            CF_TXID => cf_opts(4 * 1024, Some(TXID_PREFIX), 64),
            CF_UTXO => cf_opts(4 * 1024, None, 64),
            _ => cf_opts(16 * 1024, None, 16),
        };
        ColumnFamilyDescriptor::new(name, opts)
    });
    if read_only {
        DB::open_cf_descriptors_read_only(&db_opts, path, descriptors, false).map_err(|e| map_rocks(path, e))
    } else {
        DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(|e| map_rocks(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip(height: u32, tx_count: u64) -> Tip {
        Tip { height, hash: crate::types::BlockHash([height as u8; 32]), tx_count }
    }

    #[test]
    fn commit_is_visible_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
        assert_eq!(store.tip(), None);
        store.set_mode(PrevoutMode::Utxo).unwrap();
        let mut b = store.batch(0);
        let sh = ScriptHash([4; 32]);
        let io = rows::Io::Output { index: 1, value: 5000 };
        let mut v = Vec::new();
        rows::script_value(&io, &mut v);
        store.put(&mut b, CF_SCRIPT, rows::script_key(&rows::sh_prefix(&sh), 0, &io).as_ref(), &v).unwrap();
        b.txids.push(Txid([8; 32]));
        b.tip = Some(tip(0, 1));
        store.commit(b, Durability::Bulk).unwrap();
        assert_eq!(store.script_rows(&sh).unwrap(), vec![rows::ScriptRow { tx_num: 0, io }]);
        drop(store);
        let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
        assert_eq!(store.tip(), Some(tip(0, 1)));
        assert_eq!(store.mode(), Some(PrevoutMode::Utxo));
        assert_eq!(store.txids().get(0), Some(Txid([8; 32])));
        assert_eq!(store.script_rows(&ScriptHash([5; 32])).unwrap(), vec![]);
    }

    #[test]
    fn wrong_network_and_foreign_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap());
        let e = Store::open(dir.path(), Network::Mainnet, &StoreConfig::default()).err().unwrap();
        assert!(matches!(e, StoreError::Network { .. }), "{e}");

        let foreign = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(foreign.path().join("rocksdb")).unwrap();
        std::fs::write(foreign.path().join("rocksdb/notes.txt"), "hello").unwrap();
        let e = Store::open(foreign.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
        assert!(matches!(e, StoreError::Foreign { .. }), "{e}");

        let other = tempfile::tempdir().unwrap();
        drop(DB::open_default(other.path().join("rocksdb")).unwrap());
        let e = Store::open(other.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
        assert!(e.to_string().contains("without Ferrum's tables"), "{e}");
    }

    #[test]
    fn second_process_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
        let e = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    }

    #[test]
    fn truncated_txid_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
        let mut b = store.batch(0);
        b.txids = vec![Txid([1; 32]), Txid([2; 32])];
        b.tip = Some(tip(0, 2));
        store.commit(b, Durability::Synced).unwrap();
        drop(store);
        let f = std::fs::OpenOptions::new().write(true).open(dir.path().join("txids.dat")).unwrap();
        f.set_len(40).unwrap();
        let e = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("holds 1 txids but the index has 2"), "{e}");
    }

    #[test]
    fn format_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
        let meta = store.cf(CF_META).unwrap();
        store.db.put_cf(meta, KEY_FORMAT, 99u32.to_be_bytes()).unwrap();
        drop(store);
        let e = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
        assert!(matches!(e, StoreError::Format { found: 99, .. }), "{e}");
    }
}
