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
         `bench scale` on {machine}: Ferrum's indexer with {settings} on a synthetic \
         mainnet-shaped chain (seed {seed}; `bench/src/synth/`), the chain's generator in a process \
         of its own. RSS is the indexer's process; \"anon\" leaves out file pages (the txid file's \
         mapping, read-only, reclaimable). Disk is the index directory; write amplification is what \
         the process had written to disk over the index's size. Probe latency: one full read of an \
         address's history, unspent outputs and balance (median of 3).\n\n",
        machine = first["machine"].as_str().unwrap_or("?"),
        seed = u(&first["seed"]),
        settings = match first["cache_mb"].as_u64() {
            Some(mb) if mb != ferrum::DEFAULT_CACHE_MB as u64 =>
                format!("`--cache-mb {mb}`, its other settings default"),
            _ => "its default settings".to_string(),
        },
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
    projection(md, runs);
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

/// Mainnet's transactions, about, at the end of 2026.
const MAINNET_TXS: f64 = 1.2e9;

/// Least-squares line `y = a + b·x` through `points`.
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

/// What a run's curves say of mainnet, for one mode.
#[derive(Debug, PartialEq)]
pub struct Projection {
    /// Microseconds of the indexer's CPU a transaction, on the line at the run's end and at
    /// mainnet's size.
    pub cpu_per_tx: (f64, f64),
    /// The same on the logarithmic curve.
    pub cpu_per_tx_log: (f64, f64),
    /// Cores the indexer kept busy on average (CPU over wall time).
    pub cores: f64,
    /// Seconds of sync to `MAINNET_TXS` at that many cores, compaction excluded: the run's own
    /// CPU time, then the line's from the run's end on.
    pub sync_seconds: f64,
    /// The same with the logarithmic curve from the run's end on.
    pub sync_seconds_log: f64,
    pub compaction_seconds: f64,
    pub index_bytes: f64,
    pub peak_disk_bytes: f64,
    /// RSS without file pages: the line through the samples at mainnet's size, or the run's
    /// highest sample where the line ends lower (a line falling over the run says nothing of
    /// memory going down).
    pub rss_anon_bytes: f64,
}

