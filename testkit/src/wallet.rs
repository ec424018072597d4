//! Keys the harness owns, the coins they hold, and transactions of every common kind built and
//! signed here (the test node has no wallet).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::blockdata::opcodes::all::{OP_CHECKMULTISIG, OP_PUSHNUM_1, OP_PUSHNUM_2, OP_PUSHNUM_3};
use bitcoin::blockdata::script::{Builder, PushBytesBuf};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::key::{CompressedPublicKey, Keypair, TapTweak};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Address, Amount, Network, OutPoint, PublicKey, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness,
};
use serde_json::{json, Value};

use crate::node::Node;

/// Coinbase outputs can be spent after this many confirmations.
pub const COINBASE_MATURITY: u32 = 100;
/// Outputs below this are not created as change.
const DUST: u64 = 1_000;

/// The script kinds the harness can receive to and spend from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    P2pkh,
    P2shP2wpkh,
    P2wpkh,
    /// 2-of-3 multisig in P2WSH.
    P2wshMultisig,
    /// Taproot, spent by the key path.
    P2tr,
    /// 1-of-2 multisig directly in the output script.
    BareMultisig,
}

impl Kind {
    /// How many keys a receiver of this kind holds.
    pub fn key_count(self) -> usize {
        match self {
            Kind::P2wshMultisig => 3,
            Kind::BareMultisig => 2,
            _ => 1,
        }
    }

    pub const ALL: [Kind; 6] =
        [Kind::P2pkh, Kind::P2shP2wpkh, Kind::P2wpkh, Kind::P2wshMultisig, Kind::P2tr, Kind::BareMultisig];
}

/// An address-like destination the harness holds the keys of.
#[derive(Debug)]
pub struct Receiver {
    pub kind: Kind,
    keys: Vec<SecretKey>,
    pub script_pubkey: ScriptBuf,
    /// The P2SH redeem script or the P2WSH witness script.
    inner_script: Option<ScriptBuf>,
}

impl Receiver {
    /// The address of the script, if it has one (bare multisig has none).
    pub fn address(&self, network: Network) -> Option<Address> {
        Address::from_script(&self.script_pubkey, network).ok()
    }

    /// The Electrum script hash (hex) of this receiver's output script.
    pub fn scripthash(&self) -> String {
        crate::scripthash(&self.script_pubkey)
    }
}

/// A coin the harness can spend.
#[derive(Clone, Debug)]
pub struct Utxo {
    pub outpoint: OutPoint,
    pub txout: TxOut,
    pub receiver: Arc<Receiver>,
    /// Height of the block when this is a coinbase output (spendable after maturity).
    pub coinbase_height: Option<u32>,
}

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

/// The next key of a seeded family: SHA-256 of `domain ‖ seed ‖ n` for the counter `n`, which
/// moves past the (negligible) values that are not valid keys.
pub fn next_seeded_key(domain: &[u8], seed: u64, next: &mut u64) -> SecretKey {
    loop {
        let mut data = domain.to_vec();
        data.extend_from_slice(&seed.to_le_bytes());
        data.extend_from_slice(&next.to_le_bytes());
        *next += 1;
        if let Ok(key) = SecretKey::from_slice(sha256::Hash::hash(&data).as_byte_array()) {
            return key;
        }
    }
}

/// A version 2 transaction spending `outpoints` with `sequence`, unsigned and without outputs.
pub fn unsigned_tx(outpoints: impl Iterator<Item = OutPoint>, sequence: Sequence) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: outpoints
            .map(|previous_output| TxIn {
                previous_output,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        output: Vec::new(),
    }
}

/// An address nobody holds the key of (for mining blocks whose coinbase nobody will spend).
pub fn burn_address() -> Address {
    burn_address_n(0)
}

/// The `n`-th of a family of addresses nobody holds the key of.
pub fn burn_address_n(n: u32) -> Address {
    let mut data = b"ferrum testkit burn".to_vec();
    data.extend_from_slice(&n.to_le_bytes());
    let script = ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::hash(&data));
    Address::from_script(&script, Network::Regtest).expect("p2wsh has an address")
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

/// Makes receivers from keys and signs their coins.
pub struct Signer {
    secp: Secp256k1<All>,
}

impl Default for Signer {
    fn default() -> Self {
        Signer { secp: Secp256k1::new() }
    }
}

impl Signer {
    /// The receiver of `kind` for `keys` (as many as [`Kind::key_count`]).
    pub fn receiver(&self, kind: Kind, keys: Vec<SecretKey>) -> Receiver {
        let (keys, script_pubkey, inner_script) = match kind {
            Kind::P2pkh => {
                let k = keys[0];
                let pk = PublicKey::from(self.pubkey(&k));
                (vec![k], ScriptBuf::new_p2pkh(&pk.pubkey_hash()), None)
            }
            Kind::P2wpkh => {
                let k = keys[0];
                let spk = ScriptBuf::new_p2wpkh(&self.pubkey(&k).wpubkey_hash());
                (vec![k], spk, None)
            }
            Kind::P2shP2wpkh => {
                let k = keys[0];
                let redeem = ScriptBuf::new_p2wpkh(&self.pubkey(&k).wpubkey_hash());
                (vec![k], ScriptBuf::new_p2sh(&redeem.script_hash()), Some(redeem))
            }
            Kind::P2wshMultisig => {
                let ws = self.multisig_script(2, &keys);
                (keys, ScriptBuf::new_p2wsh(&ws.wscript_hash()), Some(ws))
            }
            Kind::P2tr => {
                let k = keys[0];
                let (xonly, _) = k.x_only_public_key(&self.secp);
                (vec![k], ScriptBuf::new_p2tr(&self.secp, xonly, None), None)
            }
            Kind::BareMultisig => {
                let script = self.multisig_script(1, &keys);
                (keys, script, None)
            }
        };
        Receiver { kind, keys, script_pubkey, inner_script }
    }

