//! The indexer driven from recorded blocks through the [`BlockSource`] seam: synthetic chains
//! with branches, no node needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bitcoin::blockdata::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{
    absolute, transaction, Amount, Block, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Witness,
};

use super::{BlockSource, Index, IndexConfig, IndexError, Indexer};
use crate::daemon::{DaemonError, NodeTip};
use crate::network::Network;
use crate::parse::write_compact_size;
use crate::shutdown::StopSignal;
use crate::store::{Durability, PrevoutMode, Store, StoreConfig, Table};
use crate::types::BlockHash;

/// A block's bytes and its spent outputs' bytes.
type Recorded = (Vec<u8>, Vec<u8>);

/// Blocks by hash, and which of them form the best chain.
#[derive(Default)]
pub(crate) struct MemorySource {
    blocks: Mutex<HashMap<BlockHash, Recorded>>,
    pub(crate) best: Mutex<Vec<BlockHash>>,
    /// Reports initial block download, with this many headers.
    syncing: Mutex<Option<u32>>,
}

impl BlockSource for MemorySource {
    async fn best(&self) -> Result<NodeTip, DaemonError> {
        let best = self.best.lock().unwrap();
        let tip = NodeTip::synced(best.len() as u32 - 1, *best.last().unwrap());
        Ok(match *self.syncing.lock().unwrap() {
            Some(headers) => NodeTip { initial_block_download: true, headers, progress: 0.5, ..tip },
            None => tip,
        })
    }
    async fn hashes(&self, from: u32, count: u32) -> Result<Vec<BlockHash>, DaemonError> {
        let best = self.best.lock().unwrap();
        Ok(best.iter().skip(from as usize).take(count as usize).copied().collect())
    }
    async fn block(&self, hash: BlockHash) -> Result<Vec<u8>, DaemonError> {
        Ok(self.blocks.lock().unwrap()[&hash].0.clone())
    }
    async fn spent_outputs(&self, hash: BlockHash) -> Result<Vec<u8>, DaemonError> {
        Ok(self.blocks.lock().unwrap()[&hash].1.clone())
    }
}

pub(crate) fn script(n: u64) -> ScriptBuf {
    // A handful of scripts, so histories overlap.
    ScriptBuf::from_bytes(vec![0x51, 0x01, (n % 7) as u8])
}

/// Builds a branch of `n` blocks on top of `parent` (`None`: from genesis), spending coins
/// from `utxos` (the branch's view, updated). `salt` makes branches differ.
pub(crate) fn extend(
    src: &MemorySource,
    chain: &mut Vec<BlockHash>,
    utxos: &mut Vec<(OutPoint, TxOut)>,
    n: u32,
    salt: u64,
) {
    for _ in 0..n {
        let height = chain.len() as u32;
        let mut txs = vec![coinbase(height, salt)];
        let mut spent: Vec<Vec<TxOut>> = vec![Vec::new()];
        // Spend two old coins (if any) and one created in this block.
        let mut created = Vec::new();
        if utxos.len() > 3 {
            let picked: Vec<(OutPoint, TxOut)> = vec![utxos.remove(0), utxos.remove(1)];
            let total: u64 = picked.iter().map(|(_, o)| o.value.to_sat()).sum();
            let tx = Transaction {
                version: transaction::Version::TWO,
                lock_time: absolute::LockTime::ZERO,
                input: picked
                    .iter()
                    .map(|(p, _)| TxIn {
                        previous_output: *p,
                        script_sig: ScriptBuf::new(),
                        sequence: Sequence::MAX,
                        witness: Witness::new(),
                    })
                    .collect(),
                output: vec![
                    TxOut { value: Amount::from_sat(total / 2), script_pubkey: script(u64::from(height) * 3 + salt) },
                    TxOut { value: Amount::from_sat(total / 2 - 1000), script_pubkey: script(u64::from(height) + 1) },
                ],
            };
            spent.push(picked.iter().map(|(_, o)| o.clone()).collect());
            let txid = tx.compute_txid();
            // A child in the same block spends the first output.
            let child = Transaction {
                version: transaction::Version::TWO,
                lock_time: absolute::LockTime::ZERO,
                input: vec![TxIn {
                    previous_output: OutPoint::new(txid, 0),
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                }],
                output: vec![TxOut { value: Amount::from_sat(total / 2 - 500), script_pubkey: script(salt + 5) }],
            };
            spent.push(vec![tx.output[0].clone()]);
            created.push((OutPoint::new(txid, 1), tx.output[1].clone()));
            created.push((OutPoint::new(child.compute_txid(), 0), child.output[0].clone()));
            txs.push(tx);
            txs.push(child);
        }
        // As on every real chain, the genesis coinbase cannot be spent.
        if height > 0 {
            created.push((OutPoint::new(txs[0].compute_txid(), 0), txs[0].output[0].clone()));
        }
        utxos.extend(created);
        add_block(src, chain, txs, &spent, salt);
    }
}

