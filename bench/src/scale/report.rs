//! The scale runs' section of `BENCHMARKS.md`, from `results/scale/<mode>.json` only.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// The runs of `results/scale/`, spenttxouts mode first.
pub fn runs(results: &Path) -> Result<Vec<Value>> {
    let dir = results.join("scale");
    let mut runs = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(runs) };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            runs.push(serde_json::from_str::<Value>(&text).with_context(|| format!("reading {}", path.display()))?);
        }
    }
    runs.sort_by_key(|r| r["mode"].as_str() != Some("spenttxouts"));
    Ok(runs)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn mib(v: &Value) -> String {
    format!("{:.0}", u(v) as f64 / (1u64 << 20) as f64)
}

fn millions(n: u64) -> String {
    format!("{:.1}M", n as f64 / 1e6)
}

/// Bytes a transaction: the index directory over the transactions in it.
fn per_tx(sample: &Value) -> String {
    format!("{:.1}", u(&sample["disk_bytes"]) as f64 / u(&sample["txs"]).max(1) as f64)
}

pub fn section(md: &mut String, runs: &[Value], results: &Path) {
    let Some(first) = runs.first() else { return };
    let _ = write!(
        md,
        "## Scale: the index alone\n\n\
         `bench scale` on {machine}: Ferrum's indexer with its default settings on a synthetic \
         mainnet-shaped chain (seed {seed}; `bench/src/synth/`), the chain's generator in a process \
         of its own. RSS is the indexer's process; \"anon\" leaves out file pages (the txid file's \
         mapping, read-only, reclaimable). Disk is the index directory; write amplification is what \
         the process had written to disk over the index's size. Probe latency: one full read of an \
         address's history, unspent outputs and balance (median of 3).\n\n",
        machine = first["machine"].as_str().unwrap_or("?"),
        seed = u(&first["seed"]),
    );
    md.push_str(
        "| mode | transactions | sync | compaction | tx/s overall | bytes/tx | peak disk | peak RSS | peak anon | CPU s |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for run in runs {
        let last = &run["last"];
        let total = run["index_seconds"].as_f64().unwrap_or(0.0) + run["compaction_seconds"].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} s | {:.0} s | {:.0} | {} | {} MiB | {} MiB | {} MiB | {:.0} |",
            run["mode"].as_str().unwrap_or("?"),
            millions(u(&last["txs"])),
            run["index_seconds"].as_f64().unwrap_or(0.0),
            run["compaction_seconds"].as_f64().unwrap_or(0.0),
            u(&last["txs"]) as f64 / total.max(1e-3),
            per_tx(last),
            mib(&run["peak_disk_bytes"]),
            mib(&last["peak_rss_bytes"]),
            mib(&run["peak_rss_anon_bytes"]),
            last["cpu_seconds"].as_f64().unwrap_or(0.0),
        );
    }
    md.push('\n');
    for run in runs {
        let mode = run["mode"].as_str().unwrap_or("?");
        let samples: Vec<&Value> = run["samples"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        let _ = writeln!(md, "### {mode} mode, as the index grows\n");
        if results.join(format!("scale/{mode}.png")).is_file() {
            let _ = writeln!(md, "![{mode} mode](bench/results/scale/{mode}.png)\n");
        }
        md.push_str(
            "| transactions | tx/s | CPU s | generator CPU s | RSS MiB | anon MiB | disk MiB | bytes/tx | \
             write amp. | pending compaction MiB | L0 files | probes: ms (transactions) |\n\
             |--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
        );
        // At most about 25 rows: every k-th sample, and the last.
        let step = samples.len().div_ceil(25).max(1);
        let last = samples.len().saturating_sub(1);
        for (_, s) in samples.iter().enumerate().filter(|(i, _)| (i + 1) % step == 0 || *i == last) {
            let probes: Vec<String> = s["probes"]
                .as_array()
                .map(|p| p.iter().map(|p| format!("{} ({})", p[1], u(&p[0]))).collect())
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                millions(u(&s["txs"])),
                s["tx_per_sec"].as_f64().unwrap_or(0.0),
                s["cpu_seconds"],
                s["generator_cpu_seconds"],
                mib(&s["rss_bytes"]),
                mib(&s["rss_anon_bytes"]),
                mib(&s["disk_bytes"]),
                per_tx(s),
                s["write_amplification"],
                mib(&s["pending_compaction_bytes"]),
                u(&s["levels"][0]["files"]),
                probes.join(", "),
            );
        }
        md.push('\n');
    }
}
