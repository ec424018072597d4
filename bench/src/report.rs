//! `BENCHMARKS.md` and the chart, written from the runs' JSON files only: every figure in them
//! comes from a run.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Draws `<preset>.png` from a run's JSON with `bench/chart.sh` (matplotlib in a cached venv).
pub fn chart(json: &Path, png: &Path) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("chart.sh");
    let status =
        Command::new(&script).arg(json).arg(png).status().with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    Ok(())
}

/// Writes `out` from every `*.json` run in `results`, presets in size order.
pub fn write_markdown(results: &Path, out: &Path) -> Result<()> {
    let mut runs: Vec<Value> = Vec::new();
    for entry in std::fs::read_dir(results)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            runs.push(serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?);
        }
    }
    runs.sort_by_key(|r| r["chain"]["txs"].as_u64().unwrap_or(0));
    let mut md = String::new();
    md.push_str(HEADER);
    for run in &runs {
        preset_section(&mut md, run, results);
    }
    crate::scale::report::section(&mut md, &crate::scale::report::runs(results)?, results);
    std::fs::write(out, md)?;
    Ok(())
}

const HEADER: &str = "# Benchmarks

Ferrum side by side with ElectrumX 2.0 and electrs 0.12 and 0.11.1, on one Bitcoin Core node
and one generated chain, in one run per preset. This file is written by the benchmark from the
run's results (`bench/results/<preset>.json`); nothing in it is typed by hand. How to run it,
and what each figure means: `bench/README.md`.

Every server runs alone on the machine, one after the other, against the same node. Sizes on
disk are the server's own directory; ElectrumX also needs the node's `txindex` and
`txospenderindex`, counted in its total. Latencies are taken one request at a time on one
connection after a first request that is not counted; ElectrumX answers repeated history
requests from its cache.

";

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn servers(run: &Value) -> Vec<&Value> {
    run["servers"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

fn find<'a>(run: &'a Value, prefix: &str) -> Option<&'a Value> {
    servers(run).into_iter().find(|s| s["server"].as_str().is_some_and(|n| n.starts_with(prefix)))
}

fn preset_section(md: &mut String, run: &Value, results: &Path) {
    let chain = &run["chain"];
    let preset = chain["preset"]["name"].as_str().unwrap_or("?");
    let txs = chain["txs"].as_u64().unwrap_or(0);
    let _ = writeln!(
        md,
        "## Preset `{preset}`: {txs} transactions in {} blocks ({} MB of blocks)\n",
        chain["height"],
        mb(chain["block_bytes"].as_u64().unwrap_or(0))
    );
    let _ = writeln!(
        md,
        "Run on {}, {}; the whole run took {:.0} s. Chain seed {}, generator version {}, built in {:.0} s.\n",
        run["date"].as_str().unwrap_or("?"),
        run["machine"].as_str().unwrap_or("?"),
        f(&run["seconds"]),
        chain["seed"],
        chain["generator"],
        f(&chain["build_seconds"])
    );
    let _ = writeln!(md, "- Node: {}", run["bitcoind"].as_str().unwrap_or("?"));
    for s in servers(run) {
        let _ = writeln!(md, "- {}: `{}`", s["server"].as_str().unwrap_or("?"), s["version"].as_str().unwrap_or("?"));
    }
    let pairs = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter().map(|p| format!("{} {}", p[0].as_str().unwrap_or("?"), p[1])).collect::<Vec<_>>().join(", ")
            })
            .unwrap_or_default()
    };
    let _ = writeln!(
        md,
        "- Chain: {} inputs, {} outputs; outputs by kind: {}; addresses by transactions touching \
         them: {}.\n",
        chain["inputs"],
        chain["outputs"],
        pairs(&chain["output_kinds"]),
        pairs(&chain["address_use"])
    );
    if results.join(format!("{preset}.png")).exists() {
        let _ = writeln!(md, "![{preset}](bench/results/{preset}.png)\n");
    }
    targets(md, run);
    ceiling(md, run);
    sync(md, run);
    latency(md, run);
    wallets(md, run);
    notifications(md, run);
}

fn ceiling(md: &mut String, run: &Value) {
    md.push_str(
        "### The node's block-serving ceiling\n\nEvery block fetched from the node with 4 requests in flight.\n\n",
    );
    md.push_str("| method | seconds | blocks/s | MB of blocks/s | MB of answers/s |\n|---|---:|---:|---:|---:|\n");
    for c in run["ceiling"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.0} | {:.1} | {:.1} |",
            c["method"].as_str().unwrap_or("?"),
            f(&c["seconds"]),
            f(&c["blocks_per_s"]),
            f(&c["block_mb_per_s"]),
            f(&c["answer_mb_per_s"])
        );
    }
    md.push('\n');
}

