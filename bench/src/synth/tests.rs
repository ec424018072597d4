//! The synthetic chain against a real node: the node accepts its blocks (under
//! `-assumevalid`, which skips script checks only), serves the same spent outputs, and Ferrum
//! indexes the same rows from either, in both prevout modes.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash;
use ferrum::{
    Auth, BlockSource, Daemon, DaemonConfig, DaemonSource, Index, IndexConfig, Indexer, Network, PrevoutMode, RawRow,
    StopSignal, Store, StoreConfig,
};
use serde_json::json;
use testkit::Node;

use super::source::SynthSource;
use super::stream::{read_frame, write_frame};
use super::{Frame, Shape, Synth, NODE_WEIGHT};
use crate::chaingen::{node_options, REGTEST_HALVING};

/// Blocks with transactions to height 260, then empty ones: a node skips the scripts of a block
/// only under two weeks' worth of blocks (2,016 on regtest) on top of it.
const SHAPE: Shape =
    Shape { txs_per_block: (20, 60), empty_from: 261, halving: REGTEST_HALVING, max_weight: NODE_WEIGHT };
const BLOCKS: u32 = 2_281;

fn frames(seed: u64, shape: Shape, count: u32) -> Vec<Frame> {
    let mut synth = Synth::new(seed, shape);
    (0..count).map(|_| synth.next_block().unwrap()).collect()
}

fn stream(frames: &[Frame]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for f in frames {
        write_frame(&mut bytes, f).unwrap();
    }
    bytes
}

#[test]
fn deterministic_by_seed_and_framed_losslessly() {
    let shape =
        Shape { txs_per_block: (200, 400), empty_from: u32::MAX, halving: REGTEST_HALVING, max_weight: u64::MAX };
    let a = stream(&frames(3, shape, 180));
    assert_eq!(a, stream(&frames(3, shape, 180)), "same seed, same blocks");
    assert_ne!(a, stream(&frames(4, shape, 180)), "another seed, another chain");
    let mut read = Cursor::new(&a);
    let mut txs = 0;
    let mut heights = Vec::new();
    while let Some(f) = read_frame(&mut read).unwrap() {
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&f.block).unwrap();
        assert_eq!(block.block_hash(), f.hash);
        assert_eq!(block.txdata.len() as u32, f.txs);
        assert!(block.check_merkle_root() && block.check_witness_commitment());
        txs += f.txs;
        heights.push(f.height);
    }
    assert_eq!(heights, (1..=180).collect::<Vec<_>>());
    // Coinbases mature after 100 blocks, then the chain fills up to the shape's size.
    assert!(txs > 80 * 200, "{txs} transactions");
    // A stream cut inside a frame ends in an error, not in a short chain.
    let mut cut = Cursor::new(&a[..a.len() - 1]);
    let mut whole = 0;
    let end = loop {
        match read_frame(&mut cut) {
            Ok(Some(_)) => whole += 1,
            other => break other,
        }
    };
    assert!(end.is_err() && whole == 179, "{whole} frames, then {:?}", end.map(|f| f.map(|f| f.height)));
}

fn daemon_config(node: &Node) -> DaemonConfig {
    DaemonConfig {
        network: Network::Regtest,
        rpc_addr: node.rpc_addr(),
        auth: Auth::Cookie(node.cookie_file()),
        fallbacks: Vec::new(),
        timeout: Duration::from_secs(60),
    }
}

/// An index of `source`'s chain made by Ferrum's indexer in `mode`: its rows. One runtime
/// throughout: the node client's connections live on the runtime that opened them.
fn index<S: BlockSource>(
    runtime: &tokio::runtime::Runtime,
    source: Arc<S>,
    mode: PrevoutMode,
) -> Vec<(&'static str, Vec<RawRow>)> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Network::Regtest, &StoreConfig { cache_mb: 64 }).unwrap();
    store.set_mode(mode).unwrap();
    let index = Arc::new(Index::new(store).unwrap());
    let mut indexer = Indexer::new(index.clone(), source, mode, IndexConfig::default(), StopSignal::default());
    runtime.block_on(indexer.sync()).unwrap();
    assert_eq!(index.tip().height, Some(BLOCKS));
    index.store().dump_tables(true).unwrap()
}

