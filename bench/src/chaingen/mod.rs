//! Mainnet-shaped regtest chains for the benchmarks, deterministic by seed.
//!
//! The harness builds every block itself (coinbase, witness commitment, proof of work at
//! regtest's difficulty) from transactions it signs, and hands them to the node with
//! `submitblock`: no mempool, no wallet, so a million transactions take minutes, not hours.
//! The shape follows mainnet: mostly one or two inputs and two outputs (a payment and change),
//! some consolidations and payout batches, output scripts in mainnet's proportions, OP_RETURNs,
//! most addresses used once or twice, a long tail of reused ones, and a few exchange-like
//! addresses with tens or hundreds of thousands of transactions.
//!
//! A chain is built once into a cache directory (the node's data directory and a manifest of
//! what is in it) and reused by every later run; the node's `txindex` and `txospenderindex`
//! are built there too, since ElectrumX needs them.

mod block;
mod generator;
pub mod shape;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use testkit::{Node, NodeOptions};

pub use block::{assemble, block_on_tip, submit, subsidy, REGTEST_HALVING};
use generator::Generator;

/// Bumped whenever the generator's output changes (chaingen's, or the synthetic one's for the
/// `10m` preset), so a cached chain of an older generator is never mistaken for the current one.
pub const GENERATOR_VERSION: u32 = 3;

/// How big a chain to build.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Preset {
    pub name: String,
    /// Transactions to aim for, coinbases not counted.
    pub txs: u64,
    /// Blocks after the funding phase.
    pub blocks: u32,
    /// Exchange- or merchant-like addresses and the number of transactions each should reach.
    pub hot: Vec<u64>,
    /// Made by the synthetic generator ([`crate::synth::chain`]) with placeholder signatures,
    /// rather than signed here: `blocks` and `hot` do not apply (its blocks hold 1,000 to 2,400
    /// transactions, and its hot addresses get fixed shares of all payments).
    #[serde(default)]
    pub synthetic: bool,
}

impl Preset {
    /// About 2,000 transactions in 50 blocks: a smoke run of the whole benchmark in seconds.
    pub fn tiny() -> Preset {
        Preset { name: "tiny".into(), txs: 2_000, blocks: 50, hot: vec![500, 100], synthetic: false }
    }

    /// About 50,000 transactions in 1,000 blocks: minutes to build, for quick runs.
    pub fn small() -> Preset {
        Preset { name: "small".into(), txs: 50_000, blocks: 1_000, hot: vec![10_000, 1_000, 100], synthetic: false }
    }

    /// About 1,000,000 transactions in 20,000 blocks.
    pub fn large() -> Preset {
        Preset {
            name: "large".into(),
            txs: 1_000_000,
            blocks: 20_000,
            hot: vec![100_000, 10_000, 100],
            synthetic: false,
        }
    }

    /// About 10,000,000 transactions in about 7,000 blocks, from the synthetic generator: its
    /// addresses get about 185k, 18k and 1.8k transactions.
    pub fn ten_million() -> Preset {
        Preset { name: "10m".into(), txs: 10_000_000, blocks: 0, hot: Vec::new(), synthetic: true }
    }

    pub fn by_name(name: &str) -> Result<Preset> {
        match name {
            "tiny" => Ok(Preset::tiny()),
            "small" => Ok(Preset::small()),
            "large" => Ok(Preset::large()),
            "10m" => Ok(Preset::ten_million()),
            other => bail!("unknown preset {other:?}: tiny, small, large or 10m"),
        }
    }
}

/// An address of the chain that the benchmarks query, with how many transactions touch it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    pub scripthash: String,
    pub txs: u64,
}

/// What a cached chain holds; written next to the node's data directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub preset: Preset,
    pub seed: u64,
    pub generator: u32,
    pub height: u32,
    pub tip: String,
    /// Transactions in the chain, coinbases included.
    pub txs: u64,
    /// Inputs and outputs, coinbases included.
    pub inputs: u64,
    pub outputs: u64,
    /// Serialized size of all blocks.
    pub block_bytes: u64,
    /// Output scripts created, by kind (`op_return` included).
    pub output_kinds: Vec<(String, u64)>,
    /// Addresses by how many transactions touch them: `[1, 2, 3–10, 11–100, 101+]`.
    pub address_use: Vec<(String, u64)>,
    /// Addresses to query, from one transaction to the most popular.
    pub probes: Vec<Probe>,
    /// Wallets of 1,000 ordinary addresses each (used once to a few times), for wallet-sync runs.
    pub wallets: Vec<Vec<String>>,
    /// Seconds the build took.
    pub build_seconds: f64,
}

/// Addresses by how many transactions touch them (`touches`, by address number), in the
/// manifest's buckets `[1, 2, 3–10, 11–100, 101+]`.
pub fn address_use(touches: &[u32]) -> Vec<(String, u64)> {
    let mut buckets = [0u64; 5];
    for &t in touches {
        match t {
            0 => {}
            1 => buckets[0] += 1,
            2 => buckets[1] += 1,
            3..=10 => buckets[2] += 1,
            11..=100 => buckets[3] += 1,
            _ => buckets[4] += 1,
        }
    }
    ["1", "2", "3-10", "11-100", "101+"].iter().zip(buckets).map(|(n, c)| (n.to_string(), c)).collect()
}