fn sync(md: &mut String, run: &Value) {
    if servers(run).iter().any(|s| s["compaction_seconds"].is_f64()) {
        md.push_str(
            "### Initial sync\n\nFrom starting the server on an empty directory to serving the tip (wall, CPU, RSS \
             and rates); Ferrum then compacts the index in the background while it serves (electrs compacts before \
             it serves), and the index is measured, and the queries below are run, once that is done. The targets \
             count Ferrum's compaction in its time.\n\n",
        );
    } else {
        md.push_str(
            "### Initial sync\n\nFrom starting the server on an empty directory to serving the tip. This run did not \
             wait for the compaction Ferrum runs in the background after its initial sync: its index size is \
             before it, and its queries, wallet sync and notifications were measured during it.\n\n",
        );
    }
    md.push_str(
        "| server | wall s | then compacting s | CPU s | peak RSS MB | tx/s | MB of blocks/s | index MB | node-side indexes MB | total MB | index bytes/tx | wall vs Ferrum |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let ferrum = find(run, "Ferrum (spenttxouts)").map(|s| f(&s["sync_seconds"]));
    for s in servers(run) {
        let index = s["index_bytes"].as_u64().unwrap_or(0);
        let node = s["node_index_bytes"].as_u64().unwrap_or(0);
        let ratio = ferrum.map_or("".into(), |fe| format!("{:.1}×", f(&s["sync_seconds"]) / fe));
        let _ = writeln!(
            md,
            "| {} | {:.2} | {} | {:.2} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {:.1} | {ratio} |",
            s["server"].as_str().unwrap_or("?"),
            f(&s["sync_seconds"]),
            s["compaction_seconds"].as_f64().map_or("—".to_string(), |c| format!("{c:.2}")),
            f(&s["sync_cpu_seconds"]),
            f(&s["sync_peak_rss_mb"]),
            f(&s["txs_per_s"]),
            f(&s["block_mb_per_s"]),
            mb(index),
            mb(node),
            mb(index + node),
            f(&s["index_bytes_per_tx"])
        );
    }
    md.push('\n');
}

/// `p50 / p99` of a latency entry, or the error.
fn cell(l: &Value) -> String {
    if let Some(ok) = l["result"].get("Ok") {
        format!("{:.2} / {:.2}", f(&ok["p50_ms"]), f(&ok["p99_ms"]))
    } else if let Some(e) = l["result"].get("Err").and_then(Value::as_str) {
        let short: String = e.chars().take(60).collect();
        format!("error: {}", short.replace('|', "/"))
    } else {
        "—".into()
    }
}

fn latency(md: &mut String, run: &Value) {
    let with: Vec<&Value> =
        servers(run).into_iter().filter(|s| s["latency"].as_array().is_some_and(|a| !a.is_empty())).collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Query latency, p50 / p99 ms\n\n{} requests per method and address ({} for addresses of more than 20,000 \
         transactions), or as many as fit in 10 s (at least 3; the count is in the JSON results).\n",
        run["samples"],
        (run["samples"].as_u64().unwrap_or(0) / 5).max(5)
    );
    md.push_str("| method | address txs |");
    for s in &with {
        let _ = write!(md, " {} |", s["server"].as_str().unwrap_or("?"));
    }
    md.push_str("\n|---|---:|");
    for _ in &with {
        md.push_str("---:|");
    }
    md.push('\n');
    let first = with[0]["latency"].as_array().cloned().unwrap_or_default();
    for (i, entry) in first.iter().enumerate() {
        let method = entry["method"].as_str().unwrap_or("?").trim_start_matches("blockchain.");
        let _ = write!(md, "| `{method}` | {} |", entry["probe_txs"]);
        for s in &with {
            let l = s["latency"].get(i).cloned().unwrap_or(Value::Null);
            let _ = write!(md, " {} |", cell(&l));
        }
        md.push('\n');
    }
    md.push('\n');
}

