//! The txid of every confirmed transaction, 32 bytes each, indexed by `tx_num`, in one file.
//!
//! Written before the RocksDB batch that commits the same transactions, so the file is always
//! at least as long as the committed transaction count; on open it is truncated to that count,
//! which makes a crash between the two writes harmless. Readers use a memory map: a history of
//! 10,000 transactions costs 10,000 memory reads, not 10,000 system calls. The file is never
//! shrunk while mapped (a reorg overwrites positions past the fork instead), so a reader holding
//! an older map can never fault on a truncated page.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use memmap2::Mmap;

use crate::sync::Shared;
use crate::types::Txid;

pub(crate) struct TxidFile {
    file: File,
    /// Writes that overwrote txids already in the file (after a reorg): a copy of the file
    /// taken meanwhile may mix two chains.
    overwrites: std::sync::atomic::AtomicU64,
    /// Map of the file as of the last write; replaced (not modified) when the file grows.
    map: RwLock<Option<Arc<Mmap>>>,
}

/// A read view of the file.
#[derive(Clone)]
pub struct TxidMap {
    map: Option<Arc<Mmap>>,
}

impl TxidMap {
    /// The txid of `tx_num`, if the view covers it.
    pub fn get(&self, tx_num: u64) -> Option<Txid> {
        let map = self.map.as_ref()?;
        let start = usize::try_from(tx_num).ok()?.checked_mul(32)?;
        let bytes: [u8; 32] = map.get(start..start + 32)?.try_into().ok()?;
        Some(Txid(bytes))
    }

    /// `count` consecutive txids from `first`.
    pub(crate) fn range(&self, first: u64, count: usize) -> Option<Vec<Txid>> {
        (first..first + count as u64).map(|n| self.get(n)).collect()
    }
}

impl TxidFile {
    /// Opens (creating) the file and truncates it to `committed` txids. Fails if it holds fewer:
    /// the index then references transactions whose ids were lost. Read-only opens neither
    /// create nor truncate.
    pub(crate) fn open(path: &Path, committed: u64, read_only: bool) -> io::Result<TxidFile> {
        let file = if read_only {
            OpenOptions::new().read(true).open(path)?
        } else {
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?
        };
        let len = file.metadata()?.len();
        let want = committed * 32;
        if len < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} holds {} txids but the index has {committed} transactions", path.display(), len / 32),
            ));
        }
        if len > want && !read_only {
            file.set_len(want)?;
            file.sync_all()?;
        }
        let f = TxidFile { file, map: RwLock::new(None), overwrites: Default::default() };
        f.remap()?;
        Ok(f)
    }

    fn remap(&self) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the file is only appended to or overwritten past the committed count, never
            // truncated while mapped; bytes a reader can reach stay valid.
            Some(Arc::new(unsafe { Mmap::map(&self.file)? }))
        };
        *self.map.writing() = map;
        Ok(())
    }

    /// Writes `txids` from position `first` (the current committed count: appending, or
    /// overwriting after a reorg) and maps the result.
    pub(crate) fn write(&self, first: u64, txids: &[Txid], sync: bool) -> io::Result<()> {
        if txids.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(txids.len() * 32);
        for t in txids {
            buf.extend_from_slice(&t.0);
        }
        if first * 32 < self.file.metadata()?.len() {
            self.overwrites.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.file.write_all_at(&buf, first * 32)?;
        if sync {
            self.file.sync_data()?;
        }
        self.remap()
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// How many writes so far overwrote txids in the file.
    pub(crate) fn overwrites(&self) -> u64 {
        self.overwrites.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Copies the first `count` txids into a new file at `dest`, synced.
    pub(crate) fn copy_to(&self, count: u64, dest: &Path) -> io::Result<()> {
        let mut out = OpenOptions::new().write(true).create_new(true).open(dest)?;
        let mut left = count * 32;
        let mut offset = 0;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let chunk = buf.get_mut(..n).ok_or_else(|| io::Error::other("buffer"))?;
            self.file.read_exact_at(chunk, offset)?;
            io::Write::write_all(&mut out, chunk)?;
            offset += n as u64;
            left -= n as u64;
        }
        out.sync_all()
    }

    pub(crate) fn view(&self) -> TxidMap {
        TxidMap { map: self.map.reading().clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_to_committed_and_refuses_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txids");
        let f = TxidFile::open(&path, 0, false).unwrap();
        let ids: Vec<Txid> = (0..5u8).map(|i| Txid([i; 32])).collect();
        f.write(0, &ids, true).unwrap();
        assert_eq!(f.view().get(4), Some(Txid([4; 32])));
        assert_eq!(f.view().get(5), None);
        drop(f);
        // Only 3 were committed: the other 2 are dropped on open.
        let f = TxidFile::open(&path, 3, false).unwrap();
        assert_eq!(f.view().get(2), Some(Txid([2; 32])));
        assert_eq!(f.view().get(3), None);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 96);
        drop(f);
        let e = TxidFile::open(&path, 10, false).err().unwrap();
        assert!(e.to_string().contains("holds 3 txids but the index has 10"), "{e}");
    }

    #[test]
    fn overwrite_after_reorg_keeps_old_views_valid() {
        let dir = tempfile::tempdir().unwrap();
        let f = TxidFile::open(&dir.path().join("t"), 0, false).unwrap();
        f.write(0, &[Txid([1; 32]), Txid([2; 32])], false).unwrap();
        let old = f.view();
        f.write(1, &[Txid([9; 32])], false).unwrap();
        assert_eq!(f.view().range(0, 2), Some(vec![Txid([1; 32]), Txid([9; 32])]));
        // The old map sees the same file pages (shared mapping) and never faults.
        assert_eq!(old.get(1), Some(Txid([9; 32])));
        assert_eq!(old.get(2), None);
    }

    /// A snapshot copies txids while commits go on: appends leave the copied part alone and
    /// are not counted; a write below the end (after a reorg) is, and the copy is taken again.
    #[test]
    fn overwrites_are_counted_and_a_copy_stops_at_its_count() {
        let dir = tempfile::tempdir().unwrap();
        let f = TxidFile::open(&dir.path().join("t"), 0, false).unwrap();
        f.write(0, &[Txid([1; 32]), Txid([2; 32])], false).unwrap();
        f.write(2, &[Txid([3; 32])], false).unwrap();
        assert_eq!(f.overwrites(), 0);
        f.copy_to(2, &dir.path().join("copy")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("copy")).unwrap(), [[1u8; 32], [2u8; 32]].concat());
        // Never over an existing file.
        assert!(f.copy_to(1, &dir.path().join("copy")).is_err());
        f.write(1, &[Txid([7; 32])], false).unwrap();
        assert_eq!(f.overwrites(), 1);
    }
}