#[test]
fn a_node_serves_the_same_chain_and_ferrum_indexes_the_same_rows() {
    let frames = frames(11, SHAPE, BLOCKS);
    let last = frames.last().unwrap().hash;
    let node = Node::start(node_options(true, false, &[&format!("-assumevalid={last}")])).unwrap();
    for f in &frames {
        let reply = node.call("submitheader", json!([hex::encode(&f.block[..80])])).unwrap();
        assert!(reply.is_null(), "header {}: {reply}", f.height);
    }
    for f in &frames {
        let reply = node.call("submitblock", json!([hex::encode(&f.block)])).unwrap();
        assert!(reply.is_null(), "block {}: {reply}", f.height);
    }
    assert_eq!(node.tip().unwrap(), last);
    let txs: u32 = frames.iter().map(|f| f.txs).sum();
    assert!(txs > 5_000, "{txs} transactions");

    let daemon = Arc::new(Daemon::new(&daemon_config(&node)));
    let node_source = Arc::new(DaemonSource { daemon, rest_blocks: true, rest_spent: true });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for f in &frames {
        let hash = ferrum::types::BlockHash(f.hash.to_byte_array());
        let spent = runtime.block_on(node_source.spent_outputs(hash)).unwrap();
        assert_eq!(spent, f.spent, "spent outputs of block {}", f.height);
    }

    let bytes = stream(&frames);
    for mode in [PrevoutMode::Spenttxouts, PrevoutMode::Utxo] {
        let synth_source = if mode == PrevoutMode::Spenttxouts {
            // A buffer of a few blocks: the reader waits for the indexer as it does at scale.
            SynthSource::spawn(Cursor::new(bytes.clone()), 64 << 10, true)
        } else {
            // The whole chain read before indexing, so the source reports its real tip from the
            // start, as the node does: utxo mode keeps undo rows for the last 200 blocks below the
            // tip it is told, and while a stream runs, that tip is a promise further on.
            let source = SynthSource::spawn(Cursor::new(bytes.clone()), usize::MAX, false);
            while source.ended().is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            source
        };
        let ours = index(&runtime, synth_source, mode);
        let theirs = index(&runtime, node_source.clone(), mode);
        assert!(ours.iter().any(|(name, rows)| *name == "script" && rows.len() > 10_000));
        for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
            assert!(
                a == b,
                "{} mode, table {name}: {} rows from the stream, {} from the node",
                mode.name(),
                a.len(),
                b.len()
            );
        }
        assert_eq!(ours.len(), theirs.len());
    }
}