/// The coinbase of a block at `height`: 50 coins to a script of the handful, and an
/// OP_RETURN output.
fn coinbase(height: u32, salt: u64) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes([height.to_le_bytes().to_vec(), salt.to_le_bytes().to_vec()].concat()),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![
            TxOut { value: Amount::from_sat(5_000_000_000), script_pubkey: script(u64::from(height) + salt) },
            TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return([1u8, 2]) },
        ],
    }
}

/// Adds a block of `txs` on top of `chain` to the source, with the outputs each transaction
/// spends (`spent`, one list per transaction, the coinbase's empty).
fn add_block(src: &MemorySource, chain: &mut Vec<BlockHash>, txs: Vec<Transaction>, spent: &[Vec<TxOut>], salt: u64) {
    let height = chain.len() as u32;
    let prev = chain.last().map_or(bitcoin::BlockHash::all_zeros(), |h| bitcoin::BlockHash::from_byte_array(h.0));
    let mut block = Block {
        header: Header {
            version: Version::TWO,
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_600_000_000 + height,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce: salt as u32,
        },
        txdata: txs,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    let mut spent_bytes = Vec::new();
    write_compact_size(&mut spent_bytes, spent.len() as u64);
    for outs in spent {
        write_compact_size(&mut spent_bytes, outs.len() as u64);
        for o in outs {
            spent_bytes.extend_from_slice(&bitcoin::consensus::serialize(o));
        }
    }
    let hash = BlockHash(block.block_hash().to_byte_array());
    src.blocks.lock().unwrap().insert(hash, (bitcoin::consensus::serialize(&block), spent_bytes));
    chain.push(hash);
}

/// A main chain of `main` blocks, and a branch forking from it at height 20 with `extra`
/// blocks of its own: the main chain, its unspent coins, and the branch.
pub(crate) fn main_and_branch(
    src: &MemorySource,
    main: u32,
    extra: u32,
) -> (Vec<BlockHash>, Vec<(OutPoint, TxOut)>, Vec<BlockHash>) {
    let mut main_chain = Vec::new();
    let mut utxos = Vec::new();
    extend(src, &mut main_chain, &mut utxos, main, 0);
    let mut branch = main_chain[..=20].to_vec();
    // The branch's coins: the main chain replayed up to the fork.
    let mut replay = Vec::new();
    let mut branch_utxos = Vec::new();
    extend(&MemorySource::default(), &mut replay, &mut branch_utxos, 21, 0);
    assert_eq!(replay, branch);
    extend(src, &mut branch, &mut branch_utxos, extra, 1000);
    (main_chain, utxos, branch)
}

/// The index an indexer writes, for readers' tests.
pub(crate) fn index_of(ix: &Indexer<MemorySource>) -> Arc<Index> {
    ix.index.clone()
}

pub(crate) fn indexer(
    dir: &std::path::Path,
    src: Arc<MemorySource>,
    mode: PrevoutMode,
    undo_depth: u32,
) -> Indexer<MemorySource> {
    let store = Store::open(dir, Network::Regtest, &StoreConfig { cache_mb: 16 }).unwrap();
    store.set_mode(mode).unwrap();
    let index = Arc::new(Index::new(store).unwrap());
    let config = IndexConfig { chunk_blocks: 4, bulk_threshold: 10, undo_depth, ..IndexConfig::default() };
    Indexer::new(index, src, mode, config, StopSignal::default())
}

fn rows(ix: &Indexer<MemorySource>, with_mode_tables: bool) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    Table::ALL
        .into_iter()
        .filter(|t| with_mode_tables || !t.utxo_mode_only())
        .map(|t| ix.index.store.dump(t).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_switch_both_ways_and_match_fresh_indexes() {
    let src = Arc::new(MemorySource::default());
    // A branch longer by 5.
    let (mut main_chain, mut utxos, branch) = main_and_branch(&src, 30, 14);

    for mode in [PrevoutMode::Spenttxouts, PrevoutMode::Utxo] {
        let dir = tempfile::tempdir().unwrap();
        // Undo window of 3 blocks: the 10-block reorg needs the source's spent outputs.
        let mut ix = indexer(dir.path(), src.clone(), mode, 3);
        *src.best.lock().unwrap() = main_chain.clone();
        ix.sync().await.unwrap();
        assert_eq!(ix.index.tip().hash, main_chain.last().copied());
        let on_main = rows(&ix, true);

        *src.best.lock().unwrap() = branch.clone();
        ix.sync().await.unwrap();
        assert_eq!(ix.index.tip().height, Some(34));
        let fresh_dir = tempfile::tempdir().unwrap();
        let mut fresh = indexer(fresh_dir.path(), src.clone(), mode, 3);
        fresh.sync().await.unwrap();
        assert_eq!(rows(&ix, true), rows(&fresh, true), "{mode:?}: after switching to the branch");

        // And back: the main chain wins again once it is longer.
        extend(&src, &mut main_chain, &mut utxos, 6, 0);
        *src.best.lock().unwrap() = main_chain.clone();
        ix.sync().await.unwrap();
        assert_eq!(ix.index.tip().hash, main_chain.last().copied());
        let back = rows(&ix, true);
        let fresh_dir = tempfile::tempdir().unwrap();
        let mut fresh = indexer(fresh_dir.path(), src.clone(), mode, 3);
        fresh.sync().await.unwrap();
        assert_eq!(back, rows(&fresh, true), "{mode:?}: back on the main chain");
        assert_ne!(on_main, back);
        main_chain.truncate(30);
        utxos.clear();
        let scratch = MemorySource::default();
        let mut replay = Vec::new();
        extend(&scratch, &mut replay, &mut utxos, 30, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_modes_write_the_same_rows() {
    let src = Arc::new(MemorySource::default());
    let mut chain = Vec::new();
    extend(&src, &mut chain, &mut Vec::new(), 25, 7);
    *src.best.lock().unwrap() = chain;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut x = indexer(a.path(), src.clone(), PrevoutMode::Spenttxouts, 100);
    let mut y = indexer(b.path(), src.clone(), PrevoutMode::Utxo, 100);
    x.sync().await.unwrap();
    y.sync().await.unwrap();
    assert_eq!(rows(&x, false), rows(&y, false));
    assert!(!y.index.store.dump(Table::Utxo).unwrap().is_empty());
    assert!(x.index.store.dump(Table::Utxo).unwrap().is_empty());
}

/// In utxo mode each chunk reads the outputs of the one before while that one's commit is
/// still being written: indexed in chunks of 1, 2 and 4 blocks or all at once, every table is
/// the same, the `utxo` table included (an output created in one chunk and spent in the next
/// is deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_overlapping_the_next_chunk_leave_the_same_tables() {
    let src = Arc::new(MemorySource::default());
    let mut chain = Vec::new();
    extend(&src, &mut chain, &mut Vec::new(), 40, 11);
    *src.best.lock().unwrap() = chain.clone();
    let mut tables = Vec::new();
    for chunk_blocks in [1, 2, 4, u32::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Network::Regtest, &StoreConfig { cache_mb: 16 }).unwrap();
        store.set_mode(PrevoutMode::Utxo).unwrap();
        let index = Arc::new(Index::new(store).unwrap());
        let config = IndexConfig { chunk_blocks, bulk_threshold: 10, undo_depth: 100, ..IndexConfig::default() };
        let mut ix = Indexer::new(index, src.clone(), PrevoutMode::Utxo, config, StopSignal::default());
        ix.sync().await.unwrap();
        assert_eq!(ix.index.tip().hash, chain.last().copied());
        tables.push(rows(&ix, true));
    }
    let utxo = Table::ALL.iter().position(|t| *t == Table::Utxo).unwrap();
    assert!(!tables[0][utxo].is_empty());
    for (i, t) in tables.iter().enumerate().skip(1) {
        assert_eq!(t, &tables[0], "chunking {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_prevout_is_an_error_not_a_wrong_index() {
    let src = Arc::new(MemorySource::default());
    let mut chain = Vec::new();
    extend(&src, &mut chain, &mut Vec::new(), 8, 3);
    *src.best.lock().unwrap() = chain.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut ix = indexer(dir.path(), src.clone(), PrevoutMode::Utxo, 100);
    ix.sync().await.unwrap();
    // Delete a coin behind the indexer's back, then extend: resolving must fail loudly.
    let store = &ix.index.store;
    let mut batch = store.batch(ix.index.tip().tx_count);
    for (k, _) in store.dump(Table::Utxo).unwrap() {
        batch.delete_utxo(&k).unwrap();
    }
    batch.set_tip(store.tip().unwrap());
    store.commit(batch, Durability::Synced).unwrap();
    let mut more = chain.clone();
    let mut u = Vec::new();
    let scratch = MemorySource::default();
    extend(&scratch, &mut Vec::new(), &mut u, 8, 3);
    extend(&src, &mut more, &mut u, 2, 3);
    *src.best.lock().unwrap() = more;
    assert!(matches!(ix.sync().await, Err(IndexError::MissingPrevout { .. })));
}

/// An output from an earlier chunk spent twice (a chain no node would accept): by two
/// transactions of one block, the second input finds nothing; by two blocks of one chunk, both
/// find it (it leaves the store with the chunk's commit), and the commit refuses the chunk. In
/// either case nothing of it is indexed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_spent_twice_is_an_error() {
    let src = Arc::new(MemorySource::default());
    let mut chain = Vec::new();
    let mut utxos = Vec::new();
    extend(&src, &mut chain, &mut utxos, 12, 3);
    *src.best.lock().unwrap() = chain.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut ix = indexer(dir.path(), src.clone(), PrevoutMode::Utxo, 100);
    ix.sync().await.unwrap();
    assert_eq!(ix.index.tip().height, Some(11));
    let (outpoint, coin) = utxos[0].clone();
    let spend = |n: u64| Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(1000), script_pubkey: script(n) }],
    };
    // Every coin of those blocks is in the store now. The spends of each new block (one chunk:
    // `chunk_blocks` is 4); the last case, once, is fine.
    for blocks in [vec![2], vec![1, 1], vec![1]] {
        let mut more = chain.clone();
        for (b, spends) in blocks.iter().enumerate() {
            let salt = 100 * b as u64 + spends;
            let height = more.len() as u32;
            let txs = std::iter::once(coinbase(height, salt)).chain((0..*spends).map(|n| spend(salt + n))).collect();
            let spent: Vec<Vec<TxOut>> =
                std::iter::once(Vec::new()).chain((0..*spends).map(|_| vec![coin.clone()])).collect();
            add_block(&src, &mut more, txs, &spent, salt);
        }
        *src.best.lock().unwrap() = more;
        let synced = ix.sync().await;
        match blocks[..] {
            [2] => assert!(matches!(synced, Err(IndexError::MissingPrevout { .. })), "{synced:?}"),
            [1, 1] => {
                let e = synced.unwrap_err();
                assert!(matches!(e, IndexError::SpentTwice(_)), "{e:?}");
                let txid = outpoint.txid.to_string();
                let said = format!("output {} of the transaction whose txid ends in {}", outpoint.vout, &txid[32..]);
                assert!(e.to_string().contains(&said), "{e}");
            }
            _ => synced.unwrap(),
        }
        let indexed = if blocks == [1] { 12 } else { 11 };
        assert_eq!(ix.index.tip().height, Some(indexed), "{blocks:?}");
        assert_eq!(ix.index.store.tip().map(|t| t.height), Some(indexed), "{blocks:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syncing_node_is_indexed_in_bulk_chunks_but_never_presented_as_current() {
    let src = Arc::new(MemorySource::default());
    let mut chain = Vec::new();
    let mut utxos = Vec::new();
    // bulk_threshold is 10 (see `indexer`).
    extend(&src, &mut chain, &mut utxos, 6, 5);
    *src.best.lock().unwrap() = chain.clone();
    *src.syncing.lock().unwrap() = Some(900);
    let dir = tempfile::tempdir().unwrap();
    let mut ix = indexer(dir.path(), src.clone(), PrevoutMode::Utxo, 100);

    // Fewer blocks than a bulk chunk: the indexer waits for the node to get further.
    ix.sync().await.unwrap();
    assert_eq!(ix.index.tip().height, None);
    let status = ix.index.status();
    assert!(status.node_syncing && !status.caught_up);
    assert_eq!(
        status.unavailable().unwrap(),
        "bitcoind is still syncing: height 5 of about 900 (50.0% verified); try again later"
    );

    // A bulk chunk's worth: indexed up to the node's tip, still not presented as current.
    extend(&src, &mut chain, &mut utxos, 20, 5);
    *src.best.lock().unwrap() = chain.clone();
    ix.sync().await.unwrap();
    assert_eq!(ix.index.tip().height, Some(25));
    let status = ix.index.status();
    assert!(!status.caught_up);
    assert!(status.unavailable().unwrap().starts_with("bitcoind is still syncing: height 25 of about 900"));
    assert!(ix.index.store.is_bulk(), "bulk mode is kept while the node syncs: no compaction yet");

    // A few more blocks: below a chunk, waited for.
    extend(&src, &mut chain, &mut utxos, 3, 5);
    *src.best.lock().unwrap() = chain.clone();
    ix.sync().await.unwrap();
    assert_eq!(ix.index.tip().height, Some(25));

    // The node is done: the rest is indexed and wallets are answered.
    *src.syncing.lock().unwrap() = None;
    ix.sync().await.unwrap();
    assert_eq!(ix.index.tip().hash, chain.last().copied());
    let status = ix.index.status();
    assert!(status.caught_up && !status.node_syncing);
    assert_eq!(status.unavailable(), None);
    assert!(!ix.index.store.is_bulk());

    // Same rows as an index built from the finished chain.
    let fresh_dir = tempfile::tempdir().unwrap();
    let mut fresh = indexer(fresh_dir.path(), src.clone(), PrevoutMode::Utxo, 100);
    fresh.sync().await.unwrap();
    assert_eq!(rows(&ix, true), rows(&fresh, true));

    // A node that falls back into initial block download (restarted after a long time off)
    // is not presented as current either, though the index had caught up.
    *src.syncing.lock().unwrap() = Some(1000);
    ix.sync().await.unwrap();
    assert!(ix.index.status().unavailable().unwrap().starts_with("bitcoind is still syncing"));
}
