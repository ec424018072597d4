//! The benchmark end to end on the tiny preset with Ferrum alone, on the node and behind a front
//! that answers as Bitcoin Core 29 does: the chain is generated (or taken from the cache), the
//! node copied and started, every measurement taken, and the results and the report written;
//! and the scale run, short. Figures are not judged here (no timing assertions); what is checked
//! is that every step produced them.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn tiny_preset_runs_every_step() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // The debug build of the server, which `cargo test --workspace` builds for Ferrum's own tests.
    let ferrum = std::env::var_os("FERRUM_EXE").map_or_else(|| root.join("target/debug/ferrum"), PathBuf::from);
    assert!(ferrum.is_file(), "{} is missing: build the workspace first", ferrum.display());
    let out = tempfile::tempdir().unwrap();
    let markdown = out.path().join("BENCHMARKS.md");
    let status = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--preset", "tiny", "--servers", "ferrum,ferrum-core29", "--samples", "3", "--clients", "2"])
        .args(["--rounds", "2"])
        .arg("--results")
        .arg(out.path())
        .arg("--markdown")
        .arg(&markdown)
        .arg("--no-chart")
        .env("FERRUM_EXE", &ferrum)
        .status()
        .unwrap();
    assert!(status.success(), "bench failed: {status}");

    let run: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("tiny.json")).unwrap()).unwrap();
    let chain = &run["chain"];
    assert!(chain["txs"].as_u64().unwrap() > 2_000, "{chain}");
    assert_eq!(run["ceiling"].as_array().unwrap().len(), 3);
    let servers = run["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["server"], "Ferrum (spenttxouts)");
    assert_eq!(servers[1]["server"], "Ferrum (utxo, behind Core 29)");
    let probes = chain["probes"].as_array().unwrap().len();
    for ferrum in servers {
        assert!(ferrum["sync_seconds"].as_f64().unwrap() > 0.0);
        assert!(ferrum["index_bytes"].as_u64().unwrap() > 0);
        let latency = ferrum["latency"].as_array().unwrap();
        assert_eq!(latency.len(), probes * 5, "five methods per probe address");
        for l in latency {
            assert!(l["result"].get("Ok").is_some(), "{l}");
        }
        let wallet = &ferrum["wallet_sync"]["Ok"];
        assert_eq!(wallet["clients"], 2, "{}", ferrum["wallet_sync"]);
        assert!(wallet["histories_fetched"].as_u64().unwrap() > 0);
        assert_eq!(ferrum["notification"]["Ok"]["samples"], 2, "{}", ferrum["notification"]);
    }

    let md = std::fs::read_to_string(&markdown).unwrap();
    for heading in ["## Preset `tiny`", "### Targets", "### Initial sync", "### Query latency", "### Wallet sync"] {
        assert!(md.contains(heading), "{heading} missing from the report");
    }
    assert!(md.contains("utxo mode behind Core 29 within 1.5×"), "the Core 29 target missing from the report");
}

/// The scale run, short: both modes on the same synthetic chain, every sample taken, the report
/// written. The two modes index the same chain, so their probes find the same histories, and
/// run in one process, each measured from its own start, with the `--cache-mb` they are given.
#[test]
fn scale_run_samples_both_modes() {
    let out = tempfile::tempdir().unwrap();
    let markdown = out.path().join("BENCHMARKS.md");
    #[expect(clippy::zombie_processes, reason = "reaped by wait4 below, which also reads its resource usage")]
    let child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["scale", "--to", "200k", "--every", "50k", "--mode", "both", "--cache-mb", "256", "--no-chart"])
        .arg("--dir")
        .arg(out.path().join("index"))
        .arg("--results")
        .arg(out.path())
        .arg("--markdown")
        .arg(&markdown)
        .spawn()
        .unwrap();
    // Waited for with its resource usage: the CPU time of the run and of the generators it
    // started and waited for.
    let mut status = 0;
    // SAFETY: all zeros is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes the status and the struct it is given.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "bench scale failed: {status}");
    let mut probes = Vec::new();
    let mut cpu_of_runs = 0.0;
    for mode in ["spenttxouts", "utxo"] {
        let path = out.path().join(format!("scale/{mode}.json"));
        let run: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(run["mode"], mode);
        assert_eq!(run["cache_mb"], 256);
        let samples = run["samples"].as_array().unwrap();
        // Samples are taken as commits land: in bulk mode, a commit every 128 MB of rows.
        assert!(!samples.is_empty());
        let last = &run["last"];
        assert!(last["txs"].as_u64().unwrap() >= 200_000, "{last}");
        for s in samples.iter().chain([last]) {
            assert!(s["tx_per_sec"].as_f64().unwrap() > 0.0 || s == last);
            for field in ["cpu_seconds", "write_amplification"] {
                assert!(s[field].as_f64().unwrap() > 0.0, "{field}: {s}");
            }
            for field in ["rss_bytes", "rss_anon_bytes", "disk_bytes", "txids_bytes", "written_bytes"] {
                assert!(s[field].as_u64().unwrap() > 0, "{field}: {s}");
            }
        }
        assert!(last["sst_bytes"].as_u64().unwrap() > 0 && !last["levels"].as_array().unwrap().is_empty());
        assert!(run["peak_disk_bytes"].as_u64().unwrap() >= last["disk_bytes"].as_u64().unwrap());
        assert!(run["peak_rss_anon_bytes"].as_u64().unwrap() >= last["rss_anon_bytes"].as_u64().unwrap());
        // The busiest address holds about 1% of the transactions.
        let history: Vec<u64> = last["probes"].as_array().unwrap().iter().map(|p| p[0].as_u64().unwrap()).collect();
        assert!(history[0] > 1_000 && history[0] > history[1] && history[1] > history[2], "{history:?}");
        probes.push(history);
        cpu_of_runs += last["cpu_seconds"].as_f64().unwrap() + last["generator_cpu_seconds"].as_f64().unwrap();
    }
    // The runs' CPU times add up to no more than the processes used: the second run's does not
    // include the first's.
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let used = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    assert!(cpu_of_runs <= used + 0.1, "the runs report {cpu_of_runs} s of CPU, the processes used {used} s");
    assert_eq!(probes[0], probes[1], "the two modes indexed different histories");
    let md = std::fs::read_to_string(&markdown).unwrap();
    for heading in
        ["## Scale: the index alone", "### spenttxouts mode, as the index grows", "### utxo mode, as the index grows"]
    {
        assert!(md.contains(heading), "{heading} missing from the report");
    }
    assert!(md.contains("Ferrum's indexer with `--cache-mb 256`"), "the report does not name the cache's size");
}
