//! Initial sync of a release `ferrum` from an empty directory to the tip of a generated regtest
//! chain, in both prevout modes: blocks/s, transactions/s, MB of blocks/s and index bytes per
//! transaction.
//!
//! Usage: `sync [--ferrum PATH] [--txs 60000] [--out FILE.json]`. The chain holds `--txs`
//! transactions of one input and two outputs (P2WPKH), 2,500 per block, spending each other in
//! long chains so that inputs reach back across blocks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::{Amount, OutPoint, TxOut};
use serde_json::{json, Value};
use testkit::{Ferrum, Inputs, Kind, Node, NodeOptions, TxSpec, Wallet};

struct Options {
    ferrum: PathBuf,
    txs: usize,
    out: Option<PathBuf>,
}

fn parse_options() -> Result<Options> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut o = Options { ferrum: root.join("target/release/ferrum"), txs: 60_000, out: None };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--ferrum" => o.ferrum = PathBuf::from(value()?),
            "--txs" => o.txs = value()?.parse().context("--txs")?,
            "--out" => o.out = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other}; see the source's header for the usage"),
        }
    }
    if !o.ferrum.is_file() {
        bail!("{} does not exist: run `cargo build --release` or pass --ferrum", o.ferrum.display());
    }
    Ok(o)
}

/// About `txs` transactions in blocks of 2,500: 250 chains of payments, each transaction
/// spending the previous one's change.
fn build_chain(node: &Node, wallet: &mut Wallet, txs: usize) -> Result<()> {
    const CHAINS: usize = 250;
    let heads = wallet.receiver(Kind::P2wpkh);
    let outputs =
        vec![TxOut { value: Amount::from_sat(5_000_000), script_pubkey: heads.script_pubkey.clone() }; CHAINS];
    wallet.send_spec(node, &TxSpec::pay(outputs))?;
    node.mine(1)?;
    let mut tips: Vec<OutPoint> =
        wallet.utxos().filter(|u| u.receiver.script_pubkey == heads.script_pubkey).map(|u| u.outpoint).collect();
    let payees: Vec<_> = (0..500).map(|_| wallet.receiver(Kind::P2wpkh).script_pubkey.clone()).collect();
    let mut sent = 0;
    while sent < txs {
        for (i, tip) in tips.iter_mut().enumerate() {
            let tx = wallet.send_spec(
                node,
                &TxSpec {
                    inputs: Inputs::Exactly(vec![*tip]),
                    outputs: vec![TxOut {
                        value: Amount::from_sat(546),
                        script_pubkey: payees[(sent + i) % 500].clone(),
                    }],
                    change: Kind::P2wpkh,
                    fee_rate: 1.0,
                    rbf: false,
                },
            )?;
            // The change is the last output.
            *tip = OutPoint::new(tx.compute_txid(), tx.output.len() as u32 - 1);
        }
        sent += tips.len();
        if sent % 2_500 == 0 {
            node.mine(1)?;
        }
    }
    node.mine(1)?;
    Ok(())
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn sync_once(options: &Options, node: &Node, mode: &str) -> Result<(Duration, u64)> {
    let db = tempfile::tempdir()?;
    let tcp = format!("127.0.0.1:{}", testkit::free_port());
    let mut args = testkit::ferrum::node_args(node, db.path());
    args.extend(["--prevout-mode", mode, "--tcp", &tcp].map(String::from));
    let want = node.height()?;
    let started = Instant::now();
    let mut ferrum = Ferrum::start(&options.ferrum, &args, db.path())?;
    testkit::electrum::wait_for_height(&tcp, want, Duration::from_secs(3600))
        .map_err(|e| anyhow!("{e}\n{}", ferrum.log_text()))?;
    let took = started.elapsed();
    ferrum.interrupt()?;
    Ok((took, dir_bytes(&db.path().join("index"))))
}

fn main() -> Result<()> {
    let options = parse_options()?;
    let node = Node::start(NodeOptions::rest())?;
    let mut wallet = Wallet::new(777);
    wallet.fund(&node, 5)?;
    eprintln!("building a chain of {} transactions", options.txs);
    let started = Instant::now();
    build_chain(&node, &mut wallet, options.txs)?;
    let height = node.height()?;
    let info = node.call("getblockchaininfo", json!([]))?;
    let (mut blocks_bytes, mut tx_count) = (0u64, 0u64);
    for h in 0..=height {
        let stats = node.call("getblockstats", json!([h, ["total_size", "txs"]]))?;
        blocks_bytes += stats["total_size"].as_u64().unwrap_or(0) + 80;
        tx_count += stats["txs"].as_u64().unwrap_or(0);
    }
    eprintln!(
        "chain built in {:.0?}: {height} blocks, {tx_count} transactions, {:.1} MB, {} on disk",
        started.elapsed(),
        blocks_bytes as f64 / 1e6,
        info["size_on_disk"]
    );
    let mut report = json!({"blocks": height + 1, "transactions": tx_count, "block_bytes": blocks_bytes});
    for mode in ["spenttxouts", "utxo"] {
        let (took, bytes) = sync_once(&options, &node, mode)?;
        let secs = took.as_secs_f64();
        let row: Value = json!({
            "seconds": (secs * 100.0).round() / 100.0,
            "blocks_per_s": ((height + 1) as f64 / secs).round(),
            "txs_per_s": (tx_count as f64 / secs).round(),
            "mb_per_s": (blocks_bytes as f64 / 1e6 / secs * 10.0).round() / 10.0,
            "index_bytes": bytes,
            "index_bytes_per_tx": (bytes as f64 / tx_count as f64 * 10.0).round() / 10.0,
        });
        println!("{mode}: {row}");
        report[mode] = row;
    }
    if let Some(out) = &options.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
