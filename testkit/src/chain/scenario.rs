//! Seeded chains: every transaction kind, address reuse, unconfirmed chains, replacements and
//! same-block spends, built on a real node. The same seed gives the same keys and the same
//! sequence of transactions.

use anyhow::{bail, Result};
use bitcoin::{Amount, ScriptBuf, TxOut, Txid};

use crate::chain::rng::Rng;
use crate::chain::wallet::{Inputs, TxSpec, Wallet};
use crate::keys::Kind;
use crate::process::node::{Node, NodeOptions};

/// What a transaction of the demonstration exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    PayTo(Kind),
    SpendFrom(Kind),
    OpReturn,
    ManyOut,
    ManyIn,
    /// Spends an unconfirmed parent; mined in the same block as the parent.
    UnconfirmedChild,
    /// Replaced by a higher-fee transaction: never confirmed.
    Replaced,
    Replacement,
}

#[derive(Clone, Debug)]
pub struct Sent {
    pub txid: Txid,
    pub feature: Feature,
}

fn op_return(data: &[u8]) -> ScriptBuf {
    let push = bitcoin::script::PushBytesBuf::try_from(data.to_vec()).unwrap_or_default();
    ScriptBuf::new_op_return(push)
}

/// Sends one transaction of every kind through `sendrawtransaction` and mines them. The wallet
/// must hold at least 5 BTC in mature coins. Returns what was sent, in order.
pub fn send_every_kind(node: &Node, wallet: &mut Wallet) -> Result<Vec<Sent>> {
    let mut sent = Vec::new();
    let btc = |x: f64| Amount::from_btc(x).unwrap_or(Amount::ZERO);
    // Pay to each kind, twice (so there are coins of that kind to spend), then mine.
    for kind in Kind::ALL {
        for _ in 0..2 {
            let r = wallet.receiver(kind);
            let tx = wallet.pay(node, &r.script_pubkey, btc(0.2))?;
            sent.push(Sent { txid: tx.compute_txid(), feature: Feature::PayTo(kind) });
        }
    }
    node.mine(1)?;
    // Spend from each kind.
    for kind in Kind::ALL {
        let dest = wallet.receiver(Kind::P2wpkh);
        let spec = TxSpec {
            inputs: Inputs::OfKind(kind),
            outputs: vec![TxOut { value: btc(0.05), script_pubkey: dest.script_pubkey.clone() }],
            change: kind,
            fee_rate: 3.0,
            rbf: false,
        };
        let tx = wallet.send_spec(node, &spec)?;
        sent.push(Sent { txid: tx.compute_txid(), feature: Feature::SpendFrom(kind) });
    }
    // OP_RETURN next to a payment.
    let r = wallet.receiver(Kind::P2wpkh);
    let tx = wallet.send_spec(
        node,
        &TxSpec::pay(vec![
            TxOut { value: Amount::ZERO, script_pubkey: op_return(b"ferrum testkit") },
            TxOut { value: btc(0.01), script_pubkey: r.script_pubkey.clone() },
        ]),
    )?;
    sent.push(Sent { txid: tx.compute_txid(), feature: Feature::OpReturn });
    // Fan out to 25 outputs of mixed kinds, mine, then fan 12 of them in.
    let outputs: Vec<TxOut> = (0..25)
        .map(|i| TxOut { value: btc(0.01), script_pubkey: wallet.receiver(Kind::ALL[i % 6]).script_pubkey.clone() })
        .collect();
    let fan_out = wallet.send_spec(node, &TxSpec::pay(outputs))?;
    sent.push(Sent { txid: fan_out.compute_txid(), feature: Feature::ManyOut });
    node.mine(1)?;
    let fan_txid = fan_out.compute_txid();
    let inputs: Vec<bitcoin::OutPoint> = (0..12).map(|vout| bitcoin::OutPoint::new(fan_txid, vout)).collect();
    let outputs: Vec<TxOut> = (0..5)
        .map(|_| TxOut { value: btc(0.02), script_pubkey: wallet.receiver(Kind::P2tr).script_pubkey.clone() })
        .collect();
    let fan_in = wallet.send_spec(
        node,
        &TxSpec { inputs: Inputs::Exactly(inputs), outputs, change: Kind::P2wpkh, fee_rate: 2.0, rbf: false },
    )?;
    sent.push(Sent { txid: fan_in.compute_txid(), feature: Feature::ManyIn });
    // A chain of three unconfirmed transactions, each spending its parent's first output;
    // mined together, the children spend outputs created in the same block.
    let first = wallet.receiver(Kind::P2wpkh);
    let mut parent = wallet.pay(node, &first.script_pubkey, btc(0.3))?;
    for value in [0.1, 0.03] {
        let dest = wallet.receiver(Kind::P2wpkh);
        let spec = TxSpec {
            inputs: Inputs::Exactly(vec![bitcoin::OutPoint::new(parent.compute_txid(), 0)]),
            outputs: vec![TxOut { value: btc(value), script_pubkey: dest.script_pubkey.clone() }],
            change: Kind::P2wpkh,
            fee_rate: 2.0,
            rbf: true,
        };
        parent = wallet.send_spec(node, &spec)?;
        sent.push(Sent { txid: parent.compute_txid(), feature: Feature::UnconfirmedChild });
    }
    // Replace-by-fee: the same coins, a higher fee, another destination.
    let a = wallet.receiver(Kind::P2wpkh);
    let original =
        wallet.build(node, &TxSpec::pay(vec![TxOut { value: btc(0.4), script_pubkey: a.script_pubkey.clone() }]))?;
    node.send_raw(&original)?;
    let b = wallet.receiver(Kind::P2tr);
    let replacement_spec = TxSpec {
        inputs: Inputs::Exactly(original.input.iter().map(|i| i.previous_output).collect()),
        outputs: vec![TxOut { value: btc(0.39), script_pubkey: b.script_pubkey.clone() }],
        change: Kind::P2wpkh,
        fee_rate: 20.0,
        rbf: true,
    };
    let replacement = wallet.send_spec(node, &replacement_spec)?;
    sent.push(Sent { txid: original.compute_txid(), feature: Feature::Replaced });
    sent.push(Sent { txid: replacement.compute_txid(), feature: Feature::Replacement });
    node.mine(1)?;
    Ok(sent)
}

