//! The cache of busy scripts' answers against the index it reads, driven from recorded chains
//! with branches (the index's own test chains).

use std::collections::HashMap as Map;
use std::sync::Arc;

use crate::index::tests::{extend, index_of, indexer, main_and_branch, script, MemorySource};
use crate::store::PrevoutMode;
use crate::types::ScriptHash;

use super::{History, Query, ScriptCacheConfig};

/// The cache of busy scripts' answers, kept by one `Query` through new blocks and switches of
/// branch, answers exactly what a `Query` without it computes from all rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_answers_equal_fresh_ones_through_new_blocks_and_reorgs() {
    let src = Arc::new(MemorySource::default());
    let (mut main_chain, mut utxos, branch) = main_and_branch(&src, 25, 10);

    let dir = tempfile::tempdir().unwrap();
    let mut ix = indexer(dir.path(), src.clone(), PrevoutMode::Spenttxouts, 3);
    let index = index_of(&ix);
    let cached = Query::with_cache(index.clone(), ScriptCacheConfig { bytes: 1 << 30, min_rows: 0 });
    let fresh = Query::with_cache(index.clone(), ScriptCacheConfig { bytes: 0, min_rows: 0 });
    let scripts: Vec<ScriptHash> = (0..7).map(|n| ScriptHash::of_script(script(n).as_bytes())).collect();
    let check = |when: &str| {
        for sh in &scripts {
            let (a, b) = (cached.script(sh, &Map::new()).unwrap(), fresh.script(sh, &Map::new()).unwrap());
            assert!(!b.history.is_empty(), "{when}: every script has a history");
            assert_eq!(a.history, b.history, "{when}: history");
            assert_eq!(a.unspent, b.unspent, "{when}: unspent outputs");
            assert_eq!(a.balance, b.balance, "{when}: balance");
            assert_eq!(a.rows, b.rows, "{when}: rows");
            // The history alone, and as written out: the kept one's text is written once and
            // brought forward with its entry (it was written at the previous check).
            let written = |q: &Query| {
                let confirmed = q.history(sh).unwrap();
                let (rows, txs) = (confirmed.rows(), confirmed.txs().to_vec());
                let history = History { confirmed, mempool: Vec::new() };
                (rows, txs, history.json(), history.status())
            };
            let (kept, read) = (written(&cached), written(&fresh));
            assert_eq!(kept, read, "{when}: history alone, written out");
            assert_eq!(kept.1, b.history, "{when}: history alone and in the summary");
        }
    };

    *src.best.lock().unwrap() = main_chain.clone();
    ix.sync().await.unwrap();
    check("first read");
    let first = cached.cache_stats();
    assert_eq!((first.entries, first.misses), (7, 7), "each script read whole once, then kept");
    assert!(fresh.cache_stats().entries == 0 && fresh.cache_stats().hits == 0);

    // New blocks: every answer brought forward from the kept one, none read whole again.
    for _ in 0..3 {
        extend(&src, &mut main_chain, &mut utxos, 2, 0);
        *src.best.lock().unwrap() = main_chain.clone();
        ix.sync().await.unwrap();
        check("after new blocks");
    }
    let forward = cached.cache_stats();
    assert_eq!(forward.misses, first.misses, "brought forward, not read whole");
    assert!(forward.hits > first.hits);

    // A switch to a longer branch undoes blocks: the kept answers are not used again.
    *src.best.lock().unwrap() = branch.clone();
    ix.sync().await.unwrap();
    assert_eq!(index.tip().hash, branch.last().copied());
    check("on the branch");
    assert_eq!(cached.cache_stats().misses, forward.misses + 7, "read whole after the reorg");

    // And back to the main chain, made longer again.
    extend(&src, &mut main_chain, &mut utxos, 6, 0);
    *src.best.lock().unwrap() = main_chain.clone();
    ix.sync().await.unwrap();
    assert_eq!(index.tip().hash, main_chain.last().copied());
    check("back on the main chain");
}
