//! The generator of a chain's transactions: who pays whom, with which coins, in mainnet's
//! shapes and proportions, and what the resulting chain holds (its manifest).

use std::sync::Arc;

use anyhow::{anyhow, Result};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::script::{Builder, PushBytesBuf};
use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Txid};
use testkit::chain::rng::Rng;
use testkit::keys::{next_seeded_key, unsigned_tx, Kind, Receiver, Signer, Utxo};

use super::block::subsidy;
use super::{Manifest, Preset, Probe, FUNDING_BLOCKS, GENERATOR_VERSION};

/// Outputs below this are not created.
const DUST: u64 = 1_000;

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

/// The state of a chain being generated: every address made, how often each was touched, the
/// coins that can be spent, and the figures of the manifest. Deterministic by seed.
pub(super) struct Generator {
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
    pub(super) fn new(preset: Preset, seed: u64) -> Generator {
        let mut g = Generator {
            rng: Rng::new(seed ^ 0x6665_7272_756d),
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

    /// Transactions generated so far, coinbases included.
    pub(super) fn transactions(&self) -> u64 {
        self.stats.txs
    }

    pub(super) fn miner_script(&mut self, height: u32) -> ScriptBuf {
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

    pub(super) fn coinbase_value(&self, height: u32) -> u64 {
        subsidy(height) + self.fees
    }

    pub(super) fn record_block(&mut self, height: u32, block: &Block) {
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
    pub(super) fn block_transactions(&mut self, height: u32) -> Result<Vec<Transaction>> {
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
            data.extend_from_slice(&self.rng.next_u64().to_le_bytes()).map_err(|e| anyhow!("{e}"))?;
            data.extend_from_slice(&self.rng.next_u64().to_le_bytes()).map_err(|e| anyhow!("{e}"))?;
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

    pub(super) fn manifest(&mut self, height: u32, tip: BlockHash, build_seconds: f64) -> Manifest {
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
