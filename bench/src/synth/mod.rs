//! Synthetic mainnet-shaped chains for the scale benchmark: blocks made as fast as an indexer
//! can take them, without a node and without signatures.
//!
//! The transactions have chaingen's shape ([`crate::chaingen::shape`]: the same mix of kinds and
//! sizes, the same skewed address reuse and hot addresses), with three differences that make a
//! hundred million transactions affordable:
//! - addresses are numbers, and an output script is derived from its number, so no key is made;
//! - inputs carry placeholder signatures of the real sizes (a node accepts such blocks only
//!   under `-assumevalid`, which skips script checks; `bench/tests/synth.rs` does exactly that);
//! - the unspent outputs are kept to about [`UTXO_SHARE`] of the transactions so far, as on
//!   mainnet (170M unspent outputs for 1.2 billion transactions), by adding inputs while the
//!   set is above that share; spends favour recent outputs but reach back to the oldest.
//!
//! The hot addresses receive a fixed share of all payments ([`HOT_SHARES`]), so a shorter run is
//! a prefix of a longer one with the same seed. Each block comes with its spent outputs in
//! `/rest/spenttxouts` form, for Ferrum's spenttxouts mode, and the block and that data are
//! deterministic by seed.

pub mod chain;
mod scripts;
pub mod source;
pub mod stream;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use anyhow::Result;
use bitcoin::consensus::Encodable;
use bitcoin::hashes::Hash;
use bitcoin::{absolute, Amount, BlockHash, OutPoint, Sequence, Transaction, TxIn, TxOut, Txid, VarInt, Witness};
use testkit::chain::rng::Rng;
use testkit::keys::Kind;

use crate::chaingen::shape::{self, Payees, DUST};
use crate::chaingen::{assemble, subsidy};

/// Unspent outputs kept, as a share of the transactions made so far.
pub const UTXO_SHARE: f64 = 0.3;
/// The chance that a payment goes to each hot address. A transaction makes more than one
/// payment choice (batches, change), so each is touched by about 1.85 times its share of all
/// transactions: at 100M, about 1.8M, 180k and 18k.
pub const HOT_SHARES: [f64; 3] = [0.01, 0.001, 0.0001];
/// Coinbases are spendable this many blocks later.
const MATURITY: u32 = 100;
/// The first block's time (2020-09-13), then ten minutes a block.
const FIRST_TIME: u32 = 1_600_000_000;

/// How big the blocks are, and what they pay their miners.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Transactions per block (coinbase not counted), drawn evenly from this range once enough
    /// coins are spendable.
    pub txs_per_block: (u64, u64),
    /// Blocks of this height and above carry only their coinbase (for the node test, which
    /// needs two weeks' worth of blocks on top of the last one whose scripts it skips).
    pub empty_from: u32,
    /// Blocks between halvings of the coinbase subsidy: regtest's 150 for a chain a node
    /// validates, mainnet's 210,000 otherwise. On regtest's schedule all the money there will
    /// ever be (15,000 BTC) is paid by height 5,000, and a chain of tens of millions of
    /// transactions splits it so fine that payouts fall under the dust limit and the unspent
    /// set stops growing.
    pub halving: u32,
    /// A block takes no more transactions once its weight reaches this: [`NODE_WEIGHT`] for a
    /// chain a node validates (its limit is 4M), none for the index alone, whose mainnet blocks
    /// of 3,500 transactions can weigh more.
    pub max_weight: u64,
}

/// Where a block a node validates stops taking transactions: the largest transaction the
/// generator makes (a 200-output batch paid by consolidating 201 inputs) weighs under 150k, so
/// the block stays under the node's 4M.
pub const NODE_WEIGHT: u64 = 3_750_000;

impl Shape {
    /// Mainnet's blocks of the last years: 1,500 to 3,500 transactions.
    pub fn mainnet() -> Shape {
        Shape { txs_per_block: (1_500, 3_500), empty_from: u32::MAX, halving: 210_000, max_weight: u64::MAX }
    }
}

/// One block as a node serves it.
pub struct Frame {
    pub height: u32,
    pub hash: BlockHash,
    pub block: Vec<u8>,
    /// The outputs spent by each transaction, in `/rest/spenttxouts/<hash>.bin` form.
    pub spent: Vec<u8>,
    /// Transactions in the block, the coinbase included.
    pub txs: u32,
}

#[derive(Clone, Copy)]
struct Coin {
    txid: Txid,
    vout: u32,
    addr: u32,
    value: u64,
}

/// The generator: an endless iterator of blocks on regtest's genesis, deterministic by seed.
pub struct Synth {
    seed: u64,
    shape: Shape,
    rng: Rng,
    /// Each address's kind, by number.
    kinds: Vec<Kind>,
    payees: Payees,
    miners: Vec<u32>,
    pool: Vec<Coin>,
    /// Outputs of the block being made: spendable from the next.
    pending: Vec<Coin>,
    /// Coinbases, with the height from which they can be spent.
    immature: VecDeque<(u32, Coin)>,
    tip: BlockHash,
    height: u32,
    txs: u64,
    /// What the chain holds, kept only when asked for ([`Synth::tally`]).
    tally: Option<Tally>,
}

