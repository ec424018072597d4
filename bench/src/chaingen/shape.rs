//! The shape of a chain's transactions, in mainnet's proportions: how many inputs and outputs,
//! which kinds of output script, who gets paid (hot addresses, a skewed long tail of reused ones,
//! mostly new ones) and how the value divides. Shared by the signed chains a node validates
//! ([`super::Generator`]) and the synthetic chains of the scale benchmark (`synth`), so both have
//! one shape; each draws from its own seeded [`Rng`] in the same order, so a seed always gives
//! the same chain.

use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::script::Builder;
use bitcoin::ScriptBuf;
use testkit::chain::rng::Rng;
use testkit::keys::Kind;

/// Outputs below this are not created.
pub const DUST: u64 = 1_000;

/// Output script kinds of new addresses, in per-mille, after mainnet's outputs of 2024–2025.
const KIND_MIX: [(Kind, u64); 6] = [
    (Kind::P2wpkh, 500),
    (Kind::P2tr, 180),
    (Kind::P2pkh, 140),
    (Kind::P2shP2wpkh, 120),
    (Kind::P2wshMultisig, 50),
    (Kind::BareMultisig, 10),
];

/// The output script kinds in the order the manifests count them (`op_return` last).
pub const KIND_NAMES: [&str; 7] =
    ["p2pkh", "p2sh-p2wpkh", "p2wpkh", "p2wsh-multisig", "p2tr", "bare-multisig", "op_return"];

/// `kind`'s place in [`KIND_NAMES`].
pub fn kind_slot(kind: Kind) -> usize {
    match kind {
        Kind::P2pkh => 0,
        Kind::P2shP2wpkh => 1,
        Kind::P2wpkh => 2,
        Kind::P2wshMultisig => 3,
        Kind::P2tr => 4,
        Kind::BareMultisig => 5,
    }
}

pub fn random_kind(rng: &mut Rng) -> Kind {
    let mut x = rng.below(1000);
    for (kind, share) in KIND_MIX {
        if x < share {
            return kind;
        }
        x -= share;
    }
    Kind::P2wpkh
}

/// Inputs and outputs of the next transaction: mostly one or two inputs paying one address
/// with change, some single-output sweeps, payout batches and consolidations.
pub fn inputs_outputs(rng: &mut Rng) -> (usize, usize) {
    match rng.below(100) {
        0..=54 => (1, 2),
        55..=74 => (2, 2),
        75..=82 => (1, 1),
        83..=85 => (1, rng.range(10, 200) as usize),
        86..=88 => (rng.range(10, 60) as usize, 1),
        _ => (rng.range(2, 5) as usize, rng.range(2, 5) as usize),
    }
}

/// The fee of a transaction of that many inputs and outputs, in satoshis.
pub fn fee(inputs: usize, outputs: usize) -> u64 {
    110 + 90 * inputs as u64 + 40 * outputs as u64
}

/// Who gets paid: the hot addresses (exchanges, merchants) with the chance that a payment goes
/// to each, and the addresses that get paid again.
#[derive(Default)]
pub struct Payees {
    pub hot: Vec<(u32, f64)>,
    pub reusable: Vec<u32>,
}

impl Payees {
    /// Where a payment goes: a hot address (at most once per transaction: `hot`), a reused one
    /// (heavily skewed to a few), or a new one from `new_addr` (a fifth of which will be paid
    /// again later).
    pub fn choose(&mut self, rng: &mut Rng, hot: bool, new_addr: &mut dyn FnMut(Kind) -> u32) -> u32 {
        let u = rng.unit();
        let mut acc = 0.0;
        for &(a, p) in self.hot.iter().filter(|_| hot) {
            acc += p;
            if u < acc {
                return a;
            }
        }
        if !self.reusable.is_empty() && rng.chance(0.15) {
            let skew = rng.unit().powi(4);
            return self.reusable[(skew * self.reusable.len() as f64) as usize];
        }
        let kind = random_kind(rng);
        let a = new_addr(kind);
        if rng.chance(0.2) {
            self.reusable.push(a);
        }
        a
    }

    /// The outputs of a transaction spending `total` from `inputs` coins of `spender` (its
    /// first coin's address and kind) into `outputs` outputs: `(address, value)`, the first a
    /// payment (or equal parts of a batch), the last change, mostly to a new address of the
    /// spender's kind. Values under [`DUST`] are left for the caller to drop.
    #[allow(clippy::too_many_arguments)]
    pub fn recipients(
        &mut self,
        rng: &mut Rng,
        new_addr: &mut dyn FnMut(Kind) -> u32,
        total: u64,
        inputs: usize,
        outputs: usize,
        spender: (u32, Kind),
    ) -> Vec<(u32, u64)> {
        let available = total.saturating_sub(fee(inputs, outputs));
        let mut recipients = Vec::with_capacity(outputs);
        if outputs >= 3 || available < 4 * DUST {
            // A batch (or a sweep of a small coin): equal parts, no change.
            let n = if available < 4 * DUST { 1 } else { outputs };
            for k in 0..n {
                let a = self.choose(rng, k == 0, new_addr);
                recipients.push((a, available / n as u64));
            }
        } else if outputs == 1 {
            let a = self.choose(rng, true, new_addr);
            recipients.push((a, available));
        } else {
            let share = 0.05 + 0.9 * rng.unit();
            let pay = ((available as f64 * share) as u64).clamp(DUST, available - DUST);
            let payee = self.choose(rng, true, new_addr);
            recipients.push((payee, pay));
            let change = if rng.chance(0.05) { spender.0 } else { new_addr(spender.1) };
            recipients.push((change, available - pay));
        }
        recipients
    }
}

/// An OP_RETURN output's script carrying 16 random bytes.
pub fn op_return(rng: &mut Rng) -> ScriptBuf {
    let mut data = [0u8; 16];
    data[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    data[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    Builder::new().push_opcode(OP_RETURN).push_slice(data).into_script()
}
