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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::script::{Builder, PushBytesBuf};
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid,
    Witness,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::keys::{next_seeded_key, unsigned_tx, Kind, Receiver, Signer, Utxo};
use crate::process::node::{Node, NodeOptions};

/// Bumped whenever the generator's output changes, so a cached chain of an older generator is
/// never mistaken for the current one.
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
}

impl Preset {
    /// About 2,000 transactions in 50 blocks: a smoke run of the whole benchmark in seconds.
    pub fn tiny() -> Preset {
        Preset { name: "tiny".into(), txs: 2_000, blocks: 50, hot: vec![500, 100] }
    }

    /// About 50,000 transactions in 1,000 blocks: minutes to build, for quick runs.
    pub fn small() -> Preset {
        Preset { name: "small".into(), txs: 50_000, blocks: 1_000, hot: vec![10_000, 1_000, 100] }
    }

    /// About 1,000,000 transactions in 20,000 blocks.
    pub fn large() -> Preset {
        Preset { name: "large".into(), txs: 1_000_000, blocks: 20_000, hot: vec![100_000, 10_000, 100] }
    }

    pub fn by_name(name: &str) -> Result<Preset> {
        match name {
            "tiny" => Ok(Preset::tiny()),
            "small" => Ok(Preset::small()),
            "large" => Ok(Preset::large()),
            other => bail!("unknown preset {other:?}: tiny, small or large"),
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
                g.stats.txs,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if node.tip()? != tip {
        bail!("the node's tip is not the last block submitted");
    }
    // The indexes ElectrumX needs, built once here rather than in every run.
    node.stop()?;
    drop(node);
    let node = Node::start_in(datadir, node_options(true, true, &["-txospenderindex=1"]))?;
    wait_indexes_synced(&node)?;
    let mut node = node;
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

/// Mines one block on the node's tip with only a coinbase paying `script`, and returns its hash.
pub fn mine_block(node: &Node, script: ScriptBuf) -> Result<BlockHash> {
    let block = block_on_tip(node, script)?;
    submit(node, &block)?;
    Ok(block.block_hash())
}

/// A block on the node's tip, ten minutes after it, with only a coinbase paying `script`.
pub fn block_on_tip(node: &Node, script: ScriptBuf) -> Result<Block> {
    let tip = node.tip()?;
    let header = node.call("getblockheader", json!([tip.to_string()]))?;
    let height = header["height"].as_u64().ok_or_else(|| anyhow!("getblockheader: no height"))? as u32 + 1;
    let time = header["time"].as_u64().ok_or_else(|| anyhow!("getblockheader: no time"))? as u32 + 600;
    assemble(tip, height, time, script, subsidy(height), Vec::new())
}

/// Blocks 1–100 pay their coinbase to funding keys; blocks 101–200 split those coinbases into
/// many coins. The preset's blocks follow.
const FUNDING_BLOCKS: u32 = 100;
/// The first block's time: 2020-09-13. Blocks are ten minutes apart, so even the large chain
/// ends in the past.
const FIRST_TIME: u32 = 1_600_000_000;
/// Outputs below this are not created.
const DUST: u64 = 1_000;

fn subsidy(height: u32) -> u64 {
    (50 * 100_000_000u64).checked_shr(height / 150).unwrap_or(0)
}

/// A block with a BIP34 coinbase, the witness commitment, and proof of work at regtest's target.
fn assemble(
    prev: BlockHash,
    height: u32,
    time: u32,
    script: ScriptBuf,
    value: u64,
    txs: Vec<Transaction>,
) -> Result<Block> {
    let mut tag = PushBytesBuf::new();
    tag.extend_from_slice(b"ferrum chaingen").map_err(|e| anyhow!("{e}"))?;
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new().push_int(i64::from(height)).push_slice(tag).into_script(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![TxOut { value: Amount::from_sat(value), script_pubkey: script }],
    };
    let mut txdata = Vec::with_capacity(txs.len() + 1);
    txdata.push(coinbase);
    txdata.extend(txs);
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata,
    };
    let witness_root = block.witness_root().ok_or_else(|| anyhow!("no witness root"))?;
    let commitment = Block::compute_witness_commitment(&witness_root, &[0u8; 32]);
    let mut push = PushBytesBuf::new();
    push.extend_from_slice(&[0xaa, 0x21, 0xa9, 0xed]).map_err(|e| anyhow!("{e}"))?;
    push.extend_from_slice(commitment.as_byte_array()).map_err(|e| anyhow!("{e}"))?;
    block.txdata[0].output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: Builder::new().push_opcode(OP_RETURN).push_slice(push).into_script(),
    });
    block.header.merkle_root = block.compute_merkle_root().ok_or_else(|| anyhow!("no merkle root"))?;
    let target = block.header.target();
    while block.header.validate_pow(target).is_err() {
        block.header.nonce += 1;
    }
    Ok(block)
}