    fn pubkey(&self, key: &SecretKey) -> CompressedPublicKey {
        CompressedPublicKey(key.public_key(&self.secp))
    }

    fn multisig_script(&self, required: u8, keys: &[SecretKey]) -> ScriptBuf {
        let op = |n: u8| match n {
            1 => OP_PUSHNUM_1,
            2 => OP_PUSHNUM_2,
            _ => OP_PUSHNUM_3,
        };
        let mut b = Builder::new().push_opcode(op(required));
        for k in keys {
            b = b.push_key(&PublicKey::from(self.pubkey(k)));
        }
        b.push_opcode(op(keys.len() as u8)).push_opcode(OP_CHECKMULTISIG).into_script()
    }

    /// Signs every input of `tx`, which spends `coins` in order.
    pub fn sign(&self, tx: &mut Transaction, coins: &[Utxo]) -> Result<()> {
        let prevouts: Vec<TxOut> = coins.iter().map(|u| u.txout.clone()).collect();
        let mut scripts_sig = Vec::with_capacity(coins.len());
        let mut witnesses = Vec::with_capacity(coins.len());
        {
            let mut cache = SighashCache::new(&*tx);
            for (i, coin) in coins.iter().enumerate() {
                let r = &coin.receiver;
                let value = coin.txout.value;
                let (script_sig, witness) = match r.kind {
                    Kind::P2pkh => {
                        let h = cache.legacy_signature_hash(i, &r.script_pubkey, EcdsaSighashType::All.to_u32())?;
                        let sig = self.ecdsa(h.to_byte_array(), &r.keys[0]);
                        let pk = PublicKey::from(self.pubkey(&r.keys[0]));
                        let script = Builder::new().push_slice(push(sig)?).push_key(&pk).into_script();
                        (script, Witness::new())
                    }
                    Kind::P2wpkh | Kind::P2shP2wpkh => {
                        let wpkh = ScriptBuf::new_p2wpkh(&self.pubkey(&r.keys[0]).wpubkey_hash());
                        let h = cache.p2wpkh_signature_hash(i, &wpkh, value, EcdsaSighashType::All)?;
                        let sig = self.ecdsa(h.to_byte_array(), &r.keys[0]);
                        let witness = Witness::from_slice(&[sig, self.pubkey(&r.keys[0]).to_bytes().to_vec()]);
                        let script_sig = match r.kind {
                            Kind::P2shP2wpkh => Builder::new().push_slice(push(wpkh.to_bytes())?).into_script(),
                            _ => ScriptBuf::new(),
                        };
                        (script_sig, witness)
                    }
                    Kind::P2wshMultisig => {
                        let ws = r.inner_script.as_ref().ok_or_else(|| anyhow!("no witness script"))?;
                        let h = cache.p2wsh_signature_hash(i, ws, value, EcdsaSighashType::All)?;
                        let s0 = self.ecdsa(h.to_byte_array(), &r.keys[0]);
                        let s1 = self.ecdsa(h.to_byte_array(), &r.keys[1]);
                        (ScriptBuf::new(), Witness::from_slice(&[Vec::new(), s0, s1, ws.to_bytes()]))
                    }
                    Kind::P2tr => {
                        let h = cache.taproot_key_spend_signature_hash(
                            i,
                            &Prevouts::All(&prevouts),
                            TapSighashType::Default,
                        )?;
                        let keypair = Keypair::from_secret_key(&self.secp, &r.keys[0]);
                        let tweaked = keypair.tap_tweak(&self.secp, None).to_keypair();
                        let msg = Message::from_digest(h.to_byte_array());
                        let sig = self.secp.sign_schnorr_no_aux_rand(&msg, &tweaked);
                        let sig = bitcoin::taproot::Signature { signature: sig, sighash_type: TapSighashType::Default };
                        (ScriptBuf::new(), Witness::from_slice(&[sig.to_vec()]))
                    }
                    Kind::BareMultisig => {
                        let h = cache.legacy_signature_hash(i, &r.script_pubkey, EcdsaSighashType::All.to_u32())?;
                        let sig = self.ecdsa(h.to_byte_array(), &r.keys[0]);
                        let script = Builder::new().push_int(0).push_slice(push(sig)?).into_script();
                        (script, Witness::new())
                    }
                };
                scripts_sig.push(script_sig);
                witnesses.push(witness);
            }
        }
        for ((input, s), w) in tx.input.iter_mut().zip(scripts_sig).zip(witnesses) {
            input.script_sig = s;
            input.witness = w;
        }
        Ok(())
    }

    /// A DER signature with the SIGHASH_ALL byte.
    fn ecdsa(&self, digest: [u8; 32], key: &SecretKey) -> Vec<u8> {
        let sig = self.secp.sign_ecdsa_low_r(&Message::from_digest(digest), key);
        bitcoin::ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All }.to_vec()
    }
}

fn push(bytes: Vec<u8>) -> Result<PushBytesBuf> {
    PushBytesBuf::try_from(bytes).map_err(|e| anyhow!("push too large: {e}"))
}
