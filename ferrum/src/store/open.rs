//! Creating, opening and deleting an index; RocksDB's settings for each table; the prevout
//! mode, recorded when the index is created and moved from `utxo` to `spenttxouts` once.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, SliceTransform,
    WriteBatch, WriteOptions, DB,
};

use super::rows::{self, RowError, SH_PREFIX, TXID_PREFIX};
use super::txids::TxidFile;
use super::{
    map_rocks, Db, PrevoutMode, Reader, Store, StoreConfig, StoreError, Table, ALL_CFS, CF_META, CF_SCRIPT, CF_TXID,
    CF_UTXO, FORMAT_VERSION, KEY_FORMAT, KEY_MODE, KEY_NETWORK, KEY_TIP,
};
use crate::network::Network;
use crate::sync::Shared;

pub(super) fn rocks_dir(dir: &Path) -> PathBuf {
    dir.join("rocksdb")
}

pub(super) fn txids_path(dir: &Path) -> PathBuf {
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
    pub(crate) fn destroy(dir: &Path) -> std::io::Result<()> {
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
            reader: Reader {
                db: Arc::new(Db { rocks: db, dir: dir.to_path_buf() }),
                txids,
                tip: RwLock::new(tip),
                mode: RwLock::new(mode),
                commit_lock: std::sync::Mutex::new(()),
            },
            bulk: AtomicBool::new(false),
        })
    }

    /// Records the prevout mode of a new index.
    pub fn set_mode(&self, mode: PrevoutMode) -> Result<(), StoreError> {
        let db = &self.reader.db;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.rocks.put_cf_opt(db.cf(CF_META)?, KEY_MODE, mode.name().as_bytes(), &wo).map_err(|e| db.error(e))?;
        *self.reader.mode.writing() = Some(mode);
        Ok(())
    }

    /// Turns a `utxo`-mode index into a `spenttxouts`-mode one: the tables both modes write are
    /// the same, so only the mode changes and the `utxo` and `undo` tables go. The mode is
    /// written first; a crash before the tables are emptied leaves rows that the next call
    /// (at every start in `spenttxouts` mode) removes. Returns the bytes the two tables held.
    pub(crate) fn drop_utxo_tables(&self) -> Result<u64, StoreError> {
        if self.mode() != Some(PrevoutMode::Spenttxouts) {
            self.set_mode(PrevoutMode::Spenttxouts)?;
        }
        let db = &self.reader.db;
        let mut freed = 0;
        for table in [Table::Utxo, Table::Undo] {
            let cf = db.table(table)?;
            let mut it = db.rocks.raw_iterator_cf(&cf);
            it.seek_to_first();
            if !it.valid() {
                it.status().map_err(|e| db.error(e))?;
                continue;
            }
            let prop = |p: &str| db.rocks.property_int_value_cf(&cf, p).ok().flatten().unwrap_or(0);
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
            db.rocks.write_opt(wb, &wo).map_err(|e| db.error(e))?;
            db.rocks.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(freed)
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
    // A compaction is split by key range over the cores. The one that matters is the merge of
    // bulk mode's level-0 files at the end of initial sync, when the machine has nothing else
    // to do: on one thread it took about as long as the sync itself.
    db_opts.set_max_subcompactions(cores.max(2) as u32);
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
        // Index and filter in 4 KiB partitions under a small pinned top level. Whole, a file's
        // filter grows to megabytes (6.7 MB for a 74 MB `txid` file, 4.2 MB for a 70 MB `utxo`
        // one), about as large as a cache shard (capacity / 64) or larger: the cache cannot keep
        // it, and every lookup read it again and hashed its checksum. That was utxo mode's cliff; see docs/architecture.md.
        b.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
        b.set_partition_filters(true);
        b.set_metadata_block_size(4096);
        b.set_pin_top_level_index_and_filter(true);
        b.set_cache_index_and_filter_blocks_with_high_priority(true);
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
            CF_UTXO => {
                let mut o = cf_opts(4 * 1024, None, 64);
                // Every lookup is of an output that exists (the chunk's own are found in memory
                // first), so the last level, where most outputs live, needs no filter: one
                // partition fewer to read per lookup, and 10 bits an output less in the cache.
                o.set_optimize_filters_for_hits(true);
                o
            }
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