/// Options of [`build`].
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    pub seed: u64,
    /// Mine until the chain is this high.
    pub height: u32,
}

/// A chain built by [`build`].
pub struct Scenario {
    pub wallet: Wallet,
    pub sent: Vec<Sent>,
}

/// Builds a seeded chain on `node` (which must be fresh): the demonstration of every kind, then
/// rounds of random payments with heavy reuse of a few receivers, consolidations, fan-outs,
/// OP_RETURNs, unconfirmed chains and replacements, one block per round, up to `height`.
pub fn build(node: &Node, options: &ScenarioOptions) -> Result<Scenario> {
    if node.height()? != 0 {
        bail!("a scenario starts from a fresh node");
    }
    let mut rng = Rng::new(options.seed);
    let mut wallet = Wallet::new(options.seed);
    wallet.fund(node, 30)?;
    let mut sent = send_every_kind(node, &mut wallet)?;

    let hot: Vec<ScriptBuf> = (0..3).map(|i| wallet.receiver(Kind::ALL[i * 2]).script_pubkey.clone()).collect();
    let mut pool: Vec<ScriptBuf> = Kind::ALL
        .iter()
        .flat_map(|k| (0..3).map(move |_| *k))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|k| wallet.receiver(k).script_pubkey.clone())
        .collect();

    let mut round = 0u64;
    while node.height()? < options.height {
        round += 1;
        let roll = rng.below(100);
        let value = Amount::from_sat(100_000 + rng.below(20_000_000));
        let dest = if rng.below(2) == 0 { rng.pick(&hot).clone() } else { rng.pick(&pool).clone() };
        let result = match roll {
            0..=39 => wallet
                .pay(node, &dest, value)
                .map(|tx| vec![Sent { txid: tx.compute_txid(), feature: Feature::PayTo(Kind::P2wpkh) }]),
            40..=54 => {
                let kind = *rng.pick(&Kind::ALL);
                let mut spec = TxSpec {
                    inputs: Inputs::OfKind(kind),
                    outputs: vec![TxOut { value: Amount::from_sat(50_000), script_pubkey: dest }],
                    change: *rng.pick(&Kind::ALL),
                    fee_rate: 1.0 + rng.below(5) as f64,
                    rbf: rng.below(2) == 0,
                };
                let tx = match wallet.build(node, &spec) {
                    Ok(tx) => tx,
                    // No coin of that kind right now: any coin will do.
                    Err(_) => {
                        spec.inputs = Inputs::Auto;
                        wallet.build(node, &spec)?
                    }
                };
                wallet.send(node, &tx).map(|txid| vec![Sent { txid, feature: Feature::SpendFrom(kind) }])
            }
            55..=59 => wallet
                .send_spec(
                    node,
                    &TxSpec::pay(vec![
                        TxOut { value: Amount::ZERO, script_pubkey: op_return(&round.to_le_bytes()) },
                        TxOut { value, script_pubkey: dest },
                    ]),
                )
                .map(|tx| vec![Sent { txid: tx.compute_txid(), feature: Feature::OpReturn }]),
            60..=64 => {
                let n = 5 + rng.below(20) as usize;
                let outputs = (0..n)
                    .map(|_| TxOut {
                        value: Amount::from_sat(20_000 + rng.below(200_000)),
                        script_pubkey: rng.pick(&pool).clone(),
                    })
                    .collect();
                wallet
                    .send_spec(node, &TxSpec::pay(outputs))
                    .map(|tx| vec![Sent { txid: tx.compute_txid(), feature: Feature::ManyOut }])
            }
            65..=69 => {
                // Chain of unconfirmed transactions.
                let mut out = Vec::new();
                let mut prev = None;
                for step in 0..3u64 {
                    let spec = match prev {
                        None => TxSpec::pay(vec![TxOut {
                            value: Amount::from_sat(3_000_000),
                            script_pubkey: rng.pick(&hot).clone(),
                        }]),
                        Some(txid) => TxSpec {
                            inputs: Inputs::Exactly(vec![bitcoin::OutPoint::new(txid, 0)]),
                            outputs: vec![TxOut {
                                value: Amount::from_sat(1_000_000 / step),
                                script_pubkey: rng.pick(&hot).clone(),
                            }],
                            change: Kind::P2wpkh,
                            fee_rate: 2.0,
                            rbf: true,
                        },
                    };
                    match wallet.send_spec(node, &spec) {
                        Ok(tx) => {
                            prev = Some(tx.compute_txid());
                            out.push(Sent { txid: tx.compute_txid(), feature: Feature::UnconfirmedChild });
                        }
                        // The parent's first output may not be ours (paid to a foreign hot script).
                        Err(_) => break,
                    }
                }
                Ok(out)
            }
            70..=72 => {
                let original = wallet.build(node, &TxSpec::pay(vec![TxOut { value, script_pubkey: dest.clone() }]))?;
                node.send_raw(&original)?;
                let spec = TxSpec {
                    inputs: Inputs::Exactly(original.input.iter().map(|i| i.previous_output).collect()),
                    outputs: vec![TxOut { value, script_pubkey: rng.pick(&pool).clone() }],
                    change: Kind::P2wpkh,
                    fee_rate: 25.0,
                    rbf: true,
                };
                wallet.send_spec(node, &spec).map(|tx| {
                    vec![
                        Sent { txid: original.compute_txid(), feature: Feature::Replaced },
                        Sent { txid: tx.compute_txid(), feature: Feature::Replacement },
                    ]
                })
            }
            73..=74 => {
                // Consolidation of many small coins.
                let small: Vec<bitcoin::OutPoint> = wallet
                    .utxos()
                    .filter(|u| u.coinbase_height.is_none() && u.txout.value.to_sat() < 5_000_000)
                    .take(15)
                    .map(|u| u.outpoint)
                    .collect();
                if small.len() < 4 {
                    Ok(Vec::new())
                } else {
                    let spec = TxSpec {
                        inputs: Inputs::Exactly(small),
                        outputs: Vec::new(),
                        change: *rng.pick(&Kind::ALL),
                        fee_rate: 1.0,
                        rbf: false,
                    };
                    wallet
                        .send_spec(node, &spec)
                        .map(|tx| vec![Sent { txid: tx.compute_txid(), feature: Feature::ManyIn }])
                }
            }
            75..=77 => {
                pool.push(wallet.receiver(*rng.pick(&Kind::ALL)).script_pubkey.clone());
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        };
        sent.extend(result?);
        if round.is_multiple_of(40) {
            // Replenish: a block paying us, mature 100 blocks later.
            let r = wallet.receiver(Kind::P2wpkh);
            let addr = r.address(node.network()).ok_or_else(|| anyhow::anyhow!("no address"))?;
            let hashes = node.mine_to(1, &addr)?;
            wallet.scan_blocks(node, &hashes)?;
        } else {
            node.mine(1)?;
        }
    }
    Ok(Scenario { wallet, sent })
}

