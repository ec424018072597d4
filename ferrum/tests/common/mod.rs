//! What only Ferrum's own integration tests can do, next to testkit's harness: name this build's
//! `ferrum` binary, run Ferrum's indexer in-process against a real node, check an index's
//! answers against the node's data (the truth), and compare indexes table by table.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferrum::{
    merkle,
    types::{ScriptHash, Txid},
    Auth, Daemon, DaemonConfig, DaemonSource, Index, IndexConfig, Indexer, Network, PrevoutMode, Query, RawRow,
    StopSignal, Store, StoreConfig,
};
use testkit::chain::truth::Truth;
use testkit::Node;

/// How a ferrum reaches `node` (through its Core 29 front when it has one).
pub fn daemon_config(node: &Node) -> DaemonConfig {
    DaemonConfig { rpc_addr: node.rpc_addr(), ..direct_daemon_config(node) }
}

/// The node's own RPC port, bypassing a Core 29 front.
pub fn direct_daemon_config(node: &Node) -> DaemonConfig {
    DaemonConfig {
        network: Network::Regtest,
        rpc_addr: node.bitcoind_rpc_addr(),
        auth: Auth::Cookie(node.cookie_file()),
        fallbacks: Vec::new(),
        timeout: Duration::from_secs(60),
    }
}

/// Ferrum's indexer, in this process, on a real node.
pub struct InProcess {
    pub runtime: tokio::runtime::Runtime,
    pub index: Arc<Index>,
    pub indexer: Indexer<DaemonSource>,
}

impl InProcess {
    /// `rest`: read blocks and spent outputs over REST (the node must have it); otherwise RPC.
    /// Reads the node directly, bypassing a Core 29 front.
    pub fn new(node: &Node, dir: &Path, mode: PrevoutMode, rest: bool, config: IndexConfig) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = Store::open(dir, Network::Regtest, &StoreConfig { cache_mb: 64 }).unwrap();
        if store.mode().is_none() {
            store.set_mode(mode).unwrap();
        }
        let index = Arc::new(Index::new(store).unwrap());
        let daemon = Arc::new(Daemon::new(&direct_daemon_config(node)));
        let source = Arc::new(DaemonSource { daemon, rest_blocks: rest, rest_spent: rest });
        let indexer = Indexer::new(index.clone(), source, mode, config, StopSignal::default());
        InProcess { runtime, index, indexer }
    }

    /// Set up as `ferrum` sets itself up: the node probed, the prevout mode chosen from what it
    /// offers (`--prevout-mode auto`), blocks and spent outputs read over the interfaces it has.
    pub fn probed(node: &Node, dir: &Path, config: IndexConfig) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let daemon = Arc::new(Daemon::new(&daemon_config(node)));
        let info = runtime.block_on(daemon.probe()).unwrap();
        let store = Store::open(dir, Network::Regtest, &StoreConfig { cache_mb: 64 }).unwrap();
        let mode = ferrum::choose_mode(&store, &info, None).unwrap();
        let index = Arc::new(Index::new(store).unwrap());
        let source = Arc::new(DaemonSource { daemon, rest_blocks: info.rest, rest_spent: info.spenttxouts });
        let indexer = Indexer::new(index.clone(), source, mode, config, StopSignal::default());
        InProcess { runtime, index, indexer }
    }

    pub fn sync(&mut self) {
        let indexer = &mut self.indexer;
        self.runtime.block_on(indexer.sync()).unwrap();
    }

    pub fn query(&self) -> Query {
        Query::new(self.index.clone())
    }
}

