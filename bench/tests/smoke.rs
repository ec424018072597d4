//! The benchmark end to end on the tiny preset with Ferrum alone, on the node and behind a front
//! that answers as Bitcoin Core 29 does: the chain is generated (or taken from the cache), the
//! node copied and started, every measurement taken, and the results and the report written. Figures are not judged here (no timing assertions); what is
//! checked is that every step produced them.

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
