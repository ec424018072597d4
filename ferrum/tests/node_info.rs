//! `ferrum node-info` against real regtest nodes: the report for each node configuration, and a
//! clear one-line error for each way a node can be unusable.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::process::ferrum::rpc_args;
use testkit::{Node, NodeOptions};

fn ferrum(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrum"));
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run ferrum")
}

fn report(node: &Node) -> Value {
    let mut args = vec!["node-info".to_string(), "--json".to_string()];
    args.extend(rpc_args(node));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ferrum(&args, &[]);
    assert!(out.status.success(), "ferrum failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// Runs node-info expecting failure; returns stderr, checked to be one line.
fn failure(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = ferrum(args, envs);
    assert!(!out.status.success(), "expected failure, got {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("ferrum: error: "), "{stderr}");
    stderr
}

#[test]
fn report_for_a_plain_node() {
    let node = Node::start(NodeOptions::default()).unwrap();
    node.mine(3).unwrap();
    let r = report(&node);
    assert_eq!(r["network"], "regtest");
    assert_eq!(r["blocks"], 3);
    assert_eq!(r["best_block_hash"], node.tip().unwrap().to_string());
    assert!(r["version"].as_u64().unwrap() >= 310000, "{}", r["version"]);
    assert!(r["subversion"].as_str().unwrap().starts_with("/Satoshi:"));
    assert_eq!(r["rest"], false);
    assert_eq!(r["spenttxouts"], false, "needs REST");
    assert_eq!(r["blockpart"], false, "needs REST");
    assert_eq!(r["txindex"], false);
    assert_eq!(r["zmq"], serde_json::json!([]));
}

#[test]
fn report_for_a_node_with_rest_and_txindex() {
    let node = Node::start(NodeOptions { rest: true, txindex: true, ..Default::default() }).unwrap();
    node.mine(2).unwrap();
    // The txindex catches up in the background; wait until the node says it is synced.
    testkit::wait_for("txindex synced", Duration::from_secs(30), || {
        let v = node.call("getindexinfo", serde_json::json!([])).ok()?;
        v["txindex"]["synced"].as_bool().filter(|s| *s)
    })
    .unwrap();
    let r = report(&node);
    assert_eq!(r["rest"], true);
    assert_eq!(r["spenttxouts"], true);
    assert_eq!(r["blockpart"], true);
    assert_eq!(r["txindex"], true);
}

#[test]
fn human_report_names_the_prevout_mode() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut args = vec!["node-info".to_string()];
    args.extend(rpc_args(&node));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ferrum(&args, &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("on regtest at 127.0.0.1:"), "{text}");
    assert!(text.contains("spenttxouts mode"), "{text}");
    assert!(text.contains("REST /rest/block"), "{text}");
}

#[test]
fn unreachable_node() {
    let port = testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let cookie = dir.path().join(".cookie");
    std::fs::write(&cookie, "__cookie__:x").unwrap();
    let e = failure(
        &["node-info", "--network", "regtest", "--daemon-rpc-addr", &addr, "--cookie-file", cookie.to_str().unwrap()],
        &[],
    );
    assert!(e.contains(&format!("cannot reach bitcoind at {addr}")), "{e}");
}

#[test]
fn missing_cookie_file() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let e = failure(
        &["node-info", "--network", "regtest", "--daemon-rpc-addr", &node.rpc_addr(), "--daemon-dir", "/nonexistent"],
        &[],
    );
    assert!(e.contains("cookie file /nonexistent/regtest/.cookie"), "{e}");
}

#[test]
fn wrong_credentials() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let e = failure(
        &["node-info", "--network", "regtest", "--daemon-rpc-addr", &node.rpc_addr(), "--daemon-user", "mallory"],
        &[("FERRUM_DAEMON_PASSWORD", "guess")],
    );
    assert!(e.contains("refused the RPC credentials"), "{e}");
    // ElectrumX's DAEMON_URL form, wrong password too.
    let url = format!("http://mallory:guess@{}", node.rpc_addr());
    let e = failure(&["node-info"], &[("DAEMON_URL", &url), ("NET", "regtest")]);
    assert!(e.contains("refused the RPC credentials"), "{e}");
}

#[test]
fn wrong_network() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let mut args = vec!["node-info".to_string()];
    args.extend(rpc_args(&node));
    args[2] = "testnet4".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = failure(&args, &[]);
    assert!(e.contains("is on regtest, but Ferrum is configured for testnet4"), "{e}");
}

#[test]
fn pruned_node() {
    let node = Node::start(NodeOptions { extra_args: vec!["-prune=550".into()], ..Default::default() }).unwrap();
    let mut args = vec!["node-info".to_string()];
    args.extend(rpc_args(&node));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = failure(&args, &[]);
    assert!(e.contains("is pruned"), "{e}");
}

#[test]
fn node_warming_up() {
    // Verifying every block at the deepest level at start-up keeps the node in warm-up for a
    // while; ferrum must say so instead of failing obscurely. The window is raced, so retry
    // until one run of ferrum lands inside it.
    let mut node = Node::start(NodeOptions::default()).unwrap();
    node.mine(1500).unwrap();
    let mut args = vec!["node-info".to_string()];
    args.extend(rpc_args(&node));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut seen = None;
    for _ in 0..5 {
        node.stop().unwrap();
        node.spawn_again_with(&["-checkblocks=0", "-checklevel=4"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !node.cookie_file().exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        loop {
            let out = ferrum(&args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            if stderr.contains("warming up") {
                seen = Some(stderr);
                break;
            }
            if out.status.success() || Instant::now() > deadline {
                break;
            }
        }
        if seen.is_some() {
            break;
        }
    }
    node.wait_ready().unwrap();
    let e = seen.expect("ferrum never observed the warm-up");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("bitcoind is warming up ("), "{e}");
}