/// Up to eight wallets of 1,000 ordinary addresses (touched by one to three transactions),
/// drawn without replacement; `scripthash` names an address by number.
pub fn wallets(
    touches: &[u32],
    rng: &mut testkit::chain::rng::Rng,
    scripthash: impl Fn(u32) -> String,
) -> Vec<Vec<String>> {
    let mut ordinary: Vec<u32> =
        (0..touches.len() as u32).filter(|&a| (1..=3).contains(&touches[a as usize])).collect();
    let mut wallets = Vec::new();
    while wallets.len() < 8 && ordinary.len() >= 1000 {
        let wallet = (0..1000)
            .map(|_| {
                let i = rng.below(ordinary.len() as u64) as usize;
                scripthash(ordinary.swap_remove(i))
            })
            .collect();
        wallets.push(wallet);
    }
    wallets
}

/// A chain on disk: the node's data directory and its manifest.
pub struct CachedChain {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl CachedChain {
    /// The bitcoind data directory (`-datadir`).
    pub fn datadir(&self) -> PathBuf {
        self.dir.join("node")
    }
}

/// `$FERRUM_CACHE`, else `$XDG_CACHE_HOME/ferrum`, else `~/.cache/ferrum`: where the scripts
/// keep bitcoind and the peers.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRUM_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("ferrum");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/ferrum")
}

/// The cached chain of `preset` and `seed`, built first if it is not in the cache.
pub fn cached(preset: &Preset, seed: u64) -> Result<CachedChain> {
    let dir = cache_root().join("chains").join(format!("{}-s{seed}-g{GENERATOR_VERSION}", preset.name));
    let manifest_path = dir.join("manifest.json");
    if let Ok(text) = std::fs::read_to_string(&manifest_path) {
        let manifest: Manifest =
            serde_json::from_str(&text).with_context(|| format!("reading {}", manifest_path.display()))?;
        if manifest.preset == *preset {
            return Ok(CachedChain { dir, manifest });
        }
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    let manifest = build(preset, seed, &partial.join("node"))?;
    std::fs::write(partial.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir).with_context(|| format!("moving the chain to {}", dir.display()))?;
    Ok(CachedChain { dir, manifest })
}

/// Options for a node on a generated chain: an old chain (its blocks are dated from 2020) is not
/// "initial block download" to the node, which some servers wait out.
pub fn node_options(rest: bool, txindex: bool, extra: &[&str]) -> NodeOptions {
    let mut extra_args = vec!["-maxtipage=2000000000".to_string()];
    extra_args.extend(extra.iter().map(|s| s.to_string()));
    NodeOptions { rest, txindex, extra_args, core29: false }
}

/// Builds the chain into `datadir` with a node of its own, then the node's transaction indexes.
pub fn build(preset: &Preset, seed: u64, datadir: &Path) -> Result<Manifest> {
    let started = Instant::now();
    let mut manifest = if preset.synthetic {
        crate::synth::chain::build(preset, seed, crate::synth::chain::SHAPE, datadir)?
    } else {
        build_signed(preset, seed, datadir)?
    };
    // The indexes ElectrumX needs, built once here rather than in every run.
    let mut node = Node::start_in(datadir, node_options(true, true, &["-txospenderindex=1"]))?;
    wait_indexes_synced(&node)?;
    node.stop()?;
    manifest.build_seconds = started.elapsed().as_secs_f64();
    Ok(manifest)
}

/// Builds a chain of signed transactions into `datadir`.
fn build_signed(preset: &Preset, seed: u64, datadir: &Path) -> Result<Manifest> {
    let started = Instant::now();
    let mut node = Node::start_in(datadir, node_options(false, false, &[]))?;
    let mut g = Generator::new(preset.clone(), seed);
    let mut tip = node.tip()?;
    let mut time = FIRST_TIME;
    let total_blocks = FUNDING_BLOCKS * 2 + preset.blocks;
    for height in 1..=total_blocks {
        let txs = g.block_transactions(height)?;
        let coinbase_script = g.miner_script(height);
        time += 600;
        let block = assemble(tip, height, time, coinbase_script, g.coinbase_value(height), txs)?;
        g.record_block(height, &block);
        submit(&node, &block)?;
        tip = block.block_hash();
        if height % 1000 == 0 || height == total_blocks {
            eprintln!(
                "chaingen: {} height {height}/{total_blocks}, {} transactions, {:.0} s",
                preset.name,
                g.transactions(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    if node.tip()? != tip {
        bail!("the node's tip is not the last block submitted");
    }
    node.stop()?;
    Ok(g.manifest(total_blocks, tip, started.elapsed().as_secs_f64()))
}

/// Waits until every index the node has is synced to its tip.
pub fn wait_indexes_synced(node: &Node) -> Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(3600);
    loop {
        let info = node.call("getindexinfo", json!([]))?;
        let synced = info.as_object().map(|m| m.values().all(|v| v["synced"] == true)).unwrap_or(false);
        if synced {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the node's indexes did not sync within an hour: {info}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Blocks 1–100 pay their coinbase to funding keys; blocks 101–200 split those coinbases into
/// many coins. The preset's blocks follow.
const FUNDING_BLOCKS: u32 = 100;
/// The first block's time: 2020-09-13. Blocks are ten minutes apart, so even the large chain
/// ends in the past.
const FIRST_TIME: u32 = 1_600_000_000;
