//! The index on disk: one RocksDB with a column family per table (see [`rows`]) and the txid
//! file. The indexer is the only writer; every change is one atomic [`Batch`] that also carries
//! the new tip, so a crash leaves either all of a commit or none of it. The column families,
//! their names and RocksDB's write batch do not leave this module: the indexer writes through
//! [`Batch`]'s typed rows, readers read through a [`Reader`].
//!
//! - `open.rs`: creating, opening and deleting an index, RocksDB's settings per table, and the
//!   prevout mode (recorded once, or moved from `utxo` to `spenttxouts`);
//! - `batch.rs`: the rows of one commit;
//! - `write.rs`: committing a batch, bulk mode and the compaction that ends it;
//! - `read.rs`: every read, for queries and for the indexer;
//! - `txids.rs`: the txid file.

mod batch;
mod open;
mod read;
mod snapshot;
pub(crate) mod txids;
mod write;

#[cfg(test)]
mod tests;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rocksdb::{ColumnFamily, DB};

use crate::network::Network;

pub(crate) use batch::Batch;
pub(crate) use ferrum_codec::rows;
pub(crate) use read::Reader;
pub use read::{DiskUsage, Level, RawRow};

/// Version of the on-disk layout. Bumped whenever a row's meaning or encoding changes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The column family of the `format`, `network`, `mode` and `tip` keys, which no [`Table`]
/// names: only this module reads or writes them.
const CF_META: &str = "meta";
const CF_HEADERS: &str = "headers";
const CF_TXID: &str = "txid";
const CF_SCRIPT: &str = "script";
const CF_TXPOS: &str = "txpos";
const CF_UTXO: &str = "utxo";
const CF_UNDO: &str = "undo";
/// Every column family, in the order statistics list them.
const ALL_CFS: [&str; 7] = [CF_META, CF_HEADERS, CF_TXID, CF_SCRIPT, CF_TXPOS, CF_UTXO, CF_UNDO];

const KEY_FORMAT: &[u8] = b"format";
const KEY_NETWORK: &[u8] = b"network";
const KEY_MODE: &[u8] = b"mode";
const KEY_TIP: &[u8] = b"tip";

/// A table of rows (the layout of each is in [`rows`]). Named outside the store only to read a
/// whole table, for tests that compare two indexes row for row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Headers,
    Txid,
    Script,
    Txpos,
    /// `utxo` mode only.
    Utxo,
    /// `utxo` mode only.
    Undo,
}

impl Table {
    pub const ALL: [Table; 6] = [Table::Headers, Table::Txid, Table::Script, Table::Txpos, Table::Utxo, Table::Undo];

    /// The table's name, as statistics show it.
    pub fn name(self) -> &'static str {
        match self {
            Table::Headers => CF_HEADERS,
            Table::Txid => CF_TXID,
            Table::Script => CF_SCRIPT,
            Table::Txpos => CF_TXPOS,
            Table::Utxo => CF_UTXO,
            Table::Undo => CF_UNDO,
        }
    }

    /// Whether only `utxo` mode writes the table: the others hold the same rows in both modes.
    pub fn utxo_mode_only(self) -> bool {
        matches!(self, Table::Utxo | Table::Undo)
    }
}

/// Tables written without reads during initial sync: compacted once at the end.
const BULK_TABLES: [Table; 4] = [Table::Headers, Table::Txid, Table::Script, Table::Txpos];

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
pub(crate) enum Durability {
    /// Initial sync: no write-ahead log; the commit is made durable by flushing every table at
    /// once (atomic flush) and syncing the txid file first.
    Bulk,
    /// At the tip: write-ahead log, synced before returning.
    Synced,
}

/// The index, opened: the writer's handle. Its reads are its [`Reader`]'s (it derefs to it),
/// and the reader is all that readers are given (`Index::store`): batches,
/// commits, bulk mode and the prevout mode are the indexer's and start-up's alone.
pub struct Store {
    reader: Reader,
    /// Bulk mode (initial sync) is on: see [`Store::set_bulk`].
    bulk: AtomicBool,
}

impl Deref for Store {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// The RocksDB database and its directory (for errors), shared by the store and the batches it
/// hands out: a batch finds its tables' handles here as it adds rows.
struct Db {
    rocks: DB,
    dir: PathBuf,
}

impl Db {
    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.rocks
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt { path: self.dir.clone(), reason: format!("no {name} table") })
    }

    fn table(&self, table: Table) -> Result<&ColumnFamily, StoreError> {
        self.cf(table.name())
    }

    fn error(&self, e: rocksdb::Error) -> StoreError {
        map_rocks(&self.dir, e)
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { path: self.dir.clone(), reason: e.to_string() }
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
