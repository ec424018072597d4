//! Answer and notification latency of Ferrum and ElectrumX 2.0, side by side on one regtest node:
//!
//! - `blockchain.scripthash.get_history` for scripts with 10, 1,000 and 10,000 transactions
//!   (sizes configurable), each sample on a fresh connection;
//! - the time from `generatetoaddress` returning to the `blockchain.scripthash.subscribe`
//!   notification for that address arriving.
//!
//! Usage: `latency [--ferrum PATH] [--sizes 10,1000,10000] [--samples 15] [--blocks 10]
//! [--out FILE.json]`. Build Ferrum with `cargo build --release` first; the default path is
//! `target/release/ferrum`. ElectrumX comes from `$ELECTRUMX_EXE` or `scripts/electrumx.sh`.
//!
//! ElectrumX is configured to poll the node every 200 ms (its default is 5 s); Ferrum hears of
//! blocks from the node's P2P announcements.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use testkit::electrum::Client;
use testkit::{ElectrumX, Ferrum, Node, NodeOptions, Wallet};

struct Options {
    ferrum: PathBuf,
    sizes: Vec<usize>,
    samples: usize,
    blocks: usize,
    out: Option<PathBuf>,
}

fn parse_options() -> Result<Options> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut o = Options {
        ferrum: root.join("target/release/ferrum"),
        sizes: vec![10, 1_000, 10_000],
        samples: 15,
        blocks: 10,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--ferrum" => o.ferrum = PathBuf::from(value()?),
            "--sizes" => {
                o.sizes = value()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>().context("--sizes")?
            }
            "--samples" => o.samples = value()?.parse().context("--samples")?,
            "--blocks" => o.blocks = value()?.parse().context("--blocks")?,
            "--out" => o.out = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other}; see the source's header for the usage"),
        }
    }
    if !o.ferrum.is_file() {
        bail!("{} does not exist: run `cargo build --release` or pass --ferrum", o.ferrum.display());
    }
    if o.samples == 0 || o.blocks == 0 {
        bail!("--samples and --blocks must be positive");
    }
    Ok(o)
}

/// Scripts with `sizes` transactions each; returns their script hashes.
fn build_histories(node: &Node, wallet: &mut Wallet, sizes: &[usize]) -> Result<Vec<String>> {
    let scripts: Vec<bitcoin::ScriptBuf> =
        (0..sizes.len()).map(|i| testkit::wallet::burn_address_n(1_000 + i as u32).script_pubkey()).collect();
    testkit::scenario::histories(node, wallet, &scripts, sizes)?;
    Ok(scripts.iter().map(|s| testkit::scripthash(s)).collect())
}

fn wait_ferrum(addr: &str, node: &Node, ferrum: &Ferrum) -> Result<()> {
    testkit::electrum::wait_for_height(addr, node.height()?, Duration::from_secs(1800))
        .map_err(|e| anyhow!("{e}\n{}", ferrum.log_text()))
}

/// Median, 90th percentile and maximum, in milliseconds.
fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    json!({"median_ms": ms(at(0.5)), "p90_ms": ms(at(0.9)), "max_ms": ms(at(1.0)), "samples": samples.len()})
}

fn history_latency(addr: &str, sh: &str, samples: usize) -> Result<(usize, Value)> {
    let mut times = Vec::new();
    let mut entries = 0;
    // One unmeasured request first: both servers then answer from a warm cache.
    Client::connect(addr)?.call("blockchain.scripthash.get_history", json!([sh]))?;
    for _ in 0..samples {
        let mut c = Client::connect(addr)?;
        let start = Instant::now();
        let history = c.call("blockchain.scripthash.get_history", json!([sh]))?;
        times.push(start.elapsed());
        entries = history.as_array().map_or(0, Vec::len);
    }
    Ok((entries, summary(times)))
}