/// Fits the indexer's CPU time a transaction and its RSS without file pages against the
/// transactions indexed, over the intervals past the first tenth of the run (leaving out those
/// after a sample whose probes were read: that reading is CPU of the same process), and
/// integrates the CPU time from the run's end to mainnet's size, spread over the cores the
/// indexer kept busy. Two curves, as they bracket how a cost grows that is lookups in tables
/// growing in size: a line `a + b·N` (a cost growing with the table, as when every lookup
/// misses the caches and the misses cost more and more) and `a + b·ln N` (a cost growing with
/// the depth of the tables' levels and indexes). The RSS's line starts where the block cache
/// has filled (95% of its largest size in the run): a cache filling to its capacity is memory
/// that stops growing there, and a line through it would carry its growth to mainnet. The
/// CPU time, not the rate: on a shared machine the rate also falls with what the other process
/// (the chain's generator here, the node on a server) takes. Disk and compaction scale with
/// the index, at the run's final bytes per transaction.
pub fn project(run: &Value) -> Option<Projection> {
    let samples = run["samples"].as_array()?;
    let last = &run["last"];
    let txs = u(&last["txs"]) as f64;
    let f = |s: &Value, k: &str| s[k].as_f64().unwrap_or(0.0);
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    let cache_full = samples.iter().map(|s| f(s, "block_cache_bytes")).fold(0.0, f64::max) * 0.95;
    let (mut busy, mut wall) = (0.0, 0.0);
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let n = f(b, "txs") - f(a, "txs");
        let probed = a["probes"].as_array().is_some_and(|p| !p.is_empty());
        if f(b, "txs") < txs / 10.0 || n <= 0.0 || probed {
            continue;
        }
        cpu.push((f(b, "txs"), (f(b, "cpu_seconds") - f(a, "cpu_seconds")) / n * 1e6));
        if f(b, "block_cache_bytes") >= cache_full {
            rss.push((f(b, "txs"), f(b, "rss_anon_bytes")));
        }
        busy += f(b, "cpu_seconds") - f(a, "cpu_seconds");
        wall += f(b, "seconds") - f(a, "seconds");
    }
    // A cost falling over the run is taken as flat: extrapolated, it would reach zero.
    let mean = cpu.iter().map(|p| p.1).sum::<f64>() / cpu.len().max(1) as f64;
    let rising = |(a, b): (f64, f64)| if b < 0.0 { (mean, 0.0) } else { (a, b) };
    let (ca, cb) = rising(fit(&cpu)?);
    let logs: Vec<(f64, f64)> = cpu.iter().map(|&(n, c)| (n.ln(), c)).collect();
    let (la, lb) = rising(fit(&logs)?);
    let (ra, rb) = fit(&rss)?;
    if wall <= 0.0 || busy <= 0.0 || txs < 1.0 {
        return None;
    }
    let cores = busy / wall;
    // The indexer's CPU to the end of the stream (the last sample; `last` includes compaction).
    let run_cpu = samples.last().map_or(0.0, |s| f(s, "cpu_seconds"));
    let (m, t) = (MAINNET_TXS.max(txs), txs);
    // ∫ (a + bN) dN and ∫ (a + b·ln N) dN from the run's end to M, in microseconds.
    let line_micros = ca * (m - t) + cb * (m * m - t * t) / 2.0;
    let log_micros = la * (m - t) + lb * ((m * m.ln() - m) - (t * t.ln() - t));
    let sync = |micros: f64| (run_cpu + micros / 1e6) / cores;
    let per_tx = u(&last["disk_bytes"]) as f64 / txs;
    let scale = MAINNET_TXS / txs;
    Some(Projection {
        cpu_per_tx: (ca + cb * txs, ca + cb * MAINNET_TXS),
        cpu_per_tx_log: (la + lb * txs.ln(), la + lb * MAINNET_TXS.ln()),
        cores,
        sync_seconds: sync(line_micros),
        sync_seconds_log: sync(log_micros),
        compaction_seconds: run["compaction_seconds"].as_f64().unwrap_or(0.0) * scale,
        index_bytes: per_tx * MAINNET_TXS,
        peak_disk_bytes: u(&run["peak_disk_bytes"]) as f64 * scale,
        rss_anon_bytes: (ra + rb * MAINNET_TXS).max(rss.iter().map(|p| p.1).fold(0.0, f64::max)),
    })
}