/// Counts of what the chain holds, for a benchmark chain's manifest.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Transactions touching each address (as an input's coin or an output), by number.
    pub touches: Vec<u32>,
    /// Inputs and outputs, coinbases included.
    pub inputs: u64,
    pub outputs: u64,
    /// Outputs by kind, in [`shape::KIND_NAMES`]' order.
    pub kinds: [u64; 7],
    /// Serialized size of all blocks.
    pub block_bytes: u64,
}

impl Tally {
    fn touch(&mut self, addrs: impl IntoIterator<Item = u32>) {
        let mut addrs: Vec<u32> = addrs.into_iter().collect();
        addrs.sort_unstable();
        addrs.dedup();
        for a in addrs {
            let a = a as usize;
            if self.touches.len() <= a {
                self.touches.resize(a + 1, 0);
            }
            self.touches[a] += 1;
        }
    }
}

impl Synth {
    pub fn new(seed: u64, shape: Shape) -> Synth {
        let mut s = Synth {
            seed,
            shape,
            rng: Rng::new(seed ^ 0x7379_6e74_6800),
            kinds: Vec::new(),
            payees: Payees::default(),
            miners: Vec::new(),
            pool: Vec::new(),
            pending: Vec::new(),
            immature: VecDeque::new(),
            tip: Synth::genesis().block_hash(),
            height: 0,
            txs: 1,
            tally: None,
        };
        for share in HOT_SHARES {
            let a = s.new_addr(Kind::P2wpkh);
            s.payees.hot.push((a, share));
        }
        for _ in 0..5 {
            let a = s.new_addr(Kind::P2wpkh);
            s.miners.push(a);
        }
        s
    }

    fn new_addr(&mut self, kind: Kind) -> u32 {
        self.kinds.push(kind);
        (self.kinds.len() - 1) as u32
    }

    /// The scripts the scale benchmark reads back as it grows: the hot addresses, most used
    /// first, then a mining pool's payout address (a coinbase every fifth block).
    pub fn probe_scripts(&self) -> Vec<bitcoin::ScriptBuf> {
        let hot = self.payees.hot.iter().map(|&(a, _)| a);
        hot.chain(self.miners.first().copied()).map(|a| scripts::output(self.seed, a, Kind::P2wpkh)).collect()
    }

    /// Keeps a [`Tally`] of the blocks made from now on.
    pub fn keep_tally(&mut self) {
        self.tally = Some(Tally::default());
    }

    /// What the blocks made since [`Synth::keep_tally`] hold.
    pub fn tally(&self) -> Option<&Tally> {
        self.tally.as_ref()
    }

    /// Blocks from the next one on carry only their coinbase.
    pub fn stop_transactions(&mut self) {
        self.shape.empty_from = self.shape.empty_from.min(self.height + 1);
    }

    /// The height of the last block made.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// An address's output script.
    pub fn script(&self, addr: u32) -> bitcoin::ScriptBuf {
        scripts::output(self.seed, addr, self.kinds[addr as usize])
    }

    /// The hot addresses, most used first, and the mining pools' payout addresses.
    pub fn hot_and_miners(&self) -> (Vec<u32>, Vec<u32>) {
        (self.payees.hot.iter().map(|&(a, _)| a).collect(), self.miners.clone())
    }

    /// The addresses paid again after their first use, in the order they were made.
    pub fn reusable(&self) -> &[u32] {
        &self.payees.reusable
    }

    /// Transactions in the chain so far, genesis included.
    pub fn transactions(&self) -> u64 {
        self.txs
    }

    /// Unspent outputs the generator holds (spendable, and made in the last block).
    pub fn unspent(&self) -> usize {
        self.pool.len() + self.pending.len() + self.immature.len()
    }

