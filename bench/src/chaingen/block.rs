//! Blocks assembled here rather than mined by the node: a BIP34 coinbase, the witness
//! commitment and proof of work at regtest's target, handed to the node with `submitblock`.

use anyhow::{anyhow, bail, Result};
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::script::{Builder, PushBytesBuf};
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Witness,
};
use serde_json::json;
use testkit::Node;

/// A block on the node's tip, ten minutes after it, with only a coinbase paying `script`.
pub fn block_on_tip(node: &Node, script: ScriptBuf) -> Result<Block> {
    let tip = node.tip()?;
    let header = node.call("getblockheader", json!([tip.to_string()]))?;
    let height = header["height"].as_u64().ok_or_else(|| anyhow!("getblockheader: no height"))? as u32 + 1;
    let time = header["time"].as_u64().ok_or_else(|| anyhow!("getblockheader: no time"))? as u32 + 600;
    assemble(tip, height, time, script, subsidy(height, REGTEST_HALVING), Vec::new())
}

/// Blocks between halvings of the coinbase subsidy on regtest.
pub const REGTEST_HALVING: u32 = 150;

/// The coinbase subsidy at `height`, halving every `halving` blocks.
pub fn subsidy(height: u32, halving: u32) -> u64 {
    (50 * 100_000_000u64).checked_shr(height / halving).unwrap_or(0)
}

/// A block with a BIP34 coinbase, the witness commitment, and proof of work at regtest's target.
pub fn assemble(
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
