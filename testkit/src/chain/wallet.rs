//! The coins the harness's keys hold on a node, and transactions of every common kind built,
//! signed and sent here (the test node has no wallet).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Txid};
use serde_json::{json, Value};

use crate::keys::{next_seeded_key, unsigned_tx, Kind, Receiver, Signer, Utxo};
use crate::process::node::Node;

/// Coinbase outputs can be spent after this many confirmations.
pub const COINBASE_MATURITY: u32 = 100;
/// Outputs below this are not created as change.
const DUST: u64 = 1_000;

/// Which coins a transaction spends.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// Enough coins for the outputs and fee, largest first.
    Auto,
    /// Enough coins, all from receivers of this kind.
    OfKind(Kind),
    /// Exactly these.
    Exactly(Vec<OutPoint>),
}

/// What to build.
#[derive(Clone, Debug)]
pub struct TxSpec {
    pub inputs: Inputs,
    pub outputs: Vec<TxOut>,
    /// Kind of the change receiver (a fresh one each time).
    pub change: Kind,
    /// sat/vB.
    pub fee_rate: f64,
    /// Signal replaceability (BIP 125) through the sequence numbers.
    pub rbf: bool,
}

impl TxSpec {
    pub fn pay(outputs: Vec<TxOut>) -> TxSpec {
        TxSpec { inputs: Inputs::Auto, outputs, change: Kind::P2wpkh, fee_rate: 2.0, rbf: true }
    }
}

/// Keys, receivers and coins of the harness. Deterministic: the same seed gives the same keys.
pub struct Wallet {
    signer: Signer,
    seed: u64,
    next_key: u64,
    receivers: HashMap<ScriptBuf, Arc<Receiver>>,
    utxos: BTreeMap<OutPoint, Utxo>,
    /// Coins spent by transactions we sent; they come back if those transactions vanish.
    spent: BTreeMap<OutPoint, Utxo>,
}

impl Wallet {
    pub fn new(seed: u64) -> Wallet {
        Wallet {
            signer: Signer::default(),
            seed,
            next_key: 0,
            receivers: HashMap::new(),
            utxos: BTreeMap::new(),
            spent: BTreeMap::new(),
        }
    }

    fn new_key(&mut self) -> SecretKey {
        next_seeded_key(b"ferrum-testkit", self.seed, &mut self.next_key)
    }

    /// A fresh receiver of `kind`, watched from now on.
    pub fn receiver(&mut self, kind: Kind) -> Arc<Receiver> {
        let keys = (0..kind.key_count()).map(|_| self.new_key()).collect();
        let r = Arc::new(self.signer.receiver(kind, keys));
        self.receivers.insert(r.script_pubkey.clone(), r.clone());
        r
    }

    /// All receivers ever made, by output script.
    pub fn receivers(&self) -> impl Iterator<Item = &Arc<Receiver>> {
        self.receivers.values()
    }

    pub fn is_mine(&self, script: &bitcoin::Script) -> bool {
        self.receivers.contains_key(script)
    }

    pub fn utxos(&self) -> impl Iterator<Item = &Utxo> {
        self.utxos.values()
    }

    pub fn balance(&self) -> Amount {
        self.utxos.values().map(|u| u.txout.value).sum()
    }

    /// Mines `n` blocks whose coinbases pay a fresh P2WPKH receiver of ours, then enough blocks
    /// on top for them to mature. Returns the hashes of the blocks paying us.
    pub fn fund(&mut self, node: &Node, n: u32) -> Result<Vec<bitcoin::BlockHash>> {
        let r = self.receiver(Kind::P2wpkh);
        let addr = r.address(Network::Regtest).ok_or_else(|| anyhow!("p2wpkh has an address"))?;
        let hashes = node.mine_to(n, &addr)?;
        self.scan_blocks(node, &hashes)?;
        node.mine(COINBASE_MATURITY)?;
        Ok(hashes)
    }

    /// Records the outputs of these blocks that pay our receivers.
    pub fn scan_blocks(&mut self, node: &Node, hashes: &[bitcoin::BlockHash]) -> Result<()> {
        for hash in hashes {
            let block = node.block(hash)?;
            let height = block.bip34_block_height().ok().map(|h| h as u32);
            for (i, tx) in block.txdata.iter().enumerate() {
                let coinbase_height = if i == 0 { height } else { None };
                self.add_outputs(tx, coinbase_height);
            }
        }
        Ok(())
    }

    fn add_outputs(&mut self, tx: &Transaction, coinbase_height: Option<u32>) {
        let txid = tx.compute_txid();
        for (vout, out) in tx.output.iter().enumerate() {
            if let Some(r) = self.receivers.get(&out.script_pubkey) {
                let outpoint = OutPoint::new(txid, vout as u32);
                self.utxos
                    .insert(outpoint, Utxo { outpoint, txout: out.clone(), receiver: r.clone(), coinbase_height });
            }
        }
    }

    fn spendable(&self, tip: u32) -> impl Iterator<Item = &Utxo> {
        self.utxos.values().filter(move |u| match u.coinbase_height {
            Some(h) => tip + 1 >= h + COINBASE_MATURITY,
            None => true,
        })
    }