#[test]
fn a_synthetic_preset_on_a_node_holds_what_its_manifest_says() {
    use std::collections::HashMap;

    use bitcoin::consensus::{deserialize, Decodable};
    use bitcoin::{Block, TxOut, VarInt};

    use crate::chaingen::Preset;

    let preset = Preset { name: "synthetic-test".into(), txs: 4_000, blocks: 0, hot: Vec::new(), synthetic: true };
    let shape = Shape { empty_from: u32::MAX, ..SHAPE };
    let dir = tempfile::tempdir().unwrap();
    let m = super::chain::build(&preset, 5, shape, dir.path()).unwrap();

    // The node holds the chain the manifest names.
    let node = Node::start_in(dir.path(), node_options(false, false, &[])).unwrap();
    assert_eq!(node.tip().unwrap().to_string(), m.tip);
    assert_eq!(node.height().unwrap(), m.height);
    let stats = node.call("getchaintxstats", json!([])).unwrap();
    assert_eq!(stats["txcount"].as_u64().unwrap(), m.txs + 1, "{stats}");
    // At most one block past the target, then the tail's coinbases.
    let tail = u64::from(super::chain::EMPTY_TAIL);
    assert!(m.txs >= preset.txs + tail && m.txs <= preset.txs + 60 + tail, "{} transactions", m.txs);

    // Every figure of the manifest, counted again from the blocks and their spent outputs.
    let mut touches: HashMap<String, u64> = HashMap::new();
    let (mut inputs, mut outputs, mut bytes, mut last_with_txs) = (0, 0, 0, 0);
    super::chain::generate(5, shape, preset.txs, false, |f| {
        let block: Block = deserialize(&f.block).unwrap();
        // `/rest/spenttxouts` form: a count of transactions, then each one's spent outputs.
        let mut r = &f.spent[..];
        let count = VarInt::consensus_decode(&mut r).unwrap().0;
        let spent: Vec<Vec<TxOut>> = (0..count).map(|_| Vec::<TxOut>::consensus_decode(&mut r).unwrap()).collect();
        assert!(r.is_empty());
        assert_eq!(spent.len(), block.txdata.len());
        if block.txdata.len() > 1 {
            last_with_txs = f.height;
        }
        for (tx, prevouts) in block.txdata.iter().zip(&spent) {
            let mut scripts: Vec<String> = tx
                .output
                .iter()
                .chain(prevouts)
                .filter(|o| !o.script_pubkey.is_op_return())
                .map(|o| testkit::scripthash(&o.script_pubkey))
                .collect();
            scripts.sort();
            scripts.dedup();
            for s in scripts {
                *touches.entry(s).or_default() += 1;
            }
            inputs += tx.input.len() as u64;
            outputs += tx.output.len() as u64;
        }
        bytes += f.block.len() as u64;
        Ok(())
    })
    .unwrap();
    assert_eq!((m.inputs, m.outputs, m.block_bytes), (inputs, outputs, bytes));
    assert_eq!(m.height - last_with_txs, super::chain::EMPTY_TAIL);
    for p in &m.probes {
        assert_eq!(touches.get(&p.scripthash).copied(), Some(p.txs), "probe {}", p.scripthash);
    }
    assert_eq!(m.probes.first().unwrap().txs, 1, "{:?}", m.probes);
    assert!(m.probes.last().unwrap().txs > 100, "{:?}", m.probes);
    assert!(!m.wallets.is_empty());
    for wallet in &m.wallets {
        assert_eq!(wallet.len(), 1000);
        for s in wallet {
            assert!((1..=3).contains(&touches[s]), "wallet address {s}: {} transactions", touches[s]);
        }
    }
    let mut buckets = [0u64; 5];
    for &t in touches.values() {
        buckets[match t {
            1 => 0,
            2 => 1,
            3..=10 => 2,
            11..=100 => 3,
            _ => 4,
        }] += 1;
    }
    assert_eq!(m.address_use.iter().map(|(_, c)| *c).collect::<Vec<_>>(), buckets);
    let kinds: u64 = m.output_kinds.iter().map(|(_, c)| *c).sum();
    // Coinbase outputs are the miners' (p2wpkh) and the witness commitment (an OP_RETURN).
    assert_eq!(kinds + 2 * u64::from(m.height), outputs);
}

#[test]
fn blocks_for_a_node_stay_under_its_weight_limit() {
    use bitcoin::consensus::deserialize;

    // More transactions a block than fit: the weight, not the count, ends the block.
    let mut synth = Synth::new(3, Shape { txs_per_block: (6_000, 8_000), empty_from: u32::MAX, ..SHAPE });
    let mut heaviest = 0;
    for _ in 0..130 {
        let f = synth.next_block().unwrap();
        let block: bitcoin::Block = deserialize(&f.block).unwrap();
        let weight = block.weight().to_wu();
        assert!(weight <= 4_000_000, "block {}: weight {weight}", f.height);
        if weight > heaviest {
            heaviest = weight;
        }
    }
    assert!(heaviest >= NODE_WEIGHT, "the heaviest block weighs {heaviest}: the limit was never reached");
}
