//! A consistent copy of the index, taken while it serves and follows the chain: the start of a
//! new replica, which then only catches up (`ferrum snapshot`).
//!
//! RocksDB's checkpoint is taken with commits held off, so the copy's tables and tip are one
//! commit's; on the same file system it hard-links the table files (they never change), so it
//! costs a flush and milliseconds. The txid file is then copied up to that tip's transaction
//! count with commits running again: appends past the count do not touch the copied part, and a
//! reorg, which overwrites txids below the end, is seen by [`super::txids::TxidFile::overwrites`]
//! and the copy is taken again.

use std::path::Path;

use rocksdb::checkpoint::Checkpoint;

use super::rows::Tip;
use super::{open, Reader, StoreError};

/// Attempts before a run of reorgs is reported instead of copied through.
const ATTEMPTS: u32 = 5;

impl Reader {
    /// Writes a copy of the index into `dest` (an index directory, which must not exist): its
    /// tables and txids at one commit. Returns that commit's tip (`None`: an empty index).
    pub fn snapshot(&self, dest: &Path) -> Result<Option<Tip>, StoreError> {
        let io = |e: std::io::Error| StoreError::Io { path: dest.to_path_buf(), reason: e.to_string() };
        if dest.exists() {
            return Err(StoreError::Io { path: dest.to_path_buf(), reason: "already exists".into() });
        }
        let partial = dest.with_extension("partial");
        // On another file system the checkpoint would copy every table file, with commits held
        // off all the while: refused rather than leave the index behind the chain for that long.
        {
            use std::os::unix::fs::MetadataExt;
            let device = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
            let parent = dest.parent().unwrap_or(Path::new("/"));
            if device(parent).map_err(io)? != device(&self.db.dir).map_err(io)? {
                return Err(StoreError::Io {
                    path: dest.to_path_buf(),
                    reason: "not on the index's file system (a snapshot hard-links the index's files); take it \
                             there, then copy or move it"
                        .into(),
                });
            }
        }
        for _ in 0..ATTEMPTS {
            if partial.exists() {
                std::fs::remove_dir_all(&partial).map_err(io)?;
            }
            std::fs::create_dir_all(&partial).map_err(io)?;
            let (tip, overwrites) = {
                let _commits = self.commit_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let checkpoint = Checkpoint::new(&self.db.rocks).map_err(|e| self.db.error(e))?;
                checkpoint.create_checkpoint(open::rocks_dir(&partial)).map_err(|e| self.db.error(e))?;
                (self.tip(), self.txids.overwrites())
            };
            let count = tip.map_or(0, |t| t.tx_count);
            self.txids.copy_to(count, &open::txids_path(&partial)).map_err(io)?;
            if self.txids.overwrites() != overwrites {
                // A reorg rewrote txids while they were copied.
                continue;
            }
            sync_dir(&partial).map_err(io)?;
            std::fs::rename(&partial, dest).map_err(io)?;
            if let Some(parent) = dest.parent() {
                sync_dir(parent).map_err(io)?;
            }
            return Ok(tip);
        }
        let _ = std::fs::remove_dir_all(&partial);
        Err(StoreError::Io {
            path: dest.to_path_buf(),
            reason: format!("the chain reorganised during each of {ATTEMPTS} attempts; try again"),
        })
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