    /// Builds and signs a transaction (not sent, coins not marked spent).
    pub fn build(&mut self, node: &Node, spec: &TxSpec) -> Result<Transaction> {
        let tip = node.height()?;
        let out_total: u64 = spec.outputs.iter().map(|o| o.value.to_sat()).sum();
        let coins: Vec<Utxo> = match &spec.inputs {
            Inputs::Exactly(points) => points
                .iter()
                .map(|p| self.utxos.get(p).cloned().ok_or_else(|| anyhow!("{p} is not an unspent coin of ours")))
                .collect::<Result<_>>()?,
            selection => {
                let mut candidates: Vec<&Utxo> = self
                    .spendable(tip)
                    .filter(|u| match selection {
                        Inputs::OfKind(k) => u.receiver.kind == *k,
                        _ => true,
                    })
                    .collect();
                candidates.sort_by_key(|u| std::cmp::Reverse(u.txout.value));
                let mut picked = Vec::new();
                let mut sum = 0u64;
                // Leave room for a generous fee.
                let needed = out_total + 20_000;
                for u in candidates {
                    if sum >= needed {
                        break;
                    }
                    sum += u.txout.value.to_sat();
                    picked.push(u.clone());
                }
                if sum < needed {
                    bail!("not enough spendable coins ({selection:?}): have {sum} sat, need {needed} sat");
                }
                picked
            }
        };
        let in_total: u64 = coins.iter().map(|u| u.txout.value.to_sat()).sum();
        let change = self.receiver(spec.change);
        let sequence = if spec.rbf { Sequence::ENABLE_RBF_NO_LOCKTIME } else { Sequence::MAX };
        let mut tx =
            Transaction { output: spec.outputs.clone(), ..unsigned_tx(coins.iter().map(|u| u.outpoint), sequence) };
        // Sign once with a placeholder change to learn the size, then set the fee and re-sign.
        tx.output.push(TxOut { value: Amount::ZERO, script_pubkey: change.script_pubkey.clone() });
        self.signer.sign(&mut tx, &coins)?;
        let fee = (tx.vsize() as f64 * spec.fee_rate).ceil() as u64 + 2;
        let change_value = in_total
            .checked_sub(out_total + fee)
            .ok_or_else(|| anyhow!("inputs {in_total} sat do not cover outputs {out_total} sat and fee {fee} sat"))?;
        if change_value < DUST {
            tx.output.pop();
        } else if let Some(last) = tx.output.last_mut() {
            last.value = Amount::from_sat(change_value);
        }
        self.signer.sign(&mut tx, &coins)?;
        Ok(tx)
    }

    /// A transaction spending the same coins as `original` (which we sent), paying `outputs`
    /// and change: a double spend, for replacement or for a competing branch.
    pub fn conflicting(
        &mut self,
        node: &Node,
        original: &Transaction,
        outputs: Vec<TxOut>,
        fee_rate: f64,
    ) -> Result<Transaction> {
        let points: Vec<OutPoint> = original.input.iter().map(|i| i.previous_output).collect();
        // Put the coins back for the build; `commit` of whichever transaction wins settles them.
        let mut restored = Vec::new();
        for p in &points {
            if let Some(u) = self.spent.remove(p) {
                self.utxos.insert(*p, u);
                restored.push(*p);
            }
        }
        let spec = TxSpec { inputs: Inputs::Exactly(points), outputs, change: Kind::P2wpkh, fee_rate, rbf: true };
        let built = self.build(node, &spec);
        for p in restored {
            if let Some(u) = self.utxos.remove(&p) {
                self.spent.insert(p, u);
            }
        }
        built
    }

    /// Marks the coins `tx` spends as spent and records its outputs to our receivers.
    pub fn commit(&mut self, tx: &Transaction) {
        for input in &tx.input {
            if let Some(u) = self.utxos.remove(&input.previous_output) {
                self.spent.insert(u.outpoint, u);
            }
        }
        self.add_outputs(tx, None);
    }

    /// Sends through `sendrawtransaction` and commits.
    pub fn send(&mut self, node: &Node, tx: &Transaction) -> Result<Txid> {
        let txid = node.send_raw(tx).with_context(|| format!("sending {}", tx.compute_txid()))?;
        self.commit(tx);
        Ok(txid)
    }

    /// Builds, signs and sends.
    pub fn send_spec(&mut self, node: &Node, spec: &TxSpec) -> Result<Transaction> {
        let tx = self.build(node, spec)?;
        self.send(node, &tx)?;
        Ok(tx)
    }

    /// Pays `value` to `script` (fresh change), sends, returns the transaction.
    pub fn pay(&mut self, node: &Node, script: &ScriptBuf, value: Amount) -> Result<Transaction> {
        self.send_spec(node, &TxSpec::pay(vec![TxOut { value, script_pubkey: script.clone() }]))
    }

    /// Brings the coin list in line with the node after reorgs or replacements: coins whose
    /// outputs are gone (in chain and mempool) are dropped, spent coins whose spender vanished
    /// come back.
    pub fn resync(&mut self, node: &Node) -> Result<()> {
        let all: Vec<Utxo> = self.utxos.values().chain(self.spent.values()).cloned().collect();
        self.utxos.clear();
        self.spent.clear();
        for u in all {
            let v = node.call("gettxout", json!([u.outpoint.txid.to_string(), u.outpoint.vout, true]))?;
            if v.is_null() {
                // Spent (in chain or mempool) or gone: keep it as spent so a later resync can
                // bring it back.
                self.spent.insert(u.outpoint, u);
            } else {
                let confirmations = v.get("confirmations").and_then(Value::as_u64).unwrap_or(0);
                let mut u = u;
                if v.get("coinbase").and_then(Value::as_bool) == Some(true) {
                    let tip = node.height()?;
                    u.coinbase_height = Some(tip + 1 - confirmations as u32);
                }
                self.utxos.insert(u.outpoint, u);
            }
        }
        Ok(())
    }
}