/// Checks every answer of the index against the node's own data.
pub fn check_truth(query: &Query, truth: &Truth) {
    let tip = query.index().tip();
    assert_eq!(tip.height, truth.blocks.last().map(|b| b.height), "index height");
    assert_eq!(tip.hash.map(|h| h.to_hex()), truth.blocks.last().map(|b| b.hash.to_string()), "index tip");
    for (sh_hex, expected) in &truth.scripts {
        let sh = ScriptHash::from_hex(sh_hex).unwrap();
        let got = query.script(&sh, &HashMap::new()).unwrap();
        assert!(got.ambiguous.is_empty());
        let history: Vec<(u32, String)> = got.history.iter().map(|h| (h.height, h.txid.to_hex())).collect();
        let want: Vec<(u32, String)> = expected.history.iter().map(|h| (h.height, h.txid.to_string())).collect();
        assert_eq!(history, want, "history of {sh_hex} ({})", truth.script_hex[sh_hex]);
        let mut unspent: Vec<(u32, String, u32, u64)> =
            got.unspent.iter().map(|u| (u.height, u.txid.to_hex(), u.vout, u.value)).collect();
        unspent.sort();
        let mut want: Vec<(u32, String, u32, u64)> =
            expected.unspent.iter().map(|u| (u.height, u.txid.to_string(), u.vout, u.value)).collect();
        want.sort();
        assert_eq!(unspent, want, "unspent outputs of {sh_hex}");
        assert_eq!(got.balance, expected.balance, "balance of {sh_hex}");
    }
    // A script nobody used.
    let nobody = query.script(&ScriptHash::of_script(b"never used"), &HashMap::new()).unwrap();
    assert!(nobody.history.is_empty() && nobody.unspent.is_empty());

    let hashes: Vec<[u8; 32]> =
        truth.blocks.iter().map(|b| ferrum::types::BlockHash::from_hex(&b.hash.to_string()).unwrap().0).collect();
    for block in &truth.blocks {
        let txids = query.block_txids(block.height).unwrap().unwrap();
        let want: Vec<String> = block.txids.iter().map(|t| t.to_string()).collect();
        assert_eq!(txids.iter().map(|t| t.to_hex()).collect::<Vec<_>>(), want, "txids of block {}", block.height);
        let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
        assert_eq!(
            merkle::hex_display(&merkle::root(&leaves).unwrap()),
            block.merkle_root,
            "merkle root {}",
            block.height
        );
        assert_eq!(hex::encode(query.header(block.height).unwrap()), block.header_hex, "header {}", block.height);
        for (pos, txid) in block.txids.iter().enumerate() {
            let id = Txid::from_hex(&txid.to_string()).unwrap();
            let found = query.tx_position(&id).unwrap();
            if block.height == 0 {
                assert_eq!(found, None, "the genesis coinbase is not indexed");
                continue;
            }
            let (height, p, _) = found.unwrap_or_else(|| panic!("{txid} not found"));
            assert_eq!((height, p), (block.height, pos as u32), "position of {txid}");
            let branch: Vec<[u8; 32]> = query
                .merkle_branch(height, p)
                .unwrap()
                .unwrap()
                .iter()
                .map(|h| ferrum::types::Txid::from_hex(h).unwrap().0)
                .collect();
            let root = merkle::root_from_branch(id.0, pos, &branch);
            assert_eq!(merkle::hex_display(&root), block.merkle_root, "branch of {txid}");
        }
    }
    // Header proofs against roots computed here from the node's hashes.
    let tip_height = truth.blocks.len() as u32 - 1;
    for (height, cp) in
        [(0, 0), (0, tip_height), (tip_height / 2, tip_height), (tip_height, tip_height), (5, 77.min(tip_height))]
    {
        let (branch, root) = query.header_proof(height, cp).unwrap();
        let expected_root = merkle::root(&hashes[..=cp as usize]).unwrap();
        assert_eq!(root, merkle::hex_display(&expected_root));
        let branch: Vec<[u8; 32]> = branch.iter().map(|h| ferrum::types::BlockHash::from_hex(h).unwrap().0).collect();
        assert_eq!(merkle::root_from_branch(hashes[height as usize], height as usize, &branch), expected_root);
    }
    assert!(query.header_proof(tip_height, tip_height + 1).is_none());
}

/// Every table of an index, by name.
pub type Dump = Vec<(&'static str, Vec<RawRow>)>;

/// The rows of an index that must not depend on how it was built (the `utxo` and `undo`
/// tables exist in one mode only; `meta` records the mode).
pub fn dump_rows(dir: &Path) -> Dump {
    let store = Store::open_read_only(dir, Network::Regtest, &StoreConfig { cache_mb: 16 }).unwrap();
    store.dump_tables(false).unwrap()
}

/// Like [`dump_rows`] but with the mode-specific tables too, for comparing two indexes of
/// the same mode.
pub fn dump_all(dir: &Path) -> Dump {
    let store = Store::open_read_only(dir, Network::Regtest, &StoreConfig { cache_mb: 16 }).unwrap();
    store.dump_tables(true).unwrap()
}

/// An index of the node's chain built in this process from scratch, for comparisons.
pub fn clean_index(node: &Node, mode: PrevoutMode) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let mut ix = if node.options().core29 && mode == PrevoutMode::Utxo {
        // Over the interfaces Core 29 has.
        InProcess::probed(node, &path, IndexConfig::default())
    } else {
        InProcess::new(node, &path, mode, true, IndexConfig::default())
    };
    assert_eq!(ix.index.store().mode(), Some(mode));
    ix.sync();
    dir
}

/// Compares two dumps table by table with a readable failure.
pub fn assert_same_rows(a: &[(&'static str, Vec<RawRow>)], b: &[(&'static str, Vec<RawRow>)]) {
    assert_eq!(a.len(), b.len());
    for ((name, ra), (_, rb)) in a.iter().zip(b) {
        if ra != rb {
            let first = ra.iter().zip(rb.iter()).position(|(x, y)| x != y).unwrap_or(ra.len().min(rb.len()));
            panic!(
                "table {name} differs: {} vs {} rows, first difference at row {first}: {:?} vs {:?}",
                ra.len(),
                rb.len(),
                ra.get(first).map(|(k, v)| (hex::encode(k), hex::encode(v))),
                rb.get(first).map(|(k, v)| (hex::encode(k), hex::encode(v)))
            );
        }
    }
}

/// This build's `ferrum`.
pub fn ferrum_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrum"))
}

/// The index height as a read-only opener sees it now (`None`: empty or not there yet).
pub fn stored_height(db_dir: &Path) -> Option<u32> {
    let store = Store::open_read_only(&db_dir.join("index"), Network::Regtest, &StoreConfig { cache_mb: 16 }).ok()?;
    store.tip().map(|t| t.height)
}