    /// The next block.
    pub fn next_block(&mut self) -> Result<Frame> {
        let height = self.height + 1;
        self.pool.append(&mut self.pending);
        while self.immature.front().is_some_and(|(h, _)| *h <= height) {
            if let Some((_, c)) = self.immature.pop_front() {
                self.pool.push(c);
            }
        }
        let mut txs = Vec::new();
        let mut spent = Vec::new();
        let mut fees = 0;
        if height < self.shape.empty_from {
            let (lo, hi) = self.shape.txs_per_block;
            let count = self.rng.range(lo, hi);
            // The header, the transaction count and the coinbase, about.
            let mut weight = 2_000;
            for _ in 0..count {
                if weight >= self.shape.max_weight {
                    break;
                }
                let Some((tx, outs, fee)) = self.transaction()? else { break };
                if self.shape.max_weight != u64::MAX {
                    weight += tx.weight().to_wu();
                }
                txs.push(tx);
                spent.push(outs);
                fees += fee;
            }
        }
        let miner = self.miners[(height % self.miners.len() as u32) as usize];
        let value = subsidy(height, self.shape.halving) + fees;
        let script = scripts::output(self.seed, miner, Kind::P2wpkh);
        let block = assemble(self.tip, height, FIRST_TIME + 600 * height, script, value, txs)?;
        let coinbase = Coin { txid: block.txdata[0].compute_txid(), vout: 0, addr: miner, value };
        self.immature.push_back((height + MATURITY, coinbase));
        let mut spent_bytes = Vec::new();
        VarInt(block.txdata.len() as u64).consensus_encode(&mut spent_bytes)?;
        VarInt(0).consensus_encode(&mut spent_bytes)?;
        for outs in &spent {
            VarInt(outs.len() as u64).consensus_encode(&mut spent_bytes)?;
            for c in outs {
                c.value.consensus_encode(&mut spent_bytes)?;
                scripts::output(self.seed, c.addr, self.kinds[c.addr as usize]).consensus_encode(&mut spent_bytes)?;
            }
        }
        self.height = height;
        self.tip = block.block_hash();
        self.txs += block.txdata.len() as u64;
        let bytes = bitcoin::consensus::encode::serialize(&block);
        if let Some(t) = &mut self.tally {
            t.touch([miner]);
            t.inputs += 1;
            t.outputs += block.txdata[0].output.len() as u64;
            t.block_bytes += bytes.len() as u64;
        }
        Ok(Frame { height, hash: self.tip, txs: block.txdata.len() as u32, block: bytes, spent: spent_bytes })
    }

    /// A transaction of the chain's shape, the coins it spends and its fee; `None` when too
    /// few coins are spendable.
    fn transaction(&mut self) -> Result<Option<(Transaction, Vec<Coin>, u64)>> {
        let (mut n_in, n_out) = shape::inputs_outputs(&mut self.rng);
        if self.pool.len() as f64 > UTXO_SHARE * self.txs as f64 + 1_000.0 {
            // Too many unspent outputs: this one consolidates.
            n_in = n_in.max(n_out + 1 + self.rng.below(2) as usize);
        }
        if self.pool.len() < n_in {
            return Ok(None);
        }
        let coins: Vec<Coin> = (0..n_in)
            .map(|_| {
                // Mostly recent outputs (the pool's end), sometimes the oldest.
                let back = (self.rng.unit().powi(3) * self.pool.len() as f64) as usize;
                self.pool.swap_remove(self.pool.len() - 1 - back.min(self.pool.len() - 1))
            })
            .collect();
        let op_return = self.rng.chance(0.03);
        let total: u64 = coins.iter().map(|c| c.value).sum();
        let spender = (coins[0].addr, self.kinds[coins[0].addr as usize]);
        let kinds = &mut self.kinds;
        let mut new_addr = |kind| {
            kinds.push(kind);
            (kinds.len() - 1) as u32
        };
        let recipients = self.payees.recipients(&mut self.rng, &mut new_addr, total, n_in, n_out, spender);
        let paid: Vec<(u32, u64)> = recipients.into_iter().filter(|(_, v)| *v >= DUST).collect();
        let mut output: Vec<TxOut> = paid
            .iter()
            .map(|&(a, v)| TxOut {
                value: Amount::from_sat(v),
                script_pubkey: scripts::output(self.seed, a, self.kinds[a as usize]),
            })
            .collect();
        if op_return || output.is_empty() {
            output.push(TxOut { value: Amount::ZERO, script_pubkey: shape::op_return(&mut self.rng) });
        }
        let input = coins
            .iter()
            .map(|c| {
                let (script_sig, witness) = scripts::spend(self.kinds[c.addr as usize]);
                TxIn {
                    previous_output: OutPoint { txid: c.txid, vout: c.vout },
                    script_sig,
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::from_slice(&witness),
                }
            })
            .collect();
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input,
            output,
        };
        let fee = total - tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
        let txid = tx.compute_txid();
        if let Some(t) = &mut self.tally {
            t.touch(coins.iter().map(|c| c.addr).chain(paid.iter().map(|&(a, _)| a)));
            t.inputs += tx.input.len() as u64;
            t.outputs += tx.output.len() as u64;
            for &(a, _) in &paid {
                t.kinds[shape::kind_slot(self.kinds[a as usize])] += 1;
            }
            t.kinds[6] += (tx.output.len() - paid.len()) as u64;
        }
        for (vout, &(addr, value)) in paid.iter().enumerate() {
            self.pending.push(Coin { txid, vout: vout as u32, addr, value });
        }
        Ok(Some((tx, coins, fee)))
    }

    /// The regtest genesis block: the chain's height 0.
    pub fn genesis() -> bitcoin::Block {
        bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest)
    }

    /// `hash` as Ferrum's type.
    pub fn ferrum_hash(hash: BlockHash) -> ferrum::types::BlockHash {
        ferrum::types::BlockHash(hash.to_byte_array())
    }
}