/// Subscribes on every server, mines `blocks` blocks one at a time to the subscribed address
/// and times each server's notification from `generatetoaddress` returning.
fn notification_latency(node: &Node, servers: &[(&str, String)], blocks: usize) -> Result<Vec<Value>> {
    let address = testkit::wallet::burn_address_n(9_999);
    let sh = testkit::scripthash(&address.script_pubkey());
    let (tx, rx) = mpsc::channel::<(usize, Instant)>();
    let mut threads = Vec::new();
    for (i, (_, addr)) in servers.iter().enumerate() {
        let mut c = Client::connect(addr)?;
        c.call("blockchain.scripthash.subscribe", json!([sh]))?;
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || -> Result<()> {
            for _ in 0..blocks {
                c.notification("blockchain.scripthash.subscribe", Duration::from_secs(60))?;
                let _ = tx.send((i, Instant::now()));
            }
            Ok(())
        }));
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); servers.len()];
    for _ in 0..blocks {
        node.mine_to(1, &address)?;
        let mined = Instant::now();
        for _ in 0..servers.len() {
            let (i, at) = rx.recv_timeout(Duration::from_secs(60)).context("waiting for a notification")?;
            times[i].push(at.saturating_duration_since(mined));
        }
        // Let every server settle before the next block.
        std::thread::sleep(Duration::from_millis(500));
    }
    for t in threads {
        t.join().map_err(|_| anyhow!("a notification thread panicked"))??;
    }
    Ok(times.into_iter().map(summary).collect())
}

fn main() -> Result<()> {
    let options = parse_options()?;
    let node = Node::start(NodeOptions { rest: true, txindex: true, extra_args: vec!["-txospenderindex=1".into()] })?;
    let mut wallet = Wallet::new(4242);
    let needed: usize = options.sizes.iter().sum();
    wallet.fund(&node, (needed as u32 / 2_000 + 2).max(3))?;
    eprintln!("building histories of {:?} transactions", options.sizes);
    let started = Instant::now();
    let hashes = build_histories(&node, &mut wallet, &options.sizes)?;
    eprintln!("chain built in {:.0?}: height {}", started.elapsed(), node.height()?);

    let db = tempfile::tempdir()?;
    let tcp = format!("127.0.0.1:{}", testkit::free_port());
    let mut args = testkit::ferrum::node_args(&node, db.path());
    args.extend(["--tcp".to_string(), tcp.clone()]);
    let ferrum = Ferrum::start(&options.ferrum, &args, db.path())?;
    let electrumx = ElectrumX::start(&node)?;
    wait_ferrum(&tcp, &node, &ferrum)?;
    electrumx.wait_synced(&node, Duration::from_secs(1800))?;
    let servers = [("ferrum", tcp.clone()), ("electrumx", electrumx.tcp_addr())];

    let mut history = Vec::new();
    for (size, sh) in options.sizes.iter().zip(&hashes) {
        let mut row = json!({"transactions": size});
        for (name, addr) in &servers {
            let (entries, s) = history_latency(addr, sh, options.samples)?;
            if entries != *size {
                bail!("{name} returned {entries} entries for a history of {size}");
            }
            row[*name] = s;
        }
        history.push(row);
    }
    let notify = notification_latency(&node, &servers, options.blocks)?;
    let notification: Value = servers.iter().zip(notify).map(|((name, _), s)| ((*name).to_string(), s)).collect();

    let report = json!({"get_history": history, "block_to_notification": notification});
    println!("| get_history | Ferrum median / p90 (ms) | ElectrumX median / p90 (ms) |");
    println!("|---|---|---|");
    for row in &history {
        let cell = |s: &Value| format!("{} / {}", s["median_ms"], s["p90_ms"]);
        println!("| {} txs | {} | {} |", row["transactions"], cell(&row["ferrum"]), cell(&row["electrumx"]));
    }
    println!(
        "| block → notification | {} / {} | {} / {} |",
        report["block_to_notification"]["ferrum"]["median_ms"],
        report["block_to_notification"]["ferrum"]["p90_ms"],
        report["block_to_notification"]["electrumx"]["median_ms"],
        report["block_to_notification"]["electrumx"]["p90_ms"]
    );
    if let Some(out) = &options.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
