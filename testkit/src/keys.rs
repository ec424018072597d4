//! The harness's keys and what they make: output scripts of every common kind ([`Receiver`]),
//! deterministic key families, addresses nobody holds the key of, unsigned transactions, and the
//! signatures that spend the coins of those receivers ([`Signer`]). Imports nothing else from
//! the harness, so the node, the wallet and the chain generator all build on it.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use bitcoin::blockdata::opcodes::all::{OP_CHECKMULTISIG, OP_PUSHNUM_1, OP_PUSHNUM_2, OP_PUSHNUM_3};
use bitcoin::blockdata::script::{Builder, PushBytesBuf};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::key::{CompressedPublicKey, Keypair, TapTweak};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Address, Network, OutPoint, PublicKey, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

/// The Electrum script hash of an output script: SHA-256, byte-reversed, hex.
pub fn scripthash(script: &bitcoin::Script) -> String {
    let mut h = sha256::Hash::hash(script.as_bytes()).to_byte_array();
    h.reverse();
    hex::encode(h)
}

/// [`scripthash`] of a script given in hex.
pub fn scripthash_hex(script_hex: &str) -> Result<String> {
    let bytes = hex::decode(script_hex)?;
    Ok(scripthash(bitcoin::Script::from_bytes(&bytes)))
}

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
        scripthash(&self.script_pubkey)
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

#[cfg(test)]
mod tests {
    #[test]
    fn scripthash_matches_the_protocol_example() {
        // P2PKH example from the Electrum protocol documentation.
        let script = hex::decode("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").unwrap();
        assert_eq!(
            super::scripthash(bitcoin::Script::from_bytes(&script)),
            "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
        );
    }
}
