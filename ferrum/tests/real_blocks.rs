//! Real blocks from mainnet, testnet4 and signet (../shared/testdata): they parse, their txids
//! and merkle roots match the files, and the rows built from them are what the block says
//! (checked against an independent decoding with rust-bitcoin).

use std::path::PathBuf;

use bitcoin::consensus::deserialize;
use ferrum::{
    build, merkle, sh_prefix,
    types::{BlockHash, ScriptHash},
};

fn testdata() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    assert!(dir.is_dir(), "test vectors missing at {}", dir.display());
    dir
}

fn check(file: &str) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(testdata().join(file)).unwrap()).unwrap();
    let raw = hex::decode(json["block"].as_str().unwrap()).unwrap();
    let height = json["height"].as_u64().unwrap() as u32;
    let hash = BlockHash::from_hex(json["hash"].as_str().unwrap()).unwrap();

    let data = build::build(height, hash, &raw, None).unwrap();
    let want: Vec<&str> = json["tx"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let got: Vec<String> = data.txids.iter().map(|t| t.to_hex()).collect();
    assert_eq!(got, want, "{file}: txids");
    let leaves: Vec<[u8; 32]> = data.txids.iter().map(|t| t.0).collect();
    assert_eq!(
        merkle::hex_display(&merkle::root(&leaves).unwrap()),
        json["merkleroot"].as_str().unwrap(),
        "{file}: merkle root"
    );
    for pos in [0, leaves.len() / 2, leaves.len() - 1] {
        let (branch, root) = merkle::branch(&leaves, pos).unwrap();
        assert_eq!(merkle::root_from_branch(leaves[pos], pos, &branch), root);
    }

    // Independent decoding.
    let block: bitcoin::Block = deserialize(&raw).unwrap();
    assert_eq!(block.block_hash().to_string(), hash.to_hex());
    let mut outputs = Vec::new();
    let mut inputs = Vec::new();
    for (i, tx) in block.txdata.iter().enumerate() {
        assert_eq!(bitcoin::consensus::serialize(tx).len() as u32, data.tx_sizes[i], "{file}: size of tx {i}");
        for (vout, out) in tx.output.iter().enumerate() {
            if !out.script_pubkey.is_op_return() {
                let sh = sh_prefix(&ScriptHash::of_script(out.script_pubkey.as_bytes()));
                outputs.push((i as u32, vout as u32, sh, out.value.to_sat()));
            }
        }
        if !tx.is_coinbase() {
            for (n, input) in tx.input.iter().enumerate() {
                let mut prev = input.previous_output.txid.to_string();
                prev = ferrum::types::Txid::from_hex(&prev).unwrap().0.iter().map(|b| format!("{b:02x}")).collect();
                inputs.push((i as u32, n as u32, prev, input.previous_output.vout));
            }
        }
    }
    let got_out: Vec<_> = data.outputs.iter().map(|o| (o.tx, o.vout, o.coin.sh, o.coin.value)).collect();
    assert_eq!(got_out, outputs, "{file}: output rows");
    let got_in: Vec<_> = data.inputs.iter().map(|i| (i.tx, i.index, hex::encode(i.prev_txid), i.prev_vout)).collect();
    assert_eq!(got_in, inputs, "{file}: input rows");
    assert!(data.inputs.iter().all(|i| i.coin.is_none()), "unresolved without spent outputs");
    // The block's transactions and sizes are consistent with its bytes.
    let total: u32 = data.tx_sizes.iter().sum();
    assert!(total as usize <= raw.len() - 80);
}

#[test]
fn mainnet_block_951658() {
    check("bitcoin_mainnet_951658.json");
}

#[test]
fn testnet4_block_40000() {
    check("bitcoin_testnet4_40000.json");
}

#[test]
fn signet_block_31500() {
    check("bitcoin_signet_31500.json");
}

#[test]
fn a_wrong_hash_or_damaged_bytes_are_errors() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(testdata().join("bitcoin_signet_31500.json")).unwrap()).unwrap();
    let raw = hex::decode(json["block"].as_str().unwrap()).unwrap();
    let hash = BlockHash::from_hex(json["hash"].as_str().unwrap()).unwrap();
    assert!(matches!(build::build(1, BlockHash([0; 32]), &raw, None), Err(build::BuildError::WrongHash { .. })));
    for cut in [81, raw.len() / 2, raw.len() - 1] {
        assert!(matches!(build::build(1, hash, &raw[..cut], None), Err(build::BuildError::Parse { .. })), "cut {cut}");
    }
    // Spent outputs that do not match the block.
    assert!(matches!(build::build(1, hash, &raw, Some(&[1, 0])), Err(build::BuildError::SpentMismatch { .. })));
}
