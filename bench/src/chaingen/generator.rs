//! The generator of a chain's transactions: who pays whom, with which coins, in mainnet's
//! shapes and proportions, and what the resulting chain holds (its manifest).

use std::sync::Arc;

use anyhow::Result;
use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Txid};
use testkit::chain::rng::Rng;
use testkit::keys::{next_seeded_key, unsigned_tx, Kind, Receiver, Signer, Utxo};

use super::block::{subsidy, REGTEST_HALVING};
use super::shape::{self, kind_slot, Payees, DUST, KIND_NAMES};
use super::{Manifest, Preset, Probe, FUNDING_BLOCKS, GENERATOR_VERSION};

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

/// Every address made, by id, with its keys, and how many transactions touched each.
struct Book {
    seed: u64,
    signer: Signer,
    next_key: u64,
    addrs: Vec<Arc<Receiver>>,
    touches: Vec<u32>,
}

impl Book {
    fn new_addr(&mut self, kind: Kind) -> u32 {
        let keys =
            (0..kind.key_count()).map(|_| next_seeded_key(b"ferrum-chaingen", self.seed, &mut self.next_key)).collect();
        let r = Arc::new(self.signer.receiver(kind, keys));
        self.addrs.push(r);
        self.touches.push(0);
        (self.addrs.len() - 1) as u32
    }
}

/// The state of a chain being generated: every address made, how often each was touched, the
/// coins that can be spent, and the figures of the manifest. Deterministic by seed.
pub(super) struct Generator {
    preset: Preset,
    seed: u64,
    rng: Rng,
    book: Book,
    /// The hot addresses, and the long tail of addresses paid again.
    payees: Payees,
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

impl Generator {
    pub(super) fn new(preset: Preset, seed: u64) -> Generator {
        let mut g = Generator {
            rng: Rng::new(seed ^ 0x6665_7272_756d),
            seed,
            book: Book { seed, signer: Signer::default(), next_key: 0, addrs: Vec::new(), touches: Vec::new() },
            payees: Payees::default(),
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
            let a = g.book.new_addr(Kind::P2wpkh);
            g.payees.hot.push((a, target as f64 / g.preset.txs as f64));
        }
        for _ in 0..5 {
            let a = g.book.new_addr(Kind::P2wpkh);
            g.miners.push(a);
        }
        g
    }

    /// Transactions generated so far, coinbases included.
    pub(super) fn transactions(&self) -> u64 {
        self.stats.txs
    }

    pub(super) fn miner_script(&mut self, height: u32) -> ScriptBuf {
        if height <= FUNDING_BLOCKS {
            let a = self.book.new_addr(Kind::P2wpkh);
            self.funding.push(a);
            self.book.touches[a as usize] += 1;
            return self.book.addrs[a as usize].script_pubkey.clone();
        }
        let a = self.miners[(height % self.miners.len() as u32) as usize];
        self.book.touches[a as usize] += 1;
        self.book.addrs[a as usize].script_pubkey.clone()
    }

    pub(super) fn coinbase_value(&self, height: u32) -> u64 {
        subsidy(height, REGTEST_HALVING) + self.fees
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
            let r = self.book.addrs[funder as usize].clone();
            let source = height - FUNDING_BLOCKS;
            let value = subsidy(source, REGTEST_HALVING);
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
            let (n_in, n_out) = shape::inputs_outputs(&mut self.rng);
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
        let spender = (coins[0].addr, coins[0].utxo.receiver.kind);
        let book = &mut self.book;
        let recipients =
            self.payees.recipients(&mut self.rng, &mut |kind| book.new_addr(kind), total, coins.len(), n_out, spender);
        let mut output: Vec<TxOut> = recipients
            .iter()
            .filter(|(_, v)| *v >= DUST)
            .map(|&(a, v)| TxOut {
                value: Amount::from_sat(v),
                script_pubkey: self.book.addrs[a as usize].script_pubkey.clone(),
            })
            .collect();
        let paid: Vec<u32> = recipients.iter().filter(|(_, v)| *v >= DUST).map(|&(a, _)| a).collect();
        if op_return || output.is_empty() {
            output.push(TxOut { value: Amount::ZERO, script_pubkey: shape::op_return(&mut self.rng) });
            self.stats.kinds[6] += 1;
        }
        let out_value: u64 = output.iter().map(|o| o.value.to_sat()).sum();
        self.fees += total - out_value;
        let mut tx = Transaction {
            output,
            ..unsigned_tx(coins.iter().map(|c| c.utxo.outpoint), Sequence::ENABLE_RBF_NO_LOCKTIME)
        };
        let utxos: Vec<Utxo> = coins.iter().map(|c| c.utxo.clone()).collect();
        self.book.signer.sign(&mut tx, &utxos)?;
        let txid = tx.compute_txid();
        // Each address once per transaction, however many of its coins or outputs it has.
        let mut touched: Vec<u32> = coins.iter().map(|c| c.addr).chain(paid.iter().copied()).collect();
        touched.sort_unstable();
        touched.dedup();
        for a in touched {
            self.book.touches[a as usize] += 1;
        }
        for (vout, a) in paid.into_iter().enumerate() {
            let r = self.book.addrs[a as usize].clone();
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
        let output_kinds = KIND_NAMES.iter().zip(self.stats.kinds).map(|(n, c)| (n.to_string(), c)).collect();
        let address_use = super::address_use(&self.book.touches);
        let probe = |g: &Generator, a: u32| Probe {
            scripthash: g.book.addrs[a as usize].scripthash(),
            txs: u64::from(g.book.touches[a as usize]),
        };
        let mut probes: Vec<Probe> = self.payees.hot.iter().map(|&(a, _)| probe(self, a)).collect();
        // An address used by exactly one transaction, and the busiest of the long tail.
        if let Some(a) = (0..self.book.touches.len() as u32).rev().find(|&a| self.book.touches[a as usize] == 1) {
            probes.push(probe(self, a));
        }
        if let Some(&a) =
            self.payees.reusable.iter().max_by_key(|&&a| (self.book.touches[a as usize], std::cmp::Reverse(a)))
        {
            probes.push(probe(self, a));
        }
        probes.sort_by_key(|p| p.txs);
        let book = &self.book;
        let wallets = super::wallets(&book.touches, &mut self.rng, |a| book.addrs[a as usize].scripthash());
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