/// `submitblock`; an answer other than null is an error.
pub fn submit(node: &Node, block: &Block) -> Result<()> {
    let hex = bitcoin::consensus::encode::serialize_hex(block);
    let reply = node.call("submitblock", json!([hex]))?;
    if !reply.is_null() {
        bail!("submitblock refused block {}: {reply}", block.block_hash());
    }
    Ok(())
}

/// SplitMix64: small, fast, and the same on every platform and version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// A coin of the generator's pool, with the address it belongs to.
struct Coin {
    utxo: Utxo,
    addr: u32,
}

#[derive(Default)]
struct Stats {
    txs: u64,
    inputs: u64,
    outputs: u64,
    block_bytes: u64,
    kinds: [u64; 7],
}

struct Generator {
    preset: Preset,
    seed: u64,
    rng: Rng,
    signer: Signer,
    next_key: u64,
    /// Every address made, by id.
    addrs: Vec<Arc<Receiver>>,
    /// Transactions touching each address.
    touches: Vec<u32>,
    /// Addresses that get paid again: the long tail of reuse.
    reusable: Vec<u32>,
    /// The hot addresses and the chance that a transaction pays each.
    hot: Vec<(u32, f64)>,
    /// Mining pools' payout addresses.
    miners: Vec<u32>,
    /// Funding coinbases' addresses and txids, by height.
    funding: Vec<u32>,
    funding_txids: Vec<Txid>,
    pool: Vec<Coin>,
    /// Coins created in the block being built (spendable from the next).
    pending: Vec<Coin>,
    fees: u64,
    stats: Stats,
}

/// Output script kinds of new addresses, in per-mille, after mainnet's outputs of 2024–2025.
const KIND_MIX: [(Kind, u64); 6] = [
    (Kind::P2wpkh, 500),
    (Kind::P2tr, 180),
    (Kind::P2pkh, 140),
    (Kind::P2shP2wpkh, 120),
    (Kind::P2wshMultisig, 50),
    (Kind::BareMultisig, 10),
];

impl Generator {
    fn new(preset: Preset, seed: u64) -> Generator {
        let mut g = Generator {
            rng: Rng(seed ^ 0x6665_7272_756d),
            seed,
            signer: Signer::default(),
            next_key: 0,
            addrs: Vec::new(),
            touches: Vec::new(),
            reusable: Vec::new(),
            hot: Vec::new(),
            miners: Vec::new(),
            funding: Vec::new(),
            funding_txids: Vec::new(),
            pool: Vec::new(),
            pending: Vec::new(),
            fees: 0,
            stats: Stats::default(),
            preset,
        };
        // Payments alone reach the target; spends of the coins add to it.
        let hot: Vec<u64> = g.preset.hot.clone();
        for target in hot {
            let a = g.new_addr(Kind::P2wpkh);
            g.hot.push((a, target as f64 / g.preset.txs as f64));
        }
        for _ in 0..5 {
            let a = g.new_addr(Kind::P2wpkh);
            g.miners.push(a);
        }
        g
    }