fn projection(md: &mut String, runs: &[Value]) {
    let _ = writeln!(
        md,
        "### Projected to mainnet ({:.1} billion transactions)\n\n\
         From each run's own curves (`src/scale/report.rs`): least-squares fits of the \
         indexer's CPU time a transaction and of its RSS without file pages against the \
         transactions indexed N (intervals past the first tenth of the run, leaving out those \
         that include a probe's reads). The CPU time is fitted twice, as a line `a + b·N` and as \
         `a + b·ln N`, which bracket a cost made of lookups in growing tables (growing with the \
         tables as cache misses grow, or with the depth of their levels), and each curve is \
         integrated from the run's end to mainnet's size, added to the run's own CPU time and \
         spread over the cores the indexer kept busy in the run; disk and compaction time are \
         scaled from the run's final bytes per transaction. The RSS's line starts once the block \
         cache has filled (a cache filling up to its capacity is growth that stops there), and \
         where it falls the run's highest sample stands. The CPU time rather than the rate: on these 2 cores \
         the rate also falls with what the chain's generator takes, as it would with the node. \
         Mainnet's early blocks are smaller and its scripts more varied than the synthetic \
         chain's: read these as the shape of the costs, not a promise. Peak disk is the final \
         compaction's, which holds the level-0 files and their compacted copy at once.\n\n\
         | mode | from | CPU µs/tx, at the end → at 1.2B: line; log | cores used | sync: line; log | compaction | index | peak disk | RSS without file pages |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|",
        MAINNET_TXS / 1e9
    );
    for run in runs {
        let Some(p) = project(run) else { continue };
        let hours = |s: f64| format!("{:.1} h", s / 3600.0);
        let gib = |b: f64| format!("{:.0} GiB", b / (1u64 << 30) as f64);
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} → {:.1}; {:.1} → {:.1} | {:.2} | {}; {} | {} | {} | {} | {:.2} GiB |",
            run["mode"].as_str().unwrap_or("?"),
            millions(u(&run["last"]["txs"])),
            p.cpu_per_tx.0,
            p.cpu_per_tx.1,
            p.cpu_per_tx_log.0,
            p.cpu_per_tx_log.1,
            p.cores,
            hours(p.sync_seconds),
            hours(p.sync_seconds_log),
            hours(p.compaction_seconds),
            gib(p.index_bytes),
            gib(p.peak_disk_bytes),
            p.rss_anon_bytes / (1u64 << 30) as f64,
        );
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Samples a second apart: (transactions, CPU µs a transaction since the last, RSS).
    fn run(points: &[(u64, f64, u64)]) -> Value {
        let (mut cpu, mut prev, mut seconds) = (0.0, 0, 0.0);
        let samples: Vec<Value> = points
            .iter()
            .map(|&(txs, micros, rss)| {
                cpu += (txs - prev) as f64 * micros / 1e6;
                seconds += 1.0;
                prev = txs;
                json!({"txs": txs, "seconds": seconds, "cpu_seconds": cpu, "rss_anon_bytes": rss, "probes": []})
            })
            .collect();
        let txs = points.last().unwrap().0;
        json!({
            "mode": "spenttxouts",
            "samples": samples,
            "compaction_seconds": 10.0,
            "peak_disk_bytes": 2 * 100 * txs,
            "last": {"txs": txs, "disk_bytes": 100 * txs},
        })
    }

    #[test]
    fn a_steady_cost_projects_to_size_times_cost_over_cores() {
        // 10 µs a transaction, 1M transactions a second: 10 cores busy.
        let r = run(&[(10_000_000, 10.0, 1 << 28), (11_000_000, 10.0, 1 << 28), (12_000_000, 10.0, 1 << 28)]);
        let p = project(&r).unwrap();
        assert!((p.cores - 10.0).abs() < 1e-9, "{p:?}");
        assert!((p.sync_seconds - MAINNET_TXS * 10e-6 / 10.0).abs() < 1e-3, "{p:?}");
        assert!((p.cpu_per_tx.1 - 10.0).abs() < 1e-9);
        assert!((p.index_bytes - 100.0 * MAINNET_TXS).abs() < 1.0);
        assert!((p.peak_disk_bytes - 200.0 * MAINNET_TXS).abs() < 1.0);
        assert!((p.compaction_seconds - 10.0 * MAINNET_TXS / 12e6).abs() < 1e-6);
        assert!((p.rss_anon_bytes - f64::from(1u32 << 28)).abs() < 1.0);
    }

    #[test]
    fn a_growing_cost_takes_longer_and_probed_intervals_are_left_out() {
        let steady = project(&run(&[(10_000_000, 10.0, 0), (11_000_000, 10.0, 0), (12_000_000, 10.0, 0)])).unwrap();
        let growing = run(&[(10_000_000, 10.0, 1_000), (11_000_000, 10.0, 1_000), (12_000_000, 11.0, 2_000)]);
        let p = project(&growing).unwrap();
        assert!(p.sync_seconds > steady.sync_seconds && p.cpu_per_tx.1 > 11.0, "{p:?}");
        // 1,000 bytes more a million transactions: 1.19 MB at 1.2 billion.
        assert!((p.rss_anon_bytes - 1_190_000.0).abs() < 1.0, "the memory's line is extrapolated: {p:?}");
        // A probe read after the second sample makes the third interval cost more: left out.
        let mut probed =
            run(&[(10_000_000, 10.0, 0), (11_000_000, 10.0, 0), (12_000_000, 50.0, 0), (13_000_000, 10.0, 0)]);
        probed["samples"][1]["probes"] = json!([[5, 1.0]]);
        let p = project(&probed).unwrap();
        assert!((p.cpu_per_tx.1 - 10.0).abs() < 1e-9, "{p:?}");
        // A falling cost is taken as flat, at its mean: extrapolated, it would reach zero.
        let cheaper = project(&run(&[(10_000_000, 10.0, 0), (11_000_000, 10.0, 0), (12_000_000, 8.0, 0)])).unwrap();
        assert!((cheaper.cpu_per_tx.1 - 9.0).abs() < 1e-9 && cheaper.sync_seconds > 0.0, "{cheaper:?}");
        // Falling memory: the run's own highest sample stands.
        let falling = run(&[(10_000_000, 10.0, 0), (11_000_000, 10.0, 5_000), (12_000_000, 10.0, 1_000)]);
        assert_eq!(project(&falling).unwrap().rss_anon_bytes, 5_000.0);
        // Memory growing only while the block cache fills, flat once it is full: flat.
        let mut filling = run(&[
            (10_000_000, 10.0, 1_000),
            (11_000_000, 10.0, 2_000),
            (12_000_000, 10.0, 3_000),
            (13_000_000, 10.0, 3_000),
            (14_000_000, 10.0, 3_000),
        ]);
        for (i, cache) in [1_000, 2_000, 3_000, 3_000, 3_000].into_iter().enumerate() {
            filling["samples"][i]["block_cache_bytes"] = json!(cache);
        }
        assert_eq!(project(&filling).unwrap().rss_anon_bytes, 3_000.0);
        let mut md = String::new();
        projection(&mut md, &[growing]);
        assert!(md.contains("| spenttxouts | 12.0M | 11.0 → 1199.0; 11.0 → 63.9 | 10.50 |"), "{md}");
    }

    #[test]
    fn a_cost_growing_with_the_logarithm_is_found_by_the_log_curve_and_bounded_by_the_line() {
        // 5 µs + 2 µs·ln N: the log curve finds it exactly, the line over-estimates it.
        let cost = |n: u64| 5.0 + 2.0 * (n as f64).ln();
        let points: Vec<(u64, f64, u64)> = (1..=20).map(|i| (i * 1_000_000, cost(i * 1_000_000), 0)).collect();
        let p = project(&run(&points)).unwrap();
        assert!((p.cpu_per_tx_log.1 - cost(MAINNET_TXS as u64)).abs() < 1e-6, "{p:?}");
        assert!(p.cpu_per_tx.1 > p.cpu_per_tx_log.1 && p.sync_seconds > p.sync_seconds_log, "{p:?}");
        // The sync is the run's own CPU time (the samples', to 20M) and the curve's from there.
        let (m, t) = (MAINNET_TXS, 20e6);
        let cpu_run: f64 =
            points.windows(2).map(|w| (w[1].0 - w[0].0) as f64 * w[1].1 / 1e6).sum::<f64>() + points[0].1;
        let tail = 5.0 * (m - t) + 2.0 * ((m * m.ln() - m) - (t * t.ln() - t));
        assert!(((cpu_run + tail / 1e6) / p.cores - p.sync_seconds_log).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn the_report_names_a_cache_other_than_the_default() {
        let mut r = run(&[(1_000_000, 10.0, 0), (2_000_000, 10.0, 0)]);
        let text = |r: &Value| {
            let mut md = String::new();
            section(&mut md, std::slice::from_ref(r), Path::new("/nonexistent"));
            md
        };
        assert!(text(&r).contains("Ferrum's indexer with its default settings on"), "{}", text(&r));
        r["cache_mb"] = json!(ferrum::DEFAULT_CACHE_MB);
        assert!(text(&r).contains("with its default settings on"), "{}", text(&r));
        r["cache_mb"] = json!(256);
        assert!(text(&r).contains("with `--cache-mb 256`, its other settings default on"), "{}", text(&r));
    }
}
