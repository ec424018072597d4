//! A synthetic chain on a real node: the side-by-side benchmark's chain at a scale that
//! chaingen's signed transactions cannot reach in reasonable time (`--preset 10m`).
//!
//! The node takes the generator's blocks under `-assumevalid` set to the chain's tip, which skips
//! script checks only: every other rule (amounts, spends of existing outputs, BIP34, the witness
//! commitment, weight, sigops) is checked as for any block. A node skips the scripts of a block
//! only under two weeks' worth of headers on top of it, so the headers go first
//! (`submitheader`), then the blocks, and the chain ends in [`EMPTY_TAIL`] blocks of only a
//! coinbase. The generator runs twice, which costs seconds, not the gigabytes of keeping blocks:
//! once for the headers and the manifest, once, on a thread of its own, for the blocks.

use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bitcoin::hex::DisplayHex;
use bitcoin::BlockHash;
use serde_json::json;
use testkit::chain::rng::Rng;
use testkit::Node;

use super::{Frame, Shape, Synth, Tally, NODE_WEIGHT};
use crate::chaingen::shape::KIND_NAMES;
use crate::chaingen::{node_options, Manifest, Preset, Probe, GENERATOR_VERSION, REGTEST_HALVING};

/// Blocks of only a coinbase at the chain's end: more than regtest's two weeks (2,016 blocks).
pub const EMPTY_TAIL: u32 = 2_020;

/// The blocks: mainnet's mix at 1,000 to 2,400 transactions a block (fewer where the weight
/// limit comes first), and regtest's halvings, which the node enforces.
pub const SHAPE: Shape =
    Shape { txs_per_block: (1_000, 2_400), empty_from: u32::MAX, halving: REGTEST_HALVING, max_weight: NODE_WEIGHT };

/// Runs the generator of `seed` to `txs` transactions (genesis not counted), then the empty
/// tail, handing each block to `each`.
pub(super) fn generate(
    seed: u64,
    shape: Shape,
    txs: u64,
    tally: bool,
    mut each: impl FnMut(Frame) -> Result<()>,
) -> Result<Synth> {
    let mut synth = Synth::new(seed, shape);
    if tally {
        synth.keep_tally();
    }
    let mut empty_left = None;
    loop {
        if empty_left.is_none() && synth.transactions() > txs {
            synth.stop_transactions();
            empty_left = Some(EMPTY_TAIL);
        }
        match &mut empty_left {
            Some(0) => return Ok(synth),
            Some(n) => *n -= 1,
            None => {}
        }
        each(synth.next_block()?)?;
    }
}

/// Builds `preset`'s synthetic chain of `seed` into the node data directory `datadir` and says
/// what it holds. The node's transaction indexes are the caller's.
pub fn build(preset: &Preset, seed: u64, shape: Shape, datadir: &std::path::Path) -> Result<Manifest> {
    let started = Instant::now();
    let mut headers: Vec<(BlockHash, [u8; 80])> = Vec::new();
    let synth = generate(seed, shape, preset.txs, true, |f| {
        let mut header = [0u8; 80];
        header.copy_from_slice(&f.block[..80]);
        headers.push((f.hash, header));
        Ok(())
    })?;
    let Some(&(tip, _)) = headers.last() else { bail!("the generator made no block") };
    eprintln!(
        "chaingen: {} generated {} blocks, {} transactions, {:.0} s",
        preset.name,
        headers.len(),
        synth.transactions() - 1,
        started.elapsed().as_secs_f64()
    );

    let assumevalid = format!("-assumevalid={tip}");
    let mut node = Node::start_in(datadir, node_options(false, false, &[&assumevalid, "-dbcache=2048"]))?;
    for (height, (_, header)) in headers.iter().enumerate() {
        let reply = node.call("submitheader", json!([header.to_lower_hex_string()]))?;
        if !reply.is_null() {
            bail!("the node refused header {}: {reply}", height + 1);
        }
    }
    // The blocks, made again on a thread of their own while the node checks the previous ones.
    let (tx, rx) = mpsc::sync_channel::<Frame>(4);
    let txs = preset.txs;
    let producer = std::thread::spawn(move || generate(seed, shape, txs, false, |f| Ok(tx.send(f)?)).map(|_| ()));
    let mut count = 0usize;
    let mut block_bytes = 0u64;
    for f in rx {
        let Some((hash, _)) = headers.get(count) else { bail!("the generator made more blocks the second time") };
        if f.hash != *hash {
            bail!("block {} differs from the first run's: the generator is not deterministic", f.height);
        }
        let reply = node.call("submitblock", json!([f.block.to_lower_hex_string()]))?;
        if !reply.is_null() {
            bail!("the node refused block {}: {reply}", f.height);
        }
        count += 1;
        block_bytes += f.block.len() as u64;
        if count.is_multiple_of(500) {
            eprintln!(
                "chaingen: {} block {count}/{}, {:.0} MB, {:.0} s",
                preset.name,
                headers.len(),
                block_bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    }
    producer.join().map_err(|_| anyhow::anyhow!("the generator's thread panicked"))??;
    if count != headers.len() {
        bail!("the generator made {count} blocks the second time, {} the first", headers.len());
    }
    if node.tip()? != tip {
        bail!("the node's tip is not the last block submitted");
    }
    node.stop().context("stopping the node")?;
    Ok(manifest(preset, seed, &synth, tip, started.elapsed().as_secs_f64()))
}

/// The manifest of a generated chain, from the generator's tally.
fn manifest(preset: &Preset, seed: u64, synth: &Synth, tip: BlockHash, build_seconds: f64) -> Manifest {
    let empty = Tally::default();
    let tally = synth.tally().unwrap_or(&empty);
    let touches = |a: u32| tally.touches.get(a as usize).copied().unwrap_or(0);
    let address_use = crate::chaingen::address_use(&tally.touches);
    let probe = |a: u32| Probe { scripthash: testkit::scripthash(&synth.script(a)), txs: u64::from(touches(a)) };
    let (hot, miners) = synth.hot_and_miners();
    let mut probes: Vec<Probe> = hot.iter().map(|&a| probe(a)).collect();
    // An address used by exactly one transaction, a mining pool's, and the busiest of the long
    // tail.
    if let Some(a) = (0..tally.touches.len() as u32).rev().find(|&a| touches(a) == 1) {
        probes.push(probe(a));
    }
    probes.extend(miners.first().map(|&a| probe(a)));
    if let Some(&a) = synth.reusable().iter().max_by_key(|&&a| (touches(a), std::cmp::Reverse(a))) {
        probes.push(probe(a));
    }
    // A short chain may not reach the rarest hot address.
    probes.retain(|p| p.txs > 0);
    probes.sort_by_key(|p| p.txs);
    let mut rng = Rng::new(seed ^ 0x7761_6c6c_6574);
    let wallets = crate::chaingen::wallets(&tally.touches, &mut rng, |a| testkit::scripthash(&synth.script(a)));
    Manifest {
        preset: preset.clone(),
        seed,
        generator: GENERATOR_VERSION,
        height: synth.height(),
        tip: tip.to_string(),
        txs: synth.transactions() - 1,
        inputs: tally.inputs,
        outputs: tally.outputs,
        block_bytes: tally.block_bytes,
        output_kinds: KIND_NAMES.iter().zip(tally.kinds).map(|(n, c)| (n.to_string(), c)).collect(),
        address_use,
        probes,
        wallets,
        build_seconds,
    }
}