    fn new_addr(&mut self, kind: Kind) -> u32 {
        let keys =
            (0..kind.key_count()).map(|_| next_seeded_key(b"ferrum-chaingen", self.seed, &mut self.next_key)).collect();
        let r = Arc::new(self.signer.receiver(kind, keys));
        self.addrs.push(r);
        self.touches.push(0);
        (self.addrs.len() - 1) as u32
    }

    fn random_kind(&mut self) -> Kind {
        let mut x = self.rng.below(1000);
        for (kind, share) in KIND_MIX {
            if x < share {
                return kind;
            }
            x -= share;
        }
        Kind::P2wpkh
    }

    /// Where a payment goes: a hot address (at most once per transaction: `hot`), a reused one
    /// (heavily skewed to a few), or a new one (a fifth of which will be paid again later).
    fn payee(&mut self, hot: bool) -> u32 {
        let u = self.rng.unit();
        let mut acc = 0.0;
        for &(a, p) in self.hot.iter().filter(|_| hot) {
            acc += p;
            if u < acc {
                return a;
            }
        }
        if !self.reusable.is_empty() && self.rng.chance(0.15) {
            let skew = self.rng.unit().powi(4);
            return self.reusable[(skew * self.reusable.len() as f64) as usize];
        }
        let kind = self.random_kind();
        let a = self.new_addr(kind);
        if self.rng.chance(0.2) {
            self.reusable.push(a);
        }
        a
    }

    fn miner_script(&mut self, height: u32) -> ScriptBuf {
        if height <= FUNDING_BLOCKS {
            let a = self.new_addr(Kind::P2wpkh);
            self.funding.push(a);
            self.touches[a as usize] += 1;
            return self.addrs[a as usize].script_pubkey.clone();
        }
        let a = self.miners[(height % self.miners.len() as u32) as usize];
        self.touches[a as usize] += 1;
        self.addrs[a as usize].script_pubkey.clone()
    }

    fn coinbase_value(&self, height: u32) -> u64 {
        subsidy(height) + self.fees
    }

    fn record_block(&mut self, height: u32, block: &Block) {
        if height <= FUNDING_BLOCKS {
            self.funding_txids.push(block.txdata[0].compute_txid());
        }
        self.stats.block_bytes += bitcoin::consensus::encode::serialize(block).len() as u64;
        self.stats.txs += 1;
        self.stats.inputs += 1;
        self.stats.outputs += block.txdata[0].output.len() as u64;
        self.pool.append(&mut self.pending);
    }

    /// The transactions of the block at `height`.
    fn block_transactions(&mut self, height: u32) -> Result<Vec<Transaction>> {
        self.fees = 0;
        let mut txs = Vec::new();
        if height <= FUNDING_BLOCKS {
            return Ok(txs);
        }
        if height <= 2 * FUNDING_BLOCKS {
            // Split the coinbase of `height - 100`, now mature.
            let funder = self.funding[(height - FUNDING_BLOCKS - 1) as usize];
            let r = self.addrs[funder as usize].clone();
            let source = height - FUNDING_BLOCKS;
            let value = subsidy(source);
            let coinbase_txid = self.funding_txids[(source - 1) as usize];
            let coin = Coin {
                utxo: Utxo {
                    outpoint: OutPoint { txid: coinbase_txid, vout: 0 },
                    txout: TxOut { value: Amount::from_sat(value), script_pubkey: r.script_pubkey.clone() },
                    receiver: r,
                    coinbase_height: Some(source),
                },
                addr: funder,
            };
            // Enough coins for the chain to start from: 100 × 20 to 100 × 500.
            let split = (self.preset.txs / 200).clamp(20, 500) as usize;
            txs.push(self.transaction(vec![coin], split, false)?);
            return Ok(txs);
        }
        let base = self.preset.txs / u64::from(self.preset.blocks);
        let count = self.rng.range(base / 2, base + base / 2);
        for _ in 0..count {
            let (n_in, n_out) = match self.rng.below(100) {
                0..=54 => (1, 2),
                55..=74 => (2, 2),
                75..=82 => (1, 1),
                83..=85 => (1, self.rng.range(10, 200) as usize),
                86..=88 => (self.rng.range(10, 60) as usize, 1),
                _ => (self.rng.range(2, 5) as usize, self.rng.range(2, 5) as usize),
            };
            if self.pool.len() < n_in {
                break;
            }
            let coins = (0..n_in)
                .map(|_| {
                    let i = self.rng.below(self.pool.len() as u64) as usize;
                    self.pool.swap_remove(i)
                })
                .collect();
            let op_return = self.rng.chance(0.03);
            txs.push(self.transaction(coins, n_out, op_return)?);
        }
        Ok(txs)
    }