/// A seeded chain of `height` blocks on a new node with `options`, whose mempool holds, besides
/// the scenario's unconfirmed transactions, a payment and a replaceable child of it (height -1
/// for its scripts).
pub fn busy_chain(options: NodeOptions, seed: u64, height: u32) -> Result<(Node, Wallet)> {
    let node = Node::start(options)?;
    let mut wallet = build(&node, &ScenarioOptions { seed, height })?.wallet;
    let a = wallet.receiver(Kind::P2wpkh);
    let parent = wallet.pay(&node, &a.script_pubkey, Amount::from_sat(5_000_000))?;
    let b = wallet.receiver(Kind::P2tr);
    wallet.send_spec(
        &node,
        &TxSpec {
            inputs: Inputs::Exactly(vec![bitcoin::OutPoint::new(parent.compute_txid(), 0)]),
            outputs: vec![TxOut { value: Amount::from_sat(1_000_000), script_pubkey: b.script_pubkey.clone() }],
            change: Kind::P2wpkh,
            fee_rate: 3.0,
            rbf: true,
        },
    )?;
    Ok((node, wallet))
}

/// Gives each of `scripts` a history of `sizes[i]` confirmed transactions, each spending one
/// coin of the wallet and paying the script 5,000 sat: first enough coins of 20,000 sat are
/// made (fan-outs of 2,500), then one transaction per coin, 2,500 per block.
pub fn histories(node: &Node, wallet: &mut Wallet, scripts: &[ScriptBuf], sizes: &[usize]) -> Result<()> {
    const COIN: u64 = 20_000;
    const PER_BLOCK: usize = 2_500;
    if scripts.len() != sizes.len() {
        bail!("{} scripts for {} sizes", scripts.len(), sizes.len());
    }
    let total: usize = sizes.iter().sum();
    let store = wallet.receiver(Kind::P2wpkh);
    let mut made = 0;
    while made < total {
        let n = (total - made).min(PER_BLOCK);
        let outputs = vec![TxOut { value: Amount::from_sat(COIN), script_pubkey: store.script_pubkey.clone() }; n];
        wallet.send_spec(node, &TxSpec::pay(outputs))?;
        made += n;
        // Each fan-out spends the previous one's change: one per block stays within the
        // mempool's cluster limit.
        node.mine(1)?;
    }
    let mut coins: Vec<bitcoin::OutPoint> = wallet
        .utxos()
        .filter(|u| u.receiver.script_pubkey == store.script_pubkey && u.txout.value.to_sat() == COIN)
        .map(|u| u.outpoint)
        .collect();
    if coins.len() < total {
        bail!("only {} coins for {total} transactions", coins.len());
    }
    let mut unmined = 0;
    for (script, &size) in scripts.iter().zip(sizes) {
        for _ in 0..size {
            let Some(coin) = coins.pop() else { bail!("out of coins") };
            wallet.send_spec(
                node,
                &TxSpec {
                    inputs: Inputs::Exactly(vec![coin]),
                    outputs: vec![TxOut { value: Amount::from_sat(5_000), script_pubkey: script.clone() }],
                    change: Kind::P2wpkh,
                    fee_rate: 1.0,
                    rbf: false,
                },
            )?;
            unmined += 1;
            if unmined == PER_BLOCK {
                node.mine(1)?;
                unmined = 0;
            }
        }
    }
    node.mine(1)?;
    Ok(())
}