fn wallets(md: &mut String, run: &Value) {
    md.push_str(
        "### Wallet sync\n\nClients at once, each subscribing 1,000 addresses and then fetching the history of every \
         address that has one, each kind of request written all at once (pipelined), as Electrum does.\n\n",
    );
    md.push_str("| server | clients | addresses/s | seconds | per client p50 / p99 s |\n|---|---:|---:|---:|---:|\n");
    result_rows(md, run, "wallet_sync", 4, |ok| {
        format!(
            "{} | {:.0} | {:.2} | {:.2} / {:.2}",
            ok["clients"],
            f(&ok["addresses_per_s"]),
            f(&ok["seconds"]),
            f(&ok["per_client"]["p50_ms"]) / 1000.0,
            f(&ok["per_client"]["p99_ms"]) / 1000.0
        )
    });
}

fn notifications(md: &mut String, run: &Value) {
    let _ = writeln!(
        md,
        "### New block → notification\n\nFrom `submitblock` to the `scripthash.subscribe` notification for the \
         address the block pays, {} blocks. ElectrumX polls the node every 200 ms here (its default is 5 s).\n",
        run["rounds"]
    );
    md.push_str("| server | p50 ms | p99 ms |\n|---|---:|---:|\n");
    result_rows(md, run, "notification", 2, |ok| format!("{:.1} | {:.1}", f(&ok["p50_ms"]), f(&ok["p99_ms"])));
}

/// One table row per server that has `field` (a result: `Ok` or `Err`): the server's name, then
/// `cells` of the `Ok` value, or the error in the first of `columns` cells.
fn result_rows(md: &mut String, run: &Value, field: &str, columns: usize, cells: impl Fn(&Value) -> String) {
    for s in servers(run) {
        let Some(result) = s[field].as_object() else { continue };
        let name = s["server"].as_str().unwrap_or("?");
        if let Some(ok) = result.get("Ok") {
            let _ = writeln!(md, "| {name} | {} |", cells(ok));
        } else if let Some(e) = result.get("Err") {
            let rest = " |".repeat(columns.saturating_sub(1));
            let _ = writeln!(md, "| {name} | error: {} |{rest}", e.as_str().unwrap_or("?"));
        }
    }
    md.push('\n');
}