    /// A signed transaction spending `coins` into `n_out` outputs: the first a payment (or equal
    /// parts of a batch), the last change to a new address of the spender's kind.
    fn transaction(&mut self, coins: Vec<Coin>, n_out: usize, op_return: bool) -> Result<Transaction> {
        let total: u64 = coins.iter().map(|c| c.utxo.txout.value.to_sat()).sum();
        let fee = 110 + 90 * coins.len() as u64 + 40 * n_out as u64;
        let available = total.saturating_sub(fee);
        let mut recipients = Vec::with_capacity(n_out);
        if n_out >= 3 || available < 4 * DUST {
            // A batch (or a sweep of a small coin): equal parts, no change.
            let n = if available < 4 * DUST { 1 } else { n_out };
            for k in 0..n {
                let a = self.payee(k == 0);
                recipients.push((a, available / n as u64));
            }
        } else if n_out == 1 {
            let a = self.payee(true);
            recipients.push((a, available));
        } else {
            let share = 0.05 + 0.9 * self.rng.unit();
            let pay = ((available as f64 * share) as u64).clamp(DUST, available - DUST);
            let payee = self.payee(true);
            recipients.push((payee, pay));
            // Change: mostly to a new address of the spender's kind, sometimes back to it.
            let change = if self.rng.chance(0.05) {
                coins[0].addr
            } else {
                let kind = coins[0].utxo.receiver.kind;
                self.new_addr(kind)
            };
            recipients.push((change, available - pay));
        }
        let mut output: Vec<TxOut> = recipients
            .iter()
            .filter(|(_, v)| *v >= DUST)
            .map(|&(a, v)| TxOut {
                value: Amount::from_sat(v),
                script_pubkey: self.addrs[a as usize].script_pubkey.clone(),
            })
            .collect();
        let paid: Vec<u32> = recipients.iter().filter(|(_, v)| *v >= DUST).map(|&(a, _)| a).collect();
        if op_return || output.is_empty() {
            let mut data = PushBytesBuf::new();
            data.extend_from_slice(&self.rng.next().to_le_bytes()).map_err(|e| anyhow!("{e}"))?;
            data.extend_from_slice(&self.rng.next().to_le_bytes()).map_err(|e| anyhow!("{e}"))?;
            output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: Builder::new().push_opcode(OP_RETURN).push_slice(data).into_script(),
            });
            self.stats.kinds[6] += 1;
        }
        let out_value: u64 = output.iter().map(|o| o.value.to_sat()).sum();
        self.fees += total - out_value;
        let mut tx = Transaction {
            output,
            ..unsigned_tx(coins.iter().map(|c| c.utxo.outpoint), Sequence::ENABLE_RBF_NO_LOCKTIME)
        };
        let utxos: Vec<Utxo> = coins.iter().map(|c| c.utxo.clone()).collect();
        self.signer.sign(&mut tx, &utxos)?;
        let txid = tx.compute_txid();
        // Each address once per transaction, however many of its coins or outputs it has.
        let mut touched: Vec<u32> = coins.iter().map(|c| c.addr).chain(paid.iter().copied()).collect();
        touched.sort_unstable();
        touched.dedup();
        for a in touched {
            self.touches[a as usize] += 1;
        }
        for (vout, a) in paid.into_iter().enumerate() {
            let r = self.addrs[a as usize].clone();
            self.stats.kinds[kind_slot(r.kind)] += 1;
            self.pending.push(Coin {
                utxo: Utxo {
                    outpoint: OutPoint { txid, vout: vout as u32 },
                    txout: tx.output[vout].clone(),
                    receiver: r,
                    coinbase_height: None,
                },
                addr: a,
            });
        }
        self.stats.txs += 1;
        self.stats.inputs += tx.input.len() as u64;
        self.stats.outputs += tx.output.len() as u64;
        Ok(tx)
    }

    fn manifest(&mut self, height: u32, tip: BlockHash, build_seconds: f64) -> Manifest {
        let names = ["p2pkh", "p2sh-p2wpkh", "p2wpkh", "p2wsh-multisig", "p2tr", "bare-multisig", "op_return"];
        let output_kinds = names.iter().zip(self.stats.kinds).map(|(n, c)| (n.to_string(), c)).collect();
        let mut buckets = [0u64; 5];
        for &t in &self.touches {
            match t {
                0 => {}
                1 => buckets[0] += 1,
                2 => buckets[1] += 1,
                3..=10 => buckets[2] += 1,
                11..=100 => buckets[3] += 1,
                _ => buckets[4] += 1,
            }
        }
        let address_use =
            ["1", "2", "3-10", "11-100", "101+"].iter().zip(buckets).map(|(n, c)| (n.to_string(), c)).collect();
        let probe = |g: &Generator, a: u32| Probe {
            scripthash: g.addrs[a as usize].scripthash(),
            txs: u64::from(g.touches[a as usize]),
        };
        let mut probes: Vec<Probe> = self.hot.iter().map(|&(a, _)| probe(self, a)).collect();
        // An address used by exactly one transaction, and the busiest of the long tail.
        if let Some(a) = (0..self.touches.len() as u32).rev().find(|&a| self.touches[a as usize] == 1) {
            probes.push(probe(self, a));
        }
        if let Some(&a) = self.reusable.iter().max_by_key(|&&a| (self.touches[a as usize], std::cmp::Reverse(a))) {
            probes.push(probe(self, a));
        }
        probes.sort_by_key(|p| p.txs);
        // Wallets: ordinary addresses, drawn without replacement.
        let mut ordinary: Vec<u32> =
            (0..self.touches.len() as u32).filter(|&a| (1..=3).contains(&self.touches[a as usize])).collect();
        let mut wallets = Vec::new();
        while wallets.len() < 8 && ordinary.len() >= 1000 {
            let wallet = (0..1000)
                .map(|_| {
                    let i = self.rng.below(ordinary.len() as u64) as usize;
                    self.addrs[ordinary.swap_remove(i) as usize].scripthash()
                })
                .collect();
            wallets.push(wallet);
        }
        Manifest {
            preset: self.preset.clone(),
            seed: self.seed,
            generator: GENERATOR_VERSION,
            height,
            tip: tip.to_string(),
            txs: self.stats.txs,
            inputs: self.stats.inputs,
            outputs: self.stats.outputs,
            block_bytes: self.stats.block_bytes,
            output_kinds,
            address_use,
            probes,
            wallets,
            build_seconds,
        }
    }
}

fn kind_slot(kind: Kind) -> usize {
    match kind {
        Kind::P2pkh => 0,
        Kind::P2shP2wpkh => 1,
        Kind::P2wpkh => 2,
        Kind::P2wshMultisig => 3,
        Kind::P2tr => 4,
        Kind::BareMultisig => 5,
    }
}
