//! Output scripts derived from an address's number, and placeholder spends of the real sizes.

use bitcoin::blockdata::opcodes::all::{OP_CHECKMULTISIG, OP_PUSHNUM_2, OP_PUSHNUM_3};
use bitcoin::blockdata::script::Builder;
use bitcoin::ScriptBuf;
use testkit::keys::Kind;

/// 32 bytes standing for the address's key or script hash: SplitMix64 of the seed and number.
fn digest(seed: u64, addr: u32) -> [u8; 32] {
    let mut x = seed ^ (u64::from(addr) << 1 | 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = [0u8; 32];
    for chunk in out.chunks_exact_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// The output script of address `addr`, of its kind.
pub fn output(seed: u64, addr: u32, kind: Kind) -> ScriptBuf {
    let d = digest(seed, addr);
    let mut h20 = [0u8; 20];
    h20.copy_from_slice(&d[..20]);
    let mut script = Vec::with_capacity(71);
    match kind {
        Kind::P2pkh => {
            script.extend_from_slice(&[0x76, 0xa9, 0x14]);
            script.extend_from_slice(&h20);
            script.extend_from_slice(&[0x88, 0xac]);
        }
        Kind::P2shP2wpkh => {
            script.extend_from_slice(&[0xa9, 0x14]);
            script.extend_from_slice(&h20);
            script.push(0x87);
        }
        Kind::P2wpkh => {
            script.extend_from_slice(&[0x00, 0x14]);
            script.extend_from_slice(&h20);
        }
        Kind::P2wshMultisig => {
            script.extend_from_slice(&[0x00, 0x20]);
            script.extend_from_slice(&d);
        }
        Kind::P2tr => {
            script.extend_from_slice(&[0x51, 0x20]);
            script.extend_from_slice(&d);
        }
        Kind::BareMultisig => {
            // 1-of-2: OP_1 <key> <key> OP_2 OP_CHECKMULTISIG.
            script.push(0x51);
            for prefix in [0x02, 0x03] {
                script.extend_from_slice(&[0x21, prefix]);
                script.extend_from_slice(&d);
            }
            script.extend_from_slice(&[0x52, 0xae]);
        }
    }
    ScriptBuf::from_bytes(script)
}

/// A DER signature's size with its sighash byte, and a compressed key's.
const SIG: [u8; 72] = [0x30; 72];
const KEY: [u8; 33] = [0x02; 33];

/// The script sig and witness that spend an output of `kind`, with placeholder signatures and
/// keys of the real sizes.
pub fn spend(kind: Kind) -> (ScriptBuf, Vec<Vec<u8>>) {
    match kind {
        Kind::P2pkh => (Builder::new().push_slice(SIG).push_slice(KEY).into_script(), Vec::new()),
        Kind::P2shP2wpkh => {
            // The redeem script: a P2WPKH program.
            let mut program = [0x5a; 22];
            program[..2].copy_from_slice(&[0x00, 0x14]);
            (Builder::new().push_slice(program).into_script(), vec![SIG.to_vec(), KEY.to_vec()])
        }
        Kind::P2wpkh => (ScriptBuf::new(), vec![SIG.to_vec(), KEY.to_vec()]),
        Kind::P2wshMultisig => {
            let witness_script = Builder::new()
                .push_opcode(OP_PUSHNUM_2)
                .push_slice(KEY)
                .push_slice(KEY)
                .push_slice(KEY)
                .push_opcode(OP_PUSHNUM_3)
                .push_opcode(OP_CHECKMULTISIG)
                .into_script();
            (ScriptBuf::new(), vec![Vec::new(), SIG.to_vec(), SIG.to_vec(), witness_script.into_bytes()])
        }
        Kind::P2tr => (ScriptBuf::new(), vec![vec![0x01; 64]]),
        Kind::BareMultisig => {
            (Builder::new().push_opcode(bitcoin::opcodes::OP_0).push_slice(SIG).into_script(), Vec::new())
        }
    }
}