/// DESIGN.md's targets, each with this run's figure and whether it is met.
fn targets(md: &mut String, run: &Value) {
    md.push_str("### Targets (DESIGN.md)\n\n| target | this run | met |\n|---|---|---|\n");
    let mut row = |target: &str, figure: Option<(String, bool)>| {
        let (text, met) = match figure {
            Some((t, ok)) => (t, if ok { "yes" } else { "**no**" }),
            None => ("not measured in this run".to_string(), "—"),
        };
        let _ = writeln!(md, "| {target} | {text} | {met} |");
    };
    let ferrum = find(run, "Ferrum (spenttxouts)");
    let utxo = find(run, "Ferrum (utxo)");
    let core29 = find(run, "Ferrum (utxo, behind Core 29)");
    let ex = find(run, "ElectrumX");
    let rs12 = find(run, "electrs 0.12");
    // Until serving and compacted: electrs compacts before it serves.
    let wall = |s: &Value| f(&s["sync_seconds"]) + s["compaction_seconds"].as_f64().unwrap_or(0.0);
    row(
        "initial index ≤ ½ of electrs 0.12's time",
        ferrum.zip(rs12).map(|(a, b)| {
            (format!("{:.2} s vs {:.2} s: {:.2}×", wall(a), wall(b), wall(a) / wall(b)), wall(a) <= wall(b) / 2.0)
        }),
    );
    row(
        "initial index ≤ 1/10 of ElectrumX's time",
        ferrum.zip(ex).map(|(a, b)| {
            (format!("{:.2} s vs {:.2} s: {:.3}×", wall(a), wall(b), wall(a) / wall(b)), wall(a) <= wall(b) / 10.0)
        }),
    );
    let ceiling = |method: &str| {
        run["ceiling"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["method"] == method))
            .map(|c| f(&c["block_mb_per_s"]))
    };
    for (s, method, label) in [
        (ferrum, "REST block + spenttxouts", "spenttxouts"),
        (utxo, "REST block", "utxo"),
        (core29, "REST block", "utxo behind Core 29"),
    ] {
        row(
            &format!("sync ≥ 70% of the node's serving rate ({label} mode)"),
            s.zip(ceiling(method)).map(|(s, c)| {
                let r = f(&s["block_mb_per_s"]) / c;
                (
                    format!("{:.2} MB/s of {:.1} MB/s ({method}): {:.0}%", f(&s["block_mb_per_s"]), c, r * 100.0),
                    r >= 0.7,
                )
            }),
        );
    }
    row(
        "utxo mode behind Core 29 within 1.5× of spenttxouts mode's time",
        core29.or(utxo).zip(ferrum).map(|(u, a)| {
            (
                format!(
                    "{:.2} s vs {:.2} s: {:.2}× ({})",
                    wall(u),
                    wall(a),
                    wall(u) / wall(a),
                    u["server"].as_str().unwrap_or("?")
                ),
                wall(u) <= wall(a) * 1.5,
            )
        }),
    );
    let per_tx = |s: &Value| f(&s["index_bytes_per_tx"]);
    row(
        "index ≤ 100 bytes per transaction",
        ferrum.map(|a| {
            let mut text = format!("{:.1} bytes/tx", per_tx(a));
            for (peer, name) in [(ex, "ElectrumX"), (rs12, "electrs 0.12")] {
                if let Some(p) = peer {
                    let _ = write!(text, "; {name} {:.1}", per_tx(p));
                }
            }
            (text, per_tx(a) <= 100.0)
        }),
    );
    // The probe addresses' p50 for a method: the first probe in `range` transactions.
    let p50 = |method: &str, range: std::ops::Range<u64>| {
        let l = ferrum?["latency"]
            .as_array()?
            .iter()
            .find(|l| l["method"] == method && range.contains(&l["probe_txs"].as_u64().unwrap_or(0)))?;
        let ok = l["result"].get("Ok")?;
        Some((f(&ok["p50_ms"]), l["probe_txs"].as_u64().unwrap_or(0)))
    };
    for (target, method, range, limit) in [
        ("`get_history` of a 10k-tx address: p50 ≤ 5 ms", "get_history", 10_000..100_000, 5.0),
        ("`get_history` of a 150k-tx address: p50 ≤ 30 ms", "get_history", 150_000..u64::MAX, 30.0),
        ("`get_balance` of a 10k-tx address: p50 ≤ 10 ms", "get_balance", 10_000..100_000, 10.0),
        ("`listunspent` of a 10k-tx address: p50 ≤ 10 ms", "listunspent", 10_000..100_000, 10.0),
    ] {
        let figure = p50(&format!("blockchain.scripthash.{method}"), range);
        row(target, figure.map(|(ms, txs)| (format!("{ms:.2} ms ({txs} txs)"), ms <= limit)));
    }
    let throughput = |s: &Value| s["wallet_sync"].get("Ok").map(|w| f(&w["addresses_per_s"]));
    for (peer, name, times) in [(ex, "ElectrumX's", 10.0), (rs12, "electrs 0.12's", 5.0)] {
        row(
            &format!("wallet sync ≥ {times}× {name} throughput"),
            ferrum
                .and_then(throughput)
                .zip(peer.and_then(throughput))
                .map(|(a, b)| (format!("{a:.0} vs {b:.0} addresses/s: {:.1}×", a / b), a >= times * b)),
        );
    }
    row(
        "new block → notification: p99 ≤ 20 ms",
        ferrum.and_then(|s| s["notification"].get("Ok")).map(|n| {
            (format!("p50 {:.1} ms, p99 {:.1} ms", f(&n["p50_ms"]), f(&n["p99_ms"])), f(&n["p99_ms"]) <= 20.0)
        }),
    );
    // The RSS without file pages (sampled), in runs that have it; else with them (the kernel's
    // peak), which can only be higher.
    let peaks: Vec<(&str, String, f64)> = [ferrum, utxo, core29]
        .iter()
        .flatten()
        .map(|s| {
            let name = s["server"].as_str().unwrap_or("?");
            match s["sync_peak_rss_anon_mib"].as_f64() {
                Some(mib) => (name, format!("{mib:.0} MiB without file pages"), mib * 1.048576),
                None => {
                    (name, format!("{:.0} MB with file pages", f(&s["sync_peak_rss_mb"])), f(&s["sync_peak_rss_mb"]))
                }
            }
        })
        .collect();
    row(
        "RSS ≤ 1 GB with default settings (the peak through initial sync and its compaction)",
        (!peaks.is_empty()).then(|| {
            let text = peaks.iter().map(|(n, t, _)| format!("{n} {t}")).collect::<Vec<_>>().join(", ");
            (text, peaks.iter().all(|(_, _, mb)| *mb <= 1000.0))
        }),
    );
    md.push('\n');
}
